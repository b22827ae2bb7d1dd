"""The store protocol (qa/store/protocol.py), one suite run against every backend.

"local" is qa.store.Store on a tmp folder; "milvus" is qa.store.milvus.MilvusStore on a tmp
Milvus Lite folder (skipped with its reason where pymilvus or milvus-lite is not installed).
Documents are built here: real chunking and stemming, random unit vectors, no model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from test_store import DIM, make_doc, unit

from qa.retrieve import tokenize
from qa.store import IndexError as StoreIndexError
from qa.store import NewDocument, Store
from qa.store.protocol import StaleView, chunk_of

MODEL = "test-model"
TEXTS = [
    "Alpha report on the harbour. The harbour was closed in March.\n\n"
    "Ships waited outside the harbour for days. Fishermen protested loudly.\n\n"
    "The mayor reopened it in April.",
    "Beta memo about budgets. The budget grew by ten percent.\n\nTaxes were unchanged this year.",
    "Gamma notes on weather. Storms hit the coast twice.\n\n"
    "Rainfall doubled in autumn. Farmers adapted their crops after the storms.\n\n"
    "Engineers raised the dykes. Nobody was hurt in Zürich or in 2024.",
    "Delta summary of the trial. The jury deliberated for two days. The verdict was guilty.",
]

BACKENDS = ["local", "milvus"]


def _milvus_missing() -> str | None:
    for module in ("pymilvus", "milvus_lite"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'briefqa[milvus]')"
    return None


def open_store(backend: str, folder: Path, model: str = MODEL):
    if backend == "local":
        return Store(folder / "index", model)
    reason = _milvus_missing()
    if reason:
        pytest.skip(reason)
    from qa.store.milvus import MilvusStore

    return MilvusStore(str(folder / "milvus.db"), model)


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def make_store(backend, tmp_path) -> Callable[..., object]:
    """Opens stores of the parametrised backend on this test's folder (one Lite folder: one
    process, so each MilvusStore here shares it the way two stores in one process would)."""
    return lambda model=MODEL: open_store(backend, tmp_path, model)


def new_document(text: str, *, seed: int = 0, max_words: int = 12, page_starts: tuple[int, ...] = ()) -> NewDocument:
    """test_store's document builder, its id the text's hash as ingestion makes it."""
    return make_doc(hashlib.sha256(text.encode("utf-8")).hexdigest()[:16], text, seed=seed, max_words=max_words,
                    page_starts=page_starts)


@pytest.fixture(scope="module")
def docs() -> list[NewDocument]:
    return [new_document(t, seed=i + 1) for i, t in enumerate(TEXTS)]


def filled(make_store, docs, add=None):
    store = make_store()
    with store.lock():
        store.commit(docs if add is None else add, set())
    return store


def ids(hits) -> list[int]:
    return [h.chunk_id for h in hits]


# --- searches ----------------------------------------------------------------------------------
def test_empty_index_answers_nothing(make_store):
    store = make_store()
    assert store.is_new()
    view = store.view()
    assert view.chunk_count == 0
    assert view.dense_search(unit(np.random.default_rng(0), 1)[0], 5) == []
    assert view.keyword_search(["harbour"], 5) == []
    assert view.documents() == []
    assert list(view.document_frequency(["harbour"])) == [0]


def test_empty_index_has_no_records(make_store):
    view = make_store().view()
    with pytest.raises(KeyError):
        view.chunks([0])
    with pytest.raises(KeyError):
        view.sentences([0])


def test_dense_search_is_exact_cosine_best_first(make_store, docs):
    view = filled(make_store, docs).view()
    records = view.chunks(range(view.chunk_count))
    vectors = np.stack([r.vector for r in records])
    query = unit(np.random.default_rng(7), 1)[0]
    expected = np.argsort(-(vectors @ query), kind="stable")
    hits = view.dense_search(query, 5)
    assert ids(hits) == [records[i].chunk_id for i in expected[:5]]
    assert [h.score for h in hits] == pytest.approx(list((vectors @ query)[expected[:5]]), abs=1e-5)
    assert len(view.dense_search(query, 1000)) == view.chunk_count
    assert view.dense_search(query, 0) == []


def test_searches_honour_doc_ids(make_store, docs):
    view = filled(make_store, docs).view()
    beta, gamma = docs[1].doc.doc_id, docs[2].doc.doc_id
    query = docs[1].chunk_vectors[0]
    hits = view.dense_search(query, 10, doc_ids=[gamma])
    assert hits and {r.doc_id for r in view.chunks(ids(hits))} == {gamma}
    assert ids(view.dense_search(query, 1, doc_ids=[beta, gamma])) == ids(view.dense_search(query, 1))
    assert view.dense_search(query, 5, doc_ids=[]) == []
    assert view.dense_search(query, 5, doc_ids=["no-such-document"]) == []
    keyword = view.keyword_search(["storm"], 10, doc_ids=[beta])
    assert keyword == []
    storms = view.keyword_search(["storm"], 10, doc_ids=[gamma])
    assert storms and {r.doc_id for r in view.chunks(ids(storms))} == {gamma}


def test_keyword_search_best_first_positive_and_k(make_store, docs):
    view = filled(make_store, docs).view()
    hits = view.keyword_search(["harbour", "storm"], 10)
    assert hits and all(h.score > 0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for record in view.chunks(ids(hits)):
        assert record.terms & {"harbour", "storm"}
    assert len(view.keyword_search(["harbour", "storm"], 2)) == 2
    assert view.keyword_search(["zebra", "unicorn"], 5) == []
    assert view.keyword_search([], 5) == []
    # Repeats count: a term asked twice weighs twice.
    once, twice = view.keyword_search(["harbour"], 1), view.keyword_search(["harbour", "harbour"], 1)
    assert twice[0].score == pytest.approx(2 * once[0].score, rel=1e-4)


def test_unusual_terms_match_exactly(make_store, docs):
    """Digits, accents and other scripts reach the keyword index whole (Milvus: encode_term)."""
    view = filled(make_store, docs).view()
    for term in ("2024", "zürich"):
        hits = view.keyword_search([term], 5)
        assert len(hits) == 1 and term in view.chunks(ids(hits))[0].terms
        assert list(view.document_frequency([term])) == [1]


# --- records -------------------------------------------------------------------------------------
def test_chunk_and_sentence_records(make_store, docs):
    view = filled(make_store, docs).view()
    by_doc = {d.doc.doc_id: d for d in docs}
    records = view.chunks(range(view.chunk_count))
    assert sum(len(d.chunk_spans) for d in docs) == len(records)
    for record in records:
        item = by_doc[record.doc_id]
        assert record.text == item.doc.text[record.start : record.end]
        assert record.vector.dtype == np.float32 and record.vector.shape == (DIM,)
        assert record.terms == frozenset(tokenize([record.text])[0])
        sentences = view.sentences(record.sentence_ids)
        assert [s.chunk_id for s in sentences] == [record.chunk_id] * len(sentences)
        for s in sentences:
            assert s.text == item.doc.text[s.start : s.end]
            assert record.start <= s.start < s.end <= record.end
            assert chunk_of(s.sentence_id) == record.chunk_id
    # Neighbours run through each document across chunk borders, None at its ends.
    for item in docs:
        chain = [r for r in records if r.doc_id == item.doc.doc_id]
        sentence_ids = [s for r in chain for s in r.sentence_ids]
        sentences = view.sentences(sentence_ids)
        assert [s.previous for s in sentences] == [None, *sentence_ids[:-1]]
        assert [s.next for s in sentences] == [*sentence_ids[1:], None]
        spans = [(s.start, s.end) for s in sentences]
        assert spans == [tuple(x) for x in item.sentence_spans.tolist()]
        assert len(chain) > 1 or len(TEXTS[docs.index(item)]) < 100


def test_records_in_the_order_asked_and_unknown_ids(make_store, docs):
    view = filled(make_store, docs).view()
    assert [r.chunk_id for r in view.chunks([3, 0, 3])] == [3, 0, 3]
    with pytest.raises(KeyError):
        view.chunks([0, 10_000])
    with pytest.raises(KeyError):
        view.sentences([view.chunks([0])[0].sentence_ids[-1] + 1])
    with pytest.raises(KeyError):
        view.document("no-such-document")


def test_pages_and_documents(make_store, docs):
    paged = new_document("Page one says hello.\n\nPage two says goodbye.", seed=9, max_words=5, page_starts=(0, 22))
    view = filled(make_store, docs, add=[*docs, paged]).view()
    infos = view.documents()
    assert [i.doc_id for i in infos] == [d.doc.doc_id for d in [*docs, paged]]
    for info, item in zip(infos, [*docs, paged]):
        assert (info.chunks, info.chars, info.source) == (len(item.chunk_spans), len(item.doc.text), item.doc.source)
        assert view.document(item.doc.doc_id) == item.doc
    assert infos[-1].pages == 2 and infos[0].pages is None
    some = {paged.doc.doc_id, docs[1].doc.doc_id}
    assert view.documents(some) == [infos[1], infos[-1]]  # in the order added, whatever the set's
    with pytest.raises(KeyError):
        view.documents({"no-such-document"})
    pages = [r.page for r in view.chunks(range(view.chunk_count)) if r.doc_id == paged.doc.doc_id]
    assert pages == [1, 2]


def test_long_text_is_stored_whole(make_store):
    """Texts pass Milvus's VARCHAR limit (stored in parts there)."""
    text = "\n\n".join(f"Paragraph {i} mentions the lighthouse keeper once." for i in range(3000))
    item = new_document(text, max_words=60)
    view = filled(make_store, [], add=[item]).view()
    assert view.document(item.doc.doc_id).text == text
    last = view.chunks([view.chunk_count - 1])[0]
    assert last.text == text[last.start : last.end]


