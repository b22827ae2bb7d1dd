"""The browser chat: a Gradio 6 app over a `Pipeline`, plus the pure functions that render its answers.

Everything a document or a user wrote is shown through `neutral()`, which HTML-escapes it and defuses
Markdown, so a briefing that contains `<script>` or `[x](javascript:...)` shows as literal text.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, Protocol

import gradio as gr
import pandas as pd

from qa.config import Config
from qa.types import Answer, Citation, Document, DocumentInfo, FileResult, Passage, Span

ALLOWED_SUFFIXES = (".pdf", ".txt", ".md")
EXAMPLES = [
    "What did Kallas say?",
    "Who led the summit at NATO headquarters?",
    "What are the coalition's objectives?",
]
DOC_HEADERS = ["Title", "File", "Pages", "Chunks", "Added"]
# Context shown on each side of a quote inside its passage, in characters.
CONTEXT_CHARS = 280
# An abstention lists this many of the closest passages, each cut to EXCERPT_CHARS.
CLOSEST_SHOWN = 3
EXCERPT_CHARS = 240
MAX_NAME_BYTES = 120
CSS = """
#chatbot mark { background: #fde68a; color: inherit; padding: 0 2px; border-radius: 2px; }
#chatbot blockquote { border-left: 3px solid #93c5fd; margin: 0.4em 0; padding-left: 0.8em; }
#chatbot .abstained { color: #b45309; font-weight: 700; }
"""


class PipelineLike(Protocol):
    """What the app needs from `qa.pipeline.Pipeline`; lets tests use a small fake."""

    config: Config

    def ensure_seeded(self) -> None: ...

    def add(
        self, paths: Sequence[Path], progress: Callable[[int, int, str], None] | None = None
    ) -> list[FileResult]: ...

    def ask(self, question: str, top_k: int | None = None, doc_ids: Collection[str] | None = None) -> Answer: ...

    def documents(self) -> list[DocumentInfo]: ...

    def document(self, doc_id: str) -> Document: ...

    def remove(self, doc_id_or_path: str) -> list[DocumentInfo]: ...


# ---------------------------------------------------------------- rendering (pure functions)

# Inline Markdown/LaTeX syntax and autolink triggers (`http://`, `www.`, `a@b`), made inert as entities.
_MD_INLINE = re.compile(r"[\\`*_\[\]$~|@]|:(?=\S)|(?<=[wW]{3})\.")
# Block syntax only counts at the start of a line: headings, list markers, ordered-list numbers.
_MD_LINE_START = re.compile(r"^[#+\-0-9]")


def _entity(match: re.Match[str]) -> str:
    return f"&#{ord(match.group())};"


def neutral(text: str) -> str:
    """Untrusted text as inert Markdown: one line, HTML-escaped, no Markdown syntax left live.

    Whitespace runs collapse to one space so document line breaks cannot start Markdown blocks.
    `html.unescape(neutral(s))` gives back `s` with its whitespace collapsed.
    """
    flat = html.escape(re.sub(r"\s+", " ", text), quote=True)
    return _MD_LINE_START.sub(_entity, _MD_INLINE.sub(_entity, flat))


def confidence_label(score: float) -> str:
    """Coarse words for the reader's score, so users need not interpret raw numbers."""
    if score >= 0.75:
        return "high"
    if score >= 0.5:
        return "medium"
    return "low"


def highlight(text: str, base: int, span: Span | None) -> str:
    """`text` (starting at document offset `base`) neutralised, with `span` wrapped in <mark>.

    Works by offsets, never by searching for the answer string, so a repeated phrase is marked where
    the reader found it. A span not wholly inside the text is not marked.
    """
    if span is None or not (base <= span.start < span.end <= base + len(text)):
        return neutral(text)
    start, end = span.start - base, span.end - base
    return neutral(text[:start]) + "<mark>" + neutral(text[start:end]) + "</mark>" + neutral(text[end:])


