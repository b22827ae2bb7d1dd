"""The persisted index: generations, persistence, removal, damage, atomicity and garbage collection.

Vectors are random unit vectors (no embedding model); any dimension works.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import qa.store.local as store_module
from qa.chunk import chunk_document
from qa.retrieve import tokenize
from qa.store import IndexError as StoreIndexError
from qa.store import NewDocument, Snapshot, Store
from qa.store.protocol import sentence_id
from qa.types import Document

DIM = 16
MODEL = "test-model"

TEXTS = {
    "alpha": (
        "Alpha report on the harbour. The harbour was closed in March.\n\n"
        "Ships waited outside for days. Fishermen protested loudly.\n\n"
        "The mayor reopened it in April."
    ),
    "beta": "Beta memo about budgets. The budget grew by ten percent.\n\nTaxes were unchanged this year.",
    "gamma": (
        "Gamma notes on weather. Storms hit the coast twice.\n\n"
        "Rainfall doubled in autumn. Farmers adapted their crops.\n\n"
        "Engineers raised the dykes. Nobody was hurt."
    ),
    "delta": "Delta summary of the trial. The jury deliberated for two days. The verdict was guilty.",
}


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_doc(doc_id: str, text: str | None = None, *, seed: int = 0, dim: int = DIM, max_words: int = 12,
             page_starts: tuple[int, ...] = ()) -> NewDocument:
    text = TEXTS[doc_id] if text is None else text
    doc = Document(
        doc_id=doc_id,
        title=f"Title {doc_id}",
        source=f"{doc_id}.txt",
        path=f"/data/{doc_id}.txt",
        text=text,
        page_starts=page_starts,
        added_at="2024-01-01T00:00:00+00:00",
    )
    chunks = chunk_document(doc, max_words)
    sentences = [s for c in chunks for s in c.sentences]
    rng = np.random.default_rng(seed)
    return NewDocument(
        doc=doc,
        chunk_spans=np.array([(c.start, c.end) for c in chunks], np.int64).reshape(-1, 2),
        chunk_pages=np.array([c.page or -1 for c in chunks], np.int32),
        sentence_spans=np.array([(s.start, s.end) for s in sentences], np.int64).reshape(-1, 2),
        sentence_chunks=np.repeat(np.arange(len(chunks), dtype=np.int32), [len(c.sentences) for c in chunks]),
        chunk_vectors=unit(rng, len(chunks), dim),
        sentence_vectors=unit(rng, len(sentences), dim).astype(np.float16),
        chunk_tokens=tokenize([c.text for c in chunks]),
    )


def all_docs() -> dict[str, NewDocument]:
    return {name: make_doc(name, seed=i + 1) for i, name in enumerate(TEXTS)}


def positions_of(snap: Snapshot, doc_id: str) -> np.ndarray:
    return np.flatnonzero(snap.chunk_doc == snap.doc_index[doc_id])


def assert_doc_matches(snap: Snapshot, item: NewDocument) -> None:
    """The snapshot holds exactly this document's chunks, sentences and vectors, in order."""
    doc_id = item.doc.doc_id
    idx = snap.doc_index[doc_id]
    assert snap.docs[idx].doc_id == doc_id
    assert snap.text(idx) == item.doc.text
    assert snap.document(idx) == item.doc
    pos = positions_of(snap, doc_id)
    assert len(pos) == len(item.chunk_spans)
    assert np.all(np.diff(pos) == 1), "a document's chunks are contiguous"
    np.testing.assert_array_equal(snap.chunk_spans[pos], item.chunk_spans)
    np.testing.assert_array_equal(snap.chunk_pages[pos], item.chunk_pages)
    np.testing.assert_array_equal(np.asarray(snap.chunk_vectors[pos]), item.chunk_vectors)
    sent_rows = np.concatenate([np.arange(r.start, r.stop) for r in (snap.sentences_of(int(p)) for p in pos)])
    np.testing.assert_array_equal(snap.sentence_spans[sent_rows], item.sentence_spans)
    np.testing.assert_allclose(
        np.asarray(snap.sentence_vectors[sent_rows], np.float32),
        item.sentence_vectors.astype(np.float32),
        atol=1e-3,
    )
    # Each sentence points back at its chunk, and lies inside that chunk.
    for p in pos:
        for s in snap.sentences_of(int(p)):
            assert snap.sentence_chunk[s] == p
            start, end = snap.sentence_spans[s]
            c_start, c_end = snap.chunk_spans[p]
            assert c_start <= start < end <= c_end
    # The BM25 tokens of its chunks are the ones we gave.
    for p, expected in zip(pos, item.chunk_tokens):
        ids = snap.token_ids[snap.token_offsets[p] : snap.token_offsets[p + 1]]
        assert [snap.vocab[i] for i in ids] == expected


