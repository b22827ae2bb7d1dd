"""Scanned documents: pages without a text layer and images, read by OCR (qa.ocr, qa.ingest).

Pages are made from text we know (reportlab, rasterised by PDFium, turned, saved as an image-only
PDF, PNG or TIFF: conftest's `make_scan`), so what OCR must read is known. Tests that run
Tesseract are skipped, saying how to install it, where it is missing; CI installs it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa import ingest, ocr
from qa.ingest import IngestError, load_document, needs_ocr
from qa.read.evidence import Evidence
from qa.read.verdict import Candidate, _answer
from qa.retrieve import Hit
from qa.types import Document, SentenceRecord

needs_tesseract = pytest.mark.skipif(not ocr.available(), reason="tesseract missing: apt-get install tesseract-ocr")

PAGE_ONE = "Harbour report\nThe Orvik ferry carried 48,210 passengers in 2023.\nIts busiest month was July."
PAGE_TWO = "Lighthouse notes\nThe lighthouse keeper, Marta Lindqvist, retired in 1987.\nThe lamp was replaced in 1990."
LIMIT = 50 * 1024 * 1024


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test reads through an OCR cache of its own (and leaves the user's alone)."""
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def load(path: Path, **options) -> Document:
    return load_document(path, max_bytes=LIMIT, parse_timeout_s=60, **options)


def squeezed(text: str) -> str:
    return " ".join(text.split())


# --- without Tesseract --------------------------------------------------------------------------

TSV = "\n".join([
    "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext",
    "1\t1\t0\t0\t0\t0\t0\t0\t1000\t2000\t-1\t",
    "5\t1\t1\t1\t1\t1\t100\t200\t150\t40\t96.5\tThe",
    "5\t1\t1\t1\t1\t2\t260\t200\t200\t40\t41.0\tferrv",
    "5\t1\t1\t1\t2\t1\t100\t260\t120\t40\t90.0\tsailed.",
    "5\t1\t2\t1\t1\t1\t500\t900\t100\t40\t88.0\tNotes",
    "5\t1\t2\t1\t1\t2\t610\t900\t10\t40\t95.0\t ",
])


def test_tesseract_tsv_becomes_lines_blocks_and_word_boxes():
    page = ocr.parse_tsv(TSV)
    assert page.text == "The ferrv\nsailed.\n\nNotes"
    assert [page.text[w.start : w.start + len(w.text)] for w in page.words] == ["The", "ferrv", "sailed.", "Notes"]
    first = page.words[0]
    assert (first.left, first.top, first.right, first.bottom) == (0.1, 0.1, 0.25, 0.12)
    assert [w.text for w in page.words if w.confidence < ocr.UNSURE_BELOW] == ["ferrv"]  # read at 41
    assert page.mean_confidence == pytest.approx((96.5 + 41 + 90 + 88) / 4)


@pytest.mark.parametrize("text, scan", [
    ("", True),
    ("  \n 3 \n", True),  # a scan with a stamped page number
    ("\ufffd" * 40 + " ab", True),  # a broken font map
    ("Table 4 | 12.5 | 13.1 | 14.0 | 15.2 | 16.8", False),  # figures are text
    ("The ferry sails at nine.", False),
])
def test_which_pdf_pages_are_read_by_ocr(text: str, scan: bool):
    assert needs_ocr(text) is scan


@pytest.mark.parametrize("turn", [90, 180, 270])
def test_a_box_read_on_a_turned_page_is_put_back_where_it_stands(turn: int):
    """A point (x, y) of the page, turned clockwise, is where `_unturned` must bring it back from."""
    x, y = 0.2, 0.7
    turned = {90: (1 - y, x), 180: (1 - x, 1 - y), 270: (y, 1 - x)}[turn]
    word = ocr.OcrWord("w", 0, turned[0], turned[1], turned[0], turned[1], 90.0)
    back = ocr._unturned(word, turn)
    assert (back.left, back.top) == pytest.approx((x, y)) and (back.right, back.bottom) == pytest.approx((x, y))


def document_with(unsure: tuple[tuple[int, int], ...], ocr_pages: tuple[int, ...] = (1,)) -> Document:
    text = "The Orvik ferry carried 48,210 passengers in 2023."
    return Document("d" * 16, "Harbour", "scan.pdf", "/x/scan.pdf", text, (0,), "", ocr_pages, unsure)


def test_unsure_words_are_measured_over_a_span():
    doc = document_with(((24, 30),))  # "48,210"
    assert doc.unsure_share(24, 30) == 1.0 and doc.unsure_share(0, 48) == pytest.approx(6 / 48)
    assert doc.unsure_share(0, 10) == 0.0 and doc.read_by_ocr(5)
    assert not document_with((), ()).read_by_ocr(5)


