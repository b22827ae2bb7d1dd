"""Run every benchmark in turn; each prints its table and saves it under bench/results/.

    .venv/bin/python bench/run_all.py            # everything (the 1M build takes a while)
    .venv/bin/python bench/run_all.py --quick    # no 1M, fewer questions: about 10-20 minutes
    make bench                                   # the same as the first line

Before starting it waits (up to --wait-s) for the machine's 1-minute load average to fall below
--max-load, and every table states the load it was measured under: compare ratios within a run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import _common as c


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip 1M chunks, fewer questions")
    parser.add_argument("--max-load", type=float, default=1.0)
    parser.add_argument("--wait-s", type=float, default=300)
    parser.add_argument("--only", help="comma-separated subset: latency,ann_recall,indexing,onnx,startup,peer,memory,pageview")
    args = parser.parse_args(argv)
    c.require_squad()
    load = c.wait_for_quiet(args.max_load, args.wait_s)
    print(f"load average {load:.2f} at start", flush=True)
    quick = args.quick
    steps = {
        "latency": ["latency.py", *(["--no-1m", "--questions", "100"] if quick else [])],
        "ann_recall": ["ann_recall.py", *(["--sizes", "100000", "--queries", "300"] if quick else ["--sweep"])],
        "indexing": ["indexing.py", *(["--docs", "6"] if quick else [])],
        "onnx": ["onnx_runtime.py", *(["--questions", "1000", "--reader-questions", "1000"] if quick else [])],
        "startup": ["startup.py", *(["--runs", "3"] if quick else [])],
        "peer": ["peer.py", *(["--questions", "300"] if quick else [])],
        "memory": ["memory.py", *(["--no-1m"] if quick else [])],
        "pageview": ["pageview.py", *(["--pages", "15"] if quick else [])],
    }
    wanted = args.only.split(",") if args.only else list(steps)
    failed = []
    for name in wanted:
        print(f"\n===== {name} =====", flush=True)
        clock = time.perf_counter()
        done = subprocess.run([sys.executable, str(c.BENCH / steps[name][0]), *steps[name][1:]])
        print(f"({name}: {time.perf_counter() - clock:.0f} s, exit {done.returncode})", flush=True)
        if done.returncode:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
