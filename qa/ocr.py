"""Offline OCR for pages without a text layer: scanned PDF pages and images.

The engine is Tesseract 5 (Debian's `tesseract-ocr`, English and orientation data), run as its
command-line program, one page per process with one thread each (`OMP_THREAD_LIMIT=1`): on 2
cores its own OpenMP threads made a page slower (5.4 s against 1.8 s, ENVIRONMENT.md), so pages run
in parallel instead, as many as there are cores. A page that reads badly is asked which way up it
is (Tesseract's orientation detection) and read again upright, so a page scanned sideways or
upside down reads; the line finder absorbs the small skew of a photocopy. TSV output gives every
word with its box and confidence.

A page's words become its text as Tesseract groups them: words of a line joined by a space, lines
by a line break, and its text blocks (columns, captions) apart by a blank line; ingestion then
joins lines into paragraphs like any PDF page's (`qa.pdftext`), whose rules read Tesseract's
lines as they read pypdf's. Results are cached under the cache folder by the
page image's SHA-256 (and the engine's settings), so adding a file again, `qa rebuild` and the
page view never read a page twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from qa.config import Config, cache_root

TESSERACT = "tesseract"
INSTALL_HINT = "install Tesseract OCR (Debian/Ubuntu: apt-get install tesseract-ocr; `make run` does it)"
# A word Tesseract gives a confidence below this (0-100) is "unsure": it lowers the confidence of
# an answer quoting it.
UNSURE_BELOW = 60
PAGE_TIMEOUT_S = 120.0
# Page segmentation 3 (automatic, no orientation detection): 15% faster than 1 (with it) on the
# scans-public pages (1.69 against 1.99 s a page, one core); a page that reads badly is checked
# for orientation apart (`_read`).
_SETTINGS = ("--psm", "3", "-l", "eng")
# A page with fewer words than this, or a lower mean confidence, is checked for orientation: a
# page upside down reads as a few unsure scraps.
MIN_WORDS = 20
MIN_MEAN_CONFIDENCE = 50.0
_VERSION = 1  # of the cached result's shape


class OcrUnavailable(RuntimeError):
    """Tesseract is not installed; the message says how to install it."""


@dataclass(frozen=True)
class OcrWord:
    text: str
    start: int  # offset of the word in the page text
    left: float  # the word's box as fractions of the page (0..1 from the top left)
    top: float
    right: float
    bottom: float
    confidence: float  # Tesseract's, 0-100


@dataclass(frozen=True)
class OcrPage:
    text: str  # words in lines, a line break between lines, a blank line between text blocks
    words: tuple[OcrWord, ...]

    @property
    def mean_confidence(self) -> float:
        return sum(w.confidence for w in self.words) / len(self.words) if self.words else 0.0


def available() -> bool:
    return shutil.which(TESSERACT) is not None


def read_pages(images: Sequence[Path], progress: Callable[[int, int], None] | None = None,
               workers: int | None = None) -> list[OcrPage]:
    """The OCR of each page image (PNG files), in order: from the cache, or read in parallel (one
    Tesseract process per core). `progress(done, total)` after each page."""
    if not available():
        raise OcrUnavailable(INSTALL_HINT)
    keys = [_key(Path(p).read_bytes()) for p in images]
    results: list[OcrPage | None] = [_cached(k) for k in keys]
    todo = [i for i, r in enumerate(results) if r is None]
    done = len(images) - len(todo)
    if progress and done:
        progress(done, len(images))
    with ThreadPoolExecutor(max_workers=workers or max(1, os.cpu_count() or 1)) as pool:
        for i, page in zip(todo, pool.map(lambda i: _read(Path(images[i])), todo)):
            results[i] = page
            _store(keys[i], page)
            done += 1
            if progress:
                progress(done, len(images))
    return results  # type: ignore[return-value]


def _read(image: Path) -> OcrPage:
    """One page: read as it stands; a page that reads badly (few words, or mostly unsure ones) is
    asked which way up it is, and read again turned upright when it is not."""
    page = parse_tsv(_tesseract(image, *_SETTINGS, "tsv"))
    if len(page.words) >= MIN_WORDS and page.mean_confidence >= MIN_MEAN_CONFIDENCE:
        return page
    turn = _orientation(image)
    if not turn:
        return page
    from PIL import Image

    with tempfile.TemporaryDirectory(prefix="briefqa-ocr-") as folder:
        turned = Path(folder) / "turned.png"
        with Image.open(image) as original:
            original.rotate(-turn, expand=True).save(turned, dpi=original.info.get("dpi", (300, 300)))
        again = parse_tsv(_tesseract(turned, *_SETTINGS, "tsv"))
    if len(again.words) * again.mean_confidence <= len(page.words) * page.mean_confidence:
        return page
    return OcrPage(again.text, tuple(_unturned(w, turn) for w in again.words))


def _tesseract(image: Path, *args: str) -> str:
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        done = subprocess.run([TESSERACT, str(image), "stdout", *args], capture_output=True, env=env,
                              timeout=PAGE_TIMEOUT_S)
    except FileNotFoundError:
        raise OcrUnavailable(INSTALL_HINT) from None
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"OCR of a page took longer than {PAGE_TIMEOUT_S:g} s") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(f"OCR failed: {message[-1] if message else done.returncode}")
    return done.stdout.decode("utf-8", "replace")


def _orientation(image: Path) -> int:
    """Degrees clockwise to turn the page so it reads upright (0, 90, 180, 270), by Tesseract's
    orientation detection; 0 when it cannot tell (a page with too little text)."""
    try:
        report = _tesseract(image, "--psm", "0")
    except RuntimeError:
        return 0
    found = re.search(r"Rotate: (\d+)", report)
    confident = re.search(r"Orientation confidence: ([\d.]+)", report)
    if not found or not confident or float(confident.group(1)) < 1.0:
        return 0
    return int(found.group(1)) % 360


def _unturned(word: OcrWord, turn: int) -> OcrWord:
    """A word read on the page turned `turn` degrees clockwise, its box put back on the page as it is."""
    box = turned((word.left, word.top, word.right, word.bottom), (360 - turn) % 360)
    return OcrWord(word.text, word.start, *box, word.confidence)


def turned(box: tuple[float, float, float, float], rotation: int) -> tuple[float, float, float, float]:
    """`box` (left, top, right, bottom as fractions of the page) where it stands once the page is
    turned `rotation` degrees clockwise (0, 90, 180 or 270)."""
    x0, y0, x1, y1 = box
    if rotation == 90:
        return 1 - y1, x0, 1 - y0, x1
    if rotation == 180:
        return 1 - x1, 1 - y1, 1 - x0, 1 - y0
    if rotation == 270:
        return y0, 1 - x1, y1, 1 - x0
    return box


def parse_tsv(tsv: str) -> OcrPage:
    """Tesseract's TSV (level, page, block, paragraph, line, word, left, top, width, height,
    confidence, text) as a page: its text and its words with their boxes."""
    rows = [line.split("\t") for line in tsv.splitlines()[1:]]
    page = next((r for r in rows if len(r) >= 12 and r[0] == "1"), None)
    width, height = (max(1, int(page[8])), max(1, int(page[9]))) if page else (1, 1)
    text: list[str] = []
    words: list[OcrWord] = []
    length, last_line, last_block = 0, None, None
    for r in rows:
        if len(r) < 12 or r[0] != "5" or not r[11].strip():
            continue
        block, line = r[2], (r[2], r[3], r[4])
        separator = "" if last_line is None else " " if line == last_line else "\n" if block == last_block else "\n\n"
        word = r[11].strip()
        text.append(separator + word)
        length += len(separator)
        left, top, w, h = (int(v) for v in r[6:10])
        words.append(OcrWord(word, length, left / width, top / height, (left + w) / width, (top + h) / height, float(r[10])))
        length += len(word)
        last_line, last_block = line, block
    return OcrPage("".join(text), tuple(words))


def _key(image: bytes) -> str:
    settings = f"{_VERSION} {' '.join(_SETTINGS)} {_engine_version()}".encode()
    return hashlib.sha256(image + b"\0" + settings).hexdigest()


@lru_cache(maxsize=1)
def _engine_version() -> str:
    try:
        out = subprocess.run([TESSERACT, "--version"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = (out.stdout or out.stderr).decode("utf-8", "replace").split()
    return lines[1] if len(lines) > 1 else "unknown"


def _folder() -> Path:
    return cache_root() / "ocr"


def _cached(key: str) -> OcrPage | None:
    try:
        data = json.loads((_folder() / f"{key}.json").read_text(encoding="utf-8"))
        return OcrPage(data["text"], tuple(OcrWord(**w) for w in data["words"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _store(key: str, page: OcrPage) -> None:
    """Written atomically; a cache that cannot be written only costs reading the page again."""
    folder = _folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"text": page.text, "words": [asdict(w) for w in page.words]}, out)
        os.replace(tmp, folder / f"{key}.json")
    except OSError:
        pass


# --- page images ---------------------------------------------------------------------------

# The most pixels a page is read at: a Letter page at 300 dpi is 8.4 MP; a poster or a 600-dpi
# photo is scaled down to this, which keeps a page's OCR within seconds and its memory bounded.
MAX_PAGE_PIXELS = 25_000_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def render_pdf_pages(path: Path, folder: Path, pages: Sequence[int]) -> list[Path]:
    """PNG files (8-bit grey) of the PDF's 0-based `pages` at `QA_OCR_DPI`, at most MAX_PAGE_PIXELS
    each, written into `folder`. Runs in the ingestion child process (qa.ingest.call_in_child)."""
    import pypdfium2 as pdfium

    out, dpi = [], Config.load().ocr_dpi
    document = pdfium.PdfDocument(str(path))
    try:
        for number in pages:
            page = document[number]
            width, height = page.get_size()  # points
            scale = min(dpi / 72, (MAX_PAGE_PIXELS / max(1.0, width * height)) ** 0.5)
            image = page.render(scale=scale, grayscale=True).to_pil()
            target = folder / f"page-{number + 1:05d}.png"
            image.save(target, dpi=(round(scale * 72), round(scale * 72)))  # Tesseract reads print size from it
            out.append(target)
    finally:
        document.close()
    return out


def split_image(path: Path, folder: Path, max_pages: int, only: int | None = None) -> list[Path]:
    """An image file's frames (one page each: a TIFF may hold many; `only` the one numbered so) as
    PNG files (8-bit grey) in `folder`, each scaled to at most MAX_PAGE_PIXELS. Raises ValueError
    past `max_pages` frames. Runs in the ingestion child process."""
    from PIL import Image, ImageSequence

    Image.MAX_IMAGE_PIXELS = None  # we scale big images down ourselves, frame by frame
    out = []
    with Image.open(path) as image:
        frames = getattr(image, "n_frames", 1)
        if frames > max_pages:
            raise ValueError(f"{frames} pages, above the {max_pages}-page OCR limit (QA_OCR_MAX_PAGES)")
        for number, frame in enumerate(ImageSequence.Iterator(image), 1):
            if only is not None and number != only:
                continue
            page = upright(frame).convert("L")
            ratio = min(1.0, (MAX_PAGE_PIXELS / (page.width * page.height)) ** 0.5)
            if ratio < 1.0:
                page = page.resize((max(1, int(page.width * ratio)), max(1, int(page.height * ratio))), Image.LANCZOS)
            target = folder / f"page-{number:05d}.png"
            page.save(target, dpi=tuple(round(d * ratio) for d in _dpi(frame)))
            out.append(target)
    return out


def upright(frame):
    """An image frame turned as its EXIF orientation says (a phone photo of a page)."""
    from PIL import ImageOps

    return ImageOps.exif_transpose(frame)


def page_of(path: Path, page_number: int) -> OcrPage:
    """The OCR of one page (1-based) of a PDF or image, drawn as ingestion draws it, so read from
    the cache unless the cache was cleared (the page view's words and boxes on a scan)."""
    with tempfile.TemporaryDirectory(prefix="briefqa-ocr-") as folder:
        if path.suffix.lower() in IMAGE_SUFFIXES:
            images = split_image(path, Path(folder), max_pages=1 << 30, only=page_number)
        else:
            images = render_pdf_pages(path, Path(folder), [page_number - 1])
        if not images:
            raise ValueError(f"no page {page_number}")
        return read_pages(images, workers=1)[0]


def _dpi(frame) -> tuple[int, int]:
    """The frame's resolution when it says (Tesseract reads small print better knowing it)."""
    dpi = frame.info.get("dpi")
    try:
        return (int(dpi[0]), int(dpi[1])) if dpi and dpi[0] > 1 else (300, 300)
    except (TypeError, ValueError):
        return (300, 300)
