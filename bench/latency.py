"""Per-stage question latency (p50/p95) and memory, on the real SQuAD corpus and scaled-up copies.

    .venv/bin/python bench/latency.py                 # real corpus, 10k, 100k, 1M chunks
    .venv/bin/python bench/latency.py --sizes 10000   # just one synthetic size
    .venv/bin/python bench/latency.py --no-1m         # skip 1M (its first build takes ~15 min)
    .venv/bin/python bench/latency.py --encoder onnx  # with the ONNX int8 question encoder

Rows:
- "squad (real)": the public SQuAD corpus (24 articles, ~1,050 paragraphs) indexed by the real
  pipeline (`Pipeline.add`) once into .cache/bench/squad-index.
- 10k / 100k / 1M: synthetic scale-ups of that index (bench/_synthetic.py: real vectors plus
  noise, real BM25 tokens perturbed), built through Store.commit up to 100k and by the
  block-wise writer above that (commit keeps every array in RAM twice; see --method).

Each row is measured in a fresh process (model loaded, index opened, 5 warm-up questions), asking
the same SQuAD questions twice through `Pipeline.ask` and reading `Answer.timings_ms`: the first
pass ("cold total") reads the index files wherever the page cache left them, the second is the
steady state. Two reader modes per row (--readers): "fast" (QA_READER_MODEL=none: logistic
reader, no model call) and "answer-model" (the default: the bundled MiniLM answer model reads
the top sentences, the base-size model the best of them); "small-model" (the MiniLM alone) on request. Memory: that
process's RSS after opening the index and loading the model, at the end, and its peak; build
cost is the builder process's wall time and peak RSS. Indexes are cached in .cache/bench/
(delete a folder, or pass --rebuild, to rebuild).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import _common as c

STAGES = ("embed_ms", "dense_ms", "bm25_ms", "fusion_ms", "read_ms", "total_ms")
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
COMMIT_MAX = 100_000  # above this, --method auto builds with the block-wise writer


def scale_dir(n: int, method: str, cosine: float) -> Path:
    return c.CACHE / f"scale-{n}-{method}-c{int(round(cosine * 100))}"


# --- child processes ---------------------------------------------------------------------------


def child_build(n: int, method: str, cosine: float) -> None:
    """Build one synthetic index (fresh folder); print its build stats as JSON."""
    import shutil

    import _synthetic as syn

    from qa.store import Store

    root = scale_dir(n, method, cosine)
    shutil.rmtree(root, ignore_errors=True)
    snap = Store(c.SQUAD_INDEX, syn.MODEL).snapshot()
    base = syn.load_base(snap)
    del snap
    build = syn.build_commit if method == "commit" else syn.build_direct
    stats = build(base, root, n, cosine=cosine)
    stats.update(peak_rss_mb=c.peak_rss_mb(), disk_mb=c.dir_mb(root), load_average=c.load_average()[0])
    (root / "built.json").write_text(json.dumps(stats), encoding="utf-8")
    print(json.dumps(stats))


READER_MODES = {  # the environment of each reader mode
    "fast": {"QA_READER_MODEL": "none"},
    "answer-model": {"QA_READER_MODEL": "bundled", "QA_READER_BASE_MODEL": "bundled"},  # the default: the cascade
    "small-model": {"QA_READER_MODEL": "bundled", "QA_READER_BASE_MODEL": "none"},
}


def child_measure(root: str, n_questions: int, mode: str) -> None:
    """Open an index and the model, ask questions, print per-stage timings and RSS as JSON.

    Two passes over the questions: the first ("cold") finds the index files wherever the page
    cache left them; the second ("warm") is the steady state of a server whose index is cached.
    """
    import faiss

    from qa.config import Config
    from qa.pipeline import Pipeline

    questions = c.load_questions(n_questions)
    rss_start = c.rss_mb()
    clock = time.perf_counter()
    if Path(root) == c.SQUAD_INDEX:
        pipeline = c.squad_pipeline()
    else:
        pipeline = Pipeline(Config.load(index_dir=Path(root)))
    snap = pipeline.store.snapshot()
    open_s = time.perf_counter() - clock
    rss_index = c.rss_mb()
    clock = time.perf_counter()
    pipeline.embedder.encode(["warm up"])
    pipeline.reader.load_models()  # none in the fast mode
    model_s = time.perf_counter() - clock
    rss_loaded = c.rss_mb()
    for q in c.load_questions(n_questions + 5)[-5:]:
        pipeline.ask(q["question"])

    def run_pass() -> tuple[dict[str, list[float]], int]:
        timings: dict[str, list[float]] = {k: [] for k in (*STAGES, "retrieval_ms", "other_ms")}
        answered = 0
        for q in questions:
            answer = pipeline.ask(q["question"])
            t = answer.timings_ms
            if not t:
                continue
            answered += answer.answered
            for k in STAGES:
                timings[k].append(float(t.get(k, 0.0)))
            timings["retrieval_ms"].append(t.get("dense_ms", 0.0) + t.get("bm25_ms", 0.0) + t.get("fusion_ms", 0.0))
            timings["other_ms"].append(t["total_ms"] - sum(t.get(k, 0.0) for k in STAGES[:-1]))
        return timings, answered

    cold, _ = run_pass()
    timings, answered = run_pass()
    dense = snap.dense
    inner = faiss.downcast_index(dense.index) if hasattr(dense, "index") else dense
    print(
        json.dumps(
            {
                "root": root,
                "mode": mode,
                "chunks": snap.size,
                "documents": len(snap.docs),
                "sentences": int(len(snap.sentence_spans)),
                "vocab": len(snap.vocab),
                "dense_index": type(inner).__name__ + (f"(nlist={inner.nlist}, nprobe={inner.nprobe})" if hasattr(inner, "nprobe") else ""),
                "questions": len(timings["total_ms"]),
                "answered": answered,
                "p50": {k: c.pct(v, 50) for k, v in timings.items()},
                "p95": {k: c.pct(v, 95) for k, v in timings.items()},
                "cold_p50": {k: c.pct(v, 50) for k, v in cold.items()},
                "cold_p95": {k: c.pct(v, 95) for k, v in cold.items()},
                "open_s": open_s,
                "model_s": model_s,
                "rss_start_mb": rss_start,
                "rss_index_mb": rss_index,
                "rss_loaded_mb": rss_loaded,
                "rss_end_mb": c.rss_mb(),
                "peak_rss_mb": c.peak_rss_mb(),
                "disk_mb": c.dir_mb(Path(root)),
                "load_average": c.load_average()[0],
                "encoder": getattr(pipeline.embedder, "backend", "torch"),
            }
        )
    )


def run_child(args: list[str], env: dict | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"child {args} failed with exit code {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- orchestration ----------------------------------------------------------------------------------


def ensure_built(n: int, method: str, cosine: float, rebuild: bool) -> dict:
    root = scale_dir(n, method, cosine)
    marker = root / "built.json"
    if marker.is_file() and not rebuild:
        return json.loads(marker.read_text(encoding="utf-8"))
    print(f"building {n:,} chunks ({method}) in {root} ...", file=sys.stderr, flush=True)
    stats = run_child(["_build", str(n), method, str(cosine)])
    print(f"  built in {stats['generate_s'] + stats['build_s']:.0f} s, peak RSS {stats['peak_rss_mb']:.0f} MB", file=sys.stderr, flush=True)
    return stats


def measure_all(args, sizes: list[int]):
    """[(corpus name, build stats, {reader mode: measurement})] for the real corpus and each size."""
    env = {"QA_ENCODER": args.encoder} if args.encoder else {}
    modes = [v for v in args.readers.split(",") if v]
    rows = []

    def measure(name: str, root: Path, build: dict | None) -> None:
        results = {}
        for mode in modes:
            print(f"measuring {name} ({mode}) ...", file=sys.stderr, flush=True)
            results[mode] = run_child(["_measure", str(root), str(args.questions), mode],
                                         {**env, **READER_MODES[mode]})
        rows.append((name, build, results))

    measure("squad (real)", c.SQUAD_INDEX, None)
    for n in sizes:
        how = args.method if args.method != "auto" else ("commit" if n <= COMMIT_MAX else "direct")
        build = ensure_built(n, how, args.cosine, args.rebuild)
        measure(f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M", scale_dir(n, how, args.cosine), build)
    return rows


def report(rows, args) -> tuple[str, dict]:
    modes = [v for v in args.readers.split(",") if v]
    encoder = next(iter(rows[0][2].values()))["encoder"]
    lines = [f"# Question latency by corpus size ({args.questions} SQuAD questions per row, warm process)", ""]
    lines.append(f"Machine: {c.machine_line()}")
    lines.append("")
    lines.append(
        f"Encoder: {encoder}. Synthetic rows: copies of the real corpus at cosine {args.cosine} to the real vectors. "
        "Reader: fast = logistic reader (QA_READER_MODEL=none); answer-model = the default cascade, the bundled "
        "MiniLM answer model reads the ranker's top sentences and the base-size model the reranker's best; "
        "small-model = the MiniLM alone (QA_READER_BASE_MODEL=none)."
    )
    lines.append("Each row: a fresh process asks every question twice; the tables show the second (warm page cache) pass, "
                 "'cold total' the first.")
    lines.append("")
    headers = ["corpus", "reader", "chunks", "dense index", "embed", "dense", "bm25", "fusion", "retrieval", "read", "other", "total", "cold total"]
    for q in (50, 95):
        lines.append(f"p{q} per stage (ms):")
        lines.append("")
        table_rows = []
        for name, _, results in rows:
            for mode in modes:
                m = results[mode]
                p = m[f"p{q}"]
                table_rows.append(
                    [name, mode, m["chunks"], m["dense_index"], p["embed_ms"], p["dense_ms"], p["bm25_ms"], p["fusion_ms"],
                     p["retrieval_ms"], p["read_ms"], p["other_ms"], p["total_ms"], m[f"cold_p{q}"]["total_ms"]]
                )
        lines.append(c.table(headers, table_rows))
        lines.append("")
    lines.append("Memory and disk (MB; RSS of the measuring process, first reader mode; build = the builder process):")
    lines.append("")
    mem_rows = []
    for name, build, results in rows:
        m = results[modes[0]]
        build = build or {}
        mem_rows.append(
            [name, m["chunks"], m["sentences"], m["vocab"], m["disk_mb"], m["open_s"], m["rss_index_mb"] - m["rss_start_mb"],
             m["rss_loaded_mb"], m["rss_end_mb"], m["peak_rss_mb"], build.get("method", "Pipeline.add"),
             build.get("generate_s", float("nan")) + build.get("build_s", float("nan")), build.get("peak_rss_mb", float("nan")),
             m["load_average"]]
        )
    lines.append(
        c.table(
            ["corpus", "chunks", "sentences", "vocab", "index on disk", "open s", "index RSS", "RSS loaded", "RSS end", "peak RSS",
             "build", "build s", "build peak RSS", "load avg"],
            mem_rows,
        )
    )
    lines.append("")
    lines.append("Targets (warm pass):")
    lines.append("")
    checks = []
    for name, _, results in rows:
        for mode in modes:
            m = results[mode]
            p = m["p50"]
            tag = f"{name} {mode}"
            if name == "10k":
                checks.append((f"{tag}: end-to-end p50 <= 25 ms", p["total_ms"], p["total_ms"] <= 25))
                ratio = (p["embed_ms"] + p["retrieval_ms"]) / p["embed_ms"]
                checks.append((f"{tag}: (embedding + retrieval) p50 / embedding p50 <= 1.3", ratio, ratio <= 1.3))
            if name == "1M":
                checks.append((f"{tag}: end-to-end p50 <= 40 ms", p["total_ms"], p["total_ms"] <= 40))
                checks.append((f"{tag}: peak RSS <= 4096 MB", m["peak_rss_mb"], m["peak_rss_mb"] <= 4096))
            if mode == "fast":
                checks.append((f"{tag}: reader p50 <= 15 ms", p["read_ms"], p["read_ms"] <= 15))
    lines.append(c.table(["target", "measured", "met"], [[t, v, "yes" if ok else "NO"] for t, v, ok in checks]))
    data = {"machine": c.machine_line(), "encoder": encoder, "rows": [{"name": n, "build": b, "measure": m} for n, b, m in rows]}
    return "\n".join(lines), data


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_build":
        child_build(int(argv[1]), argv[2], float(argv[3]))
        return 0
    if argv and argv[0] == "_measure":
        child_measure(argv[1], int(argv[2]), argv[3])
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="synthetic sizes in chunks")
    parser.add_argument("--no-1m", action="store_true", help="skip sizes of 1M chunks and more")
    parser.add_argument("--questions", type=int, default=300)
    parser.add_argument("--method", choices=("auto", "commit", "direct"), default="auto")
    parser.add_argument("--cosine", type=float, default=0.90, help="synthetic copy's cosine to its original")
    parser.add_argument("--encoder", choices=("torch", "onnx"), help="default: $QA_ENCODER or torch")
    parser.add_argument("--rebuild", action="store_true", help="rebuild cached synthetic indexes")
    parser.add_argument("--readers", default="fast,answer-model", help="reader modes: fast, answer-model, small-model")
    parser.add_argument("--name", default="latency", help="results file name in bench/results/")
    args = parser.parse_args(argv)
    c.require_squad()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.no_1m:
        sizes = [n for n in sizes if n < 1_000_000]
    rows = measure_all(args, sizes)
    text, data = report(rows, args)
    c.save(args.name, text, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