def _window(text: str, base: int, focus: Span, context: int = CONTEXT_CHARS) -> tuple[str, int, str, str]:
    """Clip a passage to the quote plus some context: (text, its offset, leading and trailing ellipsis)."""
    lo = max(0, focus.start - base - context)
    hi = min(len(text), focus.end - base + context)
    return text[lo:hi], base + lo, "… " if lo > 0 else "", " …" if hi < len(text) else ""


def _source_line(n: int, title: str, source: str, page: int | None) -> str:
    where = f"{neutral(source)}, p. {page}" if page is not None else neutral(source)
    return f"**[{n}]** {neutral(title)} — {where}"


def _containing_passage(citation: Citation, passages: Sequence[Passage]) -> Passage | None:
    for passage in passages:
        if passage.doc_id == citation.doc_id and passage.start <= citation.start < passage.end:
            return passage
    return None


def render_citation(n: int, citation: Citation, answer: Answer) -> str:
    """One numbered source: where it is, then the passage around the quote with the answer marked."""
    passage = _containing_passage(citation, answer.passages)
    text, base = (passage.text, passage.start) if passage else (citation.quote, citation.start)
    quote_span = Span(citation.start, citation.end)
    text, base, pre, post = _window(text, base, quote_span)
    # answer_span carries no doc_id: it belongs to the first citation's document.
    in_answer_doc = citation.doc_id == answer.citations[0].doc_id
    mark = answer.answer_span if in_answer_doc and answer.answer_span is not None else quote_span
    return (
        f"{_source_line(n, citation.title, citation.source, citation.page)} "
        f"· chars {citation.start}–{citation.end}\n\n"
        f"{pre}{highlight(text, base, mark)}{post}"
    )


def render_answer(answer: Answer) -> str:
    """The chat reply: bold short answer, the verbatim quote, confidence, then numbered sources."""
    if not answer.answered:
        return render_abstention(answer)
    # With no short answer inside the quote, the quote itself is the answer: show it once.
    short = [f"**{neutral(answer.answer)}**"] if answer.answer and answer.answer != answer.quote else []
    parts = [
        *short,
        f"> {neutral(answer.quote)}",
        f"Confidence: **{confidence_label(answer.score)}** ({answer.score:.2f})",
        "**Sources**",
    ]
    parts += [render_citation(n, c, answer) for n, c in enumerate(answer.citations, 1)]
    return "\n\n".join(parts)


def render_abstention(answer: Answer) -> str:
    """An abstention looks unlike an answer and shows what was searched, so users can judge it."""
    parts = [f'<span class="abstained">Not found in the documents.</span> {neutral(answer.message)}']
    if answer.passages:
        parts.append("*Closest passages looked at:*")
        for n, p in enumerate(answer.passages[:CLOSEST_SHOWN], 1):
            text, _, pre, post = _window(p.text, p.start, Span(p.start, p.start), EXCERPT_CHARS)
            parts.append(
                f"{_source_line(n, p.title, p.source, p.page)} · chars {p.start}–{p.end} "
                f"· score {p.score:.2f}\n\n{pre}{neutral(text)}{post}"
            )
    return "\n\n".join(parts)


_STATUS_TEXT = {
    "added": "added",
    "replaced": "replaced the earlier version",
    "unchanged": "already indexed (unchanged)",
    "refused": "refused",
}


def render_file_results(results: Sequence[FileResult]) -> str:
    """One line per uploaded file, with the reason for any refusal."""
    if not results:
        return "No files received."
    lines = []
    for r in results:
        reason = f": {neutral(r.reason)}" if r.status == "refused" and r.reason else ""
        lines.append(f"- **{neutral(Path(r.path).name)}** — {_STATUS_TEXT.get(r.status, r.status)}{reason}")
    return "\n".join(lines)


def documents_frame(docs: Sequence[DocumentInfo]) -> pd.DataFrame:
    """The documents panel's rows (plain strings: the Dataframe shows them as text, not HTML)."""
    rows = [
        [d.title, d.source, "" if d.pages is None else d.pages, d.chunks, d.added_at[:16].replace("T", " ")]
        for d in docs
    ]
    return pd.DataFrame(rows, columns=DOC_HEADERS)


# ---------------------------------------------------------------- uploads

