"""Every answer of a question set as `qa ask --json` prints it, one JSON line per question: run it
before and after a change that must not change behaviour, and compare the files byte for byte.

Run: `.venv/bin/python scripts/answers_snapshot.py QUESTIONS.jsonl DOCS_DIR OUT.jsonl [--index DIR]`
(the index is built once in DIR, default .cache/snapshot-<docs folder name>).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qa.config import Config  # noqa: E402
from qa.evaluate import load_questions, sync_documents  # noqa: E402
from qa.pipeline import Pipeline  # noqa: E402
from qa.schema import answer_json  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", type=Path)
    parser.add_argument("docs", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--index", type=Path)
    parser.add_argument("--limit", type=int)
    args = parser.parse_args()
    index = args.index or ROOT / ".cache" / f"snapshot-{args.docs.resolve().name}"
    pipeline = Pipeline(replace(Config.load(), index_dir=index))
    sync_documents(pipeline, args.docs)
    with open(args.out, "w", encoding="utf-8") as out:
        for question in load_questions(args.questions, args.limit):
            answer = answer_json(pipeline.ask(question["question"]))
            out.write(json.dumps(answer, ensure_ascii=False, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
