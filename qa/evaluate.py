"""Measure the pipeline on a question set: retrieval recall, quote hits, short-answer EM/F1,
abstention, latency. Questions are JSONL: {"id", "question", "answers": [...], "doc"}; an empty
`answers` list means the documents do not hold the answer and the right reply is to abstain.

Dialogues (follow-up questions) are JSONL too: {"id", "turns": [question, ...]}, each turn a
question object whose "doc" is the path of the document holding its answer (null when none does).
"""

from __future__ import annotations

import json
import re
import string
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from qa import followup
from qa.pipeline import Pipeline
from qa.types import Answer, Passage

RECALL_KS = (1, 5, 10)
CALIBRATION_BINS = 10  # equal-width bins of the confidence score for ECE and the reliability table


def article_folds(articles: Iterable[str], folds: int) -> dict[str, int]:
    """Cross-validation folds by article, the same for every script that trains on the public
    sets: an article's questions are scored only by models that never saw that article."""
    return {a: i % folds for i, a in enumerate(sorted(set(articles)))}


def load_questions(path: Path, limit: int | None = None) -> list[dict]:
    questions = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                questions.append(json.loads(line))
            if limit and len(questions) >= limit:
                break
    return questions


def sync_documents(pipeline: Pipeline, docs_dir: Path) -> None:
    """Make the index hold exactly the supported files of docs_dir (unchanged ones are reused)."""
    sync_files(pipeline, [p for p in docs_dir.rglob("*") if p.is_file()])


def sync_files(pipeline: Pipeline, paths: Iterable[Path]) -> None:
    """Make the index hold exactly `paths` (unchanged ones are reused)."""
    paths = list(paths)
    pipeline.add(paths)
    present = {str(p.resolve()) for p in paths}
    for info in pipeline.documents():
        if info.path not in present:
            pipeline.remove(info.doc_id)


def is_dialogue_file(path: Path) -> bool:
    """Whether a JSONL file holds dialogues (objects with "turns") rather than single questions."""
    first = load_questions(path, limit=1)
    return bool(first) and "turns" in first[0]


def dialogue_documents(dialogues: list[dict]) -> list[str]:
    """The document paths the dialogues' answers stand in, in order of first mention."""
    return list(dict.fromkeys(t["doc"] for d in dialogues for t in d["turns"] if t.get("doc")))


# --- SQuAD's official normalisation --------------------------------------------------------


def normalize_answer(text: str) -> str:
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, golds: Iterable[str]) -> float:
    return float(any(normalize_answer(prediction) == normalize_answer(g) for g in golds))


def f1_score(prediction: str, golds: Iterable[str]) -> float:
    best = 0.0
    predicted = normalize_answer(prediction).split()
    for gold in golds:
        truth = normalize_answer(gold).split()
        common = Counter(predicted) & Counter(truth)
        same = sum(common.values())
        if same:
            precision, recall = same / len(predicted), same / len(truth)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def _contains(text: str, golds: list[str]) -> bool:
    low = text.lower()
    return any(g.lower() in low for g in golds)


def first_relevant_rank(passages: list[Passage], golds: list[str]) -> int | None:
    for rank, passage in enumerate(passages, 1):
        if _contains(passage.text, golds):
            return rank
    return None


def judge(question: dict, answer: Answer, ranked: list[Passage], latency_ms: float) -> dict:
    """One question's outcome: everything the report aggregates and the error analysis reads."""
    golds = question.get("answers") or []
    rank = first_relevant_rank(ranked, golds) if golds else None
    return {
        "id": question.get("id"),
        "question": question["question"],
        "golds": golds,
        "answered": answer.answered,
        "answer": answer.answer,
        "quote": answer.quote,
        "score": answer.score,
        "citations": [asdict(c) for c in answer.citations],
        # Right: the quote holds a gold answer. Any answer to an unanswerable question is wrong.
        "hit": bool(golds) and answer.answered and _contains(answer.quote, golds),
        "em": exact_match(answer.answer, golds) if golds and answer.answered else 0.0,
        "f1": f1_score(answer.answer, golds) if golds and answer.answered else 0.0,
        "relevant_rank": rank,
        "latency_ms": round(latency_ms, 2),
    }


def evaluate(
    pipeline: Pipeline,
    questions: list[dict],
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict, list[dict]]:
    """Ask every question through the real pipeline; return the summary and per-question rows."""
    rows = []
    depth = max(RECALL_KS)
    for i, question in enumerate(questions, 1):
        clock = time.perf_counter()
        answer = pipeline.ask(question["question"])
        latency = (time.perf_counter() - clock) * 1000
        ranked = pipeline.ranked(question["question"], depth) if question.get("answers") else []
        rows.append(judge(question, answer, ranked, latency))
        if progress:
            progress(i, len(questions))
    return summarize(rows), rows


