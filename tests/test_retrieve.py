"""Hybrid retrieval: dense FAISS search fused with BM25 by reciprocal rank, with document filters.

A small store of handmade documents (one sentence per chunk) and random unit vectors: the query
vector is set equal to a chunk's vector to control the dense ranking.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from qa.retrieve import COVERAGE_WEIGHT, SENTENCE_WEIGHT, Hit, retrieve, tokenize
from qa.store import NewDocument, Snapshot, Store
from qa.types import Document

DIM = 16
MODEL = "test-model"
RRF_K = 60

# One sentence per chunk; chunk texts are joined by blank lines in the document.
DOCS: dict[str, list[str]] = {
    "ukraine": [
        "Ministers met in Brussels to discuss a ceasefire.",
        "Kaja Kallas said there is no peace to keep.",
        "The coalition plans to protect Ukrainian skies and seas.",
    ],
    "harbour": [
        "The harbour was closed in March after the storm.",
        "Fishermen protested outside the town hall.",
        "It is what it is.",  # only stopwords: a chunk without BM25 tokens
    ],
    "budget": [
        "The budget grew by ten percent this year.",
        "Taxes on fuel were unchanged.",
        "Auditors found no irregularities in the accounts.",
        "The finance minister resigned in protest.",
    ],
}


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def new_document(doc_id: str, sentences: list[str], rng: np.random.Generator) -> NewDocument:
    text = "\n\n".join(sentences)
    spans, start = [], 0
    for s in sentences:
        spans.append((start, start + len(s)))
        start += len(s) + 2
    n = len(sentences)
    vectors = unit(rng, n)
    return NewDocument(
        doc=Document(doc_id=doc_id, title=doc_id.title(), source=f"{doc_id}.txt", path=f"/d/{doc_id}.txt", text=text),
        chunk_spans=np.array(spans, np.int64),
        chunk_pages=np.full(n, -1, np.int32),
        sentence_spans=np.array(spans, np.int64),
        sentence_chunks=np.arange(n, dtype=np.int32),
        chunk_vectors=vectors,
        sentence_vectors=vectors.astype(np.float16),  # one sentence per chunk
        chunk_tokens=tokenize(sentences),
    )


def build(root: Path, docs: dict[str, list[str]], seed: int = 7) -> Store:
    rng = np.random.default_rng(seed)
    store = Store(root, MODEL)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", lambda fd: None)  # the disk is not under test here
        store.commit([new_document(d, s, rng) for d, s in docs.items()], set())
    return store


@pytest.fixture(scope="module")
def snap(tmp_path_factory) -> Snapshot:
    return build(tmp_path_factory.mktemp("retrieve") / "index", DOCS).snapshot()


def position(snap: Snapshot, doc_id: str, k: int) -> int:
    """Position of chunk k (0-based) of a document."""
    return int(np.flatnonzero(snap.chunk_doc == snap.doc_index[doc_id])[k])


def chunk_text(snap: Snapshot, pos: int) -> str:
    start, end = snap.chunk_spans[pos]
    return snap.text(int(snap.chunk_doc[pos]))[start:end]


def vector(snap: Snapshot, pos: int) -> np.ndarray:
    return np.array(snap.chunk_vectors[pos], dtype=np.float32)


def near(snap: Snapshot, pos: int, cosine: float = 0.4) -> np.ndarray:
    """A question-like vector: cosine `cosine` to chunk `pos`, not equal to any stored vector."""
    target = vector(snap, pos)
    other = np.random.default_rng(pos).standard_normal(DIM).astype(np.float32)
    other -= (other @ target) * target
    other /= np.linalg.norm(other)
    return np.asarray(cosine * target + np.sqrt(1 - cosine**2) * other, np.float32)


def run(snap: Snapshot, q: np.ndarray, question: str, *, top_k: int = 5, depth: int = 50, **kwargs) -> list[Hit]:
    return retrieve(snap, q, tokenize([question])[0], top_k=top_k, depth=depth, rrf_k=RRF_K, **kwargs)


def dense_order(snap: Snapshot, q: np.ndarray, allowed: np.ndarray | None = None) -> list[int]:
    scores = np.asarray(snap.chunk_vectors, np.float32) @ q
    order = [int(p) for p in np.argsort(-scores, kind="stable")]
    return order if allowed is None else [p for p in order if p in set(allowed.tolist())]


def test_store_layout(snap: Snapshot):
    assert snap.size == sum(len(v) for v in DOCS.values())
    assert chunk_text(snap, position(snap, "ukraine", 1)) == DOCS["ukraine"][1]


# --- tokenize ------------------------------------------------------------------------------------


def test_tokenize_stems_and_drops_stopwords():
    [tokens] = tokenize(["What did Kallas say about peacekeeping?"])
    assert "kalla" in tokens
    assert "peacekeep" in tokens
    for stop in ("what", "did", "about", "What"):
        assert stop not in tokens
    assert all(t == t.lower() for t in tokens)


def test_tokenize_is_per_text_and_handles_empty():
    tokens = tokenize(["Running runners ran.", "", "the of and"])
    assert len(tokens) == 3
    assert "run" in tokens[0]
    assert tokens[1] == [] and tokens[2] == []


def test_tokenize_matches_inflections():
    a, b = tokenize(["The ministers protested", "a minister protests"])
    assert a == b
    assert len(a) == 2 and "protest" in a


# --- dense --------------------------------------------------------------------------------------


def test_dense_hit_ranks_first(snap: Snapshot):
    for doc_id, k in [("ukraine", 2), ("harbour", 0), ("budget", 3)]:
        target = position(snap, doc_id, k)
        hits = run(snap, vector(snap, target), "zzzunknownword")
        assert hits[0].position == target
        assert hits[0].dense_rank == 0
        assert hits[0].bm25_rank is None
        assert hits[0].dense == pytest.approx(1.0, abs=1e-5)


def test_dense_only_ranking_follows_cosine(snap: Snapshot):
    q = vector(snap, position(snap, "budget", 1))
    hits = run(snap, q, "", top_k=snap.size)
    assert [h.position for h in hits] == dense_order(snap, q)
    assert [h.dense_rank for h in hits] == list(range(snap.size))
    assert all(h.bm25_rank is None for h in hits)
    cosines = [h.dense for h in hits]
    assert cosines == sorted(cosines, reverse=True)


# --- BM25 ---------------------------------------------------------------------------------------


def test_rare_name_ranks_its_chunk_first_even_when_the_vector_points_elsewhere(snap: Snapshot):
    kallas = position(snap, "ukraine", 1)
    elsewhere = position(snap, "budget", 2)
    hits = run(snap, near(snap, elsewhere, 0.7), "What did Kallas say about peacekeeping?")
    assert hits[0].position == kallas
    assert hits[0].bm25_rank == 0
    assert hits[0].dense_rank not in (None, 0)
    assert elsewhere in [h.position for h in hits]  # the dense winner is still there, behind
    assert "Kallas" in chunk_text(snap, hits[0].position)


def test_bm25_only_ranks_chunks_holding_the_words(snap: Snapshot):
    q = vector(snap, position(snap, "ukraine", 0))
    hits = run(snap, q, "Fishermen protested", top_k=snap.size)
    by_pos = {h.position: h for h in hits}
    fishermen = position(snap, "harbour", 1)
    resigned = position(snap, "budget", 3)  # "in protest": stems to the same token
    assert by_pos[fishermen].bm25_rank == 0
    assert by_pos[resigned].bm25_rank == 1
    assert sum(h.bm25_rank is not None for h in hits) == 2


def test_chunk_without_tokens_is_still_found_densely(snap: Snapshot):
    empty = position(snap, "harbour", 2)
    assert snap.token_offsets[empty] == snap.token_offsets[empty + 1]
    hits = run(snap, vector(snap, empty), "what it is")
    assert hits[0].position == empty


# --- fusion -------------------------------------------------------------------------------------


def expected_score(h: Hit) -> float:
    """RRF plus the sentence term (one sentence per chunk here: its cosine is the chunk's), for a
    question none of whose terms is in the index (so no coverage term)."""
    rrf = sum(1.0 / (RRF_K + r + 1) for r in (h.dense_rank, h.bm25_rank) if r is not None)
    return rrf + SENTENCE_WEIGHT * h.dense


@pytest.mark.parametrize("top_k", [1, 3, 5, 100])
def test_fusion_returns_top_k_unique_positions_by_score(snap: Snapshot, top_k: int):
    q = vector(snap, position(snap, "harbour", 0))
    question = "zzzunknown qqqunknown"
    hits = run(snap, q, question, top_k=top_k)
    positions = [h.position for h in hits]
    assert len(positions) == len(set(positions)) == min(top_k, snap.size)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    for h in hits:
        assert h.score == pytest.approx(expected_score(h), abs=1e-3)  # sentence vectors are float16
        assert h.dense == pytest.approx(float(vector(snap, h.position) @ q), abs=1e-5)
    # Dense ranks agree with an exact numpy ranking.
    order = dense_order(snap, q)
    for h in hits:
        assert h.dense_rank == order.index(h.position)
    assert hits[0].position == position(snap, "harbour", 0)
    assert hits[0].dense_rank == 0
    # Nothing outside the answer beats anything in it.
    if top_k < snap.size:
        everything = run(snap, q, question, top_k=snap.size)
        assert [h.position for h in everything[:top_k]] == positions
        assert min(scores) >= max(h.score for h in everything[top_k:])


def test_fusion_ties_break_by_position(tmp_path: Path):
    """Equal scores (two chunks with the same vector and text) come in position order."""
    twins = {"a": ["The harbour was closed."], "b": ["The harbour was closed."]}
    store = build(tmp_path / "index", twins)
    snap = store.snapshot()
    hits = run(snap, np.zeros(DIM, np.float32), "harbour closed")
    assert [h.position for h in hits] == [0, 1]
    assert hits[0].score == hits[1].score


def test_rare_terms_and_the_best_sentence_reorder_the_fused_pool(snap: Snapshot):
    """Two chunks tied on RRF (dense-only rank 0 and BM25-only rank 0): the one holding the
    question's rare term wins by coverage unless the other is the question's own sentence."""
    kallas = position(snap, "ukraine", 1)
    elsewhere = position(snap, "budget", 2)
    hits = run(snap, vector(snap, elsewhere), "Kallas", depth=1)
    assert {h.position for h in hits} == {kallas, elsewhere}
    by_pos = {h.position: h for h in hits}
    # Same RRF; the dense winner's sentence cosine is 1.0 (0.08), Kallas' coverage is 1.0 (0.05).
    assert by_pos[elsewhere].score - by_pos[kallas].score == pytest.approx(
        SENTENCE_WEIGHT * (1.0 - by_pos[kallas].dense) - COVERAGE_WEIGHT, abs=1e-3
    )


def test_depth_limits_each_ranking(snap: Snapshot):
    q = vector(snap, position(snap, "budget", 0))
    hits = run(snap, q, "", top_k=100, depth=3)
    assert len(hits) == 3
    assert [h.position for h in hits] == dense_order(snap, q)[:3]


# --- filters ------------------------------------------------------------------------------------


def test_doc_ids_filter_restricts_results(snap: Snapshot):
    outside = position(snap, "ukraine", 1)
    q = vector(snap, outside)
    hits = run(snap, q, "What did Kallas say?", top_k=100, doc_ids={"budget"})
    budget = snap.doc_index["budget"]
    assert hits, "the filtered document's chunks are still ranked densely"
    assert {int(snap.chunk_doc[h.position]) for h in hits} == {budget}
    assert len(hits) == len(DOCS["budget"])
    allowed = np.flatnonzero(snap.chunk_doc == budget)
    assert [h.position for h in hits] == dense_order(snap, q, allowed)
    assert all(h.bm25_rank is None for h in hits)


def test_doc_ids_filter_keeps_bm25_within_the_documents(snap: Snapshot):
    q = vector(snap, position(snap, "ukraine", 0))
    hits = run(snap, q, "protest", top_k=100, doc_ids=["budget", "ukraine"])
    wanted = {snap.doc_index["budget"], snap.doc_index["ukraine"]}
    assert {int(snap.chunk_doc[h.position]) for h in hits} == wanted
    bm25 = [h for h in hits if h.bm25_rank is not None]
    assert [h.position for h in bm25] == [position(snap, "budget", 3)]  # not the harbour's protest
    first_dense = next(h for h in hits if h.dense_rank == 0)
    assert first_dense.position == position(snap, "ukraine", 0)


def test_unknown_doc_id_gives_nothing(snap: Snapshot):
    q = vector(snap, 0)
    assert run(snap, q, "Kallas", doc_ids={"no-such-document"}) == []
    assert run(snap, q, "Kallas", doc_ids=[]) == []
    mixed = run(snap, q, "Kallas", top_k=100, doc_ids={"no-such-document", "harbour"})
    assert {int(snap.chunk_doc[h.position]) for h in mixed} == {snap.doc_index["harbour"]}


def test_timings_are_recorded(snap: Snapshot):
    timings: dict[str, float] = {"embed_ms": 1.0}
    hits = run(snap, vector(snap, 0), "Kallas", timings=timings)
    assert hits
    assert {"dense_ms", "bm25_ms", "fusion_ms"} <= set(timings)
    assert timings["embed_ms"] == 1.0
    for key in ("dense_ms", "bm25_ms", "fusion_ms"):
        assert isinstance(timings[key], float) and 0.0 <= timings[key] < 10_000


def test_empty_store_gives_nothing(tmp_path: Path):
    snap = Store(tmp_path / "empty", MODEL).snapshot()
    timings: dict[str, float] = {}
    assert retrieve(snap, np.ones(DIM, np.float32), ["kalla"], top_k=5, depth=10, rrf_k=RRF_K, timings=timings) == []


# --- after removal ------------------------------------------------------------------------------


def test_retrieval_after_removing_a_document(tmp_path: Path):
    store = build(tmp_path / "index", DOCS, seed=11)
    before = store.snapshot()
    kept_vectors = {
        (d, k): vector(before, position(before, d, k)) for d in ("harbour", "budget") for k in range(len(DOCS[d]))
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", lambda fd: None)
        after = store.commit([], {"ukraine"})
    assert after.size == before.size - len(DOCS["ukraine"])
    # Each kept chunk is still found by its own vector, at its new position (FAISS ids -> positions).
    for (doc_id, k), q in kept_vectors.items():
        hits = run(after, q, "")
        assert chunk_text(after, hits[0].position) == DOCS[doc_id][k]
    # The removed document's words stay in the vocabulary but match nothing, and do not crash.
    q = kept_vectors[("budget", 0)]
    hits = run(after, q, "Kallas Brussels ceasefire", top_k=100)
    assert hits and all(h.bm25_rank is None for h in hits)
    assert all("Kallas" not in chunk_text(after, h.position) for h in hits)
    # Words of the kept documents still work.
    hits = run(after, near(after, position(after, "budget", 0)), "Fishermen")
    assert chunk_text(after, hits[0].position) == DOCS["harbour"][1]
    assert hits[0].bm25_rank == 0


@pytest.mark.parametrize("n, k", [(10, 3), (1000, 50), (200_000, 50), (200_000, 5)])
def test_top_k_positive_matches_a_full_sort(n: int, k: int) -> None:
    """The sampled cut-off never drops a true top-k score; ties go to the lower position."""
    from qa.store.local import top_k_positive

    rng = np.random.default_rng(n + k)
    scores = np.round(rng.exponential(1.0, n), 2)  # rounded: many ties
    scores[rng.random(n) < 0.7] = 0.0  # most chunks hold no question term
    expected = [int(i) for i in np.lexsort((np.arange(n), -scores)) if scores[i] > 0][:k]
    assert top_k_positive(scores, k).tolist() == expected


def test_top_k_positive_with_no_positive_score_is_empty() -> None:
    from qa.store.local import top_k_positive

    assert top_k_positive(np.zeros(100_000), 50).tolist() == []


def test_tokenize_is_bm25s_tokenize_without_importing_it():
    """The ask path tokenises without bm25s (its import loads scipy); the index was built by it."""
    import bm25s

    from qa.retrieve import _stopwords, _stemmer

    texts = [p.read_text(encoding="utf-8") for p in sorted((Path(__file__).parents[1] / "seeds").glob("*.txt"))]
    texts += ["", "U.S. GDP grew 2.5% in Q3; it's the Kallas-Macron plan (2024).", "Élan, naïve café: über 1,000 €"]
    for text in texts:
        assert tokenize([text]) == bm25s.tokenize([text], stopwords="en_plus", stemmer=_stemmer(), return_ids=False,
                                                  show_progress=False), text[:80]
    assert len(_stopwords()) > 100


def test_keyword_scores_are_bm25s_scores(tmp_path: Path):
    """KeywordIndex sums the matrix bm25s wrote exactly as bm25s's own scorer does."""
    import bm25s

    docs = {f"doc{i}": [f"sentence {j} of document {i} about harbour ships storm {i * j}" for j in range(4)]
            for i in range(6)}
    snap = build(tmp_path / "index", docs).snapshot()
    reference = bm25s.BM25.load(str(snap.root / snap.generation / "bm25"), allow_pickle=False)
    for question in ("harbour storm", "document 3", "ships ships storm 4", "nothing here"):
        ids = [snap.term_index[t] for t in tokenize([question])[0] if t in snap.term_index]
        expected = reference.get_scores_from_ids(ids) if ids else np.zeros(snap.size, np.float32)
        np.testing.assert_allclose(snap.keyword.scores(ids), expected, rtol=1e-6)
