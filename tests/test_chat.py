"""The chat's rendering, escaping, uploads and serving rules (fast, with a fake pipeline), the app's
Gradio API over the fake pipeline (auth, file route), and the API end to end with the real pipeline
(`-m e2e`)."""

from __future__ import annotations

import html
import re
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from qa import followup
from qa.chat.examples import example_candidates, example_questions
from qa.chat.layout import build_app
from qa.chat.render import (
    EVIDENCE_EMPTY,
    answer_document,
    card_id,
    confidence_label,
    documents_frame,
    esc,
    evidence_cards,
    highlight,
    marked_html,
    neutral,
    render_abstention,
    render_answer,
    render_card_document,
    render_document,
    render_evidence,
    render_file_results,
    render_page_view,
)
from qa.chat.server import ServeRefused, exposure_auth, is_loopback, launch, load_credentials, password_check
from qa.chat.uploads import add_uploads, safe_filename
from qa.config import Config
from qa.ingest import content_problem
from qa.types import Answer, Citation, Document, DocumentInfo, FileResult, Passage, Span, TableCell

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
SEED_FILE = "allies-forge-ahead-on-ukraine-peace-plan.txt"
KALLAS_QUOTE = "At the moment there is no peace to keep"
NOT_FOUND = '<span class="abstained">Not found in the documents.</span>'
EVIL = "<img src=x onerror=alert(1)> <script>alert(2)</script> [x](javascript:alert(1)) {{7*7}} ${alert(5)}"

DOC_TEXT = (
    "Talks on peace began in Brussels. The envoy said peace requires a ceasefire first. "
    "Later, the ministers agreed that peace would be monitored by thirty countries."
)


def _span_of(text: str, phrase: str, occurrence: int = 1) -> Span:
    start = -1
    for _ in range(occurrence):
        start = text.index(phrase, start + 1)
    return Span(start, start + len(phrase))


def make_answer(text: str = DOC_TEXT, *, page: int | None = 3, answer_occurrence: int = 2, base: int = 0) -> Answer:
    """An answer whose quote is the second sentence and whose answer is the 'peace' inside it.

    The passage starts at document offset `base` (its text is `text`)."""
    quote = _span_of(text, "The envoy said peace requires a ceasefire first.")
    answer = _span_of(text, "peace", answer_occurrence)
    quote, answer = Span(base + quote.start, base + quote.end), Span(base + answer.start, base + answer.end)
    passage = Passage(1, "d1", "Peace talks", "talks.pdf", page, base, base + len(text), text, 0.9)
    other = Passage(2, "d2", "Other brief", "other.txt", None, 0, 30, "Nothing about the envoy here..", 0.4)
    local = text[quote.start - base : quote.end - base]
    citation = Citation("d1", "Peace talks", "talks.pdf", page, quote.start, quote.end, local)
    return Answer(
        question="What does peace require?",
        answered=True,
        answer=text[answer.start - base : answer.end - base],
        quote=citation.quote,
        score=0.82,
        citations=(citation,),
        passages=(other, passage),
        answer_span=answer,
    )


def marked(rendered: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r"<mark[^>]*>(.*?)</mark>", rendered, re.S)]


def to_html(markdown: str) -> str:
    """What a CommonMark renderer (raw HTML allowed, like the chatbot before sanitising) makes of it."""
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(markdown)


# ---------------------------------------------------------------- the chat's answer card


def test_highlight_marks_exactly_the_answer_span_by_offset() -> None:
    answer = make_answer()
    rendered = render_answer(answer)
    span = answer.answer_span
    assert span is not None
    assert marked(rendered) == [DOC_TEXT[span.start : span.end]]
    # The second "peace" (inside the quote) is marked, not the first one a string search would find.
    quote_line = next(line for line in rendered.split("\n\n") if line.startswith("> "))
    assert html.unescape(quote_line.split("<mark>")[0]) == "> The envoy said "


def test_highlight_respects_passage_base_offset() -> None:
    text = "xx " + DOC_TEXT
    passage_start = 1000
    span = Span(passage_start + text.index("ceasefire"), passage_start + text.index("ceasefire") + 9)
    assert marked(highlight(text, passage_start, span)) == ["ceasefire"]
    assert "<mark>" not in highlight(text, passage_start, Span(5, 9))  # outside the passage


def test_answer_card_layout() -> None:
    rendered = render_answer(make_answer(), number=4)
    blocks = rendered.split("\n\n")
    assert blocks[0] == "**peace**"
    assert blocks[1].startswith("> ") and html.unescape(re.sub("</?mark>", "", blocks[1][2:])) == make_answer().quote
    assert blocks[2] == '<span class="qa-conf qa-conf-high" title="confidence score 0.82">Confidence: high</span>'
    assert blocks[3] == "**Sources**"
    assert blocks[4] == (
        '<a class="qa-cite" href="#ev-4-1" title="Show source 1 in the evidence panel">[1]</a> '
        "Peace talks — talks.pdf, p. 3 · chars 34–82"
    )
    assert "Not found" not in rendered


def test_answer_card_html_survives_as_intended() -> None:
    out = to_html(render_answer(make_answer()))
    assert "<blockquote>" in out and "<strong>peace</strong>" in out
    assert '<a class="qa-cite" href="#ev-1-1"' in out
    assert 'title="confidence score 0.82"' in out


def test_page_is_left_out_for_documents_without_pages() -> None:
    rendered = render_answer(make_answer(page=None))
    assert "Peace talks — talks.pdf · chars" in rendered
    assert "p. " not in rendered


def test_section_is_named_for_documents_without_pages() -> None:
    answer = make_answer(page=None)
    cited = replace(answer.citations[0], source="talks.docx", section="Ceasefire <terms>")
    rendered = render_answer(replace(answer, citations=(cited,)))
    assert "Peace talks — talks.docx, section “Ceasefire &lt;terms&gt;” · chars" in rendered


def test_quote_is_marked_when_there_is_no_answer_span() -> None:
    answer = replace(make_answer(), answer_span=None, answer=make_answer().quote)
    rendered = render_answer(answer)
    assert marked(rendered) == [answer.quote]
    assert rendered.startswith("> ")  # the quote is the answer: not repeated in bold


def test_scope_is_shown_when_the_question_was_limited() -> None:
    rendered = render_answer(make_answer(), scope=["Peace talks (talks.pdf)"])
    assert rendered.endswith("*Searched only in: Peace talks (talks.pdf)*")


