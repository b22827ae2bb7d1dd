"""The quote on the page: one PDF page (or image) rendered as an image, with boxes around the quote's lines.

pypdf, the parser, cannot draw a page; PDFium (pypdfium2, the engine of Chrome's PDF viewer)
renders it and gives each character's box. A page is rendered only when someone asks for it, in
a child process (a PDF that hangs or crashes the renderer costs one refused view, not the server),
and kept: in memory for the last few pages and on disk under the cache folder, named by the
file's SHA-256, so a changed file is rendered afresh. A scanned page (no usable text layer) and
an image take their text and each word's box from OCR (`qa.ocr.page_of`, cached when the file was
added), so the quote is boxed on the scan the same way.

The stored text is not PDFium's: ingestion joined lines, repaired hyphens and dropped page
furniture (qa.pdftext). So a quote is found on the page by its letters and digits alone, and
where it runs on to the next page, by its longest part that stands on this one. A quote not found
at all means the file changed since it was indexed: the page is shown without boxes and says so.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from qa.config import cache_root
from qa.ocr import turned

# Rendered this many pixels wide (about 170 dpi on a Letter page): sharp when a phone zooms to the
# quote, and ~150 KB as WebP for a page of text (measured on the realdocs PDFs).
PAGE_WIDTH_PX = 1400
WEBP_QUALITY = 80
RENDER_TIMEOUT_S = 30.0
PAGES_IN_MEMORY = 16
# Pages kept on disk (~200 KB each with their character boxes); the least recently drawn go first.
PAGES_ON_DISK = 500
# A quote counts as found on its page when this many of its letters and digits (or all of them,
# for a shorter quote) match in a row; fewer could be a chance match somewhere else on the page.
MIN_MATCH_CHARS = 20


class PageViewError(Exception):
    """The page cannot be shown (file gone, not a PDF any more, no such page, renderer failed)."""


@dataclass(frozen=True)
class Box:
    """A rectangle as fractions of a page (0..1 from the top left), so any zoom can draw it."""

    left: float
    top: float
    right: float
    bottom: float


@dataclass(frozen=True)
class RenderedPage:
    """One page drawn: the WebP image, PDFium's text of the page, and each character's box (None
    for spaces and the line breaks PDFium adds) as fractions of the page before it is turned by
    `rotation` degrees clockwise, as the image shows it."""

    image: bytes
    width: int
    height: int
    text: str
    boxes: tuple[Box | None, ...]
    rotation: int = 0

    @property
    def data_uri(self) -> str:
        return "data:image/webp;base64," + base64.b64encode(self.image).decode("ascii")


@dataclass(frozen=True)
class Highlight:
    """Where a quote (and its short answer) stand on the page as drawn: one box per line."""

    quote: tuple[Box, ...]
    answer: tuple[Box, ...]
    whole: bool  # False: only the start of the quote is on this page (or found on it)


# ---------------------------------------------------------------- rendering (in a child process)


def _draw(path: str, page_number: int, width_px: int) -> tuple[bytes, int, int, str, list, int]:
    """Runs in the child: (WebP bytes, width, height, text, per-character boxes, rotation). A
    page without a usable text layer (a scan) and an image take their text and boxes from OCR."""
    from qa.ingest import needs_ocr
    from qa.ocr import IMAGE_SUFFIXES

    if Path(path).suffix.lower() in IMAGE_SUFFIXES:
        return (*_draw_image(path, page_number, width_px), *_ocr_text(path, page_number), 0)
    drawn = _draw_pdf(path, page_number, width_px)
    if needs_ocr(drawn[3]):
        return (*drawn[:3], *_ocr_text(path, page_number), 0)  # OCR read the page as drawn, turned
    return drawn


def _draw_image(path: str, page_number: int, width_px: int) -> tuple[bytes, int, int]:
    import io

    from PIL import Image, ImageSequence

    from qa.ocr import upright

    Image.MAX_IMAGE_PIXELS = None  # a huge scan is drawn scaled down, like its OCR
    with Image.open(path) as image:
        frames = getattr(image, "n_frames", 1)
        if not 1 <= page_number <= frames:
            raise ValueError(f"no page {page_number} (the file has {frames})")
        frame = upright(next(f for n, f in enumerate(ImageSequence.Iterator(image), 1) if n == page_number)).convert("RGB")
        frame.thumbnail((width_px, width_px * 4))
        encoded = io.BytesIO()
        frame.save(encoded, "WEBP", quality=WEBP_QUALITY)
        return encoded.getvalue(), frame.width, frame.height


def _ocr_text(path: str, page_number: int) -> tuple[str, list]:
    """The OCR's text of the page and a box per character: a word's box shared out along it."""
    from qa.ocr import page_of

    page = page_of(Path(path), page_number)
    boxes: list = [None] * len(page.text)
    for word in page.words:
        step = (word.right - word.left) / max(1, len(word.text))
        for k in range(len(word.text)):
            x0 = word.left + k * step
            boxes[word.start + k] = [round(v, 5) for v in (x0, word.top, x0 + step, word.bottom)]
    return page.text, boxes


def _draw_pdf(path: str, page_number: int, width_px: int) -> tuple[bytes, int, int, str, list, int]:
    import io

    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(path)
    if not 1 <= page_number <= len(pdf):
        raise ValueError(f"no page {page_number} (the file has {len(pdf)})")
    page = pdf[page_number - 1]
    left, bottom, right, top = page.get_cropbox()
    rotation = page.get_rotation()
    upright_width = (top - bottom) if rotation in (90, 270) else (right - left)
    image = page.render(scale=width_px / upright_width).to_pil()
    encoded = io.BytesIO()
    image.save(encoded, "WEBP", quality=WEBP_QUALITY)
    text_page = page.get_textpage()
    count = text_page.count_chars()
    text = text_page.get_text_range(0, count)
    boxes: list = []
    for index in range(count):
        l, b, r, t = text_page.get_charbox(index, loose=True)
        if r <= l or t <= b or text[index : index + 1].isspace():
            boxes.append(None)
            continue
        x0, x1 = (l - left) / (right - left), (r - left) / (right - left)
        y0, y1 = (top - t) / (top - bottom), (top - b) / (top - bottom)
        boxes.append([round(v, 5) for v in (x0, y0, x1, y1)])
    return encoded.getvalue(), image.width, image.height, text, boxes, rotation


def _turned(box: Box, rotation: int) -> Box:
    """`box` (fractions of the page as written) where it appears once the page is turned clockwise."""
    return Box(*turned((box.left, box.top, box.right, box.bottom), rotation))


_memory: OrderedDict[tuple[str, int], RenderedPage] = OrderedDict()
_lock = threading.Lock()


_digests: dict[tuple[str, int, int], str] = {}


def _file_key(path: Path) -> str:
    """The file's SHA-256 (remembered per path, size and modification time)."""
    stat = path.stat()
    known = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if known in _digests:
        return _digests[known]
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    _digests[known] = digest.hexdigest()[:24]
    return _digests[known]


