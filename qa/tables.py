"""Tables found in PDFs, Word files and web pages, kept as tables: caption, column headers, rows.

Each finder returns `FoundTable`s, which ingestion writes into the document's text with
`qa.types.table_text` (so a cell and its row are quoted verbatim, and `Document.tables` reads them
back). The finders run in ingest's child process, like the parsers.

PDFs: pypdf stays the text parser; pdfplumber gives each word's box on pages whose text looks
tabular (`looks_tabular`), and tables are rebuilt from those boxes (`pdf_tables`): rows are lines
that end in a run of values (numbers, dashes, "*"), columns are the values' right edges lined up
across rows, the header is the lines just above the first row, each header word given to the
columns under it (a group header like "Redemption" to every column it spans), and the caption is
the "Table N" line above (or below) it, else the title above. pdfplumber's own table finder was
measured first: with ruling lines it finds few of these tables, and its text strategy cuts header
words across columns and reads dot leaders as columns (docs/evaluation.md, Tables).
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from .types import one_line

# A cell value: a number (thousands separators, decimals, a sign, %, $, parentheses, spaces as
# thousands separators come in two words), a dash for none, "*" placeholders, (X), NA.
_VALUE = re.compile(
    r"[(\[]?[–—−-]?[$€£]?(?:\d[\d,]*(?:\s?\.\d+)?|\.\d+)%?[)\]]?[*†]?|[–—−-]{1,2}|\*{1,3}|\(X\)|\(NA\)|NA|N/A|Z|\(Z\)|\(D\)|\$"
)
_DOT_LEADER = re.compile(r"(?:\s*\.){2,}\s*|\.{3,}|…+")
_TRAILING_LEADER = re.compile(r"(?:\s*\.){2,}\s*$|\.{3,}$")
_LEADER_RUN = re.compile(r"(?:\. ?){4,}")
_FIGURE_CELL = re.compile(r"\d")
_NUMBER_CELL = re.compile(r"[-–−$]?\d[\d,.]*%?")
_FIGURES = re.compile(r"\d[\d,]*(?:\.\d+)?")
_CAPTION = re.compile(r"^(?:Table|TABLE|Exhibit|Figure)\s+[A-Z]?[-–.]?\d", re.U)
_NOTE = re.compile(r"^[\[(]")
# A page is searched for tables when its text has at least this many lines with two figures or
# more (three lone figures count as one line): pdfplumber costs ~0.08 s a page, so pages of prose
# are left to pypdf alone.
MIN_TABULAR_LINES = 3
_LABEL_WORDS = 6  # a row's label printed on its own line, its figure on the next
_MIN_ROWS = 3
_GUTTER = 1.5  # letters' heights: the gap between a row's label and prose printed beside it
_MAX_HEADER_LINES = 5
_MAX_LABEL_ONLY_RUN = 3


@dataclass
class FoundTable:
    """A table as a finder read it: the caption, one header per column (the row labels' column
    first), and the rows' cells; a row of a label alone is a group row."""

    caption: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)


def looks_tabular(page_text: str) -> bool:
    """Whether a page's text (pypdf's) has enough lines with figures to be worth a search: two
    figures or more on a line (pypdf glues a row's figures to a neighbouring column's words), or
    a run of labels each with its one figure ("Weekly $ 40.40", on one line or the figure on the
    next: a table of one value column, which prose does not print line after line)."""
    rows = lone = labelled = 0
    after_label = False
    for line in page_text.splitlines():
        figures = _FIGURES.findall(line)
        alone = len(figures) == 1 and _VALUE.fullmatch(line.strip()) is not None  # one text object per cell
        rows += len(figures) >= 2
        lone += alone
        tokens = line.split()
        if len(figures) == 1 and (alone and after_label or len(tokens) > 1 and _VALUE.fullmatch(tokens[-1])
                                  and not _VALUE.fullmatch(tokens[0])):
            labelled += 1
            if labelled >= MIN_TABULAR_LINES:
                return True
        elif figures or len(tokens) > _LABEL_WORDS:
            labelled = 0
        after_label = not figures and 0 < len(tokens) <= _LABEL_WORDS
    return rows + lone // 3 >= MIN_TABULAR_LINES


