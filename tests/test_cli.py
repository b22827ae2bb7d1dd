"""The `qa` console script as users and scripts run it: real processes, real model, tmp index.

Each command that embeds (add, ask) loads the model in its own process (~5-10 s), so the module
builds one index with a single `add` and every test reads it; the removal test works on a copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SEED_FILE = "allies-forge-ahead-on-ukraine-peace-plan.txt"
KALLAS_QUESTION = "What did Kallas say?"
KALLAS_QUOTE = "At the moment there is no peace to keep"
UNANSWERABLE = "What is the boiling point of water on Mars?"

ANSWER_KEYS = {"question", "answered", "answer", "quote", "score", "citations", "passages", "alternatives"}
CITATION_KEYS = {"doc_id", "title", "source", "page", "section", "start", "end", "quote", "ocr", "table"}
TABLE_KEYS = {"caption", "row", "column", "cell_start", "cell_end"}
PASSAGE_KEYS = {"doc_id", "title", "source", "page", "start", "end", "text", "score"}


def _command() -> list[str]:
    """The installed console script next to this interpreter, else the module it runs."""
    script = Path(sys.executable).with_name("qa")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "qa.cli"]


def run_qa(
    index: Path, *args: str, cwd: Path, settings: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PYTHONIOENCODING="utf-8", **(settings or {}))
    return subprocess.run(
        [*_command(), "--index", str(index), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=240,
        input=stdin,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def added(workdir: Path, seeds_dir: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`qa add <seeds folder> <missing file>` once for the module: the index and the run."""
    index = workdir / "index"
    missing = workdir / "missing-brief.txt"
    done = run_qa(index, "add", str(seeds_dir), str(missing), cwd=workdir)
    return index, done


@pytest.fixture(scope="module")
def seed_doc(added: tuple[Path, subprocess.CompletedProcess[str]], workdir: Path) -> dict:
    index, _ = added
    done = run_qa(index, "list", "--json", cwd=workdir)
    assert done.returncode == 0, done.stderr
    docs = json.loads(done.stdout)
    assert [d["source"] for d in docs] == [SEED_FILE], docs
    return docs[0]