_UNSAFE_NAME = re.compile(r"[^\w.\-]+")  # \w is Unicode-aware: non-ASCII letters survive


def safe_filename(name: str) -> str:
    """A file name safe to create in the uploads folder: basename only, no traversal, capped length.

    Keeps the (lower-cased) suffix so the parser still knows the type, and non-ASCII letters so
    users recognise their file; everything else unusual becomes `_`.
    """
    base = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    suffix = _UNSAFE_NAME.sub("", suffix).lower()[:10]
    stem = _UNSAFE_NAME.sub("_", stem).strip("._-") or "document"
    while len(stem.encode()) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return f"{stem}.{suffix}" if suffix else stem


def upload_dir(config: Config) -> Path:
    return Path(config.index_dir) / "uploads"


def add_uploads(
    pipeline: PipelineLike,
    files: Sequence[str | Path],
    progress: Callable[[int, int, str], None] | None = None,
) -> list[FileResult]:
    """Copy uploads under sanitised names into `<index_dir>/uploads/` and index them.

    Gradio's temp copies vanish, and their names must not become document names. A refused file
    leaves the uploads folder as it was (an earlier good version at that name is restored).
    """
    dest_dir = upload_dir(pipeline.config)
    dest_dir.mkdir(parents=True, exist_ok=True)
    limit = pipeline.config.max_file_mb * 1024 * 1024
    early: list[FileResult] = []
    staged: dict[Path, Path | None] = {}  # destination -> backup of what it replaced
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".backup-") as backups:
        for src in map(Path, files):
            dest = dest_dir / safe_filename(src.name)
            if dest.suffix not in ALLOWED_SUFFIXES:
                reason = f"unsupported file type; use {', '.join(ALLOWED_SUFFIXES)}"
            elif src.stat().st_size > limit:
                reason = f"larger than the {pipeline.config.max_file_mb:g} MB limit"
            elif dest in staged:
                reason = "another file in this upload has the same name"
            else:
                backup = Path(backups) / dest.name if dest.exists() else None
                if backup:
                    shutil.copy2(dest, backup)
                shutil.copyfile(src, dest)
                staged[dest] = backup
                continue
            early.append(FileResult(path=dest.name, status="refused", reason=reason))
        results = pipeline.add(list(staged), progress=progress) if staged else []
        for r in results:
            dest = Path(r.path)
            if r.status == "refused" and dest in staged:
                backup = staged[dest]
                if backup:
                    shutil.copy2(backup, dest)
                else:
                    dest.unlink(missing_ok=True)
    return early + results


# ---------------------------------------------------------------- the app


