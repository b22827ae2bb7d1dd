"""The whole product behind one object: add files, ask questions, list and remove documents.

It composes the stages and does none of their work. Data flows one way: files -> Document
(ingest) -> Chunk (chunk) -> vectors (embed) -> index (store) -> hits (retrieve) -> evidence ->
verdict (read) -> Answer. The CLI and the chat are thin layers over this, and reach the store's
errors through it (`StoreIndexError`), never the store itself. A question reads the index through
one view of the store protocol (`qa.store.protocol`): chunks and sentences by id; the reader gets
the sentences it reads as `Evidence` and returns its `Verdict`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from qa import followup
from qa.chunk import chunk_document
from qa.config import Config
from qa.embed import EMBED_GROUP_CHUNKS, Embedder, Staged, embed_documents
from qa.ingest import IngestError, iter_files, load_document, printable
from qa.read import NOT_FOUND, Reader, gather
from qa.retrieve import Hit, passages, retrieve, tokenize
from qa.store import IndexError as StoreIndexError
from qa.store import open_store
from qa.store.protocol import ReadView, StaleView
from qa.types import Answer, Document, DocumentInfo, FileResult, NewDocument, Passage

__all__ = ["NOT_FOUND", "AmbiguousDocument", "Pipeline", "RebuildReport", "StoreIndexError"]
EMPTY_INDEX = "The index is empty: add documents with `qa add PATH` or the upload box, then ask again."
EMPTY_QUESTION = "Please type a question."
Progress = Callable[[int, int, str], None]  # (files done, files, the file just indexed or "<file>: OCR page k of n")


@dataclass(frozen=True)
class RebuildReport:
    documents: int  # re-embedded and committed
    problems: list[str]  # documents that could not be recovered, and why
    source: str | None  # where their metadata came from: a generation, "texts", or None
    generation: str | None  # the new live generation


class Pipeline:
    def __init__(self, config: Config | None = None):
        self.config = config or Config.load()
        self.store = open_store(self.config)
        self.reader = Reader(self.config)
        self._embedder = None
        self._embedder_lock = threading.Lock()  # one load of the model, however many threads ask

    @property
    def embedder(self):
        """Loaded on first use: listing documents should not cost a model load."""
        with self._embedder_lock:
            if self._embedder is None:
                self._embedder = Embedder(self.config.model, self.config.batch_size, self.config.encoder)
            return self._embedder

    def warm_up(self) -> None:
        """Load the models and run one question's worth of work, so the first user waits less.

        `qa serve` calls this in a background thread while Gradio starts.
        """
        view = self.store.view()
        q_vector = self.embedder.encode(["warm up"])[0]
        if view.chunk_count:
            hits = retrieve(view, q_vector, tokenize(["warm up"])[0], top_k=1, depth=1, rrf_k=self.config.rrf_k)
            self.reader.answer("warm up", q_vector, gather(view, hits))
        else:
            self.reader.load_models()

    # --- documents -------------------------------------------------------------------------
    def ensure_seeded(self) -> None:
        """Build the index from the seed folder the first time (never after the user emptied it)."""
        if self.store.is_new() and self.config.seeds_dir.is_dir():
            self.add([self.config.seeds_dir])

    def add(self, paths: Sequence[Path] | Iterable[Path], progress: Progress | None = None) -> list[FileResult]:
        files = list(iter_files(Path(p) for p in paths))
        results: list[FileResult] = []
        with self.store.lock():
            view = self.store.view()
            indexed, documents = view.chunk_count, view.documents()
            known = {d.doc_id for d in documents}
            by_path = {d.path: d.doc_id for d in documents}
            staged: list[Staged] = []  # parsed and chunked, waiting to be embedded with the next ones
            reports: list[tuple[int, str]] = []  # progress to report once the staged are embedded
            pending: list[NewDocument] = []
            replaced: set[str] = set()
            stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
            for done, path in enumerate(files, 1):
                pages = partial(_page_read, progress, done - 1, len(files), path.name) if progress else None
                results.append(self._add_one(path, stamp, known, by_path, staged, replaced, pages))
                reports.append((done, path.name))
                # Commit in growing batches: a long run keeps its progress, yet rewrites stay rare.
                waiting = sum(len(c) for _, c in staged)
                commit = sum(len(d.chunk_spans) for d in pending) + waiting >= max(self.config.commit_chunks, indexed // 2)
                if staged and (commit or done == len(files) or waiting >= EMBED_GROUP_CHUNKS):
                    pending += embed_documents(self.embedder, staged)
                    staged = []
                if staged:
                    continue  # nothing is reported or committed while a replacement is still staged
                for n, name in reports if progress else ():
                    progress(n, len(files), name)
                reports = []
                if pending and commit:
                    self.store.commit(pending, replaced)
                    indexed = self.store.view().chunk_count
                    pending, replaced = [], set()
            if pending or replaced:
                self.store.commit(pending, replaced)
        return results

    def _add_one(
        self,
        path: Path,
        stamp: str,
        known: set[str],
        by_path: dict[str, str],
        staged: list[Staged],
        replaced: set[str],
        pages: Callable[[int, int], None] | None = None,
    ) -> FileResult:
        try:
            doc = load_document(
                path,
                max_bytes=self.config.max_file_bytes,
                parse_timeout_s=self.config.parse_timeout_s,
                added_at=stamp,
                ocr_max_pages=self.config.ocr_max_pages,
                progress=pages,
            )
        except IngestError as exc:
            return FileResult(str(path), "refused", exc.reason)
        previous = by_path.get(doc.path)
        if previous and previous != doc.doc_id:
            replaced.add(previous)  # the file changed: its old version goes, whatever the new one is
            known.discard(previous)
        if doc.doc_id in known:
            by_path[doc.path] = doc.doc_id
            return FileResult(str(path), "unchanged", "already indexed", doc.doc_id, doc.title)
        status = "replaced" if previous and previous != doc.doc_id else "added"
        staged.append(self._chunked(doc))
        known.add(doc.doc_id)
        by_path[doc.path] = doc.doc_id
        return FileResult(str(path), status, "", doc.doc_id, doc.title)

    def _chunked(self, doc: Document) -> Staged:
        return doc, chunk_document(doc, self.config.chunk_words)

    def rebuild(self, progress: Progress | None = None) -> RebuildReport:
        """Re-create the index from the stored texts: re-chunk, re-embed with the configured model,
        commit one fresh generation. Works when the live generation cannot be opened (damaged
        files, another model, another format version); a crash midway leaves the old state. The
        local store's alone: another backend raises qa.store.IndexError."""
        if not hasattr(self.store, "recover_documents"):
            raise StoreIndexError(
                f"qa rebuild re-creates the local index from its stored texts; on the '{self.config.store}' store, "
                "remove the documents and add them again"
            )
        with self.store.lock():
            docs, problems, source = self.store.recover_documents()
            if source is None and not problems:
                return RebuildReport(0, [], None, None)  # nothing was ever stored: nothing to do
            pending = []
            for done, doc in enumerate(docs, 1):
                pending += embed_documents(self.embedder, [self._chunked(doc)])
                if progress:
                    progress(done, len(docs), doc.source)
            snap = self.store.commit(pending, set(), fresh=True)
        return RebuildReport(len(docs), problems, source, snap.generation)

    def check(self) -> dict[str, object]:
        """The index's deep consistency check (the store's `check`); raises qa.store.IndexError."""
        return self.store.check()

    def documents(self) -> list[DocumentInfo]:
        return self.store.view().documents()

    def document(self, doc_id: str) -> Document:
        try:
            return self.store.view().document(doc_id)
        except KeyError:
            raise KeyError(f"no document with id {doc_id}") from None

    def remove(self, doc_id_or_path: str) -> list[DocumentInfo]:
        """Remove by id (or a unique id prefix), by the path it was added from, or by file name."""
        with self.store.lock():
            wanted = _match_documents(self.store.view().documents(), doc_id_or_path)
            if wanted:
                self.store.commit([], {d.doc_id for d in wanted})
            return wanted

    # --- questions ---------------------------------------------------------------------------
    def ask(
        self,
        question: str,
        top_k: int | None = None,
        doc_ids: Collection[str] | None = None,
        strict: bool | None = None,
        context: followup.Context | None = None,
    ) -> Answer:
        """`strict`: answer only at the strict confidence bar (None: the configured abstention).

        `context`: the conversation so far (qa.followup; `followup.after` gives the next one). A
        follow-up question is asked as rewritten (`Answer.read_as`), first within the document that
        answered the turn before, then, if that holds no answer, within `doc_ids` as usual; one that
        asked only about a name or year ("And in 2007?") is answered only by a quote mentioning it.
        """
        if strict is None:
            strict = self.config.abstention == "strict"
        reading = followup.read_question(question, context or followup.Context())
        if not reading.follow_up:
            return self._ask_fresh(question, top_k, doc_ids, strict)
        answer = None
        if reading.doc_id and (doc_ids is None or reading.doc_id in doc_ids):
            answer = _mentioning(self._ask_fresh(reading.read_as, top_k, [reading.doc_id], strict), reading.mentions)
        if answer is None or not answer.answered:
            answer = _mentioning(self._ask_fresh(reading.read_as, top_k, doc_ids, strict), reading.mentions)
        return replace(answer, question=reading.question, read_as=reading.read_as)

    def context_of(
        self, questions: Sequence[str], doc_ids: Collection[str] | None = None, strict: bool | None = None
    ) -> followup.Context:
        """The conversation after `questions` were asked in turn (for callers that keep only the
        questions, such as the `/ask_json` API's `history`)."""
        context = followup.Context()
        for question in questions:
            context = followup.after(context, self.ask(question, doc_ids=doc_ids, strict=strict, context=context))
        return context

    def _ask_fresh(self, question: str, top_k: int | None, doc_ids: Collection[str] | None, strict: bool) -> Answer:
        try:
            return self._ask(question, top_k, doc_ids, strict)
        except StaleView:  # a writer removed documents twice while we read: once more, on a new view
            return self._ask(question, top_k, doc_ids, strict)

    def _ask(self, question: str, top_k: int | None, doc_ids: Collection[str] | None, strict: bool) -> Answer:
        started = time.perf_counter()
        # Lone surrogates (undecodable bytes in argv, "\ud800" escapes in JSON) break tokenizers.
        question = printable(" ".join(question.split()))
        if not any(ch.isalnum() for ch in question):
            return Answer(question=question, answered=False, message=EMPTY_QUESTION)
        view = self.store.view()
        if not view.chunk_count:
            return Answer(question=question, answered=False, message=EMPTY_INDEX)
        timings: dict[str, float] = {}
        if top_k is not None and top_k < 1:
            raise ValueError("top_k must be at least 1")
        q_vector, hits = self.retrieve(view, question, top_k or self.config.top_k, doc_ids, timings)
        clock = time.perf_counter()
        verdict = self.reader.answer(question, q_vector, gather(view, hits), strict)
        timings["read_ms"] = (time.perf_counter() - clock) * 1000
        found = passages(view, hits, self.config.rrf_k)
        timings["total_ms"] = (time.perf_counter() - started) * 1000
        if verdict.answer is None:
            return Answer(question, False, score=verdict.score, passages=found, message=NOT_FOUND, timings_ms=timings)
        return replace(verdict.answer, passages=found, timings_ms=timings)

    def ranked(self, question: str, depth: int) -> list[Passage]:
        """The question's top `depth` passages over the whole index, as retrieval ranks them
        (evaluation's recall@k reads these)."""
        view = self.store.view()
        return list(passages(view, self.retrieve(view, question, depth)[1], self.config.rrf_k))

    def retrieve(
        self,
        view: ReadView,
        question: str,
        top_k: int,
        doc_ids: Collection[str] | None = None,
        timings: dict[str, float] | None = None,
    ) -> tuple[np.ndarray, list[Hit]]:
        """The question's vector and the fused top-k chunks (evaluation reads these too)."""
        clock = time.perf_counter()
        q_vector = self.embedder.encode([question])[0]
        if timings is not None:
            timings["embed_ms"] = (time.perf_counter() - clock) * 1000
        hits = retrieve(
            view,
            q_vector,
            tokenize([question])[0],
            top_k=top_k,
            depth=self.config.fusion_depth,
            rrf_k=self.config.rrf_k,
            doc_ids=doc_ids,
            timings=timings,
        )
        return q_vector, hits


