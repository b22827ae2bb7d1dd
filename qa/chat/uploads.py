"""Uploaded files in and out of the index: checked, copied under safe names into
`<index_dir>/uploads/`, indexed; and removed with the document they became."""

from __future__ import annotations

import re
import shutil
import tempfile
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path

import gradio as gr

from qa.chat.backend import PipelineLike
from qa.config import Config
from qa.ingest import SUPPORTED_SUFFIXES, content_problem
from qa.types import DocumentInfo, FileResult

MAX_NAME_BYTES = 120

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


def add_gradio_uploads(
    pipeline: PipelineLike,
    files: Sequence[str | Path],
    progress: Callable[[int, int, str], None] | None = None,
) -> list[FileResult]:
    """`add_uploads` for the files Gradio received, whose temp copies go afterwards, indexed or not."""
    try:
        return add_uploads(pipeline, files, progress)
    finally:
        _discard_gradio_copies(files)


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


def remove_documents(pipeline: PipelineLike, key: str) -> list[DocumentInfo]:
    """Remove the documents matching `key` (id, unique id prefix, path or file name), and our copy of
    any that was uploaded; a user-facing gr.Error if none or several match."""
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