def assert_consistent(snap: Snapshot) -> None:
    snap.verify()
    n = snap.size
    assert np.all(np.diff(snap.chunk_ids) > 0)
    assert np.all(np.diff(snap.chunk_doc) >= 0), "documents' chunks stay grouped in document order"
    assert np.all(np.diff(snap.sentence_chunk) >= 0)
    for p in range(n):
        rows = snap.sentences_of(p)
        assert len(rows) >= 1
        assert np.all(snap.sentence_chunk[rows.start : rows.stop] == p)
    if n:
        # FAISS is keyed by chunk id: each stored vector finds its own chunk first.
        _, ids = snap.dense.search(np.asarray(snap.chunk_vectors, np.float32), 1)
        np.testing.assert_array_equal(ids[:, 0], snap.chunk_ids)


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def generations(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith("gen-"))


@pytest.fixture(autouse=True)
def no_fsync(monkeypatch):
    """fsync costs ~10 ms a call on a real disk and a commit makes dozens: these tests check the
    logic, not the disk (test_commit_fsyncs_before_publishing checks that fsync is used)."""
    calls: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd))
    return calls


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "index"


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[Path, dict[str, NewDocument]]:
    """One committed index of the four documents, built once and copied for each test."""
    folder = tmp_path_factory.mktemp("template") / "index"
    docs = all_docs()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", lambda fd: None)
        Store(folder, MODEL).commit(list(docs.values()), set())
    return folder, docs


@pytest.fixture
def filled(root: Path, template) -> tuple[Store, dict[str, NewDocument]]:
    folder, docs = template
    shutil.copytree(folder, root)
    store = Store(root, MODEL)
    assert store.current_generation() == "gen-000001"
    return store, docs


# --- empty, commit, reopen -----------------------------------------------------------------------


def test_empty_index(root: Path):
    store = Store(root, MODEL)
    snap = store.snapshot()
    assert snap.size == 0
    assert snap.generation is None
    assert snap.docs == [] and snap.infos() == []
    assert store.current_generation() is None
    snap.verify()


def test_commit_adds_documents_and_reopen_sees_them(root: Path):
    store = Store(root, MODEL)
    docs = all_docs()
    snap = store.commit(list(docs.values()), set())
    assert snap.generation == store.current_generation() == "gen-000001"
    assert snap.size == sum(len(d.chunk_spans) for d in docs.values())
    assert snap.dim == DIM
    assert_consistent(snap)

    reopened = Store(root, MODEL).snapshot()
    assert reopened is not snap
    assert reopened.generation == "gen-000001"
    assert [m.doc_id for m in reopened.docs] == list(docs)
    assert_consistent(reopened)
    for item in docs.values():
        assert_doc_matches(reopened, item)
    infos = {i.doc_id: i for i in reopened.infos()}
    for doc_id, item in docs.items():
        info = infos[doc_id]
        assert info.chunks == len(item.chunk_spans) > 0
        assert info.chars == len(item.doc.text)
        assert (info.title, info.source, info.path, info.pages) == (
            item.doc.title,
            item.doc.source,
            item.doc.path,
            None,
        )
    np.testing.assert_array_equal(reopened.chunk_ids, np.arange(reopened.size))
    assert reopened.next_chunk_id == reopened.size


def test_pages_survive_a_round_trip(root: Path):
    text = "Page one sentence here. More on page one.\nPage two sentence here. More on page two."
    item = make_doc("paged", text, page_starts=(0, text.index("Page two")), max_words=100)
    assert list(item.chunk_pages) == [1, 2]
    Store(root, MODEL).commit([item], set())
    snap = Store(root, MODEL).snapshot()
    assert_doc_matches(snap, item)
    assert snap.infos()[0].pages == 2
    assert snap.document(0).page_starts == item.doc.page_starts


