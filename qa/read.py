"""The extractive reader: pick the sentence that answers, quote it verbatim, or abstain.

Every candidate is a sentence of a retrieved chunk; its vector was computed at indexing time, so
reading costs no model call. A logistic scorer over a few features (semantic similarity, how much
of the question's rare vocabulary the sentence and its neighbours hold, whether it holds the kind
of thing asked for) gives the probability that the sentence answers. Below the threshold, abstain.
The short answer is a span inside the chosen sentence, found by the question's type.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from qa.retrieve import Hit, tokenize
from qa.store import Snapshot

FEATURES = (
    "cosine",
    "overlap",
    "context_overlap",
    "chunk_cosine",
    "retrieval_rank",
    "type_match",
    "unknown_terms",
    "short",
)
MODEL_FILE = Path(__file__).with_name("models") / "reader.json"
# Used when no trained weights ship with the package.
_DEFAULT_WEIGHTS = {
    "bias": -4.0,
    "cosine": 3.0,
    "overlap": 4.0,
    "context_overlap": 1.0,
    "chunk_cosine": 0.5,
    "retrieval_rank": 0.5,
    "type_match": 0.7,
    "unknown_terms": -4.0,
    "short": -1.0,
}


@dataclass(frozen=True)
class Candidate:
    position: int  # sentence position in the snapshot
    hit: Hit
    probability: float


@lru_cache(maxsize=4)
def load_weights(path: Path = MODEL_FILE) -> dict[str, float]:
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))["weights"]
    return dict(_DEFAULT_WEIGHTS)


# --- question types ------------------------------------------------------------------------

_SAY = re.compile(r"\b(say|said|says|tell|told|state[sd]?|quote[sd]?|warn(?:ed)?|emphasi[sz]ed|stress(?:ed)?|claim(?:ed)?)\b", re.I)
_MONTHS = r"(?:January|February|March|April|May|June|July|August|September|October|November|December|Jan\.?|Feb\.?|Mar\.?|Apr\.?|Jun\.?|Jul\.?|Aug\.?|Sept?\.?|Oct\.?|Nov\.?|Dec\.?)"
_DAYS = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_DATE = re.compile(
    rf"\b(?:(?:on |by |in |since |until )?(?:{_DAYS}(?:,? {_MONTHS} \d{{1,2}})?|{_MONTHS} \d{{1,2}}(?:st|nd|rd|th)?(?:,? \d{{4}})?|\d{{1,2}} {_MONTHS}(?:,? \d{{4}})?|{_MONTHS},? \d{{4}}|(?:the )?(?:early |late |mid-?)?\d{{4}}s?|(?:the )?end of (?:next |this |last )?(?:week|month|year)|(?:next|last|this) (?:week|month|year)|\d{{1,2}}(?:st|nd|rd|th) century))\b"
)
_NUMBER_WORDS = r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|billion|dozen|several|a few)"
_NUMBER = re.compile(
    rf"(?:(?:approximately|about|around|nearly|almost|over|more than|less than|some|up to) )?(?:[$€£]\s?)?(?:\d[\d,.]*\d|\d|\b{_NUMBER_WORDS}\b)(?:[ -](?:{_NUMBER_WORDS}|percent|%|per cent))*(?:\s?%)?(?: [a-z]+)?",
    re.I,
)
_NAME = re.compile(r"(?:[A-Z][\w’'\-]*\.?)(?:\s+(?:(?:of|de|van|von|der|la|du|the)\s+)?[A-Z][\w’'\-]*\.?)*")
_PLACE = re.compile(r"\b(?:in|at|near|from|to)\s+((?:the\s+)?[A-Z][\w’'\-]*(?:[\s,]+(?:of\s+)?[A-Z][\w’'\-]*)*)")
_QUOTE = re.compile(r"[\"“«]([^\"”»]{3,})[\"”»]")


def question_type(question: str) -> str:
    q = question.lower().strip()
    if _SAY.search(q) and re.match(r"\s*(what|how)\b", q):
        return "quote"
    if re.search(r"\bhow (many|much|long|far|old|large|big|often)\b|\bwhat (number|percentage|amount)\b", q):
        return "number"
    if re.search(r"\bwhen\b|\bwhat (year|date|day|month|time|century|decade)\b|\bwhich (year|day|month)\b", q):
        return "date"
    if re.search(r"\bwho\b|\bwhom\b|\bwhose\b|\bwhich (person|man|woman|minister|president|leader|country|countries)\b", q):
        return "name"
    if re.search(r"\bwhere\b|\bwhat (city|country|place|location|state)\b|\bwhich (city|place|location|state)\b", q):
        return "place"
    return "other"


def _spans_of_type(kind: str, sentence: str, question: str) -> list[tuple[int, int]]:
    """Candidate short answers of the asked type, as offsets into the sentence."""
    if kind == "quote":
        return [m.span(1) for m in _QUOTE.finditer(sentence)]
    if kind == "date":
        return [m.span() for m in _DATE.finditer(sentence)]
    if kind == "number":
        return [m.span() for m in _NUMBER.finditer(sentence) if any(c.isdigit() for c in m.group()) or m.group().strip()]
    question_words = {w.lower().strip(".’'") for w in re.findall(r"[\w’'.\-]+", question)}
    if kind == "place":
        spans = [m.span(1) for m in _PLACE.finditer(sentence)]
    elif kind == "name":
        spans = [m.span() for m in _NAME.finditer(sentence) if m.start() > 0 or len(m.group().split()) > 1]
    else:
        return []
    return [
        (s, e)
        for s, e in spans
        if any(w.lower().strip(".’'") not in question_words for w in sentence[s:e].split())
    ]


def short_answer(question: str, sentence: str) -> tuple[int, int] | None:
    """The span of the sentence that answers a who/when/where/how-many/said question."""
    kind = question_type(question)
    spans = _spans_of_type(kind, sentence, question)
    if not spans:
        return None
    # Prefer the longest candidate: "Kaja Kallas" over "EU", the whole quoted speech.
    start, end = max(spans, key=lambda s: (s[1] - s[0], -s[0]))
    while end > start and sentence[end - 1] in " ,;:":
        end -= 1
    return (start, end) if end > start else None


# --- scoring ---------------------------------------------------------------------------------


def _idf(snap: Snapshot, terms: list[str]) -> np.ndarray:
    n = max(snap.size, 1)
    df = np.array([snap.document_frequency[snap.term_index[t]] if t in snap.term_index else 0 for t in terms])
    return np.log(1.0 + (n - df + 0.5) / (df + 0.5))


def features(snap: Snapshot, question: str, q_vector: np.ndarray, hits: list[Hit]) -> tuple[np.ndarray, list[int], list[Hit]]:
    """Feature matrix (one row per candidate sentence), the sentence positions and their hits."""
    q_terms = list(dict.fromkeys(tokenize([question])[0]))
    idf = _idf(snap, q_terms)
    total = float(idf.sum()) or 1.0
    unknown = float(sum(w for t, w in zip(q_terms, idf) if t not in snap.term_index)) / total
    kind = question_type(question)

    positions: list[int] = []
    owners: list[Hit] = []
    for hit in hits:
        for s in snap.sentences_of(hit.position):
            positions.append(s)
            owners.append(hit)
    if not positions:
        return np.zeros((0, len(FEATURES))), [], []
    spans = snap.sentence_spans[positions]
    texts = [snap.text(int(snap.chunk_doc[h.position]))[a:b] for h, (a, b) in zip(owners, spans)]
    sentence_terms = [set(ts) for ts in tokenize(texts)]
    cosines = np.asarray(snap.sentence_vectors[positions], dtype=np.float32) @ q_vector

    def coverage(terms: set[str]) -> float:
        return float(sum(w for t, w in zip(q_terms, idf) if t in terms)) / total

    rows = []
    for i, (hit, text) in enumerate(zip(owners, texts)):
        window = sentence_terms[i].copy()
        for j in (i - 1, i + 1):
            if 0 <= j < len(owners) and owners[j] is hit:
                window |= sentence_terms[j]
        rank = hits.index(hit)
        rows.append(
            [
                float(cosines[i]),
                coverage(sentence_terms[i]),
                coverage(window),
                hit.dense,
                1.0 / (1.0 + rank),
                1.0 if _spans_of_type(kind, text, question) else 0.0,
                unknown,
                1.0 if len(text.split()) < 5 else 0.0,
            ]
        )
    return np.asarray(rows, dtype=np.float32), positions, owners


def read(snap: Snapshot, question: str, q_vector: np.ndarray, hits: list[Hit]) -> list[Candidate]:
    """Candidates best first, each with the probability that it answers the question."""
    matrix, positions, owners = features(snap, question, q_vector, hits)
    if not positions:
        return []
    weights = load_weights()
    w = np.array([weights[f] for f in FEATURES], dtype=np.float32)
    logits = matrix @ w + weights["bias"]
    probs = 1.0 / (1.0 + np.exp(-logits))
    order = np.argsort(-probs, kind="stable")
    return [Candidate(positions[i], owners[i], float(probs[i])) for i in order]
