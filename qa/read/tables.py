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
table of states) and the reader refuses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from qa.retrieve import tokenize
from qa.types import Document, Table, TableRow

# Question words that name no row or column ("How many ... were there?").
_ASKING = frozenset(tokenize(["how many much what which who whom whose when where why was were is are did does do "
                              "number amount value show shows list listed record recorded according table"])[0])
# A term of the question the table must hold for the table to answer: a figure or year, or a word
# written with a capital inside the question (a name).
_FIGURE = re.compile(r"\d")
_COUNTING = re.compile(r"(?i)\W*(?:how (?:many|much)|what (?:was|is|were|are) the (?:total|number))\b")
_WORD = re.compile(r"(?u)\b\w\w+\b")
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
# The share of the question's term weight the best cell's row, column and context must cover.
MIN_COVERAGE = 0.5
# Tables of these many documents (the best retrieved first) are read.
MAX_DOCUMENTS = 3
# The text just before a table and the start of its page (a title line, the month of a monthly
# report) are its context too.
_CONTEXT_CHARS = 400


@dataclass(frozen=True)
class TableReading:
    """The best cell (its document, table, row and column index) and how well the question fits
    it: `coverage`, the share of the question's term weight its row, column and context hold;
    `missing`, the question's specific terms found nowhere near it (then the table refuses)."""

    document: Document
    table: Table
    row: TableRow
    column: int
    coverage: float
    missing: tuple[str, ...]

    @property
    def refuses(self) -> bool:
        return bool(self.missing)

    @property
    def cell(self) -> tuple[int, int]:
        return self.row.cells[self.column]


def read_tables(question: str, documents: Sequence[Document], idf: Callable[[Sequence[str]], np.ndarray]) -> TableReading | None:
    """The cell of `documents`' tables that answers `question`, or a refusal when the best row is
    named but the table lacks a specific term; None when no table row is named at all."""
    terms = [t for t in dict.fromkeys(_terms(question)) if t not in _ASKING]
    if not terms:
        return None
    weights = dict(zip(terms, idf(terms)))
    total = sum(weights.values())
    specific = _specific_terms(question) & set(terms)
    counting = bool(_COUNTING.match(question))
    best: tuple[float, TableReading] | None = None
    for document in documents[:MAX_DOCUMENTS]:
        for table in document.tables:
            page = document.page_at(table.start)
            page_start = document.page_starts[page - 1] if page else table.start
            before = document.text[page_start : page_start + _CONTEXT_CHARS] + document.text[max(0, table.start - _CONTEXT_CHARS) : table.start]
            context = set(_terms(f"{table.caption} {document.title} {before}"))
            columns = [set(_terms(header)) for header in table.columns]
            value_columns = sum(1 for header in table.columns[1:]) or 1
            for row in table.rows:
                cells = [set(_terms(document.text[a:b])) for a, b in row.cells]
                group = set(_terms(row.group))
                for k, (a, b) in enumerate(row.cells):
                    if b <= a:
                        continue
                    own = set().union(*(c for j, c in enumerate(cells) if j != k)) - cells[k]
                    in_row = own | group - cells[k]
                    header = columns[k] if k < len(columns) else set()
                    in_column = header - own
                    if not any(t in own for t in terms):
                        continue  # the row is not named (its group alone names many rows)
                    column_weight = sum(weights[t] for t in terms if t in in_column)
                    if column_weight == 0 and value_columns > 1 and not (
                        counting and _FIGURE.search(document.text[a:b]) and (k == 1 or "total" in header)
                    ):
                        continue  # a column is named, or a count in the table's first or total one is asked
                    near = in_row | in_column | context
                    coverage = sum(weights[t] for t in terms if t in near) / total
                    named_here = sum(weights[t] for t in terms if t in in_row or t in in_column) / total
                    header_weight = sum(weights.get(t, 1.0) for t in header)
                    exact = column_weight / header_weight if header_weight else 0.0
                    missing = tuple(sorted(t for t in specific if t not in near))
                    label = cells[0] if k else set()
                    named = sum(weights.get(t, 1.0) for t in label if t in terms) / max(sum(weights.get(t, 1.0) for t in label), 1e-9) if label else 0.0
                    score = (coverage + named_here) / 2 + 0.2 * min(1.0, exact) + 0.2 * named - _MISSING_COST * len(missing) - 0.01 * k
                    if best is None or score > best[0]:
                        best = (score, TableReading(document, table, row, k, round(coverage, 4), missing))
    if best is None:
        return None
    reading = best[1]
    if reading.coverage < MIN_COVERAGE:
        return None  # too little of the question in the table to answer from it, or to refuse
    return reading


def _terms(text: str) -> list[str]:
    """Stemmed terms, dashes and slashes between words or figures read as spaces ("2018–19"),
    figures whole ("0.6", "1,333.0" as "1333.0"), abbreviations and synonyms as the table word."""
    text = _SAME_WORD.sub(lambda m: f" {_SAME[m.group(0).lower()]} ", text)
    figures = [n.replace(",", "") for n in _NUMBER.findall(text) if not n.isdigit() or len(n) == 1]
    return tokenize([re.sub(r"[–—−/-]", " ", text)])[0] + figures


def _specific_terms(question: str) -> set[str]:
    """The question's figures and its capitalised words past the first: the terms a table must
    hold to answer it."""
    words = re.sub(r"[–—−/-]", " ", question).split()
    named = [w.strip("?,.;:'’\"()") for i, w in enumerate(words) if _FIGURE.search(w) or (i > 0 and w[:1].isupper())]
    return set(_terms(" ".join(named)))