def test_confidence_labels() -> None:
    assert [confidence_label(s) for s in (0.9, 0.6, 0.59, 0.3, 0.29, 0.1)] == ["high", "high", "medium", "medium", "low", "low"]


def test_abstention_looks_different_and_lists_closest_passages() -> None:
    passage = Passage(
        4, "d1", "Peace talks", "talks.pdf", 2, 10, 60, "The envoy said peace requires a ceasefire.", 0.12
    )
    answer = Answer(
        question="Who won the 1998 World Cup?",
        answered=False,
        message="I could not find this in the documents.",
        passages=(passage,),
    )
    rendered = render_abstention(answer, 2)
    assert render_answer(answer, 2) == rendered
    assert rendered.startswith(f"{NOT_FOUND} I could not find this in the documents.")
    assert "Closest passages looked at" in rendered
    assert 'href="#ev-2-1"' in rendered and "Peace talks — talks.pdf, p. 2 · score 0.12" in rendered
    assert "The envoy said peace requires a ceasefire" in html.unescape(rendered)
    assert "Confidence" not in rendered and "<mark>" not in rendered


def test_abstention_lists_only_the_closest_few_passages_briefly() -> None:
    passages = tuple(
        Passage(i, "d1", "Brief", "brief.txt", None, i * 1000, i * 1000 + 900, f"Passage {i}. " + "x " * 440, 0.5)
        for i in range(5)
    )
    rendered = render_abstention(Answer(question="q", answered=False, message="m", passages=passages))
    assert "[3]</a>" in rendered and "[4]</a>" not in rendered
    assert rendered.count(" …") == 3 and len(rendered) < 1400


def test_abstention_on_an_empty_index_shows_only_the_message() -> None:
    answer = Answer(question="q", answered=False, message="No documents yet: add some with the upload box.")
    assert render_answer(answer) == f"{NOT_FOUND} No documents yet: add some with the upload box."


# ---------------------------------------------------------------- the evidence panel and document viewer


def test_evidence_cards_put_the_cited_passage_first() -> None:
    cards = evidence_cards(make_answer())
    assert [(c.number, c.doc_id, c.citation is not None) for c in cards] == [(1, "d1", True), (2, "d2", False)]


def test_evidence_marks_the_answer_by_offsets_inside_the_quote() -> None:
    answer = make_answer(base=5000)  # a passage deep inside its document
    panel = render_evidence(answer, 3)
    assert f'id="{card_id(3, 1)}"' in panel and f'id="{card_id(3, 2)}"' in panel
    assert marked(panel) == ["peace"]
    quote = re.search(r'<span class="qa-quote">(.*?)</span>', panel, re.S)
    assert quote and html.unescape(re.sub("</?mark>", "", quote.group(1))) == answer.quote
    # The marked "peace" is the one inside the quote (second occurrence), not the first in the passage.
    assert html.unescape(quote.group(1)).startswith("The envoy said <mark>peace</mark>")
    assert "talks.pdf, p. 3 · chars 5000–5161 · retrieval score 0.90" in panel
    assert "other.txt · chars 0–30 · retrieval score 0.40" in panel
    assert panel.count('class="qa-open"') == 2
    assert "Answer 3: <q>What does peace require?</q>" in panel


def test_marked_html_edge_cases() -> None:
    text = "abc def ghi"
    assert marked_html(text, 10, Span(14, 17), Span(14, 17)) == "abc <mark>def</mark> ghi"
    assert marked_html(text, 10, None, Span(14, 17)) == "abc <mark>def</mark> ghi"  # an answer alone
    assert marked_html(text, 10, Span(0, 3), None) == "abc def ghi"  # outside the text: nothing marked
    assert marked_html(text, 10, Span(14, 17), Span(18, 21)) == "abc <mark>def</mark> ghi"  # answer outside quote
    assert marked_html(text, 10, Span(14, 21), Span(18, 21), "f") == (
        'abc <span class="qa-quote" id="f">def <mark>ghi</mark></span>'
    )


def test_evidence_for_an_abstention_lists_the_closest_passages_unmarked() -> None:
    p = Passage(4, "d1", "Peace talks", "talks.pdf", 2, 10, 60, "The envoy said peace requires a ceasefire.", 0.12)
    panel = render_evidence(Answer(question="Who won?", answered=False, message="m", passages=(p,)), 2)
    assert "Not found in the documents; closest passages looked at" in panel
    assert "<mark" not in panel and 'id="ev-2-1"' in panel
    assert render_evidence(None) == EVIDENCE_EMPTY


def test_answer_card_says_how_a_follow_up_was_read_and_offers_the_alternatives() -> None:
    alternative_citation = Citation("d2", "Other brief", "other.txt", None, 0, 29, "Nothing about the envoy here.")
    alternative = Answer(
        "What does peace require?", True, answer="the envoy", quote=alternative_citation.quote, score=0.41,
        citations=(alternative_citation,), answer_span=Span(14, 23),
    )
    answer = replace(make_answer(), read_as="What does <b>peace</b> require?", alternatives=(alternative,))
    card = render_answer(answer, 2)
    assert card.startswith('<span class="qa-read-as">Read as: “What does &lt;b&gt;peace&lt;/b&gt; require?”</span>')
    also = card[card.index("**Also in the documents**") :]
    assert "> Nothing about <mark>the envoy</mark> here." in also
    assert '<a class="qa-cite" href="#ev-2-2"' in also and "other.txt" in also and "Confidence: medium" in also

    # In the evidence panel the alternative's passage is card 2, its own answer marked.
    panel = render_evidence(answer, 2)
    second = panel[panel.index('id="ev-2-2"') :]
    assert '<span class="qa-badge">also answers</span>' in second[: second.index("</article>")]
    assert marked(second[: second.index("</article>")]) == ["the envoy"]
    assert [c.also for c in evidence_cards(answer)] == [False, True]
    # A plain answer has neither.
    plain = render_answer(make_answer(), 1)
    assert "Read as" not in plain and "Also in the documents" not in plain


def test_evidence_and_viewer_show_hostile_text_literally() -> None:
    text = f"Intro. {EVIL} The envoy said peace requires a ceasefire first. {EVIL} End."
    answer = make_answer(text, answer_occurrence=1)
    answer = replace(answer, question=EVIL, citations=(replace(answer.citations[0], title=EVIL, source=f"{EVIL}.txt"),))
    panel = render_evidence(answer, 1, scope=[EVIL])
    for live in ("<img", "<script", "{{", "${"):
        assert live not in panel
    assert EVIL in html.unescape(panel)
    doc = Document("d1", EVIL, "x.txt", "/x.txt", text)
    viewer = render_document(doc, Span(answer.citations[0].start, answer.citations[0].end), answer.answer_span)
    for live in ("<img", "<script", "{{", "${"):
        assert live not in viewer
    assert html.unescape(esc(EVIL)) == EVIL


