"""The int8 ONNX runtime (the default) against fp32 torch, for both models.

    .venv/bin/python bench/onnx_runtime.py [--questions 0] [--reader-questions 1000]

Encoder (QA_ENCODER=onnx vs torch):
- speed: one question at a time (p50/p95 over 200 questions, alternating backends), and batch
  throughput over the corpus' chunk + sentence texts (batch 32, as indexing does);
- agreement: cosine between the two backends' vectors of the same texts;
- quality: dense recall@5 on the public SQuAD corpus (a gold answer string occurs in one of the
  top 5 chunks by exact cosine), each backend with its own chunk and question vectors, plus the
  mixed case (onnx questions against a torch-built index: switching without `qa rebuild`).
Answer model (QA_READER_RUNTIME=onnx vs torch): the whole pipeline (`qa.evaluate.evaluate`) on
the same spread of SQuAD public questions, int8 graph vs fp32 torch: quote hit@1, short-answer
F1, and the answer model's share of the latency. Target: every quality number within 0.5 points.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import _common as c


def dense_recall_at_5(chunk_vectors: np.ndarray, question_vectors: np.ndarray, chunk_texts: list[str], questions: list[dict]) -> float:
    scores = question_vectors @ chunk_vectors.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    hits = 0
    for q, row in zip(questions, top):
        golds = [g.lower() for g in q["answers"]]
        hits += any(g in chunk_texts[i].lower() for i in row for g in golds)
    return hits / len(questions)


def reader_quality(pipeline, questions: list[dict]) -> dict:
    """The pipeline's quote hit, F1 and reader-stage time with the answer model in each runtime."""
    from dataclasses import replace

    from qa.evaluate import evaluate
    from qa.pipeline import Pipeline

    out = {}
    for runtime in ("onnx", "torch"):
        print(f"answer model ({runtime}): {len(questions):,} questions ...", file=sys.stderr, flush=True)
        run = Pipeline(replace(pipeline.config, reader_runtime=runtime))
        read_ms = []
        original = run.ask

        def ask(question: str, **kwargs):
            answer = original(question, **kwargs)
            read_ms.append(answer.timings_ms.get("read_ms", 0.0))
            return answer

        run.ask = ask
        summary, _ = evaluate(run, questions)
        out[runtime] = {k: summary[k] for k in ("quote_hit_at_1", "answer_f1", "answer_em")}
        out[runtime].update(questions=len(questions), read_ms_p50=c.pct(read_ms, 50))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=0, help="questions for recall (0: all)")
    parser.add_argument("--reader-questions", type=int, default=1000, help="questions for the answer model (0: all)")
    parser.add_argument("--name", default="onnx_runtime")
    args = parser.parse_args(argv)
    c.require_squad()
    from qa.embed import Embedder

    pipeline = c.squad_pipeline()
    snap = pipeline.store.snapshot()
    torch_enc = Embedder(pipeline.config.model, pipeline.config.batch_size, encoder="torch")
    clock = time.perf_counter()
    onnx_enc = Embedder(pipeline.config.model, pipeline.config.batch_size, encoder="onnx")
    onnx_load = time.perf_counter() - clock
    chunk_texts = [snap.text(int(snap.chunk_doc[p]))[a:b] for p, (a, b) in enumerate(snap.chunk_spans)]
    sentence_texts = [snap.text(int(snap.chunk_doc[snap.sentence_chunk[s]]))[a:b] for s, (a, b) in enumerate(snap.sentence_spans)]
    questions = c.load_questions(args.questions or None)
    load_start = c.load_average()[0]

    # Single questions, alternating.
    single = {"torch": [], "onnx": []}
    for q in c.load_questions(205)[:5]:
        torch_enc.encode([q["question"]])
        onnx_enc.encode([q["question"]])
    for i, q in enumerate(c.load_questions(200)):
        for name in (("torch", "onnx") if i % 2 == 0 else ("onnx", "torch")):
            enc = torch_enc if name == "torch" else onnx_enc
            clock = time.perf_counter()
            enc.encode([q["question"]])
            single[name].append((time.perf_counter() - clock) * 1000)

    # Batch throughput on a slice of the corpus texts (same texts for both), torch / onnx / torch.
    sample = chunk_texts[::4] + sentence_texts[::4]
    batch = {}
    clock = time.perf_counter()
    torch_sample = torch_enc.encode(sample)
    t1 = time.perf_counter() - clock
    clock = time.perf_counter()
    onnx_sample = onnx_enc.encode(sample)
    batch["onnx"] = time.perf_counter() - clock
    clock = time.perf_counter()
    torch_enc.encode(sample)
    batch["torch"] = (t1 + time.perf_counter() - clock) / 2
    agreement = np.sum(torch_sample * onnx_sample, axis=1)

    # Recall: each backend's own chunk and question vectors.
    print("embedding chunks and questions with onnx ...", file=sys.stderr, flush=True)
    onnx_chunks = onnx_enc.encode(chunk_texts)
    onnx_q = onnx_enc.encode([q["question"] for q in questions])
    print("embedding chunks and questions with torch ...", file=sys.stderr, flush=True)
    torch_chunks = torch_enc.encode(chunk_texts)
    torch_q = torch_enc.encode([q["question"] for q in questions])
    load_end = c.load_average()[0]
    r_torch = dense_recall_at_5(torch_chunks, torch_q, chunk_texts, questions)
    r_onnx = dense_recall_at_5(onnx_chunks, onnx_q, chunk_texts, questions)
    r_mixed = dense_recall_at_5(torch_chunks, onnx_q, chunk_texts, questions)
    q_agreement = np.sum(torch_q * onnx_q, axis=1)

    reader = reader_quality(pipeline, c.load_questions(args.reader_questions or None))
    load_end = c.load_average()[0]

    lines = ["# ONNX int8 runtime vs fp32 torch: encoder (all-MiniLM-L6-v2) and answer model, CPU", ""]
    lines.append(f"Machine: {c.machine_line()} (load at start {load_start:.2f}, at end {load_end:.2f})")
    lines.append("")
    speed_single = c.pct(single["torch"], 50) / c.pct(single["onnx"], 50)
    speed_batch = batch["torch"] / batch["onnx"]
    lines.append(
        c.table(
            ["", "torch", "onnx int8", "speed-up"],
            [
                ["one question, p50 ms (1 thread)", c.pct(single["torch"], 50), c.pct(single["onnx"], 50), f"{speed_single:.2f}x"],
                ["one question, p95 ms", c.pct(single["torch"], 95), c.pct(single["onnx"], 95), ""],
                [f"batch 32, texts/s ({len(sample):,} chunk + sentence texts)", len(sample) / batch["torch"], len(sample) / batch["onnx"], f"{speed_batch:.2f}x"],
                [f"dense recall@5, {len(questions):,} SQuAD questions", r_torch, r_onnx, f"{(r_onnx - r_torch) * 100:+.2f} points"],
                ["  onnx questions on a torch-built index", "", r_mixed, f"{(r_mixed - r_torch) * 100:+.2f} points"],
            ],
        )
    )
    lines.append("")
    lines.append(
        f"Cosine onnx vs torch: corpus texts mean {agreement.mean():.4f} (min {agreement.min():.4f}); "
        f"questions mean {q_agreement.mean():.4f} (min {q_agreement.min():.4f})."
    )
    lines.append(f"First ONNX load in this process (export reused from the cache if present): {onnx_load:.1f} s.")
    lines.append(f"Dense recall@5 within 0.5 points: {'yes' if abs(r_onnx - r_torch) <= 0.005 else 'NO'}.")
    lines.append("")
    n = reader["onnx"]["questions"]
    lines.append(f"Answer model, whole pipeline on {n:,} SQuAD public questions (int8 encoder for both):")
    lines.append("")
    rows = []
    for key, label in (("quote_hit_at_1", "quote hit@1"), ("answer_f1", "short-answer F1"), ("answer_em", "exact match")):
        diff = (reader["onnx"][key] - reader["torch"][key]) * 100
        rows.append([label, reader["torch"][key], reader["onnx"][key], f"{diff:+.2f} points"])
    rows.append(["reader stage p50 ms", reader["torch"]["read_ms_p50"], reader["onnx"]["read_ms_p50"],
                 f"{reader['torch']['read_ms_p50'] / reader['onnx']['read_ms_p50']:.2f}x"])
    lines.append(c.table(["", "fp32 torch", "int8 onnx", "difference"], rows))
    within = all(abs(reader["onnx"][k] - reader["torch"][k]) <= 0.005 for k in ("quote_hit_at_1", "answer_f1"))
    no_worse = all(reader["onnx"][k] >= reader["torch"][k] - 0.005 for k in ("quote_hit_at_1", "answer_f1"))
    lines.append("")
    lines.append(f"Quote hit and F1 within 0.5 points: {'yes' if within else 'no'}; "
                 f"int8 no more than 0.5 points worse: {'yes' if no_worse else 'NO'}.")
    c.save(
        args.name,
        "\n".join(lines),
        {"single_ms": {k: c.pct(v, 50) for k, v in single.items()}, "batch_s": batch, "recall": [r_torch, r_onnx, r_mixed],
         "cos_mean": float(agreement.mean()), "cos_min": float(agreement.min()), "reader": reader},
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