def _page_read(progress: Progress, done: int, total: int, name: str, page: int, pages: int) -> None:
    """A file's OCR progress, reported as the file's own: `done` files before it are indexed."""
    progress(done, total, f"{name}: OCR page {page} of {pages}")


def _mentioning(answer: Answer, mentions: str) -> Answer:
    """`answer`, or an abstention when its quote does not mention `mentions` (when that is set)."""
    if not mentions or not answer.answered or mentions.lower() in answer.quote.lower():
        return answer
    return Answer(answer.question, False, score=answer.score, passages=answer.passages, message=NOT_FOUND,
                  timings_ms=answer.timings_ms)


def _match_documents(infos: list[DocumentInfo], key: str) -> list[DocumentInfo]:
    exact = [d for d in infos if key in (d.doc_id, d.path) or d.path == str(Path(key).resolve())]
    if exact:
        return exact
    by_prefix = [d for d in infos if len(key) >= 4 and d.doc_id.startswith(key)]
    by_name = [d for d in infos if d.source == key]
    for matches in (by_prefix, by_name):
        if len(matches) > 1:
            raise AmbiguousDocument(f"'{key}' matches {len(matches)} documents: give the document id (see `qa list`)")
    return by_prefix or by_name


class AmbiguousDocument(ValueError):
    """A removal key names several documents; removing them all silently would lose data."""
