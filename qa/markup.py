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

from .tables import docx_header_rows, grid_table
from .types import PARAGRAPH_BREAK, one_line, table_text

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_WORD_TITLE_STYLE = "Title"
_WORD_HEADING_STYLE = "Heading "  # "Heading 1" ... "Heading 9", and styles based on them
_MAX_HEADING_LEVEL = 6  # Markdown's deepest; Word's levels 7-9 are written as level 6


def docx_text(path: Path) -> tuple[str, str | None]:
    """A .docx file's body (paragraphs and tables, in order) and its core-properties title."""
    import docx
    from docx.table import Table

    document = docx.Document(str(path))
    blocks: list[str] = []
    for block in _word_blocks(document, document.element.body):
        if isinstance(block, Table):
            rows = [[cell.text for cell in row.cells] for row in block.rows]
            marked = [row._tr.trPr is not None and row._tr.trPr.find(f"{_W}tblHeader") is not None for row in block.rows]
            blocks.extend(_table(rows, docx_header_rows(rows, marked)))
        else:
            level = _word_heading_level(block.style)
            blocks.append(_heading(block.text, level) if level else one_line(block.text))
    return _join(blocks), document.core_properties.title or None


def _word_blocks(document, parent) -> Iterator:
    """The paragraphs and tables of a Word body in order, those inside content controls (<w:sdt>,
    where templates keep revision tables) too."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for child in parent.iterchildren():
        if child.tag == f"{_W}p":
            yield Paragraph(child, document)
        elif child.tag == f"{_W}tbl":
            yield Table(child, document)
        elif child.tag == f"{_W}sdt":
            content = child.find(f"{_W}sdtContent")
            if content is not None:
                yield from _word_blocks(document, content)


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
            blocks.extend(one_line(_element_text(item)) for item in element.iter("item"))
        elif element.tag == "table":
            rows = [list(row.iter("cell")) for row in element.iter("row")]
            heads = next((i for i, row in enumerate(rows)
                          if not all(c.get("role") == "head" for c in row if _element_text(c).strip())), len(rows))
            blocks.extend(_table([[_element_text(cell) for cell in row] for row in rows], heads))
        else:
            blocks.append(one_line(_element_text(element)))
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
    line = one_line(text)
    return f"{'#' * min(level, _MAX_HEADING_LEVEL)} {line}" if line else ""


def _table(rows: list[list[str]], header_rows: int) -> Iterator[str]:
    """A table as pipe rows (`qa.types.table_text`); a one-column table (a text box laid out as a
    table) as its paragraphs."""
    found = grid_table(rows, header_rows)
    if found is None:
        yield from (one_line(cell) for row in rows for cell in row[:1])
    else:
        yield table_text(found.caption, found.columns, found.rows)


def _element_text(element) -> str:
    return "".join(element.itertext())


def _join(blocks: list[str]) -> str:
    return PARAGRAPH_BREAK.join(block for block in blocks if block) + ("\n" if any(blocks) else "")
