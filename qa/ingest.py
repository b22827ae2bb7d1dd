"""Files -> Documents whose text is exactly what answers will quote.

Everything downstream cites character offsets into `Document.text`, so whatever cleaning a format
needs happens while its text is built, never afterwards. Anything unusable is refused with a
reason a user can act on (`IngestError`), never a traceback. PDFs, Word files and web pages are
parsed in a child process with a time limit, because a hostile or broken file can make a parser
spin or crash. Word files and web pages become paragraphs with Markdown heading lines
(`qa.markup`), which give their citations a section instead of a page. PDF pages without a usable
text layer, and images, are read by OCR (`qa.ocr`); their text is joined into paragraphs like any
PDF page's, and the document records which pages were read so and where the engine was unsure.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import pickle
import re
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from . import markup, ocr, pdftext, tables
from .types import PARAGRAPH_BREAK, Document, section_headings, table_text

# The one list of accepted file types (the chat's upload box and `qa add` both use it).
SUPPORTED_SUFFIXES = (".txt", ".md", ".pdf", ".docx", ".html", ".htm", *ocr.IMAGE_SUFFIXES)
PageProgress = Callable[[int, int], None]  # (pages read by OCR, pages to read)
_WORD_SUFFIX = ".docx"
_WEB_SUFFIXES = (".html", ".htm")
_T = TypeVar("_T")

_TITLE_CHARS = 120
# Decoded text is judged on its beginning: enough to tell text from binary, cheap on 50 MB files.
_SAMPLE_CHARS = 100_000
_MAX_CONTROL_SHARE = 0.05
# In Western text nearly all letters are ASCII; cp1252 read from Cyrillic or Greek bytes is not.
_MAX_NON_ASCII_LETTERS = 0.3
_MAX_CHAOS = 0.1

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_HTML_TAG = re.compile(r"<[A-Za-z!/]")
# What a file's first bytes say it is, to name it when its extension says otherwise.
_SIGNATURES = {
    b"%PDF": "a PDF",
    b"PK\x03\x04": "a ZIP archive",
    b"\xd0\xcf\x11\xe0": "an old-format Office file (.doc, .xls, .ppt)",
    b"\x7fELF": "a program",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"II*\x00": "a TIFF image",
    b"MM\x00*": "a TIFF image",
    b"GIF8": "a GIF image",
    b"\x1f\x8b": "a gzip archive",
    b"7z\xbc\xaf": "a 7-Zip archive",
}
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_HEAD_BYTES = 8192
# A Word file (a ZIP archive) may unpack to this many times its own size: the realdocs ones unpack
# to 2.7-3.7x, python-docx's blank template to 22x, a zip bomb to 1000x and more (and the parser
# holds all of it in memory).
_MAX_UNPACK_RATIO = 100
_LINE_WITH_LETTER = re.compile(r"^.*[^\W\d_].*$", re.M)
_OFFICE_PREFIX = re.compile(r"^(?:Microsoft\s+)?(?:Word|PowerPoint|Excel)\s+-\s+", re.I)
_JUNK_TITLE = re.compile(
    r"\.(?:docx?|rtf|odt|wpd|pdf|pptx?|xlsx?|txt|md|html?|tex|dvi|e?ps|indd|qxd|p65|pub)$"
    r"|^(?:untitled|document\d*|title|none|null|unknown)\b"
    r"|^\S*[\\/]",  # a bare path
    re.I,
)
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


class IngestError(Exception):
    """A file that cannot be added, with the reason to show next to its name."""

    def __init__(self, path: Path, reason: str):
        super().__init__(path, reason)  # args that rebuild it, so it survives pickling
        self.path = Path(path)
        self.source = self.path.name
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Folders become their supported files; anything named explicitly is passed on to be judged.

    Explicit paths are yielded even if unsupported or missing, so the user hears why they were
    refused instead of having them vanish silently.
    """
    for path in map(Path, paths):
        if path.is_dir():
            yield from _walk(path)
        else:
            yield path


