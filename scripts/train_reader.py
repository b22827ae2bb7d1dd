"""Train the reader's logistic models on public SQuAD data; write qa/models/reader.json.

Four small models: the ranker and verifier (fast mode), and, stacked on the answer model's
out-of-fold span scores (run scripts/train_span.py first: it leaves one model per fold in the
work folder), the reranker and answer verifier; plus a strict kind of each verifier.

Protocol (keeps the numbers honest):
- data: ../shared/eval/squad-dev-public (SQuAD v1.1 dev, first 24 articles, CC BY-SA 4.0);
  nothing from tests/ is used;
- articles are split into folds; every reported number is out-of-fold: the model that scored a
  question never saw its article;
- "not in the documents" questions: each fold's questions asked against an index built without
  that fold's articles, so the answer truly is absent;
- "on the topic, fact absent" questions (for the strict verifiers, and measured for both kinds):
  each fold's questions read without the retrieved sentences that hold a gold answer.
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
from qa import span  # noqa: E402
from qa.config import Config  # noqa: E402
from qa.evaluate import exact_match, f1_score  # noqa: E402
from qa.pipeline import Pipeline  # noqa: E402
from qa.retrieve import retrieve, tokenize  # noqa: E402
from qa.store import Store  # noqa: E402


@dataclass
class Example:
    question: str
    article: str
    answerable: bool
    golds: list[str]
    features: reader.Features
    labels: np.ndarray  # per candidate: does the sentence contain a gold answer


def build_examples(pipeline: Pipeline, snap, questions: list[dict], vectors: np.ndarray, answerable: bool) -> list[Example]:
    examples = []
    for q, v in zip(questions, vectors):
        f = reader.extract(snap, q["question"], v, retrieve_for(pipeline, snap, q["question"], v))
        labels = np.array([holds_answer(t, q["answers"] if answerable else []) for t in f.texts], bool)
        examples.append(Example(q["question"], q["doc"], answerable, q["answers"] if answerable else [], f, labels))
    return examples


def build_in_topic(pipeline: Pipeline, snap, questions: list[dict], vectors: np.ndarray, limit: int) -> list[Example]:
    """Up to `limit` answerable questions, read as if the retrieved sentences holding their answer
    were not there (questions whose every or no retrieved sentence holds it are skipped)."""
    examples: list[Example] = []
    for q, v in zip(questions, vectors):
        if len(examples) == limit:
            break
        hits = retrieve_for(pipeline, snap, q["question"], v)
        f = reader.extract(snap, q["question"], v, hits)
        answering = frozenset(p for p, t in zip(f.positions, f.texts) if holds_answer(t, q["answers"]))
        if not answering or len(answering) == len(f.positions):
            continue
        rest = reader.extract(snap, q["question"], v, hits, leave_out=answering)
        examples.append(Example(q["question"], q["doc"], False, [], rest, np.zeros(len(rest.positions), bool)))
    return examples


def holds_answer(text: str, golds: list[str]) -> bool:
    """The label of a candidate sentence: it contains a gold answer (case-insensitive)."""
    lowered = text.lower()
    return any(g.lower() in lowered for g in golds)


def retrieve_for(pipeline: Pipeline, snap, question: str, vector: np.ndarray):
    config = pipeline.config
    return retrieve(snap, vector, tokenize([question])[0], top_k=config.top_k, depth=config.fusion_depth, rrf_k=config.rrf_k)


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


class SpanReader:
    """Out-of-fold answer-model results per (question, sentence), computed once and cached on disk.

    An example is read by the span model of the other fold (train_span.py's fold = article fold
    % its fold count), so no score comes from a model that saw the article.
    """

    def __init__(self, work: Path, fold_of: dict[str, int], span_folds: int):
        self.models = [span.SpanModel(str(work / f"span-fold-{k}"), threads=2) for k in range(span_folds)]
        self.fold_of, self.span_folds = fold_of, span_folds
        self.file = work / "span-scores.jsonl"  # delete it after retraining the span models
        self.cache: dict[tuple[int, str, str], span.SpanResult] = {}
        if self.file.is_file():
            for row in map(json.loads, self.file.open(encoding="utf-8")):
                self.cache[(row[0], row[1], row[2])] = span.SpanResult(row[3], row[4], row[5])

    def __call__(self, e: Example, candidates: np.ndarray) -> list[span.SpanResult]:
        fold = self.fold_of[e.article] % self.span_folds
        keys = [(fold, e.question, e.features.texts[i]) for i in candidates]
        missing = list(dict.fromkeys(k for k in keys if k not in self.cache))
        if missing:
            results = self.models[fold].score(e.question, [k[2] for k in missing])
            with self.file.open("a", encoding="utf-8") as out:
                for k, r in zip(missing, results):
                    self.cache[k] = r
                    out.write(json.dumps([*k, r.start, r.end, r.score]) + "\n")  # -Infinity round-trips
        return [self.cache[k] for k in keys]


def fit(examples: list[Example], span_reader: SpanReader | None = None, in_topic: list[Example] | None = None) -> reader.ReaderModel:
    """The ranker and reranker learn from answerable questions; the balanced verifiers also from
    absent-document ones; the strict verifiers (when `in_topic` is given) from in-topic ones too."""
    ranker = fit_logistic(*stack([e for e in examples if e.answerable]), reader.SENTENCE_FEATURES)
    strict_examples = [*examples, *in_topic] if in_topic else None
    strict_verifier = fit_verifier(ranker, strict_examples) if strict_examples else None
    if span_reader is None:
        return reader.ReaderModel(ranker, fit_verifier(ranker, examples), strict_verifier=strict_verifier)
    usable = [e for e in examples if e.features.positions]
    read = [read_top(ranker, e, span_reader) for e in usable]
    reranker = fit_logistic(
        np.vstack([reader.rerank_rows(p[top], spans) for p, top, spans in read]),
        np.concatenate([e.labels[top] for e, (_, top, _) in zip(usable, read)]),
        reader.RERANK_FEATURES,
    )
    return reader.ReaderModel(
        ranker,
        fit_verifier(ranker, examples),
        reranker,
        fit_answer_verifier(ranker, reranker, examples, span_reader),
        strict_verifier,
        fit_answer_verifier(ranker, reranker, strict_examples, span_reader) if strict_examples else None,
    )


def fit_answer_verifier(ranker: reader.Logistic, reranker: reader.Logistic, examples: list[Example], span_reader: SpanReader) -> reader.Logistic:
    usable = [e for e in examples if e.features.positions]
    rows = []
    for e in usable:
        p, top, spans = read_top(ranker, e, span_reader)
        rows.append(reader.answer_verifier_row(e.features, p, reranker.predict(reader.rerank_rows(p[top], spans)), spans))
    return fit_logistic(np.vstack(rows), np.array([e.answerable for e in usable]), reader.ANSWER_VERIFIER_FEATURES)


def read_top(ranker: reader.Logistic, e: Example, span_reader: SpanReader):
    """(ranker probabilities, the top candidates the answer model reads, its results for them)."""
    p = ranker.predict(e.features.sentence)
    top = np.argsort(-p, kind="stable")[: reader.RERANK_TOP]
    return p, top, span_reader(e, top)


def fit_verifier(ranker: reader.Logistic, examples: list[Example]) -> reader.Logistic:
    usable = [e for e in examples if e.features.positions]
    x = np.vstack([reader.question_row(e.features, ranker.predict(e.features.sentence)) for e in usable])
    y = np.array([e.answerable for e in usable])
    return fit_logistic(x, y, reader.QUESTION_FEATURES)


@dataclass
class Scored:
    answerable: bool
    hit: bool  # the chosen sentence holds a gold answer
    confidence: float
    em: float  # of the short answer the pipeline would give (0 when nothing was chosen)
    f1: float


def score(model: reader.ReaderModel, examples: list[Example], span_reader: SpanReader | None = None, strict: bool = False) -> list[Scored]:
    """What the pipeline would do with each question, without the pipeline's I/O."""
    verifier = model.strict_verifier if strict else model.verifier
    answer_verifier = model.strict_answer_verifier if strict else model.answer_verifier
    out = []
    for e in examples:
        if not e.features.positions:
            out.append(Scored(e.answerable, False, 0.0, 0.0, 0.0))
            continue
        if span_reader is None or model.reranker is None:
            p = model.ranker.predict(e.features.sentence)
            best, result = int(np.argmax(p)), None
            confidence = float(verifier.predict(reader.question_row(e.features, p)[None, :])[0])
        else:
            p, top, spans = read_top(model.ranker, e, span_reader)
            reranked = model.reranker.predict(reader.rerank_rows(p[top], spans))
            j = int(np.argmax(reranked))
            best, result = int(top[j]), spans[j]
            confidence = float(answer_verifier.predict(reader.answer_verifier_row(e.features, p, reranked, spans)[None, :])[0])
        text = e.features.texts[best]
        rules = reader.short_answer(e.question, text)
        if reader.takes_model_span(e.question, result, rules):
            short = text[result.start : result.end]
        else:
            short = text[rules[0] : rules[1]] if rules else text
        out.append(Scored(e.answerable, bool(e.labels[best]), confidence,
                          exact_match(short, e.golds) if e.golds else 0.0, f1_score(short, e.golds) if e.golds else 0.0))
    return out


