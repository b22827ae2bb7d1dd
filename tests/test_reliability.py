"""Reliability: bad input, thousands of files, odd questions, `qa rebuild` / `qa check`, safe formats.

Most tests run the real pipeline (ingest, chunking, store, BM25, FAISS, reader) with the hashing
embedder of reliability_helpers, so they need no model; `qa` commands that never embed run as
the real console script. Tests marked e2e use the bundled model.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from reliability_helpers import (
    FAKE_MODEL,
    HashEmbedder,
    child_command,
    child_env,
    fake_pipeline,
    run_fake_qa,
    run_qa,
    tree_digest,
    write_corpus,
)
from reportlab.lib import pdfencrypt
from reportlab.pdfgen import canvas

from qa import ocr
from qa.config import Config
from qa.embed import embed_documents
from qa.pipeline import Pipeline
from qa.schema import answer_json
from qa.store import IndexError as StoreIndexError
from qa.store import Store
from qa.types import Answer, Document

pytestmark = pytest.mark.timeout(120)

QA_ROOT = Path(__file__).resolve().parents[1] / "qa"
MAX_FILE_MB = 0.05  # 51.2 KB: the oversize file is refused, every good one fits (a Word file is ~37 KB)

DEPOT = "Depot report\nThe northern depot holds 900 tonnes of wheat, according to the quartermaster.\n"
MINUTES = "# Council minutes\n\nThe council approved the new ferry timetable on Tuesday.\n"
RUSSIAN = "Министерство опубликовало доклад о безопасности, энергетике и торговле.\n" * 3


# --- building good and bad files ----------------------------------------------------------------


def _pdf(path: Path, lines: list[str], **kwargs) -> Path:
    c = canvas.Canvas(str(path), **kwargs)
    for i, line in enumerate(lines):
        c.drawString(72, 720 - 16 * i, line)
    c.showPage()
    c.save()
    return path


def good_files(folder: Path, make_pdf, make_docx) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    make_docx(folder / "ferry.docx", [(1, "Ferry plan"), "The first ferry leaves Orvik at 06:10."])
    (folder / "port.html").write_text(
        "<html><body><nav>Home | News</nav><article><h1>Port news</h1>"
        "<p>The harbour of Orvik reopened on Monday after six weeks of repairs.</p></article></body></html>",
        encoding="utf-8",
    )
    (folder / "depot.txt").write_text(DEPOT, encoding="utf-8")
    (folder / "minutes.md").write_text(MINUTES, encoding="utf-8")
    (folder / "russian-cp1251.txt").write_bytes(RUSSIAN.encode("cp1251"))
    make_pdf(folder / "survey.pdf", ["Coastal survey\nThe Orvik lighthouse was rebuilt in 1911 by Marta Lindqvist."])
    # Owner password only (an empty user password): opens in any viewer, so it is accepted.
    owner_only = pdfencrypt.StandardEncryption("", ownerPassword="owner")
    _pdf(folder / "restricted.pdf", ["Restricted but readable quarry notes."], encrypt=owner_only)
    # A file name that is not UTF-8 (an old archive from Windows): added, its name made printable.
    odd_name = os.fsencode(folder) + b"/caf\xe9-notes.txt"
    Path(os.fsdecode(odd_name)).write_text("Cafe notes\nThe cafe by the museum opens at nine.\n", encoding="utf-8")
    return sorted(folder.iterdir())


# Tables as real files have them: merged, empty and spanning cells, no header row, a table
# continued on the next page under its repeated header.
TABLE_FILES = ("crew.docx", "tolls.html", "catches.pdf")


def table_files(folder: Path) -> list[Path]:
    import docx

    folder.mkdir(parents=True, exist_ok=True)
    document = docx.Document()
    document.add_paragraph("Crew rota")
    table = document.add_table(rows=4, cols=4)
    for row, values in zip(table.rows, [["1", "Orvik", "", "12"], ["2", "Lund", "Ferry", ""], ["3", "", "", ""],
                                        ["4", "Skarv", "Tug", "7"]]):
        for cell, value in zip(row.cells, values):
            cell.text = value
    table.cell(1, 2).merge(table.cell(1, 3))  # across
    table.cell(2, 1).merge(table.cell(3, 1))  # down
    document.save(str(folder / TABLE_FILES[0]))
    (folder / TABLE_FILES[1]).write_text(
        "<html><body><article><h1>Harbour tolls</h1><p>Tolls charged at the harbour of Orvik in 2024.</p>"
        "<table><tr><th rowspan=2>Vessel</th><th colspan=2>Toll</th></tr><tr><th>Summer</th><th>Winter</th></tr>"
        "<tr><td>Ferry</td><td>40</td><td></td></tr><tr></tr><tr><td colspan=3>Tugs pay nothing</td></tr>"
        "<tr><th>Trawler</th><td>25</td><td>20</td></tr></table></article></body></html>", encoding="utf-8")
    pdf = canvas.Canvas(str(folder / TABLE_FILES[2]))
    for page, boats in enumerate([["Marta", "Selma", "Ingrid"], ["Freja", "Astrid", "Tove"]]):
        pdf.drawString(72, 760, "Table 4. Catches by boat, tonnes" + (" (continued)" if page else ""))
        pdf.drawString(72, 740, "Boat")
        for x, year in zip((300, 380, 460), ("2022", "2023", "2024")):
            pdf.drawRightString(x, 740, year)
        for i, boat in enumerate(boats):
            pdf.drawString(72, 722 - 16 * i, boat)
            for j, x in enumerate((300, 380, 460)):
                pdf.drawRightString(x, 722 - 16 * i, f"{(page * 3 + i + 1) * 11 + j:,}")
        pdf.showPage()
    pdf.save()
    return [folder / name for name in TABLE_FILES]


def bad_files(folder: Path, make_pdf, make_docx) -> dict[Path, str]:
    """Each bad file and (a part of) the reason it must be refused with."""
    folder.mkdir(parents=True, exist_ok=True)
    bad: dict[Path, str] = {}

    def put(name: str, content: bytes, reason: str) -> None:
        (folder / name).write_bytes(content)
        bad[folder / name] = reason

    put("broken.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 8, "not a readable PDF (")
    full = make_pdf(folder / "whole.pdf", ["\n".join(f"Line {i} of a long page" for i in range(40))] * 3)
    put("truncated.pdf", full.read_bytes()[: full.stat().st_size // 2], "not a readable PDF (")
    full.unlink()
    bad[_pdf(folder / "locked.pdf", ["Top secret words"], encrypt="secret")] = "encrypted PDF"
    scan = canvas.Canvas(str(folder / "scan.pdf"))
    scan.rect(100, 100, 200, 300, fill=1)
    scan.showPage()
    scan.save()
    # A page of only a picture: read by OCR, which finds no text (or, without Tesseract, how to get it).
    bad[folder / "scan.pdf"] = "no text found, by OCR either" if ocr.available() else "apt-get install tesseract-ocr"
    from PIL import Image, ImageDraw

    Image.new("L", (850, 1100), 255).save(folder / "blank-scan.png")
    bad[folder / "blank-scan.png"] = "no text found by OCR" if ocr.available() else "apt-get install tesseract-ocr"
    picture = Image.new("L", (850, 1100), 255)
    ImageDraw.Draw(picture).ellipse((200, 300, 650, 750), fill=60)
    picture.save(folder / "picture.jpg")
    bad[folder / "picture.jpg"] = "no text found by OCR" if ocr.available() else "apt-get install tesseract-ocr"
    put("corrupt.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "not a readable image (")
    put("renamed.jpg", b"\x89PNG\r\n\x1a\n" + bytes(range(64)), "not a JPEG image: the content is a PNG image")
    put("notes.tif", b"Plain notes, not an image.\n", "not a TIFF image")
    put("not-a-pdf.pdf", b"Just text pretending to be a PDF.\n" * 5, "no %PDF header")
    put("empty.txt", b"", "empty file")
    put("blank.md", b" \n\t\r\n  ", "no text")
    put("photo.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, "binary file, not text")
    put("report.docx", b"PK\x03\x04" + b"\x00" * 64, "not a readable Word file (")
    word = make_docx(folder / "whole.docx", ["A paragraph of the memo."] * 40)
    put("truncated.docx", word.read_bytes()[: word.stat().st_size // 2], "not a readable Word file (")
    word.unlink()
    put("renamed-pdf.docx", b"%PDF-1.7\n" + bytes(range(256)), "the content is a PDF")
    put("empty.docx", b"", "empty file")
    put("photo.html", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "binary content in a .html file")
    put("script-only.html", b"<html><script>document.write('x')</script><body></body></html>", "no main text found")
    put("notes.htm", b"Plain notes, wrong extension.\n", "not a web page (no HTML tags)")
    put("big.html", b"<p>" + b"A long line of words. " * 4000 + b"</p>", "above the 51.2 KB limit")
    put("memo.odt", b"PK\x03\x04 an OpenDocument file", "unsupported file type '.odt'")
    put("README", b"no extension", "unsupported file type (no extension)")
    put("big.txt", b"A long line of words. " * 4000, "above the 51.2 KB limit")
    rng = random.Random(7)
    put("odd-encoding.txt", bytes(rng.randrange(0x80, 0x100) for _ in range(3000)), "unknown text encoding")
    os.mkfifo(folder / "pipe.txt")  # reading it would block forever
    bad[folder / "pipe.txt"] = "not a regular file"
    (folder / "dangling.txt").symlink_to(folder / "gone.txt")
    bad[folder / "dangling.txt"] = "no such file"
    bad[folder / "missing.txt"] = "no such file"
    return bad


@pytest.fixture
def files(tmp_path: Path, make_pdf, make_docx) -> tuple[list[Path], dict[Path, str]]:
    good = good_files(tmp_path / "good", make_pdf, make_docx) + table_files(tmp_path / "tables")
    return good, bad_files(tmp_path / "bad", make_pdf, make_docx)


def small_pipeline(index: Path, **config) -> Pipeline:
    return fake_pipeline(index, max_file_mb=MAX_FILE_MB, **config)


# --- bad input ------------------------------------------------------------------------------------


def test_good_files_are_added_and_each_bad_one_refused_with_its_reason(tmp_path: Path, files) -> None:
    good, bad = files
    pipeline = small_pipeline(tmp_path / "index")
    mixed = [p for pair in zip(good, list(bad)) for p in pair] + list(bad)[len(good) :]
    results = pipeline.add(mixed)

    assert [Path(r.path) for r in results] == mixed
    by_path = {Path(r.path): r for r in results}
    for path in good:
        assert by_path[path].status == "added", by_path[path]
    for path, reason in bad.items():
        result = by_path[path]
        assert result.status == "refused" and not result.ok and not result.doc_id, result
        assert reason in result.reason, (path.name, result.reason)

    docs = pipeline.documents()
    assert len(docs) == len(good)
    assert {d.doc_id for d in docs} == {by_path[p].doc_id for p in good}
    assert "caf\ufffd-notes.txt" in {d.source for d in docs}
    json.dumps([d.__dict__ for d in docs], ensure_ascii=False).encode("utf-8")  # all printable
    index = pipeline.config.index_dir
    assert {p.stem for p in (index / "texts").iterdir()} == {d.doc_id for d in docs}
    pipeline.check()
    restricted = next(d for d in docs if d.source == "restricted.pdf")
    assert "quarry notes" in pipeline.document(restricted.doc_id).text
    russian = next(d for d in docs if d.source == "russian-cp1251.txt")
    assert pipeline.document(russian.doc_id).text == RUSSIAN


def test_tables_with_merged_empty_and_spanning_cells_are_read_as_tables(tmp_path: Path, files) -> None:
    good, _ = files
    pipeline = small_pipeline(tmp_path / "index")
    added = {Path(r.path).name: r for r in pipeline.add(good)}
    for name in TABLE_FILES:
        assert added[name].status == "added", added[name]
        document = pipeline.document(added[name].doc_id)
        assert document.tables, name
        for table in document.tables:
            for row in table.rows:  # every cell is a span of the row's line, in order
                assert all(row.start <= a <= b <= row.end for a, b in row.cells)
    tolls = pipeline.document(added["tolls.html"].doc_id).tables[0]
    assert tolls.columns == ("Vessel", "Toll Summer", "Toll Winter")  # the spanning headers spread out
    crew = pipeline.document(added["crew.docx"].doc_id)
    assert not any(crew.tables[0].columns) and len(crew.tables[0].rows) == 4  # no header: its first row is data
    catches = pipeline.document(added["catches.pdf"].doc_id)
    assert [t.columns for t in catches.tables] == [("Boat", "2022", "2023", "2024")] * 2  # its header on each page
    assert [catches.page_at(t.start) for t in catches.tables] == [1, 2]


def test_only_bad_files_leave_the_index_byte_for_byte_identical(tmp_path: Path, files) -> None:
    good, bad = files
    index = tmp_path / "index"
    small_pipeline(index).add(good)
    before = tree_digest(index)

    results = small_pipeline(index).add(list(bad))
    assert [r.status for r in results] == ["refused"] * len(bad)
    assert tree_digest(index) == before

    # The same through `qa add` (nothing to embed, so the real console script; no model load).
    done = run_qa("--index", str(index), "--model", FAKE_MODEL, "add", *map(str, bad), QA_MAX_FILE_MB=str(MAX_FILE_MB))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    refusals = [line for line in done.stderr.splitlines() if line.startswith("refused ")]
    assert len(refusals) == len(bad), done.stderr
    for path, reason in bad.items():
        line = next(line for line in refusals if line.startswith(f"refused {path}: "))
        assert reason in line, line
    assert f"0 added, 0 replaced, 0 skipped (already indexed), {len(bad)} refused" in done.stdout
    assert tree_digest(index) == before


def test_scans_past_the_ocr_page_limit_are_refused_before_any_ocr(tmp_path: Path) -> None:
    from PIL import Image

    pages = [Image.new("L", (16, 16), 255) for _ in range(500)]
    tiff, pdf = tmp_path / "frames.tif", tmp_path / "pages.pdf"
    pages[0].save(tiff, save_all=True, append_images=pages[1:])
    pages[0].save(pdf, "PDF", save_all=True, append_images=pages[1:])
    pipeline = fake_pipeline(tmp_path / "index", ocr_max_pages=200)
    results = pipeline.add([tiff, pdf])
    assert [r.status for r in results] == ["refused", "refused"]
    assert "500 pages, above the 200-page OCR limit (QA_OCR_MAX_PAGES)" in results[0].reason
    if ocr.available():
        assert "500 scanned pages, above the 200-page OCR limit (QA_OCR_MAX_PAGES)" in results[1].reason
    assert not pipeline.documents()


@pytest.mark.skipif(not ocr.available(), reason="tesseract missing: apt-get install tesseract-ocr")
def test_a_600_dpi_poster_is_read_scaled_down(tmp_path: Path, make_scan) -> None:
    poster = make_scan(tmp_path / "poster.png", ["Harbour festival\nThe harbour festival opens on the first of June."], dpi=600)
    pipeline = fake_pipeline(tmp_path / "index")
    [result] = pipeline.add([poster])
    assert result.status == "added", result.reason
    assert "opens on the first of June" in " ".join(pipeline.document(result.doc_id).text.split())


def test_only_bad_files_on_a_new_index_create_nothing(tmp_path: Path, files) -> None:
    _, bad = files
    pipeline = small_pipeline(tmp_path / "index")
    assert all(r.status == "refused" for r in pipeline.add(list(bad)))
    leftovers = {p.name for p in (tmp_path / "index").iterdir()} if (tmp_path / "index").exists() else set()
    assert leftovers <= {".lock"}
    assert pipeline.store.current_generation() is None


def test_only_bad_files_leave_a_milvus_index_as_it_was(tmp_path: Path, files) -> None:
    """The same refusals on Milvus Lite (QA_STORE=milvus): every bad file is named with its
    reason, and the collections hold exactly the rows they held, with no commit left pending;
    on a new index nothing is created."""
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    good, bad = files
    fresh = small_pipeline(tmp_path / "new-index", store="milvus")
    assert all(r.status == "refused" for r in fresh.add(list(bad)))
    assert not (tmp_path / "new-index" / "milvus.db").exists()

    index = tmp_path / "index"
    pipeline = small_pipeline(index, store="milvus")
    pipeline.add(good)
    before = ([d.__dict__ for d in pipeline.documents()], pipeline.check())
    results = pipeline.add(list(bad))
    assert [r.status for r in results] == ["refused"] * len(bad)
    for result, reason in zip(results, bad.values()):
        assert reason in result.reason, (result.path, result.reason)
    assert ([d.__dict__ for d in pipeline.documents()], pipeline.check()) == before
    store = pipeline.store  # the rows themselves, a dead commit's orphans included
    assert store._state().pending is None
    assert [store._count("chunks"), store._count("sentences")] == [before[1]["chunks"], before[1]["sentences"]]


def test_cli_add_prints_files_with_undecodable_names(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    Path(os.fsdecode(os.fsencode(src) + b"/r\xe9sum\xe9.txt")).write_text("Resume of the ferry study.\n")
    done = run_fake_qa("add", "--index", str(tmp_path / "index"), "--model", FAKE_MODEL, str(src))
    assert done.returncode == 0, done.stderr
    assert "r\ufffdsum\ufffd.txt" in done.stdout and "1 added" in done.stdout


def test_thousands_of_small_files_bounded_memory_and_progress_per_file(tmp_path: Path, monkeypatch) -> None:
    """3,000 tiny files: progress once per file, commits in bounded batches, memory bounded."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # durability is test_crash's subject
    count = 3000
    src = tmp_path / "many"
    write_corpus(src, count, sentences=1)
    pipeline = small_pipeline(tmp_path / "index", commit_chunks=400)
    pipeline.add(write_corpus(tmp_path / "warm", 3, prefix="warm"))  # imports and first allocations

    commits: list[tuple[int, int]] = []
    real_commit = pipeline.store.commit

    def commit(add, remove, **kwargs):
        commits.append((pipeline.store.snapshot().size, sum(len(d.chunk_spans) for d in add)))
        return real_commit(add, remove, **kwargs)

    monkeypatch.setattr(pipeline.store, "commit", commit)

    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    calls: list[tuple[int, int, str]] = []
    peak = [0]

    def progress(done: int, total: int, name: str) -> None:
        calls.append((done, total, name))
        if done % 50 == 0:
            peak[0] = max(peak[0], rss())

    start = rss()
    results = pipeline.add([src], progress=progress)
    growth = max(peak[0], rss()) - start

    assert [r.status for r in results] == ["added"] * count
    assert [(d, t) for d, t, _ in calls] == [(i, count) for i in range(1, count + 1)]
    assert [name for _, _, name in calls] == sorted(p.name for p in src.iterdir())
    # Uncommitted work is bounded: a batch is at most max(commit_chunks, half the index) + one file.
    assert len(commits) >= 4
    for size_before, batch in commits[:-1]:
        assert batch <= max(400, size_before // 2) + 5, commits
    assert pipeline.store.snapshot().size == count + 3
    # The index itself is ~2 KB a file here; 64 MB would be 20 KB for every file.
    assert growth < 64 * 1024 * 1024, f"RSS grew by {growth / 1e6:.1f} MB"


# --- questions ----------------------------------------------------------------------------------

ODD_QUESTIONS = [
    "Что министерство опубликовало?",
    "东京的人口是多少？",
    "ما هي سياسة الطاقة؟",
    "क्या बंदरगाह बंद था?",
    "Wie viele Tonnen Weizen? 🚢🌾",
    "<script>alert('x')</script> who rebuilt the lighthouse?",
    "<img src=x onerror=alert(1)>",
    "[click](javascript:alert(1)) **bold** # heading `code` | table |",
    "'; DROP TABLE documents; --",
    "{0} {__class__} %s %n ${HOME} $(rm -rf /)",
    "depot\x00 wheat \x07\x1b[31m",
    "\ud800 lone surrogate about the depot \udfff",
    "\u202eevil right-to-left override ferry",
    "\u200b\u200b\u200b",  # zero-width only: nothing to ask
    "1234567890",
    "None",
    "東" * 10_000,
    "🚢" * 10_000,
    " ".join(f"word{i}" for i in range(2_000)),
]
QUESTION_IDS = [f"q{i}" for i in range(len(ODD_QUESTIONS))]


def assert_well_formed(pipeline: Pipeline, answer: Answer) -> None:
    assert isinstance(answer, Answer) and isinstance(answer.answered, bool)
    assert 0.0 <= answer.score <= 1.0
    if answer.answered:
        assert answer.citations and answer.quote == answer.citations[0].quote
        for c in answer.citations:
            assert c.quote == pipeline.document(c.doc_id).text[c.start : c.end]
    else:
        assert answer.message and not answer.citations and not answer.quote
    for p in answer.passages:
        assert p.text == pipeline.document(p.doc_id).text[p.start : p.end]
    # What `qa ask --json` prints must encode (no lone surrogates).
    json.dumps(answer_json(answer), ensure_ascii=False).encode("utf-8")


@pytest.fixture(scope="module")
def question_pipeline(tmp_path_factory, make_pdf, make_docx) -> Pipeline:
    folder = tmp_path_factory.mktemp("questions")
    pipeline = fake_pipeline(folder / "index")
    pipeline.add(good_files(folder / "docs", make_pdf, make_docx))
    return pipeline


@pytest.mark.parametrize("question", ODD_QUESTIONS, ids=QUESTION_IDS)
def test_odd_questions_are_answered_or_politely_refused(question_pipeline: Pipeline, question: str) -> None:
    assert_well_formed(question_pipeline, question_pipeline.ask(question))


def test_cli_ask_with_undecodable_bytes_in_the_question(tmp_path: Path, files) -> None:
    good, _ = files
    index = tmp_path / "index"
    small_pipeline(index).add(good)
    command = [*child_command("ask", "--json", "--index", str(index), "--model", FAKE_MODEL), b"depot wheat \xff\xfe?"]
    done = subprocess.run(command, env=child_env(), capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    answer = json.loads(done.stdout.decode("utf-8").split("\n", 1)[1])
    assert answer["question"] == "depot wheat \ufffd\ufffd?"


@pytest.mark.e2e
@pytest.mark.parametrize("question", ODD_QUESTIONS, ids=QUESTION_IDS)
def test_odd_questions_with_the_real_model(seeded_pipeline: Pipeline, question: str) -> None:
    """The real tokenizer refuses lone surrogates with a TypeError: Pipeline.ask must clean them."""
    assert_well_formed(seeded_pipeline, seeded_pipeline.ask(question))


# --- rebuild and check ----------------------------------------------------------------------------


def _live(index: Path) -> Path:
    return index / (index / "CURRENT").read_text().strip()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in random.Random(3).sample(range(len(data)), max(8, len(data) // 4)):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def _bump_format(index: Path) -> None:
    manifest = _live(index) / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "format_version": 99}))


DAMAGE = {
    "truncated-vectors": lambda index: _truncate(_live(index) / "chunk_vectors.npy"),
    "garbled-faiss": lambda index: _garble(_live(index) / "dense.faiss"),
    "bm25-deleted": lambda index: shutil.rmtree(_live(index) / "bm25"),
    "future-format": _bump_format,
    "garbled-current": lambda index: (index / "CURRENT").write_bytes(b"\xff\xfegen\x00"),
    "current-to-nowhere": lambda index: (index / "CURRENT").write_text("gen-000777\n"),
    "live-generation-deleted": lambda index: shutil.rmtree(_live(index)),
    "documents-json-garbled": lambda index: _garble(_live(index) / "documents.json"),
}


@pytest.fixture(scope="module")
def template(tmp_path_factory, make_pdf, make_docx) -> tuple[Path, list]:
    """An index of the good files, committed twice (so an older generation exists too)."""
    folder = tmp_path_factory.mktemp("template")
    good = good_files(folder / "good", make_pdf, make_docx)
    pipeline = small_pipeline(folder / "index")
    pipeline.add(good[:3])
    pipeline.add(good[3:])
    return folder / "index", pipeline.documents()


@pytest.fixture
def built(tmp_path: Path, template) -> tuple[Path, list]:
    """A private copy of the template index."""
    index = tmp_path / "index"
    shutil.copytree(template[0], index)
    return index, template[1]


def _identity(docs) -> list[tuple]:
    return sorted((d.doc_id, d.title, d.source, d.path, d.pages, d.chunks, d.chars, d.added_at) for d in docs)


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_rebuild_recovers_a_damaged_index(built, damage: str) -> None:
    index, docs = built
    DAMAGE[damage](index)
    with pytest.raises(StoreIndexError, match="qa rebuild"):
        small_pipeline(index).documents()

    pipeline = small_pipeline(index)
    report = pipeline.rebuild()
    assert report.problems == []
    if damage in ("live-generation-deleted", "documents-json-garbled"):
        # The live metadata is gone: the previous generation's is used, so the second add's
        # documents are lost -- unless their texts are all that is left, see the next test.
        assert report.source == "gen-000001"
        assert report.documents == 3
    else:
        assert report.documents == len(docs)
        assert _identity(pipeline.documents()) == _identity(docs)
    assert report.generation == pipeline.store.current_generation()
    pipeline.check()
    survivors = {d.doc_id: d for d in pipeline.documents()}
    answer = pipeline.ask("How many tonnes of wheat does the northern depot hold?")
    assert any(p.source == "depot.txt" for p in answer.passages)
    assert all(p.doc_id in survivors for p in answer.passages)
    assert [p.name for p in index.iterdir() if p.name.startswith("gen-")] == [report.generation]


def test_rebuild_from_texts_alone_when_no_metadata_is_readable(built) -> None:
    index, docs = built
    for generation in index.glob("gen-*"):
        (generation / "documents.json").write_text("{not json")
    report = small_pipeline(index).rebuild()
    assert report.source == "texts" and report.documents == len(docs) and not report.problems
    rebuilt = small_pipeline(index).documents()
    assert {d.doc_id for d in rebuilt} == {d.doc_id for d in docs}
    assert {d.title for d in rebuilt} >= {"Depot report", "# Council minutes"}  # first lines
    small_pipeline(index).check()


def test_rebuild_leaves_out_a_document_whose_text_is_damaged(built) -> None:
    index, docs = built
    victim = next(d for d in docs if d.source == "depot.txt")
    (index / "texts" / f"{victim.doc_id}.txt").write_text("The depot report was overwritten.\n")
    with pytest.raises(StoreIndexError, match=r"depot\.txt.*does not match its id.*qa rebuild"):
        small_pipeline(index).check()
    assert len(small_pipeline(index).documents()) == len(docs)  # loading alone does not notice

    report = small_pipeline(index).rebuild()
    assert report.documents == len(docs) - 1
    assert len(report.problems) == 1 and "depot.txt" in report.problems[0] and "damaged" in report.problems[0]
    assert victim.doc_id not in {d.doc_id for d in small_pipeline(index).documents()}
    small_pipeline(index).check()
    assert not (index / "texts" / f"{victim.doc_id}.txt").exists()


def test_rebuild_with_another_model_re_embeds(built) -> None:
    index, docs = built
    with pytest.raises(StoreIndexError, match=r"qa rebuild --model fake-32"):
        small_pipeline(index, model="fake-32").documents()
    pipeline = small_pipeline(index, model="fake-32")
    assert isinstance(pipeline.embedder, HashEmbedder) and pipeline.embedder.dim == 32
    report = pipeline.rebuild()
    assert report.documents == len(docs)
    snap = pipeline.store.snapshot()
    assert snap.model == "fake-32" and snap.dim == 32 and snap.chunk_vectors.shape[1] == 32
    assert _identity(pipeline.documents()) == _identity(docs)
    pipeline.check()
    with pytest.raises(StoreIndexError, match="fake-32"):
        small_pipeline(index).documents()  # the old model is now the mismatch


def test_rebuild_of_a_missing_index_does_nothing(tmp_path: Path) -> None:
    report = small_pipeline(tmp_path / "nothing").rebuild()
    assert report.source is None and report.documents == 0
    assert not (tmp_path / "nothing" / "CURRENT").exists()


def test_rebuild_is_for_the_local_store_alone(tmp_path: Path) -> None:
    """Rebuilding re-creates the local index from its texts; another backend is refused, saying what to do."""
    pipeline = small_pipeline(tmp_path / "index")
    pipeline.store = object()  # a backend without `recover_documents`
    with pytest.raises(StoreIndexError, match="qa rebuild re-creates the local index"):
        pipeline.rebuild()


def test_texts_are_read_back_exactly_even_with_carriage_returns(tmp_path: Path) -> None:
    """Offsets count every character: a stored "\\r\\n" must not come back as "\\n"."""
    import hashlib

    text = "Line one ends in CR LF.\r\nLine two has a lone CR.\rLine three.\n"
    doc = Document(hashlib.sha256(text.encode()).hexdigest()[:16], "t", "cr.pdf", "/x/cr.pdf", text)
    pipeline = fake_pipeline(tmp_path / "index")
    with pipeline.store.lock():
        pipeline.store.commit(embed_documents(pipeline.embedder, [pipeline._chunked(doc)]), set())
    assert pipeline.document(doc.doc_id).text == text
    pipeline.check()


def test_check_finds_what_loading_does_not(built) -> None:
    index, _ = built
    store = Store(index, FAKE_MODEL)
    snap = store.snapshot()
    assert snap.check()["documents"] == 8  # the good files
    tampered = Store(index, FAKE_MODEL).snapshot()
    tampered.document_frequency = tampered.document_frequency + 1
    tampered.verify()  # the cheap check passes
    with pytest.raises(StoreIndexError, match="BM25 document frequencies"):
        tampered.check()
    spans = np.asarray(snap.sentence_spans).copy()
    spans[0] = (spans[0][0], spans[0][1] + 10_000)
    tampered = Store(index, FAKE_MODEL).snapshot()
    tampered.sentence_spans = spans
    with pytest.raises(StoreIndexError, match="outside their chunks"):
        tampered.check()


def _assert_exit_2_naming_rebuild(done) -> None:
    assert done.returncode == 2, (done.args, done.stdout, done.stderr)
    assert done.stderr.startswith("qa: ") and "qa rebuild" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("damage", ["garbled-current", "future-format", "current-to-nowhere"])
def test_cli_list_on_a_damaged_index_exits_2_naming_rebuild(built, damage: str) -> None:
    index, _ = built
    DAMAGE[damage](index)
    _assert_exit_2_naming_rebuild(run_qa("--index", str(index), "--model", FAKE_MODEL, "list"))


def test_cli_on_a_damaged_index_exits_2_naming_rebuild_then_rebuild_repairs(built, tmp_path: Path) -> None:
    index, docs = built
    DAMAGE["truncated-vectors"](index)
    common = ("--index", str(index), "--model", FAKE_MODEL)
    note = tmp_path / "note.txt"
    note.write_text(DEPOT)
    for command in (["ask", "Who rebuilt the lighthouse?"], ["list"], ["add", str(note)], ["check"]):
        _assert_exit_2_naming_rebuild(run_qa(*common, *command))
    done = run_fake_qa("rebuild", *common)
    assert done.returncode == 0, done.stderr
    assert f"{len(docs)} documents re-embedded with {FAKE_MODEL}" in done.stdout
    done = run_qa(*common, "check")
    assert done.returncode == 0 and f"{len(docs)} documents" in done.stdout, done.stderr


def test_cli_rebuild_model_switches_the_model(built) -> None:
    index, docs = built
    done = run_fake_qa("rebuild", "--index", str(index), "--model", "fake-48")
    assert done.returncode == 0, done.stderr
    done = run_qa("--index", str(index), "--model", "fake-48", "check")
    assert done.returncode == 0 and "model fake-48" in done.stdout, done.stderr
    done = run_qa("--index", str(index), "--model", FAKE_MODEL, "list")
    assert done.returncode == 2 and "fake-48" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_rebuild_with_the_real_model_answers_again(tmp_path: Path, seeds_dir: Path) -> None:
    index = tmp_path / "index"
    fake_pipeline(index).add([seeds_dir])  # an index of another model
    _truncate(_live(index) / "chunk_vectors.npy")
    pipeline = Pipeline(Config.load(index_dir=index, seeds_dir=tmp_path / "no-seeds"))
    report = pipeline.rebuild()
    assert report.documents == 1 and not report.problems
    pipeline.check()
    answer = pipeline.ask("Who is Finland's Defense Minister?")
    assert answer.answered and "Antti Häkkänen" in answer.quote, answer


# --- nothing code-executing is loaded from the index ------------------------------------------------


def _calls(source: str, name: str) -> list[str]:
    """The full text of each call `name(...)` in source (balanced parentheses)."""
    found = []
    for match in re.finditer(re.escape(name) + r"\(", source):
        depth, i = 1, match.end()
        while depth and i < len(source):
            depth += {"(": 1, ")": -1}.get(source[i], 0)
            i += 1
        found.append(source[match.start() : i])
    return found


def test_no_pickle_or_code_executing_loader_in_the_package() -> None:
    sources = {p.relative_to(QA_ROOT.parent).as_posix(): p.read_text(encoding="utf-8") for p in QA_ROOT.rglob("*.py")}
    assert "qa/store/local.py" in sources and "qa/pipeline.py" in sources
    forbidden = [
        r"allow_pickle\s*=\s*True",
        r"torch\.load\(",
        r"(?<![\w.])eval\(",
        r"(?<![\w.])exec\(",
        r"\bjoblib\b",
        r"\bshelve\b",
        r"\bmarshal\b",
        r"\bdill\b",
        r"\bcloudpickle\b",
        r"yaml\.load\(",
        r"trust_remote_code\s*=\s*True",
    ]
    for name, source in sources.items():
        for pattern in forbidden:
            assert not re.search(pattern, source), f"{name}: {pattern}"
        for call in _calls(source, "np.load") + _calls(source, "BM25.load"):
            assert "allow_pickle=False" in call, f"{name}: {call}"
        if name == "qa/ingest.py":
            # The one use of pickle: the PDF parser's child process and its parent talk over a
            # pipe (code and data both ours); nothing is ever unpickled from a file.
            assert sorted(set(re.findall(r"pickle\.(\w+)\(", source))) == ["dumps", "loads"]
            assert sorted(_calls(source, "pickle.loads")) == [
                "pickle.loads(done.stdout)",
                "pickle.loads(sys.stdin.buffer.read())",
            ]
        else:
            assert not re.search(r"\bpickle\b", source), f"{name} uses pickle"


def test_every_file_in_an_index_loads_without_code_execution(tmp_path: Path, files) -> None:
    import faiss

    good, _ = files
    pipeline = small_pipeline(tmp_path / "index")
    pipeline.add(good[:3])
    pipeline.add(good[3:])
    pipeline.remove(pipeline.documents()[0].doc_id)
    index = pipeline.config.index_dir
    kinds: dict[str, int] = {}
    for path in sorted(p for p in index.rglob("*") if p.is_file()):
        data = path.read_bytes()
        assert not data.startswith(b"\x80"), f"{path} looks like a pickle"
        kind = path.suffix or path.name
        kinds[kind] = kinds.get(kind, 0) + 1
        if path.suffix == ".npy":
            assert np.load(path, allow_pickle=False).dtype != object, path
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                assert all(archive[k].dtype != object for k in archive.files), path
        elif path.suffix == ".json":
            json.loads(data.decode("utf-8"))
        elif path.suffix == ".faiss":
            assert faiss.read_index(str(path)).ntotal > 0
        elif path.suffix == ".txt" or path.name == "CURRENT":
            data.decode("utf-8")
        elif path.name == ".lock":
            assert data == b""
        else:
            pytest.fail(f"unexpected file in the index: {path.relative_to(index)}")
    assert kinds[".npy"] >= 2 * 15 and kinds[".faiss"] == 2 and kinds[".json"] >= 8
