"""The made-up unanswerable questions of scripts/make_unanswerable.py: a swap keeps the shape of
what it replaces and never takes a term the answer's sentence holds; without anything to swap,
a negation."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "make_unanswerable", Path(__file__).resolve().parents[1] / "scripts" / "make_unanswerable.py")
make = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make)

ARTICLE = ("Green Hall was named for James Green in 1905. The hall was rebuilt by Larry Brown, a local "
           "architect, in 1954.\n\nThe Kansas Board of Regents approved 7,000 new places. In 1960 the "
           "Coal City Review moved to the hall.")


def test_a_swap_takes_a_term_of_the_same_shape_that_the_answer_sentence_lacks():
    terms = make.article_terms(ARTICLE)
    sentence = make.answer_sentence(ARTICLE, ARTICLE.index("James Green"), len("James Green"))
    assert sentence.startswith("Green Hall was named")
    for seed in range(20):
        question, kind = make.changed("For whom is Green Hall named?", sentence, terms, random.Random(seed))
        assert kind == "swap" and question.startswith("For whom is ") and question.endswith(" named?")
        swapped = question[len("For whom is ") : -len(" named?")]
        assert len(swapped.split()) == 2 and swapped not in sentence  # a two-word name, not James Green
    question, _ = make.changed("What happened at the hall in 1960?", "In 1960 the Coal City Review moved.",
                               terms, random.Random(0))
    assert question in ("What happened at the hall in 1905?", "What happened at the hall in 1954?")


def test_without_a_name_or_figure_to_swap_the_question_is_negated():
    terms = make.article_terms(ARTICLE)
    assert make.changed("what was rebuilt?", "The hall was rebuilt.", terms, random.Random(0)) == (
        "what was not rebuilt?", "negation")
    assert make.changed("why not rebuild it?", "The hall was rebuilt.", terms, random.Random(0)) is None
