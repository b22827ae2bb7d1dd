"""Shared fixtures. Nothing here is autouse: fast unit tests never pay for a model load.

`seeded_pipeline` is the real pipeline (bundled model, FAISS, BM25) over the seed folder, built
once per session; treat it as read-only, since other modules share it. Tests that add or remove
documents build their own Pipeline on a tmp index: the model itself is cached per process
(`qa.embed._load`), so an extra Pipeline costs only the embedding of what it adds.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

# Tests never reach a model hub, and Gradio never phones home.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

REPO = Path(__file__).resolve().parents[1]
SEEDS_DIR = REPO / "seeds"
SEED_FILE = "allies-forge-ahead-on-ukraine-peace-plan.txt"


@pytest.fixture(scope="session")
def seeds_dir() -> Path:
    return SEEDS_DIR


@pytest.fixture(scope="session")
def seed_text() -> str:
    """The seed document exactly as it is on disk: what every citation must quote."""
    return (SEEDS_DIR / SEED_FILE).read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def seeded_pipeline(tmp_path_factory: pytest.TempPathFactory):
    """A real Pipeline over a fresh index built from the seeds (read-only for its users)."""
    from qa.config import Config
    from qa.pipeline import Pipeline

    assert (SEEDS_DIR / SEED_FILE).is_file(), f"seed document missing: {SEEDS_DIR / SEED_FILE}"
    config = Config.load(index_dir=tmp_path_factory.mktemp("seeded-index"), seeds_dir=SEEDS_DIR)
    pipeline = Pipeline(config)
    pipeline.ensure_seeded()
    assert [d.source for d in pipeline.documents()] == [SEED_FILE]
    return pipeline


MakePdf = Callable[..., Path]


@pytest.fixture(scope="session")
def make_pdf() -> MakePdf:
    """`make_pdf(path, pages, title=None) -> path`: a text-layer PDF, one string per page.

    Each page's text is drawn line by line: explicit newlines are kept and long lines are wrapped
    at 90 characters, so a phrase meant to be found verbatim should sit within one line.
    An empty string makes a blank page. `title` sets the /Title metadata.
    """
    from reportlab.pdfgen import canvas

    def make(path: Path | str, pages: Sequence[str], title: str | None = None) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        pdf = canvas.Canvas(str(path))
        if title is not None:
            pdf.setTitle(title)
        for text in pages:
            y = 800
            for paragraph in text.splitlines():
                for line in textwrap.wrap(paragraph, 90) or [""]:
                    if line:
                        pdf.drawString(60, y, line)
                    y -= 16
            pdf.showPage()
        pdf.save()
        return path

    return make


MakeDocx = Callable[..., Path]


@pytest.fixture(scope="session")
def make_docx() -> MakeDocx:
    """`make_docx(path, blocks, title=None) -> path`: a Word file written by python-docx.

    `blocks` in order: a string is a body paragraph, `(level, text)` a heading (0 is Word's Title
    style), and a list of rows (lists of cell texts) a table. `title` sets the core properties.
    """
    import docx

    def make(path: Path | str, blocks: Sequence, title: str | None = None) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        document = docx.Document()
        if title is not None:
            document.core_properties.title = title
        for block in blocks:
            if isinstance(block, str):
                document.add_paragraph(block)
            elif isinstance(block, tuple):
                document.add_heading(block[1], block[0])
            else:
                table = document.add_table(rows=len(block), cols=len(block[0]))
                for row, cells in zip(table.rows, block):
                    for cell, text in zip(row.cells, cells):
                        cell.text = text
        document.save(str(path))
        return path

    return make


MakeScan = Callable[..., Path]


@pytest.fixture(scope="session")
def make_scan(make_pdf: MakePdf, tmp_path_factory: pytest.TempPathFactory) -> MakeScan:
    """`make_scan(path, pages, turn=0, dpi=150) -> path`: an image-only document of text we know.

    Each page's text is drawn by `make_pdf`, rasterised with PDFium at `dpi` and turned `turn`
    degrees clockwise, then saved by the suffix of `path`: `.pdf` (an image-only PDF, no text
    layer), `.tif`/`.tiff` (one frame a page), or `.png`/`.jpg` (the first page).
    """
    import pypdfium2 as pdfium

    def make(path: Path | str, pages: Sequence[str], turn: int = 0, dpi: int = 150) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        source = make_pdf(tmp_path_factory.mktemp("scan-source") / "text.pdf", pages)
        document = pdfium.PdfDocument(str(source))
        images = [document[i].render(scale=dpi / 72, grayscale=True).to_pil().rotate(-turn, expand=True)
                  for i in range(len(document))]
        document.close()
        suffix = path.suffix.lower()
        if suffix == ".pdf":
            images[0].save(path, "PDF", resolution=dpi, save_all=True, append_images=images[1:])
        elif suffix in (".tif", ".tiff"):
            images[0].save(path, save_all=True, append_images=images[1:], dpi=(dpi, dpi), compression="tiff_deflate")
        else:
            images[0].save(path, dpi=(dpi, dpi))
        return path

    return make
