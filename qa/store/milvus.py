"""The index in Milvus (pymilvus's MilvusClient): the store protocol over a set of collections.

Selected with QA_STORE=milvus. QA_MILVUS_URI is a Milvus Lite folder (default `milvus.db` inside
the index folder: one process at a time) or a server or cluster URI (`http://host:19530`), with
QA_MILVUS_TOKEN, or QA_MILVUS_USER and QA_MILVUS_PASSWORD, from the environment (never logged).

Collections, all named `<prefix>_<name>` (prefix "briefqa"), Strong consistency throughout:

    meta       "model" (model, dim, format) and "state" (generation, next ids, pending commit)
    documents  doc_id -> title, source, path, page_starts (JSON: where pages start, with OCR pages and unsure spans for a scan), added_at, chars, chunks, parts
    texts      each document's text in parts under Milvus's VARCHAR limit
    chunks     chunk_id -> doc_id, start, end, page, text, sentences, vector (IP on normalised
               vectors = cosine), terms (our stemmed BM25 tokens) and, where the server has it,
               Milvus's BM25 function from terms to a sparse vector
    sentences  sentence_id -> chunk_id, doc_id, start, end, text, vector, previous, next

Milvus wants a vector field in every collection: meta, documents and texts carry an unused
2-dimensional one. Rows are never updated: a chunk id is never reused (a counter in "state",
like the local store's next_chunk_id), so a row read once stays right for as long as it exists.

A commit writes a journal first ("state" with the next generation and the documents it adds and
removes), then deletes the removed documents' rows (their `documents` row first), writes the new
documents' rows (their `documents` row last), flushes, and clears the journal. A view is the set
of documents whose row it saw, less any a pending commit is removing: hits of other documents are
dropped, and a view that finds the index changed under it and one of its documents gone raises
StaleView. A commit that died is finished (removals) or undone (half-written additions) by the
next writer, as it takes the lock; until then views do not see its half-written documents. A
document being replaced or changed when its commit died is gone until added again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.store.local import IndexError, writer_lock
from qa.store.protocol import Scored, StaleView, chunk_of, records_by_id, sentence_id
from qa.types import ChunkRecord, Document, DocumentInfo, NewDocument, SentenceRecord

log = logging.getLogger(__name__)


class _NoClientTimestampNotice(logging.Filter):
    """pymilvus's query iterator warns on every call against Milvus Lite that it uses a
    client-side timestamp (Lite does not serve one); it is expected there, and it would fill every
    `qa` command's output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "failed to get mvccTs" not in record.getMessage()


logging.getLogger("pymilvus.client.iterator.query_iterator").addFilter(_NoClientTimestampNotice())

FORMAT_VERSION = 1
PREFIX = "briefqa"
# Milvus caps a VARCHAR at 65,535 bytes; UTF-8 spends at most 4 bytes a character.
VARCHAR_BYTES = 65_535
TEXT_PART_CHARS = VARCHAR_BYTES // 4
# Milvus caps a search's or query's limit (topk) at 16,384.
MAX_LIMIT = 16_384
# Hits of documents a view does not see (added by a later commit) are dropped: a search asks for
# k first and OVERFETCH times more while it came back full and short of k visible hits.
OVERFETCH = 4
# BM25 as the protocol defines it: bm25s's defaults (k1 1.5, b 0.75, Lucene IDF). Milvus computes
# idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl)); bm25s leaves out the (k1 + 1), so
# Milvus's scores divided by BM25_SCALE are bm25s's (measured equal on one segment, see tests).
BM25_K1 = 1.5
BM25_B = 0.75
BM25_SCALE = 1.0 + BM25_K1
# Milvus Lite (milvus-lite 3.2.2) keeps BM25 statistics (N, avgdl, document frequencies) per
# flushed segment, deleted rows included until its background compaction merges 4 segments: after
# several commits its scores and order drift from bm25s's (tests/test_store_contract.py).
# Milvus Lite (milvus-lite 3.2.2) returns BM25 distances negated (-score: "smaller is closer");
# Milvus servers return the score. Scores are taken as their absolute value either way.
# BM25 functions came with Milvus 2.5: older servers (the PyPI `milvus` package is 2.3.5) have no
# sparse vectors, and the store falls back to dense search alone, saying so once.
BM25_SINCE = (2, 5)
_UNUSED = [0.0, 0.0]  # the placeholder vector of collections that need none

_ASCII_WORD = re.compile(r"[a-z]+")


def encode_term(term: str) -> str:
    """A stemmed term as one token Milvus's standard analyzer keeps whole and unchanged.

    Letters a-z pass as they are (nearly every English stem); any other term (digits, accents,
    other scripts, "_") becomes "0" + its UTF-8 in hex, so no analyzer can split or re-case it
    and no plain term can collide with it (plain terms never hold a digit)."""
    return term if _ASCII_WORD.fullmatch(term) else "0" + term.encode("utf-8").hex()