def test_document_viewer_shows_the_pdf_page_with_the_highlight() -> None:
    pages = ["Page one text.", "Budget. The project has a budget of 42 million euros.", "Page three."]
    starts, offset = [], 0
    for page in pages:
        starts.append(offset)
        offset += len(page) + 2
    doc = Document("p1", "Review", "review.pdf", "/r.pdf", "\n\n".join(pages), tuple(starts))
    quote = _span_of(doc.text, "The project has a budget of 42 million euros.")
    answer = _span_of(doc.text, "42 million euros")
    viewer = render_document(doc, quote, answer)
    assert "page 2 of 3" in viewer
    assert "Page one" not in viewer and "Page three" not in viewer
    assert marked(viewer) == ["42 million euros"]
    assert 'id="doc-focus"' in viewer and 'class="qa-close"' in viewer


def test_the_viewer_offers_the_page_as_printed_for_pdfs_only() -> None:
    pdf = Document("p1", "Review", "review.pdf", "/r.pdf", "One.\n\nTwo has the fact.", (0, 6))
    viewer = render_document(pdf, _span_of(pdf.text, "Two has the fact."), None, card_number=3)
    assert '<button type="button" class="qa-page-open" data-card="3">Show page 2 as printed</button>' in viewer
    text = Document("t1", "Notes", "notes.txt", "/n.txt", "Two has the fact.")
    assert "qa-page-open" not in render_document(text, Span(0, 4), None, card_number=3)


@pytest.fixture
def printed_review(make_pdf, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Document:
    """A two-page PDF as the index holds it, with pages drawn into a fresh cache."""
    from qa import pageview
    from qa.ingest import load_document

    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(pageview, "_memory", type(pageview._memory)())
    path = make_pdf(tmp_path / "review.pdf", ["Harbour review. Night shifts start at nine.", PDF_PAGES[1]])
    return replace(load_document(path, max_bytes=10**7, parse_timeout_s=60), source=f"{EVIL}.pdf")


def test_page_view_draws_the_cited_page_with_the_quote_and_answer_boxed(printed_review: Document) -> None:
    doc = printed_review
    quote = _span_of(doc.text, "The Zephyr reservoir project has a total budget of 42 million euros")
    view = render_page_view(doc, quote, _span_of(doc.text, PDF_FACT))
    assert "Page 2 of 2 as printed · the quote boxed" in view
    assert re.search(r'<img src="data:image/webp;base64,[A-Za-z0-9+/=]{1000,}" width="\d+" height="\d+" alt=', view)
    assert view.count("qa-box-quote") >= 1 and view.count("qa-box-answer") == 1
    for left, top, width, height in re.findall(r"left:([\d.]+)%;top:([\d.]+)%;width:([\d.]+)%;height:([\d.]+)%", view):
        assert 0 <= float(left) and float(left) + float(width) <= 100 and 0 <= float(top) and float(top) + float(height) <= 100
    assert "<script" not in view and "<img src=x" not in view  # the file name is escaped in the alt text


def test_page_view_of_a_moved_or_changed_file_says_so(printed_review: Document, make_pdf, tmp_path: Path) -> None:
    doc = printed_review
    quote = _span_of(doc.text, "The Zephyr reservoir project")
    make_pdf(Path(doc.path), ["A different report.", "Its second page talks about something else entirely."])
    changed = render_page_view(doc, quote, None)
    assert "the quote was not found on this page" in changed and "qa-box" not in changed and "<img src=" in changed
    Path(doc.path).unlink()
    moved = render_page_view(doc, quote, None)
    assert "cannot be shown: cannot read review.pdf" in moved and "<img" not in moved


def test_document_viewer_clips_long_text_around_the_highlight() -> None:
    text = "x" * 200_000 + " needle " + "y" * 200_000
    doc = Document("t1", "Long", "long.txt", "/l.txt", text)
    span = _span_of(text, "needle")
    viewer = render_document(doc, span, None)
    assert marked(viewer) == ["needle"]
    assert len(viewer) < 70_000 and "of 400008" in viewer


def test_card_document_for_a_removed_document(fake: FakePipeline) -> None:
    assert "has been removed from the index" in render_card_document(fake, make_answer(), 1)


# ---------------------------------------------------------------- escaping in the chat


@pytest.mark.parametrize(
    "payload",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "[x](javascript:alert(1))",
        "![x](https://example.com/a.png)",
        "<https://evil.example>",
        "see www.evil.example or mail a@evil.example or https://evil.example",
        "# heading",
        "- list item",
        "1. ordered",
        "**bold** _em_ `code` ~~strike~~ $$x$$",
    ],
)
def test_neutral_text_is_literal_in_rendered_markdown(payload: str) -> None:
    out = neutral(payload)
    assert html.unescape(out) == payload
    rendered = to_html(f"> {out}\n\n**[1]** {out}\n\n{out}")
    for live in ("<script", "<img", "<a ", "<h1", "<ul", "<ol", "<strong>bold", "<em>", "<code>", "<del>", "<li"):
        assert live not in rendered, (live, rendered)


def test_document_text_with_html_and_links_renders_as_literal_text() -> None:
    text = f"Intro. {EVIL} The envoy said peace requires a ceasefire first. {EVIL} End."
    answer = make_answer(text, answer_occurrence=1)
    bad = Citation("d2", "<script>alert(3)</script>", "<img src=x onerror=alert(4)>.txt", 1, 0, 5, "Intro")
    answer = replace(answer, citations=(*answer.citations, bad), quote=f"{EVIL} {answer.quote}")
    rendered = render_answer(answer)
    assert "<script" not in rendered and "<img" not in rendered and "](" not in rendered
    assert "javascript:" not in rendered
    out = to_html(rendered)
    assert "<script" not in out and "<img" not in out
    assert re.findall(r"<a [^>]*>", out) == [
        '<a class="qa-cite" href="#ev-1-1" title="Show source 1 in the evidence panel">',
        '<a class="qa-cite" href="#ev-1-2" title="Show source 2 in the evidence panel">',
    ]


def test_question_and_message_are_escaped() -> None:
    question = "<img src=x onerror=alert(1)> [x](javascript:alert(1))?"
    answer = Answer(question=question, answered=False, message=f"Nothing about {question}")
    rendered = render_answer(answer)
    assert "<img" not in rendered and "javascript:" not in rendered
    assert "<img" not in to_html(neutral(question)) and "<a " not in to_html(neutral(question))


