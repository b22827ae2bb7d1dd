"""The browser UI's event handlers. Those that need the pipeline are methods of `Handlers`; the
rest are plain functions.

Per browser session (gr.State) the handlers keep the answers given so far (`records`: one dict per
answer with the Answer, the index of its chat message and the scope it was asked in) and which one
the evidence panel shows (`current`), so an older answer's sources stay available after newer
questions. The same records are the conversation a follow-up question is read in; clearing the
chat forgets it.
"""

from __future__ import annotations

import logging
from functools import reduce
from typing import Any

import gradio as gr

from qa import followup
from qa.chat.backend import PipelineLike
from qa.chat.examples import Examples
from qa.chat.render import (
    EVIDENCE_EMPTY,
    answer_document,
    doc_titles,
    document_label,
    documents_frame,
    neutral,
    render_answer,
    render_card_document,
    render_evidence,
    render_file_results,
)
from qa.chat.uploads import add_gradio_uploads, remove_documents

Records = list[dict[str, Any]]


# --- questions and their sources ---------------------------------------------------------------


def conversation(records: Records) -> followup.Context:
    """What the session's answers so far carry to its next question (qa.followup)."""
    return reduce(followup.after, (record["answer"] for record in records), followup.Context())


def show_question(question: str, history: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]], str]:
    """The question into the chat at once (and into `pending` for the answer step); the box empties."""
    if not question.strip():
        return "", history, ""
    return "", [*history, {"role": "user", "content": neutral(question)}], question.strip()


def _picker(records: Records, number: int) -> gr.Dropdown:
    choices = [(f"{n}. {r['answer'].question[:80]}", n) for n, r in enumerate(records, 1)]
    return gr.Dropdown(choices=choices, value=number if records else None)


def _show_answer(records: Records, number: int) -> str:
    if not 1 <= number <= len(records):
        return EVIDENCE_EMPTY
    record = records[number - 1]
    return render_evidence(record["answer"], number, record["scope"])


def select_from_chat(records: Records, evt: gr.SelectData) -> tuple[Any, ...]:
    """A click on a message (or a citation link in it) shows that answer's sources."""
    index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
    for number in range(len(records), 0, -1):
        if records[number - 1]["message"] in (index, index + 1):  # the answer, or the question before it
            return number, _show_answer(records, number), gr.Dropdown(value=number), ""
    return (gr.skip(),) * 4


def select_from_picker(records: Records, number: int | None) -> tuple[Any, ...]:
    """The sources of the answer chosen in the picker."""
    if number is None:
        return (gr.skip(),) * 3
    return number, _show_answer(records, int(number)), ""


def clear_chat() -> tuple[Any, ...]:
    """Conversation, sources, viewer and question box back to empty."""
    return [], [], 0, EVIDENCE_EMPTY, gr.Dropdown(choices=[], value=None), "", ""


class Handlers:
    """The handlers that read or change the index, over one pipeline."""

    def __init__(self, pipeline: PipelineLike) -> None:
        self.pipeline = pipeline
        self.examples = Examples(pipeline)

    def answer_question(
        self, pending: str, history: list[dict[str, Any]], records: Records, doc_filter: list[str] | None, strict: bool
    ) -> tuple[Any, ...]:
        """The answer card into the chat, a record of it, its sources in the evidence panel and the picker."""
        if not pending:
            return (gr.skip(),) * 6
        scope = doc_titles(self.pipeline, doc_filter or [])
        try:
            answer = self.pipeline.ask(
                pending, doc_ids=list(doc_filter or []) or None, strict=strict, context=conversation(records)
            )
        except Exception as exc:  # noqa: BLE001 (the conversation goes on; the details go to the log)
            logging.getLogger(__name__).exception("answering %r failed", pending)
            failed = {"role": "assistant", "content": f"Something went wrong while answering: {neutral(str(exc))}"}
            return [*history, failed], records, gr.skip(), gr.skip(), gr.skip(), gr.skip()
        number = len(records) + 1
        card = render_answer(answer, number, scope, answer_document(self.pipeline, answer))
        history = [*history, {"role": "assistant", "content": card}]
        records = [*records, {"answer": answer, "message": len(history) - 1, "scope": scope}]
        return history, records, number, render_evidence(answer, number, scope), _picker(records, number), ""

    def open_document(self, records: Records, number: int, evt: gr.EventData) -> str:
        """The document viewer for the evidence card whose button was clicked."""
        return self._card_view(records, number, evt, with_page=False)

    def open_page(self, records: Records, number: int, evt: gr.EventData) -> str:
        """The document viewer again, with the PDF page as printed below the text."""
        return self._card_view(records, number, evt, with_page=True)

    def _card_view(self, records: Records, number: int, evt: gr.EventData, with_page: bool) -> str:
        card = (getattr(evt, "_data", None) or {}).get("card")
        if not isinstance(card, int) or not 1 <= number <= len(records):
            return gr.skip()
        return render_card_document(self.pipeline, records[number - 1]["answer"], card, with_page=with_page)

    # --- documents ------------------------------------------------------------------------------

    def upload_files(self, files: list[str] | None, progress: gr.Progress = gr.Progress()) -> tuple[str, None]:  # noqa: B008 (how Gradio injects progress)
        """Index the uploaded files with a progress bar; a line per file, and the upload box emptied."""

        def report(done: int, total: int, name: str) -> None:
            progress((done, total), desc=f"Indexing: {name}")  # a file, or "<file>: OCR page k of n"

        progress(0, desc=f"Checking {len(files or [])} file(s)")
        return render_file_results(add_gradio_uploads(self.pipeline, files or [], report)), None

    def refresh(self, doc_filter: list[str] | None) -> tuple[Any, ...]:
        """Everything that lists documents: the table, the remove and filter choices, the examples."""
        docs = self.pipeline.documents()
        choices = [(document_label(d), d.doc_id) for d in docs]
        ids = {d.doc_id for d in docs}
        examples = self.examples(docs)
        return (
            documents_frame(docs),
            gr.Dropdown(choices=choices, value=None),
            gr.Dropdown(choices=choices, value=[i for i in doc_filter or [] if i in ids]),
            gr.Dataset(samples=[[q] for q in examples], visible=bool(examples)),
        )

    def ask_removal(self, doc_id: str | None) -> tuple[Any, ...]:
        """Step one of removing: say exactly what will go and wait for confirmation."""
        info = next((d for d in self.pipeline.documents() if d.doc_id == doc_id), None)
        if info is None:
            return "", gr.Row(visible=False), "Choose a document to remove first."
        text = (
            f"Remove **{neutral(info.title)}** ({neutral(info.source)}, {info.chunks} chunks)? "
            "Its passages will no longer be used for answers."
        )
        return info.doc_id, gr.Row(visible=True), text

    def confirm_removal(self, doc_id: str) -> tuple[Any, ...]:
        """Step two: remove it, hide the confirmation and say what went."""
        if not doc_id:
            return "", gr.Row(visible=False), "Nothing to remove."
        removed = remove_documents(self.pipeline, doc_id)
        names = ", ".join(f"**{neutral(d.source)}**" for d in removed)
        return "", gr.Row(visible=False), f"Removed {names}."
