"""Split a document into sentences and pack them into chunks that fit the embedding window.

all-MiniLM-L6-v2 reads at most 256 word pieces and silently drops the rest, so a chunk holds
whole sentences up to about `max_words` words. Chunks never cross a paragraph that is long
enough to stand alone, nor a page, so a citation's page is the page the words are on.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import syntok.segmenter as segmenter

from qa.types import Chunk, Document, Span

_BULLET = re.compile(r"\s*(?:[-*•–]\s|\d{1,3}[.)]\s|#{1,6}\s)")
_ENDS_BLOCK = re.compile(r"[.!?:;\"'”’)\]]\s*$")
_WORD = re.compile(r"\S+")
_SMALL_WORDS = {"a", "an", "and", "as", "at", "by", "for", "in", "of", "on", "or", "the", "to", "with", "vs", "via"}


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[Span]:
    """Sentence spans of text[start:end], in document offsets, never crossing a paragraph."""
    spans: list[Span] = []
    for block in _blocks(text, start, len(text) if end is None else end):
        spans.extend(_segment(text, block))
    return spans


def chunk_document(doc: Document, max_words: int = 120) -> list[Chunk]:
    chunks: list[Chunk] = []
    page_bounds = list(doc.page_starts[1:]) + [len(doc.text)] if doc.page_starts else [len(doc.text)]
    page_start = 0
    for page_end in page_bounds:
        paragraphs = [p for p in (_segment(doc.text, b) for b in _blocks(doc.text, page_start, page_end)) if p]
        for group in _pack(doc.text, paragraphs, max_words):
            start, end = group[0].start, group[-1].end
            chunks.append(
                Chunk(
                    doc_id=doc.doc_id,
                    start=start,
                    end=end,
                    text=doc.text[start:end],
                    page=doc.page_at(start),
                    sentences=tuple(group),
                )
            )
        page_start = page_end
    return chunks


def _blocks(text: str, start: int, end: int) -> Iterator[Span]:
    """Paragraph-like blocks: blank lines, bullets, headings and lines that end a sentence.

    A line that ends mid-sentence (a hard wrap, as in PDFs) joins the next line.
    """
    block_start: int | None = None
    pos = start
    while pos < end:
        nl = text.find("\n", pos, end)
        line_end = end if nl == -1 else nl
        line = text[pos:line_end]
        if line.strip():
            if block_start is not None and _BULLET.match(line):
                yield Span(block_start, _rstrip(text, block_start, pos))
                block_start = None
            if block_start is None:
                block_start = pos
            ends = _ENDS_BLOCK.search(line) and not _continues(text, line_end, end)
            if ends or line.lstrip().startswith("#") or _is_heading(line, text, line_end, end):
                yield Span(block_start, _rstrip(text, block_start, line_end))
                block_start = None
        elif block_start is not None:
            yield Span(block_start, _rstrip(text, block_start, pos))
            block_start = None
        pos = line_end + 1
    if block_start is not None:
        yield Span(block_start, _rstrip(text, block_start, end))


def _continues(text: str, line_end: int, end: int) -> bool:
    """The next line starts in lower case: the sentence goes on across a hard wrap."""
    following = text[line_end + 1 : min(end, line_end + 40)].lstrip(" \t")
    return bool(following) and following[0].islower()


def _is_heading(line: str, text: str, line_end: int, end: int) -> bool:
    """A short title-case line followed by a capitalised line is a title, not a hard wrap."""
    words = [w for w in _WORD.findall(line) if w[0].isalpha()]
    if not words or len(words) > 16:
        return False
    capitalised = sum(w[0].isupper() for w in words if w.lower() not in _SMALL_WORDS)
    if capitalised < 0.8 * sum(w.lower() not in _SMALL_WORDS for w in words):
        return False
    following = text[line_end + 1 : min(end, line_end + 40)].lstrip()
    return bool(following) and following[0].isupper()


def _rstrip(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1].isspace():
        end -= 1
    return end


def _segment(text: str, block: Span) -> list[Span]:
    piece = text[block.start : block.end]
    spans = []
    for paragraph in segmenter.analyze(piece):
        for sentence in paragraph:
            tokens = list(sentence)
            if tokens:
                first, last = tokens[0], tokens[-1]
                spans.append(Span(block.start + first.offset, block.start + last.offset + len(last.value)))
    return spans


def _words(text: str, span: Span) -> int:
    return len(_WORD.findall(text, span.start, span.end))


def _pack(text: str, paragraphs: list[list[Span]], max_words: int) -> Iterator[list[Span]]:
    """Greedily join short paragraphs; split long ones into balanced runs of sentences."""
    group: list[Span] = []
    group_words = 0
    for sentences in paragraphs:
        words = sum(_words(text, s) for s in sentences)
        if words > max_words:
            if group:
                yield group
                group, group_words = [], 0
            yield from _split_balanced(text, sentences, words, max_words)
            continue
        if group and group_words + words > max_words:
            yield group
            group, group_words = [], 0
        group.extend(sentences)
        group_words += words
    if group:
        yield group


def _split_balanced(text: str, sentences: list[Span], words: int, max_words: int) -> Iterator[list[Span]]:
    """The fewest pieces under max_words, cut at the sentence ends nearest k * words / pieces."""
    sizes = [_words(text, s) for s in sentences]
    ends = np.cumsum(sizes)
    for pieces in range(-(-words // max_words), len(sentences)):
        cuts = sorted({int(np.abs(ends - k * words / pieces).argmin()) + 1 for k in range(1, pieces)} | {len(sentences)})
        bounds = list(zip([0, *cuts[:-1]], cuts))
        if all(ends[b - 1] - (ends[a - 1] if a else 0) <= max_words or b - a == 1 for a, b in bounds):
            break
    else:
        bounds = [(i, i + 1) for i in range(len(sentences))]
    for a, b in bounds:
        yield sentences[a:b]
