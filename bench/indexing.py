"""Indexing throughput: `Pipeline.add` of the public SQuAD corpus into a fresh index, against the
bare encoder over the same chunks.

    .venv/bin/python bench/indexing.py [--encoder onnx|torch] [--docs N]

`qa add` embeds each chunk once and reads its sentences' vectors from that pass
(`Embedder.encode_chunks`). Rows: the bare `encode_chunks` over all chunks in one call (run
before and after the pipeline, the mean evening out a machine whose load drifts) and document by
document; `Pipeline.add`; and, for comparison, the bare encoder over chunks and sentences as
separate texts, as indexing did until 2026-12-02. Where the pipeline's time goes is measured by
wrapping its stages (ingest, chunking, embedding, BM25 tokens, commit and inside the commit:
array assembly, dense index, BM25 index, fsync) with timers; the overhead of that is negligible.
Target: the pipeline adds <= 20% to the bare encoding time.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections import defaultdict

import _common as c


def timed(table: dict, key: str, fn):
    def wrapper(*args, **kwargs):
        clock = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            table[key] += time.perf_counter() - clock

    return wrapper


def bare_encode(model, texts: list[str], batch_size: int) -> float:
    import torch

    torch.set_num_threads(max(1, min(4, __import__("os").cpu_count() or 1)))
    clock = time.perf_counter()
    model.encode(texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
    return time.perf_counter() - clock


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", choices=("torch", "onnx"), default="onnx")
    parser.add_argument("--name", default="indexing")
    parser.add_argument("--docs", type=int, help="only the first N documents (a quick check)")
    args = parser.parse_args(argv)
    c.require_squad()

    import qa.pipeline as qp
    import qa.store.local as qs
    from qa.config import Config
    from qa.embed import Embedder
    from qa.pipeline import Pipeline

    root = c.CACHE / "indexing-fresh"
    shutil.rmtree(root, ignore_errors=True)
    config = Config.load(index_dir=root, encoder=args.encoder)
    pipeline = Pipeline(config)
    embedder = Embedder(config.model, config.batch_size, encoder=args.encoder)
    pipeline._embedder = embedder  # the Pipeline may not pass `encoder` through (yet)
    embedder.encode(["warm up the model"] * 4)
    load_before = c.load_average()[0]

    corpus = c.SQUAD_DOCS
    if args.docs:
        corpus = c.CACHE / "indexing-docs"
        shutil.rmtree(corpus, ignore_errors=True)
        corpus.mkdir(parents=True)
        for path in sorted(c.SQUAD_DOCS.glob("*.txt"))[: args.docs]:
            shutil.copy(path, corpus / path.name)

    # The chunks the pipeline embeds, from the reference index (same chunker, same corpus).
    ref = c.squad_pipeline().store.snapshot()
    wanted = {p.name for p in corpus.glob("*.txt")}
    docs_passages: list[list[tuple[str, list[tuple[int, int]]]]] = []
    for d in range(len(ref.docs)):
        if ref.docs[d].source not in wanted:
            continue
        text = ref.text(d)
        passages = []
        for p in (int(p) for p in (ref.chunk_doc == d).nonzero()[0]):
            a, b = ref.chunk_spans[p]
            passages.append((text[a:b], [(int(s0) - a, int(s1) - a) for s0, s1 in (ref.sentence_spans[s] for s in ref.sentences_of(p))]))
        docs_passages.append(passages)
    all_passages = [p for passages in docs_passages for p in passages]
    apart = [text for text, _ in all_passages] + [text[a:b] for text, spans in all_passages for a, b in spans]

    def bare(passage_lists: list[list]) -> float:
        clock = time.perf_counter()
        for passages in passage_lists:
            embedder.encode_chunks(passages)
        return time.perf_counter() - clock

    def bare_apart() -> float:
        if args.encoder == "torch":
            return bare_encode(embedder._model, apart, config.batch_size)
        clock = time.perf_counter()
        embedder._model.encode(apart, config.batch_size)
        return time.perf_counter() - clock

    print(f"bare encode_chunks of {len(all_passages):,} chunks ...", file=sys.stderr, flush=True)
    bare_1 = bare([all_passages])

    stages: dict[str, float] = defaultdict(float)
    patches = [
        (qp, "load_document", "ingest (read, extract, hash)"),
        (qp, "chunk_document", "chunking + sentence split"),
        (qp, "tokenize", "BM25 tokens of chunks"),
        (qs, "build_dense_index", "commit: dense index"),
        (qs, "_bm25_from_tokens", "commit: BM25 index"),
        (qs, "_fsync_tree", "commit: fsync"),
    ]
    originals = [(mod, name, getattr(mod, name)) for mod, name, _ in patches if hasattr(mod, name)]
    for mod, name, label in patches:
        if hasattr(mod, name):
            setattr(mod, name, timed(stages, label, getattr(mod, name)))
    original_encode = embedder.encode_chunks
    embedder.encode_chunks = timed(stages, "embedding (Embedder.encode_chunks)", original_encode)
    original_commit = pipeline.store.commit
    pipeline.store.commit = timed(stages, "commit (total)", original_commit)
    print("Pipeline.add ...", file=sys.stderr, flush=True)
    clock = time.perf_counter()
    results = pipeline.add([corpus])
    add_s = time.perf_counter() - clock
    for mod, name, fn in originals:
        setattr(mod, name, fn)
    embedder.encode_chunks = original_encode
    pipeline.store.commit = original_commit

    print("bare encode again, then document by document ...", file=sys.stderr, flush=True)
    bare_2 = bare([all_passages])
    bare_per_doc = bare(docs_passages)
    print("bare encode of chunks and sentences apart ...", file=sys.stderr, flush=True)
    bare_old = bare_apart()
    load_after = c.load_average()[0]

    snap = pipeline.store.snapshot()
    n_docs, n_chunks, n_sent = len(snap.docs), snap.size, len(snap.sentence_spans)
    assert sum(r.status == "added" for r in results) == n_docs
    bare_s = (bare_1 + bare_2) / 2
    overhead = add_s / bare_s - 1

    lines = [f"# Indexing throughput: the public SQuAD corpus into a fresh index ({args.encoder} encoder)", ""]
    lines.append(f"Machine: {c.machine_line()} (load at start {load_before:.2f}, at end {load_after:.2f})")
    lines.append("")
    lines.append(
        c.table(
            ["run", "seconds", "documents/s", "chunks/s", "sentences/s", "vs bare encode"],
            [
                ["Pipeline.add", add_s, n_docs / add_s, n_chunks / add_s, n_sent / add_s, f"{add_s / bare_s:.2f}x"],
                ["bare encode_chunks, one call (mean of 2)", bare_s, n_docs / bare_s, n_chunks / bare_s, n_sent / bare_s, "1.00x"],
                ["  first / second run", f"{bare_1:.1f} / {bare_2:.1f}", "", "", "", ""],
                ["bare encode_chunks, per document", bare_per_doc, n_docs / bare_per_doc, n_chunks / bare_per_doc, n_sent / bare_per_doc,
                 f"{bare_per_doc / bare_s:.2f}x"],
                ["bare encode, chunks and sentences apart (before)", bare_old, n_docs / bare_old, n_chunks / bare_old, n_sent / bare_old,
                 f"{bare_old / bare_s:.2f}x"],
            ],
        )
    )
    lines.append("")
    lines.append(f"{n_docs} documents, {n_chunks:,} chunks, {n_sent:,} sentences (batch {config.batch_size}); "
                 f"{len(apart):,} texts when chunks and sentences were embedded apart.")
    lines.append(f"Pipeline overhead over bare encoding: {overhead * 100:+.1f}% (target <= +20%: {'met' if overhead <= 0.20 else 'MISSED'}).")
    lines.append("")
    lines.append("Where Pipeline.add's time goes:")
    lines.append("")
    inner = {k: v for k, v in stages.items() if k.startswith("commit: ")}
    rows = [[k, v, f"{v / add_s * 100:.1f}%"] for k, v in stages.items() if not k.startswith("commit: ")]
    rows += [["  " + k, v, f"{v / add_s * 100:.1f}%"] for k, v in inner.items()]
    accounted = sum(v for k, v in stages.items() if not k.startswith("commit: "))
    rows.append(["other (loop, NewDocument arrays, ...)", add_s - accounted, f"{(add_s - accounted) / add_s * 100:.1f}%"])
    rows.append(["total", add_s, "100%"])
    lines.append(c.table(["stage", "seconds", "share"], rows))
    c.save(args.name, "\n".join(lines), {"add_s": add_s, "bare_s": [bare_1, bare_2], "bare_per_doc_s": bare_per_doc,
                                          "bare_apart_s": bare_old, "stages": stages,
                                          "documents": n_docs, "chunks": n_chunks, "sentences": n_sent, "load": [load_before, load_after]})
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
