"""Train the table reader's confidence on synthetic tables; write qa/models/tables.json.

The table reader (`qa/read/tables.py`) picks a cell by how much of the question its row, column
and context hold; this script learns how far to trust that pick: a logistic model over the
reading's signals (`SIGNALS`), the probability that the cell answers the question.

Data, nothing from ../shared/eval: tables generated here, each row named by a SQuAD v1.1 train
article title (../shared/train; those articles are disjoint from every evaluation set) or a year,
columns from a list of measures written for this script (with group headers over sub-columns,
years as columns, years as rows), random figures (some repeated in the row, as real tables do),
a caption, and two other tables in the same document. Questions come from templates naming a row
and a column (several phrasings), and a fifth ask for what the table lacks: a row from another
table, a year outside its range, a measure it does not have. Each question is read over its
document and two others (`read_tables`, IDF over the paragraphs of all the documents, as the
index gives it). A reading counts as right when it picks the gold cell (answerable) or refuses or
stands aside (unanswerable).

Protocol: the model is fit on the readings that answered (a refusal is not scored), on 80% of the
tables, and measured on the other 20% (accuracy, ECE, AUROC); the shipped model is refit on all.
Run: `.venv/bin/python scripts/train_tables.py [--tables 1500] [--seed 0]` (a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import time
from pathlib import Path

import numpy as np

from qa.read.features import Logistic
from qa.read.tables import MODEL_FILE, SIGNALS, _terms, read_tables
from qa.types import Document, table_text

TRAIN = Path(__file__).resolve().parents[2] / "shared" / "train" / "squad-v1.1-train" / "train-v1.1.json"
MEASURES = ["revenue", "exports", "imports", "enrollment", "graduates", "teachers", "permits", "applications",
            "visitors", "employees", "budget", "outlays", "receipts", "cases", "admissions", "passengers", "flights",
            "patents", "licenses", "inspections", "complaints", "arrivals", "departures", "subscribers", "donations",
            "grants", "loans", "claims", "vaccinations", "hospital beds", "housing starts", "wind capacity"]
STOP = frozenset("that with from this were have which their there been also after about when they more than into "
                 "other some such only most over these many first would could under while where those".split())
ABSENT_MEASURES = ["pensions", "tariffs", "wildfires", "earthquakes", "museums", "shipwrecks", "strikes", "floods"]
SUBS = [("Male", "Female"), ("Public", "Private"), ("Urban", "Rural"), ("Domestic", "Foreign"), ("New", "Renewed")]
UNITS = ["", " (in thousands)", " (in millions of dollars)", " (percent)"]
# How a question may name a measure in other words than the table's header (then the reader may
# miss or mistake the column: the readings the confidence must learn to doubt).
OTHER_WORDS = {"revenue": "income", "employees": "staff", "visitors": "tourists", "passengers": "travellers",
               "exports": "goods shipped abroad", "outlays": "spending", "receipts": "takings", "cases": "infections",
               "teachers": "instructors", "graduates": "degrees awarded", "budget": "funding", "loans": "credit"}
ASIDES = ["", "", " according to the report", " as published", " in the statistical report"]
ROW_KINDS = ["area", "institution", "program", "region"]
TEMPLATES = [
    "How many {col} did {row} have in {year}?",
    "What was the number of {col} for {row} in {year}?",
    "What {col} does the table show for {row} in {year}?",
    "In {year}, how many {col} were recorded for {row}?",
    "What were {row}'s {col} in {year}?",
]


def squad() -> tuple[list[str], list[str]]:
    """SQuAD train's article titles (row names) and paragraphs (the documents' prose)."""
    data = json.loads(TRAIN.read_text(encoding="utf-8"))["data"]
    return [re.sub(r"_", " ", a["title"]) for a in data], [p["context"] for a in data for p in a["paragraphs"]]


def figure(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.5:
        return f"{rng.randint(10, 999_999):,}"
    if kind < 0.8:
        return f"{rng.uniform(0, 999):.1f}"
    return str(rng.randint(0, 99))


def make_table(rng: random.Random, names: list[str], number: int, pool: list[str], measures_pool: list[str]) -> dict:
    """One table: its shape, caption, columns, rows and what its questions may name. `pool` and
    `measures_pool` are its document's: its tables share rows and measures, like a report's."""
    shape = rng.choice(["measures", "groups", "years"])
    year0 = rng.randint(1990, 2020)
    years = [str(year0 + i) for i in range(rng.randint(3, 8))]
    rows = rng.sample(pool, rng.randint(4, min(14, len(pool))))
    kind = rng.choice(ROW_KINDS)
    if shape == "years":  # one measure over years
        measure = rng.choice(measures_pool)
        columns = [kind.title(), *years]
        body = [[r, *(figure(rng) for _ in years)] for r in rows]
        caption = f"Table {number}. {measure.title()}{rng.choice(UNITS)} by {kind}, {years[0]}–{years[-1]}"
        cells = {(r, (measure, y)): body[i][1 + j] for i, r in enumerate(rows) for j, y in enumerate(years)}
    else:
        year = rng.choice(years)
        measures = rng.sample(measures_pool, rng.randint(2, min(5, len(measures_pool))))
        if shape == "groups":
            sub = rng.choice(SUBS)
            heads = [(m, s) for m in measures for s in sub]
            columns = [kind.title(), *(f"{m.title()} {s}" for m, s in heads)]
            names_of = [f"{s.lower()} {m}" for m, s in heads]
        else:
            columns = [kind.title(), *(m.title() for m in measures)]
            names_of = measures
        body = [[r, *(figure(rng) for _ in names_of)] for r in rows]
        for row in body:  # real tables repeat figures within a row
            if len(row) > 3 and rng.random() < 0.3:
                row[2] = row[1]
        caption = f"Table {number}. {' and '.join(m.title() for m in measures[:2])} by {kind}: {year}"
        years = [year]
        cells = {(r, (n, year)): body[i][1 + j] for i, r in enumerate(rows) for j, n in enumerate(names_of)}
    return {"caption": caption, "columns": columns, "rows": body, "names": rows, "years": years, "cells": cells,
            "measures": sorted({c[1][0] for c in cells})}


def make_document(rng: random.Random, tables: list[dict], number: int, prose: list[str]) -> Document:
    """A report: prose (SQuAD paragraphs) around its tables, as real reports have."""
    parts = [f"# Statistical report {number}", rng.choice(prose)]
    for table in tables:
        parts += [table_text(table["caption"], table["columns"], table["rows"]), rng.choice(prose)]
    text = "\n\n".join(parts) + "\n"
    return Document(doc_id=f"d{number}", title=f"Statistical report {number}", source=f"r{number}.md", path="", text=text)


def with_words(rng: random.Random, question: str, prose: list[str]) -> str:
    """The question with a few words of prose no cell holds, as real questions have ("projected",
    "under the adjusted baseline", "run"): the reader must answer without them."""
    if rng.random() < 0.3:
        return question
    words = [w for w in re.findall(r"[a-z]{4,}", rng.choice(prose)) if w not in STOP]
    extra = " ".join(rng.sample(words, min(len(words), rng.randint(1, 3))))
    return f"{question[:-1]} ({extra})?"


def questions(rng: random.Random, table: dict, names: list[str], prose: list[str]) -> list[tuple[str, str | None]]:
    """(question, gold cell or None) pairs: four answerable, one for what the table lacks."""
    asked = []
    for _ in range(4):
        (row, (col, year)), cell = rng.choice(list(table["cells"].items()))
        measure = col.split(" ")[-1] if col.split(" ")[-1] in OTHER_WORDS else col
        if measure in OTHER_WORDS and rng.random() < 0.25:
            col = col.replace(measure, OTHER_WORDS[measure])
        if " " in row and rng.random() < 0.2:
            row = row.split(" ", 1)[1]  # part of the row's name
        question = rng.choice(TEMPLATES).format(col=col, row=row, year=year)
        asked.append((with_words(rng, question[:-1] + rng.choice(ASIDES) + "?", prose), cell))
    row, (col, year) = rng.choice(list(table["cells"]))
    lack = rng.choice(["row", "year", "measure"])
    if lack == "row":
        row = rng.choice([n for n in names if n not in table["names"]])
    elif lack == "year":
        year = str(int(max(table["years"])) + rng.randint(3, 9))
    else:
        col = rng.choice(ABSENT_MEASURES)
    asked.append((with_words(rng, rng.choice(TEMPLATES).format(col=col, row=row, year=year), prose), None))
    return asked


def readings(seed: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Signals of each answered reading, whether it was right, its table's number, and counts."""
    rng = random.Random(seed)
    names, prose = squad()
    tables = []
    for i in range(0, count, 3):
        pool, measures_pool = rng.sample(names, 20), rng.sample(MEASURES, 6)
        tables += [make_table(rng, names, i + k, pool, measures_pool) for k in range(3)]
    tables = tables[:count]
    docs = [make_document(rng, tables[i : i + 3], i, prose) for i in range(0, count, 3)]
    paragraphs = [set(_terms(p)) for d in docs for p in d.text.split("\n\n")]
    df: dict[str, int] = {}
    for p in paragraphs:
        for t in p:
            df[t] = df.get(t, 0) + 1

    def idf(terms):
        return np.array([math.log(1 + (len(paragraphs) - df.get(t, 0) + 0.5) / (df.get(t, 0) + 0.5)) for t in terms])

    rows, right, groups = [], [], []
    counts = {"answerable": 0, "answerable_right": 0, "lacking": 0, "lacking_refused": 0}
    for i, table in enumerate(tables):
        home = i // 3
        others = rng.sample([d for j, d in enumerate(docs) if j != home], 2)
        for question, gold in questions(rng, table, names, prose):
            reading = read_tables(question, [docs[home], *others], idf)
            answered = reading is not None and not reading.refuses and reading.column is not None
            got = reading.document.text[slice(*reading.cell)] if answered else None
            ok = (got == gold and reading.document is docs[home]) if gold else not answered
            kind = "answerable" if gold else "lacking"
            counts[kind] += 1
            counts[f"{kind}_{'right' if gold else 'refused'}"] += ok
            if answered:
                rows.append(reading.signals)
                right.append(ok)
                groups.append(i)
    return np.array(rows, float), np.array(right, bool), np.array(groups), counts