def is_table_line(line: str) -> bool:
    """A line of pypdf's page text that is a table's row (mostly values, or a label with its dot
    leader): left out of the page's prose when its tables are written out whole."""
    if _LEADER_RUN.search(line):
        return True
    tokens = _DOT_LEADER.sub(" ", line).split()
    values = sum(bool(_VALUE.fullmatch(t)) for t in tokens)
    return values >= 1 and values >= len(tokens) / 2 if len(tokens) > 1 else values == 1


# --- PDFs ---------------------------------------------------------------------------------------


@dataclass
class _Word:
    text: str
    x0: float
    x1: float
    top: float
    bottom: float
    size: float

    @property
    def value(self) -> bool:
        return bool(_VALUE.fullmatch(self.text))


@dataclass
class _Line:
    words: list[_Word]

    @property
    def top(self) -> float:
        return min(w.top for w in self.words)

    @property
    def bottom(self) -> float:
        return max(w.bottom for w in self.words)

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)


def pdf_tables(path: Path, page_indexes: list[int]) -> dict[int, list[FoundTable]]:
    """The tables on the given pages (0-based) of a PDF with a text layer."""
    import pdfplumber

    found: dict[int, list[FoundTable]] = {}
    with pdfplumber.open(str(path)) as pdf:
        for index in page_indexes:
            page = pdf.pages[index]
            words = [
                _Word(w["text"], w["x0"], w["x1"], w["top"], w["bottom"], w.get("size") or (w["bottom"] - w["top"]))
                for w in page.extract_words(x_tolerance=1.5, y_tolerance=2, extra_attrs=["size"])
                if w.get("upright", True)
            ]
            tables = _page_tables(words, float(page.width))
            if tables:
                found[index] = tables
            page.close()
    return found


def _page_tables(words: list[_Word], page_width: float) -> list[FoundTable]:
    words = [w for w in (_without_leader(w) for w in words) if w is not None]
    if not words:
        return []
    size = statistics.median(w.size for w in words)
    lines = _lines(words)
    lines = [_cut_other_column(line, size) for line in lines]
    tables = []
    for first, last in _blocks(lines, page_width, size):
        table = _table(lines, first, last, size)
        if table is not None:
            tables.append(table)
    return tables


def _without_leader(word: _Word) -> _Word | None:
    """The word without dot leaders ("Total......" -> "Total"); None if it is all leader."""
    if _DOT_LEADER.fullmatch(word.text) or word.text == ".":
        return None
    text = _TRAILING_LEADER.sub("", word.text)
    if text != word.text:
        word = _Word(text, word.x0, word.x0 + (word.x1 - word.x0) * len(text) / len(word.text), word.top, word.bottom, word.size)
    return word


def _lines(words: list[_Word]) -> list[_Line]:
    """Words grouped into printed lines: a word joins a line its vertical middle falls in."""
    lines: list[_Line] = []
    for word in sorted(words, key=lambda w: (w.top, w.x0)):
        middle = (word.top + word.bottom) / 2
        for line in reversed(lines[-3:]):
            if line.top - 1 <= middle <= line.bottom + 1:
                line.words.append(word)
                break
        else:
            lines.append(_Line([word]))
    for line in lines:
        line.words.sort(key=lambda w: w.x0)
    return lines


def _cut_other_column(line: _Line, size: float) -> _Line:
    """A row's words without the text of a neighbouring column of prose printed on the same line
    (a two-column page: "Weekly $ 71.15 the employee tax rate..."): words after the last value
    that sit past a wide gap are not the row's."""
    words = line.words
    last_value = max((i for i, w in enumerate(words) if w.value), default=-1)
    if last_value < 0 or last_value == len(words) - 1:
        return line
    gap = words[last_value + 1].x0 - words[last_value].x1
    if gap > 2.0 * size and not any(w.value for w in words[last_value + 1 :]):
        return _Line(words[: last_value + 1])
    return line


def _values_start(line: _Line) -> int:
    """Where the line's trailing run of values starts (len(words) if it has none)."""
    i = len(line.words)
    while i > 0 and line.words[i - 1].value:
        i -= 1
    return i


