"""The chat's rendering, escaping and upload handling (fast, with a fake pipeline), and the running
app's API end to end with the real pipeline (`-m e2e`)."""

from __future__ import annotations

import html
import re
import shutil
import socket
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from qa.chat import (
    add_uploads,
    build_app,
    confidence_label,
    documents_frame,
    highlight,
    launch,
    neutral,
    render_abstention,
    render_answer,
    render_file_results,
    safe_filename,
)
from qa.config import Config
from qa.types import Answer, Citation, Document, DocumentInfo, FileResult, Passage, Span

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
SEED_FILE = "allies-forge-ahead-on-ukraine-peace-plan.txt"
KALLAS_QUOTE = "At the moment there is no peace to keep"
NOT_FOUND = '<span class="abstained">Not found in the documents.</span>'
EVIL = "<img src=x onerror=alert(1)> <script>alert(2)</script> [x](javascript:alert(1))"

DOC_TEXT = (
    "Talks on peace began in Brussels. The envoy said peace requires a ceasefire first. "
    "Later, the ministers agreed that peace would be monitored by thirty countries."
)


def _span_of(text: str, phrase: str, occurrence: int = 1) -> Span:
    start = -1
    for _ in range(occurrence):
        start = text.index(phrase, start + 1)
    return Span(start, start + len(phrase))


def make_answer(text: str = DOC_TEXT, *, page: int | None = 3, answer_occurrence: int = 2) -> Answer:
    """An answer whose quote is the second sentence and whose answer is the 'peace' inside it."""
    quote = _span_of(text, "The envoy said peace requires a ceasefire first.")
    answer = _span_of(text, "peace", answer_occurrence)
    passage = Passage(1, "d1", "Peace talks", "talks.pdf", page, 0, len(text), text, 0.9)
    citation = Citation("d1", "Peace talks", "talks.pdf", page, quote.start, quote.end, text[quote.start : quote.end])
    return Answer(
        question="What does peace require?",
        answered=True,
        answer=text[answer.start : answer.end],
        quote=citation.quote,
        score=0.82,
        citations=(citation,),
        passages=(passage,),
        answer_span=answer,
    )


def marked(rendered: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r"<mark>(.*?)</mark>", rendered)]


def to_html(markdown: str) -> str:
    """What a CommonMark renderer (raw HTML allowed, like the chatbot before sanitising) makes of it."""
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(markdown)


# ---------------------------------------------------------------- rendering


def test_highlight_marks_exactly_the_answer_span_by_offset() -> None:
    answer = make_answer()
    rendered = render_answer(answer)
    span = answer.answer_span
    assert span is not None
    assert marked(rendered) == [DOC_TEXT[span.start : span.end]]
    # The second "peace" (inside the quote) is marked, not the first one a string search would find.
    before = html.unescape(rendered.split("<mark>")[0].rsplit("\n\n", 1)[-1])
    assert before.endswith("The envoy said ")


def test_highlight_respects_passage_base_offset() -> None:
    text = "xx " + DOC_TEXT
    passage_start = 1000
    span = Span(passage_start + text.index("ceasefire"), passage_start + text.index("ceasefire") + 9)
    assert marked(highlight(text, passage_start, span)) == ["ceasefire"]
    assert "<mark>" not in highlight(text, passage_start, Span(5, 9))  # outside the passage


def test_answer_layout() -> None:
    rendered = render_answer(make_answer())
    blocks = rendered.split("\n\n")
    assert blocks[0] == "**peace**"
    assert blocks[1].startswith("> ") and html.unescape(blocks[1][2:]) == make_answer().quote
    assert "Confidence: **high** (0.82)" in rendered
    assert "**[1]** Peace talks — talks.pdf, p. 3 · chars 34–82" in rendered
    assert "Not found" not in rendered


def test_page_is_left_out_for_documents_without_pages() -> None:
    rendered = render_answer(make_answer(page=None))
    assert "**[1]** Peace talks — talks.pdf · chars" in rendered
    assert "p. " not in rendered


def test_quote_is_marked_when_there_is_no_answer_span() -> None:
    answer = make_answer()
    answer = Answer(**{**answer.__dict__, "answer_span": None, "answer": answer.quote})
    rendered = render_answer(answer)
    assert marked(rendered) == [answer.quote]
    assert rendered.startswith("> ")  # the quote is the answer: not repeated in bold


def test_long_passage_is_clipped_around_the_quote() -> None:
    filler = "Filler sentence about nothing in particular. " * 40
    text = filler + DOC_TEXT + " " + filler
    answer = make_answer(text)
    rendered = render_answer(answer)
    assert rendered.count("…") == 2
    assert marked(rendered) == ["peace"]
    assert len(rendered) < 1500


def test_confidence_labels() -> None:
    assert [confidence_label(s) for s in (0.9, 0.75, 0.6, 0.5, 0.3)] == ["high", "high", "medium", "medium", "low"]


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
    rendered = render_abstention(answer)
    assert render_answer(answer) == rendered
    assert rendered.startswith(f"{NOT_FOUND} I could not find this in the documents.")
    assert "Closest passages looked at" in rendered
    assert "**[1]** Peace talks — talks.pdf, p. 2 · chars 10–60 · score 0.12" in rendered
    assert "The envoy said peace requires a ceasefire" in html.unescape(rendered)
    assert "Confidence" not in rendered and "<mark>" not in rendered


