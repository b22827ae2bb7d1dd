"""Synthetic scale-up of the real SQuAD index to 10k-1M chunks, in the index's own format.

Every synthetic document is a copy of a real SQuAD article (its text plus a "[copy N]" line, so
each copy is a distinct content-addressed document) with the real article's chunks and sentences.
- Vectors: the real chunk / sentence vectors plus gaussian noise, renormalised, the noise sized so
  that a copy's cosine to its original is `cosine` (default 0.90); copy 0 is the real corpus.
- BM25: the real chunk tokens, perturbed per copy: each token dropped with p=0.10, replaced with
  p=0.05 by a synthetic rare term (log-uniform over a vocabulary that grows with the corpus), so
  posting lists and the vocabulary grow as in a real corpus instead of being exact repeats.

Two ways to build: `commit` goes through qa.store.Store.commit with NewDocument objects (what
`qa add` does, minus the model); `direct` writes the same generation files block by block
(vectors straight into memory-mapped .npy files) using qa.store's own dense-index and BM25
builders, for sizes where commit's in-memory assembly needs too much RAM. Either result is opened
with qa.store.Store, which verifies it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL = "all-MiniLM-L6-v2"
DROP_P = 0.10
RARE_P = 0.05


@dataclass
class Base:
    """The real corpus, as arrays per document."""

    titles: list[str]
    sources: list[str]
    texts: list[str]
    chunk_range: list[tuple[int, int]]  # per document: [first, last+1) chunk positions
    chunk_spans: np.ndarray
    chunk_pages: np.ndarray
    sentence_offsets: np.ndarray  # chunk -> first sentence (len chunks + 1)
    sentence_spans: np.ndarray
    chunk_vectors: np.ndarray  # float32
    sentence_vectors: np.ndarray  # float32
    chunk_tokens: list[np.ndarray]  # token ids into `vocab`, per chunk
    vocab: list[str]


def load_base(snap) -> Base:
    order = np.argsort(snap.chunk_doc, kind="stable")
    assert np.array_equal(order, np.arange(snap.size)), "chunks are grouped by document"
    counts = np.bincount(snap.chunk_doc, minlength=len(snap.docs))
    starts = np.concatenate([[0], np.cumsum(counts)])
    tokens = np.asarray(snap.token_ids)
    return Base(
        titles=[m.title for m in snap.docs],
        sources=[m.source for m in snap.docs],
        texts=[snap.text(i) for i in range(len(snap.docs))],
        chunk_range=[(int(starts[i]), int(starts[i + 1])) for i in range(len(snap.docs))],
        chunk_spans=np.asarray(snap.chunk_spans),
        chunk_pages=np.asarray(snap.chunk_pages),
        sentence_offsets=np.asarray(snap.chunk_sentence_offsets),
        sentence_spans=np.asarray(snap.sentence_spans),
        chunk_vectors=np.asarray(snap.chunk_vectors, np.float32),
        sentence_vectors=np.asarray(snap.sentence_vectors, np.float32),
        chunk_tokens=[tokens[snap.token_offsets[i] : snap.token_offsets[i + 1]] for i in range(snap.size)],
        vocab=list(snap.vocab),
    )


def noise_sigma(cosine: float, dim: int) -> float:
    """Per-coordinate gaussian sigma that puts a noisy unit vector at `cosine` to its original."""
    return float(np.sqrt((1.0 / cosine**2 - 1.0) / dim))


def noisy(vectors: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    if sigma == 0:
        return vectors.astype(np.float32, copy=True)
    v = vectors + rng.standard_normal(vectors.shape, dtype=np.float32) * np.float32(sigma)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v


@dataclass
class Piece:
    """One synthetic document: which real article, which copy, how many of its chunks."""

    base_doc: int
    copy: int
    n_chunks: int


def plan(base: Base, n_chunks: int) -> list[Piece]:
    pieces: list[Piece] = []
    total, k = 0, 0
    while total < n_chunks:
        d = k % len(base.texts)
        first, last = base.chunk_range[d]
        take = min(last - first, n_chunks - total)
        pieces.append(Piece(d, k // len(base.texts), take))
        total += take
        k += 1
    return pieces


def copy_text(base: Base, piece: Piece) -> str:
    text = base.texts[piece.base_doc]
    return text if piece.copy == 0 else f"{text}\n\n[synthetic copy {piece.copy}]"


def doc_id_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]  # as qa.ingest names documents


class TokenPerturber:
    """Drops / replaces tokens; rare terms are new vocabulary entries named '~<n>'."""

    def __init__(self, base_vocab_size: int, n_chunks: int, rng: np.random.Generator):
        self.offset = base_vocab_size
        self.rare_vocab = max(1000, n_chunks)  # log-uniform: a few common, a long tail of rare
        self.rng = rng
        self.max_rare = -1

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        if not len(tokens):
            return tokens
        u = self.rng.random(len(tokens))
        keep = u >= DROP_P
        out = tokens.astype(np.int64)
        rare = (u >= DROP_P) & (u < DROP_P + RARE_P)
        if rare.any():
            j = np.floor(np.exp(self.rng.random(int(rare.sum())) * np.log(self.rare_vocab))).astype(np.int64) - 1
            out[rare] = self.offset + j
            self.max_rare = max(self.max_rare, int(j.max()))
        return out[keep]


def iter_pieces(base: Base, n_chunks: int, cosine: float, seed: int) -> Iterator[tuple[Piece, dict]]:
    """Each synthetic document's arrays (vectors float32, tokens as global ids)."""
    rng = np.random.default_rng(seed)
    dim = base.chunk_vectors.shape[1]
    sigma = noise_sigma(cosine, dim)
    perturb = TokenPerturber(len(base.vocab), n_chunks, rng)
    for piece in plan(base, n_chunks):
        first, _ = base.chunk_range[piece.base_doc]
        last = first + piece.n_chunks
        s0, s1 = int(base.sentence_offsets[first]), int(base.sentence_offsets[last])
        exact = piece.copy == 0
        yield piece, {
            "chunk_spans": base.chunk_spans[first:last],
            "chunk_pages": base.chunk_pages[first:last],
            "sentence_spans": base.sentence_spans[s0:s1],
            "sentences_per_chunk": np.diff(base.sentence_offsets[first : last + 1]),
            "chunk_vectors": noisy(base.chunk_vectors[first:last], 0 if exact else sigma, rng),
            "sentence_vectors": noisy(base.sentence_vectors[s0:s1], 0 if exact else sigma, rng),
            "chunk_tokens": [t if exact else perturb(t) for t in base.chunk_tokens[first:last]],
        }