def _is_row(line: _Line) -> bool:
    start = _values_start(line)
    values = len(line.words) - start
    return values >= 2 or (values == 1 and start > 0)


def _blocks(lines: list[_Line], page_width: float, size: float) -> list[tuple[int, int]]:
    """Runs of row lines (line indexes, inclusive), label-only lines allowed inside a run, split at
    captions, notes and prose."""
    blocks, first, last, label_run = [], None, None, 0
    for i, line in enumerate(lines):
        if _is_row(line) and not _CAPTION.match(line.text):
            if first is None:
                first = i
            last, label_run = i, 0
            continue
        breaks = (_CAPTION.match(line.text) or _NOTE.match(line.text) or label_run >= _MAX_LABEL_ONLY_RUN
                  or line.words[-1].x1 - line.words[0].x0 > 0.6 * page_width)
        if first is not None and breaks:
            blocks.append((first, last))
            first, last = None, None
        elif first is not None:
            label_run += 1
    if first is not None:
        blocks.append((first, last))
    return blocks


def _table(lines: list[_Line], first: int, last: int, size: float) -> FoundTable | None:
    while first < last and _heads_columns(lines[first]):
        first += 1  # "2017 2022" under "2013–": the header's last line, not a row
    rows = [line for line in lines[first : last + 1] if _is_row(line)]
    if len(rows) < _MIN_ROWS:
        return None
    columns = _columns([w for line in rows for w in line.words[_values_start(line) :]], size)
    if len(columns) < 1:
        return None
    label_right = min(c[0] for c in columns) - 0.5 * size
    header_lines = _header_lines(lines, first, size)
    headers = _headers(header_lines, columns, label_right, size)
    body: list[list[str]] = []
    pending_label: list[str] = []
    block = lines[first : last + 1]
    for i, line in enumerate(block):
        label_words = [w for w in line.words if w.x1 <= label_right or not w.value and w.x0 < label_right]
        value_words = [w for w in line.words if w not in label_words]
        if sum(not w.value for w in value_words) * 2 >= len(value_words) > 0:
            label_words, value_words = line.words, []  # a line of text across the columns
        label = _label(label_words, size)
        if value_words and _heads_columns(_Line(value_words)):
            if not any(headers[1:]):  # the years heading the columns below, printed inside the table
                headers = [headers[0] or (label if not body else ""), *(_cells(value_words, columns))]
                if not body:
                    continue  # the header's line ("Boat 2022 2023 2024"), not a group
            value_words = []
        if not value_words:
            following = block[i + 1].words[0].text if i + 1 < len(block) else ""
            if label and following[:1].islower() and not label.endswith(":"):
                pending_label.append(label)  # a label wrapped over two lines
            elif label or pending_label:
                body.append([" ".join(pending_label + [label]).strip()])
                pending_label = []
            continue
        body.append([" ".join(pending_label + [label]).strip(), *_cells(value_words, columns)])
        pending_label = []
    caption = _caption(lines, first, last, len(header_lines))
    return FoundTable(caption, headers, body)


_YEAR = re.compile(r"(?:19|20)\d\d(?:[–-](?:\d\d){1,2})?[–-]?")


def _heads_columns(line: _Line) -> bool:
    """A line of years alone, without a label: the last line of a header (2011 2012 ... 2022)."""
    return all(_YEAR.fullmatch(w.text) for w in line.words)


def _cells(values: list[_Word], columns: list[tuple[float, float]]) -> list[str]:
    """A row's values put in the columns whose right edges they are nearest to."""
    cells = [""] * len(columns)
    for word in values:
        k = min(range(len(columns)), key=lambda c: abs(columns[c][1] - word.x1))
        cells[k] = f"{cells[k]} {word.text}".strip()
    return cells


