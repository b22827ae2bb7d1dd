"""Find the chunks that may answer a question: dense search fused with BM25, over a store's view.

Dense vectors catch paraphrases; BM25 catches names and exact words ("Kallas") that a small
embedding model blurs. Reciprocal rank fusion combines the two rankings without having to
calibrate their scores against each other. The fused top RERANK_POOL are then reordered by
what a chunk-level score misses: its single best sentence's cosine to the question (sentence
vectors are stored at indexing time) and how much of the question's rare vocabulary it holds.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from qa.types import Passage

if TYPE_CHECKING:
    from qa.store.protocol import ReadView
    from qa.types import ChunkRecord, SentenceRecord

# Measured on SQuAD public (5,696 questions, whole corpus), recall@5: RRF alone 0.946; + best
# sentence cosine 0.956; + IDF term coverage 0.968 (a plateau for coverage weights 0.05-0.08).
# Re-tuned 2026-12-02 once sentence vectors were read in their chunks, recall@1 / @5: 0.08 and
# 0.05 gave 0.842 / 0.966; 0.12 and 0.12 give 0.856 / 0.969 (0.16 / 0.12 the same; coverage 0.16
# or more, or sentence 0.08 with coverage 0.12, lower). Checked untouched on COVID-QA: recall@5
# 0.822 -> 0.833; realdocs-public unchanged (1.000, recall@1 0.833).
RERANK_POOL = 20
SENTENCE_WEIGHT = 0.12
COVERAGE_WEIGHT = 0.12


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    """bm25s's English-plus stopword list, read from its data module without importing the bm25s
    package (which loads scipy: about 0.2 s of every fresh `qa ask`)."""
    import importlib.util

    spec = importlib.util.find_spec("bm25s")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("bm25s, a dependency of briefqa, is not installed")
    path = Path(spec.submodule_search_locations[0]) / "stopwords.py"
    data = importlib.util.spec_from_file_location("_bm25s_stopwords", path)
    module = importlib.util.module_from_spec(data)
    data.loader.exec_module(module)
    return frozenset(module.STOPWORDS_EN_PLUS)


_WORD = re.compile(r"(?u)\b\w\w+\b")  # bm25s.tokenize's token pattern


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased, stemmed word tokens without stopwords: BM25's and the reader's view of text.

    What `bm25s.tokenize(texts, stopwords="en_plus", stemmer=..., return_ids=False)` returns
    (tests/test_retrieve.py holds them equal), without its import cost at ask time."""
    stop, stem = _stopwords(), _stemmer().stemWords
    return [stem([w for w in _WORD.findall(text.lower()) if w not in stop]) for text in texts]


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk, by id, with its ranking score and each retriever's view of it."""

    chunk_id: int
    score: float  # RRF + SENTENCE_WEIGHT * best sentence cosine + COVERAGE_WEIGHT * term coverage
    dense: float  # cosine similarity to the question (computed for every hit)
    dense_rank: int | None
    bm25_rank: int | None


def best_possible_score(rrf_k: int) -> float:
    """A chunk first in both rankings, with a sentence equal to the question and every term."""
    return 2.0 / (rrf_k + 1) + SENTENCE_WEIGHT + COVERAGE_WEIGHT


