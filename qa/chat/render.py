"""The chat's HTML and Markdown, as pure functions of the pipeline's records: answer cards and
abstentions, confidence labels, the evidence panel, the document viewer, a PDF page as printed,
upload results and the documents table.

Escaping: everything a document or a user wrote reaches the chat through `neutral()` (HTML-escaped,
Markdown defused; the Chatbot's own sanitiser stays on as a second layer) and reaches the evidence
panel and document viewer through `esc()` (HTML-escaped, template syntax defused: gr.HTML does not
sanitise). So a briefing that contains `<script>` or `[x](javascript:...)` shows as literal text.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from qa import pageview
from qa.chat.backend import PipelineLike
from qa.types import Answer, Citation, Document, DocumentInfo, FileResult, Passage, Span, pipe_cells

DOC_HEADERS = ["Title", "File", "Pages", "Chunks", "Added"]
# An abstention lists this many of the closest passages in the chat, each cut to EXCERPT_CHARS.
CLOSEST_SHOWN = 3
EXCERPT_CHARS = 160
# The document viewer shows a PDF's page(s) holding the passage, or this much text around it.
VIEW_CHARS = 60_000
HIGH_CONFIDENCE = 0.6
MEDIUM_CONFIDENCE = 0.3

NOT_FOUND_TITLE = "Not found in the documents."
EVIDENCE_EMPTY = '<div class="qa-ev-empty">Ask a question: the passages behind the answer appear here.</div>'


# ---------------------------------------------------------------- escaping

# Inline Markdown/LaTeX syntax and autolink triggers (`http://`, `www.`, `a@b`), made inert as entities.
_MD_INLINE = re.compile(r"[\\`*_\[\]$~|@]|:(?=\S)|(?<=[wW]{3})\.")
# Block syntax only counts at the start of a line: headings, list markers, ordered-list numbers.
_MD_LINE_START = re.compile(r"^[#+\-0-9]")
# gr.HTML fills its template with `${…}` and Handlebars `{{…}}`: document text must not look like either.
_TEMPLATE_CHARS = str.maketrans({"{": "&#123;", "}": "&#125;", "$": "&#36;", "`": "&#96;"})


def _entity(match: re.Match[str]) -> str:
    return f"&#{ord(match.group())};"


def neutral(text: str) -> str:
    """Untrusted text as inert Markdown: one line, HTML-escaped, no Markdown syntax left live.

    Whitespace runs collapse to one space so document line breaks cannot start Markdown blocks.
    `html.unescape(neutral(s))` gives back `s` with its whitespace collapsed.
    """
    flat = html.escape(re.sub(r"\s+", " ", text), quote=True)
    return _MD_LINE_START.sub(_entity, _MD_INLINE.sub(_entity, flat))


def esc(text: str) -> str:
    """Untrusted text for gr.HTML (no Markdown, no sanitiser): HTML-escaped, template syntax defused.

    Keeps line breaks (the panels show text with `white-space: pre-wrap`). `html.unescape(esc(s)) == s`.
    """
    return html.escape(text, quote=True).translate(_TEMPLATE_CHARS)


# ---------------------------------------------------------------- rendering the chat (pure functions)


def confidence_label(score: float) -> str:
    """Coarse words for the reader's score, so users need not interpret raw numbers.

    The score is calibrated on the hard case, SQuAD 2.0's mix of answerable questions and
    unanswerable ones on the documents' topic. On a mix where a fifth of the questions are
    unanswerable, "high" answers were right 88 times in 100, "medium" 77 and "low" 44 (on the
    hard mix 71, 50 and 20: docs/evaluation.md, The cascade).
    """
    if score >= HIGH_CONFIDENCE:
        return "high"
    if score >= MEDIUM_CONFIDENCE:
        return "medium"
    return "low"


def highlight(text: str, base: int, span: Span | None) -> str:
    """`text` (starting at document offset `base`) neutralised, with `span` wrapped in <mark>.

    Works by offsets, never by searching for the answer string, so a repeated phrase is marked where
    the reader found it. A span not wholly inside the text is not marked.
    """
    if span is None or not (base <= span.start < span.end <= base + len(text)):
        return neutral(text)
    start, end = span.start - base, span.end - base
    return neutral(text[:start]) + "<mark>" + neutral(text[start:end]) + "</mark>" + neutral(text[end:])


def card_id(number: int, card: int) -> str:
    """The evidence card's element id; chat citation links point at it (`#ev-2-1`)."""
    return f"ev-{number}-{card}"