def test_commit_accumulates_across_commits(root: Path):
    store = Store(root, MODEL)
    docs = all_docs()
    store.commit([docs["alpha"], docs["beta"]], set())
    snap = store.commit([docs["gamma"]], set())
    assert [m.doc_id for m in snap.docs] == ["alpha", "beta", "gamma"]
    assert_consistent(snap)
    for name in ("alpha", "beta", "gamma"):
        assert_doc_matches(snap, docs[name])
    np.testing.assert_array_equal(snap.chunk_ids, np.arange(snap.size))


# --- removal -----------------------------------------------------------------------------------


def test_removal_keeps_other_documents_consistent(filled):
    store, docs = filled
    before = store.snapshot()
    beta_ids = before.chunk_ids[positions_of(before, "beta")].copy()
    kept_ids_before = {
        name: before.chunk_ids[positions_of(before, name)].copy() for name in ("alpha", "gamma", "delta")
    }

    snap = store.commit([], {"beta"})
    assert [m.doc_id for m in snap.docs] == ["alpha", "gamma", "delta"]
    assert "beta" not in snap.doc_index
    assert snap.size == before.size - len(docs["beta"].chunk_spans)
    assert_consistent(snap)
    for name in ("alpha", "gamma", "delta"):
        assert_doc_matches(snap, docs[name])
        # Chunk ids are stable across the removal.
        np.testing.assert_array_equal(snap.chunk_ids[positions_of(snap, name)], kept_ids_before[name])
    assert not set(beta_ids) & set(snap.chunk_ids.tolist())

    # FAISS still maps each kept vector to its own chunk.
    gamma = docs["gamma"]
    for k, vector in enumerate(gamma.chunk_vectors):
        _, ids = snap.dense.search(vector.reshape(1, -1), 1)
        pos = int(np.searchsorted(snap.chunk_ids, ids[0][0]))
        assert snap.chunk_doc[pos] == snap.doc_index["gamma"]
        np.testing.assert_array_equal(snap.chunk_spans[pos], gamma.chunk_spans[k])

    # The same holds after reopening from disk.
    reopened = Store(store.root, MODEL).snapshot()
    assert_consistent(reopened)
    for name in ("alpha", "gamma", "delta"):
        assert_doc_matches(reopened, docs[name])


def test_remove_first_and_last_documents(filled):
    store, docs = filled
    snap = store.commit([], {"alpha", "delta"})
    assert [m.doc_id for m in snap.docs] == ["beta", "gamma"]
    assert_consistent(snap)
    assert_doc_matches(snap, docs["beta"])
    assert_doc_matches(snap, docs["gamma"])
    assert snap.chunk_doc.min() == 0 and snap.chunk_doc.max() == 1


def test_chunk_ids_increase_and_are_never_reused(filled):
    store, docs = filled
    first = store.snapshot()
    top = int(first.chunk_ids.max())
    # Remove the document holding the highest ids, then add new ones.
    store.commit([], {"delta"})
    snap = store.commit([make_doc("epsilon", "Epsilon text here. Another sentence.", seed=42)], set())
    assert_consistent(snap)
    eps = snap.chunk_ids[positions_of(snap, "epsilon")]
    assert eps.min() > top, "ids of the removed document must not be handed out again"
    assert np.all(np.diff(snap.chunk_ids) > 0)
    assert snap.next_chunk_id == int(eps.max()) + 1
    # And after reopening, the counter is persisted.
    again = Store(store.root, MODEL).commit([make_doc("zeta", "Zeta text. More zeta.", seed=43)], set())
    assert again.chunk_ids[positions_of(again, "zeta")].min() > eps.max()


def test_remove_everything_then_add_again(filled):
    store, docs = filled
    empty = store.commit([], set(docs))
    assert empty.size == 0 and empty.docs == []
    empty.verify()
    reopened = Store(store.root, MODEL).snapshot()
    assert reopened.size == 0 and reopened.generation == empty.generation
    snap = store.commit([docs["beta"]], set())
    assert_consistent(snap)
    assert_doc_matches(snap, docs["beta"])


