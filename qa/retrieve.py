"""Find the chunks that may answer a question: dense FAISS search fused with BM25.

Dense vectors catch paraphrases; BM25 catches names and exact words ("Kallas") that a small
embedding model blurs. Reciprocal rank fusion combines the two rankings without having to
calibrate their scores against each other.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from qa.store import Snapshot

_STOPWORDS = "en_plus"


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased, stemmed word tokens without stopwords: BM25's and the reader's view of text."""
    import bm25s

    return bm25s.tokenize(
        list(texts), stopwords=_STOPWORDS, stemmer=_stemmer(), return_ids=False, show_progress=False
    )


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk position with its fused score and each retriever's view of it."""

    position: int
    score: float
    dense: float  # cosine similarity to the question (computed for every hit)
    dense_rank: int | None
    bm25_rank: int | None


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
    best = sorted(fused, key=lambda p: (-fused[p], p))[:top_k]
    cosines = np.asarray(snap.chunk_vectors[np.asarray(best, dtype=np.int64)], dtype=np.float32) @ question_vector
    hits = [
        Hit(
            position=int(p),
            score=fused[p],
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
    _, ids = snap.dense.search(query.reshape(1, -1), min(depth, snap.size))
    found = ids[0][ids[0] >= 0]
    return np.searchsorted(snap.chunk_ids, found).tolist()


def _bm25(snap: Snapshot, tokens: list[str], depth: int, allowed: np.ndarray | None) -> list[int]:
    ids = snap.bm25.get_tokens_ids(tokens)
    if not ids:
        return []
    scores = snap.bm25.get_scores_from_ids(ids)
    if allowed is not None:
        masked = np.full_like(scores, -1.0)
        masked[allowed] = scores[allowed]
        scores = masked
    k = min(depth, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [int(p) for p in top if scores[p] > 0]