def _where(source: str, page: int | None, section: str | None = None) -> str:
    """A PDF's page, else the section heading of a document without pages, else the file alone."""
    if page is not None:
        return f"{source}, p. {page}"
    return f"{source}, section “{section}”" if section else source


def _source_line(n: int, number: int, title: str, source: str, page: int | None, section: str | None = None) -> str:
    link = f'<a class="qa-cite" href="#{card_id(number, n)}" title="Show source {n} in the evidence panel">[{n}]</a>'
    return f"{link} {neutral(title)} — {neutral(_where(source, page, section))}"


OCR_NOTE = "Read by OCR from a scanned page: a word may be misread. Open the page as printed to check."


def _ocr_mark(citation: Citation) -> str:
    return " · read by OCR" if citation.ocr else ""


def _answer_mark(answer: Answer) -> Span | None:
    """What to mark inside the quote: the short answer, or the whole quote when it is the answer."""
    citation = answer.citations[0]
    span = answer.answer_span
    if span is not None and citation.start <= span.start < span.end <= citation.end:
        return span
    return Span(citation.start, citation.end)


def confidence_html(score: float) -> str:
    """The label in words; the number on hover (Gradio's sanitiser keeps `title` and `class`)."""
    label = confidence_label(score)
    return f'<span class="qa-conf qa-conf-{label}" title="confidence score {score:.2f}">Confidence: {label}</span>'


def render_answer(
    answer: Answer, number: int = 1, scope: Sequence[str] = (), document: Document | None = None
) -> str:
    """The chat's answer card (Markdown): how a follow-up was read, bold short answer, the verbatim
    quote with the answer marked (for a table's cell: the row under the table's column headers, the
    cell marked), the confidence label, numbered citations linking to the evidence panel's cards,
    and the other sentences that answer too ("Also in the documents"), each with its own citation
    and confidence.

    `number` is the answer's place in the conversation (it names the evidence cards); `scope` lists the
    documents the question was limited to, if any; `document` is the cited one (`answer_document`),
    whose table gives a table answer its full header row.
    """
    if not answer.answered:
        return render_abstention(answer, number, scope)
    citation = answer.citations[0]
    parts = _read_as(answer)
    parts += [f"**{neutral(answer.answer)}**"] if answer.answer and answer.answer != answer.quote else []
    parts += [
        render_table_row(answer, document) if citation.table is not None
        else f"> {highlight(answer.quote, citation.start, _answer_mark(answer))}",
        confidence_html(answer.score),
        "**Sources**",
    ]
    parts += [
        f"{_source_line(n, number, c.title, c.source, c.page, c.section)} · chars {c.start}–{c.end}{_ocr_mark(c)}"
        for n, c in enumerate(answer.citations, 1)
    ]
    if any(c.ocr for c in answer.citations):
        parts.append(f"*{OCR_NOTE}*")
    if answer.alternatives:
        card_of = {card.citation: card.number for card in evidence_cards(answer) if card.citation is not None}
        parts.append("**Also in the documents**")
        for other in answer.alternatives:
            c = other.citations[0]
            parts.append(
                f"> {highlight(other.quote, c.start, _answer_mark(other))}\n\n"
                f"{_source_line(card_of[c], number, c.title, c.source, c.page, c.section)} · {confidence_html(other.score)}"
            )
    parts += _scope_note(scope)
    return "\n\n".join(parts)