def render(path: str | Path, page_number: int) -> RenderedPage:
    """Page `page_number` (1-based) of the PDF at `path`, from the cache or drawn now.

    Raises PageViewError naming the reason. Safe to call from several threads.
    """
    from qa.ingest import ChildError, call_in_child

    path = Path(path)
    try:
        key = f"{_file_key(path)}-p{page_number}-w{PAGE_WIDTH_PX}"
    except OSError as e:
        raise PageViewError(f"cannot read {path.name} ({e.strerror or e}): moved or deleted since it was indexed?") from None
    with _lock:
        if (key, page_number) in _memory:
            _memory.move_to_end((key, page_number))
            return _memory[(key, page_number)]
    folder = cache_root() / "pages"
    page = _read_cached(folder, key)
    if page is None:
        try:
            image, width, height, text, boxes, rotation = call_in_child(
                _draw, str(path), page_number, PAGE_WIDTH_PX, timeout_s=RENDER_TIMEOUT_S
            )
        except TimeoutError:
            raise PageViewError(f"drawing page {page_number} of {path.name} took over {RENDER_TIMEOUT_S:g} s") from None
        except ChildError as e:
            raise PageViewError(f"cannot draw page {page_number} of {path.name}: {e}") from None
        page = RenderedPage(image, width, height, text, tuple(Box(*b) if b else None for b in boxes), rotation)
        _write_cached(folder, key, page)
    with _lock:
        _memory[(key, page_number)] = page
        while len(_memory) > PAGES_IN_MEMORY:
            _memory.popitem(last=False)
    return page


