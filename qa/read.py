"""The extractive reader: pick the sentence that answers, quote it verbatim, or abstain.

Candidates are the sentences of the retrieved chunks, handed over by the caller as `Evidence`
(sentence records by id: the reader never reads the index); their vectors were computed at
indexing time, so reading costs no model call. Two small logistic models (weights in
`models/reader.json`, trained by `scripts/train_reader.py` on public SQuAD data, see its model
card) do the judging:
- the *ranker* scores each sentence: semantic similarity, how much of the question's rare
  vocabulary it and its neighbours hold, shared phrases, whether it holds the kind of thing asked;
- the *verifier* looks at the whole candidate list and judges whether the best sentence really
  answers. It is trained on answerable questions, questions whose documents are absent, questions
  read without the sentences that answer them, and SQuAD 2.0's in-topic unanswerable questions,
  so it knows a passage on the question's topic from one that holds the fact.
Its output is then *calibrated*: an isotonic map, fit on out-of-fold predictions, turns it into
the probability that the quote holds the answer, so a confidence of 0.8 is right about 4 times in
5. Below the configured threshold the reader abstains; the strict mode (`QA_ABSTENTION=strict`)
only asks for a higher probability.
With the answer model (`qa.span`, on by default) the reader goes one step further: the
ranker's top RERANK_TOP sentences are each read together with the question by the fine-tuned
MiniLM, and a third logistic model (the *reranker*) stacks its span score on the ranker's
probability; a fourth (the *answer verifier*) decides whether to answer from both views. The
short answer is then the model's span inside the chosen sentence. Without it ("fast" mode,
`QA_READER_MODEL=none`), the short answer is found by rules for the question's type.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qa.retrieve import Hit, similarities, tokenize
from qa.span import SpanModel, SpanResult

if TYPE_CHECKING:
    from qa.store.protocol import SentenceRecord

MODEL_FILE = Path(__file__).with_name("models") / "reader.json"

SENTENCE_FEATURES = (
    "cosine",
    "cosine_gap",  # to the best candidate: rankings are relative
    "overlap",
    "overlap_gap",
    "context_overlap",
    "bigram_overlap",
    "chunk_cosine",
    "dense_rank",
    "bm25_rank",
    "fused_rank",
    "type_match",
    "short",
    "long",
)
QUESTION_FEATURES = (
    "best_probability",
    "margin",
    "best_cosine",
    "best_overlap",
    "best_context_overlap",
    "passage_coverage",
    "best_chunk_cosine",
)
# Sentences the answer model reads per question, in one batched forward pass. Out-of-fold on
# SQuAD public with the SQuAD-train model: the chosen sentence holds the answer for 0.829 reading
# 3, 0.835 reading 5 (F1 +0.6 points), for about 1.4x the reading time.
RERANK_TOP = 5
RERANK_FEATURES = (
    "ranker_logit",
    "span_score",
    "span_gap",  # to the best span score among the candidates read
    "span_best",
    "ranker_rank",
)
ANSWER_VERIFIER_FEATURES = (*QUESTION_FEATURES, "best_reranked", "reranked_margin", "best_span_score")


@dataclass(frozen=True)
class Evidence:
    """What the reader reads for one question, gathered from the index by the caller
    (`qa.pipeline.gather`): the retrieved hits, best first; for each hit, its chunk's sentences in
    document order; and `idf`, which gives terms' inverse document frequency over the whole index
    (`qa.retrieve.idf`). The reader never reads the index itself."""

    hits: list[Hit]
    sentences: list[list[SentenceRecord]]  # sentences[i]: hits[i]'s
    idf: Callable[[Sequence[str]], np.ndarray]

    def sentence(self, sentence_id: int) -> SentenceRecord:
        """The record of one of the evidence's sentences (KeyError if it holds no such sentence)."""
        for records in self.sentences:
            for record in records:
                if record.sentence_id == sentence_id:
                    return record
        raise KeyError(f"sentence {sentence_id} is not in the evidence")


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
class Logistic:
    names: tuple[str, ...]
    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray

    def predict(self, rows: np.ndarray) -> np.ndarray:
        z = ((rows - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    @classmethod
    def from_json(cls, data: dict) -> "Logistic":
        return cls(
            names=tuple(data["features"]),
            weights=np.asarray(data["weights"], np.float64),
            bias=float(data["bias"]),
            mean=np.asarray(data["mean"], np.float64),
            scale=np.asarray(data["scale"], np.float64),
        )

    def to_json(self) -> dict:
        return {
            "features": list(self.names),
            "weights": [round(float(w), 6) for w in self.weights],
            "bias": round(self.bias, 6),
            "mean": [round(float(m), 6) for m in self.mean],
            "scale": [round(float(s), 6) for s in self.scale],
        }


@dataclass(frozen=True)
class Calibration:
    """Isotonic map from a verifier's output to the probability that the quote holds the answer.

    Piecewise linear between fitted knots (`x` increasing, `y` non-decreasing, both in [0, 1]), so
    the calibrated score is monotone in the verifier's and stays a probability.
    """

    x: np.ndarray
    y: np.ndarray

    def __call__(self, raw: float) -> float:
        return float(np.interp(raw, self.x, self.y))

    @classmethod
    def from_json(cls, data: dict) -> "Calibration":
        x, y = np.asarray(data["x"], np.float64), np.asarray(data["y"], np.float64)
        if len(x) < 2 or len(x) != len(y) or np.any(np.diff(x) < 0) or np.any(np.diff(y) < 0) \
                or y.min() < 0 or y.max() > 1:
            raise ValueError("a calibration must be a non-decreasing map into [0, 1]")
        return cls(x, y)

    def to_json(self) -> dict:
        return {"x": [round(float(v), 6) for v in self.x], "y": [round(float(v), 6) for v in self.y]}


@dataclass(frozen=True)
class ReaderModel:
    ranker: Logistic
    verifier: Logistic
    reranker: Logistic | None = None  # present when trained with the answer model
    answer_verifier: Logistic | None = None
    # Per verifier name; a verifier without one reports its raw output (training, tests).
    calibration: dict[str, Calibration] = field(default_factory=dict)

    def confidence(self, verifier: str, row: np.ndarray) -> float:
        raw = float(getattr(self, verifier).predict(row[None, :])[0])
        calibrate = self.calibration.get(verifier)
        return calibrate(raw) if calibrate else raw


PARTS = ("ranker", "verifier", "reranker", "answer_verifier")
VERIFIERS = ("verifier", "answer_verifier")


@lru_cache(maxsize=4)
def load_model(path: Path = MODEL_FILE) -> ReaderModel:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    parts = {k: Logistic.from_json(data[k]) for k in PARTS if k in data}
    expected = {"ranker": SENTENCE_FEATURES, "verifier": QUESTION_FEATURES, "reranker": RERANK_FEATURES,
                "answer_verifier": ANSWER_VERIFIER_FEATURES}
    if any(part.names != expected[k] for k, part in parts.items()):
        raise ValueError(f"{path} was trained on other features: retrain with scripts/train_reader.py")
    calibration = {k: Calibration.from_json(v) for k, v in data.get("calibration", {}).items() if k in VERIFIERS}
    return ReaderModel(**parts, calibration=calibration)


# --- question types and short answers --------------------------------------------------------

# Reporting verbs: base form -> the forms documents write ("said", "says"), one list for the
# reader and the chat's example questions (qa.chat.examples, which finds reported speech with all
# of them). Only ASKING_VERBS make a question ask for someone's words ("What did Kallas say?":
# type "quote"); the reader's models were trained with exactly those.
REPORTING_VERBS: dict[str, tuple[str, ...]] = {
    "say": ("said", "says"),
    "tell": ("told",),
    "state": ("stated", "states"),
    "quote": ("quoted", "quotes"),
    "warn": ("warned",),
    "emphasize": ("emphasized", "emphasizes"),
    "emphasise": ("emphasised", "emphasises"),
    "stress": ("stressed",),
    "claim": ("claimed",),
    "announce": ("announced", "announces"),
    "note": ("noted",),
    "clarify": ("clarified",),
    "argue": ("argued",),
    "insist": ("insisted",),
    "add": ("added",),
}
ASKING_VERBS = ("say", "tell", "state", "quote", "warn", "emphasize", "emphasise", "stress", "claim", "announce")
_SAY = re.compile(
    r"\b(" + "|".join(sorted({w for v in ASKING_VERBS for w in (v, *REPORTING_VERBS[v])}, key=len, reverse=True)) + r")\b",
    re.I,
)
_MONTHS = r"(?:January|February|March|April|May|June|July|August|September|October|November|December|Jan\.?|Feb\.?|Mar\.?|Apr\.?|Jun\.?|Jul\.?|Aug\.?|Sept?\.?|Oct\.?|Nov\.?|Dec\.?)"
_DAYS = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_DATE = re.compile(
    rf"\b(?:(?:on |by |in |since |until )?(?:{_DAYS}(?:,? {_MONTHS} \d{{1,2}})?|{_MONTHS} \d{{1,2}}(?:st|nd|rd|th)?(?:,? \d{{4}})?|\d{{1,2}} {_MONTHS}(?:,? \d{{4}})?|{_MONTHS},? \d{{4}}|(?:the )?(?:early |late |mid-?)?\d{{4}}s?|(?:the )?end of (?:next |this |last )?(?:week|month|year)|(?:next|last|this) (?:week|month|year)|\d{{1,2}}(?:st|nd|rd|th) century))\b"
)
_NUMBER_WORDS = r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|billion|dozen|several)"
_NUMBER = re.compile(
    rf"(?:\b(?:approximately|about|around|nearly|almost|over|more than|less than|some|up to) )?(?:[$€£]\s?)?(?:\d[\d,.]*\d|\b\d\b|\b{_NUMBER_WORDS}\b)(?:[ -](?:{_NUMBER_WORDS}|percent|per cent)\b)*(?:\s?%)?(?: [a-z]+)?",
    re.I,
)
_NAME = re.compile(r"(?<![\w.])[A-Z][\w’'\-]*\.?(?:\s+(?:(?:of|de|van|von|der|la|du)\s+)?[A-Z][\w’'\-]*\.?)*")
_PLACE = re.compile(r"\b(?:in|at|near|from)\s+((?:the\s+)?[A-Z][\w’'\-]*(?:(?:\s+|,\s+|\s+of\s+|\s+in\s+)[A-Z][\w’'\-]*)*)")
_QUOTE = re.compile(r"[\"“«]([^\"“”»]{3,})[\"”»]")


# "What did Kallas say?", "How did the minister warn the allies?", "What did she stress about the
# plan?": the speech verb ends the question but for a listener or an "about ...". With more after
# it ("What did he claim the weapon would end?") the question asks for a fact the speaker stated.
_ASKS_FOR_WORDS = re.compile(
    rf"^\s*(?:what|how)\b.*?{_SAY.pattern}(?:\s+[\w’'-]+){{0,2}}(?:\s+(?:about|on|regarding)\b.*)?[\s?.!]*$", re.I
)


def question_type(question: str) -> str:
    q = question.lower().strip()
    if re.search(r"\bhow (many|much|long|far|old|large|big|often)\b|\bwhat (number|percentage|amount)\b", q):
        return "number"
    if re.search(r"\bwhen\b|\bwhat (year|date|day|month|time|century|decade)\b|\b(which|what) (year|day|month)\b", q):
        return "date"
    if _ASKS_FOR_WORDS.match(q):
        return "quote"
    if re.search(r"\bwho\b|\bwhom\b|\bwhose\b", q):
        return "name"
    if re.search(r"\bwhere\b|\b(what|which) (city|country|place|location|state|region)\b", q):
        return "place"
    return "other"


def _spans_of_type(kind: str, sentence: str, question_words: set[str]) -> list[tuple[int, int]]:
    """Candidate short answers of the asked type, as offsets into the sentence."""
    if kind == "quote":
        return [m.span(1) for m in _QUOTE.finditer(sentence)]
    if kind == "date":
        spans = [m.span() for m in _DATE.finditer(sentence)]
    elif kind == "number":
        spans = [m.span() for m in _NUMBER.finditer(sentence)]
    elif kind == "place":
        spans = [m.span(1) for m in _PLACE.finditer(sentence)]
    elif kind == "name":
        spans = [m.span() for m in _NAME.finditer(sentence)]
    else:
        return []
    # An answer tells the asker something new: drop spans made only of the question's words.
    return [(s, e) for s, e in spans if any(_norm(w) not in question_words for w in sentence[s:e].split())]


def _norm(word: str) -> str:
    return word.lower().replace("’", "'").strip(".,;:?!'\"()")


def _words(text: str) -> set[str]:
    return {_norm(w) for w in text.split()}


def short_answer(question: str, sentence: str) -> tuple[int, int] | None:
    """The span of the sentence that answers a who/when/where/how-many/said question."""
    kind = question_type(question)
    spans = _spans_of_type(kind, sentence, _words(question))
    if not spans:
        return None
    # The longest candidate: "Kaja Kallas" over "EU", the whole quoted speech.
    start, end = max(spans, key=lambda s: (s[1] - s[0], -s[0]))
    # Quoted speech is kept whole: its words are the speaker's, even those the question repeats.
    keep = set() if kind == "quote" else _words(question)
    return _trim(sentence, start, end, keep)


def takes_model_span(question: str, span: SpanResult | None, rules: tuple[int, int] | None) -> bool:
    """The answer model's span is the short answer when it read the sentence and found one, but
    for "what did X say" whose quote holds quoted speech: the speaker's words are kept whole."""
    return span is not None and span.end > span.start and not (rules and question_type(question) == "quote")


def _trim(sentence: str, start: int, end: int, question_words: set[str]) -> tuple[int, int] | None:
    """Drop the question's own words and stray punctuation from both ends of a span."""
    words = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", sentence[start:end])]
    while len(words) > 1 and _norm(sentence[words[0][0] : words[0][1]]) in question_words:
        words.pop(0)
    while len(words) > 1 and _norm(sentence[words[-1][0] : words[-1][1]]) in question_words:
        words.pop()
    if not words:
        return None
    start, end = words[0][0], words[-1][1]
    while end > start and sentence[end - 1] in " ,;:":
        end -= 1
    while start < end and sentence[start] in " ,;:":
        start += 1
    return (start, end) if end > start else None


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


# --- features --------------------------------------------------------------------------------


def _bigrams(tokens: list[str]) -> set[tuple[str, str]]:
    return set(zip(tokens, tokens[1:]))


@dataclass
class Features:
    sentence: np.ndarray  # (candidates, SENTENCE_FEATURES)
    sentence_ids: list[int]
    hits: list[Hit]
    texts: list[str]
    passage_coverage: float


def extract(
    question: str, q_vector: np.ndarray, evidence: Evidence, leave_out: frozenset[int] = frozenset()
) -> Features:
    """Features of the evidence's sentences; `leave_out` sentence ids are read as if absent (training)."""
    kind = question_type(question)
    # In "what did X say?" the verb names the kind of answer (a quote), like "who" or "when": the
    # document may say "said", "stressed" or "warned", so it is not a word the answer must hold.
    q_tokens = tokenize([_SAY.sub(" ", question) if kind == "quote" else question])[0]
    q_terms = list(dict.fromkeys(q_tokens))
    idf = evidence.idf(q_terms)
    total = float(idf.sum()) or 1.0
    q_bigrams = _bigrams(q_tokens)
    q_words = _words(question)

    sentences: list[SentenceRecord] = []
    owners: list[Hit] = []
    for hit, records in zip(evidence.hits, evidence.sentences):
        for s in records:
            if s.sentence_id not in leave_out:
                sentences.append(s)
                owners.append(hit)
    if not sentences:
        return Features(np.zeros((0, len(SENTENCE_FEATURES))), [], [], [], 0.0)
    texts = [s.text for s in sentences]
    tokens = tokenize(texts)
    terms = [set(ts) for ts in tokens]
    cosines = similarities(sentences, q_vector)

    def coverage(found: set[str]) -> float:
        return float(sum(w for t, w in zip(q_terms, idf) if t in found)) / total

    overlaps = np.array([coverage(t) for t in terms])
    rank_of = {id(h): r for r, h in enumerate(evidence.hits)}
    rows = []
    for i, (hit, text) in enumerate(zip(owners, texts)):
        window = terms[i].union(*(terms[j] for j in (i - 1, i + 1) if 0 <= j < len(owners) and owners[j] is hit))
        n_words = len(text.split())
        rows.append(
            [
                float(cosines[i]),
                float(cosines[i] - cosines.max()),
                float(overlaps[i]),
                float(overlaps[i] - overlaps.max()),
                coverage(window),
                len(q_bigrams & _bigrams(tokens[i])) / len(q_bigrams) if q_bigrams else 0.0,
                hit.dense,
                1.0 / (1.0 + hit.dense_rank) if hit.dense_rank is not None else 0.0,
                1.0 / (1.0 + hit.bm25_rank) if hit.bm25_rank is not None else 0.0,
                1.0 / (1.0 + rank_of[id(hit)]),
                1.0 if _spans_of_type(kind, text, q_words) else 0.0,
                1.0 if n_words < 5 else 0.0,
                min(n_words, 80) / 80.0,
            ]
        )
    passage_coverage = coverage(set().union(*terms))
    return Features(np.asarray(rows, np.float64), [s.sentence_id for s in sentences], owners, texts, passage_coverage)


def question_row(f: Features, probabilities: np.ndarray) -> np.ndarray:
    """The verifier's view: how good the best candidate is, absolutely and against the rest."""
    best = int(np.argmax(probabilities))
    second = float(np.partition(probabilities, -2)[-2]) if len(probabilities) > 1 else 0.0
    row = f.sentence[best]
    names = SENTENCE_FEATURES
    return np.array(
        [
            float(probabilities[best]),
            float(probabilities[best]) - second,
            row[names.index("cosine")],
            row[names.index("overlap")],
            row[names.index("context_overlap")],
            f.passage_coverage,
            row[names.index("chunk_cosine")],
        ]
    )


def rerank_rows(probabilities: np.ndarray, spans: list[SpanResult]) -> np.ndarray:
    """The reranker's view of the sentences the answer model read (in ranker order)."""
    scores = np.array([r.score for r in spans], np.float64)
    scores = np.where(np.isfinite(scores), scores, -20.0)
    p = np.clip(probabilities, 1e-6, 1 - 1e-6)
    return np.column_stack(
        [
            np.log(p / (1 - p)),
            scores,
            scores - scores.max(),
            (scores == scores.max()).astype(np.float64),
            np.arange(len(spans), dtype=np.float64),
        ]
    )


def speech_question(question: str, sentence: str) -> bool:
    """A "what did X say?" question read against a sentence that quotes speech. The answer model
    learnt SQuAD's factoid questions (19 of squad-dev-public's 5,696 are such), so its span score
    is no evidence either way here: the answer verifier reads it as the average one."""
    return question_type(question) == "quote" and bool(_QUOTE.search(sentence))


def quoted_speech(sentence: str) -> str:
    """The words a sentence quotes, letters and digits only, lower-cased ("" if it quotes none):
    the same statement reported twice reads the same."""
    return "".join(ch for m in _QUOTE.finditer(sentence) for ch in m.group(1).lower() if ch.isalnum())


def speaker(question: str) -> str | None:
    """Whose words a "what did X say?" question asks for: the last capitalised word before the
    speech verb ("Kallas", "Healey"), or None for other questions."""
    if question_type(question) != "quote":
        return None
    verb = _SAY.search(question)
    names = _NAME.findall(question[: verb.start()] if verb else question)
    names = [n for n in names if n.split()[0].lower() not in ("what", "how", "did", "does", "do")]
    return names[-1].split()[-1].rstrip(".") if names else None


def judged_answer_row(
    model: ReaderModel, question: str, f: Features, probabilities: np.ndarray, top: np.ndarray,
    reranked: np.ndarray, spans: list[SpanResult],
) -> np.ndarray:
    """What the answer verifier judges: `answer_verifier_row`, with the average span score when the
    chosen sentence answers a speech question (see `speech_question`)."""
    row = answer_verifier_row(f, probabilities, reranked, spans)
    if speech_question(question, f.texts[top[int(np.argmax(reranked))]]):
        span_score = ANSWER_VERIFIER_FEATURES.index("best_span_score")
        row[span_score] = model.answer_verifier.mean[span_score]
    return row


def answer_verifier_row(f: Features, probabilities: np.ndarray, reranked: np.ndarray, spans: list[SpanResult]) -> np.ndarray:
    """The verifier's view plus the answer model's: how sure it is of the best read sentence."""
    best = float(reranked.max())
    second = float(np.partition(reranked, -2)[-2]) if len(reranked) > 1 else 0.0
    span_scores = [r.score for r in spans if np.isfinite(r.score)]
    return np.concatenate([question_row(f, probabilities), [best, best - second, max(span_scores, default=-20.0)]])


def read(
    question: str,
    q_vector: np.ndarray,
    evidence: Evidence,
    model: ReaderModel | None = None,
    span_model: SpanModel | None = None,
) -> Reading:
    """The evidence's sentences ranked, best first, and the calibrated confidence in the first:
    by the ranker and verifier alone, or with `span_model` reading the ranker's top RERANK_TOP."""
    f = extract(question, q_vector, evidence)
    if not f.sentence_ids:
        return Reading([], 0.0)
    model = model or load_model()
    probabilities = model.ranker.predict(f.sentence)
    order = np.argsort(-probabilities, kind="stable")
    if span_model is None or model.reranker is None or model.answer_verifier is None:
        confidence = model.confidence("verifier", question_row(f, probabilities))
        return Reading([Candidate(f.sentence_ids[i], f.hits[i], float(probabilities[i])) for i in order], confidence)
    top = order[:RERANK_TOP]
    spans = span_model.score(question, [f.texts[i] for i in top])
    reranked = model.reranker.predict(rerank_rows(probabilities[top], spans))
    confidence = model.confidence("answer_verifier", judged_answer_row(model, question, f, probabilities, top, reranked, spans))
    read_first = [Candidate(f.sentence_ids[top[j]], f.hits[top[j]], float(reranked[j]), spans[j])
                  for j in np.argsort(-reranked, kind="stable")]
    rest = [Candidate(f.sentence_ids[i], f.hits[i], float(probabilities[i])) for i in order[RERANK_TOP:]]
    return Reading(read_first + rest, confidence)
