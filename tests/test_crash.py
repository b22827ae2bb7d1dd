"""Crash safety: `qa add` SIGKILLed at every step of a commit and at random moments.

The writer is the real CLI in a child process, with the hashing embedder of reliability_helpers
(no model load) and small commit batches. After every kill the index must open, pass the deep
check, and hold every document whole (all its chunks and sentences) or not at all; the next
writer must not be blocked by the dead one's lock file or half-written folders.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reliability_helpers import (
    FAKE_MODEL,
    KILL_POINTS,
    MILVUS_KILL_POINTS,
    child_command,
    child_env,
    expected_layout,
    milvus_layout,
    run_qa,
    write_corpus,
)

from qa.store import Store

pytestmark = pytest.mark.timeout(600)  # bounded, with room for a loaded 2-core machine

FILES_PER_ROUND = 15
MIN_KILLS = 15
SEED = 20240611


def _start(index: Path, folders: list[Path], kill_at: str | None = None, **env: str) -> subprocess.Popen[str]:
    args = ["add", "--index", str(index), "--model", FAKE_MODEL, *map(str, folders)]
    return subprocess.Popen(
        child_command(*args, kill_at=kill_at),
        env=child_env(QA_COMMIT_CHUNKS="8", **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_ready(child: subprocess.Popen[str]) -> None:
    line = child.stdout.readline()  # printed once the CLI is imported, before any work
    assert line.strip() == "READY", (line, child.stderr.read() if child.poll() is not None else "")


def _finish(child: subprocess.Popen[str], timeout: float = 60) -> tuple[int, str]:
    try:
        _, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        _, err = child.communicate()
        pytest.fail(f"writer hung (a stale lock?): {err[-2000:]}")
    return child.returncode, err


def assert_whole_documents(index: Path, expected: dict[str, tuple[int, int]]) -> int:
    """The index opens, passes the deep check, and each document is complete. Returns its size."""
    snap = Store(index, FAKE_MODEL).snapshot()
    summary = snap.check()
    chunks = snap.infos()
    for i, (meta, info) in enumerate(zip(snap.docs, chunks)):
        assert meta.doc_id in expected, f"unknown document {meta.doc_id}"
        want_chunks, want_sentences = expected[meta.doc_id]
        assert info.chunks == want_chunks, f"{meta.source}: {info.chunks} of {want_chunks} chunks"
        positions = [p for p in range(snap.size) if snap.chunk_doc[p] == i]
        sentences = sum(len(snap.sentences_of(p)) for p in positions)
        assert sentences == want_sentences, f"{meta.source}: {sentences} of {want_sentences} sentences"
    assert len({m.doc_id for m in snap.docs}) == len(snap.docs), "a document is in the index twice"
    assert summary["documents"] == len(snap.docs)
    return len(snap.docs)


def test_leftovers_of_a_dead_writer_neither_block_nor_stay(tmp_path: Path) -> None:
    """A writer killed while holding the lock, with half-written files around: the next writer
    gets the lock at once (the OS drops a dead process's flock) and its commit removes the debris."""
    from reliability_helpers import fake_pipeline

    index = tmp_path / "index"
    pipeline = fake_pipeline(index)
    pipeline.add(write_corpus(tmp_path / "a", 3, prefix="a"))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, signal, sys; from filelock import FileLock; FileLock(sys.argv[1]).acquire(); "
            "print('LOCKED', flush=True); os.kill(os.getpid(), signal.SIGKILL)",
            str(index / ".lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "LOCKED"
    assert holder.wait(timeout=10) == -signal.SIGKILL
    debris = [index / ".tmp-gen-000009-4242", index / ".CURRENT.4242.tmp", index / "texts" / ".0123abcd.txt.4242.tmp"]
    debris[0].mkdir()
    (debris[0] / "chunk_ids.npy").write_bytes(b"\x93NUMPY half")
    debris[1].write_text("gen-000009")
    debris[2].write_text("half a text")

    lock = pipeline.store.lock()
    lock.acquire(timeout=2)  # raises filelock.Timeout if the dead writer still held it
    lock.release()
    started = time.monotonic()
    results = pipeline.add(write_corpus(tmp_path / "b", 2, prefix="b"))
    assert time.monotonic() - started < 10 and [r.status for r in results] == ["added", "added"]
    assert not any(p.exists() for p in debris)
    assert pipeline.check()["documents"] == 5


def test_sigkilled_writer_leaves_whole_documents_or_none(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    index = tmp_path / "index"
    folders: list[Path] = []
    expected: dict[str, tuple[int, int]] = {}

    def new_round() -> list[Path]:
        folder = tmp_path / f"batch-{len(folders):02d}"
        for path in write_corpus(folder, FILES_PER_ROUND, seed=len(folders), prefix=f"r{len(folders)}"):
            doc_id, chunks, sentences = expected_layout(path)
            expected[doc_id] = (chunks, sentences)
        folders.append(folder)
        return folders

    # Round 0 runs to the end: a first generation, and how long a run takes.
    started = time.monotonic()
    child = _start(index, new_round())
    _wait_ready(child)
    ready_at = time.monotonic()
    code, err = _finish(child)
    assert code == 0, err
    duration = time.monotonic() - ready_at
    assert time.monotonic() - started < 30
    assert assert_whole_documents(index, expected) == FILES_PER_ROUND

    # Every step of a commit once (some on a later commit of the run), then random moments.
    plan = [f"{point}:{n}" for point, n in zip(KILL_POINTS, (3, 5, 1, 2, 1, 1, 1))]
    plan += [f"{point}:1" for point in ("rename", "current_tmp", "write_text")]
    kills, random_kills, completed, sizes = 0, 0, 0, []
    rounds = 0
    while kills < MIN_KILLS or random_kills < 5:
        rounds += 1
        assert rounds <= 30, f"only {kills} kills in 30 rounds"
        point = plan.pop(0) if plan else None
        child = _start(index, new_round(), kill_at=point)
        _wait_ready(child)
        if point is None:
            time.sleep(rng.uniform(0.0, duration * 1.2))
            child.send_signal(signal.SIGKILL)
        code, err = _finish(child)
        if code == -signal.SIGKILL:
            kills += 1
            random_kills += point is None
        else:
            assert point is None and code == 0, (point, code, err[-2000:])
            completed += 1  # the random moment came after the end
        assert "Traceback" not in err, err

        # The dead writer's lock was released by the OS: a new writer gets it at once.
        lock = Store(index, FAKE_MODEL).lock()
        lock.acquire(timeout=2)
        lock.release()
        sizes.append(assert_whole_documents(index, expected))

    # A last, undisturbed run completes every batch and cleans up after the dead writers.
    child = _start(index, folders)
    _wait_ready(child)
    code, err = _finish(child)
    assert code == 0, err
    assert assert_whole_documents(index, expected) == len(expected)
    leftovers = [p.name for p in index.rglob("*") if p.name.startswith(".tmp-") or p.name.endswith(".tmp")]
    assert leftovers == []
    assert len([p for p in index.iterdir() if p.name.startswith("gen-")]) <= 2
    texts = {p.stem for p in (index / "texts").iterdir()}
    assert texts == set(expected)
    done = run_qa("--index", str(index), "--model", FAKE_MODEL, "check")
    assert done.returncode == 0 and f"{len(expected)} documents" in done.stdout, done.stderr
    print(f"{kills} kills ({kills - random_kills} at commit steps, {random_kills} random), "
          f"{completed} random runs finished first; documents after each kill: {sizes}")
    assert kills >= MIN_KILLS


def test_sigkilled_milvus_writer_leaves_whole_documents_or_none(tmp_path: Path) -> None:
    """The same on Milvus Lite (QA_STORE=milvus), which has no atomic switch: a commit journals
    what it adds and removes, and a document's row is written after its chunks and sentences.
    After each kill a view shows whole documents only; the next writer finishes the dead commit
    (even with nothing of its own to commit), leaving no orphan rows."""
    pytest.importorskip("pymilvus")
    pytest.importorskip("milvus_lite")
    index = tmp_path / "index"
    expected: dict[str, tuple[int, int]] = {}
    folders: list[Path] = []

    def new_round() -> list[Path]:
        folder = tmp_path / f"batch-{len(folders):02d}"
        for path in write_corpus(folder, 20, seed=len(folders), prefix=f"m{len(folders)}"):
            doc_id, chunks, sentences = expected_layout(path)
            expected[doc_id] = (chunks, sentences)
        folders.append(folder)
        return [folder]

    def assert_whole() -> dict:
        shown = milvus_layout(index)
        for doc_id, (chunks, sentences) in shown["documents"].items():
            assert doc_id in expected and [chunks, sentences] == list(expected[doc_id]), (doc_id, chunks, sentences)
        return shown

    child = _start(index, new_round(), QA_STORE="milvus")
    _wait_ready(child)
    assert _finish(child, timeout=120)[0] == 0
    # Each of a commit's calls to Milvus, in a run's first commit (8 chunks: 8 documents here,
    # 4 inserts each) and in its second; write_state 1 is the journal, or the finishing of the
    # commit the last kill left.
    calls = {"milvus_write_state": (1, 2, 3), "milvus_delete": (1, 3), "milvus_insert": (3, 30, 40), "milvus_flush": (1, 2)}
    plan = [f"{point}:{n}" for point in MILVUS_KILL_POINTS for n in calls[point]]
    pending_seen = 0
    for kill_at in plan:
        child = _start(index, new_round(), kill_at=kill_at, QA_STORE="milvus")
        _wait_ready(child)
        code, err = _finish(child, timeout=120)
        assert code == -signal.SIGKILL, (kill_at, code, err[-2000:])
        pending_seen += assert_whole()["pending"] is not None

    # A run that has nothing new to add still finishes the last dead commit.
    child = _start(index, folders[:1], QA_STORE="milvus")
    _wait_ready(child)
    assert _finish(child, timeout=120)[0] == 0
    assert assert_whole()["pending"] is None

    # An undisturbed run over every batch: all documents whole, no orphan rows, `qa check` passes.
    child = _start(index, folders, QA_STORE="milvus")
    _wait_ready(child)
    code, err = _finish(child, timeout=120)
    assert code == 0, err
    shown = assert_whole()
    assert set(shown["documents"]) == set(expected)
    assert shown["rows"] == [sum(c for c, _ in expected.values()), sum(s for _, s in expected.values())]
    done = run_qa("--index", str(index), "--model", FAKE_MODEL, "check", QA_STORE="milvus")
    assert done.returncode == 0 and f"{len(expected)} documents" in done.stdout, done.stderr
    assert pending_seen >= 4, "the kills should have left journals to finish"