def build_app(pipeline: PipelineLike) -> gr.Blocks:
    """The chat, upload box and documents panel, with stable API endpoints for scripts and tests."""
    # Gradio reads this at each call: no telemetry from a tool that handles private briefings.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

    def chat(question: str) -> str:
        """Answer a question from the indexed documents; returns the rendered answer (Markdown)."""
        return render_answer(pipeline.ask(question.strip()))

    def show_question(question: str, history: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]], str]:
        if not question.strip():
            return "", history, ""
        return "", [*history, {"role": "user", "content": neutral(question)}], question

    def answer_question(pending: str, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not pending.strip():
            return history
        return [*history, {"role": "assistant", "content": chat(pending)}]

    def add_documents(files: list[str] | None, progress: gr.Progress = gr.Progress()) -> str:  # noqa: B008 (how Gradio injects progress)
        """Index uploaded .pdf/.txt/.md files; returns one line per file (added, unchanged, refused...)."""

        def report(done: int, total: int, name: str) -> None:
            progress((done, total), desc=f"Indexing {name}")

        return render_file_results(add_uploads(pipeline, files or [], report))

    def list_documents() -> pd.DataFrame:
        """The indexed documents: title, file, pages, chunks, when added."""
        return documents_frame(pipeline.documents())

    def remove_document(doc_id_or_path: str) -> pd.DataFrame:
        """Remove a document by id, path or file name; returns the documents left."""
        key = (doc_id_or_path or "").strip()
        if not key:
            raise gr.Error("Choose a document to remove.")
        removed = pipeline.remove(key)
        if not removed:
            raise gr.Error(f"No document matches {key!r}.")
        # Our copy of an uploaded file goes with it; files added from elsewhere are not ours to delete.
        uploads = upload_dir(pipeline.config).resolve()
        for info in removed:
            if Path(info.path).resolve().parent == uploads:
                Path(info.path).unlink(missing_ok=True)
        return list_documents()

    def document_choices() -> gr.Dropdown:
        return gr.Dropdown(choices=[(f"{d.title} ({d.source})", d.doc_id) for d in pipeline.documents()], value=None)

    with gr.Blocks(title="briefqa", analytics_enabled=False) as demo:
        gr.Markdown(
            "## briefqa\nAsk about the briefing documents. Answers are quoted verbatim with their "
            "source, page and character span; when the documents do not hold the answer, it says so."
        )
        with gr.Row():
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(elem_id="chatbot", label="Answers", show_label=False, height=640, buttons=["copy"])
                with gr.Row():
                    question = gr.Textbox(
                        elem_id="question",
                        show_label=False,
                        placeholder="Ask a question…",
                        scale=5,
                        max_lines=4,
                    )
                    ask = gr.Button("Ask", variant="primary", elem_id="ask", scale=1)
                gr.Examples(EXAMPLES, inputs=[question], label="Examples")
                gr.ClearButton([chatbot, question], value="Clear chat")
            with gr.Column(scale=2):
                upload = gr.File(
                    label="Add documents (.pdf, .txt, .md)",
                    elem_id="upload",
                    file_count="multiple",
                    file_types=list(ALLOWED_SUFFIXES),
                )
                upload_report = gr.Markdown(elem_id="upload-report")
                docs_table = gr.Dataframe(
                    value=list_documents,
                    headers=DOC_HEADERS,
                    label="Documents",
                    elem_id="documents",
                    interactive=False,
                    wrap=True,
                    column_widths=["30%", "27%", "13%", "14%", "16%"],
                )
                with gr.Row():
                    to_remove = gr.Dropdown(label="Document", allow_custom_value=True, scale=3)
                    remove = gr.Button("Remove", variant="stop", scale=1)
                    refresh = gr.Button("Refresh", scale=1)

        pending = gr.State("")
        for trigger in (question.submit, ask.click):
            trigger(show_question, [question, chatbot], [question, chatbot, pending], api_visibility="private").then(
                answer_question, [pending, chatbot], [chatbot], api_visibility="private"
            )
        gr.api(chat, api_name="chat")

        # Index writes go one at a time; asks run alongside them (the pipeline is thread-safe for asks).
        writes = {"concurrency_limit": 1, "concurrency_id": "index-writes"}
        upload.upload(add_documents, [upload], [upload_report], api_name="add_documents", **writes).then(
            lambda: (list_documents(), None), None, [docs_table, upload], api_visibility="private"
        )
        remove.click(remove_document, [to_remove], [docs_table], api_name="remove_document", **writes)
        refresh.click(list_documents, None, [docs_table], api_name="list_documents")
        docs_table.change(document_choices, None, [to_remove], api_visibility="private")
    demo.queue(default_concurrency_limit=4)
    return demo


def launch(demo: gr.Blocks, config: Config, *, host: str | None = None, port: int | None = None, **extra: Any) -> None:
    """Start the server with the app's limits and look; tests pass prevent_thread_lock/quiet here."""
    demo.launch(
        server_name=host or config.host,
        server_port=port or config.port,
        max_file_size=int(config.max_file_mb * 1024 * 1024),
        footer_links=["api"],
        ssr_mode=False,
        theme=gr.themes.Soft(),
        css=CSS,
        **extra,
    )


def serve(config: Config | None = None, *, host: str | None = None, port: int | None = None) -> None:
    """Build the index from the seeds if it is empty, then serve the chat (127.0.0.1 by default)."""
    from qa.pipeline import Pipeline  # here, so the rendering tests need not import the ML stack

    config = config or Config.load()
    pipeline = Pipeline(config)
    pipeline.ensure_seeded()
    launch(build_app(pipeline), config, host=host, port=port)
