"""The dense index is chosen by size: exact below the threshold, IVF above, with high recall.

Small synthetic vectors (no model): the threshold is forced low through `exact_max`, or through
the module constant for a whole commit. bench/ann_recall.py measures the same on real question
vectors at 100k-1M.
"""

from __future__ import annotations

import faiss
import numpy as np
import pytest

import qa.store.local as store_module
from qa.retrieve import retrieve
from qa.store import NewDocument, Store, build_dense_index, ivf_lists
from qa.types import Document

DIM = 64


def clustered(rng: np.random.Generator, n: int, seeds: np.ndarray) -> np.ndarray:
    """Mixtures of two seed vectors plus noise: clusters that overlap, as real embeddings do."""
    a = rng.random((n, 1)).astype(np.float32)
    v = a * seeds[rng.integers(0, len(seeds), n)] + (1 - a) * seeds[rng.integers(0, len(seeds), n)]
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    v += rng.standard_normal(v.shape).astype(np.float32) * 0.03
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    seeds = rng.standard_normal((200, DIM)).astype(np.float32)
    seeds /= np.linalg.norm(seeds, axis=1, keepdims=True)
    vectors = clustered(rng, 4000, seeds)
    queries = clustered(rng, 200, seeds)
    ids = np.arange(len(vectors), dtype=np.int64) * 3 + 11  # ids are not positions
    return vectors, ids, queries


def inner(index) -> object:
    return faiss.downcast_index(index.index)


def recall_at_10(index, vectors, ids, queries) -> float:
    exact = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
    exact.add_with_ids(vectors, ids)
    _, truth = exact.search(queries, 10)
    _, found = index.search(queries, 10)
    return float(np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found)]))


def test_small_collections_get_an_exact_index(data):
    vectors, ids, _ = data
    index = build_dense_index(vectors, ids, exact_max=len(vectors))  # the threshold is inclusive
    assert isinstance(index, faiss.IndexIDMap2)
    assert isinstance(inner(index), faiss.IndexFlatIP)
    assert index.ntotal == len(vectors)


def test_the_default_threshold_is_exact_at_small_sizes(data):
    vectors, ids, _ = data
    assert store_module.DENSE_EXACT_MAX >= 10_000
    assert isinstance(inner(build_dense_index(vectors, ids)), faiss.IndexFlatIP)


def test_large_collections_get_an_ivf_index_with_high_recall(data, tmp_path):
    vectors, ids, queries = data
    index = build_dense_index(vectors, ids, exact_max=1000)
    assert isinstance(index, faiss.IndexIDMap2)
    ivf = inner(index)
    assert isinstance(ivf, faiss.IndexIVFFlat)
    assert ivf.nlist == ivf_lists(len(vectors))
    assert 1 < ivf.nprobe < ivf.nlist
    assert index.ntotal == len(vectors)
    assert recall_at_10(index, vectors, ids, queries) >= 0.98

    # Persisted with its search parameters: a reader needs no extra code.
    path = tmp_path / "dense.faiss"
    faiss.write_index(index, str(path))
    loaded = faiss.read_index(str(path))
    assert faiss.downcast_index(loaded.index).nprobe == ivf.nprobe
    _, a = index.search(queries[:20], 10)
    _, b = loaded.search(queries[:20], 10)
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(b)) <= set(ids.tolist())
    assert recall_at_10(loaded, vectors, ids, queries) >= 0.98


def test_building_is_deterministic(data):
    vectors, ids, queries = data
    _, a = build_dense_index(vectors, ids, exact_max=1000).search(queries[:20], 10)
    _, b = build_dense_index(vectors, ids, exact_max=1000).search(queries[:20], 10)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n, lists", [(50_001, 512), (1_000_000, 2048), (4_000_000, 4096)])
def test_list_counts_grow_with_the_square_root(n, lists):
    assert ivf_lists(n) == lists


def test_a_commit_above_the_threshold_serves_retrieval(data, tmp_path, monkeypatch):
    """Through the real Store and retriever: ids map back to chunk positions, removal rebuilds."""
    vectors, _, queries = data
    monkeypatch.setattr(store_module, "DENSE_EXACT_MAX", 500)
    items = []
    for d in range(40):  # 40 documents of 50 one-sentence chunks: 2000 chunks
        words = [f"w{d}x{i} common." for i in range(50)]
        text = " ".join(words)
        starts = np.cumsum([0] + [len(w) + 1 for w in words[:-1]])
        spans = np.stack([starts, starts + [len(w) for w in words]], axis=1).astype(np.int64)
        doc = Document(f"doc{d:02d}", f"Doc {d}", f"doc{d}.txt", f"/data/doc{d}.txt", text)
        chunk_vectors = vectors[d * 50 : (d + 1) * 50]
        items.append(
            NewDocument(
                doc=doc,
                chunk_spans=spans,
                chunk_pages=np.full(50, -1, np.int32),
                sentence_spans=spans.copy(),
                sentence_chunks=np.arange(50, dtype=np.int32),
                chunk_vectors=chunk_vectors,
                sentence_vectors=chunk_vectors.astype(np.float16),
                chunk_tokens=[[f"w{d}x{i}", "common"] for i in range(50)],
            )
        )
    store = Store(tmp_path / "index", "test-model", DIM)
    with store.lock():
        snap = store.commit(items, set())
    assert isinstance(faiss.downcast_index(snap.dense.index), faiss.IndexIVFFlat)
    exact = np.asarray(snap.chunk_vectors) @ queries.T
    agree = 0
    for j, q in enumerate(queries[:50]):
        hits = retrieve(store.view(), q, ["nothing"], top_k=5, depth=50, rrf_k=60)
        agree += hits[0].chunk_id == int(snap.chunk_ids[np.argmax(exact[:, j])])
        assert len({h.chunk_id for h in hits}) == 5
    assert agree >= 48  # the best chunk comes first (BM25 finds nothing; dense decides)

    with store.lock():
        smaller = store.commit([], {"doc00", "doc01"})
    assert smaller.size == 1900 and smaller.dense.ntotal == 1900
    assert isinstance(faiss.downcast_index(smaller.dense.index), faiss.IndexIVFFlat)
    removed = set(range(100))
    for q in queries[:20]:
        _, found = smaller.dense.search(q.reshape(1, -1), 10)
        assert not removed & set(found[0].tolist())
