"""Scanned documents: OCR speed, how well the words come back, and the answers they give.

On ../shared/eval/scans-public (image-only PDFs: 3 real scans and photocopy-like versions of the
realdocs-public PDFs):
- speed: every PDF added from a cold OCR cache (a fresh QA_CACHE_DIR), pages per second for the
  whole `load_document` (drawing the pages, OCR in parallel, joining the text), then again from the
  cache;
- words: for each simulated scan, the share of the text-layer PDF's words (lower-cased, letters and
  digits) the OCR text holds in the same order (difflib over word lists);
- answers: the set's questions asked of an index of the scans, scored by its README's rule (the
  quote holds a gold answer ignoring whitespace, hyphens and case, and the cited page is the gold
  page; an unanswerable question is right when refused), beside the same questions asked of an
  index of the text-layer PDFs.

    .venv/bin/python bench/ocr.py [--workers N] [--dpi DPI]
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import _common as c

SCANS = c.REPO.parent / "shared" / "eval" / "scans-public"
TEXT_PDFS = c.REPO.parent / "shared" / "eval" / "realdocs-public" / "docs"


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def word_recall(ocr_text: str, reference: str) -> float:
    """The share of the reference's words found in order in the OCR text."""
    ours, theirs = words(ocr_text), words(reference)
    matcher = difflib.SequenceMatcher(None, theirs, ours, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / max(1, len(theirs))


def squeezed(text: str) -> str:
    return re.sub(r"[\s\-‐‑–]", "", text).casefold()


def right(question: dict, answer) -> bool:
    if not question["answers"]:
        return not answer.answered
    if not answer.answered:
        return False
    citation = answer.citations[0]
    return (any(squeezed(g) in squeezed(answer.quote) for g in question["answers"])
            and citation.source == question["doc"] and citation.page == question["page"])


def ask_all(files: list[Path], questions: list[dict]) -> list[bool]:
    from qa.config import Config
    from qa.pipeline import Pipeline

    with tempfile.TemporaryDirectory() as index:
        pipeline = Pipeline(replace(Config.load(), index_dir=Path(index)))
        results = pipeline.add(files)
        refused = [r for r in results if r.status == "refused"]
        assert not refused, refused
        return [right(q, pipeline.ask(q["question"])) for q in questions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, help="OCR processes (default: one per core)")
    parser.add_argument("--dpi", type=int, help="draw PDF pages at this resolution (QA_OCR_DPI)")
    args = parser.parse_args()
    if not SCANS.is_dir():
        raise SystemExit(f"{SCANS} is missing: this benchmark needs ../shared/eval/scans-public")
    from qa import ingest, ocr
    from qa.config import Config

    if not ocr.available():
        raise SystemExit(ocr.INSTALL_HINT)
    if args.dpi:
        os.environ["QA_OCR_DPI"] = str(args.dpi)  # read where the pages are drawn, in the child too
    if args.workers:
        original = ocr.read_pages
        ocr.read_pages = lambda images, progress=None, workers=None: original(images, progress, args.workers)
    scans = sorted((SCANS / "docs").glob("*.pdf"))
    rows, documents = [], {}
    with tempfile.TemporaryDirectory() as cache:
        os.environ["QA_CACHE_DIR"] = cache
        for path in scans:
            timings = []
            for _ in range(2):  # cold, then from the OCR cache
                clock = time.perf_counter()
                doc = ingest.load_document(path, max_bytes=1 << 30, parse_timeout_s=600)
                timings.append(time.perf_counter() - clock)
            documents[path.name] = doc
            text_pdf = TEXT_PDFS / path.name.removeprefix("scan-")
            recall = float("nan")
            if text_pdf.is_file():
                reference = ingest.load_document(text_pdf, max_bytes=1 << 30, parse_timeout_s=600)
                recall = word_recall(doc.text, reference.text)
            rows.append([path.name, doc.pages, timings[0], doc.pages / timings[0], timings[1], recall])
        os.environ.pop("QA_CACHE_DIR")

        questions = [json.loads(line) for line in (SCANS / "questions.jsonl").read_text().splitlines() if line.strip()]
        scanned = ask_all(scans, questions)
        simulated = [i for i, q in enumerate(questions) if q["doc"].startswith("scan-")]
        text_questions = [{**questions[i], "doc": questions[i]["doc"].removeprefix("scan-")} for i in simulated]
        text_files = sorted({TEXT_PDFS / q["doc"] for q in text_questions})
        on_text = ask_all(text_files, text_questions)

    pages = sum(r[1] for r in rows)
    seconds = sum(r[2] for r in rows)
    rows.append(["all", pages, seconds, pages / seconds, sum(r[4] for r in rows), float("nan")])

    def share(flags: list[bool], selected: list[int], answerable: bool) -> str:
        chosen = [flags[k] for k, i in enumerate(selected) if bool(questions[i]["answers"]) == answerable]
        return f"{sum(chosen)} / {len(chosen)}"

    every = list(range(len(questions)))
    scan_flags_simulated = [scanned[i] for i in simulated]
    answer_rows = [
        ["scans, all 8 PDFs", share(scanned, every, True), share(scanned, every, False)],
        ["scans, the 5 simulated", share(scan_flags_simulated, simulated, True), share(scan_flags_simulated, simulated, False)],
        ["the same 5 as text-layer PDFs", share(on_text, simulated, True), share(on_text, simulated, False)],
    ]
    text = "\n\n".join([
        "# OCR of scanned PDFs (../shared/eval/scans-public)",
        c.machine_line(),
        f"Tesseract {ocr._engine_version()}, pages drawn at {Config.load().ocr_dpi} dpi, "
        f"{args.workers or os.cpu_count()} OCR processes.",
        c.table(["file", "pages", "cold s", "pages/s", "cached s", "words of the text PDF found"], rows),
        c.table(["documents", "answerable right (quote and page)", "unanswerable refused"], answer_rows),
    ])
    c.save("ocr", text, {"files": rows, "answers": answer_rows})


if __name__ == "__main__":
    main()
