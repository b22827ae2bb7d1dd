"""Sentence splitting and chunking: offsets into the document, boundaries, sizes and pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qa.chunk import chunk_document, split_sentences
from qa.types import Chunk, Document, Span

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "seeds" / "allies-forge-ahead-on-ukraine-peace-plan.txt"


def sentences(text: str, start: int = 0, end: int | None = None) -> list[str]:
    spans = split_sentences(text, start, end)
    assert_clean_spans(text, spans)
    return [text[s.start : s.end] for s in spans]


def assert_clean_spans(text: str, spans: list[Span]) -> None:
    """Spans are in order, do not overlap, are non-empty and carry no surrounding whitespace."""
    previous_end = 0
    for span in spans:
        assert previous_end <= span.start < span.end <= len(text), (span, previous_end)
        piece = text[span.start : span.end]
        assert piece == piece.strip(), repr(piece)
        previous_end = span.end


def doc(text: str, page_starts: tuple[int, ...] = (), doc_id: str = "d1") -> Document:
    return Document(doc_id=doc_id, title="T", source="t.txt", path="/x/t.txt", text=text, page_starts=page_starts)


def sentence_of(words: int, first: str = "Alpha") -> str:
    """A sentence of exactly `words` whitespace-separated words, capitalised so it stands alone."""
    assert words >= 2
    return " ".join([first] + ["word"] * (words - 2) + ["end."])


def n_words(text: str) -> int:
    return len(re.findall(r"\S+", text))


def check_chunks(d: Document, chunks: list[Chunk], max_words: int) -> None:
    """The invariants every chunking must keep."""
    previous_end = 0
    all_sentences: list[Span] = []
    for c in chunks:
        assert c.doc_id == d.doc_id
        assert c.text == d.text[c.start : c.end]
        assert c.sentences, "a chunk holds at least one sentence"
        assert c.start == c.sentences[0].start and c.end == c.sentences[-1].end
        assert c.start >= previous_end, "chunks in order, without overlap"
        for s in c.sentences:
            assert c.start <= s.start < s.end <= c.end
        assert_clean_spans(d.text, list(c.sentences))
        if len(c.sentences) > 1:
            assert n_words(c.text) <= max_words, (n_words(c.text), c.text[:80])
        assert c.page == d.page_at(c.start)
        previous_end = c.end
        all_sentences.extend(c.sentences)
    assert_clean_spans(d.text, all_sentences)


# --- split_sentences ---------------------------------------------------------------------------


def test_abbreviations_and_initials_do_not_end_sentences():
    text = "The U.S. Congress met on Monday. Dr. Smith spoke with J. R. R. Tolkien about it. Then they left."
    assert sentences(text) == [
        "The U.S. Congress met on Monday.",
        "Dr. Smith spoke with J. R. R. Tolkien about it.",
        "Then they left.",
    ]


def test_quoted_speech_with_said_stays_one_sentence():
    text = '"We will not give up," said Dr. Jones. He then left the room. "Never," she replied.'
    assert sentences(text) == [
        '"We will not give up," said Dr. Jones.',
        "He then left the room.",
        '"Never," she replied.',
    ]


def test_spans_are_document_offsets_without_surrounding_whitespace():
    text = "   Leading space here.  Second one follows.  \n\n\t  A new paragraph.   \n"
    spans = split_sentences(text)
    assert [text[s.start : s.end] for s in spans] == [
        "Leading space here.",
        "Second one follows.",
        "A new paragraph.",
    ]
    assert spans[0].start == 3


def test_split_sentences_of_a_range_uses_document_offsets():
    head = "Ignored first sentence. "
    body = "Wanted one here. Wanted two here."
    text = head + body + " Ignored tail."
    spans = split_sentences(text, len(head), len(head) + len(body))
    assert [text[s.start : s.end] for s in spans] == ["Wanted one here.", "Wanted two here."]
    assert spans[0].start == len(head)


def test_blank_lines_separate_paragraphs_even_without_final_punctuation():
    text = "First paragraph has no full stop\n\nSecond paragraph starts here"
    assert sentences(text) == ["First paragraph has no full stop", "Second paragraph starts here"]


def test_bullets_and_headings_are_boundaries():
    text = (
        "# Heading One\n"
        "Intro line without a stop\n"
        "- a first bullet\n"
        "* b second bullet\n"
        "1. c third bullet\n"
        "## Second heading\n"
        "Body text here."
    )
    assert sentences(text) == [
        "# Heading One",
        "Intro line without a stop",
        "- a first bullet",
        "* b second bullet",
        "1. c third bullet",
        "## Second heading",
        "Body text here.",
    ]


def test_hard_wrapped_line_is_not_a_boundary():
    text = (
        "The Digital Millennium Copyright Act was signed into law by\n"
        "President Clinton on October 28, 1998. The legislation implements two\n"
        "treaties of the World Intellectual Property Organization."
    )
    assert sentences(text) == [
        "The Digital Millennium Copyright Act was signed into law by\nPresident Clinton on October 28, 1998.",
        "The legislation implements two\ntreaties of the World Intellectual Property Organization.",
    ]


@pytest.mark.parametrize(
    "first_line, second_line",
    [
        ("The Digital Millennium Copyright Act (DMCA)", "was signed into law in 1998."),
        ("Troops from the U.S.", "and France were present at the summit."),
        ("The act adds a new section 512;", "it limits the liability of providers."),
    ],
)
def test_line_ending_in_punctuation_then_lowercase_continuation_is_a_hard_wrap(first_line, second_line):
    """A PDF line may end mid-sentence on ')', 'U.S.' or ';': a lowercase next line continues it."""
    text = f"{first_line}\n{second_line}"
    assert sentences(text) == [text]


def test_short_title_case_line_followed_by_capitalised_line_is_a_title():
    text = "Executive Summary of the Act\nThe law has five titles. It is long."
    assert sentences(text) == ["Executive Summary of the Act", "The law has five titles.", "It is long."]


def test_empty_and_whitespace_text_has_no_sentences():
    assert split_sentences("") == []
    assert split_sentences("  \n\n\t \n") == []


# --- chunk_document ----------------------------------------------------------------------------


def test_empty_or_whitespace_document_has_no_chunks():
    assert chunk_document(doc("")) == []
    assert chunk_document(doc("   \n\n  \t\n")) == []
    assert chunk_document(doc("", page_starts=(0,))) == []
    assert chunk_document(doc("  \n \n", page_starts=(0, 3))) == []


def test_short_paragraphs_are_packed_together_in_order():
    paragraphs = [sentence_of(10, f"Para{i}") for i in range(6)]  # 60 words in all
    d = doc("\n\n".join(paragraphs))
    chunks = chunk_document(d, max_words=35)
    check_chunks(d, chunks, 35)
    # 10-word paragraphs packed three to a chunk (30 <= 35), never split.
    assert [len(c.sentences) for c in chunks] == [3, 3]
    assert [d.text[s.start : s.end] for c in chunks for s in c.sentences] == paragraphs


def test_all_sentences_of_a_document_are_covered_once():
    d = doc(SEED.read_text(encoding="utf-8"))
    chunks = chunk_document(d, max_words=60)
    check_chunks(d, chunks, 60)
    in_chunks = [s for c in chunks for s in c.sentences]
    assert in_chunks == split_sentences(d.text)


def test_long_paragraph_is_split_into_balanced_pieces_under_the_limit():
    # 10 sentences of 13 words = 130 words > 120: two pieces of about 65 words, not 117 + 13.
    paragraph = " ".join(sentence_of(13) for _ in range(10))
    d = doc("Intro sentence here.\n\n" + paragraph)
    chunks = chunk_document(d, max_words=120)
    check_chunks(d, chunks, 120)
    long_chunks = [c for c in chunks if c.start >= d.text.index("Alpha")]
    sizes = [n_words(c.text) for c in long_chunks]
    assert sum(sizes) == 130
    assert len(sizes) == 2
    assert max(sizes) <= 1.5 * min(sizes), sizes


def test_long_paragraph_split_has_no_tiny_leftover_piece():
    # 6 sentences of 35 words + one of 20 = 230 words: three pieces are needed (two cannot hold it
    # under 120), and three balanced ones exist (70/70/90), so no piece should be a 20-word scrap.
    paragraph = " ".join([sentence_of(35) for _ in range(6)] + [sentence_of(20, "Omega")])
    d = doc(paragraph)
    chunks = chunk_document(d, max_words=120)
    check_chunks(d, chunks, 120)
    sizes = [n_words(c.text) for c in chunks]
    assert sum(sizes) == 230
    assert len(sizes) == 3, sizes
    assert max(sizes) <= 2 * min(sizes), f"unbalanced pieces {sizes}"


def test_single_sentence_longer_than_max_words_is_its_own_chunk():
    huge = sentence_of(200, "Huge")
    d = doc(f"Short one here. {huge} Short two here.")
    chunks = chunk_document(d, max_words=50)
    check_chunks(d, chunks, 50)
    assert [d.text[c.start : c.end] for c in chunks] == ["Short one here.", huge, "Short two here."]


def test_every_chunk_respects_max_words_unless_single_sentence():
    parts = []
    for i, n in enumerate([5, 40, 12, 90, 7, 33, 61, 3, 150, 18]):
        parts.append(sentence_of(max(n, 2), f"S{i}"))
        if i % 3 == 2:
            parts.append("\n\n")
    d = doc(" ".join(parts))
    for max_words in (20, 50, 120):
        chunks = chunk_document(d, max_words=max_words)
        check_chunks(d, chunks, max_words)
        assert sum(len(c.sentences) for c in chunks) == len(split_sentences(d.text))


def _paged(pages: list[str], sep: str = "\n") -> Document:
    text, starts = "", []
    for i, page in enumerate(pages):
        starts.append(len(text))
        text += page + (sep if i < len(pages) - 1 else "")
    return doc(text, tuple(starts))


def test_chunks_never_cross_a_page_and_carry_the_right_page():
    pages = [
        "Page one first sentence. Page one second sentence.",
        "Page two starts with a short line. It has more here.",
        "",  # an empty page (a scanned image, say)
        "Page four sentence one. Page four sentence two. Page four sentence three.",
    ]
    d = _paged(pages)
    chunks = chunk_document(d, max_words=120)  # everything would fit in one chunk without pages
    check_chunks(d, chunks, 120)
    bounds = list(d.page_starts[1:]) + [len(d.text)]
    for c in chunks:
        page = c.page
        assert page is not None
        assert d.page_starts[page - 1] <= c.start and c.end <= bounds[page - 1], (c.page, c.text)
        assert c.text.startswith(f"Page {['one', 'two', 'three', 'four'][page - 1]}")
    assert [c.page for c in chunks] == [1, 2, 4]


def test_sentence_wrapped_across_a_page_break_is_cut_at_the_page():
    d = _paged(["The treaty was signed by", "President Clinton on October 28, 1998. More follows."])
    chunks = chunk_document(d, max_words=120)
    check_chunks(d, chunks, 120)
    assert [(c.page, c.text) for c in chunks] == [
        (1, "The treaty was signed by"),
        (2, "President Clinton on October 28, 1998. More follows."),
    ]


def test_pages_without_separator_between_them():
    """Extracted pages may abut: a chunk ending exactly where the next page starts is still on its page."""
    d = _paged(["First page sentence.", "Second page sentence.", "Third page sentence."], sep="")
    assert d.text == "First page sentence.Second page sentence.Third page sentence."
    chunks = chunk_document(d, max_words=120)
    check_chunks(d, chunks, 120)
    assert [(c.page, c.text) for c in chunks] == [
        (1, "First page sentence."),
        (2, "Second page sentence."),
        (3, "Third page sentence."),
    ]


def test_many_pages_page_numbers_are_one_based():
    pages = [f"Sentence on page number {i + 1}. Another sentence on it." for i in range(7)]
    d = _paged(pages, sep="\n\n")
    chunks = chunk_document(d, max_words=500)
    check_chunks(d, chunks, 500)
    assert [c.page for c in chunks] == list(range(1, 8))
    for c in chunks:
        assert f"page number {c.page}." in c.text


def test_documents_without_pages_have_no_page():
    d = doc("One sentence. Two sentence.")
    chunks = chunk_document(d)
    assert chunks and all(c.page is None for c in chunks)


def test_seed_document_keeps_the_kallas_quote_in_one_sentence():
    text = SEED.read_text(encoding="utf-8")
    d = doc(text)
    chunks = chunk_document(d)
    check_chunks(d, chunks, 120)
    found = [
        (c, s)
        for c in chunks
        for s in c.sentences
        if "At the moment there is no peace to keep" in text[s.start : s.end]
    ]
    assert len(found) == 1
    chunk, span = found[0]
    sentence = text[span.start : span.end]
    assert sentence.startswith("- No Peace to Keep")
    assert sentence.endswith("can occur.")
    line = next(line for line in text.splitlines() if "no peace to keep" in line)
    assert sentence == line.strip()
    assert chunk.start <= span.start and span.end <= chunk.end