def test_replace_in_one_commit(filled):
    store, docs = filled
    new_alpha = make_doc("alpha2", "Alpha rewritten entirely. It has new content now.", seed=9)
    snap = store.commit([new_alpha], {"alpha"})
    assert [m.doc_id for m in snap.docs] == ["beta", "gamma", "delta", "alpha2"]
    assert_consistent(snap)
    for name in ("beta", "gamma", "delta"):
        assert_doc_matches(snap, docs[name])
    assert_doc_matches(snap, new_alpha)


# --- readers in other processes ------------------------------------------------------------------


def test_second_store_sees_commit_without_reopening(root: Path):
    writer = Store(root, MODEL)
    reader = Store(root, MODEL)
    docs = all_docs()
    assert reader.snapshot().size == 0
    writer.commit([docs["alpha"]], set())
    first = reader.snapshot()
    assert first.generation == "gen-000001"
    assert [m.doc_id for m in first.docs] == ["alpha"]
    assert reader.snapshot() is first, "unchanged generation: no reload"
    writer.commit([docs["beta"]], {"alpha"})
    second = reader.snapshot()
    assert second is not first
    assert second.generation == "gen-000002"
    assert [m.doc_id for m in second.docs] == ["beta"]
    assert_doc_matches(second, docs["beta"])


# --- model mismatch and damage -----------------------------------------------------------------


def test_model_mismatch_names_both_models(root: Path):
    Store(root, "model-a").commit([make_doc("alpha")], set())
    with pytest.raises(StoreIndexError) as caught:
        Store(root, "model-b").snapshot()
    message = str(caught.value)
    assert "model-a" in message and "model-b" in message


def test_store_index_error_is_not_the_builtin():
    assert StoreIndexError is not IndexError
    assert not issubclass(StoreIndexError, IndexError)


