"""The README says what the product does: its settings table, its commands and its example output
are checked against the code, so they cannot drift apart silently."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from qa.cli import _parser, main
from qa.config import Config

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, re.S | re.M)


def settings_table() -> dict[str, str]:
    """`QA_NAME` -> its default cell, from the README's configuration table."""
    rows = re.findall(r"^\| `(QA_[A-Z_]+)`[^|]*\| ([^|]*) \|", README, re.M)
    return dict(rows)


def test_every_setting_is_in_the_readme_with_its_default():
    table = settings_table()
    for f in fields(Config):
        name = f"QA_{f.name.upper()}"
        assert name in table, f"{name} is missing from the README's settings table"
        default = f.default if f.default is not MISSING else f.default_factory()
        cell = table[name]
        if default == "":
            assert cell.startswith("empty"), (name, cell)
            continue
        shown = re.match(r"`([^`]*)`", cell)
        assert shown, (name, cell)
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            assert float(shown.group(1)) == default, (name, cell)
        else:
            assert shown.group(1) == str(default), (name, cell)
    assert set(table) - {f"QA_{f.name.upper()}" for f in fields(Config)} == {"QA_CACHE_DIR"}


def test_the_readme_commands_are_the_cli_s():
    """Every `qa ...` line of the README's command list names a real command and real flags."""
    parser = _parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    top = {o for a in parser._actions for o in a.option_strings}
    lines = [line.split("#")[0].strip() for block in blocks("sh") for line in block.splitlines()]
    listed = [line for line in lines if line.startswith("qa ")]
    assert len(listed) >= 10
    for line in listed:
        words = [w for w in shlex.split(line.replace("[", " ").replace("]", " ")) if w != "qa"]
        command = next(w for w in words if not w.startswith("-") and w in commands)
        flags = {w.split("=")[0] for w in words if w.startswith("--")}
        known = top | {o for a in commands[command]._actions for o in a.option_strings}
        assert flags <= known, (line, flags - known)


@pytest.mark.e2e
def test_the_readme_answer_is_what_qa_ask_prints(seeded_pipeline, capsys):
    """The README's console and JSON examples, run on the seed briefing."""
    index = str(seeded_pipeline.config.index_dir)
    [console] = [b for b in blocks("console") if b.startswith("$ qa ask")]
    command, *shown = console.rstrip("\n").splitlines()
    question = shlex.split(command[2:])[2]
    assert main(["--index", index, "ask", question]) == 0
    assert capsys.readouterr().out.rstrip("\n").splitlines() == shown

    [example] = blocks("json")
    documented = json.loads(example)
    assert main(["--index", index, "ask", documented["question"], "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed.keys() == documented.keys()
    for key in documented.keys() - {"passages", "score"}:
        assert printed[key] == documented[key], key
    assert printed["score"] == pytest.approx(documented["score"], abs=0.01)
    # The README shows the first passage, its text shortened with "…".
    first, shown_first = printed["passages"][0], documented["passages"][0]
    assert first.keys() == shown_first.keys()
    assert {k: v for k, v in first.items() if k not in ("text", "score")} == \
        {k: v for k, v in shown_first.items() if k not in ("text", "score")}
    assert first["text"].startswith(shown_first["text"].rstrip("…"))
    assert first["score"] == pytest.approx(shown_first["score"], abs=0.01)