def _walk(folder: Path) -> Iterator[Path]:
    # One folder listed at a time, so huge trees stream. Symlinked folders are not followed
    # (they can loop); unreadable folders are skipped.
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path))
        elif Path(entry.name).suffix.lower() in SUPPORTED_SUFFIXES:
            yield Path(entry.path)


def load_document(
    path: Path, *, max_bytes: int, parse_timeout_s: float, added_at: str = "", ocr_max_pages: int = 200,
    progress: PageProgress | None = None,
) -> Document:
    """Read one file into a Document, or raise IngestError saying why it cannot be used.
    `progress` hears of each page read by OCR; a file needing OCR of more than `ocr_max_pages`
    pages is refused."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        info = path.stat()
    except FileNotFoundError:
        raise IngestError(path, "no such file") from None
    except OSError as e:
        raise IngestError(path, f"cannot read file ({e.strerror or e})") from None
    if stat.S_ISDIR(info.st_mode):
        raise IngestError(path, "is a folder")
    if suffix not in SUPPORTED_SUFFIXES:
        kind = f"'{suffix}'" if suffix else "(no extension)"
        supported = ", ".join(SUPPORTED_SUFFIXES)
        raise IngestError(path, f"unsupported file type {kind} (supported: {supported})")
    if not stat.S_ISREG(info.st_mode):
        raise IngestError(path, "not a regular file")
    if info.st_size > max_bytes:
        limit = _size(max_bytes)
        raise IngestError(path, f"file is {_size(info.st_size)}, above the {limit} limit")
    if info.st_size == 0:
        raise IngestError(path, "empty file")

    page_starts: tuple[int, ...] = ()
    scanned = Scanned()
    if suffix == ".pdf":
        text, page_starts, title, scanned = _read_pdf(path, parse_timeout_s, ocr_max_pages, progress)
    elif suffix in ocr.IMAGE_SUFFIXES:
        text, page_starts, title, scanned = _read_image(path, parse_timeout_s, ocr_max_pages, progress)
    elif suffix == _WORD_SUFFIX:
        text, title = _read_docx(path, parse_timeout_s)
    elif suffix in _WEB_SUFFIXES:
        text, title = _read_html(path, parse_timeout_s)
    else:
        text = _read_text(path)
        title = _first_heading(text) if suffix == ".md" else None
    return Document(
        doc_id=hashlib.sha256(text.encode("utf-8")).hexdigest()[:16],
        title=title or _first_line(text) or printable(path.stem),
        source=printable(path.name),
        path=printable(str(path.resolve())),
        text=text,
        page_starts=page_starts,
        added_at=added_at,
        ocr_pages=scanned.pages,
        unsure=scanned.unsure,
    )


def printable(name: str) -> str:
    """Text as valid Unicode: lone surrogates (how Python keeps the non-UTF-8 bytes of a file name
    or an argument; JSON files, terminals and tokenizers refuse them) become U+FFFD."""
    return _LONE_SURROGATE.sub("\ufffd", name)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f}".removesuffix(".0") + " KB"
    return f"{n / (1024 * 1024):.1f}".removesuffix(".0") + " MB"


def content_problem(path: Path, suffix: str) -> str | None:
    """Why a file's first bytes do not fit its extension, or None. The chat checks uploads with it
    before copying them; ingestion with it before parsing a Word file or a web page.

    A .pdf must start with %PDF, a .docx is a ZIP archive, and the text formats (.txt, .md, .html)
    must not be binary: no NUL bytes unless UTF-16, no archive, image or program header.
    """
    with open(path, "rb") as fh:
        head = fh.read(_HEAD_BYTES)
    kind = next((name for magic, name in _SIGNATURES.items() if head.startswith(magic)), None)
    if suffix == ".pdf":
        return None if head.startswith(b"%PDF") else "not a PDF: the file does not start with %PDF"
    if suffix in ocr.IMAGE_SUFFIXES:
        expected = {".png": "a PNG image", ".jpg": "a JPEG image", ".jpeg": "a JPEG image"}.get(suffix, "a TIFF image")
        return None if kind == expected else f"not {expected}: the content is {kind or 'not an image'}"
    if suffix == _WORD_SUFFIX:
        if head.startswith(b"PK\x03\x04"):
            return None
        if kind and "old-format" in kind:
            return f"not a .docx Word file but {kind}: save it as .docx"
        return f"not a .docx Word file: the content is {kind or 'not a ZIP archive'}"
    if head.startswith(_UTF16_BOMS):
        return None
    if kind or b"\x00" in head:
        return f"binary content in a {suffix} file ({kind or 'NUL bytes'}; only text is accepted)"
    return None


# --- text files -------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise IngestError(path, f"cannot read file ({e.strerror or e})") from None
    utf16 = data.startswith(_UTF16_BOMS)
    if b"\x00" in data and not utf16:
        raise IngestError(path, "binary file, not text")
    text = _decode(data, utf16)
    if text is None:
        raise IngestError(path, "unknown text encoding")
    sample = text[:_SAMPLE_CHARS]
    if len(_CONTROL.findall(sample)) > _MAX_CONTROL_SHARE * len(sample):
        raise IngestError(path, "binary file, not text")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise IngestError(path, "no text")
    return text


def _decode(data: bytes, utf16: bool) -> str | None:
    """UTF-8 first, then Western legacy (cp1252), then whatever charset_normalizer is sure of."""
    try:
        return data.decode("utf-16" if utf16 else "utf-8-sig")
    except UnicodeDecodeError:
        if utf16:
            return None
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        pass
    else:
        letters = [c for c in text[:_SAMPLE_CHARS] if c.isalpha()]
        if sum(c > "\x7f" for c in letters) <= _MAX_NON_ASCII_LETTERS * len(letters):
            return text
    from charset_normalizer import from_bytes  # only legacy files need it

    best = from_bytes(data).best()
    if best is None or best.chaos > _MAX_CHAOS:
        return None
    return str(best)


# --- PDFs -------------------------------------------------------------------------------------


def extract_pdf_pages(path: Path) -> tuple[list[str], str | None, dict[int, list[tables.FoundTable]]]:
    """pypdf's text per page, the /Title metadata, and the tables of the pages whose text looks
    tabular (`qa.tables`), by 0-based page. Runs in the child process."""
    from pypdf import PdfReader

    reader = PdfReader(path)
    # pypdf opens owner-password-only PDFs (an empty user password) like any viewer does;
    # only a PDF that needs a password to open is refused.
    if reader.is_encrypted and not reader.decrypt(""):
        raise IngestError(path, "encrypted PDF: remove the password and add it again")
    fonts_seen: set[int] = set()
    pages = []
    for page in reader.pages:
        pdftext.repair_ligature_maps(page, fonts_seen)
        pages.append(pdftext.page_text(page))
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:  # broken metadata should not cost a readable PDF
        title = None
    tabular = [i for i, page in enumerate(pages) if tables.looks_tabular(page)]
    try:
        found = tables.pdf_tables(path, tabular) if tabular else {}
    except Exception:  # a table finder that fails costs the tables, never the text
        found = {}
    return pages, str(title) if title else None, found


@dataclass(frozen=True)
class Scanned:
    """What OCR read of a document: its 1-based pages, and the spans of its text the engine was
    unsure of (words below `ocr.UNSURE_BELOW`)."""

    pages: tuple[int, ...] = ()
    unsure: tuple[tuple[int, int], ...] = ()


# A PDF page whose text layer holds fewer letters and digits than this is read by OCR: an
# image-only page (none), or a scan with only a stamped page number.
MIN_PAGE_CHARS = 10
# ...and one whose "text" is mostly neither (a broken font map's symbols and U+FFFD). A table of
# figures is mostly digits and keeps its text.
MIN_ALNUM_SHARE = 0.5


def needs_ocr(page: str) -> bool:
    """Whether a PDF page's text layer is empty or garbage, so the page is read by OCR."""
    alnum = sum(ch.isalnum() for ch in page)
    visible = sum(not ch.isspace() for ch in page)
    return alnum < MIN_PAGE_CHARS or alnum < MIN_ALNUM_SHARE * visible


