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


# A table is written into its document's text as Markdown-like pipe rows, one row per paragraph:
# the caption (a short paragraph, if any), the header row, the "| --- |" delimiter row, then the
# rows, the row's label (row header) in the first column. So a table, like a heading, lives in the
# text itself: a cell and its row are quoted verbatim, and any stored document keeps its tables.
_TABLE_ROW = re.compile(r"^\|.*\|[ \t]*$", re.M)
_TABLE_DELIMITER = re.compile(r"\|(?:[ \t]*:?-{3,}:?[ \t]*\|)+[ \t]*")
_ROW_GAP = re.compile(r"\n\n?")
TABLE_CELL_SEPARATOR = " | "
_MAX_CAPTION_CHARS = 300


@dataclass(frozen=True)
class TableRow:
    """One row of a table: its line in the text, each column's cell span in it (empty cells have
    start == end), and the label of the group row above it ("Outlays:"), "" if none."""

    start: int
    end: int
    cells: tuple[tuple[int, int], ...]
    group: str = ""


@dataclass(frozen=True)
class Table:
    """A table of a document's text: `columns` are the header cells (several header rows joined),
    the first column's cells name the rows."""

    start: int
    end: int
    caption: str
    columns: tuple[str, ...]
    rows: tuple[TableRow, ...]

    def column(self, index: int) -> str:
        return self.columns[index] if index < len(self.columns) else ""


def table_text(caption: str, columns: list[str], rows: list[list[str]]) -> str:
    """A table as its document's text holds it (see `tables_in`); a row of one label and empty
    cells is a group row, the label of the rows under it."""
    width = max([len(columns), *map(len, rows)])
    lines = [one_line(caption)] if caption.strip() else []
    lines.append(_pipe_row(columns, width))
    lines.append("|" + " --- |" * width)
    lines.extend(_pipe_row(row, width) for row in rows)
    return PARAGRAPH_BREAK.join(lines)


def _pipe_row(cells: list[str], width: int) -> str:
    cells = [one_line(cell).replace("|", "\u00a6") for cell in cells] + [""] * (width - len(cells))
    return "| " + TABLE_CELL_SEPARATOR.join(cells) + " |"


def one_line(text: str) -> str:
    """A paragraph as one line: line breaks and runs of spaces inside it become one space."""
    return " ".join(text.split())


def tables_in(text: str) -> tuple[Table, ...]:
    """The tables written in `text` by `table_text` (or Markdown's pipe tables): a header row, the
    delimiter row, then the rows, one per line or per paragraph."""
    lines = [(m.start(), m.end()) for m in _TABLE_ROW.finditer(text)]
    tables: list[Table] = []
    i = 0
    while i + 1 < len(lines):
        (hs, he), (ds, de) = lines[i], lines[i + 1]
        if not (_TABLE_DELIMITER.fullmatch(text, ds, de) and _ROW_GAP.fullmatch(text, he, ds)):
            i += 1
            continue
        columns = tuple(text[a:b] for a, b in pipe_cells(text, hs, he))
        rows: list[TableRow] = []
        group, grouping, end, j = "", False, de, i + 2
        while j < len(lines) and _ROW_GAP.fullmatch(text, end, lines[j][0]):
            rs, re_ = lines[j]
            cells = pipe_cells(text, rs, re_)
            filled = [text[a:b] for a, b in cells if b > a]
            grouping_row = len(cells) >= 3 and len(filled) == 1 and cells[0][1] > cells[0][0]
            if grouping_row:  # consecutive group rows add up: "Improved operation scenario Volume servers in:"
                group = f"{group} {filled[0]}" if grouping else filled[0]
            grouping = grouping_row
            if not grouping_row:
                rows.append(TableRow(rs, re_, cells, group))
            end, j = re_, j + 1
        tables.append(Table(hs, end, _caption_before(text, hs), columns, tuple(rows)))
        i = j
    return tuple(tables)


def pipe_cells(text: str, start: int, end: int) -> tuple[tuple[int, int], ...]:
    """The cell spans of the pipe row text[start:end], spaces around each cell left out."""
    line = text[start:end].rstrip()
    bars = [k for k, ch in enumerate(line) if ch == "|"]
    spans = []
    for a, b in zip(bars, bars[1:]):
        cell = line[a + 1 : b]
        left = len(cell) - len(cell.lstrip())
        stripped = cell.strip()
        spans.append((start + a + 1 + left, start + a + 1 + left + len(stripped)))
    return tuple(spans)


def _caption_before(text: str, header_start: int) -> str:
    """The paragraph right before a table's header row when it is short and not itself a row."""
    before = text[:header_start].rstrip("\n")
    paragraph = before[before.rfind("\n") + 1 :] if before else ""
    if not paragraph.strip() or paragraph.lstrip().startswith("|") or len(paragraph) > _MAX_CAPTION_CHARS:
        return ""
    return _HEADING_LINE.sub(r"\1", paragraph).strip()


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

    @cached_property
    def tables(self) -> tuple[Table, ...]:
        return tables_in(self.text)

    def table_at(self, offset: int) -> tuple[Table, TableRow] | None:
        """The table and row whose line holds `offset`, or None."""
        for table in self.tables:
            if table.start <= offset <= table.end:
                for row in table.rows:
                    if row.start <= offset <= row.end:
                        return table, row
        return None

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
class TableCell:
    """Where a table answer stands in its table: the table's caption, the row's header (its first
    cell) and the column's header, and the cell's span in the document's text."""

    caption: str
    row: str
    column: str
    cell_start: int
    cell_end: int


@dataclass(frozen=True)
class Citation:
    """Where a quote stands: `page` for PDFs and images; `section`, the heading above it, for
    documents without pages (None before the first heading); `ocr` when its page was read by OCR;
    `table` when the answer is a table's cell (the quote is then its row), None otherwise."""

    doc_id: str
    title: str
    source: str
    page: int | None
    start: int
    end: int
    quote: str
    section: str | None = None
    ocr: bool = False
    table: TableCell | None = None


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