def vocab_of(base: Base, n_chunks: int) -> list[str]:
    """Base vocabulary + every rare term that could be drawn (unused ones cost only a row)."""
    return base.vocab + [f"~{j}" for j in range(max(1000, n_chunks))]


# --- building --------------------------------------------------------------------------------------


def build_commit(base: Base, root: Path, n_chunks: int, cosine: float = 0.90, seed: int = 0) -> dict:
    """Through Store.commit: NewDocument objects, one commit (what `qa add` does, minus the model)."""
    from qa.store import NewDocument, Store
    from qa.types import Document

    vocab = vocab_of(base, n_chunks)
    clock = time.perf_counter()
    items = []
    for piece, arrays in iter_pieces(base, n_chunks, cosine, seed):
        text = copy_text(base, piece)
        copy = f" (copy {piece.copy})" if piece.copy else ""
        doc = Document(
            doc_id=doc_id_of(text),
            title=base.titles[piece.base_doc] + copy,
            source=base.sources[piece.base_doc],
            path=f"/synthetic/{piece.copy}/{base.sources[piece.base_doc]}",
            text=text,
            added_at="2024-01-01T00:00:00+00:00",
        )
        n = piece.n_chunks
        items.append(
            NewDocument(
                doc=doc,
                chunk_spans=arrays["chunk_spans"],
                chunk_pages=arrays["chunk_pages"],
                sentence_spans=arrays["sentence_spans"],
                sentence_chunks=np.repeat(np.arange(n, dtype=np.int32), arrays["sentences_per_chunk"]),
                chunk_vectors=arrays["chunk_vectors"],
                sentence_vectors=arrays["sentence_vectors"].astype(np.float16),
                chunk_tokens=[[vocab[t] for t in ts] for ts in arrays["chunk_tokens"]],
            )
        )
    generated = time.perf_counter() - clock
    store = Store(root, MODEL)
    clock = time.perf_counter()
    with store.lock():
        snap = store.commit(items, set())
    return {"method": "commit", "generate_s": generated, "build_s": time.perf_counter() - clock, "chunks": snap.size}


