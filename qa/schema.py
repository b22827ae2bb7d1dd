"""The answer as JSON: one shape for both faces, `qa ask --json` and the chat's `/ask_json` endpoint.

Scripts depend on it, so its keys are a contract (README, docs/chat.md).
"""

from __future__ import annotations

from dataclasses import asdict

from qa.types import Answer


def answer_json(answer: Answer) -> dict:
    """The documented `qa ask --json` object: question, answered, answer, quote, score, citations,
    passages (without their chunk ids), the abstention's message and the question as read (a
    follow-up) when there are any, and the alternatives, each an object of this shape."""
    return {
        "question": answer.question,
        "answered": answer.answered,
        "answer": answer.answer,
        "quote": answer.quote,
        "score": answer.score,
        "citations": [asdict(c) for c in answer.citations],
        "passages": [
            {k: v for k, v in asdict(p).items() if k != "chunk_id"} for p in answer.passages
        ],
        **({"message": answer.message} if answer.message else {}),
        **({"read_as": answer.read_as} if answer.read_as else {}),
        "alternatives": [answer_json(other) for other in answer.alternatives],
    }