def _columns(values: list[_Word], size: float) -> list[tuple[float, float]]:
    """The value columns as (left, right) edges: values lined up by their right edge (figures are
    right-aligned); an edge a few values share is a stray one (a number printed in two words,
    "98 452") and joins the column it is nearest to on its right."""
    rights = sorted(w.x1 for w in values)
    groups: list[list[float]] = []
    for x in rights:
        if groups and x - groups[-1][-1] <= 0.6 * size:
            groups[-1].append(x)
        else:
            groups.append([x])
    rows_estimate = max(len(g) for g in groups)
    kept = [g for g in groups if len(g) >= max(2, 0.2 * rows_estimate)]
    edges = [statistics.median(g) for g in kept]
    columns = []
    for edge in edges:
        lefts = [w.x0 for w in values if abs(w.x1 - edge) <= 0.6 * size]
        columns.append((min(lefts) if lefts else edge - size, edge))
    return columns


def _header_lines(lines: list[_Line], first: int, size: float) -> list[_Line]:
    """The lines just above a table's first row that head its columns: close together, up to a
    caption, a note or a wide gap."""
    header: list[_Line] = []
    below = lines[first]
    for line in reversed(lines[max(0, first - _MAX_HEADER_LINES) : first]):
        if _CAPTION.match(line.text) or line.text.startswith("[") or line.text.endswith("]") or (
            _is_row(line) and not _heads_columns(line)
        ):
            break
        if below.top - line.bottom > 1.6 * size or (line.text.endswith(".") and len(line.words) >= 5):
            break  # a gap, or a sentence of prose
        header.insert(0, line)
        below = line
    return header


def _phrases(words: list[_Word], size: float) -> list[_Word]:
    """Words printed close together joined into one ("Long Gun", "Return to Seller - Private Sale")."""
    phrases: list[_Word] = []
    for word in words:
        last = phrases[-1] if phrases else None
        if last is not None and word.x0 - last.x1 <= 0.6 * size:
            phrases[-1] = _Word(f"{last.text} {word.text}", last.x0, word.x1, last.top, max(last.bottom, word.bottom), last.size)
        else:
            phrases.append(word)
    return phrases


def _headers(header: list[_Line], columns: list[tuple[float, float]], label_right: float, size: float) -> list[str]:
    """One header per column, the row labels' first: each header line's words given to the columns
    under them. A line with fewer words than half the columns holds group headers ("Pre-Pawn"
    over Handgun, Long Gun, Other): each goes to the columns within a column's pitch of it that are
    nearer to it than to the line's other groups."""
    parts: list[list[str]] = [[] for _ in range(len(columns) + 1)]
    centers = [(a + b) / 2 for a, b in columns]
    pitch = statistics.median([b - a for a, b in zip(centers, centers[1:])]) if len(centers) > 1 else 0.0
    for line in header:
        label_words = [w for w in line.words if w.x1 <= label_right]
        if label_words:
            parts[0].append(" ".join(w.text for w in label_words))
        words = _phrases([w for w in line.words if w.x1 > label_right], size)
        if not words:
            continue
        grouped = len(words) < len(columns) / 2 and len(columns) > 2
        given: dict[int, list[str]] = {}
        for k, center in enumerate(centers):
            if grouped:
                near = [w for w in words if w.x0 - pitch <= center <= w.x1 + pitch]
                if near:
                    best = min(near, key=lambda w: abs((w.x0 + w.x1) / 2 - center))
                    given.setdefault(k, []).append(best.text)
        if not grouped:
            for word in words:
                k = min(range(len(centers)), key=lambda c: abs(centers[c] - (word.x0 + word.x1) / 2))
                given.setdefault(k, []).append(word.text)
        for k, texts in given.items():
            parts[k + 1].append(" ".join(texts))
    return [" ".join(p) for p in parts]


def _label(words: list[_Word], size: float) -> str:
    """A row's label without footnote calls (small digits after it), and without the words of a
    column of prose printed to its left on the same line (past a gutter: a gap of 1.5 letters'
    height and more, "...comprise employees   Over | 3,107,000")."""
    cut = max((i for i in range(1, len(words)) if words[i].x0 - words[i - 1].x1 > _GUTTER * size), default=0)
    words = words[cut:]
    kept = [w for w in words if not (w.text.isdigit() and len(w.text) <= 2 and w.size < 0.85 * size and w is not words[0])]
    return " ".join(w.text for w in kept).strip()