def metrics(scored: list[Scored], threshold: float, in_topic: list[Scored]) -> dict:
    answerable = [s for s in scored if s.answerable]
    unanswerable = [s for s in scored if not s.answerable]
    answered = [s.confidence >= threshold for s in answerable]
    return {
        # As `qa eval` counts them: an abstention on an answerable question is a miss.
        "quote_hit_at_1": float(np.mean([s.hit and a for s, a in zip(answerable, answered)])),
        "ranker_hit_at_1": float(np.mean([s.hit for s in answerable])),
        "answer_em": float(np.mean([s.em * a for s, a in zip(answerable, answered)])),
        "answer_f1": float(np.mean([s.f1 * a for s, a in zip(answerable, answered)])),
        "false_abstain_rate": float(np.mean([not a for a in answered])),
        "abstain_rate_unanswerable": float(np.mean([s.confidence < threshold for s in unanswerable])) if unanswerable else None,
        "abstain_rate_in_topic": float(np.mean([s.confidence < threshold for s in in_topic])) if in_topic else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/eval/squad-dev-public")
    parser.add_argument("--work", type=Path, default=ROOT / ".cache/train-reader")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--unanswerable-per-fold", type=int, default=300)
    parser.add_argument("--in-topic-per-fold", type=int, default=300)
    parser.add_argument("--out", type=Path, default=reader.MODEL_FILE)
    parser.add_argument("--span-folds", type=int, default=4, help="scripts/train_span.py's --folds")
    parser.add_argument("--fast-only", action="store_true", help="no answer model: ranker and verifier only")
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
    rng, in_topic_rng = np.random.default_rng(0), np.random.default_rng(1)
    by_fold_unanswerable: dict[int, list[Example]] = {}
    by_fold_in_topic: dict[int, list[Example]] = {}
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
        idx = [i for i, q in enumerate(questions) if fold_of[q["doc"]] == fold]
        idx = in_topic_rng.permutation(idx)  # a random sample across the fold's articles, not its first ones
        by_fold_in_topic[fold] = build_in_topic(pipeline, snap, [questions[i] for i in idx], vectors[idx], args.in_topic_per_fold)
    print(f"features built ({time.time() - started:.0f} s)")

    span_reader = None if args.fast_only else SpanReader(args.work, fold_of, args.span_folds)
    threshold = pipeline.config.min_confidence  # the product's own, so the card reports what users get
    oracle = float(np.mean([e.labels.any() for e in examples]))
    oof: dict[str, dict] = {}
    for mode, reads in (("fast", None), ("answer_model", span_reader)):
        if mode == "answer_model" and reads is None:
            continue
        # Out-of-fold: each fold scored by models fit on the other folds.
        scored: dict[str, list[Scored]] = {"": [], "_strict": []}
        in_topic: dict[str, list[Scored]] = {"": [], "_strict": []}
        for fold in range(args.folds):
            train = [e for e in examples if fold_of[e.article] != fold]
            train += [e for f, es in by_fold_unanswerable.items() if f != fold for e in es]
            model = fit(train, reads, [e for f, es in by_fold_in_topic.items() if f != fold for e in es])
            test = [e for e in examples if fold_of[e.article] == fold] + by_fold_unanswerable[fold]
            for kind, strict in (("", False), ("_strict", True)):
                scored[kind] += score(model, test, reads, strict)
                in_topic[kind] += score(model, by_fold_in_topic[fold], reads, strict)
            print(f"  {mode}: fold {fold} scored ({time.time() - started:.0f} s)", flush=True)
        for kind in scored:
            for t in (0.3, 0.4, 0.5, 0.6, 0.7):
                row = {k: round(v, 4) for k, v in metrics(scored[kind], t, in_topic[kind]).items()}
                print(f"  {mode}{kind} threshold {t:.1f}: {json.dumps(row)}")
            oof[mode + kind] = {k: (round(v, 4) if v is not None else None)
                                for k, v in metrics(scored[kind], threshold, in_topic[kind]).items()}
            print(f"{mode}{kind} out-of-fold (threshold {threshold:.3f}): {json.dumps(oof[mode + kind])}; "
                  f"oracle top-5 sentence hit {oracle:.3f}")

    everything = examples + [e for es in by_fold_unanswerable.values() for e in es]
    model = fit(everything, span_reader, [e for es in by_fold_in_topic.values() for e in es])
    card = {
        "model": "briefqa extractive reader: logistic ranker + verifier over candidate sentences (fast mode); "
        "with the answer model (qa/models/span), a logistic reranker over its top sentences + answer verifier; "
        "each verifier also in a strict kind (the *_strict rows)",
        "trained_on": "SQuAD v1.1 dev, first 24 articles (../shared/eval/squad-dev-public), CC BY-SA 4.0",
        "protocol": f"{args.folds}-fold cross-validation by article; unanswerable = a fold's questions "
        f"against an index without that fold's articles ({args.unanswerable_per_fold} per fold); "
        f"in-topic unanswerable = a fold's questions read without the retrieved sentences holding a gold "
        f"answer ({args.in_topic_per_fold} per fold; in the strict verifiers' training data only); "
        f"answer-model scores are out-of-fold too ({args.span_folds} folds, scripts/train_span.py); "
        "metrics are out-of-fold; the shipped weights are refit on all data",
        "retrieval": {"top_k": pipeline.config.top_k, "fusion_depth": pipeline.config.fusion_depth},
        "questions": len(examples),
        "unanswerable_questions": sum(len(v) for v in by_fold_unanswerable.values()),
        "in_topic_unanswerable_questions": sum(len(v) for v in by_fold_in_topic.values()),
        "threshold": round(threshold, 4),
        "out_of_fold": oof,
        "oracle_top5_sentence_hit": round(oracle, 4),
    }
    parts = {name: getattr(model, name) for name in reader.PARTS}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"card": card, **{k: m.to_json() for k, m in parts.items() if m is not None}}, indent=1)
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {args.out} ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
