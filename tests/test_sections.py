"""Documents without pages (Word files, web pages) are cited by the section heading above the
quote: in the pipeline's citation, `qa ask`'s text output and `qa ask --json`.

The real pipeline with the hashing embedder of reliability_helpers and the fast reader (no model),
answering at any confidence: these tests are about where the citation points, not answer quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from reliability_helpers import FAKE_MODEL, fake_pipeline, run_fake_qa

pytestmark = pytest.mark.timeout(120)

QUESTION = "When does the first ferry leave Orvik in the morning?"
BLOCKS = [
    (0, "Ferry plan"),
    "The harbour office wrote this plan for the summer season.",
    (1, "Timetable"),
    "The first ferry leaves Orvik at 06:10 in the morning on weekdays.",
    (1, "Fares"),
    "A return ticket costs 14 euros for adults.",
]


@pytest.fixture
def docx_index(tmp_path: Path, make_docx) -> Path:
    index = tmp_path / "index"
    results = fake_pipeline(index).add([make_docx(tmp_path / "ferry.docx", BLOCKS)])
    assert [r.status for r in results] == ["added"]
    return index


def test_citation_names_the_section_instead_of_a_page(docx_index: Path) -> None:
    pipeline = fake_pipeline(docx_index, min_confidence=0.0)
    answer = pipeline.ask(QUESTION)
    assert answer.answered, answer.message
    (citation,) = answer.citations
    assert "06:10" in citation.quote
    assert citation.page is None and citation.section == "Timetable"
    assert citation.quote == pipeline.document(citation.doc_id).text[citation.start : citation.end]


def test_pdf_citation_has_a_page_and_no_section(tmp_path: Path, make_pdf) -> None:
    pipeline = fake_pipeline(tmp_path / "index", min_confidence=0.0)
    pipeline.add([make_pdf(tmp_path / "ferry.pdf", ["# Timetable\nThe first ferry leaves Orvik at 06:10 in the morning."])])
    (citation,) = pipeline.ask(QUESTION).citations
    assert citation.page == 1 and citation.section is None


def test_cli_ask_shows_the_section_and_json_carries_it(docx_index: Path) -> None:
    common = ("--index", str(docx_index), "--model", FAKE_MODEL)
    env = {"QA_MIN_CONFIDENCE": "0", "QA_READER_MODEL": "none"}
    done = run_fake_qa("ask", *common, QUESTION, **env)
    assert done.returncode == 0, done.stderr
    assert '(ferry.docx, section "Timetable", characters ' in done.stdout, done.stdout
    done = run_fake_qa("ask", "--json", *common, QUESTION, **env)
    assert done.returncode == 0, done.stderr
    (citation,) = json.loads(done.stdout.split("\n", 1)[1])["citations"]  # after the helper's READY line
    assert citation["section"] == "Timetable" and citation["page"] is None
    assert set(citation) == {"doc_id", "title", "source", "page", "section", "start", "end", "quote", "ocr", "table"}
    assert citation["table"] is None
    assert citation["ocr"] is False