def test_add_reports_added_and_refused(added: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    index, done = added
    assert done.returncode != 0, (done.stdout, done.stderr)
    assert "1 added" in done.stdout and "1 refused" in done.stdout, done.stdout
    refusal = [line for line in done.stderr.splitlines() if "missing-brief.txt" in line]
    assert refusal and "no such file" in refusal[0], done.stderr
    assert "Traceback" not in done.stderr
    assert SEED_FILE in done.stdout
    # The good file was committed even though another was refused.
    assert (index / "CURRENT").is_file()


def test_list_json(seed_doc: dict) -> None:
    assert seed_doc["chunks"] > 0
    assert seed_doc["doc_id"] and seed_doc["title"].startswith("Allies Forge Ahead")
    assert seed_doc["pages"] is None and seed_doc["chars"] > 0
    assert Path(seed_doc["path"]).name == SEED_FILE


def _check_types(obj: dict) -> None:
    assert ANSWER_KEYS <= set(obj), sorted(obj)
    assert isinstance(obj["question"], str)
    assert isinstance(obj["answered"], bool)
    assert isinstance(obj["answer"], str) and isinstance(obj["quote"], str)
    assert isinstance(obj["score"], (int, float)) and not isinstance(obj["score"], bool)
    assert 0.0 <= obj["score"] <= 1.0
    assert isinstance(obj["citations"], list) and isinstance(obj["passages"], list)
    for c in obj["citations"]:
        assert set(c) == CITATION_KEYS, sorted(c)
        assert all(isinstance(c[k], str) for k in ("doc_id", "title", "source", "quote"))
        assert c["page"] is None or (isinstance(c["page"], int) and c["page"] >= 1)
        assert c["section"] is None or (isinstance(c["section"], str) and c["section"])
        assert isinstance(c["ocr"], bool)
        table = c["table"]
        assert table is None or set(table) == TABLE_KEYS, table
        assert table is None or c["start"] <= table["cell_start"] < table["cell_end"] <= c["end"], table
        assert isinstance(c["start"], int) and isinstance(c["end"], int) and 0 <= c["start"] < c["end"]
    for p in obj["passages"]:
        assert set(p) == PASSAGE_KEYS, sorted(p)
        assert all(isinstance(p[k], str) for k in ("doc_id", "title", "source", "text"))
        assert p["page"] is None or (isinstance(p["page"], int) and p["page"] >= 1)
        assert isinstance(p["start"], int) and isinstance(p["end"], int) and 0 <= p["start"] < p["end"]
        assert isinstance(p["score"], (int, float)) and 0.0 <= p["score"] <= 1.0
    assert isinstance(obj["alternatives"], list)
    for other in obj["alternatives"]:  # the same shape, without passages or alternatives of their own
        _check_types(other)
        assert other["answered"] is True and other["passages"] == [] and other["alternatives"] == []
        assert other["score"] <= obj["score"]


def test_ask_json_answers_with_verbatim_citation(
    added: tuple[Path, subprocess.CompletedProcess[str]], seed_doc: dict, seed_text: str, workdir: Path
) -> None:
    index, _ = added
    done = run_qa(index, "ask", KALLAS_QUESTION, "--json", cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip().splitlines()) == 1, done.stdout  # one JSON object
    obj = json.loads(done.stdout)
    _check_types(obj)
    assert obj["question"] == KALLAS_QUESTION
    for p in obj["passages"]:
        assert p["doc_id"] == seed_doc["doc_id"] and p["source"] == SEED_FILE
        assert p["text"] == seed_text[p["start"] : p["end"]]
    assert obj["answered"] is True, obj
    assert KALLAS_QUOTE in obj["quote"]
    assert obj["answer"] and obj["answer"] in obj["quote"]
    (citation,) = obj["citations"]
    assert citation["doc_id"] == seed_doc["doc_id"] and citation["source"] == SEED_FILE
    assert citation["page"] is None
    assert citation["quote"] == seed_text[citation["start"] : citation["end"]]
    assert citation["quote"] == obj["quote"]
    assert citation["table"] is None  # an ordinary sentence's answer


def test_ask_json_unanswerable_abstains(
    added: tuple[Path, subprocess.CompletedProcess[str]], workdir: Path
) -> None:
    index, _ = added
    done = run_qa(index, "ask", UNANSWERABLE, "--json", cwd=workdir)
    assert done.returncode == 0, done.stderr
    obj = json.loads(done.stdout)
    _check_types(obj)
    assert obj["answered"] is False, obj
    assert obj["answer"] == "" and obj["quote"] == "" and obj["citations"] == []


def test_ask_text_shows_quote_and_file_name(
    added: tuple[Path, subprocess.CompletedProcess[str]], workdir: Path
) -> None:
    index, _ = added
    done = run_qa(index, "ask", KALLAS_QUESTION, cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert KALLAS_QUOTE in done.stdout, done.stdout
    assert SEED_FILE in done.stdout
    with pytest.raises(json.JSONDecodeError):
        json.loads(done.stdout)


def test_chat_json_reads_each_line_in_the_context_of_the_ones_before(
    added: tuple[Path, subprocess.CompletedProcess[str]], workdir: Path
) -> None:
    index, _ = added
    lines = [KALLAS_QUESTION, "What is her position?", "", "Who is Finland’s Defense Minister?", "What did he stress?"]
    done = run_qa(index, "chat", "--json", cwd=workdir, stdin="\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    replies = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(replies) == 4  # the empty line is skipped
    for reply in replies:
        _check_types(reply)
    first, position, minister, stressed = replies
    assert KALLAS_QUOTE in first["quote"] and "read_as" not in first
    assert position["question"] == "What is her position?" and position["read_as"] == "What is Kallas' position?"
    assert "top diplomat" in position["quote"]
    assert minister["answer"] == "Antti Häkkänen" and "read_as" not in minister  # stands on its own
    assert stressed["read_as"] == "What did Antti Häkkänen stress?"
    assert "necessity of U.S. involvement" in stressed["quote"]


def test_chat_text_says_how_a_follow_up_was_read(
    added: tuple[Path, subprocess.CompletedProcess[str]], workdir: Path
) -> None:
    index, _ = added
    done = run_qa(index, "chat", cwd=workdir, stdin=f"{KALLAS_QUESTION}\nWhat is her position?\n")
    assert done.returncode == 0, done.stderr
    assert "(read as: What is Kallas' position?)" in done.stdout and "top diplomat" in done.stdout


def test_remove_then_list_is_empty_and_ask_says_how_to_add(
    added: tuple[Path, subprocess.CompletedProcess[str]], seed_doc: dict, workdir: Path, tmp_path: Path
) -> None:
    index, _ = added
    copy = tmp_path / "index"
    shutil.copytree(index, copy)  # other tests keep reading the original
    done = run_qa(copy, "remove", seed_doc["doc_id"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert seed_doc["doc_id"] in done.stdout

    listed = run_qa(copy, "list", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []

    again = run_qa(copy, "remove", seed_doc["doc_id"], cwd=tmp_path)
    assert again.returncode != 0 and "Traceback" not in again.stderr

    asked = run_qa(copy, "ask", KALLAS_QUESTION, cwd=tmp_path)
    assert asked.returncode == 0, asked.stderr
    assert "qa add" in asked.stdout, asked.stdout


def test_first_ask_builds_the_index_from_the_seed_folder(tmp_path: Path, seeds_dir: Path) -> None:
    """On a fresh clone `qa ask` answers from seeds/ like `qa serve`, without a `qa add` first."""
    shutil.copytree(seeds_dir, tmp_path / "seeds")
    done = run_qa(tmp_path / "index", "ask", KALLAS_QUESTION, "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    obj = json.loads(done.stdout)
    assert obj["answered"] is True and KALLAS_QUOTE in obj["quote"], obj
    assert obj["citations"][0]["source"] == SEED_FILE


def test_first_list_builds_the_index_from_the_seed_folder(tmp_path: Path, seeds_dir: Path) -> None:
    shutil.copytree(seeds_dir, tmp_path / "seeds")
    done = run_qa(tmp_path / "index", "list", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [d["source"] for d in json.loads(done.stdout)] == [SEED_FILE]


def test_ask_on_a_new_empty_index_says_how_to_add(tmp_path: Path) -> None:
    done = run_qa(tmp_path / "fresh-index", "ask", KALLAS_QUESTION, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "qa add" in done.stdout, done.stdout
    assert "Traceback" not in done.stderr

    as_json = run_qa(tmp_path / "fresh-index", "ask", KALLAS_QUESTION, "--json", cwd=tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    obj = json.loads(as_json.stdout)
    _check_types(obj)
    assert obj["answered"] is False and obj["citations"] == []
    assert "qa add" in obj.get("message", ""), obj


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [("QA_ABSTENTION", "lenient", "abstention must be one of balanced, strict, not 'lenient'"),
     ("QA_TOP_K", "five", "QA_TOP_K='five' is not a valid int")],
)
def test_a_bad_setting_is_named_without_a_traceback(tmp_path: Path, variable: str, value: str, message: str) -> None:
    done = run_qa(tmp_path / "index", "list", cwd=tmp_path, settings={variable: value})
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "index").exists()


def test_every_command_works_on_milvus_lite(tmp_path: Path, seeds_dir: Path) -> None:
    """QA_STORE=milvus: the same commands on a Milvus Lite file inside the index folder."""
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    index, milvus = tmp_path / "index", {"QA_STORE": "milvus"}
    added = run_qa(index, "add", str(seeds_dir), cwd=tmp_path, settings=milvus)
    assert added.returncode == 0, added.stderr
    assert (index / "milvus.db").exists() and not (index / "CURRENT").exists()  # no local generation
    listed = json.loads(run_qa(index, "list", "--json", cwd=tmp_path, settings=milvus).stdout)
    assert [d["source"] for d in listed] == [SEED_FILE]
    answer = json.loads(run_qa(index, "ask", KALLAS_QUESTION, "--json", cwd=tmp_path, settings=milvus).stdout)
    _check_types(answer)
    assert KALLAS_QUOTE in answer["quote"] and answer["citations"][0]["source"] == SEED_FILE
    checked = run_qa(index, "check", cwd=tmp_path, settings=milvus)
    assert checked.returncode == 0 and "is consistent" in checked.stdout, checked.stderr
    chat = run_qa(index, "chat", "--json", cwd=tmp_path, settings=milvus, stdin=f"{KALLAS_QUESTION}\nWhat is her position?\n")
    first, second = map(json.loads, chat.stdout.splitlines())
    assert KALLAS_QUOTE in first["quote"] and "Kallas" in second["read_as"], chat.stderr
    questions = Path(__file__).parent / "eval" / "seed_questions.jsonl"
    evaluated = run_qa(index, "eval", str(questions), "--docs", str(seeds_dir), "--limit", "6", "--json",
                       cwd=tmp_path, settings=milvus)
    evaluated = json.loads(evaluated.stdout)
    assert evaluated["questions"] == 6 and evaluated["quote_hit_at_1"] >= 0.5, evaluated
    removed = run_qa(index, "remove", SEED_FILE, cwd=tmp_path, settings=milvus)
    assert removed.returncode == 0 and SEED_FILE in removed.stdout
    assert json.loads(run_qa(index, "list", "--json", cwd=tmp_path, settings=milvus).stdout) == []
    rebuilt = run_qa(index, "rebuild", cwd=tmp_path, settings=milvus)
    assert rebuilt.returncode == 2 and "remove the documents and add them again" in rebuilt.stderr


TABLE_DOC = """# Background checks by state

The bureau counts the firearm background checks run in each state during the year.

Background checks by state, 2023

| State | Handgun | Long gun | Permit |
| --- | --- | --- | --- |
| Texas | 56,941 | 21,550 | 51,670 |
| Ohio | 31,208 | 17,402 | 9,815 |
| Maine | 4,117 | 6,390 | 212 |
"""
TABLE_QUESTION = "How many handgun checks did Texas run?"


def test_a_table_answer_names_its_row_and_column(tmp_path: Path) -> None:
    """A Markdown pipe table: the answer is the cell, printed beside its row and column (and the
    table's caption); --json cites the cell's span, the row's and the column's headers."""
    (tmp_path / "checks.md").write_text(TABLE_DOC, encoding="utf-8")
    index = tmp_path / "index"
    added = run_qa(index, "add", str(tmp_path / "checks.md"), cwd=tmp_path)
    assert added.returncode == 0, added.stderr

    done = run_qa(index, "ask", TABLE_QUESTION, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Texas × Handgun: 56,941", done.stdout
    assert lines[1] == "  table: Background checks by state, 2023", done.stdout
    assert lines[2] == '"| Texas | 56,941 | 21,550 | 51,670 |"', done.stdout
    assert lines[3].startswith("  [1] Background checks by state (checks.md"), done.stdout

    obj = json.loads(run_qa(index, "ask", TABLE_QUESTION, "--json", cwd=tmp_path).stdout)
    _check_types(obj)
    assert obj["answered"] is True and obj["answer"] == "56,941", obj
    (citation,) = obj["citations"]
    assert citation["table"] == {
        "caption": "Background checks by state, 2023",
        "row": "Texas",
        "column": "Handgun",
        "cell_start": TABLE_DOC.index("56,941"),
        "cell_end": TABLE_DOC.index("56,941") + len("56,941"),
    }
    assert citation["quote"] == obj["quote"] == TABLE_DOC[citation["start"] : citation["end"]]
    assert TABLE_DOC[citation["table"]["cell_start"] : citation["table"]["cell_end"]] == "56,941"

    ordinary = json.loads(run_qa(index, "ask", "What does the bureau count?", "--json", cwd=tmp_path).stdout)
    _check_types(ordinary)
    assert ordinary["answered"] is True and "firearm background checks" in ordinary["quote"], ordinary
    assert ordinary["citations"][0]["table"] is None