def fit(x: np.ndarray, y: np.ndarray) -> Logistic:
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    model = LogisticRegression(C=1.0, max_iter=2000).fit((x - mean) / scale, y)
    return Logistic(SIGNALS, model.coef_[0], float(model.intercept_[0]), mean, scale)


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for lo, hi in zip(edges, edges[1:]):
        m = (p >= lo) & (p < hi if hi < 1 else p <= hi)
        if m.any():
            total += m.sum() * abs(p[m].mean() - y[m].mean())
    return total / len(p)


def auroc(p: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=MODEL_FILE)
    args = parser.parse_args()
    clock = time.perf_counter()
    x, y, groups, counts = readings(args.seed, args.tables)
    held = groups % 5 == 0
    model = fit(x[~held], y[~held])
    p = model.predict(x[held])
    measured = {
        "held_out_readings": int(held.sum()),
        "accuracy_of_answers": round(float(y[held].mean()), 4),
        "ece": round(ece(p, y[held]), 4),
        "auroc": round(auroc(p, y[held]), 4),
        "brier": round(float(np.mean((p - y[held]) ** 2)), 4),
    }
    shipped = fit(x, y)
    card = {
        "what": "the table reader's confidence: P(the chosen cell answers the question) from its signals",
        "data": f"{args.tables} synthetic tables (rows named by SQuAD v1.1 train titles, measures and years), "
                f"5 questions each (4 naming a row and a column, 1 asking for what the table lacks); seed {args.seed}",
        "readings": counts,
        "protocol": "fit on the answered readings of 80% of the tables, measured on the other 20%; shipped: refit on all",
        "held_out": measured,
        "seconds": round(time.perf_counter() - clock, 1),
    }
    args.out.write_text(json.dumps({"card": card, "model": shipped.to_json()}, indent=1) + "\n")
    print(json.dumps(card, indent=1))


if __name__ == "__main__":
    main()