def decode_term(token: str) -> str:
    return bytes.fromhex(token[1:]).decode("utf-8") if token[:1] == "0" else token


def _is_server(uri: str) -> bool:
    return "://" in uri


def _quoted(values: Collection[str]) -> str:
    """A Milvus expression list of strings (JSON's quoting is Milvus's for these ids)."""
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


@dataclass(frozen=True)
class _State:
    generation: int
    next_chunk_id: int
    next_doc_seq: int
    pending: dict | None  # {"add": [...], "remove": [...]} while a commit is under way


class MilvusStore:
    """The store protocol's IndexStore over Milvus; one per collection set and model."""

    def __init__(self, uri: str, model: str, *, prefix: str = PREFIX, token: str = ""):
        """`uri`: a Milvus Lite folder or a server URI (qa.config: QA_MILVUS_URI); `token`: the
        server's "user:password" or API key (QA_MILVUS_TOKEN), never logged."""
        self.uri = uri
        self.model = model
        self.prefix = prefix
        self._token = token
        self._client = None
        self._keyword: bool | None = None  # the chunks collection has the BM25 function
        self._thread_lock = threading.Lock()
        self._docs_cache: tuple[int, dict[str, dict]] | None = None
        self._existing: set[str] = set()
        # Term document frequencies counted so far, for one generation (a commit starts afresh):
        # each count is a TEXT_MATCH query over the chunks, so questions share what they counted.
        self._frequency_cache: tuple[int, dict[str, int]] = (-1, {})
        self._cache_lock = threading.Lock()

    def __repr__(self) -> str:  # never the token
        return f"MilvusStore({_redacted(self.uri)!r}, {self.model!r})"

    # --- connection --------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            self._client = self._connect()
            self.load()
        return self._client

    def _connect(self):
        try:
            from pymilvus import MilvusClient
        except ImportError as exc:
            raise IndexError("QA_STORE=milvus needs pymilvus: pip install 'briefqa[milvus]'") from exc
        if not _is_server(self.uri):
            Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
        try:
            return MilvusClient(uri=self.uri, token=self._token)
        except Exception as exc:
            if not _is_server(self.uri) and _lite_locked(Path(self.uri)):
                raise IndexError(
                    f"{self.uri} is open in another process: Milvus Lite allows one; use a Milvus server for several"
                ) from None
            # The exception may quote the URI's credentials: name only its type.
            raise IndexError(f"cannot open Milvus at {_redacted(self.uri)} ({type(exc).__name__})") from None

    def _name(self, collection: str) -> str:
        return f"{self.prefix}_{collection}"

    def _has(self, collection: str) -> bool:
        """Whether the collection exists; remembered once it does (briefqa never drops one)."""
        if collection not in self._existing:
            if not self.client.has_collection(self._name(collection)):
                return False
            self._existing.add(collection)
        return True

    def _get(self, collection: str, ids: Sequence[Any], fields: list[str]) -> list[dict]:
        rows: list[dict] = []
        for start in range(0, len(ids), MAX_LIMIT):
            rows.extend(self.client.get(self._name(collection), ids=list(ids[start : start + MAX_LIMIT]), output_fields=fields))
        return rows

    def _query_all(self, collection: str, expr: str, fields: list[str]) -> list[dict]:
        iterator = self.client.query_iterator(self._name(collection), batch_size=1000, filter=expr, output_fields=fields)
        rows: list[dict] = []
        while batch := iterator.next():
            rows.extend(batch)
        iterator.close()
        return rows

    def _count(self, collection: str, expr: str = "") -> int:
        if not self._has(collection):
            return 0
        rows = self.client.query(self._name(collection), filter=expr, output_fields=["count(*)"], consistency_level="Strong")
        return int(rows[0]["count(*)"])

    def _frequencies_at(self, generation: int) -> dict[str, int]:
        """The frequencies counted so far at `generation` (emptied when it changes)."""
        with self._cache_lock:
            if self._frequency_cache[0] != generation:
                self._frequency_cache = (generation, {})
            return self._frequency_cache[1]

    # --- meta ----------------------------------------------------------------------------------
    def _meta(self, key: str) -> dict | None:
        if not self._has("meta"):
            return None
        rows = self.client.get(self._name("meta"), ids=[key], output_fields=["value"])
        return json.loads(rows[0]["value"]) if rows else None

    def _set_meta(self, key: str, value: dict) -> None:
        self.client.upsert(self._name("meta"), [{"key": key, "value": json.dumps(value), "unused": _UNUSED}])

    def _state(self) -> _State:
        state = self._meta("state") or {}
        return _State(
            generation=int(state.get("generation", 0)),
            next_chunk_id=int(state.get("next_chunk_id", 0)),
            next_doc_seq=int(state.get("next_doc_seq", 0)),
            pending=state.get("pending"),
        )

    def _write_state(self, state: _State) -> None:
        self._set_meta("state", {
            "generation": state.generation,
            "next_chunk_id": state.next_chunk_id,
            "next_doc_seq": state.next_doc_seq,
            "pending": state.pending,
        })

    def _check_model(self) -> int | None:
        """The index's dimension (None before the first commit); IndexError for another model."""
        meta = self._meta("model")
        if meta is None:
            return None
        if meta.get("format_version") != FORMAT_VERSION:
            raise IndexError(
                f"Milvus index {_redacted(self.uri)} has format {meta.get('format_version')}, this version reads "
                f"{FORMAT_VERSION}: index the documents into a new one (another QA_MILVUS_URI)"
            )
        if meta.get("model") != self.model:
            raise IndexError(
                f"Milvus index {_redacted(self.uri)} was built with the model '{meta.get('model')}', not "
                f"'{self.model}': use --model {meta.get('model')}, or index into a new one (another QA_MILVUS_URI)"
            )
        self._keyword = bool(meta.get("keyword", False))
        return int(meta["dim"]) if meta.get("dim") else None

    # --- reading -------------------------------------------------------------------------------
    def _absent(self) -> bool:
        """A Lite index not created yet: reading it must not create it (nothing was added)."""
        return not _is_server(self.uri) and not Path(self.uri).exists()

    def view(self) -> "MilvusView":
        """The documents committed now, read through the store protocol."""
        if self._absent():
            return MilvusView(self, 0, {}, None, False)
        dim = self._check_model()
        state = self._state()
        docs = self._documents(state)
        removing = set((state.pending or {}).get("remove", ()))
        visible = {d: row for d, row in docs.items() if d not in removing}
        return MilvusView(self, state.generation, visible, dim, bool(self._keyword))

    def _documents(self, state: _State) -> dict[str, dict]:
        """Every `documents` row by doc_id in the order added; reread only after a commit."""
        cached = self._docs_cache
        if cached is not None and cached[0] == state.generation and state.pending is None:
            return cached[1]
        rows = self._query_all("documents", 'doc_id != ""', list(_DOC_FIELDS)) if self._has("documents") else []
        docs = {r["doc_id"]: r for r in sorted(rows, key=lambda r: r["seq"])}
        if state.pending is None and self._state() == state:  # no commit began meanwhile
            self._docs_cache = (state.generation, docs)
        return docs

    def is_new(self) -> bool:
        return self._absent() or self._meta("state") is None

    def lock(self):
        """Serialises writers. Taking it finishes a commit that died half-way (`_finish`), so the
        next writer repairs the index even when it has nothing to commit. A Lite folder: a file
        lock beside it (Lite is one process anyway). A server: a lock within this process only;
        Milvus has no transactions to build a cross-process lock on, so a deployment runs one
        writer (one ingesting process)."""
        if _is_server(self.uri):
            return _ThreadWriterLock(self._thread_lock, self._finish_dead_commit)
        Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
        return writer_lock(Path(f"{self.uri}.lock"), self._finish_dead_commit)

    def _finish_dead_commit(self) -> None:
        """With the writer lock just taken, a journal still pending is a dead writer's."""
        if self._absent():
            return  # nothing to finish, and nothing to create yet
        state = self._state()
        if state.pending:
            self._finish(state.pending)
            self._flush()
            self._write_state(_State(state.generation + 1, state.next_chunk_id, state.next_doc_seq, None))
            self._docs_cache = None

    # --- writing (call with self.lock() held) ---------------------------------------------------
    def commit(self, add: Sequence[NewDocument], remove: Collection[str]) -> None:
        """Add documents and remove documents by id, as one step for views (module docstring).
        A document in `add` that is indexed already replaces the indexed one."""
        add = list(add)
        dim = self._check_model()
        new_dim = add[0].chunk_vectors.shape[1] if add else dim
        if dim is not None and new_dim != dim:
            raise IndexError(f"vectors of dimension {new_dim} cannot join an index of dimension {dim}")
        rows = [_rows_of(item) for item in add]  # refuses what Milvus cannot hold before writing
        self._finish_dead_commit()  # taking the lock did, unless a commit failed under this hold
        state = self._state()
        if not self._has("meta"):
            self._create_meta()
        if new_dim is not None and dim is None:
            self._create_collections(new_dim)
        adding = [item.doc.doc_id for item in add]
        removing = sorted(set(remove) | (set(adding) & set(self._documents(self._state()))))
        pending = {"add": adding, "remove": removing}
        total_chunks = sum(len(item.chunk_spans) for item in add)
        journal = _State(state.generation + 1, state.next_chunk_id + total_chunks, state.next_doc_seq + len(add), pending)
        self._write_state(journal)
        self._delete(removing, documents_first=True)
        self._delete(adding, documents_first=False)  # leftovers of a commit that died
        first_id, seq = state.next_chunk_id, state.next_doc_seq
        for item, (texts, chunks, sentences) in zip(add, rows):
            ids = {n: first_id + n for n in range(len(chunks))}
            self._insert("texts", texts)
            self._insert("chunks", [{**_without(c, "number"), "chunk_id": ids[c["number"]]} for c in chunks])
            self._insert("sentences", _with_sentence_ids(sentences, ids))
            first_id += len(chunks)
        for item, (texts, chunks, _) in zip(add, rows):
            self._insert("documents", [_document_row(item.doc, seq, len(chunks), len(texts))])
            seq += 1
        self._flush()
        self._write_state(_State(journal.generation, journal.next_chunk_id, journal.next_doc_seq, None))
        self._docs_cache = None

    def _finish(self, pending: dict) -> None:
        """Complete the removals and undo the half-written additions of a commit that died."""
        self._delete(pending.get("remove", []), documents_first=True)
        indexed = set(self._documents(self._state()))
        self._delete([d for d in pending.get("add", []) if d not in indexed], documents_first=False)
        log.warning("Milvus index %s: finished a commit that had stopped half-way", _redacted(self.uri))

    def _delete(self, doc_ids: Sequence[str], *, documents_first: bool) -> None:
        if not doc_ids:
            return
        order = ["documents", "chunks", "sentences", "texts"] if documents_first else ["chunks", "sentences", "texts"]
        for start in range(0, len(doc_ids), 1000):
            expr = f"doc_id in {_quoted(doc_ids[start : start + 1000])}"
            for collection in order:
                if self._has(collection):
                    self.client.delete(self._name(collection), filter=expr)

    def _insert(self, collection: str, rows: list[dict]) -> None:
        for start in range(0, len(rows), 1000):
            self.client.insert(self._name(collection), rows[start : start + 1000])

    def _flush(self) -> None:
        # Lite scores BM25 over rows still in memory with statistics of the filtered rows only
        # (a doc_ids filter changed the scores, measured); flushed rows get the segment's.
        for collection in ("texts", "chunks", "sentences", "documents"):
            if self._has(collection):
                self.client.flush(self._name(collection))

    def _create_meta(self) -> None:
        from pymilvus import DataType

        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("value", DataType.VARCHAR, max_length=VARCHAR_BYTES)
        schema.add_field("unused", DataType.FLOAT_VECTOR, dim=len(_UNUSED))
        self._create("meta", schema)

    def _create_collections(self, dim: int) -> None:
        """documents, texts, chunks and sentences for vectors of `dim`; records the model."""
        from pymilvus import DataType, Function, FunctionType

        def schema(pk: str, pk_type, **pk_args):
            s = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
            s.add_field(pk, pk_type, is_primary=True, **pk_args)
            return s

        docs = schema("doc_id", DataType.VARCHAR, max_length=256)
        for name in ("title", "source", "path", "page_starts", "added_at"):
            docs.add_field(name, DataType.VARCHAR, max_length=VARCHAR_BYTES)
        for name in ("seq", "chars", "chunks", "parts"):
            docs.add_field(name, DataType.INT64)
        docs.add_field("unused", DataType.FLOAT_VECTOR, dim=len(_UNUSED))
        texts = schema("part_id", DataType.VARCHAR, max_length=300)
        texts.add_field("doc_id", DataType.VARCHAR, max_length=256)
        texts.add_field("part", DataType.INT64)
        texts.add_field("text", DataType.VARCHAR, max_length=VARCHAR_BYTES)
        texts.add_field("unused", DataType.FLOAT_VECTOR, dim=len(_UNUSED))
        keyword = self._server_has_bm25()
        chunks = schema("chunk_id", DataType.INT64)
        chunks.add_field("doc_id", DataType.VARCHAR, max_length=256)
        for name in ("start", "end", "page", "sentences"):
            chunks.add_field(name, DataType.INT64)
        chunks.add_field("text", DataType.VARCHAR, max_length=VARCHAR_BYTES)
        chunks.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        if keyword:
            # Our own tokens, already stemmed: the standard analyzer only splits them on spaces
            # (encode_term keeps each whole). Lite 3.2.2 has no whitespace tokenizer and no
            # English analyzer ("supported: 'standard', 'jieba'"), so stemming must be ours.
            chunks.add_field("terms", DataType.VARCHAR, max_length=VARCHAR_BYTES, enable_analyzer=True,
                             enable_match=True, analyzer_params={"type": "standard"})
            chunks.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
            chunks.add_function(Function(name="bm25", function_type=FunctionType.BM25,
                                         input_field_names=["terms"], output_field_names=["sparse"]))
        else:
            chunks.add_field("terms", DataType.VARCHAR, max_length=VARCHAR_BYTES)
            log.warning(
                "Milvus at %s (%s) has no BM25 function (Milvus 2.5 and later): keyword search is off, "
                "questions are answered from dense search alone", _redacted(self.uri), self.client.get_server_version())
        sentences = schema("sentence_id", DataType.INT64)
        sentences.add_field("doc_id", DataType.VARCHAR, max_length=256)
        for name in ("chunk_id", "start", "end", "previous", "next"):
            sentences.add_field(name, DataType.INT64)
        sentences.add_field("text", DataType.VARCHAR, max_length=VARCHAR_BYTES)
        sentences.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        self._create("documents", docs)
        self._create("texts", texts)
        self._create("chunks", chunks, sparse=keyword, dim=dim)
        self._create("sentences", sentences, dim=dim)
        self._set_meta("model", {"model": self.model, "dim": dim, "format_version": FORMAT_VERSION, "keyword": keyword})
        self._keyword = keyword

    def _create(self, collection: str, schema, *, sparse: bool = False, dim: int | None = None) -> None:
        index = self.client.prepare_index_params()
        # Exact inner product: vectors are normalised, so it is the cosine FAISS's flat index gives.
        index.add_index(field_name="vector" if dim else "unused", index_type="FLAT", metric_type="IP")
        if sparse:
            index.add_index(field_name="sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                            params={"bm25_k1": BM25_K1, "bm25_b": BM25_B})
        if not self._has(collection):
            self.client.create_collection(self._name(collection), schema=schema, consistency_level="Strong")
            # Not waiting for the index: pymilvus polls its state every 0.5 s (0.6 s a collection,
            # 3 s of the first commit measured on Lite); loading waits for it anyway.
            self.client.create_index(self._name(collection), index, sync=False)
        self.client.load_collection(self._name(collection))

    def _server_has_bm25(self) -> bool:
        version = str(self.client.get_server_version())
        if version.startswith("milvus_lite"):
            return True
        found = re.search(r"(\d+)\.(\d+)", version)
        return bool(found) and (int(found.group(1)), int(found.group(2))) >= BM25_SINCE

    def load(self) -> None:
        """Load every collection for reading: a reopened Lite folder starts with them released
        ("call load() before search/get/query")."""
        for collection in ("meta", "documents", "texts", "chunks", "sentences"):
            if self._has(collection):
                self.client.load_collection(self._name(collection))

    # --- checking ----------------------------------------------------------------------------
    def check(self) -> dict[str, object]:
        """Counts match the documents' rows, texts hash to their ids, no commit is half done."""
        self._check_model()
        state = self._state()
        if state.pending:  # its rows are not in any view, but they are counted below
            raise IndexError(
                f"Milvus index {_redacted(self.uri)}: a commit stopped half-way; the next `qa add` or "
                "`qa remove` finishes it (its documents are whole or not shown meanwhile)"
            )
        problems: list[str] = []
        view = self.view()
        docs = view.docs
        expected_chunks = sum(int(r["chunks"]) for r in docs.values())
        chunks, sentences = self._count("chunks"), self._count("sentences")
        if chunks != expected_chunks:
            problems.append(f"{chunks} chunks where the documents hold {expected_chunks}")
        if self._has("chunks") and chunks:
            counts = self._query_all("chunks", "chunk_id >= 0", ["doc_id", "start", "end", "sentences", "vector"])
            if sum(int(r["sentences"]) for r in counts) != sentences:
                problems.append(f"{sentences} sentences where the chunks hold {sum(int(r['sentences']) for r in counts)}")
            if not all(np.all(np.isfinite(r["vector"])) for r in counts):
                problems.append("chunk vectors hold NaN or infinity")
            reach = {}
            for r in counts:
                reach[r["doc_id"]] = max(reach.get(r["doc_id"], 0), int(r["end"]))
        else:
            reach = {}
        for doc_id, row in docs.items():
            try:
                text = view.text(doc_id)
            except (KeyError, StaleView):
                problems.append(f"the text of {row['source']} ({doc_id}) is missing")
                continue
            if hashlib.sha256(text.encode("utf-8")).hexdigest()[: len(doc_id)] != doc_id:
                problems.append(f"the text of {row['source']} ({doc_id}) does not match its id")
            elif len(text) != int(row["chars"]):
                problems.append(f"the text of {row['source']} ({doc_id}) has the wrong length")
            elif reach.get(doc_id, 0) > len(text):
                problems.append(f"chunks of {row['source']} ({doc_id}) reach past its text")
        if problems:
            shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise IndexError(f"Milvus index {_redacted(self.uri)} is inconsistent ({shown}): remove those documents and add them again")
        return {"generation": state.generation, "model": self.model, "documents": len(docs),
                "chunks": chunks, "sentences": sentences}


_DOC_FIELDS = ("doc_id", "seq", "title", "source", "path", "page_starts", "added_at", "chars", "chunks", "parts")
_CHUNK_FIELDS = ["chunk_id", "doc_id", "start", "end", "page", "text", "sentences", "vector", "terms"]
_SENTENCE_FIELDS = ["sentence_id", "chunk_id", "doc_id", "start", "end", "text", "vector", "previous", "next"]


class MilvusView:
    """One question's view (qa.store.protocol.ReadView): the documents committed when it was
    made. Each read checks afterwards that no commit since removed one of them (StaleView)."""

    def __init__(self, store: MilvusStore, generation: int, docs: dict[str, dict], dim: int | None, keyword: bool):
        self.store = store
        self.generation = generation
        self.docs = docs
        self.dim = dim
        self.keyword = keyword
        self._texts: dict[str, str] = {}
        # Documents built once per view: the reader reads the tables of the retrieved ones and
        # the citation asks for the cited one (their tables and sections found once).
        self._documents: dict[str, Document] = {}
        # Records and frequencies read once per view: retrieval, reading and the citation ask for
        # the same ones (each fetch is a round trip to Milvus).
        self._chunks: dict[int, ChunkRecord] = {}
        self._sentences: dict[int, SentenceRecord] = {}
        self._frequency: dict[str, int] = {}

    @property
    def chunk_count(self) -> int:
        return sum(int(r["chunks"]) for r in self.docs.values())

    def _still_whole(self) -> None:
        """Raise StaleView if a commit since this view was made removed one of its documents."""
        state = self.store._state()
        if state.generation == self.generation and state.pending is None:
            return
        removing = set((state.pending or {}).get("remove", ()))
        ids = list(self.docs)
        present = set()
        for start in range(0, len(ids), 1000):
            present.update(r["doc_id"] for r in self.store._get("documents", ids[start : start + 1000], ["doc_id"]))
        if removing & set(ids) or len(present) < len(ids):
            raise StaleView(f"the Milvus index changed since generation {self.generation}: ask again")

    def _wanted(self, doc_ids: Collection[str] | None) -> list[str] | None:
        return None if doc_ids is None else [d for d in dict.fromkeys(doc_ids) if d in self.docs]

    def _search(self, field: str, query: Any, k: int, doc_ids: Collection[str] | None, params: dict) -> list[tuple[int, float]]:
        wanted = self._wanted(doc_ids)
        if k < 1 or not self.docs or wanted == [] or not self.store._has("chunks"):
            return []
        expr = f"doc_id in {_quoted(wanted)}" if wanted is not None else ""
        limit = min(k, MAX_LIMIT)
        while True:
            found = self.store.client.search(self.store._name("chunks"), data=[query], anns_field=field, limit=limit,
                                             filter=expr, output_fields=["chunk_id", "doc_id"], search_params=params,
                                             consistency_level="Strong")[0]
            # The id asked as a field: hits name the primary key "id" (server) or "chunk_id" (Lite).
            hits = [(int(h["entity"]["chunk_id"]), float(h["distance"])) for h in found
                    if h["entity"]["doc_id"] in self.docs]
            if len(hits) >= k or len(found) < limit or limit == MAX_LIMIT:
                break
            limit = min(limit * OVERFETCH, MAX_LIMIT)
        self._still_whole()
        return hits[:k]

    def dense_search(self, vector: np.ndarray, k: int, doc_ids: Collection[str] | None = None) -> list[Scored]:
        query = np.asarray(vector, np.float32).reshape(-1).tolist()
        hits = self._search("vector", query, k, doc_ids, {"metric_type": "IP"})
        return [Scored(chunk, score) for chunk, score in hits]

    def keyword_search(self, terms: Sequence[str], k: int, doc_ids: Collection[str] | None = None) -> list[Scored]:
        if not self.keyword or not terms:
            return []
        query = " ".join(encode_term(t) for t in terms)
        hits = self._search("sparse", query, k, doc_ids, {"metric_type": "BM25"})
        scored = [Scored(chunk, abs(score) / BM25_SCALE) for chunk, score in hits]
        return sorted((s for s in scored if s.score > 0), key=lambda s: -s.score)

    def _rows(self, collection: str, ids: list[int], fields: list[str], what: str) -> list[dict]:
        """The rows of `ids` (distinct), in order; KeyError for one the view does not hold."""
        key = "chunk_id" if collection == "chunks" else "sentence_id"
        rows: dict[int, dict] = {}
        if ids and self.docs:  # an empty view may have no collections yet
            fetched = self.store._get(collection, ids, fields)
            self._still_whole()
            rows = {int(r[key]): r for r in fetched if r["doc_id"] in self.docs}
        missing = [i for i in ids if i not in rows]
        if missing:
            raise KeyError(f"{what} {missing[0]} is not in generation {self.generation}")
        return [rows[i] for i in ids]

    def chunks(self, chunk_ids: Sequence[int]) -> list[ChunkRecord]:
        return records_by_id(self._chunks, chunk_ids, self._chunk_records)

    def sentences(self, sentence_ids: Sequence[int]) -> list[SentenceRecord]:
        return records_by_id(self._sentences, sentence_ids, self._sentence_records)

    def _chunk_records(self, chunk_ids: list[int]) -> list[ChunkRecord]:
        records = []
        for r in self._rows("chunks", chunk_ids, _CHUNK_FIELDS, "chunk"):
            chunk = int(r["chunk_id"])
            records.append(ChunkRecord(
                chunk_id=chunk,
                doc_id=r["doc_id"],
                start=int(r["start"]),
                end=int(r["end"]),
                page=int(r["page"]) if int(r["page"]) > 0 else None,
                text=r["text"],
                vector=np.asarray(r["vector"], np.float32),
                sentence_ids=tuple(sentence_id(chunk, k) for k in range(int(r["sentences"]))),
                terms=frozenset(decode_term(t) for t in r["terms"].split()),
            ))
        return records

    def _sentence_records(self, sentence_ids: list[int]) -> list[SentenceRecord]:
        return [
            SentenceRecord(
                sentence_id=int(r["sentence_id"]),
                chunk_id=chunk_of(int(r["sentence_id"])),
                doc_id=r["doc_id"],
                start=int(r["start"]),
                end=int(r["end"]),
                text=r["text"],
                vector=np.asarray(r["vector"], np.float32),
                previous=int(r["previous"]) if int(r["previous"]) >= 0 else None,
                next=int(r["next"]) if int(r["next"]) >= 0 else None,
            )
            for r in self._rows("sentences", sentence_ids, _SENTENCE_FIELDS, "sentence")
        ]

    def document_frequency(self, terms: Sequence[str]) -> np.ndarray:
        """One count query per distinct term: TEXT_MATCH over the chunks' terms (Milvus's
        inverted index on them). Counted over every chunk first; if a commit ran since the view
        was made, counted again over the view's documents only (a filter as long as their list)."""
        out = np.zeros(len(terms), np.int64)
        if not self.keyword or not terms or not self.docs:
            return out
        known = self.store._frequencies_at(self.generation)
        new = [t for t in dict.fromkeys(terms) if t not in self._frequency and t not in known]
        if new:
            counts = self._frequencies(new, "")
            state = self.store._state()
            if state.generation != self.generation or state.pending is not None:
                counts = self._frequencies(new, f" and doc_id in {_quoted(list(self.docs))}")
                self._still_whole()
                self._frequency.update(counts)  # this view's alone: the index has moved on
            else:
                known.update(counts)
        return np.array([self._frequency.get(t, known.get(t, 0)) for t in terms], np.int64)

    def _frequencies(self, terms: Sequence[str], restrict: str) -> dict[str, int]:
        return {t: self.store._count("chunks", f"TEXT_MATCH(terms, {json.dumps(encode_term(t))}){restrict}")
                for t in dict.fromkeys(terms)}

    def text(self, doc_id: str) -> str:
        if doc_id not in self.docs:
            raise KeyError(f"document {doc_id} is not in generation {self.generation}")
        if doc_id not in self._texts:
            parts = int(self.docs[doc_id]["parts"])
            rows = self.store._get("texts", [f"{doc_id}:{n}" for n in range(parts)], ["part", "text"])
            if len(rows) != parts:
                self._still_whole()
                raise IndexError(f"Milvus index: the text of document {doc_id} is incomplete: remove it and add it again")
            self._texts[doc_id] = "".join(r["text"] for r in sorted(rows, key=lambda r: r["part"]))
        return self._texts[doc_id]

    def document(self, doc_id: str) -> Document:
        if doc_id not in self._documents:
            row = self.docs[doc_id]
            starts, ocr_pages, unsure = _pages_of(row["page_starts"])
            self._documents[doc_id] = Document(doc_id=doc_id, title=row["title"], source=row["source"], path=row["path"],
                                               text=self.text(doc_id), page_starts=starts, added_at=row["added_at"],
                                               ocr_pages=ocr_pages, unsure=unsure)
        return self._documents[doc_id]

    def documents(self, doc_ids: Collection[str] | None = None) -> list[DocumentInfo]:
        wanted = self.docs if doc_ids is None else {d: self.docs[d] for d in self.docs if d in doc_ids}
        for doc_id in set(doc_ids or ()) - set(wanted):
            raise KeyError(f"document {doc_id} is not in generation {self.generation}")
        return [
            DocumentInfo(doc_id=d, title=r["title"], source=r["source"], path=r["path"],
                         pages=len(_pages_of(r["page_starts"])[0]) or None, chunks=int(r["chunks"]),
                         chars=int(r["chars"]), added_at=r["added_at"])
            for d, r in wanted.items()
        ]


def _rows_of(item: NewDocument) -> tuple[list[dict], list[dict], list[dict]]:
    """A new document's text parts, chunk rows (keyed by chunk number) and sentence rows (by chunk
    number and k); IndexError if a field would pass Milvus's VARCHAR limit."""
    doc, text = item.doc, item.doc.text
    parts = [text[i : i + TEXT_PART_CHARS] for i in range(0, len(text), TEXT_PART_CHARS)]
    texts = [{"part_id": f"{doc.doc_id}:{n}", "doc_id": doc.doc_id, "part": n, "text": p, "unused": _UNUSED}
             for n, p in enumerate(parts)]
    order = np.argsort(item.sentence_chunks, kind="stable")
    per_chunk = np.bincount(item.sentence_chunks, minlength=len(item.chunk_spans))
    chunks = []
    for n, ((start, end), page, vector, tokens) in enumerate(
        zip(item.chunk_spans.tolist(), item.chunk_pages.tolist(), item.chunk_vectors, item.chunk_tokens)
    ):
        terms = " ".join(encode_term(t) for t in tokens)
        chunk_text = text[start:end]
        for name, value in (("text", chunk_text), ("terms", terms)):
            if len(value.encode("utf-8")) > VARCHAR_BYTES:
                raise IndexError(f"{doc.source}: a chunk's {name} passes Milvus's {VARCHAR_BYTES}-byte limit")
        chunks.append({"number": n, "doc_id": doc.doc_id, "start": start, "end": end, "page": page,
                       "text": chunk_text, "sentences": int(per_chunk[n]),
                       "vector": np.asarray(vector, np.float32).tolist(), "terms": terms})
    sentences = []
    for position, m in enumerate(order.tolist()):
        start, end = (int(x) for x in item.sentence_spans[m])
        sentences.append({"position": position, "chunk": int(item.sentence_chunks[m]), "doc_id": doc.doc_id,
                          "start": start, "end": end, "text": text[start:end],
                          "vector": np.asarray(item.sentence_vectors[m], np.float32).tolist()})
    for name, value in (("title", doc.title), ("source", doc.source), ("path", doc.path),
                        ("page list", _page_field(doc))):
        if len(value.encode("utf-8")) > VARCHAR_BYTES:
            raise IndexError(f"{doc.source}: its {name} passes Milvus's {VARCHAR_BYTES}-byte limit")
    return texts, chunks, sentences


def _with_sentence_ids(sentences: list[dict], ids: dict[int, int]) -> list[dict]:
    """Sentence rows with their ids (k-th of their chunk) and neighbours in document order."""
    numbered, seen = [], {}
    for s in sentences:
        k = seen.get(s["chunk"], 0)
        seen[s["chunk"]] = k + 1
        numbered.append(sentence_id(ids[s["chunk"]], k))
    rows = []
    for i, s in enumerate(sentences):
        row = _without(s, "position", "chunk")
        row.update(sentence_id=numbered[i], chunk_id=ids[s["chunk"]],
                   previous=numbered[i - 1] if i > 0 else -1,
                   next=numbered[i + 1] if i + 1 < len(numbered) else -1)
        rows.append(row)
    return rows


def _without(row: dict, *keys: str) -> dict:
    return {key: value for key, value in row.items() if key not in keys}


def _document_row(doc: Document, seq: int, chunks: int, parts: int) -> dict:
    return {"doc_id": doc.doc_id, "seq": seq, "title": doc.title, "source": doc.source, "path": doc.path,
            "page_starts": _page_field(doc), "added_at": doc.added_at, "chars": len(doc.text),
            "chunks": chunks, "parts": parts, "unused": _UNUSED}


class _ThreadWriterLock:
    """A process-local writer lock with the API of local.writer_lock (context manager,
    acquire/release), calling `on_acquire` each time it is taken."""

    def __init__(self, lock: threading.Lock, on_acquire):
        self._lock, self._on_acquire = lock, on_acquire

    def acquire(self, timeout: float = -1) -> None:
        if not self._lock.acquire(timeout=timeout):
            raise TimeoutError("another thread of this process is writing to the index")
        try:
            self._on_acquire()
        except BaseException:
            self._lock.release()
            raise

    def release(self) -> None:
        self._lock.release()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _lite_locked(folder: Path) -> bool:
    """Whether another process holds Milvus Lite's lock on `folder` (its LOCK file, flock)."""
    import fcntl

    try:
        fd = os.open(folder / "LOCK", os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _redacted(uri: str) -> str:
    """A URI without user:password@ (a token never enters the URI)."""
    return re.sub(r"//[^/@]*@", "//", uri)


def _page_field(doc: Document) -> str:
    """The documents collection's page field: a JSON list of where pages start, or for a document
    read by OCR an object that adds its OCR pages and unsure spans (one field, so collections made
    before OCR keep their schema)."""
    if not doc.ocr_pages:
        return json.dumps(list(doc.page_starts))
    return json.dumps({"starts": list(doc.page_starts), "ocr": list(doc.ocr_pages), "unsure": [list(u) for u in doc.unsure]})


def _pages_of(field: str) -> tuple[tuple[int, ...], tuple[int, ...], tuple[tuple[int, int], ...]]:
    """(page starts, OCR pages, unsure spans) from `_page_field`'s JSON."""
    value = json.loads(field)
    if isinstance(value, list):
        return tuple(value), (), ()
    return tuple(value["starts"]), tuple(value["ocr"]), tuple((int(a), int(b)) for a, b in value["unsure"])
