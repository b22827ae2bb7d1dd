"""The browser chat: a Gradio 6 app over a `Pipeline`, plus the pure functions that render its answers.

Layout: the conversation on the left (answer cards: bold short answer, the verbatim quote, a confidence
label, numbered citations), the evidence panel on the right (one card per passage behind the current
answer, the answer marked by character offsets, a button that opens the whole document or PDF page
scrolled to the quote, and for a PDF the page as printed with the quote boxed), and a documents
panel below (upload, list, remove with confirmation, and a filter to ask only within chosen
documents).

Escaping: everything a document or a user wrote reaches the chat through `neutral()` (HTML-escaped,
Markdown defused; the Chatbot's own sanitiser stays on as a second layer) and reaches the evidence
panel and document viewer through `esc()` (HTML-escaped, template syntax defused: gr.HTML does not
sanitise). So a briefing that contains `<script>` or `[x](javascript:...)` shows as literal text.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import typing
import unicodedata
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Any, Protocol

import gradio as gr
import pandas as pd

from qa import pageview
from qa.config import Config
from qa.ingest import SUPPORTED_SUFFIXES, content_problem
from qa.schema import answer_json
from qa.types import Answer, Citation, Document, DocumentInfo, FileResult, Passage, Span

DOC_HEADERS = ["Title", "File", "Pages", "Chunks", "Added"]
# An abstention lists this many of the closest passages in the chat, each cut to EXCERPT_CHARS.
CLOSEST_SHOWN = 3
EXCERPT_CHARS = 160
MAX_NAME_BYTES = 120
# The document viewer shows a PDF's page(s) holding the passage, or this much text around it.
VIEW_CHARS = 60_000
# Example questions: at most this many are shown, from this many candidates checked against the index.
EXAMPLES_SHOWN = 4
EXAMPLE_CANDIDATES = 8
HIGH_CONFIDENCE = 0.6
MEDIUM_CONFIDENCE = 0.3
EXAMPLE_MIN_SCORE = MEDIUM_CONFIDENCE
# Gradio queue: questions run side by side; index writes (add, remove) go one at a time.
ASK_CONCURRENCY = 8
WRITES = {"concurrency_limit": 1, "concurrency_id": "index-writes"}

NOT_FOUND_TITLE = "Not found in the documents."
EVIDENCE_EMPTY = '<div class="qa-ev-empty">Ask a question: the passages behind the answer appear here.</div>'

CSS = """
#chatbot mark, #evidence mark, #doc-viewer mark { background: #fde68a; color: #111; padding: 0 2px; border-radius: 2px; }
#chatbot blockquote { border-left: 3px solid #93c5fd; margin: 0.4em 0; padding-left: 0.8em; }
#chatbot .abstained { color: #b45309; font-weight: 700; }
.qa-conf { font-size: 0.85em; padding: 1px 8px; border-radius: 999px; cursor: help; white-space: nowrap; }
.qa-conf-high { background: #dcfce7; color: #166534; }
.qa-conf-medium { background: #fef9c3; color: #854d0e; }
.qa-conf-low { background: #fee2e2; color: #991b1b; }
#chatbot a.qa-cite { font-weight: 700; text-decoration: none; }
#evidence .qa-ev-head { font-weight: 600; margin: 0 0 8px; overflow-wrap: anywhere; }
#evidence .qa-ev-head.qa-abstained { color: #b45309; }
#evidence .qa-card { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 12px;
  margin: 0 0 10px; scroll-margin-top: 12px; }
#evidence .qa-card.qa-cited { border-left: 4px solid #3b82f6; }
#evidence .qa-card.qa-flash { outline: 3px solid #f59e0b; }
.qa-card-title { font-weight: 600; overflow-wrap: anywhere; }
#evidence .qa-badge { font-size: 0.75em; background: #dbeafe; color: #1e3a8a; border-radius: 999px; padding: 0 6px; margin-left: 4px; }
.qa-meta { color: var(--body-text-color-subdued); font-size: 0.85em; overflow-wrap: anywhere; }
.qa-passage, .qa-doc-text { white-space: pre-wrap; overflow-wrap: anywhere; line-height: 1.5; font-size: 0.95em; }
.qa-quote { background: #dbeafe; color: #111; }
.qa-open, .qa-close { border: 1px solid var(--border-color-primary); border-radius: 6px; padding: 2px 10px;
  font-size: 0.85em; cursor: pointer; background: var(--background-fill-secondary); }
#doc-viewer .qa-doc { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 12px; }
#doc-viewer .qa-doc-head { display: flex; gap: 8px; justify-content: space-between; align-items: start; }
#doc-viewer .qa-doc-text { position: relative; max-height: 55vh; overflow: auto; margin-top: 6px; }
#doc-viewer .qa-doc-buttons { display: flex; gap: 6px; flex-wrap: wrap; justify-content: end; }
.qa-page-open { border: 1px solid #3b82f6; border-radius: 6px; padding: 2px 10px; font-size: 0.85em; cursor: pointer;
  background: #eff6ff; color: #1e3a8a; }
.qa-page-view { margin-top: 8px; }
.qa-page-scroll { max-height: 70vh; overflow: auto; border: 1px solid var(--border-color-primary); margin-top: 4px; }
.qa-page-canvas { position: relative; width: 100%; cursor: zoom-in; }
.qa-page-canvas.qa-zoomed { width: 250%; cursor: zoom-out; }
.qa-page-canvas img { display: block; width: 100%; height: auto; }
.qa-box { position: absolute; pointer-events: none; border-radius: 2px; }
.qa-box-quote { background: rgba(59, 130, 246, 0.22); outline: 1px solid rgba(59, 130, 246, 0.7); }
.qa-box-answer { background: rgba(245, 158, 11, 0.35); outline: 2px solid #d97706; }
/* A phone-width screen zooms the page to the quote: the page drawn 2.5 times as wide, scrolled to it. */
@media (max-width: 640px) {
  .qa-page-canvas, .qa-page-canvas.qa-zoomed { width: 250%; cursor: default; }
  .qa-zoom-hint { display: none; }
}
#documents table { overflow-wrap: anywhere; }
"""

# Clicking "Open document" asks the server for the document; a citation link's #ev-… hash scrolls to its card.
EVIDENCE_JS = """
element.addEventListener('click', (event) => {
  const button = event.target.closest('.qa-open');
  if (button) trigger('click', {card: Number(button.dataset.card)});
});
const focusCard = () => {
  const id = decodeURIComponent(location.hash.slice(1));
  if (!id.startsWith('ev-')) return;
  const card = element.querySelector('[id="' + id.replace(/[^\\w-]/g, '') + '"]');
  if (!card) return;
  card.scrollIntoView({block: 'nearest'});
  card.classList.add('qa-flash');
  setTimeout(() => card.classList.remove('qa-flash'), 1500);
};
watch('value', focusCard);
window.addEventListener('hashchange', focusCard);
"""

# The viewer scrolls its text box so the highlight sits in the upper third, and brings itself into view.
VIEWER_JS = """
const show = () => {
  const focus = element.querySelector('#doc-focus');
  const box = element.querySelector('.qa-doc-text');
  if (!focus || !box) return;
  box.scrollTop = Math.max(0, focus.offsetTop - box.clientHeight / 3);
  element.scrollIntoView({block: 'nearest'});
};
watch('value', show);
element.addEventListener('click', (event) => {
  if (event.target.closest('.qa-close')) props.value = '';
  const pageButton = event.target.closest('.qa-page-open');
  if (pageButton) { pageButton.disabled = true; trigger('click', {card: Number(pageButton.dataset.card)}); }
});
// The page as printed: scrolled so the quote's first line sits in view, its left edge too when the
// page is zoomed (always on a narrow screen; a click on the page toggles it elsewhere).
const placePage = () => {
  const scroller = element.querySelector('.qa-page-scroll');
  const boxes = [...element.querySelectorAll('.qa-box')];
  if (!scroller || !boxes.length) return;
  scroller.scrollTop = Math.max(0, boxes[0].offsetTop - scroller.clientHeight / 3);
  scroller.scrollLeft = Math.max(0, Math.min(...boxes.map((box) => box.offsetLeft)) - 16);
};
const showPage = () => {
  const scroller = element.querySelector('.qa-page-scroll');
  if (!scroller) return;
  const image = scroller.querySelector('img');
  if (image && !image.complete) image.addEventListener('load', placePage, {once: true}); else placePage();
  scroller.scrollIntoView({block: 'nearest'});
};
element.addEventListener('click', (event) => {
  const canvas = event.target.closest('.qa-page-canvas');
  if (canvas) { canvas.classList.toggle('qa-zoomed'); placePage(); }
});
watch('value', showPage);
"""


class PipelineLike(Protocol):
    """What the app needs from `qa.pipeline.Pipeline`; lets tests use a small fake."""

    config: Config

    def ensure_seeded(self) -> None: ...

    def add(
        self, paths: Sequence[Path], progress: Callable[[int, int, str], None] | None = None
    ) -> list[FileResult]: ...

    def ask(
        self, question: str, top_k: int | None = None, doc_ids: Collection[str] | None = None, strict: bool | None = None
    ) -> Answer: ...

    def documents(self) -> list[DocumentInfo]: ...

    def document(self, doc_id: str) -> Document: ...

    def remove(self, doc_id_or_path: str) -> list[DocumentInfo]: ...


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
    unanswerable ones on the documents' topic: there "high" answers were right at least 3 times in
    5 and "medium" ones at least 3 in 10 (on ordinary answerable questions both are right more
    often: README, Evaluation).
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


def render_answer(answer: Answer, number: int = 1, scope: Sequence[str] = ()) -> str:
    """The chat's answer card (Markdown): bold short answer, the verbatim quote with the answer marked,
    the confidence label, and numbered citations linking to the evidence panel's cards.

    `number` is the answer's place in the conversation (it names the evidence cards); `scope` lists the
    documents the question was limited to, if any.
    """
    if not answer.answered:
        return render_abstention(answer, number, scope)
    citation = answer.citations[0]
    parts = [f"**{neutral(answer.answer)}**"] if answer.answer and answer.answer != answer.quote else []
    parts += [
        f"> {highlight(answer.quote, citation.start, _answer_mark(answer))}",
        confidence_html(answer.score),
        "**Sources**",
    ]
    parts += [
        f"{_source_line(n, number, c.title, c.source, c.page, c.section)} · chars {c.start}–{c.end}"
        for n, c in enumerate(answer.citations, 1)
    ]
    parts += _scope_note(scope)
    return "\n\n".join(parts)


def _scope_note(scope: Sequence[str]) -> list[str]:
    return [f"*Searched only in: {', '.join(neutral(s) for s in scope)}*"] if scope else []


def render_abstention(answer: Answer, number: int = 1, scope: Sequence[str] = ()) -> str:
    """An abstention looks unlike an answer and lists what was searched, so users can judge it."""
    parts = [f'<span class="abstained">{NOT_FOUND_TITLE}</span> {neutral(answer.message)}']
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
    """One passage behind an answer; `citation` is set for the passages the answer quotes."""

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


def _containing_passage(citation: Citation, passages: Sequence[Passage]) -> Passage | None:
    for passage in passages:
        if passage.doc_id == citation.doc_id and passage.start <= citation.start < passage.end:
            return passage
    return None


def evidence_cards(answer: Answer) -> list[EvidenceCard]:
    """Cited passages first, in citation order (so citation [n] is card n), then the others retrieved."""
    cards: list[EvidenceCard] = []
    used: set[int] = set()
    for citation in answer.citations:
        p = _containing_passage(citation, answer.passages)
        if p is not None and id(p) not in used:
            used.add(id(p))
            cards.append(
                EvidenceCard(
                    len(cards) + 1, p.doc_id, p.title, p.source, p.page, p.start, p.end, p.text, p.score, citation
                )
            )
        else:  # not among the passages (or a second quote from one passage): the quote itself
            c = citation
            cards.append(
                EvidenceCard(len(cards) + 1, c.doc_id, c.title, c.source, c.page, c.start, c.end, c.quote, None, c)
            )
    for p in answer.passages:
        if id(p) not in used:
            cards.append(EvidenceCard(len(cards) + 1, p.doc_id, p.title, p.source, p.page, p.start, p.end, p.text, p.score))
    return cards


def _card_marks(answer: Answer, card: EvidenceCard) -> tuple[Span | None, Span | None]:
    """(the quote, the short answer) to highlight in a card; the answer span belongs to the first citation."""
    if card.citation is None:
        return None, None
    quote = Span(card.citation.start, card.citation.end)
    first = answer.citations[0]
    if card.citation == first and answer.answer_span is not None:
        return quote, _answer_mark(answer)
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
        badge = '<span class="qa-badge">quoted</span>' if card.citation else ""
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


def file_result_json(result: FileResult) -> dict[str, str]:
    """An upload's outcome for API clients (the file name only, never a server path)."""
    return {
        "file": Path(result.path).name,
        "status": result.status,
        "reason": result.reason,
        "doc_id": result.doc_id,
        "title": result.title,
    }


def documents_frame(docs: Sequence[DocumentInfo]) -> pd.DataFrame:
    """The documents panel's rows (plain strings: the Dataframe shows them as text, not HTML)."""
    rows = [
        [d.title, d.source, "" if d.pages is None else d.pages, d.chunks, d.added_at[:16].replace("T", " ")]
        for d in docs
    ]
    return pd.DataFrame(rows, columns=DOC_HEADERS)


def document_label(doc: DocumentInfo) -> str:
    return f"{doc.title} ({doc.source})"


# ---------------------------------------------------------------- example questions from the documents

_NAME = r"[A-Z][\w’'-]+"
_VERBS = {
    "said": "say",
    "says": "say",
    "stressed": "stress",
    "emphasized": "emphasize",
    "emphasised": "emphasise",
    "warned": "warn",
    "noted": "note",
    "clarified": "clarify",
    "argued": "argue",
    "announced": "announce",
    "insisted": "insist",
    "told": "tell",
    "added": "add",
}
# "Kaja Kallas, emphasized" / "Healey clarified": a named person reporting something.
_SPEECH = re.compile(rf"\b((?:{_NAME} ){{0,2}}{_NAME}),? ({'|'.join(_VERBS)})\b")
# "Finland’s Defense Minister Antti Häkkänen": a role followed by the name of who holds it.
_ROLE = re.compile(
    rf"\b((?:{_NAME}[’']s )?(?:[A-Z][\w.]+ ){{0,3}}"
    r"(?:Minister|Secretary|President|Director|Chancellor|Governor|Mayor|Chair|Chairman|Chairwoman|Ambassador|"
    rf"Commissioner|Envoy|Spokesperson|Spokesman|Commander)) {_NAME}(?: {_NAME}){{0,2}}\b"
)
# "The Zephyr reservoir project has a total budget of …": a measured property of a named thing.
_MEASURE = re.compile(
    r"\b[Tt]he ((?:[\w-]+ ){0,4}[\w-]+) (?:has|had) an? (?:total |overall |annual |estimated )?"
    r"(budget|cost|capacity|population|value|price|length|area|deadline) of\b"
)
_STARTERS = {"The", "A", "An", "This", "That", "It", "He", "She", "They", "We", "I", "But", "And", "Instead", "However",
             "While", "When", "After", "Before", "As", "If", "Although", "Since", "Meanwhile", "Then", "So", "Yet"}
_SCAN_CHARS = 20_000


def example_candidates(text: str) -> list[str]:
    """Questions suggested by a document's own sentences (simple patterns, no language model):
    who reported something, who holds a named role, what a named thing's budget/cost/… is.
    Kinds alternate, so a few examples show different kinds of question."""
    text = text[:_SCAN_CHARS]
    speech, roles, measures = [], [], []
    for m in _SPEECH.finditer(text):
        surname = m.group(1).split()[-1]
        if surname not in _STARTERS:
            speech.append(f"What did {surname} {_VERBS[m.group(2)]}?")
    for m in _ROLE.finditer(text):
        words = m.group(1).split()
        while words and words[0] in _STARTERS:
            words.pop(0)
        if len(words) >= 2:  # "the President" alone is too vague to ask about
            role = " ".join(words)
            roles.append(f"Who is {role}?" if re.match(rf"{_NAME}[’']s ", role) else f"Who is the {role}?")
    for m in _MEASURE.finditer(text):
        measures.append(f"What is the {m.group(2)} of the {m.group(1)}?")
    mixed = [q for round_ in zip_longest(speech, roles, measures) for q in round_ if q is not None]
    return list(dict.fromkeys(mixed))


def example_questions(pipeline: PipelineLike, docs: Sequence[DocumentInfo]) -> list[str]:
    """A few example questions from the newest documents, kept only if the index answers them from
    the document they came from with at least medium confidence (so every example works)."""
    per_doc: list[list[tuple[str, str]]] = []
    for info in sorted(docs, key=lambda d: d.added_at, reverse=True)[:EXAMPLES_SHOWN]:
        try:
            text = pipeline.document(info.doc_id).text
        except KeyError:
            continue
        per_doc.append([(q, info.doc_id) for q in example_candidates(text)[:EXAMPLES_SHOWN]])
    # Round-robin over documents so one long document does not take every slot.
    ordered = [c for round_ in zip_longest(*per_doc) for c in round_ if c is not None]
    chosen: list[str] = []
    for question, doc_id in ordered[:EXAMPLE_CANDIDATES]:
        answer = pipeline.ask(question)
        if answer.answered and answer.score >= EXAMPLE_MIN_SCORE and answer.citations[0].doc_id == doc_id:
            chosen.append(question)
        if len(chosen) == EXAMPLES_SHOWN:
            break
    return chosen


# ---------------------------------------------------------------- uploads

_UNSAFE_NAME = re.compile(r"[^\w.\-]+")  # \w is Unicode-aware: non-ASCII letters survive


def safe_filename(name: str) -> str:
    """A file name safe to create in the uploads folder: basename only, no traversal, capped length.

    Keeps the (lower-cased) suffix so the parser still knows the type, and non-ASCII letters so
    users recognise their file; everything else unusual becomes `_`.
    """
    base = unicodedata.normalize("NFC", name.replace("\\", "/").rsplit("/", 1)[-1])
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    suffix = _UNSAFE_NAME.sub("", suffix).lower()[:10]
    stem = _UNSAFE_NAME.sub("_", stem).strip("._-") or "document"
    while len(stem.encode()) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return f"{stem}.{suffix}" if suffix else stem


def upload_dir(config: Config) -> Path:
    return Path(config.index_dir) / "uploads"


def add_uploads(
    pipeline: PipelineLike,
    files: Sequence[str | Path],
    progress: Callable[[int, int, str], None] | None = None,
) -> list[FileResult]:
    """Check uploads, copy them under sanitised names into `<index_dir>/uploads/` and index them.

    Gradio's temp copies vanish, and their names must not become document names. Checked before any
    copy: extension, size, and that the content matches the extension. A refused file leaves the
    uploads folder as it was (an earlier good version at that name is restored).
    """
    dest_dir = upload_dir(pipeline.config)
    dest_dir.mkdir(parents=True, exist_ok=True)
    early: list[FileResult] = []
    staged: dict[Path, Path | None] = {}  # destination -> backup of what it replaced
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".backup-") as backups:
        for src in map(Path, files):
            dest = dest_dir / safe_filename(src.name)
            try:
                if dest.suffix not in SUPPORTED_SUFFIXES:
                    reason = f"unsupported file type; use {', '.join(SUPPORTED_SUFFIXES)}"
                elif src.stat().st_size > pipeline.config.max_file_bytes:
                    reason = f"larger than the {pipeline.config.max_file_mb:g} MB limit"
                elif dest in staged:
                    reason = "another file in this upload has the same name"
                else:
                    reason = content_problem(src, dest.suffix)
            except OSError as exc:
                reason = f"could not read the upload ({exc.strerror or exc}); try again"
            if reason is None:
                backup = Path(backups) / dest.name if dest.exists() else None
                if backup:
                    shutil.copy2(dest, backup)
                shutil.copyfile(src, dest)
                staged[dest] = backup
                continue
            early.append(FileResult(path=dest.name, status="refused", reason=reason))
        results = pipeline.add(list(staged), progress=progress) if staged else []
        for r in results:
            dest = Path(r.path)
            if r.status == "refused" and dest in staged:
                backup = staged[dest]
                if backup:
                    shutil.copy2(backup, dest)
                else:
                    dest.unlink(missing_ok=True)
    return early + results


def _discard_gradio_copies(files: Sequence[str | Path]) -> None:
    """Delete Gradio's temp copies of uploads once indexed: the index holds the only copy, and
    Gradio's file route would otherwise keep serving them to anyone holding the URL."""
    from gradio.utils import get_upload_folder, is_in_or_equal

    cache = get_upload_folder()
    for name in files:
        path = Path(name)
        if is_in_or_equal(path, cache):
            path.unlink(missing_ok=True)
            try:
                path.parent.rmdir()  # Gradio keeps each upload in its own folder
            except OSError:
                pass


# ---------------------------------------------------------------- the app


def _resolved(fn: Callable) -> Callable:
    """Real types in the annotations (this module postpones them), so gr.api documents them."""
    fn.__annotations__ = typing.get_type_hints(fn)
    return fn


def build_app(pipeline: PipelineLike) -> gr.Blocks:
    """The chat, evidence panel, documents panel, and stable API endpoints for scripts and tests.

    Per browser session (gr.State): the answers given so far (`records`) and which one the evidence
    panel shows (`current`), so an older answer's sources stay available after newer questions.
    """
    # Gradio reads this at each call: no telemetry from a tool that handles private briefings.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    examples_cache: dict[tuple[str, ...], list[str]] = {}
    examples_lock = threading.Lock()

    def doc_titles(doc_ids: Sequence[str]) -> list[str]:
        by_id = {d.doc_id: d for d in pipeline.documents()}
        return [document_label(by_id[i]) if i in by_id else i for i in doc_ids]

    # --- questions --------------------------------------------------------------------------

    def chat(question: str, doc_ids: list[str] | None = None, strict: bool | None = None) -> str:
        """Answer a question from the indexed documents (optionally only within `doc_ids`; `strict`
        refuses more readily, default: the server's setting); returns the answer card as Markdown:
        short answer, quote, confidence, sources."""
        scope = list(doc_ids or [])
        return render_answer(pipeline.ask(question.strip(), doc_ids=scope or None, strict=strict), 1, doc_titles(scope))

    def ask_json(question: str, doc_ids: list[str] | None = None, top_k: int | None = None, strict: bool | None = None) -> dict:
        """Answer a question; returns the same JSON object as `qa ask --json` (answered, answer, quote,
        score, citations with document/page/character span, passages, message). `strict` as in chat."""
        if top_k is not None and top_k < 1:
            raise gr.Error("top_k must be at least 1")
        return answer_json(pipeline.ask(question.strip(), top_k=top_k, doc_ids=list(doc_ids or []) or None, strict=strict))

    def show_question(question: str, history: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]], str]:
        if not question.strip():
            return "", history, ""
        return "", [*history, {"role": "user", "content": neutral(question)}], question.strip()

    def answer_question(
        pending: str, history: list[dict[str, Any]], records: list[dict[str, Any]], doc_filter: list[str] | None,
        strict: bool,
    ) -> tuple[Any, ...]:
        if not pending:
            return (gr.skip(),) * 6
        scope = doc_titles(doc_filter or [])
        try:
            answer = pipeline.ask(pending, doc_ids=list(doc_filter or []) or None, strict=strict)
        except Exception as exc:  # noqa: BLE001 (the conversation goes on; the details go to the log)
            logging.getLogger(__name__).exception("answering %r failed", pending)
            failed = {"role": "assistant", "content": f"Something went wrong while answering: {neutral(str(exc))}"}
            return [*history, failed], records, gr.skip(), gr.skip(), gr.skip(), gr.skip()
        number = len(records) + 1
        history = [*history, {"role": "assistant", "content": render_answer(answer, number, scope)}]
        records = [*records, {"answer": answer, "message": len(history) - 1, "scope": scope}]
        return history, records, number, render_evidence(answer, number, scope), picker(records, number), ""

    def picker(records: list[dict[str, Any]], number: int) -> gr.Dropdown:
        choices = [(f"{n}. {r['answer'].question[:80]}", n) for n, r in enumerate(records, 1)]
        return gr.Dropdown(choices=choices, value=number if records else None)

    def show_answer(records: list[dict[str, Any]], number: int) -> str:
        if not 1 <= number <= len(records):
            return EVIDENCE_EMPTY
        record = records[number - 1]
        return render_evidence(record["answer"], number, record["scope"])

    def select_from_chat(records: list[dict[str, Any]], evt: gr.SelectData) -> tuple[Any, ...]:
        """A click on a message (or a citation link in it) shows that answer's sources."""
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        for number in range(len(records), 0, -1):
            if records[number - 1]["message"] in (index, index + 1):  # the answer, or the question before it
                return number, show_answer(records, number), gr.Dropdown(value=number), ""
        return (gr.skip(),) * 4

    def select_from_picker(records: list[dict[str, Any]], number: int | None) -> tuple[Any, ...]:
        if number is None:
            return (gr.skip(),) * 3
        return number, show_answer(records, int(number)), ""

    def open_document(records: list[dict[str, Any]], number: int, evt: gr.EventData) -> str:
        card = (getattr(evt, "_data", None) or {}).get("card")
        if not isinstance(card, int) or not 1 <= number <= len(records):
            return gr.skip()
        return render_card_document(pipeline, records[number - 1]["answer"], card)

    def open_page(records: list[dict[str, Any]], number: int, evt: gr.EventData) -> str:
        card = (getattr(evt, "_data", None) or {}).get("card")
        if not isinstance(card, int) or not 1 <= number <= len(records):
            return gr.skip()
        return render_card_document(pipeline, records[number - 1]["answer"], card, with_page=True)

    def clear_chat() -> tuple[Any, ...]:
        return [], [], 0, EVIDENCE_EMPTY, gr.Dropdown(choices=[], value=None), "", ""

    # --- documents --------------------------------------------------------------------------

    def list_documents() -> list[dict]:
        """The indexed documents, as `qa list --json` prints them but without the server-side path:
        doc_id, title, source, pages, chunks, chars, added_at."""
        # No "path" key: gradio_client downloads any result dict holding one, as if it were a file.
        return [{k: v for k, v in asdict(d).items() if k != "path"} for d in pipeline.documents()]

    def remove_document(document: str) -> list[dict]:
        """Remove a document by id (or unique id prefix), path or file name; returns what was removed."""
        removed = _remove(document)
        return [{"doc_id": d.doc_id, "title": d.title, "source": d.source} for d in removed]

    def _remove(key: str) -> list[DocumentInfo]:
        key = (key or "").strip()
        if not key:
            raise gr.Error("Choose a document to remove.")
        try:
            removed = pipeline.remove(key)
        except ValueError as exc:  # AmbiguousDocument: several documents match
            raise gr.Error(str(exc)) from None
        if not removed:
            raise gr.Error(f"No document matches {key!r}.")
        # Our copy of an uploaded file goes with it; files added from elsewhere are not ours to delete.
        uploads = upload_dir(pipeline.config).resolve()
        for info in removed:
            if Path(info.path).resolve().parent == uploads:
                Path(info.path).unlink(missing_ok=True)
        return removed

    def add_documents(files: list[str] | None) -> list[dict]:
        """Index uploaded files (SUPPORTED_SUFFIXES); one result per file: file, status (added, replaced,
        unchanged, refused), reason, doc_id, title."""
        try:
            return [file_result_json(r) for r in add_uploads(pipeline, files or [])]
        finally:
            _discard_gradio_copies(files or [])

    def upload_files(files: list[str] | None, progress: gr.Progress = gr.Progress()) -> tuple[str, None]:  # noqa: B008 (how Gradio injects progress)
        def report(done: int, total: int, name: str) -> None:
            progress((done, total), desc=f"Indexed {name}")

        progress(0, desc=f"Checking {len(files or [])} file(s)")
        try:
            return render_file_results(add_uploads(pipeline, files or [], report)), None
        finally:
            _discard_gradio_copies(files or [])

    def examples_for(docs: list[DocumentInfo]) -> list[str]:
        key = tuple(sorted(d.doc_id for d in docs))
        with examples_lock:
            if key not in examples_cache:
                examples_cache.clear()
                examples_cache[key] = example_questions(pipeline, docs)
            return examples_cache[key]

    def refresh(doc_filter: list[str] | None) -> tuple[Any, ...]:
        """Everything that lists documents: the table, the remove and filter choices, the examples."""
        docs = pipeline.documents()
        choices = [(document_label(d), d.doc_id) for d in docs]
        ids = {d.doc_id for d in docs}
        examples = examples_for(docs)
        return (
            documents_frame(docs),
            gr.Dropdown(choices=choices, value=None),
            gr.Dropdown(choices=choices, value=[i for i in doc_filter or [] if i in ids]),
            gr.Dataset(samples=[[q] for q in examples], visible=bool(examples)),
        )

    def ask_removal(doc_id: str | None) -> tuple[Any, ...]:
        """Step one of removing: say exactly what will go and wait for confirmation."""
        info = next((d for d in pipeline.documents() if d.doc_id == doc_id), None)
        if info is None:
            return "", gr.Row(visible=False), "Choose a document to remove first."
        text = (
            f"Remove **{neutral(info.title)}** ({neutral(info.source)}, {info.chunks} chunks)? "
            "Its passages will no longer be used for answers."
        )
        return info.doc_id, gr.Row(visible=True), text

    def confirm_removal(doc_id: str) -> tuple[Any, ...]:
        if not doc_id:
            return "", gr.Row(visible=False), "Nothing to remove."
        removed = _remove(doc_id)
        names = ", ".join(f"**{neutral(d.source)}**" for d in removed)
        return "", gr.Row(visible=False), f"Removed {names}."

    # --- layout -------------------------------------------------------------------------------

    with gr.Blocks(title="briefqa", analytics_enabled=False) as demo:
        gr.Markdown(
            "## briefqa\nAsk about the briefing documents. Answers are quoted verbatim with their "
            "source, page and character span; when the documents do not hold the answer, it says so."
        )
        records = gr.State([])
        current = gr.State(0)
        pending = gr.State("")
        pending_removal = gr.State("")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=300):
                chatbot = gr.Chatbot(
                    elem_id="chatbot",
                    label="Answers",
                    show_label=False,
                    height=560,
                    buttons=["copy"],
                    placeholder="Answers appear here, each quoting the documents with numbered sources.",
                )
                with gr.Row():
                    question = gr.Textbox(
                        elem_id="question",
                        show_label=False,
                        placeholder="Ask a question…",
                        scale=5,
                        min_width=180,
                        max_lines=4,
                    )
                    ask = gr.Button("Ask", variant="primary", elem_id="ask", scale=1, min_width=70)
                examples = gr.Dataset(
                    components=["textbox"], samples=[], label="Examples from your documents", elem_id="examples",
                    visible=False,
                )
                doc_filter = gr.Dropdown(
                    label="Ask only within (optional)",
                    elem_id="doc-filter",
                    multiselect=True,
                    choices=[],
                    info="Leave empty to search every document.",
                )
                strict_box = gr.Checkbox(
                    label="Refuse unless clearly answered (strict)",
                    value=pipeline.config.abstention == "strict",
                    elem_id="strict",
                    info="Refuses more questions the documents do not answer, and a few that they do.",
                )
                clear = gr.Button("Clear conversation", size="sm", elem_id="clear")
            with gr.Column(scale=2, min_width=300):
                answer_picker = gr.Dropdown(label="Sources for answer", elem_id="answer-picker", choices=[])
                evidence = gr.HTML(EVIDENCE_EMPTY, elem_id="evidence", js_on_load=EVIDENCE_JS, max_height=720)
                viewer = gr.HTML("", elem_id="doc-viewer", js_on_load=VIEWER_JS)
        with gr.Accordion("Documents", open=True, elem_id="documents-panel"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=2, min_width=300):
                    upload = gr.File(
                        label=f"Add documents ({', '.join(SUPPORTED_SUFFIXES)}; several at once)",
                        elem_id="upload",
                        file_count="multiple",
                        file_types=list(SUPPORTED_SUFFIXES),
                    )
                    upload_report = gr.Markdown(elem_id="upload-report")
                with gr.Column(scale=3, min_width=300):
                    docs_table = gr.Dataframe(
                        headers=DOC_HEADERS,
                        label="Indexed documents",
                        elem_id="documents",
                        interactive=False,
                        wrap=True,
                        column_widths=["30%", "27%", "13%", "14%", "16%"],
                    )
                    with gr.Row():
                        to_remove = gr.Dropdown(label="Document to remove", elem_id="remove-choice", scale=3, min_width=180)
                        remove = gr.Button("Remove…", variant="stop", elem_id="remove", scale=1, min_width=90)
                    with gr.Row(visible=False, elem_id="confirm-row") as confirm_row:
                        confirm_text = gr.Markdown(elem_id="confirm-text")
                        confirm = gr.Button("Yes, remove", variant="stop", elem_id="confirm-remove", min_width=90)
                        cancel = gr.Button("Cancel", elem_id="cancel-remove", min_width=90)
                    remove_report = gr.Markdown(elem_id="remove-report")
        # API-only components: uploads through gradio_client go through Gradio's file checks like the UI's.
        api_files = gr.File(file_count="multiple", visible=False, label="files")
        api_results = gr.JSON(visible=False, label="results")

        # --- events -----------------------------------------------------------------------------
        private: dict[str, Any] = {"api_visibility": "private"}
        listing = [docs_table, to_remove, doc_filter, examples]
        answer_outputs = [chatbot, records, current, evidence, answer_picker, viewer]
        for trigger in (question.submit, ask.click):
            trigger(show_question, [question, chatbot], [question, chatbot, pending], **private).then(
                answer_question, [pending, chatbot, records, doc_filter, strict_box], answer_outputs, **private
            )
        examples.click(lambda sample: sample[0] if sample else "", [examples], [question], **private).then(
            show_question, [question, chatbot], [question, chatbot, pending], **private
        ).then(answer_question, [pending, chatbot, records, doc_filter, strict_box], answer_outputs, **private)
        chatbot.select(select_from_chat, [records], [current, evidence, answer_picker, viewer], **private)
        answer_picker.input(select_from_picker, [records, answer_picker], [current, evidence, viewer], **private)
        evidence.click(open_document, [records, current], [viewer], **private)
        viewer.click(open_page, [records, current], [viewer], **private)
        cleared = [chatbot, records, current, evidence, answer_picker, viewer, question]
        clear.click(clear_chat, None, cleared, **private)
        chatbot.clear(clear_chat, None, cleared, **private)  # the chatbot's own trash button

        upload.upload(upload_files, [upload], [upload_report, upload], **WRITES, **private).then(
            refresh, [doc_filter], listing, **private
        )
        remove.click(ask_removal, [to_remove], [pending_removal, confirm_row, confirm_text], **private)
        cancel.click(lambda: ("", gr.Row(visible=False)), None, [pending_removal, confirm_row], **private)
        confirm.click(
            confirm_removal, [pending_removal], [pending_removal, confirm_row, remove_report], **WRITES, **private
        ).then(refresh, [doc_filter], listing, **private)
        demo.load(refresh, [doc_filter], listing, **private)

        gr.api(_resolved(chat), api_name="chat")
        gr.api(_resolved(ask_json), api_name="ask_json")
        gr.api(_resolved(list_documents), api_name="list_documents")
        gr.api(_resolved(remove_document), api_name="remove_document", **WRITES)
        api_files.upload(add_documents, [api_files], [api_results], api_name="add_documents", **WRITES)
    demo.queue(default_concurrency_limit=ASK_CONCURRENCY, max_size=512)
    return demo


# ---------------------------------------------------------------- serving safely


class ServeRefused(Exception):
    """`qa serve` will not start as asked (exposed without authentication, bad credentials file)."""


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _credential(line: str, where: str) -> tuple[str, str]:
    user, sep, password = line.partition(":")
    if not sep or not user.strip() or not password:
        raise ServeRefused(f"{where}: expected user:password")
    return user.strip(), password


def load_credentials(config: Config) -> list[tuple[str, str]]:
    """The user:password pairs from QA_AUTH and the QA_AUTH_FILE file (one per line, # comments)."""
    pairs = [_credential(config.auth, "QA_AUTH")] if config.auth else []
    if config.auth_file:
        path = Path(config.auth_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ServeRefused(f"cannot read QA_AUTH_FILE {path}: {getattr(exc, 'strerror', None) or exc}") from None
        found = [
            _credential(line.strip(), f"{path} line {n}")
            for n, line in enumerate(lines, 1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
        if not found:
            raise ServeRefused(f"QA_AUTH_FILE {path} holds no user:password lines")
        pairs += found
    return pairs


def password_check(pairs: Sequence[tuple[str, str]]) -> Callable[[str, str], bool]:
    """Gradio's auth callback: constant-time comparison against every known pair."""
    known = [(u.encode(), p.encode()) for u, p in pairs]

    def check(username: str, password: str) -> bool:
        given_user, given_password = (username or "").encode(), (password or "").encode()
        ok = False
        for user, pw in known:
            ok |= hmac.compare_digest(given_user, user) & hmac.compare_digest(given_password, pw)
        return ok

    return check


def exposure_auth(host: str, config: Config, insecure: bool = False) -> Callable[[str, str], bool] | None:
    """The auth callback for this bind address, or None for none; refuses an exposed, open server.

    Loopback needs nothing (credentials are still used if given). Any other address needs
    QA_AUTH / QA_AUTH_FILE, or `insecure=True`, which prints a warning.
    """
    pairs = load_credentials(config)
    if pairs:
        return password_check(pairs)
    if not is_loopback(host):
        if not insecure:
            raise ServeRefused(
                f"refusing to serve on {host} without authentication: anyone who can reach it could read and "
                "change the documents. Set QA_AUTH=user:password (or QA_AUTH_FILE=a file of user:password "
                "lines), bind 127.0.0.1, or pass --insecure to serve it open anyway."
            )
        print(
            f"qa serve: WARNING: serving on {host} WITHOUT authentication (--insecure): anyone who can reach "
            "this port can read the documents, ask questions and add or remove documents.",
            file=sys.stderr,
        )
    return None


def launch(demo: gr.Blocks, config: Config, *, host: str | None = None, port: int | None = None, **extra: Any) -> None:
    """Start the server with the app's limits and look; tests pass prevent_thread_lock/quiet/auth here.

    Serves no files from disk beyond Gradio's own assets and upload cache: no allowed_paths, and the
    index folder is blocked outright.
    """
    demo.launch(
        server_name=host or config.host,
        server_port=port or config.port,
        max_file_size=config.max_file_bytes,
        allowed_paths=[],
        blocked_paths=[str(Path(config.index_dir).resolve())],
        footer_links=["api"],
        ssr_mode=False,
        enable_monitoring=False,
        mcp_server=False,
        theme=gr.themes.Soft(),
        css=CSS,
        **extra,
    )


def serve(
    config: Config | None = None, *, host: str | None = None, port: int | None = None, insecure: bool = False
) -> None:
    """Build the index from the seeds if it is empty, then serve the chat (127.0.0.1 by default).

    Raises ServeRefused, before loading anything, for a non-loopback address without authentication.
    """
    config = config or Config.load()
    host = host or config.host
    auth = exposure_auth(host, config, insecure)
    from qa.pipeline import Pipeline  # here, so the rendering tests need not import the ML stack

    pipeline = Pipeline(config)
    pipeline.ensure_seeded()
    # The models load while Gradio builds and binds: the first question does not pay for them.
    threading.Thread(target=pipeline.warm_up, name="warm-up", daemon=True).start()
    launch(build_app(pipeline), config, host=host, port=port, auth=auth)
