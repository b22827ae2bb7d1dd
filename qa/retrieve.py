"""Find the chunks that may answer a question: dense FAISS search fused with BM25.

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

import numpy as np

from qa.store import Snapshot
from qa.store.local import top_k_positive

# Measured on SQuAD public (5,696 questions, whole corpus), recall@5: RRF alone 0.946; + best
# sentence cosine 0.956; + IDF term coverage 0.968 (a plateau for coverage weights 0.05-0.08).
RERANK_POOL = 20
SENTENCE_WEIGHT = 0.08
COVERAGE_WEIGHT = 0.05


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
    """A retrieved chunk position with its ranking score and each retriever's view of it."""

    position: int
    score: float  # RRF + SENTENCE_WEIGHT * best sentence cosine + COVERAGE_WEIGHT * term coverage
    dense: float  # cosine similarity to the question (computed for every hit)
    dense_rank: int | None
    bm25_rank: int | None


def best_possible_score(rrf_k: int) -> float:
    """A chunk first in both rankings, with a sentence equal to the question and every term."""
    return 2.0 / (rrf_k + 1) + SENTENCE_WEIGHT + COVERAGE_WEIGHT


def retrieve(
    snap: Snapshot,
    question_vector: np.ndarray,
    question_tokens: list[str],
    *,
    top_k: int,
    depth: int,
    rrf_k: int,
    doc_ids: Collection[str] | None = None,
    timings: dict[str, float] | None = None,
) -> list[Hit]:
    if not snap.size:
        return []
    allowed = _allowed_positions(snap, doc_ids)
    if allowed is not None and not len(allowed):
        return []
    clock = time.perf_counter()
    dense_positions = _dense(snap, question_vector, depth, allowed)
    after_dense = time.perf_counter()
    bm25_positions = _bm25(snap, question_tokens, depth, allowed)
    after_bm25 = time.perf_counter()

    fused: dict[int, float] = {}
    dense_rank = {p: r for r, p in enumerate(dense_positions)}
    bm25_rank = {p: r for r, p in enumerate(bm25_positions)}
    for ranking in (dense_positions, bm25_positions):
        for rank, pos in enumerate(ranking):
            fused[pos] = fused.get(pos, 0.0) + 1.0 / (rrf_k + rank + 1)
    pool = sorted(fused, key=lambda p: (-fused[p], p))[: max(top_k, RERANK_POOL)]
    bonus = SENTENCE_WEIGHT * _best_sentence_cosines(snap, pool, question_vector)
    bonus += COVERAGE_WEIGHT * _term_coverage(snap, pool, question_tokens)
    final = {p: fused[p] + float(extra) for p, extra in zip(pool, bonus)}
    best = sorted(pool, key=lambda p: (-final[p], p))[:top_k]
    cosines = np.asarray(snap.chunk_vectors[np.asarray(best, dtype=np.int64)], dtype=np.float32) @ question_vector
    hits = [
        Hit(
            position=int(p),
            score=final[p],
            dense=float(c),
            dense_rank=dense_rank.get(p),
            bm25_rank=bm25_rank.get(p),
        )
        for p, c in zip(best, cosines)
    ]
    if timings is not None:
        timings["dense_ms"] = (after_dense - clock) * 1000
        timings["bm25_ms"] = (after_bm25 - after_dense) * 1000
        timings["fusion_ms"] = (time.perf_counter() - after_bm25) * 1000
    return hits


def idf(snap: Snapshot, terms: Sequence[str]) -> np.ndarray:
    """BM25's inverse document frequency of each term over the chunks (unknown terms: df 0)."""
    df = np.array([snap.document_frequency[snap.term_index[t]] if t in snap.term_index else 0 for t in terms], float)
    return np.log(1.0 + (max(snap.size, 1) - df + 0.5) / (df + 0.5))


def _best_sentence_cosines(snap: Snapshot, positions: list[int], query: np.ndarray) -> np.ndarray:
    """Each chunk's best sentence cosine to the question (0 for a chunk without sentences)."""
    starts = snap.chunk_sentence_offsets[positions]
    counts = snap.chunk_sentence_offsets[np.asarray(positions) + 1] - starts
    rows = np.concatenate([np.zeros(0, np.int64), *(np.arange(s, s + n) for s, n in zip(starts, counts))])
    if not len(rows):
        return np.zeros(len(positions))
    cosines = np.asarray(snap.sentence_vectors[rows], dtype=np.float32) @ query
    best = np.zeros(len(positions))
    has = counts > 0
    best[has] = np.maximum.reduceat(cosines, np.concatenate([[0], np.cumsum(counts[has])[:-1]]))
    return best


def _term_coverage(snap: Snapshot, positions: list[int], tokens: list[str]) -> np.ndarray:
    """IDF-weighted share of the question's terms found in each chunk (0 to 1)."""
    known = [t for t in dict.fromkeys(tokens) if t in snap.term_index]
    if not known:
        return np.zeros(len(positions))
    ids = [snap.term_index[t] for t in known]
    weights = idf(snap, known)
    starts = snap.token_offsets[positions]
    counts = snap.token_offsets[np.asarray(positions) + 1] - starts
    tokens_of = np.concatenate([np.zeros(0, np.int64), *(snap.token_ids[s : s + n] for s, n in zip(starts, counts))])
    owner = np.repeat(np.arange(len(positions)), counts)
    found = np.zeros((len(positions), len(ids)), bool)
    for j, term in enumerate(ids):
        found[owner[tokens_of == term], j] = True
    return found.astype(np.float64) @ weights / weights.sum()


def _allowed_positions(snap: Snapshot, doc_ids: Collection[str] | None) -> np.ndarray | None:
    if doc_ids is None:
        return None
    wanted = [snap.doc_index[d] for d in doc_ids if d in snap.doc_index]
    return np.flatnonzero(np.isin(snap.chunk_doc, wanted))


def _dense(snap: Snapshot, query: np.ndarray, depth: int, allowed: np.ndarray | None) -> list[int]:
    if allowed is not None:
        # A filtered search is a small exact one over the chosen documents' vectors.
        scores = np.asarray(snap.chunk_vectors[allowed], dtype=np.float32) @ query
        order = np.argsort(-scores, kind="stable")[:depth]
        return allowed[order].tolist()
    import faiss

    # One OpenMP thread for one question: extra threads only wait on busy cores (a 10k search went
    # from ~2 ms to 50-150 ms under load). The setting is per calling thread; builds keep all cores.
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        _, ids = snap.dense.search(query.reshape(1, -1), min(depth, snap.size))
    finally:
        faiss.omp_set_num_threads(threads)
    found = ids[0][ids[0] >= 0]
    return np.searchsorted(snap.chunk_ids, found).tolist()


def _bm25(snap: Snapshot, tokens: list[str], depth: int, allowed: np.ndarray | None) -> list[int]:
    ids = [snap.term_index[t] for t in tokens if t in snap.term_index]
    if not ids:
        return []
    scores = snap.keyword.scores(ids)
    if allowed is not None:
        masked = np.zeros_like(scores)
        masked[allowed] = scores[allowed]
        scores = masked
    return top_k_positive(scores, min(depth, len(scores))).tolist()
