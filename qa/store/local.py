"""The persisted index: FAISS vectors, BM25, and chunk/sentence metadata, as immutable generations.

Layout of the index folder:

    CURRENT            name of the live generation (replaced atomically)
    gen-000042/        one complete, self-consistent snapshot (never modified once named)
    texts/<doc_id>.txt each document's extracted text, content-addressed, shared by generations
    .lock              serialises writers across processes

A commit writes a whole new generation beside the live one, fsyncs it, renames it into place and
only then points CURRENT at it, so a crash at any moment leaves either the old or the new state.
Readers check CURRENT on every access and pick up new generations without a restart. Nothing here
is pickled: arrays are .npy (allow_pickle=False), metadata JSON, vectors a FAISS file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from qa.store.protocol import Scored, StaleView, chunk_of, records_by_id, sentence_id
from qa.types import ChunkRecord, Document, DocumentInfo, NewDocument, SentenceRecord

FORMAT_VERSION = 1
CURRENT = "CURRENT"
TEXTS = "texts"
LOCK = ".lock"


class IndexError(Exception):  # noqa: A001 - the package's own, distinct from the builtin on purpose
    """The index cannot be used as it is; the message says why and what to do."""


class StaleSnapshot(IndexError, StaleView):
    """An old snapshot's files were collected after newer commits; take a new snapshot."""


@dataclass(frozen=True)
class DocMeta:
    doc_id: str
    title: str
    source: str
    path: str
    page_starts: tuple[int, ...]
    added_at: str
    chars: int
    ocr_pages: tuple[int, ...] = ()  # absent from documents.json written before OCR: none
    unsure: tuple[tuple[int, int], ...] = ()