def answer_document(pipeline: PipelineLike, answer: Answer) -> Document | None:
    """The document a table answer cites (its table's header row), None for other answers or when
    the document has gone from the index."""
    if not answer.answered or not answer.citations or answer.citations[0].table is None:
        return None
    try:
        return pipeline.document(answer.citations[0].doc_id)
    except KeyError:
        return None


def render_table_row(answer: Answer, document: Document | None = None) -> str:
    """A table answer as a small HTML table on one line (one Markdown HTML block): the caption, the
    column headers, and the answer's row with its cell marked (`qa-cell`). The headers and cells
    come from `document`'s table when it still holds the row; else from the quoted row, under the
    answer's column header alone."""
    citation = answer.citations[0]
    cell = citation.table
    assert cell is not None
    found = document.table_at(citation.start) if document is not None else None
    cells: list[tuple[str, bool]] = []
    if found is not None and document is not None and document.text[citation.start : citation.end] == citation.quote:
        table, row = found
        columns = list(table.columns)
        cells = [(document.text[a:b], (a, b) == (cell.cell_start, cell.cell_end)) for a, b in row.cells]
    if not any(hit for _, hit in cells):  # the row as quoted, "| Texas | 56,941 |": the cells between bars
        quote = citation.quote
        cells = [(quote[a:b], citation.start + a == cell.cell_start) for a, b in pipe_cells(quote, 0, len(quote))]
        if not any(hit for _, hit in cells):  # not a pipe row after all: the cell alone
            cells = [(answer.answer, True)]
        columns = [cell.column if hit else "" for _, hit in cells]
    width = max(len(columns), len(cells))
    columns += [""] * (width - len(columns))
    cells += [("", False)] * (width - len(cells))
    caption = f"<caption>{esc(cell.caption)}</caption>" if cell.caption else ""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join(
        f'<td class="qa-cell"><mark>{esc(value)}</mark></td>' if hit else f"<td>{esc(value)}</td>"
        for value, hit in cells
    )
    return f'<table class="qa-table">{caption}<thead><tr>{head}</tr></thead><tbody><tr>{body}</tr></tbody></table>'


def _read_as(answer: Answer) -> list[str]:
    """A follow-up says how it was read, so a wrong reading is plain to see."""
    if not answer.read_as or answer.read_as == answer.question:
        return []
    return [f'<span class="qa-read-as">Read as: “{neutral(answer.read_as)}”</span>']


def _scope_note(scope: Sequence[str]) -> list[str]:
    return [f"*Searched only in: {', '.join(neutral(s) for s in scope)}*"] if scope else []


def render_abstention(answer: Answer, number: int = 1, scope: Sequence[str] = ()) -> str:
    """An abstention looks unlike an answer and lists what was searched, so users can judge it."""
    parts = [*_read_as(answer), f'<span class="abstained">{NOT_FOUND_TITLE}</span> {neutral(answer.message)}']
    if answer.passages:
        parts.append("*Closest passages looked at:*")
        for n, p in enumerate(answer.passages[:CLOSEST_SHOWN], 1):
            excerpt = p.text if len(p.text) <= EXCERPT_CHARS else p.text[:EXCERPT_CHARS].rsplit(" ", 1)[0] + " …"
            parts.append(
                f"{_source_line(n, number, p.title, p.source, p.page)} · score {p.score:.2f}\n\n{neutral(excerpt)}"
            )
    parts += _scope_note(scope)
    return "\n\n".join(parts)


# ---------------------------------------------------------------- the evidence panel and document viewer


@dataclass(frozen=True)
class EvidenceCard:
    """One passage behind an answer; `citation` is set for the passages an answer quotes, `also`
    when that answer is one of the alternatives ("Also in the documents")."""

    number: int
    doc_id: str
    title: str
    source: str
    page: int | None
    start: int
    end: int
    text: str
    score: float | None
    citation: Citation | None = None
    also: bool = False


def _containing_passage(citation: Citation, passages: Sequence[Passage]) -> Passage | None:
    for passage in passages:
        if passage.doc_id == citation.doc_id and passage.start <= citation.start < passage.end:
            return passage
    return None