def test_document_frequency(make_store, docs):
    view = filled(make_store, docs).view()
    records = view.chunks(range(view.chunk_count))
    terms = ["harbour", "storm", "zebra", "harbour"]
    expected = [sum(t in r.terms for r in records) for t in terms]
    assert list(view.document_frequency(terms)) == expected
    assert expected[0] >= 2


# --- writing -------------------------------------------------------------------------------------
def test_remove_and_add_in_one_commit(make_store, docs):
    store = filled(make_store, docs[:3])
    before = store.view()
    alpha, beta = docs[0].doc.doc_id, docs[1].doc.doc_id
    kept = [(r.chunk_id, r.doc_id, r.text) for r in before.chunks(range(before.chunk_count)) if r.doc_id != beta]
    with store.lock():
        store.commit([docs[3]], {beta})
    view = store.view()
    assert [i.doc_id for i in view.documents()] == [alpha, docs[2].doc.doc_id, docs[3].doc.doc_id]
    assert not store.is_new()
    held = {r.doc_id for r in view.chunks(ids(view.dense_search(docs[1].chunk_vectors[0], 100)))}
    assert beta not in held and docs[3].doc.doc_id in held
    assert view.keyword_search(["budget"], 5) == []
    assert view.chunk_count == before.chunk_count - len(docs[1].chunk_spans) + len(docs[3].chunk_spans)
    # Chunk ids stay with their documents and are never reused: new ones follow every id given.
    assert [(r.chunk_id, r.doc_id, r.text) for r in view.chunks([k[0] for k in kept])] == kept
    new_ids = [h.chunk_id for h in view.dense_search(docs[3].chunk_vectors[0], 100)
               if view.chunks([h.chunk_id])[0].doc_id == docs[3].doc.doc_id]
    assert min(new_ids) >= before.chunk_count
    with store.lock():
        store.commit([], {alpha, docs[2].doc.doc_id, docs[3].doc.doc_id})
    emptied = store.view()
    assert emptied.chunk_count == 0 and emptied.documents() == [] and not store.is_new()
    assert store.check()["chunks"] == 0


