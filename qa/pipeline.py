"""The whole product behind one object: add files, ask questions, list and remove documents.

Data flows one way: files -> Document (ingest) -> Chunk (chunk) -> vectors (embed) -> index
(store) -> passages (retrieve) -> answer (read). The CLI and the chat are thin layers over this.
Everything reads the index through the store protocol (`qa.store.protocol`): one view per
question, chunks and sentences by id; the reader gets the sentences it reads as `Evidence`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import numpy as np

from qa import followup
from qa import read as reader
from qa.chunk import chunk_document
from qa.config import Config
from qa.ingest import IngestError, iter_files, load_document, printable
from qa.retrieve import Hit, best_possible_score, idf, retrieve, tokenize
from qa.store import IndexError as StoreIndexError
from qa.store import NewDocument, open_store
from qa.store.protocol import ReadView, SentenceRecord, StaleView
from qa.types import Answer, Chunk, Citation, Document, DocumentInfo, FileResult, Passage, Span

NOT_FOUND = "I could not find this in the documents."
EMPTY_INDEX = "The index is empty: add documents with `qa add PATH` or the upload box, then ask again."
EMPTY_QUESTION = "Please type a question."
# "Also in the documents": at most this many other sentences that answer, each scored at least
# ALTERNATIVE_MIN_SCORE. Only sentences the answer model read are considered (reader.RERANK_TOP).
# squad-dev-public, 1,500 questions, 2026-12-02: alternatives' scores are calibrated within 0.063
# (ECE); at 0.1-0.2 a fifth of them hold the answer, at 0.3 and above 42% (134 alternatives), so
# only those are offered (the chat's "medium" label and up).
MAX_ALTERNATIVES = 3
ALTERNATIVE_MIN_SCORE = 0.3
Progress = Callable[[int, int, str], None]
# Documents are embedded together until they hold this many chunks: one encoder call over
# several documents sorts more chunks by length, so it pads less and fills its batches.
# bench/indexing.py, SQuAD corpus, 2026-12-01, when chunks and sentences were embedded apart:
# `qa add` took 1.03x the time of one bare encoder call over all its texts with groups of 2,048
# texts (~460 chunks), 1.27x with 512, and the bare encoder document by document 1.14x.
EMBED_GROUP_CHUNKS = 512
Staged = tuple[Document, list[Chunk]]  # a document and its chunks, waiting to be embedded


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
        self._embedder = None
        self._span_model = None
        self._models_lock = threading.Lock()  # one load of each model, however many threads ask

    @property
    def embedder(self):
        """Loaded on first use: listing documents should not cost a model load."""
        with self._models_lock:
            if self._embedder is None:
                from qa.embed import Embedder

                self._embedder = Embedder(self.config.model, self.config.batch_size, self.config.encoder)
            return self._embedder

    @property
    def span_model(self):
        """The answer model, loaded on first question; None in the fast mode."""
        if self.config.reader_model.strip().lower() in ("", "none", "fast"):
            return None
        with self._models_lock:
            if self._span_model is None:
                from qa.span import SpanModel

                self._span_model = SpanModel(self.config.reader_model, runtime=self.config.reader_runtime)
            return self._span_model

    def warm_up(self) -> None:
        """Load the models and run one question's worth of work, so the first user waits less.

        `qa serve` calls this in a background thread while Gradio starts.
        """
        view = self.store.view()
        q_vector = self.embedder.encode(["warm up"])[0]
        if view.chunk_count:
            hits = retrieve(view, q_vector, tokenize(["warm up"])[0], top_k=1, depth=1, rrf_k=self.config.rrf_k)
            reader.read("warm up", q_vector, gather(view, hits), span_model=self.span_model)
        else:
            self.span_model  # noqa: B018 (loads it)

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
                results.append(self._add_one(path, stamp, known, by_path, staged, replaced))
                reports.append((done, path.name))
                # Commit in growing batches: a long run keeps its progress, yet rewrites stay rare.
                waiting = sum(len(c) for _, c in staged)
                commit = sum(len(d.chunk_spans) for d in pending) + waiting >= max(self.config.commit_chunks, indexed // 2)
                if staged and (commit or done == len(files) or waiting >= EMBED_GROUP_CHUNKS):
                    pending += self._prepare_all(staged)
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
    ) -> FileResult:
        try:
            doc = load_document(
                path,
                max_bytes=self.config.max_file_bytes,
                parse_timeout_s=self.config.parse_timeout_s,
                added_at=stamp,
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

    def _prepare_all(self, staged: list[Staged]) -> list[NewDocument]:
        """The staged documents with their vectors, from one encoder call over all their chunks
        (each sentence's vector read from its chunk's pass)."""
        chunk_vectors, sentence_vectors = self.embedder.encode_chunks(
            [(c.text, [(s.start - c.start, s.end - c.start) for s in c.sentences]) for _, chunks in staged for c in chunks])
        prepared, at_chunk, at_sentence = [], 0, 0
        for doc, chunks in staged:
            sentences = [s for c in chunks for s in c.sentences]
            mine_chunks = chunk_vectors[at_chunk : at_chunk + len(chunks)]
            mine_sentences = sentence_vectors[at_sentence : at_sentence + len(sentences)]
            at_chunk, at_sentence = at_chunk + len(chunks), at_sentence + len(sentences)
            prepared.append(NewDocument(
                doc=doc,
                chunk_spans=np.array([(c.start, c.end) for c in chunks], np.int64).reshape(-1, 2),
                chunk_pages=np.array([c.page or -1 for c in chunks], np.int32),
                sentence_spans=np.array([(s.start, s.end) for s in sentences], np.int64).reshape(-1, 2),
                sentence_chunks=np.repeat(np.arange(len(chunks), dtype=np.int32), [len(c.sentences) for c in chunks]),
                chunk_vectors=mine_chunks,
                sentence_vectors=mine_sentences.astype(np.float16),
                chunk_tokens=tokenize([c.text for c in chunks]),
            ))
        return prepared

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
                pending += self._prepare_all([self._chunked(doc)])
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
        evidence = gather(view, hits)
        reading = reader.read(question, q_vector, evidence, span_model=self.span_model)
        timings["read_ms"] = (time.perf_counter() - clock) * 1000
        passages = self.passages(view, hits)
        timings["total_ms"] = (time.perf_counter() - started) * 1000
        score = round(reading.confidence, 4)
        bar = self.config.strict_min_confidence if strict else self.config.min_confidence
        if not reading.candidates or reading.confidence < bar:
            return Answer(question, False, score=score, passages=passages, message=NOT_FOUND, timings_ms=timings)
        answer = self._answer(view, evidence, question, reading.candidates[0], score, passages, timings)
        return replace(answer, alternatives=self._alternatives(view, evidence, question, reading, answer, bar))

    def _alternatives(
        self, view: ReadView, evidence: reader.Evidence, question: str, reading: reader.Reading, answer: Answer,
        bar: float,
    ) -> tuple[Answer, ...]:
        """Other read sentences that answer as well, scored like the answer: its calibrated
        confidence times their reranked probability relative to its own (README, Conversations, for
        how well that score holds). A quote overlapping one already given is skipped; for "what did
        X say?", only sentences that quote speech and name X count, each statement once (the same
        quoted words in two reports are one statement), and for it the answering `bar` is enough:
        the others need ALTERNATIVE_MIN_SCORE too."""
        best = reading.candidates[0]
        speaker = reader.speaker(question)
        if speaker is None:
            bar = max(bar, ALTERNATIVE_MIN_SCORE)
        given = list(answer.citations)
        found: list[Answer] = []
        for candidate in reading.candidates[1:]:
            if candidate.span is None or len(found) == MAX_ALTERNATIVES:
                break  # past the sentences the answer model read
            score = round(min(answer.score, answer.score * candidate.probability / max(best.probability, 1e-9)), 4)
            if score < bar:
                break  # candidates come best first
            other = self._answer(view, evidence, question, candidate, score, (), {})
            cited = other.citations[0]
            if any(c.doc_id == cited.doc_id and c.start < cited.end and cited.start < c.end for c in given):
                continue
            if any(c.quote == cited.quote for c in given):
                continue  # the same words elsewhere (a repeated paragraph)
            if speaker is not None and not (speaker in cited.quote and reader.speech_question(question, cited.quote)):
                continue
            if speaker is not None and reader.quoted_speech(cited.quote) in {reader.quoted_speech(c.quote) for c in given}:
                continue
            given.append(cited)
            found.append(other)
        return tuple(found)

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

    def _answer(
        self,
        view: ReadView,
        evidence: reader.Evidence,
        question: str,
        best: reader.Candidate,
        score: float,
        passages: tuple[Passage, ...],
        timings: dict,
    ) -> Answer:
        sentence = evidence.sentence(best.sentence_id)
        first, last = quoted(view, sentence)
        document = view.document(sentence.doc_id)
        text = document.text
        start, end = first.start, last.end
        quote = text[start:end]
        answer_span = self._short_answer(question, best, sentence, text, start, end)
        citation = Citation(
            doc_id=document.doc_id,
            title=document.title,
            source=document.source,
            page=document.page_at(start),
            start=start,
            end=end,
            quote=quote,
            section=document.section_at(start),
        )
        return Answer(
            question=question,
            answered=True,
            answer=text[answer_span.start : answer_span.end] if answer_span else quote,
            quote=quote,
            score=score,
            citations=(citation,),
            passages=passages,
            answer_span=answer_span,
            timings_ms=timings,
        )

    def _short_answer(
        self, question: str, best: reader.Candidate, sentence: SentenceRecord, text: str, start: int, end: int
    ) -> Span | None:
        """The answer model's span in the chosen sentence; the rules (over the quote `start:end`)
        when it read none, and for "what did X say": the speaker's quoted words whole."""
        rules = reader.short_answer(question, text[start:end])
        if reader.takes_model_span(question, best.span, rules):
            return Span(sentence.start + best.span.start, sentence.start + best.span.end)
        return Span(start + rules[0], start + rules[1]) if rules else None

    def passages(self, view: ReadView, hits: Sequence[Hit]) -> tuple[Passage, ...]:
        """The hits' chunks as passages, their score relative to the best possible one."""
        best_possible = best_possible_score(self.config.rrf_k)
        chunks = view.chunks([h.chunk_id for h in hits])
        documents = {d.doc_id: d for d in view.documents({c.doc_id for c in chunks})}
        return tuple(
            Passage(
                chunk_id=chunk.chunk_id,
                doc_id=chunk.doc_id,
                title=documents[chunk.doc_id].title,
                source=documents[chunk.doc_id].source,
                page=chunk.page,
                start=chunk.start,
                end=chunk.end,
                text=chunk.text,
                score=round(min(1.0, hit.score / best_possible), 4),
            )
            for hit, chunk in zip(hits, chunks)
        )


