"""The reader's decision on one question: which sentence answers, its quote and short answer, the
other sentences that answer too, or an abstention.

`Reader.answer` is the one entry: it takes the question and its evidence (the retrieved chunks'
sentences) and returns a `Verdict`. Ranking (`rank`) is the ranker and verifier over every
sentence, then, with the answer model (`qa.read.span`, on by default), the model reads the
ranker's top RERANK_TOP sentences, the reranker stacks its span score on the ranker's
probability and the answer verifier decides whether to answer from both views. When that
verifier is unsure, the base-size answer model (the cascade) re-reads the reranker's best
sentences (`BASE_READING`), and its reranker and verifier decide; when it is sure, the base model reads
the chosen sentence alone. The short answer is the base model's span inside the chosen sentence
(the MiniLM's without the base model); without the models ("fast" mode,
`QA_READER_MODEL=none`) it is found by rules for the question's type (`qa.read.questions`).
Below the configured confidence bar the reader abstains; the strict mode only asks for a higher
probability.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, replace

import numpy as np

from qa.config import Config
from qa.read import questions
from qa.read.basemodel import BaseModelMissing
from qa.read.evidence import Evidence
from qa.read.features import (
    BASE_BELOW,
    BASE_READING,
    RERANK_TOP,
    ReaderModel,
    answer_verifier_row,
    base_verifier_row,
    extract,
    judged,
    load_model,
    question_row,
    rerank_rows,
)
from qa.read.span import BUNDLED, BUNDLED_BASE_DIR, SpanModel, SpanResult
from qa.read.tables import MAX_DOCUMENTS, TableReading, read_row, read_tables
from qa.read.tables import confidence as table_confidence
from qa.retrieve import Hit
from qa.types import Answer, Citation, Document, SentenceRecord, Span, TableCell

log = logging.getLogger(__name__)

NOT_FOUND = "I could not find this in the documents."
# "Also in the documents": at most this many other sentences that answer, each scored at least
# ALTERNATIVE_MIN_SCORE. Only sentences the answer model read are considered (RERANK_TOP).
# squad-dev-public, 1,500 questions, 2026-12-02: alternatives' scores are calibrated within 0.063
# (ECE); at 0.1-0.2 a fifth of them hold the answer, at 0.3 and above 42% (134 alternatives), so
# only those are offered (the chat's "medium" label and up).
MAX_ALTERNATIVES = 3
ALTERNATIVE_MIN_SCORE = 0.3


@dataclass(frozen=True)
class Candidate:
    sentence_id: int
    hit: Hit
    probability: float  # probability that this sentence holds the answer (reranked when read)
    span: SpanResult | None = None  # the answer model's span, for the sentences it read


@dataclass(frozen=True)
class Reading:
    candidates: list[Candidate]  # best first
    confidence: float  # calibrated probability that candidates[0] holds the answer


@dataclass(frozen=True)
class Verdict:
    """`answer`: the quoted answer with its citation, short answer and alternatives (no passages:
    those are retrieval's), or None when the reader abstains; `score`: its calibrated confidence."""

    answer: Answer | None
    score: float


class Reader:
    """The reader with its configured answer model (loaded on first use) and confidence bars."""

    def __init__(self, config: Config):
        self.config = config
        self._span_model: SpanModel | None = None
        self._base_model: SpanModel | None | bool = False  # False: not loaded yet; None: off or missing
        self._lock = threading.Lock()  # one load of each answer model, however many threads ask

    @property
    def span_model(self) -> SpanModel | None:
        """The answer model, loaded on first question; None in the fast mode."""
        if _off(self.config.reader_model):
            return None
        with self._lock:
            if self._span_model is None:
                self._span_model = SpanModel(self.config.reader_model, runtime=self.config.reader_runtime)
            return self._span_model

    @property
    def base_model(self) -> SpanModel | None:
        """The base-size answer model of the cascade, loaded on first question; None when it is off
        (or the fast mode), or when its weights are not installed: then the reader says how to
        install them, once, and reads with the answer model alone."""
        if _off(self.config.reader_model) or _off(self.config.reader_base_model):
            return None
        with self._lock:
            if self._base_model is False:
                name = self.config.reader_base_model
                try:
                    self._base_model = SpanModel(str(BUNDLED_BASE_DIR) if name == BUNDLED else name,
                                                 runtime=self.config.reader_runtime)
                except BaseModelMissing as missing:
                    log.warning("reading without the base-size answer model: %s", missing)
                    self._base_model = None
            return self._base_model

    def load_models(self) -> None:
        """Load the configured answer models now rather than on the first question."""
        self.span_model  # noqa: B018
        self.base_model  # noqa: B018

    def answer(self, question: str, q_vector: np.ndarray, evidence: Evidence, strict: bool = False) -> Verdict:
        """The verdict on `question` (`strict`: at the strict confidence bar): a table's cell when a
        table of the retrieved documents names the question's row and column (or a refusal when
        the table lacks what it asks), else the best sentence."""
        bar = self.config.strict_min_confidence if strict else self.config.min_confidence
        table = read_tables(question, _documents(evidence), evidence.idf) if evidence.source is not None else None
        if table is not None and (table.column is not None or table.refuses or self.span_model is not None):
            if table.refuses:
                return Verdict(None, 0.0)
            answer_at = None
            if table.column is None:  # the row is named, not its column: the answer model reads it
                table, answer_at, _ = read_row(question, table, self.base_model or self.span_model)
            score = round(table_confidence(table), 4)
            if score < bar:
                return Verdict(None, score)
            return Verdict(_table_answer(question, table, score, answer_at), score)
        reading = rank(question, q_vector, evidence, span_model=self.span_model, base_model=self.base_model)
        score = round(reading.confidence, 4)
        if not reading.candidates or reading.confidence < bar:
            return Verdict(None, score)
        answer = _answer(evidence, question, reading.candidates[0], score)
        if answer.score < bar:  # read by OCR, from words the engine was unsure of
            return Verdict(None, answer.score)
        return Verdict(replace(answer, alternatives=_alternatives(evidence, question, reading, answer, bar)), answer.score)


def _off(name: str) -> bool:
    return name.strip().lower() in ("", "none", "fast")


def _documents(evidence: Evidence) -> list[Document]:
    """The retrieved documents, best first, whose tables the reader reads."""
    doc_ids = list(dict.fromkeys(records[0].doc_id for records in evidence.sentences if records))
    return [evidence.source.document(doc_id) for doc_id in doc_ids[:MAX_DOCUMENTS]]


def _table_answer(question: str, table: TableReading, score: float, answer_at: tuple[int, int] | None = None) -> Answer:
    """A table's answer: the cell (or `answer_at`, the answer model's span inside it), quoted with
    its row, cited with the table's caption, the row's and the column's headers."""
    document, row = table.document, table.row
    start, end = answer_at or table.cell
    text = document.text
    label = text[row.cells[0][0] : row.cells[0][1]] if row.cells else ""
    cell = TableCell(
        caption=table.table.caption,
        row=" ".join(part for part in (row.group, label) if part) if table.column else row.group,
        column=table.table.column(table.column),
        cell_start=table.cell[0],
        cell_end=table.cell[1],
    )
    citation = Citation(
        doc_id=document.doc_id,
        title=document.title,
        source=document.source,
        page=document.page_at(row.start),
        start=row.start,
        end=row.end,
        quote=text[row.start : row.end],
        section=document.section_at(row.start),
        ocr=document.read_by_ocr(row.start),
        table=cell,
    )
    return Answer(
        question=question,
        answered=True,
        answer=text[start:end],
        quote=citation.quote,
        score=score,
        citations=(citation,),
        answer_span=Span(start, end),
    )


def rank(
    question: str,
    q_vector: np.ndarray,
    evidence: Evidence,
    model: ReaderModel | None = None,
    span_model: SpanModel | None = None,
    base_model: SpanModel | None = None,
) -> Reading:
    """The evidence's sentences ranked, best first, and the calibrated confidence in the first:
    by the ranker and verifier alone; or with `span_model` reading the ranker's top RERANK_TOP;
    and then (the cascade), when the answer verifier's output is below BASE_BELOW, `base_model`
    reading the reranker's best (`BASE_READING`), else only the best, for its short answer."""
    f = extract(question, q_vector, evidence)
    if not f.sentence_ids:
        return Reading([], 0.0)
    model = model or load_model()
    probabilities = model.ranker.predict(f.sentence)
    order = np.argsort(-probabilities, kind="stable")

    def candidate(i: int, probability: float, span: SpanResult | None = None) -> Candidate:
        return Candidate(f.sentence_ids[i], f.hits[i], float(probability), span)

    if span_model is None or model.reranker is None or model.answer_verifier is None:
        confidence = model.confidence("verifier", question_row(f, probabilities))
        return Reading([candidate(i, probabilities[i]) for i in order], confidence)
    top = order[:RERANK_TOP]
    spans = span_model.score(question, [f.texts[i] for i in top])
    reranked = model.reranker.predict(rerank_rows(probabilities[top], spans))
    by_reranker = np.argsort(-reranked, kind="stable")
    row = answer_verifier_row(f, probabilities, reranked, spans)
    read = [candidate(top[j], reranked[j], spans[j]) for j in by_reranker]
    chosen = top[by_reranker[0]]
    verifier = "answer_verifier"
    raw = model.raw(verifier, judged(model.answer_verifier, row, question, f.texts[chosen]))
    cascade = base_model is not None and model.base_reranker is not None and model.base_verifier is not None
    if cascade and raw >= BASE_BELOW:  # sure of the sentence: the better reader still gives its short answer
        read[0] = candidate(chosen, reranked[by_reranker[0]], base_model.score(question, [f.texts[chosen]])[0])
    elif cascade:
        read_again = BASE_READING.positions(reranked)  # a prefix of by_reranker, so `read` goes on after it
        again = top[read_again]
        base_spans = base_model.score(question, [f.texts[i] for i in again])
        base_reranked = model.base_reranker.predict(rerank_rows(reranked[read_again], base_spans))
        by_base = np.argsort(-base_reranked, kind="stable")
        row = base_verifier_row(row, base_reranked, base_spans)
        verifier = "base_verifier"
        read = [candidate(again[k], base_reranked[k], base_spans[k]) for k in by_base] + read[len(again):]
        raw = model.raw(verifier, judged(model.base_verifier, row, question, f.texts[again[by_base[0]]]))
    confidence = model.calibrated(verifier, raw)
    return Reading(read + [candidate(i, probabilities[i]) for i in order[RERANK_TOP:]], confidence)


def _alternatives(evidence: Evidence, question: str, reading: Reading, answer: Answer, bar: float) -> tuple[Answer, ...]:
    """Other read sentences that answer as well, scored like the answer: its calibrated
    confidence times their reranked probability relative to its own (docs/evaluation.md,
    Alternatives, for how well that score holds). A quote overlapping one already given is
    skipped; for "what did X say?", only sentences that quote speech and name X count, each
    statement once (the same quoted words in two reports are one statement), and for it the
    answering `bar` is enough: the others need ALTERNATIVE_MIN_SCORE too."""
    best = reading.candidates[0]
    speaker = questions.speaker(question)
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
        other = _answer(evidence, question, candidate, score)
        cited = other.citations[0]
        if any(c.doc_id == cited.doc_id and c.start < cited.end and cited.start < c.end for c in given):
            continue
        if any(c.quote == cited.quote for c in given):
            continue  # the same words elsewhere (a repeated paragraph)
        if speaker is not None and not (speaker in cited.quote and questions.speech_question(question, cited.quote)):
            continue
        if speaker is not None and questions.quoted_speech(cited.quote) in {questions.quoted_speech(c.quote) for c in given}:
            continue
        given.append(cited)
        found.append(other)
    return tuple(found)


def _answer(evidence: Evidence, question: str, best: Candidate, score: float) -> Answer:
    """The answer `best` gives: its quote (`quoted`), citation and short answer. On a page read by
    OCR, `score` is lowered by the share of the short answer (or the quote) in words the engine
    was unsure of: a misread figure is a wrong answer however sure the reader is of the sentence."""
    sentence = evidence.sentence(best.sentence_id)
    first, last = quoted(evidence, sentence)
    document = evidence.source.document(sentence.doc_id)
    text = document.text
    start, end = first.start, last.end
    quote = text[start:end]
    answer_span = _short_answer(question, best, sentence, text, start, end)
    citation = Citation(
        doc_id=document.doc_id,
        title=document.title,
        source=document.source,
        page=document.page_at(start),
        start=start,
        end=end,
        quote=quote,
        section=document.section_at(start),
        ocr=document.read_by_ocr(start),
    )
    if document.unsure:
        shown = answer_span or Span(start, end)
        score = round(score * (1.0 - document.unsure_share(shown.start, shown.end)), 4)
    return Answer(
        question=question,
        answered=True,
        answer=text[answer_span.start : answer_span.end] if answer_span else quote,
        quote=quote,
        score=score,
        citations=(citation,),
        answer_span=answer_span,
    )


def _short_answer(question: str, best: Candidate, sentence: SentenceRecord, text: str, start: int, end: int) -> Span | None:
    """The answer model's span in the chosen sentence; the rules (over the quote `start:end`)
    when it read none, and for "what did X say": the speaker's quoted words whole."""
    rules = questions.short_answer(question, text[start:end])
    if questions.takes_model_span(question, best.span, rules):
        return Span(sentence.start + best.span.start, sentence.start + best.span.end)
    return Span(start + rules[0], start + rules[1]) if rules else None


# --- the quote -----------------------------------------------------------------------------

# A sentence opening with one of these revises or completes the one before it: quoting either
# alone would cut the thought in half ("...would not act as a peacekeeping force." / "Instead, ...").
_CONTINUATION = re.compile(r"\W*(Instead|However|But|Yet|Rather|Otherwise|Nevertheless|Nonetheless)\b")


def quote_sentences(
    sentence: SentenceRecord, previous: SentenceRecord | None, following: SentenceRecord | None
) -> tuple[SentenceRecord, SentenceRecord]:
    """First and last sentences of the quote around the chosen `sentence`, given the sentences
    before and after it in its document (None at the document's ends)."""
    first = previous if previous is not None and _CONTINUATION.match(sentence.text) else sentence
    last = following if following is not None and _CONTINUATION.match(following.text) else sentence
    return first, last


def quoted(evidence: Evidence, sentence: SentenceRecord) -> tuple[SentenceRecord, SentenceRecord]:
    """The first and last sentences of the quote around `sentence`: `quote_sentences` over its
    neighbours, fetched from the evidence's source."""
    ids = [i for i in (sentence.previous, sentence.next) if i is not None]
    around = dict(zip(ids, evidence.source.sentences(ids)))
    return quote_sentences(sentence, around.get(sentence.previous), around.get(sentence.next))