def evidence_cards(answer: Answer) -> list[EvidenceCard]:
    """Cited passages first, in citation order (so citation [n] is card n), then those the
    alternatives quote, then the others retrieved."""
    cards: list[EvidenceCard] = []
    used: set[int] = set()
    for quoting in (answer, *answer.alternatives):
        also = quoting is not answer
        for citation in quoting.citations:
            p = _containing_passage(citation, answer.passages)
            if p is not None and id(p) not in used:
                used.add(id(p))
                cards.append(
                    EvidenceCard(
                        len(cards) + 1, p.doc_id, p.title, p.source, p.page, p.start, p.end, p.text, p.score, citation, also
                    )
                )
            else:  # not among the passages (or a second quote from one passage): the quote itself
                c = citation
                cards.append(
                    EvidenceCard(len(cards) + 1, c.doc_id, c.title, c.source, c.page, c.start, c.end, c.quote, None, c, also)
                )
    for p in answer.passages:
        if id(p) not in used:
            cards.append(EvidenceCard(len(cards) + 1, p.doc_id, p.title, p.source, p.page, p.start, p.end, p.text, p.score))
    return cards


def _card_marks(answer: Answer, card: EvidenceCard) -> tuple[Span | None, Span | None]:
    """(the quote, the short answer) to highlight in a card; a short answer belongs to the first
    citation of the answer (or alternative) that quotes the card."""
    if card.citation is None:
        return None, None
    quote = Span(card.citation.start, card.citation.end)
    owner = next(a for a in (answer, *answer.alternatives) if card.citation in a.citations)
    if card.citation == owner.citations[0] and owner.answer_span is not None:
        return quote, _answer_mark(owner)
    return quote, quote


def marked_html(text: str, base: int, outer: Span | None, inner: Span | None, outer_id: str = "") -> str:
    """`text` (at document offset `base`) escaped for gr.HTML: `outer` (the quote) in a tinted span,
    `inner` (the answer) in <mark>. Works by offsets only; spans not inside the text are dropped, an
    `inner` outside `outer` is dropped, and an `inner` equal to `outer` becomes a plain <mark>."""
    lo, hi = base, base + len(text)

    def inside(span: Span | None) -> Span | None:
        return span if span is not None and lo <= span.start < span.end <= hi else None

    outer, inner = inside(outer), inside(inner)
    if outer is None:
        outer, inner = inner, None
    if outer is None:
        return esc(text)
    if inner is not None and not (outer.start <= inner.start and inner.end <= outer.end):
        inner = None
    id_attr = f' id="{outer_id}"' if outer_id else ""

    def piece(a: int, b: int) -> str:
        return esc(text[a - base : b - base])

    if inner is None or inner == outer:
        body = f"<mark{id_attr}>{piece(outer.start, outer.end)}</mark>"
    else:
        body = (
            f'<span class="qa-quote"{id_attr}>{piece(outer.start, inner.start)}'
            f"<mark>{piece(inner.start, inner.end)}</mark>{piece(inner.end, outer.end)}</span>"
        )
    return piece(lo, outer.start) + body + piece(outer.end, hi)