class Snapshot:
    """One generation, loaded read-only. Chunk i's arrays are at position i everywhere."""

    def __init__(self, root: Path, generation: str | None, model: str, dim: int):
        self.root = root
        self.generation = generation
        self.model = model
        self.dim = dim
        self.docs: list[DocMeta] = []
        self.chunk_ids = np.zeros(0, np.int64)
        self.chunk_doc = np.zeros(0, np.int32)
        self.chunk_spans = np.zeros((0, 2), np.int64)
        self.chunk_pages = np.zeros(0, np.int32)
        self.chunk_sentence_offsets = np.zeros(1, np.int64)
        self.sentence_spans = np.zeros((0, 2), np.int64)
        self.sentence_chunk = np.zeros(0, np.int32)
        self.chunk_vectors = np.zeros((0, dim), np.float32)
        self.sentence_vectors = np.zeros((0, dim), np.float16)
        self.vocab: list[str] = []
        self.document_frequency = np.zeros(0, np.int64)  # chunks holding each vocabulary term
        self.term_index: dict[str, int] = {}
        self.token_ids = np.zeros(0, np.int32)
        self.token_offsets = np.zeros(1, np.int64)
        self.next_chunk_id = 0
        self.dense = None  # faiss index keyed by chunk id
        self.keyword: KeywordIndex | None = None  # BM25 over chunk positions
        self._texts: dict[str, str] = {}
        self._text_lock = threading.Lock()
        self._infos: list[DocumentInfo] | None = None
        self._whole_documents: dict[str, Document] = {}
        self.doc_index: dict[str, int] = {}

    # --- reading -------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self.chunk_ids)

    def text(self, doc_idx: int) -> str:
        doc_id = self.docs[doc_idx].doc_id
        with self._text_lock:
            cached = self._texts.get(doc_id)
            if cached is None:
                try:
                    cached = _read_text(self.root, doc_id)
                except IndexError:
                    if self.generation != _live_generation(self.root):
                        # Held across two commits: a writer has collected the text of a document
                        # it removed. Not damage: a newer snapshot has what the caller needs.
                        raise StaleSnapshot(f"the index changed while reading {self.generation}: try again") from None
                    raise
                self._texts[doc_id] = cached
            return cached

    def document(self, doc_idx: int) -> Document:
        """The document, built once per snapshot: its sections (headings found in the whole text,
        for every citation of a Word file or web page) are then found once too."""
        meta = self.docs[doc_idx]
        document = self._whole_documents.get(meta.doc_id)
        if document is None:
            document = Document(
                doc_id=meta.doc_id,
                title=meta.title,
                source=meta.source,
                path=meta.path,
                text=self.text(doc_idx),
                page_starts=meta.page_starts,
                added_at=meta.added_at,
                ocr_pages=meta.ocr_pages,
                unsure=meta.unsure,
            )
            self._whole_documents[meta.doc_id] = document
        return document

    def infos(self) -> list[DocumentInfo]:
        """Every document's info, counted once per snapshot (it never changes)."""
        if self._infos is None:
            self._infos = self._count_infos()
        return self._infos

    def _count_infos(self) -> list[DocumentInfo]:
        counts = np.bincount(self.chunk_doc, minlength=len(self.docs))
        return [
            DocumentInfo(
                doc_id=m.doc_id,
                title=m.title,
                source=m.source,
                path=m.path,
                pages=len(m.page_starts) or None,
                chunks=int(counts[i]),
                chars=m.chars,
                added_at=m.added_at,
            )
            for i, m in enumerate(self.docs)
        ]

    def sentences_of(self, chunk_pos: int) -> range:
        return range(int(self.chunk_sentence_offsets[chunk_pos]), int(self.chunk_sentence_offsets[chunk_pos + 1]))

    def sentence_doc(self, position: int) -> int:
        return int(self.chunk_doc[self.sentence_chunk[position]])

    def neighbour(self, position: int, step: int) -> int | None:
        """The sentence `step` places away in the same document (chunk borders are crossed)."""
        other = position + step
        if 0 <= other < len(self.sentence_spans) and self.sentence_doc(other) == self.sentence_doc(position):
            return other
        return None

    def verify(self) -> None:
        """Raise IndexError unless every vector has its metadata and vice versa."""
        n, s = self.size, len(self.sentence_spans)
        checks = {
            "chunk arrays": len(self.chunk_doc) == n == len(self.chunk_spans) == len(self.chunk_pages),
            "chunk vectors": self.chunk_vectors.shape == (n, self.dim),
            "FAISS vectors": self.dense is None and n == 0 or self.dense is not None and self.dense.ntotal == n,
            "BM25 documents": self.keyword is None and n == 0 or self.keyword is not None and self.keyword.num_docs == n,
            "BM25 tokens": len(self.token_offsets) == n + 1 and len(self.document_frequency) == len(self.vocab),
            "sentence arrays": len(self.sentence_chunk) == s and self.sentence_vectors.shape == (s, self.dim),
            "sentence offsets": len(self.chunk_sentence_offsets) == n + 1 and self.chunk_sentence_offsets[-1] == s,
            "documents": bool(n == 0 or self.chunk_doc.max() < len(self.docs)),
            "chunk ids": bool(np.all(np.diff(self.chunk_ids) > 0)),
        }
        broken = [name for name, ok in checks.items() if not ok]
        missing = [m.doc_id for m in self.docs if not (self.root / TEXTS / f"{m.doc_id}.txt").is_file()]
        if missing:
            broken.append(f"texts of {len(missing)} documents")
        if broken:
            raise IndexError(f"index {self.root} is inconsistent ({', '.join(broken)}): run `qa rebuild`")

    def check(self) -> dict[str, object]:
        """verify() plus what needs a pass over the data; raises IndexError naming `qa rebuild`.

        Each text must hash to its doc_id and hold its chunks' and sentences' offsets, sentences
        must lie in their chunks, BM25's statistics must match the stored tokens, vectors must be
        finite, and the manifest's counts must match what was loaded. Returns a summary.
        """
        self.verify()
        n, s = self.size, len(self.sentence_spans)
        problems: list[str] = []
        if self.generation is not None:
            try:
                manifest = json.loads((self.root / self.generation / "manifest.json").read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                manifest = {}
                problems.append(f"manifest unreadable ({exc})")
            for key, found in (("documents", len(self.docs)), ("chunks", n), ("sentences", s)):
                if manifest and manifest.get(key) != found:
                    problems.append(f"manifest counts {manifest.get(key)} {key}, the arrays {found}")
        if n:
            spans, sent = np.asarray(self.chunk_spans), np.asarray(self.sentence_spans)
            owner = np.asarray(self.sentence_chunk)
            if np.any(np.diff(self.chunk_doc) < 0) or self.chunk_doc.min() < 0:
                problems.append("chunks are not grouped by document")
            if np.any(spans[:, 0] >= spans[:, 1]) or np.any(sent[:, 0] >= sent[:, 1]):
                problems.append("empty or reversed spans")
            expected_owner = np.repeat(np.arange(n), np.diff(self.chunk_sentence_offsets))
            if not np.array_equal(owner, expected_owner):
                problems.append("sentences point at the wrong chunks")
            elif np.any(sent[:, 0] < spans[owner, 0]) or np.any(sent[:, 1] > spans[owner, 1]):
                problems.append("sentences outside their chunks")
            tokens = np.asarray(self.token_ids)
            if len(tokens) != self.token_offsets[-1] or (len(tokens) and (tokens.min() < 0 or tokens.max() >= len(self.vocab))):
                problems.append("BM25 tokens outside the vocabulary")
            else:
                rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.token_offsets))
                pairs = np.unique(rows * max(1, len(self.vocab)) + tokens)
                df = np.bincount(pairs % max(1, len(self.vocab)), minlength=len(self.vocab))
                if not np.array_equal(df, self.document_frequency):
                    problems.append("BM25 document frequencies do not match the tokens")
            for name, vectors in (("chunk", self.chunk_vectors), ("sentence", self.sentence_vectors)):
                if not np.all(np.isfinite(np.asarray(vectors, np.float32))):
                    problems.append(f"{name} vectors hold NaN or infinity")
            ids = getattr(self.dense, "id_map", None)
            if ids is not None:
                import faiss

                if not np.array_equal(np.sort(faiss.vector_to_array(ids)), self.chunk_ids):
                    problems.append("FAISS ids differ from the chunk ids")
        counts = np.bincount(self.chunk_doc, minlength=len(self.docs)) if n else np.zeros(len(self.docs), int)
        starts = np.concatenate([[0], np.cumsum(counts)])
        for i, meta in enumerate(self.docs):
            try:
                text = _read_text(self.root, meta.doc_id)
            except IndexError as exc:
                problems.append(str(exc).split(": run `qa rebuild`")[0])
                continue
            if hashlib.sha256(text.encode("utf-8")).hexdigest()[: len(meta.doc_id)] != meta.doc_id:
                problems.append(f"the text of {meta.source} ({meta.doc_id}) does not match its id")
            elif len(text) != meta.chars:
                problems.append(f"the text of {meta.source} ({meta.doc_id}) has the wrong length")
            elif counts[i] and int(np.asarray(self.chunk_spans)[starts[i] : starts[i + 1], 1].max()) > len(text):
                problems.append(f"chunks of {meta.source} ({meta.doc_id}) reach past its text")
        if problems:
            shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise IndexError(f"index {self.root} is inconsistent ({shown}): run `qa rebuild`")
        return {
            "generation": self.generation,
            "model": self.model,
            "documents": len(self.docs),
            "chunks": n,
            "sentences": s,
        }