TABLE_TEXT = (
    "# Checks\n\nBackground checks by state, 2023\n\n| State | Handgun | Long gun |\n| --- | --- | --- |\n"
    "| Texas | 56,941 | 21,550 |\n| Ohio | 31,208 | 17,402 |\n"
)


def make_table_answer(text: str = TABLE_TEXT, row_label: str = "Ohio", column: int = 1) -> tuple[Answer, Document]:
    """A table answer as the reader builds it (qa.read.verdict): the cell, quoted with its row."""
    doc = Document("t1", "Checks", "checks.md", "/tmp/checks.md", text)
    (table,) = doc.tables
    row = next(r for r in table.rows if text[r.cells[0][0] : r.cells[0][1]] == row_label)
    start, end = row.cells[column]
    cell = TableCell(table.caption, row_label, table.column(column), start, end)
    citation = Citation(doc.doc_id, doc.title, doc.source, None, row.start, row.end, text[row.start : row.end],
                        section="Checks", table=cell)
    answer = Answer(question="How many handgun checks did Ohio run?", answered=True, answer=text[start:end],
                    quote=citation.quote, score=0.95, citations=(citation,), answer_span=Span(start, end))
    return answer, doc


def test_a_table_answer_shows_its_row_under_the_column_headers_with_the_cell_marked() -> None:
    answer, doc = make_table_answer()
    rendered = render_answer(answer, 2, document=doc)
    blocks = rendered.split("\n\n")
    assert html.unescape(blocks[0]) == "**31,208**"
    assert blocks[1] == (
        '<table class="qa-table"><caption>Background checks by state, 2023</caption><thead><tr>'
        "<th>State</th><th>Handgun</th><th>Long gun</th></tr></thead><tbody><tr>"
        '<td>Ohio</td><td class="qa-cell"><mark>31,208</mark></td><td>17,402</td></tr></tbody></table>'
    )
    assert blocks[2].startswith('<span class="qa-conf qa-conf-high"') and blocks[3] == "**Sources**"
    assert "<blockquote>" not in to_html(rendered)
    out = to_html(rendered)
    assert '<table class="qa-table">' in out and '<td class="qa-cell"><mark>31,208</mark></td>' in out
    assert marked(rendered) == ["31,208"]


def test_a_table_answer_without_its_document_shows_the_quoted_row_under_its_column() -> None:
    answer, _ = make_table_answer(column=2)
    rendered = render_answer(answer)
    assert (
        "<thead><tr><th></th><th></th><th>Long gun</th></tr></thead><tbody><tr>"
        '<td>Ohio</td><td>31,208</td><td class="qa-cell"><mark>17,402</mark></td></tr></tbody>'
    ) in rendered
    # A document changed since (the row is no longer where the citation says): the quote, not the text.
    moved = Document("t1", "Checks", "checks.md", "/tmp/checks.md", "x" * 20 + TABLE_TEXT)
    assert render_answer(answer, document=moved) == rendered
    # Ordinary answers keep their blockquote.
    assert render_answer(make_answer(), document=moved) == render_answer(make_answer())


def test_a_table_answer_shows_hostile_cells_literally() -> None:
    text = TABLE_TEXT.replace("Ohio", "<img src=x onerror=alert(1)>").replace("Long gun", "{{7*7}} ${alert(5)}")
    answer, doc = make_table_answer(text, row_label="<img src=x onerror=alert(1)>")
    for rendered in (render_answer(answer, document=doc), render_answer(answer)):
        out = to_html(rendered)
        assert "<img" not in out and "{{" not in rendered and "${" not in rendered
        assert "&lt;img src=x onerror=alert(1)&gt;" in rendered


def test_answer_document_is_fetched_for_table_answers_only(fake: FakePipeline) -> None:
    answer, doc = make_table_answer()
    fake.docs[doc.doc_id] = doc
    assert answer_document(fake, answer) is doc
    assert answer_document(fake, make_answer()) is None
    del fake.docs[doc.doc_id]
    assert answer_document(fake, answer) is None  # removed since: the card falls back to the quote


def test_file_results_are_escaped_and_explain_refusals() -> None:
    results = [
        FileResult("/i/uploads/a.pdf", "added", doc_id="1", title="A"),
        FileResult("/i/uploads/b.txt", "unchanged"),
        FileResult("/i/uploads/c.md", "replaced"),
        FileResult("<img src=x onerror=alert(1)>.txt", "refused", reason="no text <b>found</b>"),
    ]
    out = render_file_results(results)
    assert "**a.pdf** — added" in out
    assert "already indexed" in out and "replaced the earlier version" in out
    assert "— refused: no text &lt;b&gt;found&lt;/b&gt;" in out
    assert "<img" not in out
    assert render_file_results([]) == "No files received."


def test_documents_frame() -> None:
    docs = [
        DocumentInfo("d1", "Brief", "brief.pdf", "/x/brief.pdf", 4, 12, 9000, "2025-03-01T10:20:30+00:00"),
        DocumentInfo("d2", "Notes", "notes.txt", "/x/notes.txt", None, 2, 800, "2025-03-02T08:00:00"),
    ]
    frame = documents_frame(docs)
    assert list(frame.columns) == ["Title", "File", "Pages", "Chunks", "Added"]
    assert frame.values.tolist() == [
        ["Brief", "brief.pdf", 4, 12, "2025-03-01 10:20"],
        ["Notes", "notes.txt", "", 2, "2025-03-02 08:00"],
    ]
    assert documents_frame([]).empty


# ---------------------------------------------------------------- example questions


def test_example_candidates_come_from_the_document_sentences() -> None:
    text = (
        "Led by British Defence Secretary John Healey, the summit met. EU's top diplomat, Kaja Kallas, "
        'emphasized: "No peace." While U.S. President Donald Trump pushed, Finland’s Defense Minister '
        "Antti Häkkänen stressed unity. The Zephyr reservoir project has a total budget of 42 million euros. "
        "President Putin said nothing. The report said so."
    )
    assert example_candidates(text) == [
        "What did Kallas emphasize?",
        "Who is the British Defence Secretary?",
        "What is the budget of the Zephyr reservoir project?",
        "What did Häkkänen stress?",
        "Who is the U.S. President?",
        "What did Putin say?",
        "Who is Finland’s Defense Minister?",
    ]
    assert example_candidates("nothing to see here.") == []


