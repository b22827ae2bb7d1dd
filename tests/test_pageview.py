"""The page view (qa.pageview): a PDF page drawn, the quote found on it and boxed where its ink is.

Real PDFs made with reportlab (and one turned by pypdf), drawn by PDFium in a child process; the
boxes are checked against the drawn pixels, so a box in the wrong place fails.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from qa import pageview
from qa.ingest import load_document

LINES = [
    "Harbour Logistics Review for the northern district.",
    "The night shift at the grain terminal starts at nine in the evening.",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "",
    "The Zephyr reservoir project has a total budget of 42 million euros,",
    "approved by the regional council in March after a long debate.",
]
QUOTE = (
    "The Zephyr reservoir project has a total budget of 42 million euros, approved by the regional "
    "council in March after a long debate."
)


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test draws into its own cache folder, with nothing remembered in memory."""
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(pageview, "_memory", type(pageview._memory)())
    return tmp_path / "cache"


@pytest.fixture
def review(make_pdf, tmp_path: Path) -> Path:
    return make_pdf(tmp_path / "review.pdf", ["\n".join(LINES), "Second page. Staffing is unchanged this year."])


def image_of(page: pageview.RenderedPage) -> Image.Image:
    return Image.open(io.BytesIO(page.image)).convert("L")


def ink(image: Image.Image, box: pageview.Box) -> int:
    """The darkest pixel inside `box` (0 black, 255 white)."""
    w, h = image.size
    region = image.crop((int(box.left * w), int(box.top * h), int(box.right * w) + 1, int(box.bottom * h) + 1))
    return region.getextrema()[0]


def test_a_page_is_drawn_with_its_text_and_character_boxes(review: Path) -> None:
    page = pageview.render(review, 1)
    image = image_of(page)
    assert image.size == (page.width, page.height) and page.width == pytest.approx(pageview.PAGE_WIDTH_PX, abs=1)
    assert page.height == pytest.approx(page.width * 842 / 595, abs=2)  # A4, upright
    assert "grain terminal" in page.text and len(page.boxes) == len(page.text)
    assert page.rotation == 0
    letters = [b for ch, b in zip(page.text, page.boxes) if ch.isalnum()]
    assert letters and all(b is not None and 0 <= b.left < b.right <= 1 and 0 <= b.top < b.bottom <= 1 for b in letters)


def test_the_quote_is_boxed_line_by_line_where_its_ink_is(review: Path) -> None:
    page = pageview.render(review, 1)
    image = image_of(page)
    found = pageview.locate(page, QUOTE, (QUOTE.index("42"), QUOTE.index(" euros")), position=0.6)
    assert found is not None and found.whole
    assert len(found.quote) == 2  # the two printed lines
    first, second = found.quote
    assert first.bottom <= second.top + 0.002 and first.left == pytest.approx(second.left, abs=0.01)
    assert all(ink(image, box) < 100 for box in found.quote)
    # The quote is far below the first line of the page (ten blank lines above it).
    top_line = pageview.locate(page, LINES[0], None, position=0.0)
    assert top_line is not None and top_line.quote[0].bottom < first.top - 0.1
    # The short answer: one box inside the first line's, narrower.
    (answer,) = found.answer
    assert first.left < answer.left < answer.right < first.right
    assert first.top - 0.002 <= answer.top and answer.bottom <= first.bottom + 0.002
    assert ink(image, answer) < 100


def test_the_stored_text_is_found_though_ingestion_joined_its_lines(review: Path) -> None:
    """The quote as the index holds it (lines joined into a paragraph) is found on the page PDFium reads."""
    doc = load_document(review, max_bytes=10**7, parse_timeout_s=60)
    start = doc.text.index("The Zephyr")
    end = doc.text.index("debate.") + len("debate.")
    found = pageview.locate(pageview.render(review, 1), doc.text[start:end], None, position=0.5)
    assert found is not None and found.whole and len(found.quote) == 2


def test_of_two_places_the_one_nearest_the_stored_position_is_taken(make_pdf, tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "twice.pdf", ["Budget approved in March.\n" + "\n" * 20 + "Budget approved in March."])
    page = pageview.render(pdf, 1)
    high = pageview.locate(page, "Budget approved in March.", None, position=0.0)
    low = pageview.locate(page, "Budget approved in March.", None, position=0.9)
    assert high is not None and low is not None
    assert high.quote[0].bottom < low.quote[0].top