def retrieve(
    view: ReadView,
    question_vector: np.ndarray,
    question_tokens: list[str],
    *,
    top_k: int,
    depth: int,
    rrf_k: int,
    doc_ids: Collection[str] | None = None,
    timings: dict[str, float] | None = None,
) -> list[Hit]:
    """The top_k chunks of `view` for a question, best first (only chunks of `doc_ids` if given).

    Each search returns its `depth` best; reciprocal rank fusion (`rrf_k`) merges them, and the
    fused top max(top_k, RERANK_POOL) are reordered by the bonus for their best sentence and
    term coverage. Ties go to the lower chunk id. `timings` receives dense_ms, bm25_ms, fusion_ms.
    """
    if not view.chunk_count:
        return []
    clock = time.perf_counter()
    dense_ids = [s.chunk_id for s in view.dense_search(question_vector, depth, doc_ids)]
    after_dense = time.perf_counter()
    bm25_ids = [s.chunk_id for s in view.keyword_search(question_tokens, depth, doc_ids)]
    after_bm25 = time.perf_counter()
    if not dense_ids and not bm25_ids:
        return []  # no chunk of `doc_ids`

    fused: dict[int, float] = {}
    dense_rank = {c: r for r, c in enumerate(dense_ids)}
    bm25_rank = {c: r for r, c in enumerate(bm25_ids)}
    for ranking in (dense_ids, bm25_ids):
        for rank, chunk in enumerate(ranking):
            fused[chunk] = fused.get(chunk, 0.0) + 1.0 / (rrf_k + rank + 1)
    pool = sorted(fused, key=lambda c: (-fused[c], c))[: max(top_k, RERANK_POOL)]
    records = view.chunks(pool)
    bonus = SENTENCE_WEIGHT * _best_sentence_cosines(view, records, question_vector)
    bonus += COVERAGE_WEIGHT * _term_coverage(view, records, question_tokens)
    final = {c: fused[c] + float(extra) for c, extra in zip(pool, bonus)}
    best = sorted(pool, key=lambda c: (-final[c], c))[:top_k]
    record = dict(zip(pool, records))
    dense = similarities([record[c] for c in best], question_vector)
    hits = [
        Hit(chunk_id=c, score=final[c], dense=float(cosine), dense_rank=dense_rank.get(c), bm25_rank=bm25_rank.get(c))
        for c, cosine in zip(best, dense)
    ]
    if timings is not None:
        timings["dense_ms"] = (after_dense - clock) * 1000
        timings["bm25_ms"] = (after_bm25 - after_dense) * 1000
        timings["fusion_ms"] = (time.perf_counter() - after_bm25) * 1000
    return hits


def idf(view: ReadView, terms: Sequence[str]) -> np.ndarray:
    """BM25's inverse document frequency of each term over the view's chunks (unknown terms: df 0)."""
    return _idf(view.document_frequency(terms), view.chunk_count)


def _idf(document_frequency: np.ndarray, chunk_count: int) -> np.ndarray:
    df = np.asarray(document_frequency, float)
    return np.log(1.0 + (max(chunk_count, 1) - df + 0.5) / (df + 0.5))


def similarities(records: Sequence[ChunkRecord] | Sequence[SentenceRecord], query: np.ndarray) -> np.ndarray:
    """Each record's cosine similarity to the normalised `query`: one float32 matrix-vector product."""
    if not records:
        return np.zeros(0, np.float32)
    return np.stack([r.vector for r in records]).astype(np.float32, copy=False) @ query


def _best_sentence_cosines(view: ReadView, chunks: list[ChunkRecord], query: np.ndarray) -> np.ndarray:
    """Each chunk's best sentence cosine to the question (0 for a chunk without sentences)."""
    counts = np.array([len(c.sentence_ids) for c in chunks], np.int64)
    sentences = view.sentences([s for c in chunks for s in c.sentence_ids])
    if not sentences:
        return np.zeros(len(chunks))
    best = np.zeros(len(chunks))
    has = counts > 0
    best[has] = np.maximum.reduceat(similarities(sentences, query), np.concatenate([[0], np.cumsum(counts[has])[:-1]]))
    return best


def _term_coverage(view: ReadView, chunks: list[ChunkRecord], tokens: list[str]) -> np.ndarray:
    """IDF-weighted share of the question's terms found in each chunk (0 to 1); terms no chunk
    holds count for nothing."""
    terms = list(dict.fromkeys(tokens))
    df = view.document_frequency(terms)
    known = [t for t, n in zip(terms, df) if n > 0]
    if not known:
        return np.zeros(len(chunks))
    weights = _idf(df[df > 0], view.chunk_count)
    found = np.array([[t in c.terms for t in known] for c in chunks], np.float64).reshape(len(chunks), len(known))
    return found @ weights / weights.sum()


def passages(view: ReadView, hits: Sequence[Hit], rrf_k: int) -> tuple[Passage, ...]:
    """The hits' chunks as passages, their score relative to the best possible one."""
    best_possible = best_possible_score(rrf_k)
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