def _read_pdf(
    path: Path, timeout_s: float, max_pages: int, progress: PageProgress | None
) -> tuple[str, tuple[int, ...], str | None, Scanned]:
    try:
        with path.open("rb") as f:
            head = f.read(1024)  # the header may follow a little junk
    except OSError as e:
        raise IngestError(path, f"cannot read file ({e.strerror or e})") from None
    if b"%PDF-" not in head:
        raise IngestError(path, "not a readable PDF (no %PDF header: not a PDF file)")
    pages, meta_title, found = _parse_in_child(path, "PDF", extract_pdf_pages, path, timeout_s=timeout_s)
    # Lone surrogates from broken font maps cannot be stored as UTF-8; same length keeps offsets.
    pages = [_LONE_SURROGATE.sub("\ufffd", page) for page in pages]
    scan = [i for i, page in enumerate(pages) if needs_ocr(page)]
    ocr_pages: dict[int, ocr.OcrPage] = {}
    if scan and (ocr.available() or len(scan) == len(pages)):
        if len(scan) > max_pages:
            raise IngestError(path, f"{len(scan)} scanned pages, above the {max_pages}-page OCR limit (QA_OCR_MAX_PAGES)")
        ocr_pages = dict(zip(scan, _ocr(path, "PDF", ocr.render_pdf_pages, scan, timeout_s, progress)))
    pages = [ocr_pages[i].text if i in ocr_pages else page for i, page in enumerate(pages)]
    if not any(page.strip() for page in pages):
        raise IngestError(path, "no text found, by OCR either (blank pages or only pictures)" if ocr_pages
                          else "no extractable text")
    pages = [_without_table_lines(page) if i in found else page for i, page in enumerate(pages)]
    pages, page_starts, scanned = _paged_text(pages, ocr_pages, found)
    first_page = next((page for page in pages if page.strip()), "")
    title = _clean_title(meta_title) or _shorten_heading(pdftext.heading_title(first_page)) or printable(path.stem)
    return PARAGRAPH_BREAK.join(pages), page_starts, title, scanned