def _read_cached(folder: Path, key: str) -> RenderedPage | None:
    try:
        meta = json.loads((folder / f"{key}.json").read_text(encoding="utf-8"))
        image = (folder / f"{key}.webp").read_bytes()
        boxes = tuple(Box(*b) if b else None for b in meta["boxes"])
        return RenderedPage(image, meta["width"], meta["height"], meta["text"], boxes, meta["rotation"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not cached yet, or a damaged entry: draw it again


def _write_cached(folder: Path, key: str, page: RenderedPage) -> None:
    """Image first, then the JSON, each renamed into place: a JSON present means a complete entry.
    Beyond PAGES_ON_DISK the oldest entries are deleted. A cache that cannot be written only costs
    a redraw next time."""
    meta = {
        "width": page.width,
        "height": page.height,
        "text": page.text,
        "boxes": [[b.left, b.top, b.right, b.bottom] if b else None for b in page.boxes],
        "rotation": page.rotation,
    }
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in ((f"{key}.webp", page.image), (f"{key}.json", json.dumps(meta).encode("utf-8"))):
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, folder / name)
        entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for old in entries[: max(0, len(entries) - PAGES_ON_DISK)]:
            old.unlink(missing_ok=True)
            old.with_suffix(".webp").unlink(missing_ok=True)
    except OSError:
        pass


# ---------------------------------------------------------------- finding the quote on the page


def _letters(text: str) -> tuple[str, list[int]]:
    """`text`'s letters and digits, case-folded, and where each came from."""
    kept, where = [], []
    for index, char in enumerate(text):
        if char.isalnum():
            folded = char.casefold()
            kept.append(folded)
            where.extend([index] * len(folded))
    return "".join(kept), where


def _nearest(haystack: str, needle: str, expected: float) -> int:
    """The start of `needle` in `haystack` nearest to position `expected`, or -1."""
    best, at = -1, haystack.find(needle)
    while at != -1:
        if best == -1 or abs(at - expected) < abs(best - expected):
            best = at
        at = haystack.find(needle, at + 1)
    return best


def _longest_prefix(haystack: str, needle: str, expected: float) -> tuple[int, int]:
    """(start, length) of the longest prefix of `needle` found in `haystack`: prefixes that are
    found only get shorter, so a binary search over the length finds it."""
    low, high, found = 0, len(needle), (-1, 0)
    while low < high:
        middle = (low + high + 1) // 2
        at = _nearest(haystack, needle[:middle], expected)
        if at == -1:
            high = middle - 1
        else:
            low, found = middle, (at, middle)
    return found


def _line_boxes(boxes: list[Box]) -> tuple[Box, ...]:
    """Character boxes merged into one box per printed line (a new line where the next character
    does not overlap the current one vertically, or goes back to the left)."""
    lines: list[Box] = []
    for box in boxes:
        last = lines[-1] if lines else None
        middle = (box.top + box.bottom) / 2
        if last is not None and last.top <= middle <= last.bottom and box.left >= last.left:
            lines[-1] = Box(last.left, min(last.top, box.top), max(last.right, box.right), max(last.bottom, box.bottom))
        else:
            lines.append(box)
    return tuple(lines)


def _pieces(page_letters: str, quote_letters: str, expected: float) -> list[tuple[int, int, int]]:
    """The quote's letters as (page start, quote start, length) runs found on the page, in quote
    order: each the longest that continues the quote, searched nearest where the last one ended
    (PDFium may read lines in another order than pypdf: columns, turned pages). Stops at the first
    run shorter than MIN_MATCH_CHARS (a chance match), e.g. where the quote goes on to the next page."""
    pieces: list[tuple[int, int, int]] = []
    done = 0
    while done < len(quote_letters):
        rest = quote_letters[done:]
        start, length = _longest_prefix(page_letters, rest, expected)
        if length < min(MIN_MATCH_CHARS, len(rest)):
            break
        pieces.append((start, done, length))
        done += length
        expected = start + length
    return pieces


def locate(page: RenderedPage, quote: str, answer_at: tuple[int, int] | None, position: float) -> Highlight | None:
    """The boxes of `quote` on `page`, or None when it is not there (the file changed since).

    `answer_at` is the short answer's (start, end) inside `quote`, if any; `position` (0..1) is
    where the quote starts in the page's stored text: of several places the quote's words stand,
    the nearest is taken.
    """
    page_letters, page_where = _letters(page.text)
    quote_letters, _ = _letters(quote)
    pieces = _pieces(page_letters, quote_letters, position * len(page_letters))
    if not pieces:
        return None

    def boxes(lo: int, hi: int) -> tuple[Box, ...]:
        """The line boxes of the quote's letters lo..hi (quote letter positions)."""
        chars: list[Box] = []
        for page_start, quote_start, length in pieces:
            a, b = max(lo, quote_start), min(hi, quote_start + length)
            if a < b:
                first, last = page_where[page_start + a - quote_start], page_where[page_start + b - 1 - quote_start]
                chars.extend(box for box in page.boxes[first : last + 1] if box is not None)
        return tuple(_turned(line, page.rotation) for line in _line_boxes(chars))

    answer: tuple[Box, ...] = ()
    if answer_at is not None:
        before = len(_letters(quote[: answer_at[0]])[0])
        answer = boxes(before, before + len(_letters(quote[answer_at[0] : answer_at[1]])[0]))
    found = sum(length for _, _, length in pieces)
    return Highlight(boxes(0, len(quote_letters)), answer, whole=found == len(quote_letters))
