"""Load: 20 concurrent gradio_client clients ask seed questions through /ask_json while documents are
added through /add_documents; every answer must be right and cited, identical to the answer a single
client gets, and no call may fail. (A seed question the pipeline gets wrong even for a single client
is a quality problem, left to tests/eval: it is only checked for being unchanged, with a warning.)

The suite runs 20 clients x 5 questions (all 25 seed questions, each asked 4 times) against an
in-process server, to stay well under a minute on 2 shared cores; `bench/load.py` runs the full
20 x 25 against a `qa serve` child process and prints the numbers quoted in docs/chat.md.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from collections.abc import Iterator

import pytest
from test_chat import ROOT, seeded_app


CLIENTS = 20
QUESTIONS_EACH = 5
DOCS_ADDED = 3


def _bench():
    """bench/load.py (not a package), imported once."""
    if "bench_load" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_load", ROOT / "bench" / "load.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_load"] = module  # its dataclasses look their module up by name
        spec.loader.exec_module(module)
    return sys.modules["bench_load"]


@pytest.fixture(scope="module")
def load_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Its own server and index: this test adds documents."""
    yield from seeded_app(tmp_path_factory.mktemp("load"))


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_concurrent_clients_while_documents_are_added(load_server: str) -> None:
    from gradio_client import Client

    bench = _bench()
    questions = bench.load_questions()
    assert len(questions) == 25 and CLIENTS * QUESTIONS_EACH % len(questions) == 0
    reference, _ = bench.baseline(load_server, questions)
    report = bench.run_load(load_server, CLIENTS, QUESTIONS_EACH, DOCS_ADDED, questions=questions, reference=reference)
    summary = report.summary()
    print(summary)
    (ROOT / "tests" / "artifacts").mkdir(parents=True, exist_ok=True)
    (ROOT / "tests" / "artifacts" / "load.txt").write_text(f"{bench.machine()}\n{summary}\n", encoding="utf-8")

    assert report.errors == [], summary
    assert report.wrong == [], "\n".join([summary, *report.wrong])
    assert report.changed == [], "\n".join([summary, *report.changed])
    if report.known_wrong:  # a quality problem of the pipeline, reported by tests/eval; not this test's
        warnings.warn(f"seed questions answered wrongly even by a single client: {report.known_wrong}", stacklevel=1)
    assert len(report.known_wrong) <= 2, summary
    assert report.asks == CLIENTS * QUESTIONS_EACH
    assert [a["status"] for a in report.adds] == ["added"] * DOCS_ADDED
    listed = {d["doc_id"] for d in Client(load_server, verbose=False).predict(api_name="/list_documents")}
    assert {a["doc_id"] for a in report.adds} <= listed


def test_percentile() -> None:
    bench = _bench()
    values = [float(v) for v in range(1, 101)]
    assert (bench.percentile(values, 50), bench.percentile(values, 95), bench.percentile(values, 100)) == (50, 95, 100)
    assert bench.percentile([7.0], 95) == 7.0
