"""Side by side with a peer: Haystack 2 hybrid retrieval on the same chunks and questions.

    .venv/bin/pip install 'briefqa[bench]'      # haystack-ai 2.x (benchmark-only dependency)
    .venv/bin/python bench/peer.py [--questions 1000]

Haystack: InMemoryDocumentStore holding our index's chunks (the text of each chunk, with our
chunk vectors set as their embeddings: the same model, so no re-embedding), a
SentenceTransformersTextEmbedder on the bundled all-MiniLM-L6-v2 folder, InMemoryEmbeddingRetriever
and InMemoryBM25Retriever (top 50 each), DocumentJoiner(join_mode="reciprocal_rank_fusion",
top_k=5), wired as a haystack Pipeline.
Ours: `Pipeline.retrieve` (question embedding, FAISS, BM25, RRF over the top 50 of each, top 5),
the same work; `Pipeline.ask` (retrieval + reader) is shown too.
Both run in this process on the same questions, each with one thread per question, in blocks of
`--block` questions: one system answers a block, then the other, and which goes first alternates
by block, so drift in the machine's load falls on both. Blocks keep each system in its steady
state, as a server answering questions is: asked alternately question by question (`--block 1`),
each evicts the other's weights from the CPU caches between calls (briefqa's two int8 models are
~45 MB; Haystack's fp32 encoder ~90 MB): on 2026-12-02, 300 questions, briefqa's ask took 33.7
ms p50 and Haystack 92.0 alternating by question, 23.0 and 69.7 in blocks of 50. recall@5: a
gold answer string occurs in one of the top 5 chunks. Target: ours >= 5x faster at equal or
better recall@5.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import _common as c

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")


def contains(texts: list[str], golds: list[str]) -> bool:
    low = [t.lower() for t in texts]
    return any(g.lower() in t for t in low for g in golds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=1000, help="SQuAD questions (0: all)")
    parser.add_argument("--block", type=int, default=50, help="questions per block (1: alternate every question)")
    parser.add_argument("--name", default="peer")
    args = parser.parse_args(argv)
    c.require_squad()
    try:
        from haystack import Document, Pipeline as HPipeline
        from haystack.components.embedders import SentenceTransformersTextEmbedder
        from haystack.components.joiners import DocumentJoiner
        from haystack.components.retrievers.in_memory import InMemoryBM25Retriever, InMemoryEmbeddingRetriever
        from haystack.document_stores.in_memory import InMemoryDocumentStore
    except ImportError:
        print("SKIPPED: haystack-ai 2.x is not installed (pip install 'briefqa[bench]').")
        return 0
    import faiss
    import torch

    from qa.embed import resolve_model_path

    faiss.omp_set_num_threads(1)  # one question at a time, as retrieve.py does
    ours = c.squad_pipeline()
    snap = ours.store.snapshot()
    config = ours.config
    questions = c.load_questions(args.questions or None)

    # --- Haystack over the same chunks --------------------------------------------------------------
    clock = time.perf_counter()
    docs = []
    for p in range(snap.size):
        d = int(snap.chunk_doc[p])
        a, b = (int(x) for x in snap.chunk_spans[p])
        docs.append(
            Document(
                id=str(int(snap.chunk_ids[p])),
                content=snap.text(d)[a:b],
                embedding=[float(x) for x in snap.chunk_vectors[p]],
                meta={"source": snap.docs[d].source},
            )
        )
    store = InMemoryDocumentStore()
    store.write_documents(docs)
    embedder = SentenceTransformersTextEmbedder(
        model=resolve_model_path(config.model), progress_bar=False, normalize_embeddings=True, local_files_only=True
    )
    hay = HPipeline()
    hay.add_component("embedder", embedder)
    hay.add_component("dense", InMemoryEmbeddingRetriever(document_store=store, top_k=config.fusion_depth))
    hay.add_component("bm25", InMemoryBM25Retriever(document_store=store, top_k=config.fusion_depth))
    hay.add_component("joiner", DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=config.top_k))
    hay.connect("embedder.embedding", "dense.query_embedding")
    hay.connect("dense.documents", "joiner.documents")
    hay.connect("bm25.documents", "joiner.documents")
    hay.warm_up()
    hay_setup = time.perf_counter() - clock

    def run_haystack(q: str) -> list[str]:
        out = hay.run({"embedder": {"text": q}, "bm25": {"query": q}})
        return [d.content for d in out["joiner"]["documents"]]

    def run_ours(q: str) -> list[str]:
        return [p.text for p in ours.ranked(q, config.top_k)]

    # Warm both (model load, first-call costs).
    for q in questions[:5]:
        run_haystack(q["question"])
        run_ours(q["question"])
        ours.ask(q["question"])
    torch.set_num_threads(1)

    load_start = c.load_average()[0]
    times = {"ours_retrieve": [], "ours_ask": [], "haystack": []}
    hits = {"ours": 0, "haystack": 0}
    print(f"{len(questions)} questions, both systems ...", file=sys.stderr, flush=True)
    blocks = [questions[at : at + max(1, args.block)] for at in range(0, len(questions), max(1, args.block))]
    for b, block in enumerate(blocks):
        for system, q in [(s, q) for s in (("ours", "haystack") if b % 2 == 0 else ("haystack", "ours")) for q in block]:
            clock = time.perf_counter()
            if system == "ours":
                texts = run_ours(q["question"])
                times["ours_retrieve"].append((time.perf_counter() - clock) * 1000)
                clock = time.perf_counter()
                ours.ask(q["question"])
                times["ours_ask"].append((time.perf_counter() - clock) * 1000)
            else:
                torch.set_num_threads(1)
                texts = run_haystack(q["question"])
                times["haystack"].append((time.perf_counter() - clock) * 1000)
            hits[system] += contains(texts, q["answers"])
    load_end = c.load_average()[0]

    n = len(questions)
    rows = [
        ["briefqa Pipeline.retrieve (embed + FAISS + BM25 + RRF)", c.pct(times["ours_retrieve"], 50), c.pct(times["ours_retrieve"], 95), hits["ours"] / n],
        ["briefqa Pipeline.ask (retrieval + reader)", c.pct(times["ours_ask"], 50), c.pct(times["ours_ask"], 95), float("nan")],
        ["Haystack 2 (embedder + in-memory dense + BM25 + RRF joiner)", c.pct(times["haystack"], 50), c.pct(times["haystack"], 95), hits["haystack"] / n],
    ]
    ratio = c.pct(times["haystack"], 50) / c.pct(times["ours_retrieve"], 50)
    ratio_ask = c.pct(times["haystack"], 50) / c.pct(times["ours_ask"], 50)
    import haystack

    lines = [f"# briefqa vs Haystack {getattr(haystack, '__version__', '2')}: same {snap.size:,} chunks, same {n:,} SQuAD questions, "
             f"in blocks of {args.block}", ""]
    lines.append(f"Machine: {c.machine_line()} (load at start {load_start:.2f}, at end {load_end:.2f})")
    lines.append("")
    lines.append(c.table(["system", "p50 ms", "p95 ms", "recall@5"], rows))
    lines.append("")
    lines.append(f"Haystack p50 / briefqa retrieval p50 = {ratio:.1f}x; / briefqa full ask p50 = {ratio_ask:.1f}x.")
    better = hits["ours"] >= hits["haystack"]
    lines.append(
        f"Target (>= 5x faster at equal or better recall@5): {'met' if ratio >= 5 and better else 'MISSED'} "
        f"(recall@5 {hits['ours'] / n:.3f} vs {hits['haystack'] / n:.3f})."
    )
    lines.append(f"Haystack setup (document store of {snap.size:,} chunks with our vectors, pipeline warm-up): {hay_setup:.1f} s.")
    c.save(args.name, "\n".join(lines), {"times_p50": {k: c.pct(v, 50) for k, v in times.items()}, "recall_at_5": {k: v / n for k, v in hits.items()}, "questions": n})
    return 0


if __name__ == "__main__":
    sys.exit(main())
