"""Concurrency: readers while a writer commits, and two writers (processes) at once.

The pipeline is real (ingest, chunking, store, BM25, FAISS, reader) with the hashing embedder of
reliability_helpers; the second writer process is the `qa` CLI with the same embedder.
"""

from __future__ import annotations

import random
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from filelock import Timeout
from reliability_helpers import FAKE_MODEL, child_command, child_env, fake_pipeline, write_corpus

from qa.pipeline import Pipeline
from qa.retrieve import passages
from qa.types import Answer

pytestmark = pytest.mark.timeout(120)


def _texts(paths: list[Path]) -> dict[str, str]:
    from qa.ingest import load_document

    docs = (load_document(p, max_bytes=10**7, parse_timeout_s=30) for p in paths)
    return {d.doc_id: d.text for d in docs}


def _check_answer(answer: Answer, texts: dict[str, str]) -> None:
    """Well-formed, and every quote is verbatim from the document it names."""
    assert isinstance(answer, Answer) and isinstance(answer.answered, bool)
    if answer.answered:
        assert answer.citations and answer.quote == answer.citations[0].quote
        for c in answer.citations:
            assert texts[c.doc_id][c.start : c.end] == c.quote
    else:
        assert answer.message and not answer.citations
    for p in answer.passages:
        assert texts[p.doc_id][p.start : p.end] == p.text


def test_readers_keep_answering_while_a_writer_adds_and_removes(tmp_path: Path) -> None:
    pipeline = fake_pipeline(tmp_path / "index", commit_chunks=10)
    first = write_corpus(tmp_path / "batch-0", 20, prefix="b0")
    texts = _texts(first)
    pipeline.add(first)
    batches = [write_corpus(tmp_path / f"batch-{i}", 10, seed=i, prefix=f"b{i}") for i in range(1, 5)]
    for batch in batches:
        texts.update(_texts(batch))

    errors: list[BaseException] = []
    stop = threading.Event()
    asked = [0]
    newest: list[str] = ["b0tok0"]

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while not stop.is_set():
                question = rng.choice(
                    [f"What is noted about {newest[-1]}?", "Which harbour report mentions the ferry?",
                     f"What was reported about {rng.choice(newest)} on that day?", "How many tonnes?"]
                )  # fmt: skip
                _check_answer(pipeline.ask(question), texts)
                asked[0] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    readers = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    for t in readers:
        t.start()
    generations = set()
    try:
        for i, batch in enumerate(batches, 1):
            results = pipeline.add(batch)
            assert all(r.status == "added" for r in results), results
            generations.add(pipeline.store.current_generation())
            # Answerable at once, without a restart: the unique word of the batch's first file.
            token = f"b{i}tok0"
            newest.append(token)
            answer = pipeline.ask(f"What is noted about {token}?")
            assert any(p.doc_id == results[0].doc_id for p in answer.passages), answer
            if i % 2 == 0:  # removals too: old generations and texts get collected meanwhile
                pipeline.remove(results[1].doc_id)
            assert not errors, errors
    finally:
        stop.set()
        for t in readers:
            t.join(timeout=30)
    assert not errors, errors[0]
    assert asked[0] >= 20, asked
    assert len(generations) == len(batches)
    pipeline.check()
    assert len(pipeline.documents()) == 20 + 4 * 10 - 2


def test_an_old_snapshot_stays_consistent_after_commits(tmp_path: Path) -> None:
    pipeline = fake_pipeline(tmp_path / "index")
    pipeline.add(write_corpus(tmp_path / "a", 10, prefix="a"))
    old_view = pipeline.store.view()
    old = old_view.snap
    docs, ids, vectors = list(old.docs), old.chunk_ids.copy(), np.array(old.chunk_vectors)
    pipeline.add(write_corpus(tmp_path / "b", 10, prefix="b"))
    pipeline.remove(old.docs[0].doc_id)
    assert pipeline.store.snapshot() is not old
    assert old.docs == docs and np.array_equal(old.chunk_ids, ids) and np.array_equal(old.chunk_vectors, vectors)
    old.verify()
    q_vector, hits = pipeline.retrieve(old_view, "What is noted about atok3?", 5)
    found = passages(old_view, hits, pipeline.config.rrf_k)
    assert found and found[0].source == "a-00003.txt"