def test_view_before_a_commit_stays_consistent_or_stale(make_store, docs):
    store = filled(make_store, docs[:2])
    view = store.view()
    query = docs[0].chunk_vectors[0]
    before = ids(view.dense_search(query, 10))
    with store.lock():
        store.commit([docs[2]], set())  # an addition: the old view does not see it
    assert ids(view.dense_search(query, 10)) == before
    assert docs[2].doc.doc_id not in {i.doc_id for i in view.documents()}
    with store.lock():
        store.commit([], {docs[0].doc.doc_id})
    with store.lock():
        store.commit([], {docs[1].doc.doc_id})
    # Both of its documents are gone: it answers as before or says it is stale, never a mix.
    for read in (lambda: view.chunks(before), lambda: view.dense_search(query, 10)):
        try:
            result = read()
        except StaleView:
            continue
        assert [getattr(r, "chunk_id") for r in result] == before


def test_another_model_is_refused(make_store, docs):
    filled(make_store, docs[:1])
    with pytest.raises(StoreIndexError, match="test-model"):
        make_store("another-model").view()


def test_check_counts(make_store, docs):
    store = filled(make_store, docs)
    report = store.check()
    assert report["model"] == MODEL
    assert report["documents"] == len(docs)
    assert report["chunks"] == sum(len(d.chunk_spans) for d in docs)
    assert report["sentences"] == sum(len(d.sentence_spans) for d in docs)