def test_example_questions_keep_only_what_the_index_answers(fake: FakePipeline, tmp_path: Path) -> None:
    brief = tmp_path / "brief.txt"
    brief.write_text("Brief\nThe envoy Jones said peace requires a ceasefire.\nThe Orion depot has a capacity of 9 t.\n")
    fake.add([brief])
    # The fake answers by word overlap: "What did Jones say?" finds Jones; the capacity question finds Orion.
    assert example_questions(fake, fake.documents()) == [
        "What did Jones say?",
        "What is the capacity of the Orion depot?",
    ]
    fake.refuse = {"What did Jones say?"}
    assert example_questions(fake, fake.documents()) == ["What is the capacity of the Orion depot?"]


# ---------------------------------------------------------------- uploads


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\windows\\system.ini.txt", "system.ini.txt"),
        ("/abs/path/Brief Q3 (final).PDF", "Brief_Q3_final.pdf"),
        ("..", "document"),
        (".hidden.md", "hidden.md"),
        ("a;rm -rf $HOME.txt", "a_rm_-rf_HOME.txt"),
        ("Sébastien Lecornu – Brief.pdf", "Sébastien_Lecornu_Brief.pdf"),
        ("報告書.txt", "報告書.txt"),
        ("<script>.md", "script.md"),
        ("noext", "noext"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_safe_filename_caps_length_and_keeps_suffix() -> None:
    long_ascii = safe_filename("a" * 500 + ".pdf")
    assert long_ascii.endswith(".pdf") and len(long_ascii.encode()) <= 130
    long_utf8 = safe_filename("é" * 300 + ".txt")
    assert long_utf8.endswith(".txt") and len(long_utf8.encode()) <= 130
    assert long_utf8[:-4] == "é" * len(long_utf8[:-4])  # never cut inside a character


@pytest.mark.parametrize(
    ("suffix", "content", "problem"),
    [
        (".pdf", b"%PDF-1.7\n...", None),
        (".pdf", b"<html>not a pdf</html>", "does not start with %PDF"),
        (".pdf", b"  %PDF-1.7", "does not start with %PDF"),
        (".txt", "Plain text, with accents: é ü 報告".encode(), None),
        (".md", "\ufeff# UTF-8 with BOM".encode("utf-8"), None),
        (".txt", "UTF-16 text".encode("utf-16"), None),
        (".txt", b"MZ\x90\x00\x03\x00\x00\x00", "binary content"),
        (".md", b"PK\x03\x04zipped docx", "binary content"),
        (".txt", b"%PDF-1.4 a renamed pdf", "binary content"),
        (".txt", b"\x89PNG\r\n\x1a\n", "binary content"),
        (".docx", b"PK\x03\x04word/document.xml", None),
        (".docx", b"%PDF-1.7 a renamed pdf", "the content is a PDF"),
        (".docx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "save it as .docx"),
        (".html", b"<!doctype html><p>Page</p>", None),
        (".htm", b"\x7fELF\x02\x01", "binary content"),
    ],
)
def test_upload_content_must_match_the_extension(tmp_path: Path, suffix: str, content: bytes, problem: str | None) -> None:
    path = tmp_path / f"file{suffix}"
    path.write_bytes(content)
    result = content_problem(path, suffix)
    assert (result is None) if problem is None else (result is not None and problem in result)


@dataclass
class FakePipeline:
    """Just enough of qa.pipeline.Pipeline: text files only, and 'answers' are the best-overlap sentence."""

    config: Config
    docs: dict[str, Document] = field(default_factory=dict)
    added: list[list[Path]] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)  # questions it abstains on whatever the documents say
    contexts: list = field(default_factory=list)  # the conversation each question was asked in

    def ensure_seeded(self) -> None:
        if not self.docs:
            self.add(sorted(Path(self.config.seeds_dir).glob("*.txt")))

    def add(self, paths: Sequence[Path], progress: Callable[[int, int, str], None] | None = None) -> list[FileResult]:
        self.added.append(list(paths))
        results = []
        for n, path in enumerate(paths, 1):
            text = Path(path).read_text(errors="replace")
            doc_id = f"doc{abs(hash(str(path))) % 10**8}"
            if not text.strip():
                results.append(FileResult(str(path), "refused", reason="no text found"))
                continue
            old = self.docs.get(doc_id)
            status = "added" if old is None else ("unchanged" if old.text == text else "replaced")
            title = text.strip().splitlines()[0][:80]
            stamp = f"2025-01-01T00:00:{len(self.docs):02d}"
            self.docs[doc_id] = Document(doc_id, title, Path(path).name, str(path), text, (), stamp)
            results.append(FileResult(str(path), status, doc_id=doc_id, title=title))
            if progress:
                progress(n, len(paths), Path(path).name)
        return results

    def ask(
        self,
        question: str,
        top_k: int | None = None,
        doc_ids: Collection[str] | None = None,
        strict: bool | None = None,
        context: followup.Context | None = None,
    ) -> Answer:
        """Follow-ups are read by the real rules (qa.followup), then answered by word overlap."""
        self.contexts.append(context)
        reading = followup.read_question(question, context or followup.Context())
        answer = self._answer(reading.read_as, doc_ids, strict)
        return replace(answer, question=question, read_as=reading.read_as if reading.follow_up else "")

    def context_of(
        self, questions: Sequence[str], doc_ids: Collection[str] | None = None, strict: bool | None = None
    ) -> followup.Context:
        context = followup.Context()
        for question in questions:
            context = followup.after(context, self.ask(question, doc_ids=doc_ids, strict=strict, context=context))
        return context

    def _answer(self, question: str, doc_ids: Collection[str] | None, strict: bool | None) -> Answer:
        words = set(re.findall(r"\w+", question.lower())) - {"what", "did", "the", "a", "is", "of", "say", "who"}
        best: tuple[int, Document, re.Match[str]] | None = None
        for doc in self.docs.values():
            if doc_ids is not None and doc.doc_id not in doc_ids:
                continue
            for m in re.finditer(r"[^.!?\n]+[.!?]?", doc.text):
                hits = len(words & set(re.findall(r"\w+", m.group().lower())))
                if hits and (best is None or hits > best[0]):
                    best = (hits, doc, m)
        if best is None or question in self.refuse or (strict and best[0] < 2):  # strict: 2 shared words
            return Answer(question=question, answered=False, message="I could not find this in the documents.")
        _, doc, m = best
        start, end = m.start() + len(m.group()) - len(m.group().lstrip()), m.end()
        passage = Passage(0, doc.doc_id, doc.title, doc.source, None, 0, len(doc.text), doc.text, 0.9)
        citation = Citation(doc.doc_id, doc.title, doc.source, None, start, end, doc.text[start:end])
        return Answer(
            question=question,
            answered=True,
            answer=citation.quote,
            quote=citation.quote,
            score=0.9,
            citations=(citation,),
            passages=(passage,),
            answer_span=Span(start, end),
        )

    def documents(self) -> list[DocumentInfo]:
        return [
            DocumentInfo(d.doc_id, d.title, d.source, d.path, d.pages, 1, len(d.text), d.added_at)
            for d in self.docs.values()
        ]

    def document(self, doc_id: str) -> Document:
        return self.docs[doc_id]

    def remove(self, doc_id_or_path: str) -> list[DocumentInfo]:
        """Like the real one: returns what it removed, nothing if nothing matched."""
        removed = [d for d in self.documents() if doc_id_or_path in (d.doc_id, d.path, d.source)]
        for d in removed:
            del self.docs[d.doc_id]
        return removed


@pytest.fixture
def fake(tmp_path: Path) -> FakePipeline:
    return FakePipeline(Config(index_dir=tmp_path / "index", seeds_dir=tmp_path / "seeds", max_file_mb=0.001))


def test_uploads_are_copied_under_sanitised_names(fake: FakePipeline, tmp_path: Path) -> None:
    gradio_tmp = tmp_path / "gradio" / "3f2a9c"
    gradio_tmp.mkdir(parents=True)
    src = gradio_tmp / "Brief (v2) – Sébastien.txt"
    src.write_text("Brief title\nThe budget is 4 million euros.\n")
    progress: list[tuple[int, int, str]] = []
    results = add_uploads(fake, [src], lambda *a: progress.append(a))
    dest = tmp_path / "index" / "uploads" / "Brief_v2_Sébastien.txt"
    assert [r.status for r in results] == ["added"]
    assert fake.added == [[dest]] and dest.read_text() == src.read_text()
    assert fake.documents()[0].source == "Brief_v2_Sébastien.txt"
    assert progress == [(1, 1, "Brief_v2_Sébastien.txt")]
    assert [p.name for p in (tmp_path / "index" / "uploads").iterdir()] == [dest.name]  # no backup left


def test_uploads_refuse_big_unsupported_and_mislabelled_files_before_indexing(
    fake: FakePipeline, tmp_path: Path
) -> None:
    big = tmp_path / "big.txt"
    big.write_text("x" * 5000)  # the fixture's limit is about 1 KB
    exe = tmp_path / "tool.exe"
    exe.write_text("MZ")
    fake_pdf = tmp_path / "report.pdf"
    fake_pdf.write_text("<html>hello</html>")
    binary = tmp_path / "notes.txt"
    binary.write_bytes(b"\x00\x01\x02binary")
    results = add_uploads(fake, [big, exe, fake_pdf, binary])
    assert [(r.path, r.status) for r in results] == [
        ("big.txt", "refused"),
        ("tool.exe", "refused"),
        ("report.pdf", "refused"),
        ("notes.txt", "refused"),
    ]
    assert "larger than the 0.001 MB limit" in results[0].reason
    assert "unsupported file type" in results[1].reason
    assert "does not start with %PDF" in results[2].reason
    assert "binary content" in results[3].reason
    assert fake.added == [] and not list((tmp_path / "index" / "uploads").iterdir())


def test_refused_upload_restores_the_earlier_file(fake: FakePipeline, tmp_path: Path) -> None:
    good, empty = tmp_path / "a" / "notes.txt", tmp_path / "b" / "notes.txt"
    for path, text in ((good, "Notes\nAll good."), (empty, "   ")):
        path.parent.mkdir()
        path.write_text(text)
    assert [r.status for r in add_uploads(fake, [good])] == ["added"]
    assert [r.status for r in add_uploads(fake, [empty])] == ["refused"]
    assert (tmp_path / "index" / "uploads" / "notes.txt").read_text() == "Notes\nAll good."
    fresh = tmp_path / "c" / "empty.txt"
    fresh.parent.mkdir()
    fresh.write_text("")
    assert [r.status for r in add_uploads(fake, [fresh])] == ["refused"]
    assert not (tmp_path / "index" / "uploads" / "empty.txt").exists()


def test_same_name_twice_in_one_upload_is_refused_once(fake: FakePipeline, tmp_path: Path) -> None:
    first, second = tmp_path / "x" / "a.txt", tmp_path / "y" / "a.txt"
    for path in (first, second):
        path.parent.mkdir()
        path.write_text(f"Doc\n{path.parent.name}")
    results = add_uploads(fake, [first, second])
    assert sorted(r.status for r in results) == ["added", "refused"]


# ---------------------------------------------------------------- serving: bind address and authentication


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True), ("::1", True), ("[::1]", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.5", False), ("example.org", False)],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_exposed_server_needs_auth_or_insecure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = Config(index_dir=tmp_path)
    assert exposure_auth("127.0.0.1", config) is None
    with pytest.raises(ServeRefused, match="refusing to serve on 0.0.0.0 without authentication.*QA_AUTH"):
        exposure_auth("0.0.0.0", config)
    assert exposure_auth("0.0.0.0", config, insecure=True) is None
    assert "WARNING" in capsys.readouterr().err
    check = exposure_auth("0.0.0.0", replace(config, auth="alice:s3cret:with:colons"))
    assert check is not None and check("alice", "s3cret:with:colons") and not check("alice", "s3cret")
    assert not check("bob", "s3cret:with:colons") and not check("", "")


def test_credentials_file(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("# team\nalice:one\n\nbob:two\n")
    config = Config(index_dir=tmp_path, auth="carol:three", auth_file=str(users))
    assert load_credentials(config) == [("carol", "three"), ("alice", "one"), ("bob", "two")]
    check = password_check(load_credentials(config))
    assert check("bob", "two") and check("carol", "three") and not check("bob", "one")
    users.write_text("alice\n")
    with pytest.raises(ServeRefused, match="line 1: expected user:password"):
        load_credentials(config)
    users.write_text("# nobody\n")
    with pytest.raises(ServeRefused, match="holds no user:password lines"):
        load_credentials(config)
    with pytest.raises(ServeRefused, match="cannot read QA_AUTH_FILE"):
        load_credentials(replace(config, auth_file=str(tmp_path / "missing")))
    with pytest.raises(ServeRefused, match="QA_AUTH: expected user:password"):
        load_credentials(Config(auth="no-colon"))
    assert "carol" not in repr(config) and "three" not in repr(config)


def test_qa_serve_refuses_an_open_public_bind(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    from qa.cli import main

    for name in ("QA_AUTH", "QA_AUTH_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("QA_INDEX", str(tmp_path / "index"))
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "qa serve: refusing to serve on 0.0.0.0 without authentication" in err and "--insecure" in err
    monkeypatch.setenv("QA_AUTH_FILE", str(tmp_path / "missing"))
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert not (tmp_path / "index").exists()  # refused before touching the index or loading the model


# ---------------------------------------------------------------- the app's API over a fake pipeline


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def fake_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, FakePipeline]]:
    tmp = tmp_path_factory.mktemp("fake-app")
    (tmp / "seeds").mkdir()
    (tmp / "seeds" / "brief.txt").write_text("Brief\nThe envoy said peace requires a ceasefire.\n")
    pipeline = FakePipeline(Config(index_dir=tmp / "index", seeds_dir=tmp / "seeds"))
    pipeline.ensure_seeded()
    demo = build_app(pipeline)
    port = free_port()
    launch(demo, pipeline.config, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", pipeline
    finally:
        demo.close()


def test_api_chat_is_a_conversation_per_client_and_ask_json_takes_its_history(
    fake_server: tuple[str, FakePipeline],
) -> None:
    from gradio_client import Client

    url, _ = fake_server
    first, second = Client(url, verbose=False), Client(url, verbose=False)
    assert "Read as" not in first.predict("What did the envoy say?", api_name="/chat")
    follow_up = html.unescape(first.predict("What did he say about peace?", api_name="/chat"))
    assert "Read as: “What did the envoy say about peace?”" in follow_up  # "he": what it was about
    assert "Read as" not in second.predict("What did he say about peace?", api_name="/chat")  # its own session

    alone = first.predict(question="What did he say about peace?", api_name="/ask_json")
    assert "read_as" not in alone
    after = first.predict(question="What did he say about peace?", history=["What did the envoy say?"], api_name="/ask_json")
    assert after["read_as"] == "What did the envoy say about peace?" and after["question"] == "What did he say about peace?"


def test_api_endpoints_over_fake_pipeline(fake_server: tuple[str, FakePipeline], tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    url, pipeline = fake_server
    client = Client(url, verbose=False)
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/chat", "/ask_json", "/add_documents", "/list_documents", "/remove_document"} == set(api)

    reply = client.predict("What does the envoy require?", api_name="/chat")
    assert "peace requires a ceasefire" in reply and "brief.txt" in reply and "<mark>" in reply
    as_json = client.predict("What does the envoy require?", api_name="/ask_json")
    assert as_json["answered"] is True and as_json["citations"][0]["source"] == "brief.txt"
    assert as_json["quote"] == "The envoy said peace requires a ceasefire."
    assert set(as_json) >= {"question", "answered", "answer", "quote", "score", "citations", "passages"}
    # The fake's strict mode wants 2 shared words; "envoy" is the only one.
    assert client.predict("What does the envoy require?", None, None, True, api_name="/ask_json")["answered"] is False
    assert "could not find" in client.predict("What does the envoy require?", None, True, api_name="/chat")

    note = tmp_path / "Field note <1>.txt"
    note.write_text("Field note\nThe depot holds 900 tonnes of grain.\n")
    bogus = tmp_path / "scan.pdf"
    bogus.write_text("not really a pdf")
    results = client.predict([handle_file(str(note)), handle_file(str(bogus))], api_name="/add_documents")
    assert [(r["file"], r["status"]) for r in results] == [("scan.pdf", "refused"), ("Field_note_1.txt", "added")]
    assert "%PDF" in results[0]["reason"] and results[1]["doc_id"]
    from gradio.utils import get_upload_folder

    # Gradio's temp copies are gone: the index's copy under a sanitised name is the only one left.
    assert not [p for p in Path(get_upload_folder()).rglob("*") if p.name in (note.name, bogus.name)]
    listed = client.predict(api_name="/list_documents")
    assert [d["source"] for d in listed] == ["brief.txt", "Field_note_1.txt"]
    assert set(listed[0]) == {"doc_id", "title", "source", "pages", "chunks", "chars", "added_at"}

    # Asking only within one document.
    field_id = results[1]["doc_id"]
    brief_id = listed[0]["doc_id"]
    assert "900 tonnes" in client.predict("How much grain does the depot hold?", [field_id], api_name="/chat")
    limited = client.predict("How much grain does the depot hold?", [brief_id], api_name="/ask_json")
    assert limited["answered"] is False
    assert "Searched only in: Brief (brief.txt)" in client.predict("grain", [brief_id], api_name="/chat")

    uploaded = next(d for d in pipeline.documents() if d.source == "Field_note_1.txt")
    assert Path(uploaded.path).exists()
    removed = client.predict(uploaded.doc_id, api_name="/remove_document")
    assert removed == [{"doc_id": uploaded.doc_id, "title": "Field note", "source": "Field_note_1.txt"}]
    assert [d["source"] for d in client.predict(api_name="/list_documents")] == ["brief.txt"]
    assert not Path(uploaded.path).exists()
    with pytest.raises(Exception, match="No document matches"):
        client.predict("no-such-doc", api_name="/remove_document")


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_file_route_serves_nothing_from_disk(fake_server: tuple[str, FakePipeline], tmp_path: Path) -> None:
    url, pipeline = fake_server
    note = tmp_path / "kept.txt"
    note.write_text("Kept\nA private note.\n")
    add_uploads(pipeline, [note])
    index_files = [p for p in Path(pipeline.config.index_dir).rglob("*") if p.is_file()]
    assert index_files
    # Files elsewhere on disk, the index folder's files, this repository's files, and URLs to fetch.
    targets = ["/etc/passwd", "/etc/hostname", *map(str, index_files), str(ROOT / "pyproject.toml"), "pyproject.toml",
               "../../etc/passwd", "http://127.0.0.1:1/x"]
    for target in targets:
        for route in ("gradio_api/file=", "file="):
            status = _http_status(url + route + urllib.parse.quote(target))
            assert status in (403, 404), (route, target, status)
    # The route itself works: a file uploaded through Gradio is served back (so the 403s above mean refusal).
    import httpx

    uploaded = httpx.post(url + "gradio_api/upload", files={"files": ("up.txt", b"hello")}, timeout=10).json()[0]
    assert _http_status(url + "gradio_api/file=" + urllib.parse.quote(uploaded)) == 200


def test_auth_is_required_when_configured(tmp_path: Path) -> None:
    from gradio_client import Client

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "brief.txt").write_text("Brief\nThe envoy said peace requires a ceasefire.\n")
    config = Config(index_dir=tmp_path / "index", seeds_dir=seeds, auth="alice:wonder land")
    pipeline = FakePipeline(config)
    pipeline.ensure_seeded()
    host = "127.0.0.2"  # still loopback: a second address shows auth is not tied to 127.0.0.1
    try:
        port = free_port(host)
    except OSError:
        host, port = "127.0.0.1", free_port()
    demo = build_app(pipeline)
    launch(demo, config, host=host, port=port, prevent_thread_lock=True, quiet=True, auth=exposure_auth(host, config))
    url = f"http://{host}:{port}/"
    try:
        with pytest.raises(Exception):  # noqa: B017 (gradio_client raises different errors across versions)
            Client(url, verbose=False).predict("What does the envoy require?", api_name="/chat")
        with pytest.raises(Exception):  # noqa: B017
            Client(url, auth=("alice", "wrong"), verbose=False)
        assert _http_status(url + "gradio_api/info") in (401, 403)
        client = Client(url, auth=("alice", "wonder land"), verbose=False)
        assert "ceasefire" in client.predict("What does the envoy require?", api_name="/chat")
    finally:
        demo.close()


# ---------------------------------------------------------------- end to end with the real pipeline


def write_pdf(path: Path, pages: Sequence[str]) -> Path:
    """A text-layer PDF, one paragraph per page."""
    canvas = pytest.importorskip("reportlab.pdfgen.canvas")
    pdf = canvas.Canvas(str(path))
    for text in pages:
        y = 800
        for line in re.findall(r".{1,90}(?:\s|$)", text):
            pdf.drawString(60, y, line.strip())
            y -= 16
        pdf.showPage()
    pdf.save()
    return path


PDF_PAGES = [
    (
        "Harbour Logistics Review. This review covers shipping schedules at the northern harbour and the "
        "staffing of the night shift for the coming season."
    ),
    (
        "Budget. The Zephyr reservoir project has a total budget of 42 million euros, approved by the "
        "regional council in March."
    ),
]
PDF_QUESTION = "What is the budget of the Zephyr reservoir project?"
PDF_FACT = "42 million euros"


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app on a free port, over a fresh index built from the seeds (model loaded once)."""
    yield from seeded_app(tmp_path_factory.mktemp("app"))


def seeded_app(tmp: Path) -> Iterator[str]:
    """Serve the real app on a free loopback port over a fresh seeded index in `tmp`; yield its URL."""
    if not (SEEDS / SEED_FILE).exists():
        pytest.skip(f"seed document missing: {SEEDS / SEED_FILE}")
    from qa.pipeline import Pipeline

    seeds = tmp / "seeds"
    shutil.copytree(SEEDS, seeds)
    pipeline = Pipeline(Config(index_dir=tmp / "index", seeds_dir=seeds))
    pipeline.ensure_seeded()
    demo = build_app(pipeline)
    port = free_port()
    launch(demo, pipeline.config, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_e2e_chat_upload_and_abstain(real_server: str, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    client = Client(real_server, verbose=False)
    reply = client.predict("What did Kallas say?", api_name="/chat")
    assert KALLAS_QUOTE in html.unescape(reply)
    assert SEED_FILE in html.unescape(reply)
    assert marked(reply) == [KALLAS_QUOTE]
    as_json = client.predict("What did Kallas say?", api_name="/ask_json")
    assert as_json["answered"] and as_json["answer"] == KALLAS_QUOTE
    citation = as_json["citations"][0]
    assert citation["source"] == SEED_FILE
    assert (SEEDS / SEED_FILE).read_text(encoding="utf-8")[citation["start"] : citation["end"]] == citation["quote"]

    pdf = write_pdf(tmp_path / "Zephyr Review.pdf", PDF_PAGES)
    results = client.predict([handle_file(str(pdf))], api_name="/add_documents")
    assert [(r["file"], r["status"]) for r in results] == [("Zephyr_Review.pdf", "added")]
    listed = client.predict(api_name="/list_documents")
    assert "Zephyr_Review.pdf" in [d["source"] for d in listed]

    reply = html.unescape(client.predict(PDF_QUESTION, api_name="/chat"))
    assert PDF_FACT in reply
    assert "Zephyr_Review.pdf, p. 2" in reply

    again = client.predict([handle_file(str(pdf))], api_name="/add_documents")
    assert [r["status"] for r in again] == ["unchanged"]

    off_topic = client.predict("Who won the 1998 football World Cup final?", api_name="/chat")
    assert off_topic.startswith(NOT_FOUND)


def test_the_chat_api_on_milvus_lite(tmp_path: Path) -> None:
    """QA_STORE=milvus under the chat: the real pipeline (hashing embedder, fast reader) over a
    Milvus Lite file answers, adds an upload, lists and removes through the API."""
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    from gradio_client import Client, handle_file
    from reliability_helpers import fake_pipeline

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "brief.txt").write_text("Brief\nThe envoy said peace requires a ceasefire. Talks resume in May.\n")
    pipeline = fake_pipeline(tmp_path / "index", store="milvus", seeds_dir=seeds)
    pipeline.ensure_seeded()
    demo = build_app(pipeline)
    port = free_port()
    launch(demo, pipeline.config, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        answer = client.predict("What does the envoy say peace requires?", api_name="/ask_json")
        assert answer["quote"] == "The envoy said peace requires a ceasefire." and answer["citations"][0]["source"] == "brief.txt"
        note = tmp_path / "depot.txt"
        note.write_text("Depot note\nThe depot holds 900 tonnes of grain.\n")
        added = client.predict([handle_file(str(note))], api_name="/add_documents")
        assert [(r["file"], r["status"]) for r in added] == [("depot.txt", "added")]
        within = client.predict("How many tonnes of grain does the depot hold?", [added[0]["doc_id"]], api_name="/ask_json")
        assert within["answer"] == "900" and within["citations"][0]["source"] == "depot.txt"
        assert [d["source"] for d in client.predict(api_name="/list_documents")] == ["brief.txt", "depot.txt"]
        client.predict(added[0]["doc_id"], api_name="/remove_document")
        assert [d["source"] for d in client.predict(api_name="/list_documents")] == ["brief.txt"]
    finally:
        demo.close()
    assert (tmp_path / "index" / "milvus.db").exists() and not (tmp_path / "index" / "CURRENT").exists()
