"""Load test of the chat's Gradio API: many gradio_client clients asking the seed questions at once
while documents are being added through the API. Prints throughput and latency percentiles.

    .venv/bin/python bench/load.py                      # 20 clients x 25 questions, own server
    .venv/bin/python bench/load.py --clients 5 --questions 5
    .venv/bin/python bench/load.py --url http://127.0.0.1:7860/ [--auth user:password]

Without --url it starts `qa serve` in a child process on a free loopback port over a fresh temporary
index built from seeds/ (the child loads the model and embeds the seeds; that start-up is not timed),
and stops it afterwards. With --url the server must hold the seed document (`qa serve` seeds an empty
index by itself). Every answer is checked against tests/eval/seed_questions.jsonl: answerable
questions must quote an expected answer verbatim and cite the seed document at the right offsets;
unanswerable ones must abstain. Exit status 1 if any answer is wrong or any call fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "seeds"
QUESTIONS = ROOT / "tests" / "eval" / "seed_questions.jsonl"
CALL_TIMEOUT_S = 120


def load_questions(path: Path = QUESTIONS) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def judge(case: dict, result: dict) -> str | None:
    """None if `result` (an /ask_json object) is right for the seed question `case`, else what is wrong."""
    if not case["answers"]:
        if result["answered"] or result["citations"]:
            return f"{case['id']}: should abstain, answered {result['answer']!r}"
        return None
    if not result["answered"]:
        return f"{case['id']}: abstained (score {result['score']})"
    if not any(a.lower() in result["quote"].lower() for a in case["answers"]):
        return f"{case['id']}: quote {result['quote']!r} holds none of {case['answers']}"
    if not result["citations"]:
        return f"{case['id']}: no citation"
    citation = result["citations"][0]
    if citation["source"] != case["doc"]:
        return f"{case['id']}: cited {citation['source']}, expected {case['doc']}"
    text = (SEEDS / case["doc"]).read_text(encoding="utf-8")
    if text[citation["start"] : citation["end"]] != citation["quote"]:
        return f"{case['id']}: quote not verbatim at characters {citation['start']}-{citation['end']}"
    return None


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


@dataclass
class Report:
    clients: int
    per_client: int
    asks: int = 0
    elapsed_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # answered differently than when asked alone
    known_wrong: list[str] = field(default_factory=list)  # already wrong when asked alone, before the load
    errors: list[str] = field(default_factory=list)
    adds: list[dict] = field(default_factory=list)
    add_latencies_ms: list[float] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.asks / self.elapsed_s if self.elapsed_s else 0.0

    def summary(self) -> str:
        lat = self.latencies_ms
        adds = [a for a in self.adds if a.get("status") == "added"]
        add_lat = f", {statistics.median(self.add_latencies_ms):.0f} ms median each" if self.add_latencies_ms else ""
        return (
            f"{self.asks} questions from {self.clients} concurrent clients ({self.per_client} each) in "
            f"{self.elapsed_s:.1f} s: {self.throughput:.1f} questions/s; latency p50 {percentile(lat, 50):.0f} ms, "
            f"p95 {percentile(lat, 95):.0f} ms, max {max(lat, default=float('nan')):.0f} ms; "
            f"{len(adds)}/{len(self.adds)} documents added meanwhile{add_lat}; "
            f"{len(self.wrong)} wrong answers, {len(self.changed)} differing from the single-client answer, "
            f"{len(self.errors)} errors"
            + (f" (already wrong with a single client, not counted: {', '.join(self.known_wrong)})" if self.known_wrong else "")
        )


def _document(k: int) -> str:
    """A small document whose words share nothing with the seed questions: adding it must not change
    their answers. (Overlapping words would: BM25 statistics and the reader's features shift.)"""
    return (
        f"Orchard survey {k}\n"
        f"The apple orchard on Lindholm plot {k} holds {300 + k} trees of the Ingrid Marie variety. "
        "Beekeepers bring hives there every April, and the pickers use wooden ladders painted green.\n"
    )


def key(result: dict) -> tuple:
    """What must not change between two askings of one question: the verdict, quote and citations."""
    return (
        result["answered"],
        result["quote"],
        tuple((c["source"], c["start"], c["end"]) for c in result["citations"]),
    )


def baseline(url: str, questions: list[dict], auth: tuple[str, str] | None = None) -> tuple[dict, list[float]]:
    """Each question asked once by a single client, before any load: {id: /ask_json result}, latencies."""
    from gradio_client import Client

    client = Client(url, auth=auth, verbose=False)
    answers, latencies = {}, []
    for case in questions:
        clock = time.perf_counter()
        answers[case["id"]] = client.predict(case["question"], api_name="/ask_json")
        latencies.append((time.perf_counter() - clock) * 1000)
    return answers, latencies


def run_load(
    url: str,
    clients: int = 20,
    per_client: int = 25,
    add_docs: int = 5,
    auth: tuple[str, str] | None = None,
    questions: list[dict] | None = None,
    reference: dict | None = None,
) -> Report:
    """`clients` threads, each with its own gradio_client Client, ask `per_client` seed questions
    (each client starts at a different question) through /ask_json, while one more client adds
    `add_docs` documents one by one through /add_documents. Clients connect before the clock starts.

    Every answer must be right (`judge`) and, given `reference` (from `baseline`), identical to the
    single-client answer. Questions already wrong in `reference` are listed in `known_wrong` and only
    checked for being unchanged: a concurrency test, not a quality test (tests/eval measures that)."""
    from gradio_client import Client, handle_file

    questions = questions or load_questions()
    reference = reference or {}
    report = Report(clients, per_client)
    report.known_wrong = sorted(c["id"] for c in questions if c["id"] in reference and judge(c, reference[c["id"]]))
    lock = threading.Lock()
    start = threading.Barrier(clients + 2)

    def ready() -> bool:
        """Wait until every client has connected (False if one could not)."""
        try:
            start.wait(timeout=180)
            return True
        except threading.BrokenBarrierError:
            return False

    def connect() -> Client:
        return Client(url, auth=auth, verbose=False)

    def asker(i: int) -> None:
        try:
            client = connect()
        except Exception as exc:  # noqa: BLE001 (report every failure, keep the others running)
            with lock:
                report.errors.append(f"client {i}: cannot connect: {exc!r}")
            start.abort()
            return
        if not ready():
            return
        for j in range(per_client):
            case = questions[(i + j) % len(questions)]
            clock = time.perf_counter()
            try:
                result = client.submit(case["question"], api_name="/ask_json").result(timeout=CALL_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001
                with lock:
                    report.errors.append(f"client {i} {case['id']}: {exc!r}")
                continue
            elapsed = (time.perf_counter() - clock) * 1000
            problem = None if case["id"] in report.known_wrong else judge(case, result)
            alone = reference.get(case["id"])
            changed = alone is not None and key(alone) != key(result)
            with lock:
                report.asks += 1
                report.latencies_ms.append(elapsed)
                if problem:
                    report.wrong.append(problem)
                if changed:
                    report.changed.append(f"{case['id']}: {key(result)} instead of {key(alone)}")

    def adder(folder: Path) -> None:
        try:
            client = connect()
        except Exception as exc:  # noqa: BLE001
            with lock:
                report.errors.append(f"adder: cannot connect: {exc!r}")
            start.abort()
            return
        if not ready():
            return
        for k in range(add_docs):
            path = folder / f"granary-{k}-{os.getpid()}-{time.time_ns()}.txt"
            path.write_text(_document(k), encoding="utf-8")
            clock = time.perf_counter()
            try:
                results = client.submit([handle_file(str(path))], api_name="/add_documents").result(
                    timeout=CALL_TIMEOUT_S
                )
            except Exception as exc:  # noqa: BLE001
                with lock:
                    report.errors.append(f"adder {path.name}: {exc!r}")
                continue
            with lock:
                report.add_latencies_ms.append((time.perf_counter() - clock) * 1000)
                report.adds += results
                report.errors += [f"adder {r['file']}: {r['status']} {r['reason']}" for r in results if r["status"] != "added"]

    with tempfile.TemporaryDirectory(prefix="qa-load-") as folder:
        threads = [threading.Thread(target=asker, args=(i,), daemon=True) for i in range(clients)]
        threads.append(threading.Thread(target=adder, args=(Path(folder),), daemon=True))
        for thread in threads:
            thread.start()
        ready()
        clock = time.perf_counter()
        for thread in threads:
            thread.join(timeout=CALL_TIMEOUT_S * max(per_client, add_docs))
        report.elapsed_s = time.perf_counter() - clock
    return report


# ---------------------------------------------------------------- a server of our own


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(index: Path, port: int, timeout_s: float = 300) -> subprocess.Popen:
    """`qa serve` on 127.0.0.1:port over `index` (seeded from seeds/), returned once it answers HTTP."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env.update(HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", QA_SEEDS_DIR=str(SEEDS))
    server = subprocess.Popen(
        [sys.executable, "-m", "qa.cli", "--index", str(index), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"qa serve exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5):
                return server
        except OSError:
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError(f"qa serve did not answer within {timeout_s:.0f} s")


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    ) if Path("/proc/cpuinfo").exists() else platform.processor()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return f"{os.cpu_count()} cores ({cpu}), load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an already running chat (default: start one on a temporary index)")
    parser.add_argument("--auth", help="user:password for a server started with QA_AUTH")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--questions", type=int, default=25, help="questions per client")
    parser.add_argument("--add-docs", type=int, default=5, help="documents added through the API meanwhile")
    args = parser.parse_args(argv)
    auth = tuple(args.auth.split(":", 1)) if args.auth else None

    server = None
    with tempfile.TemporaryDirectory(prefix="qa-load-index-") as index:
        url = args.url
        if not url:
            port = free_port()
            print(f"starting qa serve on 127.0.0.1:{port} over a fresh index ...", file=sys.stderr)
            clock = time.perf_counter()
            server = start_server(Path(index), port)
            print(f"server ready in {time.perf_counter() - clock:.1f} s", file=sys.stderr)
            url = f"http://127.0.0.1:{port}/"
        try:
            print(f"machine: {machine()}")
            questions = load_questions()
            reference, alone_ms = baseline(url, questions, auth)
            print(
                f"single client, {len(questions)} questions one after another: p50 {percentile(alone_ms, 50):.0f} ms, "
                f"p95 {percentile(alone_ms, 95):.0f} ms"
            )
            report = run_load(url, args.clients, args.questions, args.add_docs, auth, questions, reference)
            print(f"after:   {machine()}")
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=30)
    print(report.summary())
    for line in (report.wrong + report.changed + report.errors)[:20]:
        print(f"  {line}")
    return 1 if report.wrong or report.changed or report.errors else 0


if __name__ == "__main__":
    sys.exit(main())
