"""Answers from tables: the public table set scored by its README's rule, per format.

    python bench/tables.py [--set tables-public] [--out bench/results/tables.json]

Indexes `../shared/eval/<set>/docs` in a temporary index with default settings and asks every
question through the real pipeline. An answerable question counts when the answer is given, the
short answer (the cell) and the quote both hold a gold answer (whitespace, hyphens and case
ignored), the cited document is the gold one and, for PDFs, the cited page is the gold page; an
unanswerable one when the system abstains. Prints answerable right, unanswerable refused, false
refusals, per kind, the questions needing row and column together, and how often the answers
were right per confidence band; the realdocs-public set (no cells) is scored on the quote alone.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import _common as c

EVAL = c.REPO.parent / "shared" / "eval"
# The README of tables-public names these: the value repeats in the table, so only the row and the
# column together find it.
ROW_AND_COLUMN = ("fbi-nics-firearm-background-checks-2015-11-q4", "fbi-nics-firearm-background-checks-2015-11-q5",
                  "omb-budget-fy2013-table-s4-adjusted-baseline-q5", "omb-budget-fy2013-table-s4-adjusted-baseline-q6",
                  "census-statistical-abstract-2012-arrests-2009-q6",
                  "nces-projections-of-education-statistics-to-2021-tables-14-19-q4",
                  "nces-projections-of-education-statistics-to-2021-tables-14-19-q6",
                  "epa-data-center-energy-report-2007-server-uec-tables-q3",
                  "fedramp-general-document-acceptance-criteria-2018-q2",
                  "wikipedia-list-of-films-featuring-time-loops-2024-q4")


def squeezed(text: str) -> str:
    return re.sub(r"[\s\-‐‑‒–—−]", "", text).casefold()


def right(question: dict, answer, cells: bool) -> bool:
    if not question["answers"]:
        return not answer.answered
    if not answer.answered:
        return False
    citation = answer.citations[0]
    holds = lambda text: any(squeezed(g) in squeezed(text) for g in question["answers"])  # noqa: E731
    return (holds(answer.quote) and (holds(answer.answer) or not cells) and citation.source == question["doc"]
            and (question.get("page") is None or citation.page == question["page"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="tables-public", help="a folder of ../shared/eval (default: tables-public)")
    parser.add_argument("--out", type=Path, help="write the per-question outcomes as JSON")
    args = parser.parse_args()
    folder = EVAL / args.set
    if not folder.is_dir():
        raise SystemExit(f"{folder} is missing: this benchmark needs ../shared/eval/{args.set}")
    from qa.config import Config
    from qa.pipeline import Pipeline

    questions = [json.loads(line) for line in (folder / "questions.jsonl").read_text().splitlines() if line.strip()]
    cells = args.set.startswith("tables")
    rows = []
    with tempfile.TemporaryDirectory() as index:
        pipeline = Pipeline(replace(Config.load(), index_dir=Path(index)))
        clock = time.perf_counter()
        results = pipeline.add(sorted((folder / "docs").iterdir()))
        added_s = time.perf_counter() - clock
        refused = [r for r in results if r.status == "refused"]
        assert not refused, refused
        for q in questions:
            answer = pipeline.ask(q["question"])
            table = answer.citations[0].table if answer.answered else None
            rows.append({"id": q["id"], "kind": q["kind"], "answerable": bool(q["answers"]), "right": right(q, answer, cells),
                         "answered": answer.answered, "score": answer.score, "answer": answer.answer[:80],
                         "gold": q["answers"][:1], "table": bool(table)})
    by_kind: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_kind[row["kind"]].append(row)
    by_kind["all"] = rows

    def share(selected: list[dict]) -> str:
        return f"{sum(r['right'] for r in selected)} / {len(selected)}" if selected else "-"

    print(f"{args.set}: {len(questions)} questions, {len(results)} files indexed in {added_s:.1f} s")
    print("| kind | answerable right | unanswerable refused | false refusals |")
    print("|---|---:|---:|---:|")
    for kind, selected in by_kind.items():
        answerable = [r for r in selected if r["answerable"]]
        print(f"| {kind} | {share(answerable)} | {share([r for r in selected if not r['answerable']])} | "
              f"{sum(not r['answered'] for r in answerable)} / {len(answerable)} |")
    if cells:
        print(f"row and column together: {share([r for r in rows if r['id'] in ROW_AND_COLUMN])}")
        answered = [r for r in rows if r["answered"]]
        print(f"answered from a table's cell: {sum(r['table'] for r in answered)} of {len(answered)} answers")
    for low, high in ((0.0, 0.3), (0.3, 0.5), (0.5, 0.7), (0.7, 0.85), (0.85, 1.01)):
        band = [r for r in rows if r["answered"] and low <= r["score"] < high]
        if band:
            print(f"score {low:.2f}-{min(high, 1):.2f}: {share(band)} right")
    for row in rows:
        if not row["right"]:
            print("  wrong:", row["id"], row["answer"] or "(refused)", "| gold:", row["gold"])
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
