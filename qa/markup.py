"""Word files and web pages -> paragraph text whose headings are Markdown heading lines.

Both formats carry structure a PDF lacks: headings, paragraphs, list items and table rows are
marked up. Each becomes one paragraph (one line; paragraphs are separated by a blank line, which
chunking treats as a boundary), and a heading becomes a "#"-line of its level, the convention
`Document.sections` reads back. Only the main content of a web page is kept (trafilatura drops
navigation, ads, scripts and styles; no script is ever run). Both run in ingest's child process
(a hostile file can make a parser spin), so they take a path or a string and return plain data.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .types import PARAGRAPH_BREAK

_TABLE_CELL_SEPARATOR = " | "
_WORD_TITLE_STYLE = "Title"
_WORD_HEADING_STYLE = "Heading "  # "Heading 1" ... "Heading 9", and styles based on them
_MAX_HEADING_LEVEL = 6  # Markdown's deepest; Word's levels 7-9 are written as level 6


def docx_text(path: Path) -> tuple[str, str | None]:
    """A .docx file's body (paragraphs and tables, in order) and its core-properties title."""
    import docx
    from docx.table import Table

    document = docx.Document(str(path))
    blocks: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            blocks.extend(_table_rows([[cell.text for cell in row.cells] for row in block.rows]))
        else:
            level = _word_heading_level(block.style)
            blocks.append(_heading(block.text, level) if level else _one_line(block.text))
    return _join(blocks), document.core_properties.title or None


def html_text(html: str) -> tuple[str, str | None]:
    """A web page's main content and its title (trafilatura's reading of <title>, og:title...)."""
    import trafilatura

    extracted = trafilatura.bare_extraction(
        html, include_tables=True, include_images=False, include_links=False, with_metadata=True
    )
    if extracted is None or extracted.body is None:
        return "", None
    blocks: list[str] = []
    for element in extracted.body:
        if element.tag == "head":
            blocks.append(_heading(_element_text(element), _html_heading_level(element.get("rend", ""))))
        elif element.tag == "list":
            blocks.extend(_one_line(_element_text(item)) for item in element.iter("item"))
        elif element.tag == "table":
            rows = [[_element_text(cell) for cell in row.iter("cell")] for row in element.iter("row")]
            blocks.extend(_table_rows(rows))
        else:
            blocks.append(_one_line(_element_text(element)))
    return _join(blocks), extracted.title or None


def _word_heading_level(style) -> int:
    """1-9 for Word's Title and Heading styles (or a style based on one), 0 for body text."""
    while style is not None:
        name = style.name or ""
        if name == _WORD_TITLE_STYLE:
            return 1
        if name.startswith(_WORD_HEADING_STYLE) and name[len(_WORD_HEADING_STYLE) :].isdigit():
            return int(name[len(_WORD_HEADING_STYLE) :])
        style = style.base_style
    return 0


def _html_heading_level(rend: str) -> int:
    """trafilatura marks <h1>..<h6> as <head rend="h2">; a heading without a level is level 2."""
    return int(rend[1:]) if rend[:1] == "h" and rend[1:].isdigit() else 2


def _heading(text: str, level: int) -> str:
    line = _one_line(text)
    return f"{'#' * min(level, _MAX_HEADING_LEVEL)} {line}" if line else ""


def _table_rows(rows: list[list[str]]) -> Iterator[str]:
    """One paragraph per row, cells in order; a merged cell (repeated by the parser) once."""
    for row in rows:
        cells: list[str] = []
        for cell in map(_one_line, row):
            if cell and (not cells or cells[-1] != cell):
                cells.append(cell)
        yield _TABLE_CELL_SEPARATOR.join(cells)


def _element_text(element) -> str:
    return "".join(element.itertext())


def _one_line(text: str) -> str:
    """A paragraph as one line: line breaks and runs of spaces inside it become one space."""
    return " ".join(text.split())


def _join(blocks: list[str]) -> str:
    return PARAGRAPH_BREAK.join(block for block in blocks if block) + ("\n" if any(blocks) else "")
