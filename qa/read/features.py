"""What the reader knows of each candidate sentence, and the small models that judge them.

Six logistic models (weights in `qa/models/reader.json`, trained by `scripts/train_reader.py` on
public SQuAD data, see its model card):
- the *ranker* scores each sentence: semantic similarity, how much of the question's rare
  vocabulary it and its neighbours hold, shared phrases, whether it holds the kind of thing asked;
- the *verifier* looks at the whole candidate list and judges whether the best sentence really
  answers. It is trained on answerable questions, questions whose documents are absent, questions
  read without the sentences that answer them, and SQuAD 2.0's in-topic unanswerable questions,
  so it knows a passage on the question's topic from one that holds the fact;
- with the answer model, the *reranker* stacks the model's span score on the ranker's
  probability for the RERANK_TOP sentences it read, and the *answer verifier* decides from both;
- with the base-size answer model too (the cascade), the *base reranker* stacks its span score on
  the reranker's probability for the BASE_TOP sentences it read, and the *base verifier* decides
  from all three views.
A verifier's output is then *calibrated*: an isotonic map, fit on out-of-fold predictions, turns it
into the probability that the quote holds the answer, so a confidence of 0.8 is right about 4
times in 5.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from qa.read import questions
from qa.read.evidence import Evidence
from qa.read.span import SpanResult
from qa.retrieve import Hit, similarities, tokenize
from qa.types import SentenceRecord

MODEL_FILE = Path(__file__).parents[1] / "models" / "reader.json"

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
# Sentences the base-size answer model reads: the reranker's best, since it costs ~3x the MiniLM per
# sentence (int8, 2 cores). The base reranker's features are RERANK_FEATURES over the reranker's
# probabilities and the base model's span scores. Out-of-fold numbers: docs/evaluation.md, Cascade.
BASE_TOP = 2
# ...and one more when the reranker gives it at least this probability of holding the answer: off.
# At 0.15, +0.3-0.4 points of quote hit out of fold for 1.5 ms of p50, which the small sets did not
# confirm (docs/evaluation.md, Cascade).
BASE_EXTRA_ABOVE = 1.01
# ...and only for questions the answer verifier is unsure of: its output (before calibration)
# below this. Out-of-fold, docs/evaluation.md, Cascade.
BASE_BELOW = 0.8
BASE_VERIFIER_FEATURES = (*ANSWER_VERIFIER_FEATURES, "best_base_reranked", "base_reranked_margin", "best_base_span_score")


@dataclass(frozen=True)
class BaseReading:
    """Which of the reranker's candidates the base-size model reads: its best `top`, and the next
    when the reranker gives that one at least `extra_above`."""

    top: int = BASE_TOP
    extra_above: float = BASE_EXTRA_ABOVE

    def positions(self, reranked: np.ndarray) -> np.ndarray:
        """Positions in `reranked` to read, the reranker's best first."""
        order = np.argsort(-reranked, kind="stable")
        more = len(order) > self.top and reranked[order[self.top]] >= self.extra_above
        return order[: self.top + int(more)]


BASE_READING = BaseReading()


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
    base_reranker: Logistic | None = None  # present when trained with the base-size answer model too
    base_verifier: Logistic | None = None
    # Per verifier name; a verifier without one reports its raw output (training, tests).
    calibration: dict[str, Calibration] = field(default_factory=dict)

    def raw(self, verifier: str, row: np.ndarray) -> float:
        """The verifier's output for one question's `row`, before calibration."""
        return float(getattr(self, verifier).predict(row[None, :])[0])

    def calibrated(self, verifier: str, raw: float) -> float:
        calibrate = self.calibration.get(verifier)
        return calibrate(raw) if calibrate else raw

    def confidence(self, verifier: str, row: np.ndarray) -> float:
        return self.calibrated(verifier, self.raw(verifier, row))


PARTS = ("ranker", "verifier", "reranker", "answer_verifier", "base_reranker", "base_verifier")
VERIFIERS = ("verifier", "answer_verifier", "base_verifier")


@lru_cache(maxsize=4)
def load_model(path: Path = MODEL_FILE) -> ReaderModel:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    parts = {k: Logistic.from_json(data[k]) for k in PARTS if k in data}
    expected = {"ranker": SENTENCE_FEATURES, "verifier": QUESTION_FEATURES, "reranker": RERANK_FEATURES,
                "answer_verifier": ANSWER_VERIFIER_FEATURES, "base_reranker": RERANK_FEATURES,
                "base_verifier": BASE_VERIFIER_FEATURES}
    if any(part.names != expected[k] for k, part in parts.items()):
        raise ValueError(f"{path} was trained on other features: retrain with scripts/train_reader.py")
    calibration = {k: Calibration.from_json(v) for k, v in data.get("calibration", {}).items() if k in VERIFIERS}
    return ReaderModel(**parts, calibration=calibration)



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
    kind = questions.question_type(question)
    q_tokens = tokenize([questions.without_speech_verbs(question) if kind == "quote" else question])[0]
    q_terms = list(dict.fromkeys(q_tokens))
    idf = evidence.idf(q_terms)
    total = float(idf.sum()) or 1.0
    q_bigrams = _bigrams(q_tokens)
    q_words = questions.words(question)

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
                1.0 if questions.typed_spans(kind, text, q_words) else 0.0,
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



def judged(verifier: Logistic, row: np.ndarray, question: str, chosen: str) -> np.ndarray:
    """`row` as `verifier` judges it: when the chosen sentence answers a speech question (see
    `speech_question`), its span scores are replaced by their average, since the answer models
    learnt SQuAD's factoid questions and score quoted speech as "no answer"."""
    if questions.speech_question(question, chosen):
        row = row.copy()
        for k, name in enumerate(verifier.names):
            if name.endswith("span_score"):
                row[k] = verifier.mean[k]
    return row


def answer_verifier_row(f: Features, probabilities: np.ndarray, reranked: np.ndarray, spans: list[SpanResult]) -> np.ndarray:
    """The verifier's view plus the answer model's: how sure it is of the best read sentence."""
    return np.concatenate([question_row(f, probabilities), stage_row(reranked, spans)])


def base_verifier_row(answer_row: np.ndarray, base_reranked: np.ndarray, base_spans: list[SpanResult]) -> np.ndarray:
    """The answer verifier's view (`answer_row`) plus the base model's on the sentences it read."""
    return np.concatenate([answer_row, stage_row(base_reranked, base_spans)])


def stage_row(reranked: np.ndarray, spans: list[SpanResult]) -> list[float]:
    """A reading stage's verdict: its best reranked probability, the margin to the second, the best span score."""
    best = float(reranked.max())
    second = float(np.partition(reranked, -2)[-2]) if len(reranked) > 1 else 0.0
    span_scores = [r.score for r in spans if np.isfinite(r.score)]
    return [best, best - second, max(span_scores, default=-20.0)]
