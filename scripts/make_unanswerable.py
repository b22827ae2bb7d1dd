"""Make SQuAD 2.0-style unanswerable questions from SQuAD v1.1 train questions, in the folder
format `train_span.py --squad2` reads (`docs/<title>.txt`, `questions.jsonl`).

SQuAD 2.0's unanswerable questions were written to look answerable from an article that does not
answer them; its train half is not in ../shared, and its public dev half is an evaluation set. So
each chosen train question gives two: itself (answerable), and one change the article does not
answer, the two kinds of SQuAD 2.0's that need no word lists:
- a swap: a name or figure of the question replaced by another of the same shape (a name of as
  many words, a year, a number of as many characters) from the same article that the answer's
  sentence does not hold ("For whom is Green Hall named?" -> "For whom is Larry Brown named?");
- a negation, when the question has nothing to swap: "not" after its first auxiliary verb.
The model then reads the changed question against the sentences closest to it (the answer's
among them) as "no answer", and the original against its answer.

Articles: `--articles` drawn (seeded) from the train set, never the held-out learning-curve
articles of `train_span.py` (its --seed and --holdout). The train questions themselves were read
as answerable in the first stage; here they pair with their changed twins.

Run: `.venv/bin/python scripts/make_unanswerable.py OUT [--articles 80 --per-article 20]`.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared/train/squad-v1.1-train/train-v1.1.json"

# Capitalised words, joined by "of", "de", "the", "von", "van" inside a name.
NAME = re.compile(r"\b[A-Z][a-z]+(?:\s+(?:(?:of|de|the|von|van)\s+)?[A-Z][a-z]+)*\b")
FIGURE = re.compile(r"\b\d[\d,]*\b")
AUXILIARY = re.compile(r"\b(is|was|were|are|did|does|do|can|could|has|had|have|will|would|should)\b")


def shape(term: str) -> tuple[str, int]:
    """What may replace `term`: a year by a year, a number by one as long, a name by one of as many words."""
    if term[0].isdigit():
        return ("year" if re.fullmatch(r"1\d{3}|20\d{2}", term) else "number", len(term))
    return ("name", len(term.split()))


def article_terms(text: str) -> dict[tuple[str, int], list[str]]:
    """The article's names (not a sentence's first word) and figures, by shape."""
    names = {m.group(0) for m in NAME.finditer(text)
             if m.start() > 1 and text[m.start() - 2] not in ".\n" and len(m.group(0)) > 3}
    figures = {m.group(0) for m in FIGURE.finditer(text)}
    by_shape: dict[tuple[str, int], list[str]] = {}
    for term in sorted(names) + sorted(figures):
        by_shape.setdefault(shape(term), []).append(term)
    return by_shape


def answer_sentence(context: str, start: int, length: int) -> str:
    """The answer's sentence, near enough: from the full stop before it to the one after."""
    left = context.rfind(". ", 0, start) + 1
    right = context.find(". ", start + length)
    return context[left : right if right > 0 else len(context)]


def changed(question: str, sentence: str, by_shape: dict, rng: random.Random) -> tuple[str, str] | None:
    """(the question changed so that `sentence` does not answer it, "swap" or "negation"), or None."""
    spots = [m for m in NAME.finditer(question) if m.start() > 0] + list(FIGURE.finditer(question))
    rng.shuffle(spots)
    for m in spots:
        options = [t for t in by_shape.get(shape(m.group(0)), []) if t not in sentence and t not in question]
        if options:
            return question[: m.start()] + rng.choice(options) + question[m.end() :], "swap"
    auxiliary = AUXILIARY.search(question)
    if auxiliary is None or " not " in question:
        return None
    return question[: auxiliary.end()] + " not" + question[auxiliary.end() :], "negation"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--articles", type=int, default=80)
    parser.add_argument("--per-article", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--train-seed", type=int, default=13, help="train_span.py's --seed (its held-out articles)")
    parser.add_argument("--holdout", type=int, default=8, help="train_span.py's --holdout")
    args = parser.parse_args()

    data = json.loads(args.data.read_text(encoding="utf-8"))
    held = {a["title"] for a in random.Random(args.train_seed).sample(data["data"], args.holdout)}
    rng = random.Random(args.seed)
    pool = [a for a in data["data"] if a["title"] not in held]
    rng.shuffle(pool)
    (args.out / "docs").mkdir(parents=True, exist_ok=True)
    rows, kinds = [], {"swap": 0, "negation": 0}
    for article in pool[: args.articles]:
        text = "\n\n".join(p["context"] for p in article["paragraphs"])
        by_shape = article_terms(text)
        asked = [(p["context"], qa) for p in article["paragraphs"] for qa in p["qas"]]
        rng.shuffle(asked)
        made = 0
        for context, qa in asked:
            if made == args.per_article:
                break
            gold = qa["answers"][0]
            change = changed(qa["question"], answer_sentence(context, gold["answer_start"], len(gold["text"])), by_shape, rng)
            if change is None:
                continue
            made += 1
            kinds[change[1]] += 1
            rows.append({"id": qa["id"], "question": qa["question"], "answers": [gold["text"]], "doc": article["title"]})
            rows.append({"id": f"{qa['id']}-{change[1]}", "question": change[0], "answers": [], "doc": article["title"]})
        (args.out / "docs" / f"{article['title']}.txt").write_text(text, encoding="utf-8")
    (args.out / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} questions from {min(args.articles, len(pool))} articles: {kinds}")


if __name__ == "__main__":
    main()
