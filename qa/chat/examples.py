"""Example questions suggested by the newest documents' own sentences, kept only if the index
answers them well."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from itertools import zip_longest

from qa.chat.backend import PipelineLike
from qa.chat.render import MEDIUM_CONFIDENCE
from qa.read import REPORTING_VERBS
from qa.types import DocumentInfo

# At most this many are shown, from this many candidates checked against the index.
EXAMPLES_SHOWN = 4
EXAMPLE_CANDIDATES = 8
EXAMPLE_MIN_SCORE = MEDIUM_CONFIDENCE

_NAME = r"[A-Z][\w’'-]+"
# Reporting verbs as documents write them ("stressed"), with the base form a question uses
# ("What did Healey stress?"): qa.read's one list. Some ("note", "argue") are not verbs that make
# the reader take a question as asking for someone's words; those examples are ordinary questions.
_VERBS = {form: verb for verb, forms in REPORTING_VERBS.items() for form in forms}
# "Kaja Kallas, emphasized" / "Healey clarified": a named person reporting something.
_SPEECH = re.compile(rf"\b((?:{_NAME} ){{0,2}}{_NAME}),? ({'|'.join(_VERBS)})\b")
# "Finland’s Defense Minister Antti Häkkänen": a role followed by the name of who holds it.
_ROLE = re.compile(
    rf"\b((?:{_NAME}[’']s )?(?:[A-Z][\w.]+ ){{0,3}}"
    r"(?:Minister|Secretary|President|Director|Chancellor|Governor|Mayor|Chair|Chairman|Chairwoman|Ambassador|"
    rf"Commissioner|Envoy|Spokesperson|Spokesman|Commander)) {_NAME}(?: {_NAME}){{0,2}}\b"
)
# "The Zephyr reservoir project has a total budget of …": a measured property of a named thing.
_MEASURE = re.compile(
    r"\b[Tt]he ((?:[\w-]+ ){0,4}[\w-]+) (?:has|had) an? (?:total |overall |annual |estimated )?"
    r"(budget|cost|capacity|population|value|price|length|area|deadline) of\b"
)
_STARTERS = {"The", "A", "An", "This", "That", "It", "He", "She", "They", "We", "I", "But", "And", "Instead", "However",
             "While", "When", "After", "Before", "As", "If", "Although", "Since", "Meanwhile", "Then", "So", "Yet"}
_SCAN_CHARS = 20_000


def example_candidates(text: str) -> list[str]:
    """Questions suggested by a document's own sentences (simple patterns, no language model):
    who reported something, who holds a named role, what a named thing's budget/cost/… is.
    Kinds alternate, so a few examples show different kinds of question."""
    text = text[:_SCAN_CHARS]
    speech, roles, measures = [], [], []
    for m in _SPEECH.finditer(text):
        surname = m.group(1).split()[-1]
        if surname not in _STARTERS:
            speech.append(f"What did {surname} {_VERBS[m.group(2)]}?")
    for m in _ROLE.finditer(text):
        words = m.group(1).split()
        while words and words[0] in _STARTERS:
            words.pop(0)
        if len(words) >= 2:  # "the President" alone is too vague to ask about
            role = " ".join(words)
            roles.append(f"Who is {role}?" if re.match(rf"{_NAME}[’']s ", role) else f"Who is the {role}?")
    for m in _MEASURE.finditer(text):
        measures.append(f"What is the {m.group(2)} of the {m.group(1)}?")
    mixed = [q for round_ in zip_longest(speech, roles, measures) for q in round_ if q is not None]
    return list(dict.fromkeys(mixed))


def example_questions(pipeline: PipelineLike, docs: Sequence[DocumentInfo]) -> list[str]:
    """A few example questions from the newest documents, kept only if the index answers them from
    the document they came from with at least medium confidence (so every example works)."""
    per_doc: list[list[tuple[str, str]]] = []
    for info in sorted(docs, key=lambda d: d.added_at, reverse=True)[:EXAMPLES_SHOWN]:
        try:
            text = pipeline.document(info.doc_id).text
        except KeyError:
            continue
        per_doc.append([(q, info.doc_id) for q in example_candidates(text)[:EXAMPLES_SHOWN]])
    # Round-robin over documents so one long document does not take every slot.
    ordered = [c for round_ in zip_longest(*per_doc) for c in round_ if c is not None]
    chosen: list[str] = []
    for question, doc_id in ordered[:EXAMPLE_CANDIDATES]:
        answer = pipeline.ask(question)
        if answer.answered and answer.score >= EXAMPLE_MIN_SCORE and answer.citations[0].doc_id == doc_id:
            chosen.append(question)
        if len(chosen) == EXAMPLES_SHOWN:
            break
    return chosen


class Examples:
    """The example questions for the current documents, worked out once per set of documents
    (each candidate is asked: not cheap) and shared by every browser session."""

    def __init__(self, pipeline: PipelineLike) -> None:
        self.pipeline = pipeline
        self._cache: dict[tuple[str, ...], list[str]] = {}
        self._lock = threading.Lock()

    def __call__(self, docs: list[DocumentInfo]) -> list[str]:
        key = tuple(sorted(d.doc_id for d in docs))
        with self._lock:
            if key not in self._cache:
                self._cache.clear()
                self._cache[key] = example_questions(self.pipeline, docs)
            return self._cache[key]
