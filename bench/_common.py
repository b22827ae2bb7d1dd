"""Shared helpers for the benchmarks: paths, the cached SQuAD index, percentiles, tables, RSS.

Every benchmark runs as `.venv/bin/python bench/<name>.py` from the repository root (or anywhere:
paths are resolved from this file). Caches live in `.cache/bench/` (gitignored); printed tables
are also saved to `bench/results/` (gitignored).
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SQUAD = Path(os.environ.get("QA_BENCH_SQUAD", REPO.parent / "shared" / "eval" / "squad-dev-public"))
SQUAD_DOCS = SQUAD / "docs"
SQUAD_QUESTIONS = SQUAD / "questions.jsonl"
CACHE = Path(os.environ.get("QA_BENCH_CACHE", REPO / ".cache" / "bench"))
RESULTS = BENCH / "results"
SQUAD_INDEX = CACHE / "squad-index"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def require_squad() -> None:
    """Exit 0 with a clear message when the public SQuAD corpus is not on this machine."""
    if not SQUAD_DOCS.is_dir() or not SQUAD_QUESTIONS.is_file():
        print(f"SKIPPED: the public SQuAD corpus is absent ({SQUAD_DOCS} and {SQUAD_QUESTIONS} are needed;")
        print("set QA_BENCH_SQUAD to a folder holding docs/*.txt and questions.jsonl).")
        sys.exit(0)


def load_questions(limit: int | None = None, answerable: bool = True) -> list[dict]:
    rows = []
    with open(SQUAD_QUESTIONS, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                if answerable and not row.get("answers"):
                    continue
                rows.append(row)
    if limit is not None and limit < len(rows):
        # A spread over every article, not the first few articles' questions.
        picks = np.linspace(0, len(rows) - 1, limit).round().astype(int)
        rows = [rows[i] for i in picks]
    return rows


def squad_pipeline(encoder: str | None = None, index_dir: Path | None = None):
    """The real pipeline over the SQuAD public corpus, indexed once into the cache folder."""
    from qa.config import Config
    from qa.pipeline import Pipeline

    overrides: dict[str, object] = {"index_dir": index_dir or SQUAD_INDEX}
    if encoder is not None:
        overrides["encoder"] = encoder
    pipeline = Pipeline(Config.load(**overrides))
    if not pipeline.store.view().chunk_count:
        clock = time.perf_counter()
        print(f"indexing {SQUAD_DOCS} into {overrides['index_dir']} (once; cached) ...", file=sys.stderr, flush=True)
        pipeline.add([SQUAD_DOCS])
        print(f"  done in {time.perf_counter() - clock:.0f} s", file=sys.stderr, flush=True)
    return pipeline


def question_vectors(pipeline, questions: list[dict], name: str = "squad-questions") -> np.ndarray:
    """Question embeddings, cached by the questions' text (they cost a model call each)."""
    import hashlib

    key = hashlib.sha256("\n".join(q["question"] for q in questions).encode()).hexdigest()[:12]
    model = str(getattr(pipeline.embedder, "backend", "torch"))
    path = CACHE / f"{name}-{model}-{key}.npy"
    if path.is_file():
        return np.load(path)
    vectors = pipeline.embedder.encode([q["question"] for q in questions])
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


# --- measuring ---------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else float("nan")


def rss_mb() -> float:
    """Resident set size now (MB)."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dir_mb(path: Path) -> float:
    total = 0
    seen: set[tuple[int, int]] = set()
    for p in Path(path).rglob("*"):
        if p.is_file():
            st = p.stat()
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total / 2**20


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def machine_line() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    one, five, fifteen = load_average()
    return (
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {os.cpu_count()} cores ({cpu}); Python {platform.python_version()}; "
        f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min)"
    )


def wait_for_quiet(max_load: float = 1.0, timeout_s: float = 0.0) -> float:
    """Wait (up to timeout_s) for the 1-minute load average to drop below max_load; return it."""
    deadline = time.time() + timeout_s
    while os.getloadavg()[0] >= max_load and time.time() < deadline:
        time.sleep(10)
    return os.getloadavg()[0]


# --- output ------------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table (numbers right-aligned)."""

    def cell(v: object) -> str:
        if isinstance(v, float):
            if v != v:
                return "n/a"
            return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    numeric = [bool(cells) and all(isinstance(row[i], (int, float)) for row in rows) for i in range(len(headers))]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |"]
    out.append("|" + "|".join(("-" * (w + 1) + ":") if num else ("-" * (w + 2)) for w, num in zip(widths, numeric)) + "|")
    for row in cells:
        out.append("| " + " | ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)) + " |")
    return "\n".join(out)


def save(name: str, text: str, data: object | None = None) -> None:
    """Print `text` and save it (and optional JSON data) under bench/results/."""
    print(text, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(text + "\n", encoding="utf-8")
    if data is not None:
        (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2, default=float) + "\n", encoding="utf-8")
