"""The evaluation questions on the seed document, one test case per question, and a floor on
refusing questions that are about the briefing's topic but that it does not answer.

Every question goes through the same real pipeline (session-scoped `seeded_pipeline`). Nothing
here knows any particular question: an answerable one must be answered with a verbatim quote
holding an expected answer, cited to the expected document; an unanswerable one must abstain.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


QUESTIONS_FILE = Path(__file__).with_name("seed_questions.jsonl")
# On the briefing's topic, answer absent ("How much money did Japan pledge to Ukraine?"): written
# before they were first asked. With the base model's cascade (2026-12-05) the default refuses 7 of
# 8 (5 before it; "When will the ceasefire take effect?" scores 0.117, above the 0.11 bar; see
# docs/evaluation.md, Limits) and the strict bar all 8, while still answering 16 of the 20
# answerable seed questions (14 before). The floors keep those levels.
IN_TOPIC_FILE = Path(__file__).with_name("seed_in_topic_unanswerable.jsonl")
IN_TOPIC_REFUSAL_FLOOR = 0.875
STRICT_IN_TOPIC_REFUSAL_FLOOR = 1.0
STRICT_ANSWERED_FLOOR = 16
SEEDS_DIR = Path(__file__).resolve().parents[2] / "seeds"


def load_questions(path: Path = QUESTIONS_FILE) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


QUESTIONS = load_questions()


def test_question_file_is_large_enough_and_well_formed() -> None:
    assert len(QUESTIONS) >= 20
    unanswerable = [q for q in QUESTIONS if not q["answers"]]
    assert len(unanswerable) >= 4
    ids = [q["id"] for q in QUESTIONS]
    assert len(set(ids)) == len(ids), "question ids must be unique"
    for q in QUESTIONS:
        assert q["question"].strip()
        if q["answers"]:
            text = (SEEDS_DIR / q["doc"]).read_text(encoding="utf-8")
            missing = [a for a in q["answers"] if a.lower() not in text.lower()]
            assert not missing, f"{q['id']}: expected answers not in {q['doc']}: {missing}"
        else:
            assert q["doc"] is None


@pytest.mark.e2e
@pytest.mark.timeout(300)
@pytest.mark.parametrize("case", QUESTIONS, ids=[q["id"] for q in QUESTIONS])
def test_seed_question(seeded_pipeline, case: dict) -> None:
    answer = seeded_pipeline.ask(case["question"])
    got = f"answered={answer.answered} score={answer.score} answer={answer.answer!r} quote={answer.quote!r}"
    assert 0.0 <= answer.score <= 1.0

    if not case["answers"]:
        assert answer.answered is False, got
        assert answer.citations == () and answer.answer == "" and answer.quote == "", got
        return

    assert answer.answered is True, got
    assert any(expected.lower() in answer.quote.lower() for expected in case["answers"]), (
        f"expected one of {case['answers']} in the quote; {got}"
    )
    assert answer.citations, got
    citation = answer.citations[0]
    assert citation.source == case["doc"], got
    text = (SEEDS_DIR / citation.source).read_text(encoding="utf-8")
    assert citation.quote == text[citation.start : citation.end], "quote is not verbatim at its offsets"
    assert answer.quote == citation.quote
    assert answer.answer and answer.answer in answer.quote, got


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_refuses_in_topic_questions_the_briefing_does_not_answer(seeded_pipeline) -> None:
    questions = load_questions(IN_TOPIC_FILE)
    assert len(questions) >= 8 and all(not q["answers"] and q["doc"] is None for q in questions)
    answered = [(q["question"], a.answer) for q in questions if (a := seeded_pipeline.ask(q["question"])).answered]
    refused = 1 - len(answered) / len(questions)
    assert refused >= IN_TOPIC_REFUSAL_FLOOR, f"refused {refused:.2f}; answered: {answered}"


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_strict_abstention_refuses_every_in_topic_question_and_answers_most_seed_questions(seeded_pipeline) -> None:
    from dataclasses import replace

    from qa.pipeline import Pipeline

    strict = Pipeline(replace(seeded_pipeline.config, abstention="strict"))
    in_topic = load_questions(IN_TOPIC_FILE)
    answered = [q["question"] for q in in_topic if strict.ask(q["question"]).answered]
    assert 1 - len(answered) / len(in_topic) >= STRICT_IN_TOPIC_REFUSAL_FLOOR, answered
    answerable = [q for q in QUESTIONS if q["answers"]]
    answered_right = [q["question"] for q in answerable
                      if (a := strict.ask(q["question"])).answered and any(x.lower() in a.quote.lower() for x in q["answers"])]
    assert len(answered_right) >= STRICT_ANSWERED_FLOOR, sorted({q["question"] for q in answerable} - set(answered_right))