def _caption(lines: list[_Line], first: int, last: int, header_count: int) -> str:
    """The "Table N ..." line above the table (within a few lines) or just below it, else the
    nearest line above its header."""
    top = first - header_count
    for line in reversed(lines[max(0, top - 6) : top]):
        if _CAPTION.match(line.text):
            return line.text
    for line in lines[last + 1 : last + 4]:
        if _CAPTION.match(line.text):
            return line.text
    above = [line.text for line in lines[max(0, top - 2) : top] if not _is_row(line)]
    return " ".join(above)


# --- Word files and web pages -------------------------------------------------------------------


def grid_table(cells: list[list[str]], header_rows: int) -> FoundTable | None:
    """A table read from markup (Word's rows, a web page's <tr>), its first `header_rows` rows the
    header: empty rows and columns dropped, a leading row of one text across the table (a title)
    taken as the caption, each column's header rows joined (a merged header once). None for a
    table of one column (a box of text laid out as a table, not a table)."""
    rows = [[one_line(cell) for cell in row] for row in cells]
    width = max(map(len, rows), default=0)
    rows = [row + [""] * (width - len(row)) for row in rows]
    keep_rows = [i for i, row in enumerate(rows) if any(row)]
    header_rows = sum(1 for i in keep_rows if i < header_rows)
    rows = [rows[i] for i in keep_rows]
    used = [k for k in range(width) if any(row[k] for row in rows)]
    rows = [[row[k] for k in used] for row in rows]
    if len(used) < 2 or not rows:
        return None
    caption = ""
    if len({cell for cell in rows[0] if cell}) == 1 and len(rows) > 1 and not rows[0][1:].count(rows[0][0]) == len(used) - 1:
        caption, rows, header_rows = next(cell for cell in rows[0] if cell), rows[1:], max(0, header_rows - 1)
    if header_rows == 0 and len(rows) > 2 and _names_columns(rows):
        header_rows = 1
    while 0 < header_rows < len(rows) - 1 and _continues_header(rows[header_rows], rows[header_rows + 1 :]):
        header_rows += 1  # under a cell spanning two header rows ("Vessel"), the second: "| | Summer | Winter |"
    for row in rows[: header_rows - 1]:  # a group header spanning columns ("Toll" over Summer, Winter)
        for k in range(1, len(row)):
            if not row[k] and row[k - 1] and any(below[k] for below in rows[1:header_rows]):
                row[k] = row[k - 1]
    columns = []
    for k in range(len(used)):
        parts: list[str] = []
        for row in rows[:header_rows]:
            if row[k] and row[k] not in parts:
                parts.append(row[k])
        columns.append(" ".join(parts))
    return FoundTable(caption, columns, rows[header_rows:])


def _continues_header(row: list[str], below: list[list[str]]) -> bool:
    """Whether the row under a header continues it: its first cell empty (spanned from above), two
    cells or more of words, no figures, over rows with figures."""
    filled = [cell for cell in row if cell]
    return (not row[0] and len(filled) >= 2 and not any(_FIGURE_CELL.search(cell) for cell in filled)
            and any(_FIGURE_CELL.search(cell) for r in below for cell in r))


def _names_columns(rows: list[list[str]]) -> bool:
    """Whether an unmarked first row heads the columns: words only, over columns of figures."""
    first, rest = rows[0], rows[1:]
    if any(re.search(r"\d", cell) for cell in first) or sum(map(bool, first)) * 2 < len(first):
        return False
    return any(all(re.search(r"\d", row[k]) for row in rest if row[k]) for k in range(len(first)))


def docx_header_rows(rows: list[list[str]], marked: list[bool]) -> int:
    """How many leading rows of a Word table are its header: those marked to repeat on every page,
    else the first row and the rows under it that share its first (vertically merged) cell."""
    if any(marked):
        return next((i for i, m in enumerate(marked) if not m), len(marked))
    if len(rows) < 2 or any(_NUMBER_CELL.fullmatch(cell.strip()) for cell in rows[0]):
        return 0  # a first row with a bare figure is data: the table has no header
    count = 1
    while count < len(rows) - 1 and rows[count] and rows[0] and rows[count][0] == rows[0][0]:
        count += 1
    return count