def _read_image(
    path: Path, timeout_s: float, max_pages: int, progress: PageProgress | None
) -> tuple[str, tuple[int, ...], str | None, Scanned]:
    _refuse_mismatched_content(path, path.suffix.lower())
    read = _ocr(path, "image", ocr.split_image, max_pages, timeout_s, progress)
    if not any(page.text.strip() for page in read):
        raise IngestError(path, "no text found by OCR (a blank page or only pictures)")
    pages, page_starts, scanned = _paged_text([page.text for page in read], dict(enumerate(read)))
    first_page = next((page for page in pages if page.strip()), "")
    return PARAGRAPH_BREAK.join(pages), page_starts, _shorten_heading(pdftext.heading_title(first_page)), scanned


def _ocr(path: Path, what: str, images: Callable[..., list[Path]], which: Any, timeout_s: float,
         progress: PageProgress | None) -> list[ocr.OcrPage]:
    """The OCR of `path`'s page images: drawn by `images(path, folder, which)` (a module-level
    function of qa.ocr) in the child process, so a renderer that hangs or crashes costs a refusal,
    then read by `ocr.read_pages`."""
    if not ocr.available():
        raise IngestError(path, f"scanned {what} without text: {ocr.INSTALL_HINT}")
    with tempfile.TemporaryDirectory(prefix="briefqa-ocr-") as folder:
        try:
            files = call_in_child(_draw_pages, images, (path, Path(folder), which), timeout_s=timeout_s)
        except TimeoutError:
            raise IngestError(path, f"{what} took longer than {timeout_s:g} s to draw for OCR") from None
        except ChildError as e:
            raise IngestError(path, f"not a readable {what} ({e})") from None
        try:
            return ocr.read_pages(files, progress)
        except (ocr.OcrUnavailable, RuntimeError) as e:
            raise IngestError(path, str(e)) from None


