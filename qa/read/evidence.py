"""What the reader reads for one question: the retrieved chunks' sentences, by id.

The pipeline hands the reader an `Evidence` gathered from one consistent view of the index
(`gather`); the reader asks that view only for records by id (the sentences around a quote, the
cited document) through the small `Source` protocol, so it never depends on a store's internals.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import numpy as np

from qa.retrieve import Hit, idf
from qa.types import ChunkRecord, Document, SentenceRecord


class Source(Protocol):
    """What the reader asks of an index view (`qa.store.protocol.ReadView` is one)."""

    @property
    def chunk_count(self) -> int: ...

    def chunks(self, chunk_ids: Sequence[int]) -> list[ChunkRecord]: ...

    def sentences(self, sentence_ids: Sequence[int]) -> list[SentenceRecord]: ...

    def document(self, doc_id: str) -> Document: ...

    def document_frequency(self, terms: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Evidence:
    """The retrieved hits, best first; for each hit, its chunk's sentences in document order;
    `idf`, the inverse document frequency of terms over the whole index (`qa.retrieve.idf`); and
    the `source` view the sentences came from, for the records around a quote and the document
    it cites (None when the evidence is all there is: features alone, tests)."""

    hits: list[Hit]
    sentences: list[list[SentenceRecord]]  # sentences[i]: hits[i]'s
    idf: Callable[[Sequence[str]], np.ndarray]
    source: Source | None = None

    def sentence(self, sentence_id: int) -> SentenceRecord:
        """The record of one of the evidence's sentences (KeyError if it holds no such sentence)."""
        for records in self.sentences:
            for record in records:
                if record.sentence_id == sentence_id:
                    return record
        raise KeyError(f"sentence {sentence_id} is not in the evidence")


def gather(view: Source, hits: Sequence[Hit]) -> Evidence:
    """What the reader reads of `hits`: each hit's sentences, in order, and term IDF over `view`."""
    chunks = view.chunks([h.chunk_id for h in hits])
    records = iter(view.sentences([s for c in chunks for s in c.sentence_ids]))
    sentences = [[next(records) for _ in c.sentence_ids] for c in chunks]
    return Evidence(list(hits), sentences, partial(idf, view), view)
