"""The records that flow between stages: files -> Document -> Chunk -> (the store) ChunkRecord and
SentenceRecord, by id -> Passage -> Answer.

Every position is a character offset into its document's extracted text, so a quote can always
be checked against the document it came from.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# Paragraphs (and pages) of a document's text are separated by a blank line: a chunk boundary.
PARAGRAPH_BREAK = "\n\n"
# A Markdown heading line ("## Costs"): how .md files mark sections, and how Word files and web
# pages are written out by ingestion, so a document's sections live in its text (and its hash).
_HEADING_LINE = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?[^\W_].*?)(?:[ \t]+#+)?[ \t]*$", re.M)


@dataclass(frozen=True)
class Section:
    """A heading and where its line starts in the document's text."""

    start: int
    heading: str


def section_headings(text: str) -> tuple[Section, ...]:
    """The Markdown heading lines of `text`, in order, their headings with spaces collapsed."""
    return tuple(Section(m.start(), " ".join(m.group(1).split())) for m in _HEADING_LINE.finditer(text))


@dataclass(frozen=True)
class Document:
    """One ingested file. `page_starts[i]` is where page i+1 begins in `text` (PDFs only).

    Documents without pages (Word files, web pages, Markdown, text) have `sections` instead: read
    from the heading lines of the text itself, so the index needs no field for them, and a
    document rebuilt from its stored text keeps them.
    """

    doc_id: str
    title: str
    source: str  # file name shown to users
    path: str  # where it was added from; a changed file at the same path replaces this one
    text: str
    page_starts: tuple[int, ...] = ()
    added_at: str = ""
    # Pages read by OCR (1-based; qa.ocr), and the spans of the text whose words the OCR engine
    # was unsure of: an answer quoting them is less certain.
    ocr_pages: tuple[int, ...] = ()
    unsure: tuple[tuple[int, int], ...] = ()

    @property
    def pages(self) -> int | None:
        return len(self.page_starts) or None

    def page_at(self, offset: int) -> int | None:
        """1-based page holding `offset`, or None for documents without pages."""
        if not self.page_starts:
            return None
        return max(1, bisect_right(self.page_starts, offset))

    @cached_property
    def sections(self) -> tuple[Section, ...]:
        return () if self.page_starts else section_headings(self.text)

    def read_by_ocr(self, offset: int) -> bool:
        """Whether the page holding `offset` was read by OCR."""
        return self.page_at(offset) in self.ocr_pages if self.ocr_pages else False

    def unsure_share(self, start: int, end: int) -> float:
        """The share of `text[start:end]`'s characters in words the OCR engine was unsure of."""
        if end <= start or not self.unsure:
            return 0.0
        return sum(max(0, min(end, b) - max(start, a)) for a, b in self.unsure) / (end - start)

    def section_at(self, offset: int) -> str | None:
        """The heading of the section holding `offset`, or None (before any heading, or a PDF)."""
        starts = [s.start for s in self.sections]
        index = bisect_right(starts, offset) - 1
        return self.sections[index].heading if index >= 0 else None


@dataclass(frozen=True)
class Span:
    start: int
    end: int


@dataclass(frozen=True)
class Chunk:
    """A retrievable unit: whole sentences, about one embedding window long."""

    doc_id: str
    start: int
    end: int
    text: str
    page: int | None
    sentences: tuple[Span, ...]


@dataclass(frozen=True)
class ChunkRecord:
    """A chunk as retrieval sees it: where it stands, its vector, its sentences and its terms."""

    chunk_id: int
    doc_id: str
    start: int
    end: int
    page: int | None
    text: str
    vector: np.ndarray  # float32 (dim,), normalised
    sentence_ids: tuple[int, ...]
    terms: frozenset[str]  # its stemmed keyword terms (qa.retrieve.tokenize)


@dataclass(frozen=True)
class SentenceRecord:
    """A sentence as reading sees it; `previous`/`next` are the ids of the sentences before and
    after it in its document (across chunk borders), None at the document's ends."""

    sentence_id: int
    chunk_id: int
    doc_id: str
    start: int
    end: int
    text: str
    vector: np.ndarray  # float32 (dim,), normalised
    previous: int | None
    next: int | None


@dataclass
class NewDocument:
    """A parsed, chunked and embedded document waiting to be committed to the store."""

    doc: Document
    chunk_spans: np.ndarray  # int64 (n, 2)
    chunk_pages: np.ndarray  # int32 (n,), -1 for no page
    sentence_spans: np.ndarray  # int64 (m, 2)
    sentence_chunks: np.ndarray  # int32 (m,), chunk number within this document
    chunk_vectors: np.ndarray  # float32 (n, dim)
    sentence_vectors: np.ndarray  # float16 (m, dim)
    chunk_tokens: list[list[str]]  # BM25 tokens per chunk


@dataclass(frozen=True)
class Passage:
    """A chunk the retriever picked, with its fused retrieval score (higher is better)."""

    chunk_id: int
    doc_id: str
    title: str
    source: str
    page: int | None
    start: int
    end: int
    text: str
    score: float


@dataclass(frozen=True)
class Citation:
    """Where a quote stands: `page` for PDFs and images; `section`, the heading above it, for
    documents without pages (None before the first heading); `ocr` when its page was read by OCR."""

    doc_id: str
    title: str
    source: str
    page: int | None
    start: int
    end: int
    quote: str
    section: str | None = None
    ocr: bool = False


@dataclass(frozen=True)
class Answer:
    """What the reader concluded. `answered=False` means it abstained: no answer, no citation."""

    question: str
    answered: bool
    answer: str = ""
    quote: str = ""
    score: float = 0.0
    citations: tuple[Citation, ...] = ()
    passages: tuple[Passage, ...] = ()
    # Where the short answer sits inside the document (for highlighting), if there is one.
    answer_span: Span | None = None
    message: str = ""
    timings_ms: dict[str, float] = field(default_factory=dict, compare=False)
    # A follow-up question as it was asked, rewritten from the conversation (qa.followup); "" else.
    read_as: str = ""
    # Other sentences that answer too ("Also in the documents"), best first, each an Answer of its
    # own (its quote, citation and score) without passages or alternatives.
    alternatives: tuple[Answer, ...] = ()


@dataclass(frozen=True)
class DocumentInfo:
    """A document as listed to users: no text, just what identifies and sizes it."""

    doc_id: str
    title: str
    source: str
    path: str
    pages: int | None
    chunks: int
    chars: int
    added_at: str


@dataclass(frozen=True)
class FileResult:
    """The outcome of adding one file. status: added | replaced | unchanged | refused."""

    path: str
    status: str
    reason: str = ""
    doc_id: str = ""
    title: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "refused"