def _draw_pages(images: Callable[..., list[Path]], args: tuple) -> list[Path]:
    """In the child: the page images, or a refusal whose reason is the renderer's own message."""
    try:
        return images(*args)
    except ValueError as e:
        raise IngestError(args[0], str(e)) from None


def _without_table_lines(page: str) -> str:
    """A page's text without the lines of its tables (pypdf's run of a row's figures, glued and
    without headers): the tables are written out whole after the page's prose."""
    return "\n".join(line for line in page.splitlines() if not tables.is_table_line(line))


def _paged_text(
    pages: list[str], read: dict[int, ocr.OcrPage], found: dict[int, list[tables.FoundTable]] | None = None
) -> tuple[list[str], tuple[int, ...], Scanned]:
    """Each page's lines joined into paragraphs without page furniture (qa.pdftext), its tables
    (`found`) written after them; where each page starts once they are joined apart by a blank
    line; what OCR read and was unsure of."""
    pages = pdftext.page_paragraphs(pages)
    for i, page_tables in (found or {}).items():
        written = [table_text(t.caption, t.columns, t.rows) for t in page_tables]
        pages[i] = PARAGRAPH_BREAK.join(part for part in [pages[i], *written] if part.strip())
    page_starts, offset, unsure = [], 0, []
    for number, page in enumerate(pages):
        page_starts.append(offset)
        if number in read:
            unsure += [(offset + a, offset + b) for a, b in _unsure_in(page, read[number])]
        offset += len(page) + len(PARAGRAPH_BREAK)
    return pages, tuple(page_starts), Scanned(tuple(n + 1 for n in sorted(read)), tuple(unsure))


def _unsure_in(page: str, read: ocr.OcrPage) -> list[tuple[int, int]]:
    """Where the unsure words of the OCR stand in the page's final text: joining lines moved them,
    so each is found in order, after the one before (a word the joining rewrote, a hyphen
    resolved, is not found and not marked)."""
    spans, at = [], 0
    for word in read.words:
        found = page.find(word.text, at)
        if found < 0:
            continue
        at = found + len(word.text)
        if word.confidence < ocr.UNSURE_BELOW:
            spans.append((found, at))
    return spans


# --- Word files and web pages ------------------------------------------------------------------


def _read_docx(path: Path, timeout_s: float) -> tuple[str, str | None]:
    _refuse_mismatched_content(path, _WORD_SUFFIX)
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise IngestError(path, f"not a readable Word file ({_cause(e)})") from None
    size = path.stat().st_size
    if unpacked > _MAX_UNPACK_RATIO * size:
        ratio = unpacked // size
        raise IngestError(path, f"Word file unpacks to {_size(unpacked)}, {ratio} times its size (a zip bomb?)")
    text, meta_title = _parse_in_child(path, "Word file", markup.docx_text, path, timeout_s=timeout_s)
    if not text.strip():
        raise IngestError(path, "no text in the Word file")
    return text, _clean_title(meta_title) or _first_heading(text)


def _read_html(path: Path, timeout_s: float) -> tuple[str, str | None]:
    _refuse_mismatched_content(path, path.suffix.lower())
    html = _read_text(path)
    if not _HTML_TAG.search(html, 0, _SAMPLE_CHARS):
        raise IngestError(path, "not a web page (no HTML tags)")
    text, meta_title = _parse_in_child(path, "web page", markup.html_text, html, timeout_s=timeout_s)
    if not text.strip():
        raise IngestError(path, "no main text found in the web page")
    return text, _clean_title(meta_title) or _first_heading(text)