# --- the backends against each other -------------------------------------------------------------
@pytest.fixture
def both(tmp_path, docs):
    stores = {b: open_store(b, tmp_path / b) for b in BACKENDS}
    for store in stores.values():
        with store.lock():
            store.commit(docs, set())
    return {b: s.view() for b, s in stores.items()}


def test_backends_hold_the_same_records(both):
    local, milvus = both["local"], both["milvus"]
    assert local.chunk_count == milvus.chunk_count
    ids_all = range(local.chunk_count)
    for a, b in zip(local.chunks(ids_all), milvus.chunks(ids_all)):
        assert (a.doc_id, a.start, a.end, a.page, a.text, a.sentence_ids, a.terms) == (
            b.doc_id, b.start, b.end, b.page, b.text, b.sentence_ids, b.terms)
        np.testing.assert_allclose(a.vector, b.vector)
        for s, t in zip(local.sentences(a.sentence_ids), milvus.sentences(b.sentence_ids)):
            assert (s.start, s.end, s.text, s.previous, s.next) == (t.start, t.end, t.text, t.previous, t.next)
            np.testing.assert_allclose(s.vector, t.vector)
    assert local.documents() == milvus.documents()


def test_backends_search_alike(both, docs):
    """Dense: the same exact order. BM25 over one commit (one Lite segment): bm25s's scores; see
    test_milvus_lite_bm25_statistics_are_per_segment for what differs after several commits."""
    local, milvus = both["local"], both["milvus"]
    rng = np.random.default_rng(3)
    for query in unit(rng, 5):
        a, b = local.dense_search(query, 8), milvus.dense_search(query, 8)
        assert ids(a) == ids(b)
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)
    for terms in (["harbour"], ["storm", "farmer", "harbour"], ["budget", "tax", "year", "year"], ["trial", "2024"]):
        a, b = local.keyword_search(terms, 10), milvus.keyword_search(terms, 10)
        assert ids(a) == ids(b), terms
        assert [h.score for h in a] == pytest.approx([h.score for h in b], rel=1e-4)
        assert list(local.document_frequency(terms)) == list(milvus.document_frequency(terms))


def test_milvus_lite_bm25_statistics_are_per_segment(tmp_path, docs):
    """Measured: milvus-lite 3.2.2 scores BM25 with each flushed segment's own N, avgdl and
    document frequencies (its source's own TODO), deleted rows included until a background
    compaction merges 4 segments. After two commits and a removal its scores differ from bm25s's
    over the whole index; what holds is the protocol's: the same hits, positive, best first."""
    if _milvus_missing():
        pytest.skip(_milvus_missing())
    local, milvus = open_store("local", tmp_path / "l"), open_store("milvus", tmp_path / "m")
    for add, remove in (docs[:2], set()), (docs[2:], set()), ([], {docs[1].doc.doc_id}):
        for store in (local, milvus):
            with store.lock():
                store.commit(add, remove)
    terms = ["harbour", "storm", "budget", "trial"]
    a, b = local.view().keyword_search(terms, 20), milvus.view().keyword_search(terms, 20)
    assert set(ids(a)) == set(ids(b))
    assert all(h.score > 0 for h in b) and [h.score for h in b] == sorted((h.score for h in b), reverse=True)
    assert [h.score for h in a] != pytest.approx([h.score for h in b], rel=1e-4), "Lite now scores like bm25s"


