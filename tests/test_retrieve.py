"""Hybrid retrieval: dense search fused with BM25 by reciprocal rank, with document filters.

A small store of handmade documents (one sentence per chunk) and random unit vectors: the query
vector is set equal to a chunk's vector to control the dense ranking. Retrieval reads the store
through its view (qa.store.protocol), so these tests do too: chunks are named by id.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from qa.retrieve import COVERAGE_WEIGHT, SENTENCE_WEIGHT, Hit, retrieve, tokenize
from qa.store import NewDocument, Store
from qa.store.protocol import ReadView
from qa.types import ChunkRecord, Document

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


def new_documents(docs: dict[str, list[str]], seed: int) -> dict[str, NewDocument]:
    rng = np.random.default_rng(seed)
    return {d: new_document(d, sentences, rng) for d, sentences in docs.items()}


def build(root: Path, docs: dict[str, list[str]] | list[NewDocument], seed: int = 7) -> Store:
    items = list(new_documents(docs, seed).values()) if isinstance(docs, dict) else docs
    store = Store(root, MODEL)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", lambda fd: None)  # the disk is not under test here
        store.commit(items, set())
    return store


@pytest.fixture(scope="module")
def view(tmp_path_factory) -> ReadView:
    return build(tmp_path_factory.mktemp("retrieve") / "index", DOCS).view()


def all_chunks(view: ReadView) -> list[ChunkRecord]:
    """Every chunk of the view, by id (an exhaustive dense search finds them all)."""
    found = view.dense_search(np.full(DIM, DIM**-0.5, np.float32), view.chunk_count)
    return view.chunks(sorted(s.chunk_id for s in found))


def chunk(view: ReadView, doc_id: str, k: int) -> int:
    """The id of chunk k (0-based) of a document of DOCS."""
    [found] = [c.chunk_id for c in all_chunks(view) if c.doc_id == doc_id and c.text == DOCS[doc_id][k]]
    return found


def record(view: ReadView, chunk_id: int) -> ChunkRecord:
    return view.chunks([chunk_id])[0]


def vector(view: ReadView, chunk_id: int) -> np.ndarray:
    return record(view, chunk_id).vector


def near(view: ReadView, chunk_id: int, cosine: float = 0.4) -> np.ndarray:
    """A question-like vector: cosine `cosine` to the chunk, not equal to any stored vector."""
    target = vector(view, chunk_id)
    other = np.random.default_rng(chunk_id).standard_normal(DIM).astype(np.float32)
    other -= (other @ target) * target
    other /= np.linalg.norm(other)
    return np.asarray(cosine * target + np.sqrt(1 - cosine**2) * other, np.float32)


def run(view: ReadView, q: np.ndarray, question: str, *, top_k: int = 5, depth: int = 50, **kwargs) -> list[Hit]:
    return retrieve(view, q, tokenize([question])[0], top_k=top_k, depth=depth, rrf_k=RRF_K, **kwargs)


def dense_order(view: ReadView, q: np.ndarray, doc_ids: set[str] | None = None) -> list[int]:
    """Chunk ids by exact cosine to q (ties: lower id first), of `doc_ids` only if given."""
    chunks = [c for c in all_chunks(view) if doc_ids is None or c.doc_id in doc_ids]
    scores = np.stack([c.vector for c in chunks]) @ q
    return [chunks[i].chunk_id for i in np.argsort(-scores, kind="stable")]


def test_store_layout(view: ReadView):
    assert view.chunk_count == sum(len(v) for v in DOCS.values())
    assert record(view, chunk(view, "ukraine", 1)).text == DOCS["ukraine"][1]


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


def test_dense_hit_ranks_first(view: ReadView):
    for doc_id, k in [("ukraine", 2), ("harbour", 0), ("budget", 3)]:
        target = chunk(view, doc_id, k)
        hits = run(view, vector(view, target), "zzzunknownword")
        assert hits[0].chunk_id == target
        assert hits[0].dense_rank == 0
        assert hits[0].bm25_rank is None
        assert hits[0].dense == pytest.approx(1.0, abs=1e-5)


def test_dense_only_ranking_follows_cosine(view: ReadView):
    q = vector(view, chunk(view, "budget", 1))
    hits = run(view, q, "", top_k=view.chunk_count)
    assert [h.chunk_id for h in hits] == dense_order(view, q)
    assert [h.dense_rank for h in hits] == list(range(view.chunk_count))
    assert all(h.bm25_rank is None for h in hits)
    cosines = [h.dense for h in hits]
    assert cosines == sorted(cosines, reverse=True)


# --- BM25 ---------------------------------------------------------------------------------------


def test_rare_name_ranks_its_chunk_first_even_when_the_vector_points_elsewhere(view: ReadView):
    kallas = chunk(view, "ukraine", 1)
    elsewhere = chunk(view, "budget", 2)
    hits = run(view, near(view, elsewhere, 0.7), "What did Kallas say about peacekeeping?")
    assert hits[0].chunk_id == kallas
    assert hits[0].bm25_rank == 0
    assert hits[0].dense_rank not in (None, 0)
    assert elsewhere in [h.chunk_id for h in hits]  # the dense winner is still there, behind
    assert "Kallas" in record(view, hits[0].chunk_id).text


def test_bm25_only_ranks_chunks_holding_the_words(view: ReadView):
    q = vector(view, chunk(view, "ukraine", 0))
    hits = run(view, q, "Fishermen protested", top_k=view.chunk_count)
    by_id = {h.chunk_id: h for h in hits}
    fishermen = chunk(view, "harbour", 1)
    resigned = chunk(view, "budget", 3)  # "in protest": stems to the same token
    assert by_id[fishermen].bm25_rank == 0
    assert by_id[resigned].bm25_rank == 1
    assert sum(h.bm25_rank is not None for h in hits) == 2


def test_chunk_without_tokens_is_still_found_densely(view: ReadView):
    empty = chunk(view, "harbour", 2)
    assert record(view, empty).terms == frozenset()
    hits = run(view, vector(view, empty), "what it is")
    assert hits[0].chunk_id == empty


# --- fusion -------------------------------------------------------------------------------------


def expected_score(h: Hit) -> float:
    """RRF plus the sentence term (one sentence per chunk here: its cosine is the chunk's), for a
    question none of whose terms is in the index (so no coverage term)."""
    rrf = sum(1.0 / (RRF_K + r + 1) for r in (h.dense_rank, h.bm25_rank) if r is not None)
    return rrf + SENTENCE_WEIGHT * h.dense


@pytest.mark.parametrize("top_k", [1, 3, 5, 100])
def test_fusion_returns_top_k_unique_chunks_by_score(view: ReadView, top_k: int):
    q = vector(view, chunk(view, "harbour", 0))
    question = "zzzunknown qqqunknown"
    hits = run(view, q, question, top_k=top_k)
    ids = [h.chunk_id for h in hits]
    assert len(ids) == len(set(ids)) == min(top_k, view.chunk_count)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    for h in hits:
        assert h.score == pytest.approx(expected_score(h), abs=1e-3)  # sentence vectors are float16
        assert h.dense == pytest.approx(float(vector(view, h.chunk_id) @ q), abs=1e-5)
    # Dense ranks agree with an exact numpy ranking.
    order = dense_order(view, q)
    for h in hits:
        assert h.dense_rank == order.index(h.chunk_id)
    assert hits[0].chunk_id == chunk(view, "harbour", 0)
    assert hits[0].dense_rank == 0
    # Nothing outside the answer beats anything in it.
    if top_k < view.chunk_count:
        everything = run(view, q, question, top_k=view.chunk_count)
        assert [h.chunk_id for h in everything[:top_k]] == ids
        assert min(scores) >= max(h.score for h in everything[top_k:])


def test_fusion_ties_break_by_chunk_id(tmp_path: Path):
    """Equal scores (two chunks with the same vector and text) come in chunk id order."""
    twins = {"a": ["The harbour was closed."], "b": ["The harbour was closed."]}
    view = build(tmp_path / "index", twins).view()
    hits = run(view, np.zeros(DIM, np.float32), "harbour closed")
    assert [h.chunk_id for h in hits] == sorted(c.chunk_id for c in all_chunks(view))
    assert hits[0].score == hits[1].score


def test_rare_terms_and_the_best_sentence_reorder_the_fused_pool(view: ReadView):
    """Two chunks tied on RRF (dense-only rank 0 and BM25-only rank 0): the one holding the
    question's rare term wins by coverage unless the other is the question's own sentence."""
    kallas = chunk(view, "ukraine", 1)
    elsewhere = chunk(view, "budget", 2)
    hits = run(view, vector(view, elsewhere), "Kallas", depth=1)
    assert {h.chunk_id for h in hits} == {kallas, elsewhere}
    by_id = {h.chunk_id: h for h in hits}
    # Same RRF; the dense winner's sentence cosine is 1.0 (0.08), Kallas' coverage is 1.0 (0.05).
    assert by_id[elsewhere].score - by_id[kallas].score == pytest.approx(
        SENTENCE_WEIGHT * (1.0 - by_id[kallas].dense) - COVERAGE_WEIGHT, abs=1e-3
    )


def test_depth_limits_each_ranking(view: ReadView):
    q = vector(view, chunk(view, "budget", 0))
    hits = run(view, q, "", top_k=100, depth=3)
    assert len(hits) == 3
    assert [h.chunk_id for h in hits] == dense_order(view, q)[:3]


# --- filters ------------------------------------------------------------------------------------


def test_doc_ids_filter_restricts_results(view: ReadView):
    outside = chunk(view, "ukraine", 1)
    q = vector(view, outside)
    hits = run(view, q, "What did Kallas say?", top_k=100, doc_ids={"budget"})
    assert hits, "the filtered document's chunks are still ranked densely"
    assert {record(view, h.chunk_id).doc_id for h in hits} == {"budget"}
    assert len(hits) == len(DOCS["budget"])
    assert [h.chunk_id for h in hits] == dense_order(view, q, {"budget"})
    assert all(h.bm25_rank is None for h in hits)


def test_doc_ids_filter_keeps_bm25_within_the_documents(view: ReadView):
    q = vector(view, chunk(view, "ukraine", 0))
    hits = run(view, q, "protest", top_k=100, doc_ids=["budget", "ukraine"])
    assert {record(view, h.chunk_id).doc_id for h in hits} == {"budget", "ukraine"}
    bm25 = [h for h in hits if h.bm25_rank is not None]
    assert [h.chunk_id for h in bm25] == [chunk(view, "budget", 3)]  # not the harbour's protest
    first_dense = next(h for h in hits if h.dense_rank == 0)
    assert first_dense.chunk_id == chunk(view, "ukraine", 0)


def test_unknown_doc_id_gives_nothing(view: ReadView):
    q = vector(view, 0)
    assert run(view, q, "Kallas", doc_ids={"no-such-document"}) == []
    assert run(view, q, "Kallas", doc_ids=[]) == []
    mixed = run(view, q, "Kallas", top_k=100, doc_ids={"no-such-document", "harbour"})
    assert {record(view, h.chunk_id).doc_id for h in mixed} == {"harbour"}


def test_timings_are_recorded(view: ReadView):
    timings: dict[str, float] = {"embed_ms": 1.0}
    hits = run(view, vector(view, 0), "Kallas", timings=timings)
    assert hits
    assert {"dense_ms", "bm25_ms", "fusion_ms"} <= set(timings)
    assert timings["embed_ms"] == 1.0
    for key in ("dense_ms", "bm25_ms", "fusion_ms"):
        assert isinstance(timings[key], float) and 0.0 <= timings[key] < 10_000


def test_empty_store_gives_nothing(tmp_path: Path):
    view = Store(tmp_path / "empty", MODEL).view()
    timings: dict[str, float] = {}
    assert retrieve(view, np.ones(DIM, np.float32), ["kalla"], top_k=5, depth=10, rrf_k=RRF_K, timings=timings) == []


# --- after removal ------------------------------------------------------------------------------


def test_retrieval_after_removing_a_document(tmp_path: Path):
    store = build(tmp_path / "index", DOCS, seed=11)
    before = store.view()
    kept_vectors = {
        (d, k): vector(before, chunk(before, d, k)) for d in ("harbour", "budget") for k in range(len(DOCS[d]))
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", lambda fd: None)
        store.commit([], {"ukraine"})
    after = store.view()
    assert after.chunk_count == before.chunk_count - len(DOCS["ukraine"])
    # Each kept chunk is still found by its own vector, under its own id.
    for (doc_id, k), q in kept_vectors.items():
        hits = run(after, q, "")
        assert hits[0].chunk_id == chunk(before, doc_id, k)
        assert record(after, hits[0].chunk_id).text == DOCS[doc_id][k]
    # The removed document's words stay in the local vocabulary but match nothing, and do not crash.
    q = kept_vectors[("budget", 0)]
    hits = run(after, q, "Kallas Brussels ceasefire", top_k=100)
    assert hits and all(h.bm25_rank is None for h in hits)
    assert all("Kallas" not in record(after, h.chunk_id).text for h in hits)
    # Words of the kept documents still work.
    hits = run(after, near(after, chunk(after, "budget", 0)), "Fishermen")
    assert record(after, hits[0].chunk_id).text == DOCS["harbour"][1]
    assert hits[0].bm25_rank == 0


def test_a_removed_document_weighs_nothing(tmp_path: Path):
    """After a removal, retrieval scores exactly as over an index that never held the document:
    its words (still in the local vocabulary, in no chunk) count for nothing in term coverage."""
    docs = new_documents(DOCS, seed=11)
    store = build(tmp_path / "index", list(docs.values()))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", lambda fd: None)
        store.commit([], {"ukraine"})
    removed = store.view()
    never = build(tmp_path / "never", [docs["harbour"], docs["budget"]]).view()
    for question in ("Kallas closed the harbour", "Brussels budget", "Fishermen protested in Brussels"):
        q = near(never, chunk(never, "budget", 1))
        found = [(record(removed, h.chunk_id).text, h.score, h.dense, h.dense_rank, h.bm25_rank)
                 for h in run(removed, q, question, top_k=100)]
        expected = [(record(never, h.chunk_id).text, h.score, h.dense, h.dense_rank, h.bm25_rank)
                    for h in run(never, q, question, top_k=100)]
        assert found == expected, question


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
