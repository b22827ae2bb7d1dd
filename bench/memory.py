"""Memory and disk by corpus size: index size on disk, RSS of a process serving questions (index
opened + model loaded), its peak, and the builder's peak RSS.

    .venv/bin/python bench/memory.py [--sizes 10000,100000,1000000] [--no-1m]

Uses (and builds when missing) the same cached indexes as bench/latency.py, each measured in a
fresh process asking 20 questions. bench/latency.py prints the same columns beside its timings;
this script is the quick way to get only memory.
"""

from __future__ import annotations

import argparse
import sys

import _common as c
import latency


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(map(str, latency.DEFAULT_SIZES)))
    parser.add_argument("--no-1m", action="store_true")
    parser.add_argument("--cosine", type=float, default=0.90)
    parser.add_argument("--name", default="memory")
    args = parser.parse_args(argv)
    c.require_squad()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.no_1m:
        sizes = [n for n in sizes if n < 1_000_000]
    rows = []
    real = latency.run_child(["_measure", str(c.SQUAD_INDEX), "20", "fast"], {"QA_READER_MODEL": "none"})
    rows.append(["squad (real)", real, {}])
    for n in sizes:
        how = "commit" if n <= latency.COMMIT_MAX else "direct"
        build = latency.ensure_built(n, how, args.cosine, rebuild=False)
        m = latency.run_child(["_measure", str(latency.scale_dir(n, how, args.cosine)), "20", "fast"], {"QA_READER_MODEL": "none"})
        rows.append([f"{n:,}", m, build])
    lines = ["# Memory and disk by corpus size", "", f"Machine: {c.machine_line()}", ""]
    table_rows = []
    for name, m, build in rows:
        table_rows.append(
            [
                name,
                m["chunks"],
                m["dense_index"],
                m["disk_mb"],
                m["rss_start_mb"],
                m["rss_index_mb"] - m["rss_start_mb"],
                m["rss_loaded_mb"],
                m["rss_end_mb"],
                m["peak_rss_mb"],
                build.get("peak_rss_mb", float("nan")),
            ]
        )
    lines.append(
        c.table(
            ["corpus", "chunks", "dense index", "index on disk MB", "RSS before MB", "index opened +MB", "+ model MB", "after 20 questions MB", "peak RSS MB", "builder peak RSS MB"],
            table_rows,
        )
    )
    lines.append("")
    lines.append("RSS includes the memory-mapped chunk/sentence vectors only as far as they were read.")
    c.save(args.name, "\n".join(lines), {"rows": [[n, m, b] for n, m, b in rows]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