def _live(root: Path) -> Path:
    return root / (root / "CURRENT").read_text().strip()


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(5)
    for i in rng.integers(0, len(data), size=max(8, len(data) // 4)):
        data[i] = (data[i] + 101) % 256
    path.write_bytes(bytes(data))


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _bump_format(path: Path) -> None:
    manifest = json.loads(path.read_text())
    manifest["format_version"] = 999
    path.write_text(json.dumps(manifest))


def _drop_key(key: str):
    def damage(path: Path) -> None:
        manifest = json.loads(path.read_text())
        del manifest[key]
        path.write_text(json.dumps(manifest))

    return damage


def _write(content: bytes):
    def damage(path: Path) -> None:
        path.write_bytes(content)

    return damage


def _delete(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


DAMAGE = [
    ("chunk_ids.npy", _truncate),
    ("chunk_ids.npy", _empty),
    ("chunk_doc.npy", _garble),
    ("chunk_vectors.npy", _truncate),
    ("sentence_vectors.npy", _truncate),
    ("sentence_spans.npy", _delete),
    ("token_offsets.npy", _truncate),
    ("manifest.json", _truncate),
    ("manifest.json", _empty),
    ("manifest.json", _garble),
    ("manifest.json", _bump_format),
    ("manifest.json", _drop_key("next_chunk_id")),
    ("manifest.json", _drop_key("dim")),
    ("manifest.json", _delete),
    ("documents.json", _truncate),
    ("vocab.json", _garble),
    ("dense.faiss", _truncate),
    ("dense.faiss", _garble),
    ("dense.faiss", _delete),
    ("bm25", _delete),
]


@pytest.mark.parametrize("name, damage", DAMAGE, ids=[f"{n}-{d.__name__}" for n, d in DAMAGE])
def test_damaged_generation_raises_index_error_naming_rebuild(filled, name, damage):
    store, _ = filled
    damage(_live(store.root) / name)
    with pytest.raises(StoreIndexError, match="qa rebuild"):
        Store(store.root, MODEL).snapshot()


def test_damage_is_noticed_by_an_open_store_on_the_next_generation(filled):
    store, docs = filled
    reader = Store(store.root, MODEL)
    reader.snapshot()
    store.commit([], {"alpha"})
    _truncate(_live(store.root) / "chunk_spans.npy")
    with pytest.raises(StoreIndexError, match="qa rebuild"):
        reader.snapshot()


@pytest.mark.parametrize("content", [b"null", b"[]", b"42", b'"gen-000001"'])
def test_manifest_that_is_valid_json_but_not_an_object_raises_index_error(filled, content):
    store, _ = filled
    (_live(store.root) / "manifest.json").write_bytes(content)
    with pytest.raises(StoreIndexError, match="qa rebuild"):
        Store(store.root, MODEL).snapshot()


def test_current_pointing_at_a_missing_generation_raises_index_error(filled):
    store, _ = filled
    (store.root / "CURRENT").write_text("gen-000099\n")
    with pytest.raises(StoreIndexError, match="qa rebuild"):
        Store(store.root, MODEL).snapshot()


def test_garbled_current_file_raises_index_error(filled):
    store, _ = filled
    (store.root / "CURRENT").write_bytes(b"\xff\xfe\x80gen\x00\x9c")
    with pytest.raises(StoreIndexError, match="qa rebuild"):
        Store(store.root, MODEL).snapshot()


def test_missing_text_of_a_document_raises_index_error(filled):
    store, _ = filled
    (store.root / "texts" / "beta.txt").unlink()
    with pytest.raises(StoreIndexError, match="qa rebuild"):
        Store(store.root, MODEL).snapshot()


# --- atomicity ---------------------------------------------------------------------------------


def _boom(*args, **kwargs):
    raise OSError("simulated crash")


@pytest.mark.parametrize(
    "target, attribute",
    [
        (store_module, "_fsync_tree"),
        (os, "rename"),
        (store_module, "_write_json"),
        (store_module, "_fsync_dir"),
    ],
)
def test_failed_commit_leaves_the_live_generation_untouched(filled, monkeypatch, target, attribute):
    store, docs = filled
    root = store.root
    current_before = (root / "CURRENT").read_bytes()
    live = _live(root)
    digest_before = tree_digest(live)
    snap_before = store.snapshot()
    docs_before = [m.doc_id for m in snap_before.docs]
    ids_before = snap_before.chunk_ids.copy()

    extra = make_doc("epsilon", "Epsilon arrives late. It should not appear.", seed=77)
    with monkeypatch.context() as patch:
        patch.setattr(target, attribute, _boom)
        with pytest.raises(OSError, match="simulated crash"):
            store.commit([extra], {"beta"})

    assert (root / "CURRENT").read_bytes() == current_before
    assert tree_digest(live) == digest_before
    after = store.snapshot()
    assert after is snap_before
    assert [m.doc_id for m in after.docs] == docs_before
    np.testing.assert_array_equal(after.chunk_ids, ids_before)
    fresh = Store(root, MODEL).snapshot()
    assert fresh.generation == live.name
    assert [m.doc_id for m in fresh.docs] == docs_before
    for item in docs.values():
        assert_doc_matches(fresh, item)

    # A later commit succeeds and cleans up the half-written folder.
    snap = store.commit([extra], {"beta"})
    assert [m.doc_id for m in snap.docs] == ["alpha", "gamma", "delta", "epsilon"]
    assert_consistent(snap)
    assert_doc_matches(snap, extra)
    assert not [p for p in root.iterdir() if p.name.startswith(".tmp-")]
    assert Store(root, MODEL).snapshot().generation == snap.generation


def test_commit_fsyncs_before_publishing(root: Path, monkeypatch):
    """The new generation is on disk (fsynced) before it is renamed into place and before CURRENT
    points at it; CURRENT is replaced atomically, never rewritten in place."""
    events: list[tuple[str, str]] = []
    real_rename, real_replace = os.rename, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))

    def rename(src, dst):
        events.append(("rename", str(dst)))
        real_rename(src, dst)

    def replace(src, dst):
        events.append(("replace", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "replace", replace)
    Store(root, MODEL).commit([make_doc("alpha")], set())

    renamed = events.index(("rename", str(root / "gen-000001")))
    current = events.index(("replace", str(root / "CURRENT")))
    assert renamed < current
    synced_before_rename = {Path(path).name for kind, path in events[:renamed] if kind == "fsync"}
    assert {"manifest.json", "chunk_ids.npy", "dense.faiss", "documents.json"} <= synced_before_rename
    # The root folder is synced after the rename (so the new name is durable) and after CURRENT.
    assert ("fsync", str(root)) in events[renamed:current]
    assert ("fsync", str(root)) in events[current:]


# --- garbage collection -----------------------------------------------------------------------


def test_only_the_last_two_generations_remain(root: Path):
    store = Store(root, MODEL)
    docs = all_docs()
    store.commit([docs["alpha"]], set())
    assert generations(root) == ["gen-000001"]
    store.commit([docs["beta"]], set())
    assert generations(root) == ["gen-000001", "gen-000002"]
    store.commit([docs["gamma"]], set())
    assert generations(root) == ["gen-000002", "gen-000003"]
    store.commit([docs["delta"]], set())
    assert generations(root) == ["gen-000003", "gen-000004"]
    assert store.current_generation() == "gen-000004"


def test_texts_of_removed_documents_disappear_when_unreferenced(filled):
    store, docs = filled
    texts = store.root / "texts"
    assert sorted(p.stem for p in texts.glob("*.txt")) == sorted(docs)
    store.commit([], {"beta"})
    # The previous generation (kept for readers still opening it) still references beta.
    assert (texts / "beta.txt").is_file()
    store.commit([], {"gamma"})
    assert not (texts / "beta.txt").exists()
    assert (texts / "gamma.txt").is_file()
    store.commit([make_doc("epsilon", "Epsilon text. More.", seed=3)], set())
    assert sorted(p.stem for p in texts.glob("*.txt")) == ["alpha", "delta", "epsilon"]
    snap = Store(store.root, MODEL).snapshot()
    assert [snap.text(i) for i in range(len(snap.docs))] == [
        docs["alpha"].doc.text,
        docs["delta"].doc.text,
        "Epsilon text. More.",
    ]


def test_re_adding_a_removed_document_restores_its_text(filled):
    store, docs = filled
    store.commit([], {"beta"})
    store.commit([], {"gamma"})
    assert not (store.root / "texts" / "beta.txt").exists()
    snap = store.commit([docs["beta"]], set())
    assert_doc_matches(snap, docs["beta"])


# --- file formats ------------------------------------------------------------------------------


def test_no_pickle_in_any_generation(filled):
    store, _ = filled
    store.commit([], {"beta"})
    npys = list(store.root.rglob("*.npy"))
    assert len(npys) >= 2 * 12
    for path in npys:
        array = np.load(path, allow_pickle=False)
        assert array.dtype != object
    assert not list(store.root.rglob("*.pkl")) and not list(store.root.rglob("*.pickle"))


def test_manifest_describes_the_generation(filled):
    store, docs = filled
    manifest = json.loads((_live(store.root) / "manifest.json").read_text())
    assert manifest["format_version"] == store_module.FORMAT_VERSION
    assert manifest["model"] == MODEL
    assert manifest["dim"] == DIM
    assert manifest["documents"] == len(docs)
    assert manifest["chunks"] == sum(len(d.chunk_spans) for d in docs.values())
    assert manifest["sentences"] == sum(len(d.sentence_spans) for d in docs.values())
    assert manifest["generation"] == _live(store.root).name


def test_dimension_mismatch_is_refused(filled):
    store, _ = filled
    odd = make_doc("odd", "Odd vectors here. More of them.", dim=DIM * 2)
    with pytest.raises(StoreIndexError, match="dimension"):
        store.commit([odd], set())
    assert store.current_generation() == "gen-000001"


def test_any_dimension_works(root: Path):
    item = make_doc("alpha", dim=8)
    snap = Store(root, MODEL).commit([item], set())
    assert snap.dim == 8
    assert_consistent(snap)
    assert_doc_matches(Store(root, MODEL).snapshot(), item)


# --- the read view (qa.store.protocol) -----------------------------------------------------------


def test_view_records_follow_the_snapshot_by_id(filled):
    """Chunk and sentence records by id hold what the snapshot's rows hold, after a removal too
    (ids no longer follow rows), and each sentence names its neighbours within its document."""
    store, _ = filled
    snap = store.commit([], {"beta"})
    view = store.view()
    chunks = view.chunks(snap.chunk_ids[::-1].tolist())  # any order: the order asked for
    assert [c.chunk_id for c in chunks] == snap.chunk_ids[::-1].tolist()
    for chunk in chunks:
        row = int(np.searchsorted(snap.chunk_ids, chunk.chunk_id))
        doc = snap.docs[snap.chunk_doc[row]]
        assert (chunk.doc_id, chunk.start, chunk.end) == (doc.doc_id, *snap.chunk_spans[row].tolist())
        assert chunk.text == snap.text(int(snap.chunk_doc[row]))[chunk.start : chunk.end]
        np.testing.assert_array_equal(chunk.vector, snap.chunk_vectors[row])
        tokens = snap.token_ids[snap.token_offsets[row] : snap.token_offsets[row + 1]]
        assert chunk.terms == {snap.vocab[t] for t in tokens}
        assert [s.sentence_id for s in view.sentences(chunk.sentence_ids)] == list(chunk.sentence_ids)
        assert len(chunk.sentence_ids) == len(snap.sentences_of(row))
    in_order = [s for c in view.chunks(snap.chunk_ids.tolist()) for s in view.sentences(c.sentence_ids)]
    for row, sentence in enumerate(in_order):
        assert (sentence.start, sentence.end) == tuple(snap.sentence_spans[row].tolist())
        np.testing.assert_array_equal(sentence.vector, np.asarray(snap.sentence_vectors[row], np.float32))
        before, after = snap.neighbour(row, -1), snap.neighbour(row, 1)
        assert sentence.previous == (None if before is None else in_order[before].sentence_id)
        assert sentence.next == (None if after is None else in_order[after].sentence_id)
    firsts = [s for s in in_order if s.previous is None]
    assert [s.doc_id for s in firsts] == ["alpha", "gamma", "delta"]


def test_view_refuses_ids_it_does_not_hold(filled):
    store, _ = filled
    view = store.view()
    top = int(store.snapshot().chunk_ids.max())
    for lookup, missing in ((view.chunks, top + 1), (view.chunks, -1), (view.sentences, sentence_id(top + 1, 0)),
                            (view.sentences, sentence_id(0, 1000))):
        with pytest.raises(KeyError):
            lookup([missing])
    assert view.chunks([]) == [] and view.sentences([]) == []


# --- verify --------------------------------------------------------------------------------------


def _tampered(store: Store, mutate) -> Snapshot:
    snap = Store(store.root, MODEL).snapshot()  # a private copy: the live one stays intact
    mutate(snap)
    return snap


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: setattr(s, "chunk_doc", s.chunk_doc[:-1]),
        lambda s: setattr(s, "chunk_doc", np.append(s.chunk_doc, 0).astype(np.int32)),
        lambda s: setattr(s, "chunk_doc", np.where(s.chunk_doc == 0, len(s.docs), s.chunk_doc).astype(np.int32)),
        lambda s: setattr(s, "chunk_spans", s.chunk_spans[1:]),
        lambda s: setattr(s, "chunk_vectors", np.asarray(s.chunk_vectors)[:, :-1]),
        lambda s: setattr(s, "sentence_chunk", s.sentence_chunk[:-1]),
        lambda s: setattr(s, "sentence_vectors", np.asarray(s.sentence_vectors)[1:]),
        lambda s: setattr(s, "chunk_sentence_offsets", s.chunk_sentence_offsets[:-1]),
        lambda s: setattr(s, "chunk_ids", s.chunk_ids[::-1].copy()),
        lambda s: setattr(s, "token_offsets", s.token_offsets[:-1]),
        lambda s: s.dense.remove_ids(np.array([int(s.chunk_ids[0])], np.int64)),
        lambda s: setattr(s, "docs", s.docs + [s.docs[0].__class__(**{**s.docs[0].__dict__, "doc_id": "ghost"})]),
    ],
    ids=[
        "chunk_doc-short",
        "chunk_doc-long",
        "chunk_doc-out-of-range",
        "chunk_spans-short",
        "vectors-wrong-dim",
        "sentence_chunk-short",
        "sentence_vectors-short",
        "sentence-offsets-short",
        "chunk-ids-unsorted",
        "token-offsets-short",
        "faiss-missing-vector",
        "document-without-text",
    ],
)
def test_verify_rejects_inconsistent_snapshots(filled, mutate):
    store, _ = filled
    snap = _tampered(store, lambda s: None)
    snap.verify()  # intact
    mutate(snap)
    with pytest.raises(StoreIndexError, match="qa rebuild"):
        snap.verify()
    # The live snapshot was not touched.
    store.snapshot().verify()