def test_abstention_lists_only_the_closest_few_passages_briefly() -> None:
    passages = tuple(
        Passage(i, "d1", "Brief", "brief.txt", None, i * 1000, i * 1000 + 900, f"Passage {i}. " + "x" * 880, 0.5)
        for i in range(5)
    )
    rendered = render_abstention(Answer(question="q", answered=False, message="m", passages=passages))
    assert "**[3]**" in rendered and "**[4]**" not in rendered
    assert rendered.count(" …") == 3 and len(rendered) < 1400


def test_abstention_on_an_empty_index_shows_only_the_message() -> None:
    answer = Answer(question="q", answered=False, message="No documents yet: add some with the upload box.")
    assert render_answer(answer) == f"{NOT_FOUND} No documents yet: add some with the upload box."


# ---------------------------------------------------------------- escaping


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
    answer = Answer(**{**answer.__dict__, "citations": (*answer.citations, bad)})
    rendered = render_answer(answer)
    assert "<script" not in rendered and "<img" not in rendered and "](" not in rendered
    assert "javascript:" not in rendered
    assert EVIL in html.unescape(rendered)
    out = to_html(rendered)
    assert "<script" not in out and "<img" not in out and "<a " not in out
    assert marked(rendered) == ["peace", "Intro"]  # the second source is another document: its quote is marked


def test_question_and_message_are_escaped() -> None:
    question = "<img src=x onerror=alert(1)> [x](javascript:alert(1))?"
    answer = Answer(question=question, answered=False, message=f"Nothing about {question}")
    rendered = render_answer(answer)
    assert "<img" not in rendered and "javascript:" not in rendered
    assert "<img" not in to_html(neutral(question)) and "<a " not in to_html(neutral(question))


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


@dataclass
class FakePipeline:
    """Just enough of qa.pipeline.Pipeline: text files only, and 'answers' are the best-overlap sentence."""

    config: Config
    docs: dict[str, Document] = field(default_factory=dict)
    added: list[list[Path]] = field(default_factory=list)

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
            self.docs[doc_id] = Document(doc_id, title, Path(path).name, str(path), text, (), "2025-01-01T00:00:00")
            results.append(FileResult(str(path), status, doc_id=doc_id, title=title))
            if progress:
                progress(n, len(paths), Path(path).name)
        return results

    def ask(self, question: str, top_k: int | None = None, doc_ids: Collection[str] | None = None) -> Answer:
        words = set(re.findall(r"\w+", question.lower())) - {"what", "did", "the", "a", "is", "of", "say", "who"}
        best: tuple[int, Document, re.Match[str]] | None = None
        for doc in self.docs.values():
            for m in re.finditer(r"[^.!?\n]+[.!?]?", doc.text):
                hits = len(words & set(re.findall(r"\w+", m.group().lower())))
                if hits and (best is None or hits > best[0]):
                    best = (hits, doc, m)
        if best is None:
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


def test_uploads_refuse_big_and_unsupported_files_before_indexing(fake: FakePipeline, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("x" * 5000)  # the fixture's limit is about 1 KB
    exe = tmp_path / "tool.exe"
    exe.write_text("MZ")
    results = add_uploads(fake, [big, exe])
    assert [(r.path, r.status) for r in results] == [("big.txt", "refused"), ("tool.exe", "refused")]
    assert "larger than the 0.001 MB limit" in results[0].reason
    assert "unsupported file type" in results[1].reason
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


# ---------------------------------------------------------------- the app's API over a fake pipeline


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
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


def test_api_endpoints_over_fake_pipeline(fake_server: tuple[str, FakePipeline], tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    url, pipeline = fake_server
    client = Client(url, verbose=False)
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/chat", "/add_documents", "/list_documents", "/remove_document"} <= names

    reply = client.predict("What does the envoy require?", api_name="/chat")
    assert "peace requires a ceasefire" in reply and "brief.txt" in reply

    note = tmp_path / "Field note <1>.txt"
    note.write_text("Field note\nThe depot holds 900 tonnes of grain.\n")
    report = html.unescape(client.predict([handle_file(str(note))], api_name="/add_documents"))
    assert "**Field_note_1.txt** — added" in report
    listed = client.predict(api_name="/list_documents")
    assert [row[1] for row in listed["data"]] == ["brief.txt", "Field_note_1.txt"]

    uploaded = next(d for d in pipeline.documents() if d.source == "Field_note_1.txt")
    assert Path(uploaded.path).exists()
    after = client.predict(uploaded.doc_id, api_name="/remove_document")
    assert [row[1] for row in after["data"]] == ["brief.txt"]
    assert not Path(uploaded.path).exists()
    with pytest.raises(Exception, match="No document matches"):
        client.predict("no-such-doc", api_name="/remove_document")


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
    if not (SEEDS / SEED_FILE).exists():
        pytest.skip(f"seed document missing: {SEEDS / SEED_FILE}")
    from qa.pipeline import Pipeline

    tmp = tmp_path_factory.mktemp("app")
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
    assert "<mark>" in reply

    pdf = write_pdf(tmp_path / "Zephyr Review.pdf", PDF_PAGES)
    report = html.unescape(client.predict([handle_file(str(pdf))], api_name="/add_documents"))
    assert "Zephyr_Review.pdf** — added" in report
    listed = client.predict(api_name="/list_documents")
    assert "Zephyr_Review.pdf" in [row[1] for row in listed["data"]]

    reply = html.unescape(client.predict(PDF_QUESTION, api_name="/chat"))
    assert PDF_FACT in reply
    assert "Zephyr_Review.pdf, p. 2" in reply

    again = client.predict([handle_file(str(pdf))], api_name="/add_documents")
    assert "already indexed" in again

    off_topic = client.predict("Who won the 1998 football World Cup final?", api_name="/chat")
    assert off_topic.startswith(NOT_FOUND)