class OneDocument:
    """The evidence source of one document (what the reader asks of an index view)."""

    def __init__(self, document: Document):
        self.doc = document

    def document(self, doc_id: str) -> Document:
        return self.doc

    def sentences(self, ids):
        return []


def answer_from(document: Document):
    sentence = SentenceRecord(1, 0, document.doc_id, 0, len(document.text), document.text, np.zeros(4, np.float32),
                              None, None)
    hit = Hit(0, 1.0, 1.0, 0, 0)
    evidence = Evidence([hit], [[sentence]], lambda terms: np.ones(len(terms)), OneDocument(document))
    return _answer(evidence, "How many passengers did the ferry carry?", Candidate(1, hit, 0.9), 0.8)


def test_an_answer_from_words_the_engine_was_unsure_of_is_less_certain():
    sure = answer_from(document_with(()))
    unsure = answer_from(document_with(((24, 27),)))  # "48," of "48,210"
    assert sure.answer == unsure.answer == "48,210"
    assert sure.score == 0.8 and unsure.score == pytest.approx(0.4)
    assert unsure.citations[0].ocr and sure.citations[0].ocr  # both pages were read by OCR
    assert not answer_from(document_with((), ())).citations[0].ocr


def test_without_tesseract_a_scan_is_refused_saying_how_to_install_it(make_scan, tmp_path, monkeypatch):
    scan = make_scan(tmp_path / "letter.pdf", [PAGE_ONE])
    monkeypatch.setattr(ocr, "available", lambda: False)
    for path in (scan, make_scan(tmp_path / "letter.png", [PAGE_ONE])):
        with pytest.raises(IngestError) as refused:
            load(path)
        assert "apt-get install tesseract-ocr" in refused.value.reason, refused.value.reason


def test_the_ocr_fields_survive_the_local_store(tmp_path: Path):
    from reliability_helpers import fake_pipeline

    from qa.embed import embed_documents

    doc = document_with(((24, 30),), (1,))
    pipeline = fake_pipeline(tmp_path / "index")
    with pipeline.store.lock():
        pipeline.store.commit(embed_documents(pipeline.embedder, [pipeline._chunked(doc)]), set())
    again = fake_pipeline(tmp_path / "index").document(doc.doc_id)
    assert again.ocr_pages == (1,) and again.unsure == ((24, 30),) and again.text == doc.text


def test_the_ocr_fields_fit_the_milvus_page_field():
    from qa.store.milvus import _page_field, _pages_of

    doc = document_with(((24, 30), (40, 44)), (1,))
    assert _pages_of(_page_field(doc)) == ((0,), (1,), ((24, 30), (40, 44)))
    plain = document_with((), ())
    assert json.loads(_page_field(plain)) == [0] and _pages_of(_page_field(plain)) == ((0,), (), ())


# --- with Tesseract -------------------------------------------------------------------------------


@needs_tesseract
def test_a_scanned_pdf_is_read_page_by_page(make_scan, tmp_path: Path):
    scan = make_scan(tmp_path / "harbour.pdf", [PAGE_ONE, PAGE_TWO])
    seen: list[tuple[int, int]] = []
    doc = load(scan, progress=lambda done, total: seen.append((done, total)))
    text = squeezed(doc.text)
    assert "The Orvik ferry carried 48,210 passengers in 2023." in text
    assert "Marta Lindqvist, retired in 1987." in text
    assert doc.pages == 2 and doc.ocr_pages == (1, 2)
    assert doc.page_at(doc.text.index("Lindqvist")) == 2 and doc.page_at(doc.text.index("48,210")) == 1
    assert seen[-1] == (2, 2) and sorted(seen) == seen


@needs_tesseract
@pytest.mark.parametrize("turn", [180, 90])
def test_a_page_scanned_upside_down_or_sideways_reads(make_scan, tmp_path: Path, turn: int):
    doc = load(make_scan(tmp_path / f"turned-{turn}.pdf", [PAGE_TWO], turn=turn))
    assert "Marta Lindqvist, retired in 1987." in squeezed(doc.text)


@needs_tesseract
def test_images_are_documents_one_page_per_frame(make_scan, tmp_path: Path):
    png = load(make_scan(tmp_path / "note.png", [PAGE_ONE]))
    assert "48,210 passengers" in png.text and png.pages == 1 and png.ocr_pages == (1,)
    tiff = load(make_scan(tmp_path / "bundle.tif", [PAGE_ONE, PAGE_TWO]))
    assert tiff.pages == 2 and tiff.page_at(tiff.text.index("Lindqvist")) == 2


