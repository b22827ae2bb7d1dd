"""Train the reader's ranker and verifier on public SQuAD data; write qa/models/reader.json.

Protocol (keeps the numbers honest):
- data: ../shared/eval/squad-dev-public (SQuAD v1.1 dev, first 24 articles, CC BY-SA 4.0);
  nothing from tests/ is used;
- articles are split into folds; every reported number is out-of-fold: the model that scored a
  question never saw its article;
- "not in the documents" questions: each fold's questions asked against an index built without
  that fold's articles, so the answer truly is absent.
The shipped model is then refit on everything. Run: `.venv/bin/python scripts/train_reader.py`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa import read as reader  # noqa: E402
from qa.config import Config  # noqa: E402
from qa.pipeline import Pipeline  # noqa: E402
from qa.retrieve import retrieve, tokenize  # noqa: E402
from qa.store import Store  # noqa: E402


@dataclass
class Example:
    question: str
    article: str
    answerable: bool
    features: reader.Features
    labels: np.ndarray  # per candidate: does the sentence contain a gold answer


def build_examples(pipeline: Pipeline, snap, questions: list[dict], vectors: np.ndarray, answerable: bool) -> list[Example]:
    examples = []
    for q, v in zip(questions, vectors):
        hits = retrieve(snap, v, tokenize([q["question"]])[0], top_k=pipeline.config.top_k,
                        depth=pipeline.config.fusion_depth, rrf_k=pipeline.config.rrf_k)
        f = reader.extract(snap, q["question"], v, hits)
        golds = [g.lower() for g in q["answers"]] if answerable else []
        labels = np.array([any(g in t.lower() for g in golds) for t in f.texts], bool)
        examples.append(Example(q["question"], q["doc"], answerable, f, labels))
    return examples


def fit_logistic(x: np.ndarray, y: np.ndarray, names: tuple[str, ...], c: float = 1.0) -> reader.Logistic:
    from sklearn.linear_model import LogisticRegression

    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=c, max_iter=2000).fit((x - mean) / scale, y)
    return reader.Logistic(names, model.coef_[0], float(model.intercept_[0]), mean, scale)


def stack(examples: list[Example]) -> tuple[np.ndarray, np.ndarray]:
    rows = [e.features.sentence for e in examples if e.features.positions]
    labels = [e.labels for e in examples if e.features.positions]
    return np.vstack(rows), np.concatenate(labels)


def fit(examples: list[Example]) -> reader.ReaderModel:
    ranker = fit_logistic(*stack([e for e in examples if e.answerable]), reader.SENTENCE_FEATURES)
    return reader.ReaderModel(ranker, fit_verifier(ranker, examples))


def fit_verifier(ranker: reader.Logistic, examples: list[Example]) -> reader.Logistic:
    usable = [e for e in examples if e.features.positions]
    x = np.vstack([reader.question_row(e.features, ranker.predict(e.features.sentence)) for e in usable])
    y = np.array([e.answerable for e in usable])
    return fit_logistic(x, y, reader.QUESTION_FEATURES)


def score(model: reader.ReaderModel, examples: list[Example]) -> list[tuple[bool, bool, float]]:
    """(answerable, top-1 sentence holds the gold, verifier confidence) per question."""
    out = []
    for e in examples:
        if not e.features.positions:
            out.append((e.answerable, False, 0.0))
            continue
        p = model.ranker.predict(e.features.sentence)
        best = int(np.argmax(p))
        confidence = float(model.verifier.predict(reader.question_row(e.features, p)[None, :])[0])
        out.append((e.answerable, bool(e.labels[best]), confidence))
    return out


def metrics(scored: list[tuple[bool, bool, float]], threshold: float) -> dict:
    answerable = [s for s in scored if s[0]]
    unanswerable = [s for s in scored if not s[0]]
    return {
        # As `qa eval` counts it: an abstention on an answerable question is a miss.
        "quote_hit_at_1": float(np.mean([hit and c >= threshold for _, hit, c in answerable])),
        "ranker_hit_at_1": float(np.mean([hit for _, hit, _ in answerable])),
        "false_abstain_rate": float(np.mean([c < threshold for *_, c in answerable])),
        "abstain_rate_unanswerable": float(np.mean([c < threshold for *_, c in unanswerable])) if unanswerable else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/eval/squad-dev-public")
    parser.add_argument("--work", type=Path, default=ROOT / ".cache/train-reader")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--unanswerable-per-fold", type=int, default=500)
    parser.add_argument("--out", type=Path, default=reader.MODEL_FILE)
    args = parser.parse_args()

    started = time.time()
    questions = [json.loads(line) for line in (args.data / "questions.jsonl").open(encoding="utf-8")]
    articles = sorted({q["doc"] for q in questions})
    fold_of = {a: i % args.folds for i, a in enumerate(articles)}

    full_dir = args.work / "all"
    pipeline = Pipeline(Config.load(index_dir=full_dir))
    pipeline.add(sorted((args.data / "docs").glob("*.txt")))
    snap = pipeline.store.snapshot()
    cached = args.work / "question_vectors.npy"
    if cached.is_file() and len(np.load(cached)) == len(questions):
        vectors = np.load(cached)
    else:
        vectors = pipeline.embedder.encode([q["question"] for q in questions])
        np.save(cached, vectors)
    print(f"index: {snap.size} chunks; {len(questions)} questions embedded ({time.time() - started:.0f} s)")

    examples = build_examples(pipeline, snap, questions, vectors, answerable=True)
    rng = np.random.default_rng(0)
    by_fold_unanswerable: dict[int, list[Example]] = {}
    for fold in range(args.folds):
        fold_dir = args.work / f"without-fold-{fold}"
        shutil.rmtree(fold_dir, ignore_errors=True)
        shutil.copytree(full_dir, fold_dir)
        store = Store(fold_dir, pipeline.config.model)
        held_out = {m.doc_id for m in snap.docs if fold_of[m.source] == fold}
        with store.lock():
            fold_snap = store.commit([], held_out)
        idx = [i for i, q in enumerate(questions) if fold_of[q["doc"]] == fold]
        idx = sorted(rng.choice(idx, size=min(args.unanswerable_per_fold, len(idx)), replace=False))
        by_fold_unanswerable[fold] = build_examples(
            pipeline, fold_snap, [questions[i] for i in idx], vectors[idx], answerable=False
        )
    print(f"features built ({time.time() - started:.0f} s)")

    # Out-of-fold: each fold scored by a model fit on the other folds.
    out_of_fold: list[tuple[bool, bool, float]] = []
    for fold in range(args.folds):
        train = [e for e in examples if fold_of[e.article] != fold]
        train += [e for f, es in by_fold_unanswerable.items() if f != fold for e in es]
        test = [e for e in examples if fold_of[e.article] == fold] + by_fold_unanswerable[fold]
        out_of_fold += score(fit(train), test)
    # The product's own threshold (Config.min_confidence), so the card reports what users get.
    threshold = pipeline.config.min_confidence
    oof = metrics(out_of_fold, threshold)
    for t in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        print(f"  threshold {t:.1f}: {json.dumps({k: round(v, 4) for k, v in metrics(out_of_fold, t).items()})}")
    oracle = float(np.mean([e.labels.any() for e in examples]))
    print(f"out-of-fold (threshold {threshold:.3f}): {json.dumps(oof)}; oracle top-5 sentence hit {oracle:.3f}")

    everything = examples + [e for es in by_fold_unanswerable.values() for e in es]
    model = fit(everything)
    card = {
        "model": "briefqa extractive reader: logistic ranker over candidate sentences + logistic verifier",
        "trained_on": "SQuAD v1.1 dev, first 24 articles (../shared/eval/squad-dev-public), CC BY-SA 4.0",
        "protocol": f"{args.folds}-fold cross-validation by article; unanswerable = a fold's questions "
        f"against an index without that fold's articles ({args.unanswerable_per_fold} per fold); "
        "metrics are out-of-fold; the shipped weights are refit on all data",
        "retrieval": {"top_k": pipeline.config.top_k, "fusion_depth": pipeline.config.fusion_depth},
        "questions": len(examples),
        "unanswerable_questions": sum(len(v) for v in by_fold_unanswerable.values()),
        "threshold": round(threshold, 4),
        "out_of_fold": {k: (round(v, 4) if v is not None else None) for k, v in oof.items()},
        "oracle_top5_sentence_hit": round(oracle, 4),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"card": card, "ranker": model.ranker.to_json(), "verifier": model.verifier.to_json()}, indent=1)
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {args.out} ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