def test_milvus_lite_second_process_is_refused_clearly(tmp_path, docs):
    """Milvus Lite holds a lock on its folder: another process gets an IndexError saying so."""
    if _milvus_missing():
        pytest.skip(_milvus_missing())
    store = open_store("milvus", tmp_path)
    with store.lock():
        store.commit(docs[:1], set())
    script = (
        "import sys\nfrom qa.store import IndexError\nfrom qa.store.milvus import MilvusStore\n"
        "try:\n    MilvusStore(sys.argv[1], 'test-model').view()\nexcept IndexError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "milvus.db")], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert "is open in another process: Milvus Lite allows one; use a Milvus server for several" in done.stdout
    assert store.view().chunk_count == len(docs[0].chunk_spans)  # untouched


def test_milvus_commit_that_died_is_finished_when_the_lock_is_taken(tmp_path, docs):
    """A journal left by a commit that died (removing one document, half-way through adding
    another): views hide both meanwhile, `check` says what will finish it, and taking the writer
    lock (with nothing to commit) completes the removal and undoes the half-written addition."""
    store = open_store("milvus", tmp_path)
    with store.lock():
        store.commit(docs[:2], set())
    kept, removed, half = docs[0].doc.doc_id, docs[1].doc.doc_id, docs[2].doc.doc_id
    state = store._state()
    from qa.store.milvus import _State, _rows_of

    store._write_state(_State(state.generation + 1, state.next_chunk_id + 10, state.next_doc_seq + 1,
                              {"add": [half], "remove": [removed]}))
    texts, chunks, _ = _rows_of(docs[2])
    store._insert("texts", texts)
    store._insert("chunks", [{k: v for k, v in c.items() if k != "number"} | {"chunk_id": state.next_chunk_id + n}
                             for n, c in enumerate(chunks)])
    assert [i.doc_id for i in store.view().documents()] == [kept]
    with pytest.raises(StoreIndexError, match="a commit stopped half-way; the next `qa add` or `qa remove` finishes it"):
        store.check()
    with store.lock():
        pass
    assert store._state().pending is None and [i.doc_id for i in store.view().documents()] == [kept]
    summary = store.check()
    assert summary["chunks"] == len(docs[0].chunk_spans) and store._count("texts", f'doc_id == "{half}"') == 0


def test_milvus_server_writer_lock_is_per_process_and_releases_on_failure() -> None:
    """A server's writer lock (a thread lock: Milvus has nothing to lock across processes) runs the
    dead-commit check on each acquisition and is released again when that check fails."""
    import threading

    from qa.store.milvus import _ThreadWriterLock

    calls = []
    lock = _ThreadWriterLock(threading.Lock(), lambda: calls.append("checked"))
    with lock:
        with pytest.raises(TimeoutError):
            _ThreadWriterLock(lock._lock, lambda: None).acquire(timeout=0.05)
    assert calls == ["checked"]

    def unreachable():
        raise ConnectionError("no server")

    failing = _ThreadWriterLock(threading.Lock(), unreachable)
    with pytest.raises(ConnectionError):
        failing.acquire()
    assert failing._lock.acquire(timeout=0.05)  # not left held


def test_milvus_secrets_stay_out_of_reprs_and_messages() -> None:
    """A token or a password in the URI never reaches a repr, a log line or an error message."""
    from qa.config import Config
    from qa.store.milvus import MilvusStore, _redacted

    uri = "http://reader:s3cret-pw@milvus.internal:19530"
    store = MilvusStore(uri, MODEL, token="admin:t0ken-xyz")
    assert "s3cret-pw" not in repr(store) and "t0ken-xyz" not in repr(store)
    assert _redacted(uri) == "http://milvus.internal:19530"  # how every message and log line names it
    config = Config(store="milvus", milvus_uri="http://milvus.internal:19530", milvus_token="admin:t0ken-xyz")
    assert "t0ken-xyz" not in repr(config) and config.milvus_credentials == "admin:t0ken-xyz"
    by_user = Config(store="milvus", milvus_user="reader", milvus_password="pa55-word")
    assert by_user.milvus_credentials == "reader:pa55-word" and "pa55-word" not in repr(by_user)
    assert Config(milvus_user="reader", milvus_password="pw", milvus_token="key").milvus_credentials == "key"