def build_direct(base: Base, root: Path, n_chunks: int, cosine: float = 0.90, seed: int = 0) -> dict:
    """The generation files written block by block, with qa.store's own index builders."""
    import faiss

    from qa.store import local as qs

    clock = time.perf_counter()
    pieces = plan(base, n_chunks)
    dim = base.chunk_vectors.shape[1]
    n_sent = sum(
        int(base.sentence_offsets[base.chunk_range[p.base_doc][0] + p.n_chunks] - base.sentence_offsets[base.chunk_range[p.base_doc][0]])
        for p in pieces
    )
    root.mkdir(parents=True, exist_ok=True)
    generation = "gen-000001"
    tmp = root / f".tmp-{generation}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (root / qs.TEXTS).mkdir(exist_ok=True)

    def out(name: str, shape: tuple, dtype) -> np.ndarray:
        return np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)

    chunk_vectors = out("chunk_vectors", (n_chunks, dim), np.float32)
    sentence_vectors = out("sentence_vectors", (n_sent, dim), np.float16)
    chunk_doc = np.empty(n_chunks, np.int32)
    chunk_spans = np.empty((n_chunks, 2), np.int64)
    chunk_pages = np.empty(n_chunks, np.int32)
    sentence_spans = np.empty((n_sent, 2), np.int64)
    per_chunk = np.empty(n_chunks, np.int64)
    token_arrays: list[np.ndarray] = []
    docs = []
    c = s = 0
    for d, (piece, arrays) in enumerate(iter_pieces(base, n_chunks, cosine, seed)):
        text = copy_text(base, piece)
        doc_id = doc_id_of(text)
        target = root / qs.TEXTS / f"{doc_id}.txt"
        if not target.exists():
            target.write_bytes(text.encode("utf-8"))
        copy = f" (copy {piece.copy})" if piece.copy else ""
        docs.append(
            {
                "doc_id": doc_id,
                "title": base.titles[piece.base_doc] + copy,
                "source": base.sources[piece.base_doc],
                "path": f"/synthetic/{piece.copy}/{base.sources[piece.base_doc]}",
                "page_starts": [],
                "added_at": "2024-01-01T00:00:00+00:00",
                "chars": len(text),
            }
        )
        n, m = piece.n_chunks, len(arrays["sentence_spans"])
        chunk_doc[c : c + n] = d
        chunk_spans[c : c + n] = arrays["chunk_spans"]
        chunk_pages[c : c + n] = arrays["chunk_pages"]
        chunk_vectors[c : c + n] = arrays["chunk_vectors"]
        per_chunk[c : c + n] = arrays["sentences_per_chunk"]
        sentence_spans[s : s + m] = arrays["sentence_spans"]
        sentence_vectors[s : s + m] = arrays["sentence_vectors"]
        token_arrays.extend(arrays["chunk_tokens"])
        c, s = c + n, s + m
    assert c == n_chunks and s == n_sent
    chunk_vectors.flush()
    sentence_vectors.flush()
    del sentence_vectors
    generated = time.perf_counter() - clock

    clock = time.perf_counter()
    lengths = np.fromiter((len(t) for t in token_arrays), np.int64, count=n_chunks)
    token_ids = np.concatenate(token_arrays).astype(np.int64)
    del token_arrays
    # Keep only the rare terms that were drawn, numbered densely after the base vocabulary.
    offset = len(base.vocab)
    used = np.unique(token_ids[token_ids >= offset])
    vocab = base.vocab + [f"~{j - offset}" for j in used.tolist()]
    rare = token_ids >= offset
    token_ids[rare] = offset + np.searchsorted(used, token_ids[rare])
    token_ids = token_ids.astype(np.int32)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    token_lists = [token_ids[bounds[i] : bounds[i + 1]].tolist() for i in range(n_chunks)]
    rows = np.repeat(np.arange(n_chunks, dtype=np.int64), lengths)
    pairs = np.unique(rows * len(vocab) + token_ids)
    document_frequency = np.bincount(pairs % len(vocab), minlength=len(vocab)).astype(np.int64)
    del rows, pairs
    arrays = {
        "chunk_ids": np.arange(n_chunks, dtype=np.int64),
        "chunk_doc": chunk_doc,
        "chunk_spans": chunk_spans,
        "chunk_pages": chunk_pages,
        "chunk_sentence_offsets": np.concatenate([[0], np.cumsum(per_chunk)]).astype(np.int64),
        "sentence_spans": sentence_spans,
        "sentence_chunk": np.repeat(np.arange(n_chunks, dtype=np.int32), per_chunk),
        "token_ids": token_ids,
        "token_offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "document_frequency": document_frequency,
    }
    for name, array in arrays.items():
        np.save(tmp / f"{name}.npy", array, allow_pickle=False)
    (tmp / "documents.json").write_text(json.dumps(docs, ensure_ascii=False), encoding="utf-8")
    (tmp / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    t_dense = time.perf_counter()
    dense = qs.build_dense_index(np.load(tmp / "chunk_vectors.npy"), arrays["chunk_ids"])
    faiss.write_index(dense, str(tmp / "dense.faiss"))
    del dense
    t_bm25 = time.perf_counter()
    qs._bm25_from_tokens(token_lists, {t: i for i, t in enumerate(vocab)}).save(str(tmp / "bm25"), show_progress=False)
    t_done = time.perf_counter()
    manifest = {
        "format_version": qs.FORMAT_VERSION,
        "model": MODEL,
        "dim": dim,
        "generation": generation,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "documents": len(docs),
        "chunks": n_chunks,
        "sentences": n_sent,
        "next_chunk_id": n_chunks,
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    os.rename(tmp, root / generation)
    (root / qs.CURRENT).write_text(generation + "\n", encoding="utf-8")
    return {
        "method": "direct",
        "generate_s": generated,
        "build_s": time.perf_counter() - clock,
        "dense_build_s": t_bm25 - t_dense,
        "bm25_build_s": t_done - t_bm25,
        "chunks": n_chunks,
    }