def _refuse_mismatched_content(path: Path, suffix: str) -> None:
    try:
        problem = content_problem(path, suffix)
    except OSError as e:
        raise IngestError(path, f"cannot read file ({e.strerror or e})") from None
    if problem:
        raise IngestError(path, problem)


def _parse_in_child(path: Path, what: str, parse: Callable[..., _T], *args: Any, timeout_s: float) -> _T:
    """parse(*args) in the child process; a hang or a crash becomes a refusal naming `what`."""
    try:
        return call_in_child(parse, *args, timeout_s=timeout_s)
    except TimeoutError:
        raise IngestError(path, f"{what} took longer than {timeout_s:g} s to parse") from None
    except ChildError as e:
        raise IngestError(path, f"not a readable {what} ({e})") from None


class ChildError(Exception):
    """The child process failed; the message is a one-line cause, not a traceback."""


def call_in_child(fn: Callable[..., _T], *args: Any, timeout_s: float) -> _T:
    """Run fn(*args) in a fresh Python process, killed after timeout_s (raises TimeoutError).

    A plain subprocess rather than multiprocessing: spawn and forkserver re-import the caller's
    __main__ in every child (with the app, that is torch), and fork is unsafe in a threaded
    parent. Costs about 0.25 s per call. fn must be importable by name (a module-level
    function); an IngestError it raises is re-raised as is, any other failure, including the
    child dying, becomes ChildError.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", f"import {__name__} as m; m._child_main()"],
            input=pickle.dumps((fn, args)),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # parsers warn loudly about damaged files
            timeout=timeout_s,
            env=env,
        )
    except subprocess.TimeoutExpired:  # run() has killed the child
        raise TimeoutError(f"took longer than {timeout_s:g} s") from None
    try:
        ok, value = pickle.loads(done.stdout)
    except Exception:
        raise ChildError(f"parser crashed, exit code {done.returncode}") from None
    if ok:
        return value
    if isinstance(value, IngestError):
        raise value
    raise ChildError(value)


def _child_main() -> None:
    """Entry point of the child: (fn, args) pickled on stdin, (ok, result or reason) on stdout."""
    out, sys.stdout = sys.stdout.buffer, sys.stderr  # stray prints must not corrupt the reply
    try:
        fn, args = pickle.loads(sys.stdin.buffer.read())
        reply: tuple[bool, Any] = (True, fn(*args))
    except IngestError as e:
        reply = (False, e)
    except BaseException as e:
        reply = (False, _cause(e))
    try:
        data = pickle.dumps(reply)
    except Exception as e:  # an unpicklable result
        data = pickle.dumps((False, _cause(e)))
    out.write(data)
    out.flush()


def _cause(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    message = lines[0] if lines else type(e).__name__
    return message if len(message) <= 100 else message[:99] + "…"


# --- titles -----------------------------------------------------------------------------------


def _clean_title(title: str | None) -> str | None:
    """PDF metadata titles are often junk left by the authoring tool; keep only real ones."""
    if not title:
        return None
    title = _OFFICE_PREFIX.sub("", " ".join(_CONTROL.sub(" ", title).split()))
    if not re.search(r"[^\W\d_]", title) or _JUNK_TITLE.search(title):
        return None
    return _shorten(title)


def _first_heading(text: str) -> str | None:
    headings = section_headings(text)
    return _shorten(headings[0].heading) if headings else None


def _shorten_heading(heading: str | None) -> str | None:
    return _shorten(heading) if heading else None


def _first_line(text: str) -> str | None:
    match = _LINE_WITH_LETTER.search(text)
    return _shorten(match.group(0)) if match else None


def _shorten(line: str) -> str:
    line = " ".join(line.split())
    if len(line) <= _TITLE_CHARS:
        return line
    cut = line[: _TITLE_CHARS + 1].rsplit(" ", 1)[0] if " " in line[:_TITLE_CHARS] else ""
    return (cut or line[:_TITLE_CHARS]).rstrip(" ,;:-") + "…"