class LocalView:
    """A Snapshot read through the store protocol (qa.store.protocol.ReadView): ids in, ids out;
    chunk ids map to the snapshot's rows through its sorted `chunk_ids`. Records are looked up a
    batch at a time and kept for the view's life (one question: retrieval, reading and the
    citation ask for the same chunks and sentences)."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self._chunks: dict[int, ChunkRecord] = {}
        self._sentences: dict[int, SentenceRecord] = {}

    @property
    def chunk_count(self) -> int:
        return self.snap.size

    def _rows(self, chunk_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The snapshot rows of `chunk_ids` (KeyError naming the first id it does not hold)."""
        ids = np.asarray(chunk_ids, np.int64)
        rows = np.searchsorted(self.snap.chunk_ids, ids)
        held = np.zeros(len(ids), bool)
        inside = rows < self.snap.size
        held[inside] = self.snap.chunk_ids[rows[inside]] == ids[inside]
        if not held.all():
            raise KeyError(f"chunk {int(ids[~held][0])} is not in {self.snap.generation}")
        return rows

    def _allowed(self, doc_ids: Collection[str] | None) -> np.ndarray | None:
        if doc_ids is None:
            return None
        wanted = [self.snap.doc_index[d] for d in doc_ids if d in self.snap.doc_index]
        return np.flatnonzero(np.isin(self.snap.chunk_doc, wanted))

    def dense_search(self, vector: np.ndarray, k: int, doc_ids: Collection[str] | None = None) -> list[Scored]:
        snap = self.snap
        allowed = self._allowed(doc_ids)
        if not snap.size or k < 1 or (allowed is not None and not len(allowed)):
            return []
        if allowed is not None:
            # A filtered search is a small exact one over the chosen documents' vectors.
            scores = np.asarray(snap.chunk_vectors[allowed], dtype=np.float32) @ vector
            order = np.argsort(-scores, kind="stable")[:k]
            return [Scored(int(snap.chunk_ids[allowed[i]]), float(scores[i])) for i in order]
        import faiss

        # One OpenMP thread for one question: extra threads only wait on busy cores (a 10k search
        # went from ~2 ms to 50-150 ms under load). Per calling thread; builds keep all cores.
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            scores, ids = snap.dense.search(np.asarray(vector, np.float32).reshape(1, -1), min(k, snap.size))
        finally:
            faiss.omp_set_num_threads(threads)
        return [Scored(int(i), float(d)) for i, d in zip(ids[0], scores[0]) if i >= 0]

    def keyword_search(self, terms: Sequence[str], k: int, doc_ids: Collection[str] | None = None) -> list[Scored]:
        snap = self.snap
        ids = [snap.term_index[t] for t in terms if t in snap.term_index]
        if not ids or k < 1 or snap.keyword is None:
            return []
        scores = snap.keyword.scores(ids)
        allowed = self._allowed(doc_ids)
        if allowed is not None:
            masked = np.zeros_like(scores)
            masked[allowed] = scores[allowed]
            scores = masked
        rows = top_k_positive(scores, min(k, len(scores)))
        return [Scored(int(snap.chunk_ids[r]), float(scores[r])) for r in rows]

    def chunks(self, chunk_ids: Sequence[int]) -> list[ChunkRecord]:
        return records_by_id(self._chunks, chunk_ids, self._chunk_records)

    def sentences(self, sentence_ids: Sequence[int]) -> list[SentenceRecord]:
        return records_by_id(self._sentences, sentence_ids, self._sentence_records)

    def _chunk_records(self, chunk_ids: list[int]) -> list[ChunkRecord]:
        snap = self.snap
        ids = np.asarray(chunk_ids, np.int64)
        rows = self._rows(ids)
        docs = snap.chunk_doc[rows].tolist()
        doc_ids, texts = self._documents(docs)
        offsets, tokens, vocab = snap.chunk_sentence_offsets, np.asarray(snap.token_ids), snap.vocab
        return [
            ChunkRecord(chunk, doc_ids[doc], start, end, page if page > 0 else None, texts[doc][start:end], vector,
                        tuple(range(sentence_id(chunk, 0), sentence_id(chunk, count))),
                        frozenset(map(vocab.__getitem__, tokens[first:last].tolist())))
            for chunk, doc, (start, end), page, vector, count, first, last in zip(
                ids.tolist(), docs, snap.chunk_spans[rows].tolist(), snap.chunk_pages[rows].tolist(),
                np.asarray(snap.chunk_vectors[rows], np.float32), (offsets[rows + 1] - offsets[rows]).tolist(),
                snap.token_offsets[rows].tolist(), snap.token_offsets[rows + 1].tolist(),
            )
        ]

    def _sentence_records(self, sentence_ids: list[int]) -> list[SentenceRecord]:
        snap = self.snap
        ids = np.asarray(sentence_ids, np.int64)
        chunk_ids = chunk_of(ids)
        chunk_rows = self._rows(chunk_ids)
        rows = snap.chunk_sentence_offsets[chunk_rows] + ids - sentence_id(chunk_ids, 0)
        outside = rows >= snap.chunk_sentence_offsets[chunk_rows + 1]
        if outside.any():
            raise KeyError(f"sentence {int(ids[outside][0])} is not in {snap.generation}")
        docs = snap.chunk_doc[chunk_rows]
        doc_ids, texts = self._documents(docs.tolist())
        previous, following = self._neighbour_ids(rows, docs)
        return [
            SentenceRecord(sentence, chunk, doc_ids[doc], start, end, texts[doc][start:end], vector, before, after)
            for sentence, chunk, doc, (start, end), vector, before, after in zip(
                ids.tolist(), chunk_ids.tolist(), docs.tolist(), snap.sentence_spans[rows].tolist(),
                np.asarray(snap.sentence_vectors[rows], np.float32), previous, following,
            )
        ]

    def _documents(self, docs: list[int]) -> tuple[dict[int, str], dict[int, str]]:
        """The ids and texts of the snapshot's documents `docs` (row numbers), by row."""
        unique = set(docs)
        return {d: self.snap.docs[d].doc_id for d in unique}, {d: self.snap.text(d) for d in unique}

    def _neighbour_ids(self, rows: np.ndarray, docs: np.ndarray) -> tuple[list[int | None], list[int | None]]:
        """The ids of the sentences before and after the sentences at `rows` of documents `docs`,
        None where that leaves the document (its sentences are contiguous rows across chunks)."""
        snap = self.snap
        other = np.concatenate([rows - 1, rows + 1])
        inside = (other >= 0) & (other < len(snap.sentence_spans))
        other = np.where(inside, other, 0)
        owner = snap.sentence_chunk[other]
        same = (inside & (snap.chunk_doc[owner] == np.tile(docs, 2))).tolist()
        ids = sentence_id(snap.chunk_ids[owner], other - snap.chunk_sentence_offsets[owner]).tolist()
        found = [i if ok else None for i, ok in zip(ids, same)]
        return found[: len(rows)], found[len(rows) :]

    def document_frequency(self, terms: Sequence[str]) -> np.ndarray:
        snap = self.snap
        return np.array([snap.document_frequency[snap.term_index[t]] if t in snap.term_index else 0 for t in terms], np.int64)

    def document(self, doc_id: str) -> Document:
        return self.snap.document(self.snap.doc_index[doc_id])

    def documents(self, doc_ids: Collection[str] | None = None) -> list[DocumentInfo]:
        infos = self.snap.infos()
        if doc_ids is None:
            return list(infos)
        return [infos[self.snap.doc_index[d]] for d in sorted(doc_ids, key=self.snap.doc_index.__getitem__)]


