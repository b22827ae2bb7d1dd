"""Recall@10 of the approximate dense index qa.store.build_dense_index picks for large corpora,
against exact search, with real query vectors (SQuAD question embeddings) over synthetic vectors
drawn around real document embeddings (the SQuAD index's chunk vectors).

    .venv/bin/python bench/ann_recall.py                      # 100k and 1M, two distributions
    .venv/bin/python bench/ann_recall.py --sizes 200000 --compare-hnsw

Distributions (both from the real chunk vectors, renormalised):
- "noise": a real chunk vector + gaussian noise sized for cosine 0.90 to it (the latency bench's
  vectors). Tight clusters of copies: easy for IVF, hard for HNSW (many near-ties).
- "mix":   a random convex mixture of two real chunk vectors + noise (cosine 0.95): vectors
  spread between the real ones, closer to a real large corpus; the harder case for IVF.
The index is used exactly as stored: built by build_dense_index, written with faiss.write_index,
read back, searched with the parameters it carries. One FAISS thread per query (as retrieval
should run; see bench/README.md). Target: recall@10 >= 0.98.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import _common as c


def synthetic(seeds: np.ndarray, n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    dim = seeds.shape[1]
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        end = min(n, start + 100_000)
        idx = np.arange(start, end) % len(seeds)
        if kind == "mix":
            a = rng.random((end - start, 1), dtype=np.float32)
            v = a * seeds[idx] + (1 - a) * seeds[rng.integers(0, len(seeds), end - start)]
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            cosine = 0.95
        else:
            v = seeds[idx].copy()
            cosine = 0.90
        sigma = np.sqrt((1 / cosine**2 - 1) / dim)
        v += rng.standard_normal(v.shape, dtype=np.float32) * np.float32(sigma)
        out[start:end] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def recall(truth: np.ndarray, found: np.ndarray, k: int = 10) -> float:
    return float(np.mean([len(set(t[:k]) & set(f[:k])) / k for t, f in zip(truth, found)]))


def single_query_ms(index, queries: np.ndarray, k: int = 50) -> tuple[float, float]:
    times = []
    for q in queries:
        clock = time.perf_counter()
        index.search(q.reshape(1, -1), k)
        times.append((time.perf_counter() - clock) * 1000)
    return c.pct(times, 50), c.pct(times, 95)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--kinds", default="noise,mix")
    parser.add_argument("--queries", type=int, default=500, help="SQuAD questions used as queries")
    parser.add_argument("--sweep", action="store_true", help="also report recall at other nprobe values")
    parser.add_argument("--compare-hnsw", action="store_true", help="also build HNSW (M=32, efConstruction=80/200)")
    parser.add_argument("--name", default="ann_recall")
    args = parser.parse_args(argv)
    c.require_squad()

    import faiss

    from qa.store import build_dense_index

    faiss.omp_set_num_threads(1)
    pipeline = c.squad_pipeline()
    snap = pipeline.store.snapshot()
    seeds = np.asarray(snap.chunk_vectors, np.float32)
    questions = c.load_questions()
    all_q = c.question_vectors(pipeline, questions)
    rng = np.random.default_rng(0)
    queries = all_q[np.sort(rng.choice(len(all_q), min(args.queries, len(all_q)), replace=False))]

    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        for kind in args.kinds.split(","):
            vectors = synthetic(seeds, n, kind, np.random.default_rng(n))
            ids = np.arange(n, dtype=np.int64) * 2 + 1
            print(f"{n:,} {kind}: exact search ...", file=sys.stderr, flush=True)
            faiss.omp_set_num_threads(c.os.cpu_count() or 1)
            _, truth = faiss.knn(queries, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)
            truth = ids[truth]
            exact = faiss.IndexFlatIP(vectors.shape[1])
            exact.add(vectors[: min(n, 100_000)])
            faiss.omp_set_num_threads(1)
            flat_ms = single_query_ms(exact, queries[:100])[0] * n / min(n, 100_000)
            del exact
            print(f"{n:,} {kind}: build_dense_index ...", file=sys.stderr, flush=True)
            faiss.omp_set_num_threads(c.os.cpu_count() or 1)  # building may use every core
            clock = time.perf_counter()
            index = build_dense_index(vectors, ids)
            build_s = time.perf_counter() - clock
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "dense.faiss"
                faiss.write_index(index, str(path))
                disk_mb = path.stat().st_size / 2**20
                del index
                index = faiss.read_index(str(path))
            faiss.omp_set_num_threads(1)
            inner = faiss.downcast_index(index.index)
            name = type(inner).__name__
            params = f"nlist={inner.nlist}, nprobe={inner.nprobe}" if hasattr(inner, "nprobe") else "exact"
            _, found = index.search(queries, 10)
            p50, p95 = single_query_ms(index, queries[:200])
            rows.append([f"{n:,}", kind, name, params, recall(truth, found), p50, p95, flat_ms, build_s, disk_mb])
            if args.sweep and hasattr(inner, "nprobe"):
                chosen = inner.nprobe
                for probe in sorted({max(1, chosen // 4), max(1, chosen // 2), chosen * 2, chosen * 4} - {chosen}):
                    inner.nprobe = probe
                    _, found = index.search(queries, 10)
                    p50, p95 = single_query_ms(index, queries[:200])
                    rows.append([f"{n:,}", kind, name, f"  nprobe={probe}", recall(truth, found), p50, p95, flat_ms, float("nan"), disk_mb])
                inner.nprobe = chosen
            del index, inner
            if args.compare_hnsw:
                for efc in (80, 200):
                    h = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
                    h.hnsw.efConstruction = efc
                    faiss.omp_set_num_threads(c.os.cpu_count() or 1)
                    clock = time.perf_counter()
                    h.add(vectors)
                    hnsw_s = time.perf_counter() - clock
                    faiss.omp_set_num_threads(1)
                    for ef in (64, 128, 256):
                        h.hnsw.efSearch = ef
                        _, found = h.search(queries, 10)
                        p50, p95 = single_query_ms(h, queries[:200])
                        rows.append([f"{n:,}", kind, "IndexHNSWFlat", f"M=32, efC={efc}, efSearch={ef}", recall(truth, ids[found]), p50, p95, flat_ms, hnsw_s, float("nan")])
                    del h
            del vectors
    lines = [f"# Dense index recall@10 against exact search ({len(queries)} real SQuAD question vectors)", ""]
    lines.append(f"Machine: {c.machine_line()}")
    lines.append("")
    lines.append(
        c.table(
            ["vectors", "distribution", "index", "parameters", "recall@10", "query p50 ms", "query p95 ms", "exact query ms", "build s", "file MB"],
            rows,
        )
    )
    lines.append("")
    worst = min(r[4] for r in rows if not str(r[3]).startswith("  ") and r[2] != "IndexHNSWFlat")
    lines.append(f"Lowest recall@10 of the chosen index: {worst:.4f} (target >= 0.98: {'met' if worst >= 0.98 else 'MISSED'}).")
    lines.append("'exact query ms' = one IndexFlatIP query, measured on 100k vectors and scaled linearly.")
    c.save(args.name, "\n".join(lines), {"rows": rows, "machine": c.machine_line()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