def _mentioning(answer: Answer, mentions: str) -> Answer:
    """`answer`, or an abstention when its quote does not mention `mentions` (when that is set)."""
    if not mentions or not answer.answered or mentions.lower() in answer.quote.lower():
        return answer
    return Answer(answer.question, False, score=answer.score, passages=answer.passages, message=NOT_FOUND,
                  timings_ms=answer.timings_ms)


def gather(view: ReadView, hits: Sequence[Hit]) -> reader.Evidence:
    """What the reader reads of `hits`: each hit's sentences, in order, and term IDF over `view`."""
    chunks = view.chunks([h.chunk_id for h in hits])
    records = iter(view.sentences([s for c in chunks for s in c.sentence_ids]))
    sentences = [[next(records) for _ in c.sentence_ids] for c in chunks]
    return reader.Evidence(list(hits), sentences, partial(idf, view))


def quoted(view: ReadView, sentence: SentenceRecord) -> tuple[SentenceRecord, SentenceRecord]:
    """The first and last sentences of the quote around `sentence`: `reader.quote_sentences` over
    its neighbours, fetched from the view."""
    ids = [i for i in (sentence.previous, sentence.next) if i is not None]
    around = dict(zip(ids, view.sentences(ids)))
    return reader.quote_sentences(sentence, around.get(sentence.previous), around.get(sentence.next))


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