def render_evidence(answer: Answer | None, number: int = 1, scope: Sequence[str] = ()) -> str:
    """The evidence panel (HTML) for one answer: one card per passage, the answer marked by offsets."""
    if answer is None:
        return EVIDENCE_EMPTY
    if answer.answered:
        head = f'<div class="qa-ev-head">Answer {number}: <q>{esc(answer.question)}</q></div>'
    else:
        what = "closest passages looked at" if answer.passages else esc(answer.message)
        head = (
            f'<div class="qa-ev-head qa-abstained">Answer {number}: <q>{esc(answer.question)}</q> — '
            f"{NOT_FOUND_TITLE.rstrip('.')}; {what}</div>"
        )
    if scope:
        head += f'<div class="qa-meta">Searched only in: {esc(", ".join(scope))}</div>'
    cards = []
    for card in evidence_cards(answer):
        quote, mark = _card_marks(answer, card)
        meta = [esc(_where(card.source, card.page)), f"chars {card.start}–{card.end}"]
        if card.score is not None:
            meta.append(f"retrieval score {card.score:.2f}")
        badge = f'<span class="qa-badge">{"also answers" if card.also else "quoted"}</span>' if card.citation else ""
        cards.append(
            f'<article class="qa-card{" qa-cited" if card.citation else ""}" id="{card_id(number, card.number)}">'
            f'<div class="qa-card-title">[{card.number}] {esc(card.title)}{badge}</div>'
            f'<div class="qa-meta">{" · ".join(meta)}</div>'
            f'<div class="qa-passage">{marked_html(card.text, card.start, quote, mark)}</div>'
            f'<button type="button" class="qa-open" data-card="{card.number}">Open document at this passage</button>'
            "</article>"
        )
    return f'<div class="qa-ev" data-answer="{number}">{head}{"".join(cards)}</div>'