@needs_tesseract
def test_a_pdf_with_text_and_scanned_pages_reads_only_the_scanned_one_by_ocr(make_pdf, make_scan, tmp_path: Path):
    from pypdf import PdfReader, PdfWriter

    typed = make_pdf(tmp_path / "typed.pdf", [PAGE_ONE])
    scanned = make_scan(tmp_path / "scanned.pdf", [PAGE_TWO])
    writer = PdfWriter()
    for part in (typed, scanned):
        for page in PdfReader(part).pages:
            writer.add_page(page)
    mixed = tmp_path / "mixed.pdf"
    with mixed.open("wb") as out:
        writer.write(out)
    doc = load(mixed)
    assert doc.ocr_pages == (2,)
    assert doc.text[: doc.page_starts[1]].strip() == load(typed).text.strip()  # the typed page as before
    assert "Marta Lindqvist" in doc.text[doc.page_starts[1] :]


@needs_tesseract
def test_a_page_is_read_once_then_comes_from_the_cache(make_scan, tmp_path: Path, monkeypatch, own_cache: Path):
    scan = make_scan(tmp_path / "harbour.pdf", [PAGE_ONE])
    first = load(scan)
    assert list((own_cache / "ocr").glob("*.json"))

    def no_engine(*args, **kwargs):
        raise AssertionError("Tesseract ran again")

    monkeypatch.setattr(ocr, "_tesseract", no_engine)
    assert load(scan) == first


@needs_tesseract
def test_the_page_view_boxes_the_quote_on_a_scan(make_scan, tmp_path: Path):
    from qa import pageview

    scan = make_scan(tmp_path / "harbour.pdf", [PAGE_ONE, PAGE_TWO])
    doc = load(scan)
    page = pageview.render(scan, 2)
    assert "Lindqvist" in page.text and page.width == pageview.PAGE_WIDTH_PX
    quote = "The lighthouse keeper, Marta Lindqvist, retired in 1987."
    highlight = pageview.locate(page, quote, None, 0.3)
    assert highlight is not None and highlight.whole and len(highlight.quote) == 1
    box = highlight.quote[0]
    assert 0 < box.left < box.right < 1 and 0 < box.top < box.bottom < 0.5  # near the top of the page
    png = make_scan(tmp_path / "note.png", [PAGE_TWO])
    load(png)
    assert pageview.locate(pageview.render(png, 1), quote, None, 0.3) is not None
    assert doc.ocr_pages == (1, 2)


@needs_tesseract
@pytest.mark.e2e
def test_a_scanned_page_answers_with_its_page_and_says_it_was_read_by_ocr(make_scan, tmp_path: Path):
    from qa.config import Config
    from qa.pipeline import Pipeline

    scan = make_scan(tmp_path / "harbour.pdf", [PAGE_ONE, PAGE_TWO])
    pipeline = Pipeline(Config.load(index_dir=tmp_path / "index", seeds_dir=tmp_path / "no-seeds"))
    progress: list[str] = []
    [result] = pipeline.add([scan], progress=lambda done, total, name: progress.append(name))
    assert result.status == "added"
    assert "harbour.pdf: OCR page 2 of 2" in progress and progress[-1] == "harbour.pdf"
    answer = pipeline.ask("When did the lighthouse keeper retire?")
    assert answer.answered and "1987" in answer.answer
    citation = answer.citations[0]
    assert citation.page == 2 and citation.ocr
    assert pipeline.document(citation.doc_id).text[citation.start : citation.end] == answer.quote


SCANS = Path(__file__).parent / "data" / "scans"


@needs_tesseract
@pytest.mark.e2e
@pytest.mark.parametrize("name, question, expected", [
    ("linnsequencer-brochure-skewed-scan.pdf", "What does the disk drive store in seconds?", "complex songs"),
    ("dickens-tale-of-two-cities-page-scan.pdf", "Who was on the throne of France?", "a queen with a fair face"),
])
def test_real_scans_answer_from_their_page(tmp_path: Path, name: str, question: str, expected: str):
    """Two real scans from OCRmyPDF's test files (tests/data/scans/README.md): a skewed bilevel
    brochure and a low-resolution book page."""
    from qa.config import Config
    from qa.pipeline import Pipeline

    pipeline = Pipeline(Config.load(index_dir=tmp_path / "index", seeds_dir=tmp_path / "no-seeds"))
    assert [r.status for r in pipeline.add([SCANS / name])] == ["added"]
    answer = pipeline.ask(question)
    assert answer.answered and expected.lower() in " ".join(answer.quote.split()).lower()
    assert answer.citations[0].page == 1 and answer.citations[0].ocr
