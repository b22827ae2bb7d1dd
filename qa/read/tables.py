"""Answers from tables: the cell at the row and the column the question names.

A question about a table names a row ("Texas", "Robbery", "2020") and a column ("handgun", "long
gun under redemption", "Female under 18"), and the same figure may stand in many cells, so the
answer is found on the table's structure, not in its text: every non-empty cell of the tables of
the retrieved documents is scored by how much of the question (its terms weighted by IDF) the
cell's row (its other cells, its group row) and its column header cover, with the table's caption
and the document's title as context. A cell is the answer when its row and (in a table of several
value columns) its column are both named. When the best cell's row is named but a specific term
of the question (a number, a year, a capitalised name) is in neither the row, the column nor the
caption, the table lacks what was asked ("December" in a November table, "American Samoa" in a
table of states) and the reader refuses. A cell that only restates the question (its words, or
their acronym: a glossary's "SIA" for "the security impact analysis") is no answer, and a count
the question states ("Of the 174 murders ..., how many ...?") is its premise: the row holding it
and the words of its header name nothing to answer with.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from qa.read.features import Logistic
from qa.retrieve import tokenize
from qa.types import Document, Table, TableRow

# Question words that name no row or column ("How many ... were there?").
_ASKING = frozenset(tokenize(["how many much what which who whom whose when where why was were is are did does do "
                              "number amount value show shows list listed record recorded according table"])[0])
# A term of the question the table must hold for the table to answer: a figure or year, or a word
# written with a capital inside the question (a name).
_FIGURE = re.compile(r"\d")
_YEAR = re.compile(r"(?:1[6-9]|20)\d\d")  # a count is never a year
_COUNTING = re.compile(r"(?i)\W*(?:how (?:many|much)|what (?:was|is|were|are) the (?:total|number))\b")
_WORD = re.compile(r"(?u)\b\w\w+\b")
# "version 3.0", "grade 4": a word and the figure written after it.
_TIED = re.compile(r"\b([A-Za-z]{3,})\s+(\d+(?:[.,]\d+)*)\b")
# "174 murders": a figure and the word it counts.
_COUNT = re.compile(r"\b(\d+(?:[.,]\d+)*)\s+([A-Za-z]{3,})\b")
# "According to the roles table": words that name the table, not one of its columns.
_NAMING_TABLE = re.compile(r"(?i)\b(?:the|this|that)\s+((?:[\w'’-]+\s+){1,3}?)table\b")
# Words that tables abbreviate or name otherwise: read as the table's word. General vocabulary of
# statistical tables (sexes, months, units), not of any one document.
_SAME = {
    "women": "female", "woman": "female", "girls": "female under 18", "girl": "female under 18",
    "men": "male", "man": "male", "boys": "male under 18", "boy": "male under 18",
    "jan": "january", "feb": "february", "mar": "march", "apr": "april", "jun": "june", "jul": "july",
    "aug": "august", "sep": "september", "sept": "september", "oct": "october", "nov": "november", "dec": "december",
    "pop": "population", "°c": "celsius", "°f": "fahrenheit", "pct": "percent", "percentage": "percent", "%": "percent",
}
_SAME_WORD = re.compile(r"(?i)°[cf]\b|%|\b(?:" + "|".join(k for k in _SAME if k[0].isalpha()) + r")\b")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# A missing specific term costs a cell this much of its score, so a cell that holds them all wins.
_MISSING_COST = 0.3
# A row read whole (its column not named) yields to a cell whose row and column are named.
_ROW_ONLY_COST = 0.15
# A cell of at most this many words is an answer whole ("Authorizing Official (AO)"); in a longer
# one (a description) the answer model's span is.
SHORT_ANSWER_WORDS = 8
# A table refuses (it lacks the year, month or name asked) only for a row the question identifies
# this well by a short cell: prose cut into a table's rows names much and identifies nothing.
_REFUSE_IDENTIFIED = 0.5
# A cell of at most this many terms can identify its row ("Texas", "Server rooms", "0.6").
_SHORT_CELL_TERMS = 6
# The share of the question's term weight the best cell's row, column and context must cover.
MIN_COVERAGE = 0.45
_UNSEEN = "\u2400unseen"  # a term no index holds: its IDF is an unseen word's
# Tables of these many documents (the best retrieved first) are read.
MAX_DOCUMENTS = 3
# The text just before a table and the start of its page (a title line, the month of a monthly
# report) are its context too.
_CONTEXT_CHARS = 400


@dataclass(frozen=True)
class TableReading:
    """The best cell (its document, table, row and column index) and how well the question fits
    it: `coverage`, the share of the question's term weight its row, column and context hold;
    `missing`, the question's specific terms found nowhere near it (then the table refuses).
    `column` is None when the question names the row but none of its columns ("Who wrote version
    0.6?"): the answer model then reads the row (`row_text`)."""

    document: Document
    table: Table
    row: TableRow
    column: int | None
    coverage: float
    missing: tuple[str, ...]
    signals: tuple[float, ...] = ()  # SIGNALS, what the confidence model reads

    @property
    def refuses(self) -> bool:
        return bool(self.missing)

    @property
    def cell(self) -> tuple[int, int]:
        assert self.column is not None, "the row is named, not its column"
        return self.row.cells[self.column]


# What the confidence model reads of a reading: the share of the question its row, column and
# context hold; the same less the missing terms; how whole the short cell naming the row is; the
# missing specific terms; whether a count is asked; and the score's lead over the next cell.
# The model is trained on synthetic tables (scripts/train_tables.py; its card is in the file).
SIGNALS = ("coverage", "known", "identified", "missing", "counting", "margin")
MODEL_FILE = Path(__file__).resolve().parents[1] / "models" / "tables.json"


@dataclass(frozen=True)
class _Question:
    terms: list[str]
    weights: dict[str, float]
    specific: set[str]
    counting: bool
    said: frozenset[str] = frozenset()  # its terms and question words: a cell of only these restates it
    initials: frozenset[str] = frozenset()  # acronyms of its runs of words ("SIA")
    table_words: frozenset[str] = frozenset()  # the words naming the table ("the roles table")
    tied: tuple[tuple[str, str], ...] = ()  # (word, figure) the question writes together ("version 3.0")
    counted: tuple[tuple[str, str], ...] = ()  # (figure, word) it states as a count ("174 murders")

    @property
    def total(self) -> float:
        return sum(self.weights.values())

    def weight(self, terms: set[str]) -> float:
        return sum(w for t, w in self.weights.items() if t in terms)


def read_tables(question: str, documents: Sequence[Document], idf: Callable[[Sequence[str]], np.ndarray]) -> TableReading | None:
    """The cell of `documents`' tables that answers `question` (or its row, when no column is
    named), or a refusal when the best row is named but the table lacks a specific term; None when
    the question names no table row well enough."""
    terms = [t for t in dict.fromkeys(_terms(question)) if t not in _ASKING]
    if not terms:
        return None
    specific = _specific_terms(question) & set(terms)
    weights = dict(zip(terms, map(float, idf(terms))))
    unseen = float(idf([_UNSEEN])[0])
    # A word no document holds ("wrote", "produced") can be matched by no cell: it neither names
    # nor rules out one. A figure or name no document holds still makes a table refuse.
    weights = {t: w for t, w in weights.items() if w < unseen - 1e-9 or t in specific}
    if not weights:
        return None
    q = _Question(list(weights), weights, specific, bool(_COUNTING.match(question)),
                  said=frozenset(weights) | _ASKING, initials=_initials(question),
                  table_words=frozenset(t for words in _NAMING_TABLE.findall(question) for t in _terms(words)),
                  tied=_tied(question), counted=_counted(question))
    scored = [candidate for document in documents[:MAX_DOCUMENTS] for table in document.tables
              for candidate in _candidates(q, document, table)]
    if not scored:
        return None
    scored.sort(key=lambda c: -c[0])
    score, known, reading = scored[0]
    if known < MIN_COVERAGE:
        return None  # too little of the question in the table
    if reading.refuses and reading.signals[SIGNALS.index("identified")] < _REFUSE_IDENTIFIED:
        return None  # a refusal needs a row the question names by a short cell ("Texas", "Defense")
    other = next((c[0] for c in scored[1:] if (c[2].row, c[2].column) != (reading.row, reading.column)), score - 1.0)
    return replace(reading, signals=(*reading.signals, score - other))


def _candidates(q: _Question, document: Document, table: Table):
    """(score, coverage of the question less its missing terms, reading) for each cell of `table`
    whose row the question names, and for each such row as a whole (column None)."""
    terms = _table_terms(document, table)
    context, columns = terms.context, terms.columns
    all_headers = set().union(*columns) if columns else set()
    tied = [(k, figure) for word, figure in q.tied for k, header in enumerate(columns)
            if word in header and figure not in header]  # a "November 2015" column is not "November" = 2015
    several = len(table.columns) > 2
    for i in _named_rows(q, terms, len(table.rows)):
        row, cells, group = table.rows[i], terms.cells[i], terms.groups[i]
        everything = set().union(*cells) if cells else set()
        # "version 3.0" asks for the row whose version is 3.0, not one whose description names 3.0.
        other_value = tuple(f for k, f in tied if k < len(cells) and cells[k] and f not in cells[k])
        restating = [b <= a or _restates(q, cells[k], document.text[a:b]) for k, (a, b) in enumerate(row.cells)]
        premise = _premise(q, cells, columns)
        if not q.counting and not premise and not all(restating):  # a count is a figure of a named column (or the first, or the total)
            yield _scored(q, document, table, row, None, everything | group, all_headers, context, cells, -1, other_value)
        for k, (a, b) in enumerate(row.cells):
            if restating[k]:  # empty, or only what the question says
                continue
            own = set().union(*(c for j, c in enumerate(cells) if j != k)) - cells[k]
            if not any(t in own for t in q.terms):
                continue
            header = columns[k] if k < len(columns) else set()
            named_column = q.weight(header - own - q.table_words - premise) > 0
            value = document.text[a:b]
            if not named_column and several and not (
                q.counting and _FIGURE.search(value) and not _YEAR.fullmatch(value) and (k == 1 or "total" in header)
            ):
                continue  # a column is named, or a count in the table's first or total one is asked
            yield _scored(q, document, table, row, k, own | group, header - own, context, cells, k, other_value)


def _premise(q: _Question, cells: list[set[str]], columns: list[set[str]]) -> set[str]:
    """The header words of a row's cells (their terms: `cells`) that hold a count the question
    states as its premise ("Of the 174 murders ..., how many happened on campus?": 174 under
    "Murder / non-negligent manslaughter"). The question asks past that count, so those words name
    no other column."""
    premise: set[str] = set()
    for cell, header in zip(cells, columns):
        if any(figure in cell and word in header for figure, word in q.counted):
            premise |= header
    return premise


def _named_rows(q: _Question, terms: "_TableTerms", rows: int) -> list[int]:
    """The rows the question names by their own cells (a group alone names many rows: not enough);
    only those a rare term names (a tenth of the rows or fewer: "Texas", "1500") when there are
    any, so a term every row holds ("Boat 1", "Boat 2"...) does not make the reader score them all."""
    named = [terms.rows_with.get(t, []) for t in q.terms]
    rare = [found for found in named if 0 < len(found) <= max(_FEW_ROWS, rows // 10)]
    return sorted({i for found in (rare or named) for i in found})


@dataclass(frozen=True)
class _TableTerms:
    """A table's terms, computed once per table (a question reads every row of the tables of the
    documents it retrieves): its context's, each column header's, each cell's, each row group's,
    and which rows hold each term."""

    context: set[str]
    columns: list[set[str]]
    cells: list[list[set[str]]]
    groups: list[set[str]]
    rows_with: dict[str, list[int]]


_TERMS_CACHE: dict[tuple[str, int, int], _TableTerms] = {}
_TERMS_CACHE_TABLES = 64
_FEW_ROWS = 20


def _table_terms(document: Document, table: Table) -> _TableTerms:
    key = (document.doc_id, table.start, table.end)  # the id is the text's hash: same text, same terms
    if key not in _TERMS_CACHE:
        if len(_TERMS_CACHE) >= _TERMS_CACHE_TABLES:
            _TERMS_CACHE.pop(next(iter(_TERMS_CACHE)))
        cells = [[set(_terms(document.text[a:b])) for a, b in row.cells] for row in table.rows]
        rows_with: dict[str, list[int]] = {}
        for i, row_cells in enumerate(cells):
            for t in set().union(*row_cells) if row_cells else ():
                rows_with.setdefault(t, []).append(i)
        _TERMS_CACHE[key] = _TableTerms(
            context=set(_terms(f"{table.caption} {document.title} {_before(document, table)}")),
            columns=[set(_terms(header)) for header in table.columns],
            cells=cells,
            groups=[set(_terms(row.group)) for row in table.rows],
            rows_with=rows_with,
        )
    return _TERMS_CACHE[key]


def _scored(q: _Question, document: Document, table: Table, row: TableRow, column: int | None,
            in_row: set[str], in_column: set[str], context: set[str], cells: list[set[str]], k: int,
            other_value: tuple[str, ...] = ()):
    near = in_row | in_column | context
    missing = tuple(sorted({t for t in q.specific if t not in near} | set(other_value)))
    held = q.weight(near)
    coverage = held / q.total
    known = held / max(q.total - q.weight(set(missing)), 1e-9)
    named_here = q.weight(in_row | in_column) / q.total
    header_weight = sum(q.weights.get(t, 1.0) for t in in_column)
    exact = q.weight(in_column) / header_weight if column is not None and header_weight else 0.0
    # A row identified by a short cell the question holds whole ("Texas", "0.6", "Server rooms").
    identified = max((q.weight(c) / sum(q.weights.get(t, 1.0) for t in c)
                      for j, c in enumerate(cells) if j != k and 0 < len(c) <= _SHORT_CELL_TERMS), default=0.0)
    score = (coverage + named_here) / 2 + 0.2 * min(1.0, exact) + 0.3 * identified - _MISSING_COST * len(missing)
    score -= _ROW_ONLY_COST if column is None else 0.01 * column
    signals = (coverage, known, identified, float(len(missing)), float(q.counting))
    return score, known, TableReading(document, table, row, column, round(coverage, 4), missing, signals)


def _before(document: Document, table: Table) -> str:
    """The text at the top of the table's page and just before it: its title, the month of a report."""
    page = document.page_at(table.start)
    page_start = document.page_starts[page - 1] if page else table.start
    return (document.text[page_start : min(table.start, page_start + _CONTEXT_CHARS)] + " "
            + document.text[max(page_start, table.start - _CONTEXT_CHARS) : table.start])


def confidence(reading: TableReading) -> float:
    """The probability that the reading's cell answers the question (the model of MODEL_FILE)."""
    return float(_model().predict(np.asarray([reading.signals], float))[0])


@lru_cache(maxsize=1)
def _model() -> Logistic:
    return Logistic.from_json(json.loads(MODEL_FILE.read_text(encoding="utf-8"))["model"])


def row_text(reading: TableReading) -> tuple[str, list[tuple[int, int, int]]]:
    """The row as the answer model reads it, each cell after its column's header ("Author: Steve
    Levitas; ..."), and where each cell stands in it: (column, start in the text, start in the
    document)."""
    text = reading.document.text
    parts, where, at = [], [], 0
    for k, (a, b) in enumerate(reading.row.cells):
        if b <= a:
            continue
        header = reading.table.column(k)
        prefix = f"{header}: " if header else ""
        where.append((k, at + len(prefix), a))
        parts.append(prefix + text[a:b])
        at += len(parts[-1]) + 2
    return "; ".join(parts), where


def _terms(text: str) -> list[str]:
    """Stemmed terms, dashes and slashes between words or figures read as spaces ("2018–19"),
    figures whole ("0.6", "1,333.0" as "1333.0"), abbreviations and synonyms as the table word."""
    text = _SAME_WORD.sub(lambda m: f" {_SAME[m.group(0).lower()]} ", text)
    figures = [n.replace(",", "") for n in _NUMBER.findall(text) if not n.isdigit() or len(n) == 1]
    return tokenize([re.sub(r"[–—−/-]", " ", text)])[0] + figures


def _initials(question: str) -> frozenset[str]:
    """The initials of every run of two to six of the question's words ("security impact
    analysis" -> "SIA")."""
    words = [w for w in re.split(r"[^\w]+", question) if w]
    return frozenset("".join(w[0] for w in words[i : i + n]).upper()
                     for n in range(2, 7) for i in range(len(words) - n + 1))


def _restates(q: _Question, cell_terms: set[str], cell: str) -> bool:
    """Whether a cell only says what the question says, so cannot answer it: every term of it is
    the question's, or it is the acronym of the question's words (a glossary's "SIA" for "which
    participant conducts the security impact analysis?")."""
    if cell_terms and cell_terms <= q.said:
        return True
    letters = cell.strip().rstrip("s")
    return letters.isupper() and letters.isalpha() and letters in q.initials


def _tied(question: str) -> tuple[tuple[str, str], ...]:
    """The (word, figure) pairs the question writes together, as terms: "version 3.0" ->
    ("version", "3.0"): a column headed by the word must hold the figure in the row asked about."""
    pairs = []
    for word, figure in _TIED.findall(question):
        words, figures = _terms(word), _terms(figure)
        if words and figures:
            pairs.append((words[0], figures[-1]))
    return tuple(pairs)


def _counted(question: str) -> tuple[tuple[str, str], ...]:
    """The (figure, word) pairs the question states as a count, as terms: "Of the 174 murders" ->
    ("174", "murder"). Written the other way round ("version 3.0"), a figure names a row instead,
    and a year before a word ("2019 sales") dates it."""
    pairs = []
    for figure, word in _COUNT.findall(question):
        if _YEAR.fullmatch(figure):
            continue
        figures, words = _terms(figure), _terms(word)
        if figures and words:
            pairs.append((figures[-1], words[0]))
    return tuple(pairs)


def _specific_terms(question: str) -> set[str]:
    """The question's figures and its capitalised words past the first: the terms a table must
    hold to answer it."""
    words = re.sub(r"[–—−/-]", " ", question).split()
    named = [w.strip("?,.;:'’\"()") for i, w in enumerate(words) if _FIGURE.search(w) or (i > 0 and w[:1].isupper())]
    return set(_terms(" ".join(named)))


def read_row(question: str, reading: TableReading, span_model) -> tuple[TableReading, tuple[int, int], float]:
    """The answer model's span in a row whose column the question does not name: the row read
    with its headers (`row_text`); the cell it falls in becomes the reading's column, and a short
    cell (a name, a date: at most SHORT_ANSWER_WORDS words) is the answer whole. Returns the
    reading, the answer's span in the document, and the model's span score."""
    text, where = row_text(reading)
    (found,) = span_model.score(question, [text])
    column, in_row, in_document = next(((k, r, d) for k, r, d in reversed(where) if found.start >= r), where[0])
    a, b = reading.row.cells[column]
    start = min(b, in_document + max(0, found.start - in_row))
    end = max(start, min(b, in_document + max(0, found.end - in_row)))
    if len(reading.document.text[a:b].split()) <= SHORT_ANSWER_WORDS or end <= start:
        start, end = a, b
    return replace(reading, column=column), (start, end), found.score