def render_document(
    doc: Document, focus: Span, mark: Span | None, card_number: int | None = None, page_view: str = ""
) -> str:
    """The document viewer (HTML): the whole text, or for a PDF the page(s) holding `focus`, escaped,
    with `focus` highlighted as #doc-focus (the viewer's script scrolls to it) and `mark` inside it.
    For a PDF opened from evidence card `card_number`, a button asks for the page as printed, which
    comes back as `page_view` (render_page_view) below the text."""
    page_button = ""
    if doc.page_starts:
        first, last = doc.page_at(focus.start) or 1, doc.page_at(max(focus.start, focus.end - 1)) or 1
        lo = doc.page_starts[first - 1]
        hi = doc.page_starts[last] if last < len(doc.page_starts) else len(doc.text)
        pages = f"page {first}" if first == last else f"pages {first}–{last}"
        where = f"{pages} of {len(doc.page_starts)}"
        if card_number is not None:
            page_button = (
                f'<button type="button" class="qa-page-open" data-card="{card_number}">'
                f"Show page {first} as printed</button>"
            )
    else:
        lo, hi = max(0, focus.start - VIEW_CHARS // 2), min(len(doc.text), focus.end + VIEW_CHARS // 2)
        where = "whole text" if (lo, hi) == (0, len(doc.text)) else f"characters {lo}–{hi} of {len(doc.text)}"
    text = doc.text[lo:hi]
    return (
        '<div class="qa-doc">'
        f'<div class="qa-doc-head"><div><div class="qa-card-title">{esc(doc.title)}</div>'
        f'<div class="qa-meta">{esc(doc.source)} · {where} · highlight at chars {focus.start}–{focus.end}</div></div>'
        f'<div class="qa-doc-buttons">{page_button}<button type="button" class="qa-close">Close</button></div></div>'
        f'<div class="qa-doc-text">{marked_html(text, lo, focus, mark, outer_id="doc-focus")}</div>'
        f"{page_view}</div>"
    )


def _box_html(box: pageview.Box, kind: str) -> str:
    return (
        f'<div class="qa-box qa-box-{kind}" style="left:{box.left * 100:.3f}%;top:{box.top * 100:.3f}%;'
        f'width:{(box.right - box.left) * 100:.3f}%;height:{(box.bottom - box.top) * 100:.3f}%"></div>'
    )


def render_page_view(doc: Document, focus: Span, mark: Span | None) -> str:
    """The page of a PDF holding `focus`, as printed: the rendered image with a box over each line of
    the quote (`focus`) and a stronger one over the short answer (`mark`). Drawn on request only
    (qa.pageview caches it); a page that cannot be drawn, or a file that no longer holds the quote,
    says why instead of showing a wrong box."""
    page_number = doc.page_at(focus.start) or 1
    pages = len(doc.page_starts)
    head = f"Page {page_number} of {pages} as printed"
    try:
        page = pageview.render(doc.path, page_number)
    except pageview.PageViewError as e:
        return f'<div class="qa-page-view"><div class="qa-meta">{head}: cannot be shown: {esc(str(e))}</div></div>'
    lo = doc.page_starts[page_number - 1]
    hi = doc.page_starts[page_number] if page_number < pages else len(doc.text)
    answer_at = (mark.start - focus.start, mark.end - focus.start) if mark and mark != focus else None
    found = pageview.locate(page, doc.text[focus.start : focus.end], answer_at, (focus.start - lo) / max(1, hi - lo))
    if found is None:
        note = (
            f"the quote was not found on this page of {doc.source}: the file has changed since it was "
            "indexed (add it again to re-index it)"
        )
        boxes = ""
    else:
        note = "the quote boxed" + ("" if found.whole else "; it goes on over the page")
        boxes = "".join(_box_html(b, "quote") for b in found.quote) + "".join(_box_html(b, "answer") for b in found.answer)
    return (
        f'<div class="qa-page-view"><div class="qa-meta">{head} · {esc(note)}'
        '<span class="qa-zoom-hint"> · click the page to zoom</span></div>'
        '<div class="qa-page-scroll"><div class="qa-page-canvas">'
        f'<img src="{page.data_uri}" width="{page.width}" height="{page.height}" '
        f'alt="{esc(f"Page {page_number} of {doc.source}")}">{boxes}</div></div></div>'
    )


def _card_focus(answer: Answer, card: EvidenceCard) -> tuple[Span, Span | None]:
    """What the viewer highlights for a card: the quote (and answer) if cited, else the passage."""
    quote, mark = _card_marks(answer, card)
    return (quote, mark) if quote is not None else (Span(card.start, card.end), None)


def render_card_document(pipeline: PipelineLike, answer: Answer, card_number: int, with_page: bool = False) -> str:
    """The viewer for one evidence card: the quote (and answer) for a cited card, else the passage;
    `with_page` adds the PDF page as printed below the text."""
    card = next((c for c in evidence_cards(answer) if c.number == card_number), None)
    if card is None:
        return ""
    try:
        doc = pipeline.document(card.doc_id)
    except KeyError:
        return f'<div class="qa-doc qa-meta">{esc(card.source)} has been removed from the index since.</div>'
    focus, mark = _card_focus(answer, card)
    page_view = render_page_view(doc, focus, mark) if with_page and doc.page_starts else ""
    return render_document(doc, focus, mark, card_number, page_view)


# ---------------------------------------------------------------- the documents panel


_STATUS_TEXT = {
    "added": "added",
    "replaced": "replaced the earlier version",
    "unchanged": "already indexed (unchanged)",
    "refused": "refused",
}


def render_file_results(results: Sequence[FileResult]) -> str:
    """One line per uploaded file, with the reason for any refusal."""
    if not results:
        return "No files received."
    lines = []
    for r in results:
        reason = f": {neutral(r.reason)}" if r.status == "refused" and r.reason else ""
        lines.append(f"- **{neutral(Path(r.path).name)}** — {_STATUS_TEXT.get(r.status, r.status)}{reason}")
    return "\n".join(lines)


def documents_frame(docs: Sequence[DocumentInfo]) -> pd.DataFrame:
    """The documents panel's rows (plain strings: the Dataframe shows them as text, not HTML)."""
    rows = [
        [d.title, d.source, "" if d.pages is None else d.pages, d.chunks, d.added_at[:16].replace("T", " ")]
        for d in docs
    ]
    return pd.DataFrame(rows, columns=DOC_HEADERS)


def document_label(doc: DocumentInfo) -> str:
    return f"{doc.title} ({doc.source})"


def doc_titles(pipeline: PipelineLike, doc_ids: Sequence[str]) -> list[str]:
    """The labels of documents by id, for a question's scope; an id no longer indexed stays as is."""
    by_id = {d.doc_id: d for d in pipeline.documents()}
    return [document_label(by_id[i]) if i in by_id else i for i in doc_ids]
