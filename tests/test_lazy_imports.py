"""`qa` imports heavy libraries only in the commands that need them.

Parsing a command line imports neither torch nor gradio; `qa ask` never imports gradio (nor the
web server under it). Each check runs in a fresh interpreter, because the test process itself
may have loaded anything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("gradio", "gradio_client", "fastapi", "uvicorn", "torch", "transformers", "sentence_transformers", "onnxruntime")
WEB = ("gradio", "gradio_client", "fastapi", "uvicorn")


def loaded_after(code: str, tmp_path: Path) -> list[str]:
    """Run `code` in a fresh interpreter; return which HEAVY modules it left in sys.modules."""
    script = code + f"\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    env = {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_parsing_any_command_imports_neither_torch_nor_gradio(tmp_path):
    code = """
from qa.cli import _parser
for argv in (["ask", "q"], ["ask", "q", "--json"], ["list"], ["add", "x.txt"], ["remove", "x"],
             ["serve", "--port", "1"], ["eval", "q.jsonl", "--docs", "d"]):
    _parser().parse_args(argv)
"""
    assert loaded_after(code, tmp_path) == []


def test_ask_and_list_on_an_empty_index_load_nothing_heavy(tmp_path):
    """Nothing to search and no seed folder to build from (a first `qa ask` would index seeds/)."""
    index = tmp_path / "index"
    code = f"""
import os
os.environ["QA_SEEDS_DIR"] = {str(tmp_path / "no-seeds")!r}
from qa.cli import main
assert main(["--index", {str(index)!r}, "list"]) == 0
assert main(["--index", {str(index)!r}, "ask", "What did Kallas say?", "--json"]) == 0
"""
    assert loaded_after(code, tmp_path) == []


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_a_real_ask_loads_the_model_but_not_the_web_stack(tmp_path):
    """The whole ask path (model, FAISS, BM25, reader) over the seeds, in a fresh process."""
    index = tmp_path / "index"
    seeds = REPO / "seeds"
    code = f"""
import contextlib, io
from qa.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    assert main(["--index", {str(index)!r}, "add", {str(seeds)!r}]) == 0
out = io.StringIO()
with contextlib.redirect_stdout(out):
    assert main(["--index", {str(index)!r}, "ask", "What did Kallas say?", "--json"]) == 0
import json
assert json.loads(out.getvalue())["question"] == "What did Kallas say?"
"""
    loaded = loaded_after(code, tmp_path)
    assert "onnxruntime" in loaded  # it did embed the question
    assert not set(loaded) & set(WEB), loaded


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_a_fresh_default_ask_imports_neither_torch_nor_transformers(tmp_path):
    """Once the models' int8 exports are cached (the first process made them, with torch), a
    fresh `qa ask` in the default configuration embeds, retrieves and reads with onnxruntime
    and `tokenizers` alone."""
    index, seeds = tmp_path / "index", REPO / "seeds"
    first = f"""
import contextlib, io
from qa.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    assert main(["--index", {str(index)!r}, "add", {str(seeds)!r}]) == 0
    assert main(["--index", {str(index)!r}, "ask", "What did Kallas say?"]) == 0
"""
    loaded_after(first, tmp_path)
    fresh = f"""
import contextlib, io, json
from qa.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    assert main(["--index", {str(index)!r}, "ask", "How many countries are exploring ways to support Ukraine?", "--json"]) == 0
answer = json.loads(out.getvalue())
assert answer["answer"] and answer["citations"], answer
"""
    loaded = loaded_after(fresh, tmp_path)
    assert "onnxruntime" in loaded
    assert not set(loaded) & {"torch", "transformers", "sentence_transformers"}, loaded
    listing = f"""
import contextlib, io
from qa.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    assert main(["--index", {str(index)!r}, "list"]) == 0
assert "allies-forge-ahead" in out.getvalue()
"""
    assert loaded_after(listing, tmp_path) == []  # listing loads no model at all