def evaluate_dialogues(pipeline: Pipeline, dialogues: list[dict]) -> tuple[dict, list[dict]]:
    """Ask each dialogue's turns in order, each in the context of the ones before (qa.followup),
    and every later turn once more on its own, as if it were the first: what the conversation adds.

    A turn is right when it quotes a gold answer from its document, or, when no document holds
    one, when it abstains. Rows: one per turn, `alone_right` for the later turns.
    """
    rows = []
    for dialogue in dialogues:
        context = followup.Context()
        for number, turn in enumerate(dialogue["turns"], 1):
            answer = pipeline.ask(turn["question"], context=context)
            context = followup.after(context, answer)
            row = {
                "id": dialogue["id"],
                "turn": number,
                "question": turn["question"],
                "read_as": answer.read_as,
                "golds": turn.get("answers") or [],
                "answered": answer.answered,
                "quote": answer.quote,
                "source": answer.citations[0].source if answer.citations else None,
                "right": _turn_right(turn, answer),
            }
            if number > 1:
                row["alone_right"] = _turn_right(turn, pipeline.ask(turn["question"]))
            rows.append(row)

    def share(selected: list[dict], key: str = "right") -> dict:
        right = sum(bool(r[key]) for r in selected)
        return {"right": right, "of": len(selected), "share": round(right / len(selected), 4) if selected else None}

    first = [r for r in rows if r["turn"] == 1]
    later = [r for r in rows if r["turn"] > 1]
    summary = {
        "dialogues": len(dialogues),
        "turn_one": share(first),
        "later_turns": share(later),
        "later_answerable": share([r for r in later if r["golds"]]),
        "later_unanswerable_refused": share([r for r in later if not r["golds"]]),
        "later_read_as_follow_up": sum(bool(r["read_as"]) for r in later),
        "later_turns_asked_alone": share(later, "alone_right"),
    }
    return summary, rows


def _turn_right(turn: dict, answer: Answer) -> bool:
    golds = turn.get("answers") or []
    if not golds:
        return not answer.answered
    source = Path(turn["doc"]).name
    quote = " ".join(answer.quote.split())  # PDF text: gold answers may span a printed line break
    return answer.answered and answer.citations[0].source == source and _contains(quote, [" ".join(g.split()) for g in golds])


def summarize(rows: list[dict]) -> dict:
    answerable = [r for r in rows if r["golds"]]
    unanswerable = [r for r in rows if not r["golds"]]

    def mean(values: list[float]) -> float | None:
        return round(float(np.mean(values)), 4) if values else None

    latencies = [r["latency_ms"] for r in rows]
    summary = {
        "questions": len(rows),
        "answerable": len(answerable),
        "quote_hit_at_1": mean([r["hit"] for r in answerable]),
        "answer_em": mean([r["em"] for r in answerable]),
        "answer_f1": mean([r["f1"] for r in answerable]),
        **{
            f"recall_at_{k}": mean([r["relevant_rank"] is not None and r["relevant_rank"] <= k for r in answerable])
            for k in RECALL_KS
        },
        "mrr": mean([1.0 / r["relevant_rank"] if r["relevant_rank"] else 0.0 for r in answerable]),
        "abstain_rate_unanswerable": mean([not r["answered"] for r in unanswerable]),
        "false_abstain_rate": mean([not r["answered"] for r in answerable]),
        "ece": None,
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 2) if latencies else None,
        "latency_ms_p95": round(float(np.percentile(latencies, 95)), 2) if latencies else None,
    }
    answered = [r for r in rows if r["answered"]]
    if answered:
        table = reliability([r["score"] for r in answered], [r["hit"] for r in answered])
        summary["ece"] = round(expected_calibration_error(table, len(answered)), 4)
        summary["reliability"] = table
    return summary


def reliability(scores: Iterable[float], right: Iterable[bool], bins: int = CALIBRATION_BINS) -> list[dict]:
    """Per non-empty equal-width score bin: how many answers, their mean score, how many were right."""
    scores, right = np.asarray(list(scores), np.float64), np.asarray(list(right), bool)
    which = np.minimum((scores * bins).astype(int), bins - 1)
    table = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            table.append({"bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}", "answers": int(inside.sum()),
                          "mean_score": round(float(scores[inside].mean()), 4),
                          "right": round(float(right[inside].mean()), 4)})
    return table


def expected_calibration_error(table: list[dict], total: int) -> float:
    """Mean |score - share right| over the bins, weighted by their answers (Naeini et al. 2015)."""
    return float(sum(b["answers"] * abs(b["mean_score"] - b["right"]) for b in table) / total) if total else 0.0
