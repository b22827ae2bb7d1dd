"""The stable API endpoints for scripts and tests (gradio_client): /chat, /ask_json, /list_documents,
/remove_document and /add_documents. Their names, arguments and results are a contract
(docs/chat.md, The Gradio API).

No `from __future__ import annotations` here: gr.api reads the endpoints' types from their
annotations, so they must be real types, not strings.
"""

import threading
from collections import OrderedDict
from dataclasses import asdict
from pathlib import Path

import gradio as gr

from qa import followup
from qa.chat.backend import WRITES, PipelineLike
from qa.chat.render import answer_document, doc_titles, render_answer
from qa.chat.uploads import add_gradio_uploads, remove_documents
from qa.schema import answer_json
from qa.types import FileResult


def file_result_json(result: FileResult) -> dict[str, str]:
    """An upload's outcome for API clients (the file name only, never a server path)."""
    return {
        "file": Path(result.path).name,
        "status": result.status,
        "reason": result.reason,
        "doc_id": result.doc_id,
        "title": result.title,
    }


class Conversations:
    """What each API client's conversation carries to its next /chat question, by Gradio session
    (one per gradio_client Client); the least recently used are forgotten beyond `limit`."""

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self._contexts: OrderedDict[str, followup.Context] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session: str) -> followup.Context:
        with self._lock:
            return self._contexts.get(session, followup.Context())

    def put(self, session: str, context: followup.Context) -> None:
        with self._lock:
            self._contexts[session] = context
            self._contexts.move_to_end(session)
            while len(self._contexts) > self.limit:
                self._contexts.popitem(last=False)


class Endpoints:
    """The endpoints over one pipeline; their docstrings are what the API page shows."""

    def __init__(self, pipeline: PipelineLike) -> None:
        self.pipeline = pipeline
        self.conversations = Conversations()

    def chat(
        self, question: str, doc_ids: list[str] | None = None, strict: bool | None = None, request: gr.Request = None
    ) -> str:
        """Answer a question from the indexed documents (optionally only within `doc_ids`; `strict`
        refuses more readily, default: the server's setting); returns the answer card as Markdown:
        short answer, quote, confidence, sources. Each client session is a conversation: a
        follow-up ("What is her position?") is read in the light of the questions before it."""
        scope = list(doc_ids or [])
        session = request.session_hash if request is not None and request.session_hash else ""
        context = self.conversations.get(session) if session else followup.Context()
        answer = self.pipeline.ask(question.strip(), doc_ids=scope or None, strict=strict, context=context)
        if session:
            self.conversations.put(session, followup.after(context, answer))
        return render_answer(
            answer, 1, doc_titles(self.pipeline, scope), answer_document(self.pipeline, answer)
        )

    def ask_json(
        self,
        question: str,
        doc_ids: list[str] | None = None,
        top_k: int | None = None,
        strict: bool | None = None,
        history: list[str] | None = None,
    ) -> dict:
        """Answer a question; returns the same JSON object as `qa ask --json` (answered, answer, quote,
        score, citations with document/page/character span, passages, alternatives, message; read_as
        for a follow-up). `strict` as in chat. `history`: the conversation's earlier questions, in
        order, so a follow-up is read in their light (they are asked again to rebuild it)."""
        if top_k is not None and top_k < 1:
            raise gr.Error("top_k must be at least 1")
        scope = list(doc_ids or []) or None
        context = self.pipeline.context_of(list(history), scope, strict) if history else None
        return answer_json(self.pipeline.ask(question.strip(), top_k=top_k, doc_ids=scope, strict=strict, context=context))

    def list_documents(self) -> list[dict]:
        """The indexed documents, as `qa list --json` prints them but without the server-side path:
        doc_id, title, source, pages, chunks, chars, added_at."""
        # No "path" key: gradio_client downloads any result dict holding one, as if it were a file.
        return [{k: v for k, v in asdict(d).items() if k != "path"} for d in self.pipeline.documents()]

    def remove_document(self, document: str) -> list[dict]:
        """Remove a document by id (or unique id prefix), path or file name; returns what was removed."""
        removed = remove_documents(self.pipeline, document)
        return [{"doc_id": d.doc_id, "title": d.title, "source": d.source} for d in removed]

    def add_documents(self, files: list[str] | None) -> list[dict]:
        """Index uploaded files (SUPPORTED_SUFFIXES); one result per file: file, status (added, replaced,
        unchanged, refused), reason, doc_id, title."""
        return [file_result_json(r) for r in add_gradio_uploads(self.pipeline, files or [])]


def add_endpoints(pipeline: PipelineLike, files: gr.File, results: gr.JSON) -> None:
    """Register the endpoints on the gr.Blocks being built (call inside its `with`); /add_documents
    takes its uploads through the hidden `files` component and answers in `results`."""
    endpoints = Endpoints(pipeline)
    gr.api(endpoints.chat, api_name="chat")
    gr.api(endpoints.ask_json, api_name="ask_json")
    gr.api(endpoints.list_documents, api_name="list_documents")
    gr.api(endpoints.remove_document, api_name="remove_document", **WRITES)
    files.upload(endpoints.add_documents, [files], [results], api_name="add_documents", **WRITES)