def top_k_positive(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest positive scores, best first (ties: lower position first).

    Exact without partitioning every chunk's score: the k-th largest score of a strided sample
    bounds the k-th largest overall from below (the sample's top k are themselves scores), so one
    vectorised comparison leaves a few thousand candidates (1M chunks: ~1.5 ms instead of ~6).
    """
    cut = 0.0
    if len(scores) > 256 * k:
        sample = scores[::64]
        if len(sample) > k:
            cut = max(0.0, float(np.partition(sample, len(sample) - k)[len(sample) - k]))
    candidates = np.flatnonzero(scores >= cut) if cut > 0 else np.flatnonzero(scores > 0)
    if len(candidates) > k:
        candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
    return candidates[np.lexsort((candidates, -scores[candidates]))]


class Store:
    """Opens the live generation and commits new ones; one per index folder and model."""

    def __init__(self, root: Path, model: str, dim_hint: int = 384):
        self.root = Path(root)
        self.model = model
        self.dim_hint = dim_hint
        self._snapshot: Snapshot | None = None
        self._load_lock = threading.Lock()

    def lock(self):
        """A cross-process lock that serialises writers (readers never need it). Taking it also
        collects what a writer killed after its last commit left behind (generations older than
        the live one's predecessor, temporary files), so the next writer cleans up even when it
        has nothing to commit."""
        self.root.mkdir(parents=True, exist_ok=True)
        return writer_lock(self.root / LOCK, self._collect_dead_writers_garbage)

    def _collect_dead_writers_garbage(self) -> None:
        try:
            live = self.current_generation()
        except IndexError:
            return  # a damaged index: `qa rebuild` decides what to keep
        if live is not None:
            older = sorted(p.name for p in self.root.glob("gen-*") if p.name < live)
            self._collect_garbage(keep={live, older[-1] if older else None})

    def current_generation(self) -> str | None:
        try:
            name = (self.root / CURRENT).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise IndexError(f"index {self.root} is damaged ({CURRENT}: {exc}): run `qa rebuild`") from exc
        return name or None

    def view(self) -> LocalView:
        """The live generation through the store protocol."""
        return LocalView(self.snapshot())

    def is_new(self) -> bool:
        return self.current_generation() is None

    def check(self) -> dict[str, object]:
        return self.snapshot().check()

    def snapshot(self) -> Snapshot:
        """The live generation, reloaded when another process (or thread) has committed."""
        for attempt in range(3):
            generation = self.current_generation()
            with self._load_lock:
                if self._snapshot is None or self._snapshot.generation != generation:
                    try:
                        self._snapshot = self._load(generation)
                    except IndexError:
                        # Writers delete old generations: one may vanish while it is being read.
                        # If CURRENT has moved on meanwhile, read the new one instead.
                        if attempt < 2 and self.current_generation() != generation:
                            continue
                        raise
                return self._snapshot
        raise AssertionError("unreachable")

    def _load(self, generation: str | None) -> Snapshot:
        if generation is None:
            return Snapshot(self.root, None, self.model, self.dim_hint)
        gen_dir = self.root / generation
        try:
            manifest = json.loads((gen_dir / "manifest.json").read_text(encoding="utf-8"))
            if not isinstance(manifest, dict):
                raise ValueError("manifest.json is not an object")
        except (OSError, ValueError) as exc:
            raise IndexError(f"index {self.root} is damaged ({generation}: {exc}): run `qa rebuild`") from exc
        if manifest.get("format_version") != FORMAT_VERSION:
            raise IndexError(
                f"index {self.root} has format {manifest.get('format_version')}, this version reads "
                f"{FORMAT_VERSION}: run `qa rebuild`"
            )
        if manifest.get("model") != self.model:
            raise IndexError(
                f"index {self.root} was built with the model '{manifest.get('model')}', not '{self.model}': "
                f"use --model {manifest.get('model')}, or `qa rebuild --model {self.model}` to re-embed"
            )
        try:
            return _read_generation(self.root, gen_dir, manifest)
        except IndexError:
            raise
        except Exception as exc:  # any damaged file: say so plainly, never a raw traceback
            raise IndexError(f"index {self.root} is damaged ({generation}: {exc}): run `qa rebuild`") from exc

    # --- writing (call with self.lock() held) ---------------------------------------------
    def commit(self, add: list[NewDocument], remove: set[str], *, fresh: bool = False) -> Snapshot:
        """Publish the live documents minus `remove` plus `add` as a new generation.

        fresh=True starts from nothing instead of the live generation (`qa rebuild`: the live one
        may be unreadable); every older generation is then dropped.
        """
        base = Snapshot(self.root, None, self.model, self.dim_hint) if fresh else self.snapshot()
        dim = add[0].chunk_vectors.shape[1] if add else base.dim
        if base.size and dim != base.dim:
            raise IndexError(f"vectors of dimension {dim} cannot join an index of dimension {base.dim}")
        keep_docs = [i for i, m in enumerate(base.docs) if m.doc_id not in remove]
        new_doc_idx = np.full(len(base.docs) + 1, -1, np.int32)
        new_doc_idx[keep_docs] = np.arange(len(keep_docs), dtype=np.int32)
        keep = new_doc_idx[base.chunk_doc] >= 0 if base.size else np.zeros(0, bool)

        docs = [base.docs[i] for i in keep_docs]
        parts = _Parts.from_base(base, keep, new_doc_idx)
        next_id = base.next_chunk_id
        for item in add:
            _write_text(self.root, item.doc)
            parts.append(item, len(docs), next_id)
            next_id += len(item.chunk_spans)
            docs.append(_meta(item.doc))

        generation = _next_generation(self.root)
        tmp = self.root / f".tmp-{generation}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        manifest = {
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "dim": dim,
            "generation": generation,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "documents": len(docs),
            "chunks": parts.n_chunks,
            "sentences": sum(len(a) for a in parts.sentence_spans),
            "next_chunk_id": next_id,
        }
        parts.write(tmp, docs, dim)
        _write_json(tmp / "manifest.json", manifest)  # last: a generation without it is incomplete
        _fsync_tree(tmp)
        os.rename(tmp, self.root / generation)
        _fsync_dir(self.root)
        _atomic_write(self.root / CURRENT, generation + "\n")
        self._collect_garbage(keep={generation, base.generation})
        return self.snapshot()

    def _collect_garbage(self, keep: set[str | None]) -> None:
        """Drop generations older than the previous one (a reader may still be opening it)."""
        referenced: set[str] = set()
        for entry in self.root.iterdir():
            if entry.name.startswith(".tmp-") or (entry.name.startswith("gen-") and entry.name not in keep):
                shutil.rmtree(entry, ignore_errors=True)
        # Half-written files of a writer that was killed (we hold the lock: none is in use).
        for stale in [*self.root.glob(".*.tmp"), *(self.root / TEXTS).glob(".*.tmp")]:
            stale.unlink(missing_ok=True)
        for generation in keep:
            if generation:
                try:
                    docs = json.loads((self.root / generation / "documents.json").read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    return  # keep every text rather than guess
                referenced.update(d["doc_id"] for d in docs)
        for text in (self.root / TEXTS).glob("*.txt"):
            if text.stem not in referenced:
                text.unlink(missing_ok=True)

    # --- recovery ------------------------------------------------------------------------------
    def recover_documents(self) -> tuple[list[Document], list[str], str | None]:
        """The documents to rebuild the index from, read without opening any generation's arrays.

        Metadata comes from the live generation's documents.json, else from the newest other
        generation whose documents.json is readable; texts come from texts/ and must hash to their
        doc_id. If no documents.json is readable at all, every intact text is recovered with a
        title from its first line (file names are lost). Returns (documents, problems, source).
        """
        try:
            live = self.current_generation()
        except IndexError:
            live = None
        others = sorted(
            (p.name for p in self.root.glob("gen-*") if p.name != live), key=lambda n: n[4:].zfill(12), reverse=True
        )
        metas: list[DocMeta] | None = None
        source = None
        for generation in [live, *others] if live else others:
            try:
                metas = _read_metas(self.root / generation / "documents.json")
                source = generation
                break
            except (OSError, ValueError, TypeError, KeyError, AttributeError):
                continue
        problems: list[str] = []
        if metas is None:
            stored = sorted((self.root / TEXTS).glob("*.txt")) if (self.root / TEXTS).is_dir() else []
            metas = [DocMeta(p.stem, "", f"{p.stem}.txt", "", (), "", 0) for p in stored]
            source = TEXTS if metas else None
        docs: list[Document] = []
        for meta in metas:
            try:
                text = _read_text(self.root, meta.doc_id)
            except IndexError:
                problems.append(f"{meta.source or meta.doc_id}: its text is missing or unreadable")
                continue
            if hashlib.sha256(text.encode("utf-8")).hexdigest()[: len(meta.doc_id)] != meta.doc_id:
                problems.append(f"{meta.source or meta.doc_id}: its text is damaged (does not match its id)")
                continue
            title = meta.title or next((line.strip() for line in text.splitlines() if line.strip()), meta.doc_id)
            docs.append(
                Document(meta.doc_id, title[:120], meta.source, meta.path, text, meta.page_starts, meta.added_at,
                         meta.ocr_pages, meta.unsure)
            )
        return docs, problems, source


class _Parts:
    """The arrays of a generation being assembled: kept rows of the base plus new documents."""

    def __init__(self) -> None:
        self.chunk_ids: list[np.ndarray] = []
        self.chunk_doc: list[np.ndarray] = []
        self.chunk_spans: list[np.ndarray] = []
        self.chunk_pages: list[np.ndarray] = []
        self.chunk_vectors: list[np.ndarray] = []
        self.sentence_spans: list[np.ndarray] = []
        self.sentence_chunk: list[np.ndarray] = []
        self.sentence_vectors: list[np.ndarray] = []
        self.sentences_per_chunk: list[np.ndarray] = []
        self.token_lists: list[list[int]] = []
        self.vocab: dict[str, int] = {}
        self.n_chunks = 0

    @classmethod
    def from_base(cls, base: Snapshot, keep: np.ndarray, new_doc_idx: np.ndarray) -> "_Parts":
        parts = cls()
        parts.vocab = {t: i for i, t in enumerate(base.vocab)}
        if not base.size:
            return parts
        kept = np.flatnonzero(keep)
        per_chunk = np.diff(base.chunk_sentence_offsets)
        sent_keep = np.repeat(keep, per_chunk)
        parts.chunk_ids.append(base.chunk_ids[kept])
        parts.chunk_doc.append(new_doc_idx[base.chunk_doc[kept]])
        parts.chunk_spans.append(base.chunk_spans[kept])
        parts.chunk_pages.append(base.chunk_pages[kept])
        parts.chunk_vectors.append(np.asarray(base.chunk_vectors[kept]))
        parts.sentence_spans.append(base.sentence_spans[sent_keep])
        parts.sentence_vectors.append(np.asarray(base.sentence_vectors[sent_keep]))
        parts.sentences_per_chunk.append(per_chunk[kept])
        new_pos = np.cumsum(keep) - 1
        parts.sentence_chunk.append(new_pos[base.sentence_chunk[sent_keep]].astype(np.int32))
        for pos in kept:
            start, end = base.token_offsets[pos], base.token_offsets[pos + 1]
            parts.token_lists.append(base.token_ids[start:end].tolist())
        parts.n_chunks = len(kept)
        return parts

    def append(self, item: NewDocument, doc_idx: int, first_id: int) -> None:
        n = len(item.chunk_spans)
        self.chunk_ids.append(np.arange(first_id, first_id + n, dtype=np.int64))
        self.chunk_doc.append(np.full(n, doc_idx, np.int32))
        self.chunk_spans.append(item.chunk_spans.astype(np.int64))
        self.chunk_pages.append(item.chunk_pages.astype(np.int32))
        self.chunk_vectors.append(item.chunk_vectors.astype(np.float32))
        self.sentence_spans.append(item.sentence_spans.astype(np.int64))
        self.sentence_chunk.append((item.sentence_chunks + self.n_chunks).astype(np.int32))
        self.sentence_vectors.append(item.sentence_vectors.astype(np.float16))
        self.sentences_per_chunk.append(np.bincount(item.sentence_chunks, minlength=n))
        for tokens in item.chunk_tokens:
            self.token_lists.append([self.vocab.setdefault(t, len(self.vocab)) for t in tokens])
        self.n_chunks += n

    def write(self, out: Path, docs: list[DocMeta], dim: int) -> None:
        import faiss

        def cat(arrays: list[np.ndarray], empty: np.ndarray) -> np.ndarray:
            return np.concatenate(arrays) if arrays else empty

        chunk_ids = cat(self.chunk_ids, np.zeros(0, np.int64))
        vectors = cat(self.chunk_vectors, np.zeros((0, dim), np.float32))
        per_chunk = cat(self.sentences_per_chunk, np.zeros(0, np.int64))
        arrays = {
            "chunk_ids": chunk_ids,
            "chunk_doc": cat(self.chunk_doc, np.zeros(0, np.int32)),
            "chunk_spans": cat(self.chunk_spans, np.zeros((0, 2), np.int64)),
            "chunk_pages": cat(self.chunk_pages, np.zeros(0, np.int32)),
            "chunk_sentence_offsets": np.concatenate([[0], np.cumsum(per_chunk)]).astype(np.int64),
            "sentence_spans": cat(self.sentence_spans, np.zeros((0, 2), np.int64)),
            "sentence_chunk": cat(self.sentence_chunk, np.zeros(0, np.int32)),
            "chunk_vectors": vectors,
            "sentence_vectors": cat(self.sentence_vectors, np.zeros((0, dim), np.float16)),
            "token_ids": np.fromiter((t for ts in self.token_lists for t in ts), np.int32),
            "token_offsets": np.concatenate([[0], np.cumsum([len(ts) for ts in self.token_lists])]).astype(np.int64),
        }
        for name, array in arrays.items():
            np.save(out / f"{name}.npy", array, allow_pickle=False)
        _write_json(out / "documents.json", [asdict(d) for d in docs])
        _write_json(out / "vocab.json", list(self.vocab))
        df = np.zeros(len(self.vocab), np.int64)
        for tokens in self.token_lists:
            df[list(set(tokens))] += 1
        np.save(out / "document_frequency.npy", df, allow_pickle=False)
        if len(chunk_ids):
            faiss.write_index(build_dense_index(vectors, chunk_ids), str(out / "dense.faiss"))
            _bm25_from_tokens(self.token_lists, self.vocab).save(str(out / "bm25"), show_progress=False)


# Dense index by size (measured in bench/ann_recall.py; numbers in bench/README.md). An exact
# scan costs ~0.15 ms per 1k vectors per question (memory-bound: 15 ms at 100k), so past
# DENSE_EXACT_MAX chunks an inverted-file index searches max(32, 1/64 of its lists): 1.5 ms
# at 100k, 4 ms at 1M, recall@10 >= 0.99 against exact search on real question vectors (16
# probes gave 0.975 at 100k). Store rebuilds this index from the stored vectors on every commit,
# so it never needs remove_ids.
DENSE_EXACT_MAX = 50_000
IVF_TRAIN_PER_LIST = 50  # k-means sample: FAISS wants >= 39 points per list
IVF_PROBE_FRACTION = 1 / 64  # 4M vectors: 4096 lists, 64 probed
IVF_MIN_PROBES = 32


def build_dense_index(vectors: np.ndarray, ids: np.ndarray, *, exact_max: int | None = None):
    """A FAISS inner-product index over `vectors` keyed by `ids`, its type chosen by size.

    Up to `exact_max` (default DENSE_EXACT_MAX) vectors: IndexIDMap2(IndexFlatIP), exact.
    Above: IndexIDMap2(IndexIVFFlat) with about 2*sqrt(n) lists (a power of two) and nprobe set
    on the index itself, so faiss.write_index persists it and a plain `index.search` needs no
    extra parameters.
    """
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    n, dim = vectors.shape
    if n <= (DENSE_EXACT_MAX if exact_max is None else exact_max):
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    else:
        nlist = ivf_lists(n)
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)  # the same vectors give the same index
        sample = min(n, IVF_TRAIN_PER_LIST * nlist)
        ivf.train(vectors[np.sort(rng.choice(n, sample, replace=False))] if sample < n else vectors)
        ivf.nprobe = min(nlist, max(IVF_MIN_PROBES, round(nlist * IVF_PROBE_FRACTION)))
        index = faiss.IndexIDMap2(ivf)
    index.add_with_ids(vectors, ids)
    return index


def ivf_lists(n: int) -> int:
    """About 2*sqrt(n) inverted lists, rounded to a power of two (1M vectors: 2048 lists)."""
    return int(2 ** round(np.log2(max(2.0 * np.sqrt(n), 16.0))))


def _bm25_from_tokens(token_lists: list[list[int]], vocab: dict[str, int]):
    import bm25s

    bm25 = bm25s.BM25()
    # bm25s wants every vocabulary id to occur; an empty chunk still needs a row.
    bm25.index((token_lists, dict(vocab)), show_progress=False)
    return bm25


@dataclass(frozen=True)
class KeywordIndex:
    """BM25 scores precomputed by bm25s at commit (a chunk x term matrix stored column by term,
    terms numbered by the store's vocabulary), read back and summed with numpy alone: importing
    bm25s loads scipy, about 0.2 s of every fresh `qa ask`. Same scores as bm25s's own
    `get_scores_from_ids` (tests/test_retrieve.py checks it on a real index)."""

    data: np.ndarray  # score of each (chunk, term) entry, grouped by term
    indices: np.ndarray  # chunk position of each entry
    indptr: np.ndarray  # term t's entries are data[indptr[t]:indptr[t + 1]]
    num_docs: int

    @classmethod
    def load(cls, folder: Path) -> "KeywordIndex":
        params = json.loads((folder / "params.index.json").read_text(encoding="utf-8"))
        if params.get("method", "lucene") not in ("lucene", "robertson", "atire"):
            raise IndexError(f"{folder}: BM25 variant {params['method']} needs a non-occurrence score")
        arrays = (np.load(folder / f"{name}.csc.index.npy", allow_pickle=False, mmap_mode="r")
                  for name in ("data", "indices", "indptr"))
        return cls(*arrays, num_docs=int(params["num_docs"]))

    def scores(self, term_ids: list[int]) -> np.ndarray:
        """Each chunk's BM25 score for the query terms (float32, one per chunk position)."""
        out = np.zeros(self.num_docs, np.float32)
        if term_ids:
            ids = np.asarray(term_ids, np.int64)
            parts = [np.arange(a, b) for a, b in zip(self.indptr[ids], self.indptr[ids + 1])]
            entries = np.concatenate(parts)
            np.add.at(out, np.asarray(self.indices[entries]), np.asarray(self.data[entries]))
        return out


def _read_generation(root: Path, gen_dir: Path, manifest: dict) -> Snapshot:
    import faiss

    snap = Snapshot(root, gen_dir.name, manifest["model"], int(manifest["dim"]))
    snap.docs = [
        DocMeta(**{**d, "page_starts": tuple(d["page_starts"]), "ocr_pages": tuple(d.get("ocr_pages") or ()),
                   "unsure": tuple(tuple(u) for u in d.get("unsure") or ())})
        for d in json.loads((gen_dir / "documents.json").read_text(encoding="utf-8"))
    ]
    snap.doc_index = {m.doc_id: i for i, m in enumerate(snap.docs)}

    def load(name: str, mmap: bool = False) -> np.ndarray:
        return np.load(gen_dir / f"{name}.npy", allow_pickle=False, mmap_mode="r" if mmap else None)

    snap.chunk_ids = load("chunk_ids")
    snap.chunk_doc = load("chunk_doc")
    snap.chunk_spans = load("chunk_spans")
    snap.chunk_pages = load("chunk_pages")
    snap.chunk_sentence_offsets = load("chunk_sentence_offsets")
    snap.sentence_spans = load("sentence_spans")
    snap.sentence_chunk = load("sentence_chunk")
    snap.chunk_vectors = load("chunk_vectors", mmap=True)
    snap.sentence_vectors = load("sentence_vectors", mmap=True)
    snap.token_ids = load("token_ids", mmap=True)
    snap.token_offsets = load("token_offsets")
    snap.vocab = json.loads((gen_dir / "vocab.json").read_text(encoding="utf-8"))
    snap.document_frequency = load("document_frequency")
    snap.term_index = {t: i for i, t in enumerate(snap.vocab)}
    snap.next_chunk_id = int(manifest["next_chunk_id"])
    if snap.size:
        # Memory-mapped like the other arrays: opening a generation reads no vectors, and readers
        # of one generation share its pages (a newer generation never rewrites these files).
        snap.dense = faiss.read_index(str(gen_dir / "dense.faiss"), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        snap.keyword = KeywordIndex.load(gen_dir / "bm25")
    snap.verify()
    return snap


def _read_metas(path: Path) -> list[DocMeta]:
    """documents.json, tolerating fields added or dropped by other format versions."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    metas = [
        DocMeta(
            doc_id=str(d["doc_id"]),
            title=str(d.get("title") or ""),
            source=str(d.get("source") or f"{d['doc_id']}.txt"),
            path=str(d.get("path") or ""),
            page_starts=tuple(int(x) for x in d.get("page_starts") or ()),
            added_at=str(d.get("added_at") or ""),
            chars=int(d.get("chars") or 0),
            ocr_pages=tuple(int(x) for x in d.get("ocr_pages") or ()),
            unsure=tuple((int(a), int(b)) for a, b in d.get("unsure") or ()),
        )
        for d in rows
    ]
    if any(not m.doc_id or "/" in m.doc_id or m.doc_id.startswith(".") for m in metas):
        raise ValueError("bad doc_id")
    return metas


def _meta(doc: Document) -> DocMeta:
    return DocMeta(
        doc_id=doc.doc_id,
        title=doc.title,
        source=doc.source,
        path=doc.path,
        page_starts=tuple(doc.page_starts),
        added_at=doc.added_at,
        chars=len(doc.text),
        ocr_pages=tuple(doc.ocr_pages),
        unsure=tuple(doc.unsure),
    )


def writer_lock(path: Path, on_acquire):
    """A filelock.FileLock (same API: context manager, acquire/release) that calls `on_acquire`
    when this process first takes it. filelock is imported here: readers never need it."""
    from filelock import FileLock

    class WriterLock(FileLock):
        def acquire(self, *args, **kwargs):
            proxy = super().acquire(*args, **kwargs)
            if self.lock_counter == 1:
                on_acquire()
            return proxy

    return WriterLock(str(path))


def _next_generation(root: Path) -> str:
    numbers = [int(p.name[4:]) for p in root.glob("gen-*") if p.name[4:].isdigit()]
    return f"gen-{max(numbers, default=0) + 1:06d}"


def _live_generation(root: Path) -> str | None:
    try:
        return (root / CURRENT).read_text(encoding="utf-8").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def _read_text(root: Path, doc_id: str) -> str:
    """A stored text exactly as written (no newline translation: offsets count every character)."""
    try:
        return (root / TEXTS / f"{doc_id}.txt").read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexError(f"index {root}: the text of document {doc_id} cannot be read ({exc}): run `qa rebuild`") from exc


def _write_text(root: Path, doc: Document) -> None:
    target = root / TEXTS / f"{doc.doc_id}.txt"
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(target, doc.text)


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _atomic_write(path: Path, content: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(content)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    for path in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        _fsync_dir(path)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
