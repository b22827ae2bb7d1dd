"""Test-only helpers for the reliability tests (test_reliability, test_crash, test_concurrency).

- `HashEmbedder`: a deterministic bag-of-words hashing embedder, so that adding thousands of
  files or killing a writer a dozen times costs no model load. It is installed on one Pipeline
  (`fake_pipeline`) or, in a child process, on the Pipeline class: product code has no switch
  for it.
- Run as a script, this file is `qa` with the fake embedder: `python reliability_helpers.py
  [--delay S] [--ready FILE] [--kill-at POINT:N] -- add --index I --model fake-hash folder`.
  `--kill-at` SIGKILLs the process itself at the N-th call of one step of a commit, so a crash
  can be placed exactly between two steps (see KILL_POINTS).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FAKE_MODEL = "fake-hash"
_WORD = re.compile(r"\w+")


class HashEmbedder:
    """Unit vectors from hashed words: texts sharing words get similar vectors. `fake-N` -> N dims."""

    def __init__(self, model_name: str = FAKE_MODEL, delay_s: float = 0.0, on_encode=None):
        self.model_name = model_name
        suffix = model_name.rsplit("-", 1)[-1]
        self.dim = int(suffix) if suffix.isdigit() else 64
        self.delay_s = delay_s
        self.on_encode = on_encode
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        if self.on_encode is not None:
            self.on_encode(self)
        if self.delay_s:
            time.sleep(self.delay_s)
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            out[row, 0] = 0.05  # never the zero vector
            for word in _WORD.findall(text.lower()):
                h = zlib.crc32(word.encode("utf-8", "surrogatepass"))
                out[row, 1 + h % (self.dim - 1)] += 1.0 if h & 0x10000 else -1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def encode_chunks(self, passages) -> tuple[np.ndarray, np.ndarray]:
        """Chunks and their sentences, each hashed alone, in one `encode` call."""
        sentences = [text[a:b] for text, spans in passages for a, b in spans]
        vectors = self.encode([text for text, _ in passages] + sentences)
        return vectors[: len(passages)], vectors[len(passages) :]


def fake_pipeline(index_dir: Path, model: str = FAKE_MODEL, delay_s: float = 0.0, **config):
    """A real Pipeline (ingest, chunking, store, retrieval, reader) with the hashing embedder.

    The reader runs in its fast mode: these tests are about the index under stress, and the
    answer model's forward passes would only slow the readers they count.
    """
    from qa.config import Config
    from qa.pipeline import Pipeline

    config.setdefault("seeds_dir", Path(index_dir).parent / "no-seeds")
    config.setdefault("reader_model", "none")
    pipeline = Pipeline(Config.load(index_dir=Path(index_dir), model=model, **config))
    pipeline._embedder = HashEmbedder(model, delay_s)
    return pipeline


def expected_layout(path: Path) -> tuple[str, int, int]:
    """(doc_id, chunks, sentences) the pipeline produces for one good file."""
    from qa.chunk import chunk_document
    from qa.config import Config
    from qa.ingest import load_document

    doc = load_document(path, max_bytes=50 * 1024 * 1024, parse_timeout_s=30)
    chunks = chunk_document(doc, Config().chunk_words)
    return doc.doc_id, len(chunks), sum(len(c.sentences) for c in chunks)


def milvus_layout(index: Path) -> dict:
    """What a Milvus Lite index shows, read in a child process (Lite admits one process, and the
    test's own must not hold the file when the next writer starts): {"pending": the journal,
    "documents": {doc_id: [chunks, sentences]} of the documents a view sees, "rows": the chunk and
    sentence rows in the collections, orphans of a dead commit included}."""
    script = (
        "import json, sys\n"
        "from qa.store.milvus import MilvusStore\n"
        "store = MilvusStore(sys.argv[1], sys.argv[2])\n"
        "view = store.view()\n"
        "def rows(name, expr=''):\n"
        "    return store._count(name, expr)\n"
        "docs = {d: [rows('chunks', f'doc_id == \"{d}\"'), rows('sentences', f'doc_id == \"{d}\"')] for d in view.docs}\n"
        "print(json.dumps({'pending': store._state().pending, 'documents': docs,\n"
        "                  'rows': [rows('chunks'), rows('sentences')]}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(index / "milvus.db"), FAKE_MODEL],
                          env=child_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under folder (names relative), plus every folder name."""
    digest = {}
    for p in sorted(Path(folder).rglob("*")):
        rel = str(p.relative_to(folder))
        digest[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
    return digest


_WORDS = (
    "harbour budget ferry council depot survey storm river bridge tariff census archive ministry "
    "treaty pipeline reactor vaccine orchard quarry tunnel glacier festival museum railway"
).split()


def write_corpus(folder: Path, count: int, *, seed: int = 0, prefix: str = "doc", sentences: int = 3) -> list[Path]:
    """`count` small distinct text files, each with a unique token `<prefix>tok<i>`."""
    import random

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        lines = [f"Note {prefix} {i} about {rng.choice(_WORDS)} and {prefix}tok{i}."]
        for _ in range(sentences - 1):
            words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 40)))
            lines.append(f"The {words} was reported on day {rng.randint(1, 9999)}.")
        path = folder / f"{prefix}-{i:05d}.txt"
        path.write_text(" ".join(lines) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def child_command(*qa_args: str, delay_s: float = 0.0, ready: Path | None = None, kill_at: str | None = None) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve())]
    if delay_s:
        cmd += ["--delay", str(delay_s)]
    if ready is not None:
        cmd += ["--ready", str(ready)]
    if kill_at:
        cmd += ["--kill-at", kill_at]
    return [*cmd, "--", *qa_args]


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    repo = str(HERE.parent)
    env["PYTHONPATH"] = os.pathsep.join([repo, str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(HF_HUB_OFFLINE="1", PYTHONIOENCODING="utf-8", **extra)
    return env


def run_qa(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """The real `qa` console script (no fake embedder): for commands that never embed."""
    script = Path(sys.executable).with_name("qa")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "qa.cli"]
    return subprocess.run(
        [*cmd, *args], env=child_env(**env), capture_output=True, text=True, encoding="utf-8", timeout=timeout
    )


def run_fake_qa(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """`qa` in a child process with the hashing embedder."""
    return subprocess.run(
        child_command(*args), env=child_env(**env), capture_output=True, text=True, encoding="utf-8", timeout=timeout
    )


# --- crash injection (child side) -------------------------------------------------------------

# Where a commit can be cut short, in the order a commit reaches them.
KILL_POINTS = (
    "write_text",  # a document's text is about to be written to texts/
    "np_save",  # the new generation's arrays are half written
    "fsync_tree",  # the generation is complete in its .tmp- folder, not yet renamed
    "rename",  # .tmp- folder about to become gen-N
    "current_tmp",  # CURRENT's replacement is written, not yet moved into place
    "collect_garbage",  # CURRENT points at the new generation; old ones not yet removed
    "rmtree",  # half-way through removing an old generation
)
# The same for the Milvus store (QA_STORE=milvus): a commit's calls to Milvus, in order.
MILVUS_KILL_POINTS = (
    "milvus_write_state",  # the journal (1st call of a commit) or its clearing (2nd) is about to be written
    "milvus_delete",  # removed or replaced documents' rows are about to be deleted
    "milvus_insert",  # a batch of texts, chunks, sentences or a documents row is about to be inserted
    "milvus_flush",  # every row is written, not yet flushed
)


def _install_kill(point: str, nth: int) -> None:
    import shutil

    import qa.store.local as store
    import qa.store.milvus as milvus

    calls = {"n": 0}

    def die_on_nth(fn, when=lambda *a, **k: True):
        def wrapper(*args, **kwargs):
            if when(*args, **kwargs):
                calls["n"] += 1
                if calls["n"] == nth:
                    sys.stdout.flush()
                    os.kill(os.getpid(), signal.SIGKILL)
            return fn(*args, **kwargs)

        return wrapper

    if point == "write_text":
        store._write_text = die_on_nth(store._write_text)
    elif point == "np_save":
        # The nth array saved in this run (numpy.save is shared with bm25s): a generation half written.
        store.np.save = die_on_nth(np.save)
    elif point == "fsync_tree":
        store._fsync_tree = die_on_nth(store._fsync_tree)
    elif point == "rename":
        store.os.rename = die_on_nth(os.rename)
    elif point == "current_tmp":
        store.os.replace = die_on_nth(os.replace, lambda src, dst, *a, **k: Path(dst).name == store.CURRENT)
    elif point == "collect_garbage":
        store.Store._collect_garbage = die_on_nth(store.Store._collect_garbage)
    elif point == "rmtree":
        real_rmtree = shutil.rmtree
        removed = {"n": 0}

        def rmtree(path, *args, **kwargs):
            # Delete a few files of an old generation, then die.
            if Path(path).name.startswith("gen-"):
                removed["n"] += 1
                if removed["n"] == nth:
                    for f in sorted(Path(path).glob("*"))[:3]:
                        f.unlink() if f.is_file() else None
                    os.kill(os.getpid(), signal.SIGKILL)
            return real_rmtree(path, *args, **kwargs)

        store.shutil.rmtree = rmtree
    elif point in MILVUS_KILL_POINTS:
        name = "_" + point.removeprefix("milvus_")
        setattr(milvus.MilvusStore, name, die_on_nth(getattr(milvus.MilvusStore, name)))
    else:
        raise SystemExit(f"unknown kill point {point}")


def _main(argv: list[str]) -> int:
    split = argv.index("--")
    options, qa_args = argv[:split], argv[split + 1 :]
    delay = 0.0
    ready: Path | None = None
    kill_at = None
    while options:
        flag, value, *options = options
        if flag == "--delay":
            delay = float(value)
        elif flag == "--ready":
            ready = Path(value)
        elif flag == "--kill-at":
            kill_at = value
    import qa.cli
    import qa.pipeline

    def signal_ready(embedder: HashEmbedder) -> None:
        if ready is not None and embedder.calls == 1:
            ready.write_text(str(os.getpid()))  # the first encode runs with the writer lock held

    embedders: dict[str, HashEmbedder] = {}

    def embedder(self):
        name = self.config.model
        if name not in embedders:
            embedders[name] = HashEmbedder(name, delay, signal_ready)
        return embedders[name]

    qa.pipeline.Pipeline.embedder = property(embedder)
    if kill_at:
        point, nth = kill_at.split(":")
        _install_kill(point, int(nth))
    print("READY", flush=True)
    return qa.cli.main(qa_args)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