def test_a_quote_running_on_to_the_next_page_is_boxed_on_this_one(review: Path) -> None:
    found = pageview.locate(pageview.render(review, 1), QUOTE + " Second page. Staffing is unchanged", None, 0.6)
    assert found is not None and not found.whole and len(found.quote) == 2


def test_a_quote_the_page_does_not_hold_finds_nothing(review: Path) -> None:
    page = pageview.render(review, 1)
    assert pageview.locate(page, "The tunnel project was cancelled by the council last spring.", None, 0.5) is None
    assert pageview.locate(page, "…", None, 0.5) is None  # no letters at all


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_a_turned_page_has_its_boxes_turned_with_it(make_pdf, tmp_path: Path, rotation: int) -> None:
    from pypdf import PdfReader, PdfWriter

    upright = make_pdf(tmp_path / "upright.pdf", ["\n".join(LINES)])
    writer = PdfWriter()
    writer.add_page(PdfReader(upright).pages[0])
    writer.pages[0].rotate(rotation)
    turned = tmp_path / "turned.pdf"
    with turned.open("wb") as f:
        writer.write(f)
    page = pageview.render(turned, 1)
    assert page.rotation == rotation and (page.width > page.height) == (rotation != 180)  # landscape if turned a quarter
    found = pageview.locate(page, QUOTE, None, 0.6)
    assert found is not None and len(found.quote) == 2
    image = image_of(page)
    assert all(ink(image, box) < 100 for box in found.quote)
    # Lines run down (or up) a page turned a quarter, across one turned upside down.
    assert all((box.bottom - box.top > box.right - box.left) == (rotation != 180) for box in found.quote)


def test_pages_are_cached_on_disk_and_drawn_again_when_the_file_changes(
    review: Path, fresh_cache: Path, make_pdf, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = pageview.render(review, 1)
    assert len(list((fresh_cache / "pages").glob("*.webp"))) == 1
    assert pageview.render(review, 1) is first  # from memory
    monkeypatch.setattr(pageview, "_memory", type(pageview._memory)())

    def no_drawing(*args, **kwargs):
        raise AssertionError("drawn again although cached")

    monkeypatch.setattr("qa.ingest.call_in_child", no_drawing)
    again = pageview.render(review, 1)  # from disk
    assert again.image == first.image and again.boxes == first.boxes
    monkeypatch.undo()
    monkeypatch.setenv("QA_CACHE_DIR", str(fresh_cache))
    make_pdf(review, ["Another text entirely."])  # same path, new content
    assert "Another text" in pageview.render(review, 1).text


def test_the_disk_cache_keeps_the_newest_pages(review: Path, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pageview, "PAGES_ON_DISK", 1)
    pageview.render(review, 1)
    pageview.render(review, 2)
    (kept,) = (fresh_cache / "pages").glob("*.json")
    assert kept.name.endswith(f"-p2-w{pageview.PAGE_WIDTH_PX}.json") and len(list((fresh_cache / "pages").glob("*.webp"))) == 1


def test_a_damaged_cache_entry_is_drawn_again(review: Path, fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pageview.render(review, 1)
    (json_file,) = (fresh_cache / "pages").glob("*.json")
    json_file.write_text("{not json")
    monkeypatch.setattr(pageview, "_memory", type(pageview._memory)())
    assert "grain terminal" in pageview.render(review, 1).text


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("missing", r"cannot read gone\.pdf .*moved or deleted"),
        ("not a pdf", r"cannot draw page 1 of fake\.pdf"),
        ("no such page", r"no page 3 \(the file has 2\)"),
    ],
)
def test_a_page_that_cannot_be_drawn_says_why(review: Path, tmp_path: Path, case: str, reason: str) -> None:
    if case == "missing":
        path, number = tmp_path / "gone.pdf", 1
    elif case == "not a pdf":
        path, number = tmp_path / "fake.pdf", 1
        path.write_text("<html>not a PDF</html>")
    else:
        path, number = review, 3
    with pytest.raises(pageview.PageViewError, match=reason):
        pageview.render(path, number)