def test_a_question_on_a_snapshot_collected_meanwhile_is_asked_again(tmp_path: Path, monkeypatch) -> None:
    """A reader that held a snapshot across two commits (a removal, then an add) finds the removed
    document's text collected: that is a stale snapshot, not damage, so ask() tries once more."""
    from qa.store import StaleSnapshot
    from qa.store.local import LocalView

    pipeline = fake_pipeline(tmp_path / "index")
    pipeline.add(write_corpus(tmp_path / "a", 6, prefix="a"))
    stale = pipeline.store.snapshot()
    victim = stale.doc_index[pipeline.documents()[2].doc_id]
    pipeline.remove(stale.docs[victim].doc_id)
    pipeline.add(write_corpus(tmp_path / "b", 2, prefix="b"))
    with pytest.raises(StaleSnapshot, match="try again"):
        stale.text(victim)

    fresh = pipeline.store.view
    handed = iter([LocalView(stale)])
    monkeypatch.setattr(pipeline.store, "view", lambda: next(handed, None) or fresh())
    answer = pipeline.ask("What is noted about atok2?")  # the removed document's own word
    assert answer.passages and all(p.doc_id in {d.doc_id for d in pipeline.documents()} for p in answer.passages)


def _start_cli_writer(index: Path, folder: Path, ready: Path, delay_s: float) -> subprocess.Popen[str]:
    command = child_command("add", "--index", str(index), "--model", FAKE_MODEL, str(folder), delay_s=delay_s, ready=ready)
    return subprocess.Popen(command, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, child: subprocess.Popen[str] | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if child is not None and child.poll() is not None:
            pytest.fail(f"writer ended early: {child.communicate()}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_two_processes_adding_at_once_are_serialised_and_lose_nothing(tmp_path: Path) -> None:
    index = tmp_path / "index"
    mine = fake_pipeline(index)
    mine.add(write_corpus(tmp_path / "start", 5, prefix="s"))
    assert len(mine.documents()) == 5  # this Pipeline now holds a snapshot that will go stale

    theirs_folder = tmp_path / "theirs"
    theirs = write_corpus(theirs_folder, 30, prefix="t")
    ready = tmp_path / "cli-holds-the-lock"
    # `qa add` embeds the 30 small files in one encoder call: ~1.5 s with the lock held.
    child = _start_cli_writer(index, theirs_folder, ready, delay_s=1.5)
    _wait_for(ready, child)

    # The CLI holds the writer lock: nobody else may take it now.
    with pytest.raises(Timeout):
        mine.store.lock().acquire(timeout=0.2)
    ours = write_corpus(tmp_path / "ours", 10, prefix="o")
    results = mine.add(ours)  # waits for the lock, then builds on the CLI's commits
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert "30 added" in out
    assert all(r.status == "added" for r in results)

    expected = set(_texts(theirs)) | set(_texts(ours)) | set(_texts(list((tmp_path / "start").iterdir())))
    assert {d.doc_id for d in mine.documents()} == expected
    assert {d.doc_id for d in fake_pipeline(index).documents()} == expected
    mine.check()


def test_cli_writer_waits_for_an_in_process_writer(tmp_path: Path) -> None:
    index = tmp_path / "index"
    mine = fake_pipeline(index, delay_s=1.5)  # one encoder call for the 30 small files
    ours = write_corpus(tmp_path / "ours", 30, prefix="o")
    holding = threading.Event()
    real_encode = mine._embedder.encode

    def encode(texts):
        holding.set()  # first call: we are inside add(), with the lock held
        return real_encode(texts)

    mine._embedder.encode = encode
    adder = threading.Thread(target=mine.add, args=(ours,))
    adder.start()
    assert holding.wait(30)
    theirs_folder = tmp_path / "theirs"
    theirs = write_corpus(theirs_folder, 10, prefix="t")
    child = _start_cli_writer(index, theirs_folder, tmp_path / "cli-ready", delay_s=0.0)
    out, err = child.communicate(timeout=60)
    adder.join(timeout=60)
    assert child.returncode == 0 and "10 added" in out, err

    expected = set(_texts(theirs)) | set(_texts(ours))
    assert {d.doc_id for d in Pipeline(mine.config).documents()} == expected
    mine.check()
