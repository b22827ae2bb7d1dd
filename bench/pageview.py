"""The page view (qa.pageview): a PDF page drawn with the quote boxed, cold and cached.

For every page of the eval PDFs (../shared/eval/realdocs-public and ../shared/eval/pdfs): the
first draw (a fresh cache folder: PDFium in its child process, WebP encoding, the character boxes),
a draw from the disk cache (memory emptied), one from memory, and finding a quote on the page
(`locate`: a sentence of the page's own text). Prints p50/p95 per step and the image sizes.

    .venv/bin/python bench/pageview.py [--pages N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import _common as c

from qa import pageview

PDF_FOLDERS = (c.REPO.parent / "shared" / "eval" / "realdocs-public" / "docs", c.REPO.parent / "shared" / "eval" / "pdfs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=40, help="at most this many pages, spread over the PDFs")
    args = parser.parse_args(argv)
    from pypdf import PdfReader

    pages = [(pdf, n) for folder in PDF_FOLDERS if folder.is_dir() for pdf in sorted(folder.glob("*.pdf"))
             for n in range(1, len(PdfReader(pdf).pages) + 1)]
    if not pages:
        raise SystemExit(f"no PDFs under {', '.join(map(str, PDF_FOLDERS))}")
    step = max(1, len(pages) // args.pages)
    pages = pages[::step][: args.pages]
    times: dict[str, list[float]] = {"first draw": [], "from disk": [], "from memory": [], "locate a sentence": []}
    sizes, found = [], 0
    with tempfile.TemporaryDirectory() as cache:
        os.environ["QA_CACHE_DIR"] = cache
        for pdf, number in pages:
            for step_name in ("first draw", "from disk", "from memory"):
                if step_name == "from disk":
                    pageview._memory.clear()
                clock = time.perf_counter()
                page = pageview.render(pdf, number)
                times[step_name].append((time.perf_counter() - clock) * 1000)
            sizes.append(len(page.image) / 1024)
            words = page.text.split()
            quote = " ".join(words[len(words) // 2 : len(words) // 2 + 25])
            clock = time.perf_counter()
            found += pageview.locate(page, quote, None, 0.5) is not None if quote else 0
            times["locate a sentence"].append((time.perf_counter() - clock) * 1000)
    rows = [[name, len(v), c.pct(v, 50), c.pct(v, 95)] for name, v in times.items()]
    text = "\n".join(
        [
            f"## Page view: {len(pages)} pages of {len({p for p, _ in pages})} PDFs, {pageview.PAGE_WIDTH_PX} px wide",
            c.machine_line(),
            "",
            c.table(["step", "pages", "p50 ms", "p95 ms"], rows),
            "",
            f"WebP image p50 {c.pct(sizes, 50):.0f} KB, p95 {c.pct(sizes, 95):.0f} KB; a 25-word run of the page's "
            f"own text found on {found} of {len(pages)} pages",
        ]
    )
    c.save("pageview", text, {"times_ms": times, "image_kb": sizes, "found": found, "pages": len(pages)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
