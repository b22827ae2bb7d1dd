"""The store seam: what retrieval and reading need from an index, by id, and nothing local.

Every backend (`qa.store.local`: FAISS + BM25 generations on disk; `qa.store.milvus`: a Milvus
collection set) implements `IndexStore`, and one shared test suite (tests/test_store_contract.py)
runs against each. Above this seam, fusion, reranking and reading are the same code for all.

- A question reads through one `ReadView`: a consistent view of the index (a writer committing
  meanwhile does not change what the view returns, or the view raises `StaleView` and the
  question is asked again on a fresh view).
- Chunks and sentences cross stages by **id**, never by row number. A chunk id is an int that
  stays the chunk's for as long as its document is indexed; a sentence id is `sentence_id(chunk_id,
  k)` for the k-th sentence of the chunk, so both backends derive it the same way.
- The two searches are separate (the reader uses each rank), return best first, and honour a
  `doc_ids` filter: only chunks of those documents. Dense scores are cosine similarities of the
  normalised vectors; keyword scores are BM25 (k1 1.5, b 0.75: bm25s's defaults) over the
  stemmed terms of `qa.retrieve.tokenize`, only chunks with a positive score.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from qa.types import ChunkRecord, Document, DocumentInfo, NewDocument, SentenceRecord

# Sentences per chunk stay far below this (chunks hold ~120 words): k < SENTENCES_PER_CHUNK.
SENTENCES_PER_CHUNK = 1024


def sentence_id(chunk_id: int, k: int) -> int:
    """The id of the k-th sentence (0-based) of chunk `chunk_id`."""
    return chunk_id * SENTENCES_PER_CHUNK + k


def chunk_of(sentence: int) -> int:
    """The chunk id a sentence id belongs to."""
    return sentence // SENTENCES_PER_CHUNK


@dataclass(frozen=True)
class Scored:
    """A chunk id and one retriever's score for it."""

    chunk_id: int
    score: float


def records_by_id(kept: dict[int, Any], ids: Sequence[int], look_up: Callable[[list[int]], list[Any]]) -> list[Any]:
    """The records of `ids` in order, from `kept` or, for the ids it lacks, from one `look_up`
    call (given them in order, returning their records in that order, or raising KeyError),
    whose records `kept` then holds: a view reads each record once, however often it is asked."""
    missing = [i for i in dict.fromkeys(map(int, ids)) if i not in kept]
    if missing:
        kept.update(zip(missing, look_up(missing)))
    return [kept[int(i)] for i in ids]


class StaleView(Exception):
    """The view's data went away under it (documents removed by two commits since): ask again."""


class ReadView(Protocol):
    """One consistent view of the index, for one question."""

    @property
    def chunk_count(self) -> int:
        """Chunks in the view (BM25's N, and 0 for an empty index)."""

    def dense_search(self, vector: np.ndarray, k: int, doc_ids: Collection[str] | None = None) -> list[Scored]:
        """Up to k chunks nearest to `vector` (cosine), best first."""

    def keyword_search(self, terms: Sequence[str], k: int, doc_ids: Collection[str] | None = None) -> list[Scored]:
        """Up to k chunks by BM25 over `terms` (repeats count), best first, positive scores only."""

    def chunks(self, chunk_ids: Sequence[int]) -> list[ChunkRecord]:
        """The records of `chunk_ids`, in that order (KeyError for an id not in the view)."""

    def sentences(self, sentence_ids: Sequence[int]) -> list[SentenceRecord]:
        """The records of `sentence_ids`, in that order (KeyError for an id not in the view)."""

    def document_frequency(self, terms: Sequence[str]) -> np.ndarray:
        """For each term, how many chunks hold it (0 for a term no chunk holds)."""

    def document(self, doc_id: str) -> Document:
        """The whole document (KeyError if it is not in the view)."""

    def documents(self, doc_ids: Collection[str] | None = None) -> list[DocumentInfo]:
        """Every document in the view, or those of `doc_ids` (KeyError for one not in it), in the
        order they were added; no text is read."""


class IndexStore(Protocol):
    """A backend: views to read, and writes. `commit` is all or nothing: after it returns, new
    views see every added document and none of the removed ones; if it fails, views see the index
    as it was. Errors the user must act on are `qa.store.IndexError`s with a message saying what."""

    model: str  # the embedding model the vectors come from; an index refuses another

    def view(self) -> ReadView: ...

    def lock(self) -> AbstractContextManager[None]:
        """Held by a writer from reading what is indexed to committing (one writer at a time)."""

    def is_new(self) -> bool:
        """Never written to: a new index is built from the seed folder, one its user emptied is not."""

    def commit(self, add: Sequence[NewDocument], remove: Collection[str]) -> None:
        """Add documents (`qa.types.NewDocument`) and remove documents by id, in one step."""

    def check(self) -> dict[str, object]:
        """A deep consistency check: {"generation", "model", "documents", "chunks", "sentences"};
        raises IndexError naming what is wrong."""
