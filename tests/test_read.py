"""The extractive reader: question types, short answers, the quote's extent, the logistic models,
and the ranking and verifying of candidate sentences.

No embedding model: a small store of handmade documents with random unit vectors, where the
question vector is set equal to a sentence's vector to control similarity. The reader reads
sentence records gathered from the store's view (`qa.read.gather`): so do these
tests, naming sentences by id.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from qa.read import Evidence, gather
from qa.read import features as reader
from qa.read.features import (
    MODEL_FILE,
    QUESTION_FEATURES,
    SENTENCE_FEATURES,
    Calibration,
    Logistic,
    ReaderModel,
    extract,
    load_model,
    question_row,
)
from qa.read.questions import question_type, short_answer, speech_question, takes_model_span
from qa.read.span import SpanResult
from qa.read.verdict import Candidate, Reading, quote_sentences, quoted, rank
from qa.retrieve import retrieve, tokenize
from qa.store import NewDocument, Store
from qa.store.protocol import ReadView, chunk_of
from qa.types import Document, SentenceRecord

DIM = 16
MODEL = "test-model"

# --- a small store: documents -> chunks -> sentences ----------------------------------------------

# Sentences of a chunk are joined by one space, chunks of a document by a blank line.
DOCS: dict[str, list[list[str]]] = {
    "alpha": [
        ["A is true.", "Instead, B is true.", "C follows."],
        ["But D continues C.", "E ends alpha."],
    ],
    "beta": [
        ["However, F opens beta.", "G is plain."],
    ],
    "ukraine": [
        ["Ministers met in Brussels to discuss a ceasefire.", 'Kaja Kallas said: "There is no peace to keep."'],
        ["The coalition plans to protect Ukrainian skies and seas.", "Approximately 30 countries joined on Friday."],
    ],
    "harbour": [
        ["The harbour was closed in March after the storm.", "Fishermen protested outside the town hall."],
    ],
}


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def new_document(doc_id: str, chunks: list[list[str]], rng: np.random.Generator) -> NewDocument:
    text, chunk_spans, sentence_spans, sentence_chunks = "", [], [], []
    for c, sentences in enumerate(chunks):
        if c:
            text += "\n\n"
        chunk_start = len(text)
        for k, s in enumerate(sentences):
            if k:
                text += " "
            sentence_spans.append((len(text), len(text) + len(s)))
            sentence_chunks.append(c)
            text += s
        chunk_spans.append((chunk_start, len(text)))
    n, m = len(chunks), len(sentence_spans)
    return NewDocument(
        doc=Document(doc_id=doc_id, title=doc_id.title(), source=f"{doc_id}.txt", path=f"/d/{doc_id}.txt", text=text),
        chunk_spans=np.array(chunk_spans, np.int64),
        chunk_pages=np.full(n, -1, np.int32),
        sentence_spans=np.array(sentence_spans, np.int64),
        sentence_chunks=np.array(sentence_chunks, np.int32),
        chunk_vectors=unit(rng, n),
        sentence_vectors=unit(rng, m).astype(np.float16),
        chunk_tokens=tokenize([" ".join(sentences) for sentences in chunks]),
    )


@pytest.fixture(scope="module")
def view(tmp_path_factory) -> ReadView:
    rng = np.random.default_rng(3)
    store = Store(tmp_path_factory.mktemp("read") / "index", MODEL)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", lambda fd: None)  # the disk is not under test here
        store.commit([new_document(d, c, rng) for d, c in DOCS.items()], set())
    return store.view()


def evidence_for(view: ReadView, q_vector: np.ndarray, question: str) -> Evidence:
    """Every chunk of the view retrieved for the question, gathered for the reader."""
    n = view.chunk_count
    return gather(view, retrieve(view, q_vector, tokenize([question])[0], top_k=n, depth=n, rrf_k=60))


def all_sentences(view: ReadView) -> list[SentenceRecord]:
    return [s for records in evidence_for(view, np.ones(DIM, np.float32), "").sentences for s in records]


def sentence(view: ReadView, text: str) -> int:
    """The id of the sentence with exactly this text."""
    found = [s.sentence_id for s in all_sentences(view) if s.text == text]
    assert len(found) == 1, text
    return found[0]


def sentence_text(view: ReadView, sentence_id: int) -> str:
    return view.sentences([sentence_id])[0].text


def sentence_vector(view: ReadView, sentence_id: int) -> np.ndarray:
    v = view.sentences([sentence_id])[0].vector
    return v / np.linalg.norm(v)


def quote(view: ReadView, text: str) -> tuple[str, str]:
    """The first and last sentences the quote around the sentence with this text holds."""
    first, last = quoted(gather(view, []), view.sentences([sentence(view, text)])[0])
    return first.text, last.text


def test_builder_matches_the_documents(view: ReadView):
    texts = [s for chunks in DOCS.values() for sentences in chunks for s in sentences]
    assert sorted(s.text for s in all_sentences(view)) == sorted(texts)
    for text in texts:
        assert sentence_text(view, sentence(view, text)) == text


# --- question types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "question, kind",
    [
        ("What did Kallas say?", "quote"),
        ("What did the minister stress?", "quote"),
        ("How did the president warn the allies?", "quote"),
        ("What did the minister tell reporters about the talks?", "quote"),
        # A stated fact, not the speaker's words: the question goes on after the verb.
        ("What did he claim the weapon would end?", "other"),
        ("What did Tesla tell Brisbane he didn't believe in?", "other"),
        ("What year did the companies announce their settlement?", "date"),
        ("How much did Tesla say Edison offered him?", "number"),
        ("How many countries joined the coalition?", "number"),
        ("How much did the plan cost?", "number"),
        ("What percentage of voters agreed?", "number"),
        ("When did the ministers meet?", "date"),
        ("What year was the treaty signed?", "date"),
        ("In which month did the storm hit?", "date"),
        ("Who is Finland's Defense Minister?", "name"),
        ("Whose plan was adopted?", "name"),
        ("Where did the ministers meet?", "place"),
        ("Which city hosted the summit?", "place"),
        ("Why did the ministers meet?", "other"),
        ("What is the coalition for?", "other"),
    ],
)
def test_question_type(question: str, kind: str):
    assert question_type(question) == kind


# --- short answers --------------------------------------------------------------------------------


def answer(question: str, sentence: str) -> str | None:
    span = short_answer(question, sentence)
    if span is None:
        return None
    start, end = span
    assert 0 <= start < end <= len(sentence), span
    text = sentence[start:end]
    assert text == text.strip(" ,"), repr(text)
    return text


@pytest.mark.parametrize(
    "sentence, inside",
    [
        ('Kallas said "there is no peace to keep" in Brussels.', "there is no peace to keep"),
        ("Kallas said “there is no peace to keep” in Brussels.", "there is no peace to keep"),
        ("Kallas said «there is no peace to keep» in Brussels.", "there is no peace to keep"),
    ],
)
def test_quote_span_is_the_inside_of_the_quotes(sentence: str, inside: str):
    span = short_answer("What did Kallas say?", sentence)
    assert span is not None
    start, end = span
    assert sentence[start:end] == inside
    assert sentence[start - 1] in "\"“«" and sentence[end] in "\"”»"


def test_quote_span_with_a_colon_and_final_full_stop():
    s = "The minister stressed: “We will not act as a peacekeeping force.”"
    assert answer("What did the minister stress?", s) == "We will not act as a peacekeeping force."


def test_quote_span_drops_a_trailing_comma_only():
    assert answer("What did Kallas say?", "“We will act,” Kallas said.") == "We will act"


@pytest.mark.parametrize(
    "question, sentence",
    [
        # BUG: quoted speech is trimmed of the question's words like any other span, so the verbatim
        # quote loses its first or last words (and its meaning).
        ("What did Kallas say about peace?", 'Kallas said: "Peace is not possible."'),
        ("What did the minister say about Russia?", "The minister said: “We will not negotiate with Russia.”"),
    ],
)
def test_quote_span_keeps_words_that_also_occur_in_the_question(question: str, sentence: str):
    inside = re.search(r"[\"“]([^\"”]+)[\"”]", sentence).group(1)
    assert answer(question, sentence) == inside


def test_quote_question_without_quotes_gives_none():
    assert short_answer("What did Kallas say?", "Kallas said nothing at all.") is None


def test_the_model_span_is_the_answer_except_for_quoted_speech():
    said = 'Kallas said: "At the moment there is no peace to keep," in Brussels.'
    found, empty = SpanResult(0, 6, 3.0), SpanResult(0, 0, -2.0)
    quote_rules = short_answer("What did Kallas say?", said)
    assert quote_rules is not None
    assert not takes_model_span("What did Kallas say?", found, quote_rules)  # the speaker's words, whole
    assert takes_model_span("What did Kallas say?", found, None)  # no quotation marks: the model's span
    assert takes_model_span("Where did Kallas speak?", found, short_answer("Where did Kallas speak?", said))
    assert not takes_model_span("Where did Kallas speak?", empty, None)  # the model found no span
    assert not takes_model_span("Where did Kallas speak?", None, None)  # fast mode: no model read it


@pytest.mark.parametrize(
    "question, sentence, expected",
    [
        ("When did the ministers meet?", "The ministers met on Friday in Brussels.", "on Friday"),
        ("When was the treaty signed?", "The treaty was signed on October 28, 1998, in Paris.", "on October 28, 1998"),
        ("When will the plan be ready?", "The plan will be ready by the end of next week, officials said.", "by the end of next week"),
        ("What year was the firm founded?", "The firm was founded in 1998 by two friends.", "in 1998"),
    ],
)
def test_date_answers(question: str, sentence: str, expected: str):
    assert answer(question, sentence) == expected


@pytest.mark.parametrize(
    "question, sentence, expected",
    [
        ("How many nations joined?", "Approximately 30 countries joined the coalition.", "Approximately 30 countries"),
        # The question's own noun is trimmed off the end: the number is what is new.
        ("How many countries joined?", "Approximately 30 countries joined the coalition.", "Approximately 30"),
        ("How much did it cost?", "It cost $5 million.", "$5 million"),
    ],
)
def test_number_answers(question: str, sentence: str, expected: str):
    assert answer(question, sentence) == expected


def test_name_answer_is_not_made_of_the_questions_words():
    s = "The coalition led by Kaja Kallas met the EU ministers."
    assert answer("Who led the coalition?", s) == "Kaja Kallas"
    # "Kaja Kallas" is what the question already says: the other name is the answer.
    s = "Kaja Kallas met Antti Häkkänen in Helsinki."
    assert answer("Who did Kaja Kallas meet in Helsinki?", s) == "Antti Häkkänen"


def test_name_answer_trims_the_questions_leading_words():
    s = "Finland’s Defense Minister Antti Häkkänen stressed the need for unity."
    assert answer("Who is Finland's Defense Minister?", s) == "Antti Häkkänen"


def test_name_answer_never_starts_inside_an_abbreviation():
    s = "U.S. President Donald Trump spoke at the summit."
    got = answer("Who spoke at the summit?", s)
    assert got is not None
    assert not got.startswith("S.")
    assert got.endswith("Donald Trump")
    start, _ = short_answer("Who spoke at the summit?", s)
    assert start == 0 or not s[start - 1].isalnum() and s[start - 1] != "."


def test_place_answers():
    assert answer("Where did the ministers meet?", "The ministers met in Brussels on Friday.") == "Brussels"
    assert answer("Which city hosted the talks?", "The talks were held in Brussels, Belgium, today.") == "Brussels, Belgium"


@pytest.mark.parametrize(
    "question, sentence",
    [
        ("Why did the ministers meet?", "The ministers met in Brussels on Friday because of the war."),
        ("When did the ministers meet?", "The ministers met in Brussels."),
        ("Where did the ministers meet?", "The ministers met on Friday."),
        ("How many ministers came?", "The ministers met in Brussels."),
        ("Who is Finland's Defense Minister?", "the minister spoke."),
    ],
)
def test_no_short_answer_when_the_type_is_absent_or_other(question: str, sentence: str):
    assert short_answer(question, sentence) is None


@pytest.mark.parametrize(
    "question",
    [
        "What did Kallas say?",
        "Who spoke?",
        "When did they meet?",
        "Where did they meet?",
        "How many countries joined?",
    ],
)
@pytest.mark.parametrize(
    "sentence",
    [
        'On Friday, in Brussels, Kallas said: "No peace, no keep," and 30 countries, about 12 percent, agreed.',
        "Approximately 30 countries, led by U.S. President Donald Trump, met in Paris, France, on October 28, 1998.",
        "  , Kaja Kallas , in Brussels , 5 , ",
    ],
)
def test_every_span_lies_in_the_sentence_without_stray_ends(question: str, sentence: str):
    span = short_answer(question, sentence)
    if span is not None:
        start, end = span
        assert 0 <= start < end <= len(sentence)
        text = sentence[start:end]
        assert text == text.strip(" ,")


# --- the quote's extent ---------------------------------------------------------------------------


def test_quote_extends_forward_to_a_revising_sentence(view: ReadView):
    assert quote(view, "A is true.") == ("A is true.", "Instead, B is true.")


def test_quote_of_a_revising_sentence_includes_the_previous_one(view: ReadView):
    assert quote(view, "Instead, B is true.") == ("A is true.", "Instead, B is true.")


def test_quote_of_a_plain_sentence_stays_alone(view: ReadView):
    assert quote(view, "G is plain.") == ("G is plain.", "G is plain.")
    assert quote(view, "E ends alpha.") == ("E ends alpha.", "E ends alpha.")  # the last sentence of a document
    first = "Ministers met in Brussels to discuss a ceasefire."
    assert quote(view, first) == (first, first)


def test_quote_crosses_chunks_within_a_document(view: ReadView):
    [c, d] = view.sentences([sentence(view, "C follows."), sentence(view, "But D continues C.")])
    assert c.next == d.sentence_id and d.previous == c.sentence_id and c.chunk_id != d.chunk_id
    assert quote(view, "C follows.") == ("C follows.", "But D continues C.")
    assert quote(view, "But D continues C.") == ("C follows.", "But D continues C.")


def test_quote_never_crosses_into_another_document(view: ReadView):
    [last_alpha, first_beta] = view.sentences([sentence(view, "E ends alpha."), sentence(view, "However, F opens beta.")])
    assert last_alpha.next is None and first_beta.previous is None
    assert quote(view, "E ends alpha.") == ("E ends alpha.", "E ends alpha.")
    assert quote(view, "However, F opens beta.") == ("However, F opens beta.", "However, F opens beta.")


def test_quote_sentences_needs_only_the_records():
    """The rule itself: a neighbour joins when the later of the two opens with a continuation."""

    def record(sentence_id: int, text: str) -> SentenceRecord:
        return SentenceRecord(sentence_id, 0, "d", 0, len(text), text, np.zeros(DIM, np.float32), None, None)

    plain, revising, also = record(1, "A is true."), record(2, "However, B is."), record(3, "But C is.")
    assert quote_sentences(revising, plain, also) == (plain, also)
    assert quote_sentences(plain, None, revising) == (plain, revising)
    assert quote_sentences(revising, None, None) == (revising, revising)  # a document's only sentence


# --- the logistic models --------------------------------------------------------------------------


def small_logistic() -> Logistic:
    return Logistic(
        names=("x", "y", "z"),
        weights=np.array([0.5, -1.25, 2.0]),
        bias=-0.75,
        mean=np.array([1.0, 0.0, -2.0]),
        scale=np.array([2.0, 0.5, 4.0]),
    )


def test_logistic_predict_is_a_sigmoid_of_the_standardised_dot_product():
    model = small_logistic()
    rows = np.array([[1.0, 0.0, -2.0], [3.0, 1.0, 2.0], [-1.0, -0.5, 10.0]])
    by_hand = []
    for x, y, z in rows:
        score = 0.5 * (x - 1.0) / 2.0 - 1.25 * (y - 0.0) / 0.5 + 2.0 * (z + 2.0) / 4.0 - 0.75
        by_hand.append(1.0 / (1.0 + np.exp(-score)))
    got = model.predict(rows)
    assert got.shape == (3,)
    assert got == pytest.approx(by_hand, rel=1e-12)
    assert got[0] == pytest.approx(1.0 / (1.0 + np.exp(0.75)))  # the mean row scores the bias alone
    assert np.all((got > 0) & (got < 1))


def test_logistic_json_round_trip_predicts_identically():
    model = small_logistic()
    data = json.loads(json.dumps(model.to_json()))
    assert data["features"] == ["x", "y", "z"]
    again = Logistic.from_json(data)
    assert again.names == model.names
    rows = np.random.default_rng(0).standard_normal((20, 3))
    assert np.array_equal(again.predict(rows), model.predict(rows))
    assert again.to_json() == model.to_json()


# --- the shipped model ----------------------------------------------------------------------------


def test_shipped_model_loads_with_the_current_features():
    model = load_model()
    assert isinstance(model, ReaderModel)
    assert model.ranker.names == SENTENCE_FEATURES
    assert model.verifier.names == QUESTION_FEATURES
    assert model.reranker is not None and model.reranker.names == reader.RERANK_FEATURES
    assert model.answer_verifier is not None and model.answer_verifier.names == reader.ANSWER_VERIFIER_FEATURES
    assert model.base_reranker is not None and model.base_reranker.names == reader.RERANK_FEATURES
    assert model.base_verifier is not None and model.base_verifier.names == reader.BASE_VERIFIER_FEATURES
    for part in (model.ranker, model.verifier, model.reranker, model.answer_verifier, model.base_reranker,
                 model.base_verifier):
        n = len(part.names)
        assert part.weights.shape == part.mean.shape == part.scale.shape == (n,)
        assert np.all(part.scale > 0)
    assert load_model(MODEL_FILE).ranker.names == SENTENCE_FEATURES


def test_model_trained_on_other_features_is_refused(tmp_path: Path):
    data = json.loads(MODEL_FILE.read_text(encoding="utf-8"))
    data["ranker"]["features"] = ["renamed", *data["ranker"]["features"][1:]]
    path = tmp_path / "other-ranker.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="other features"):
        load_model(path)

    data = json.loads(MODEL_FILE.read_text(encoding="utf-8"))
    data["verifier"]["features"] = list(reversed(data["verifier"]["features"]))
    path = tmp_path / "other-verifier.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="other features"):
        load_model(path)

    # A copy with the right features loads (the refusals above are about the names).
    path = tmp_path / "copy.json"
    path.write_text(MODEL_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    assert load_model(path).ranker.names == SENTENCE_FEATURES


# --- features, ranking and verifying --------------------------------------------------------------

KALLAS = 'Kaja Kallas said: "There is no peace to keep."'
QUESTION = "What did Kallas say about peace?"


def test_extract_features(view: ReadView):
    target = sentence(view, KALLAS)
    q = sentence_vector(view, target)
    evidence = evidence_for(view, q, QUESTION)
    f = extract(QUESTION, q, evidence)
    assert f.sentence.shape == (len(all_sentences(view)), len(SENTENCE_FEATURES))
    assert sorted(f.sentence_ids) == sorted(s.sentence_id for s in all_sentences(view))
    assert [sentence_text(view, i) for i in f.sentence_ids] == f.texts
    col = {name: f.sentence[:, i] for i, name in enumerate(SENTENCE_FEATURES)}
    i = f.sentence_ids.index(target)
    assert col["cosine"][i] == pytest.approx(1.0, abs=1e-3)
    assert col["cosine"][i] == pytest.approx(col["cosine"].max())
    assert col["cosine_gap"][i] == pytest.approx(0.0)
    assert np.all(col["cosine_gap"] <= 1e-9)
    assert col["overlap"][i] == col["overlap"].max() > 0
    assert np.all((col["overlap"] >= 0) & (col["overlap"] <= 1 + 1e-9))
    assert np.all(col["context_overlap"] >= col["overlap"] - 1e-9)  # the window holds the sentence
    assert col["type_match"][i] == 1.0  # the only sentence with a quotation
    assert col["type_match"].sum() == 1.0
    # "say" names the kind of answer, not a word it must hold: "kalla" and "peac" are all found.
    assert f.passage_coverage == pytest.approx(1.0)


def test_question_vector_and_rare_words_rank_their_sentence_first(view: ReadView):
    target = sentence(view, KALLAS)
    q = sentence_vector(view, target)
    reading = rank(QUESTION, q, evidence_for(view, q, QUESTION))
    assert reading.candidates[0].sentence_id == target
    assert isinstance(reading.candidates[0], Candidate)
    assert 0.0 <= reading.confidence <= 1.0
    probabilities = [c.probability for c in reading.candidates]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0.0 <= p <= 1.0 for p in probabilities)
    ids = [c.sentence_id for c in reading.candidates]
    assert len(ids) == len(set(ids)) == len(all_sentences(view))
    for c in reading.candidates:  # each candidate belongs to the hit it came with
        assert chunk_of(c.sentence_id) == c.hit.chunk_id


FISHERMEN = "Who protested outside the town hall?"


def fishermen_question(view: ReadView) -> tuple[int, np.ndarray, Evidence]:
    """The answering sentence's id, the question vector and the evidence for FISHERMEN."""
    target = sentence(view, "Fishermen protested outside the town hall.")
    q = sentence_vector(view, target)
    return target, q, evidence_for(view, q, FISHERMEN)


def constant_verifier(bias: float) -> Logistic:
    """A verifier whose answer does not depend on the question: always yes (+50) or no (-50)."""
    n = len(QUESTION_FEATURES)
    return Logistic(QUESTION_FEATURES, np.zeros(n), bias, np.zeros(n), np.ones(n))


def test_read_uses_the_given_model(view: ReadView):
    target, q, evidence = fishermen_question(view)
    model = load_model()
    reading = rank(FISHERMEN, q, evidence, model)
    f = extract(FISHERMEN, q, evidence)
    probabilities = model.ranker.predict(f.sentence)
    assert [c.probability for c in reading.candidates] == pytest.approx(sorted(probabilities, reverse=True))
    assert reading.candidates[0].sentence_id == target
    raw = float(model.verifier.predict(question_row(f, probabilities)[None, :])[0])
    assert reading.confidence == pytest.approx(model.calibration["verifier"](raw))
    for bias, check in ((50.0, lambda c: c > 0.99), (-50.0, lambda c: c < 0.01)):
        always = ReaderModel(model.ranker, constant_verifier(bias))  # uncalibrated: the raw output
        assert check(rank(FISHERMEN, q, evidence, always).confidence)


def test_calibration_maps_the_verifier_through_its_isotonic_knots(view: ReadView):
    _, q, evidence = fishermen_question(view)
    shipped = load_model()
    squash = Calibration(np.array([0.0, 1.0]), np.array([0.2, 0.3]))  # every output to 0.2-0.3
    for bias, expected in ((50.0, 0.3), (-50.0, 0.2)):
        model = ReaderModel(shipped.ranker, constant_verifier(bias), calibration={"verifier": squash})
        assert rank(FISHERMEN, q, evidence, model).confidence == pytest.approx(expected, abs=1e-6)


def test_shipped_calibrations_are_monotone_probabilities():
    """The confidence users see is a probability: in [0, 1], never lower for a surer verifier."""
    model = load_model()
    assert set(model.calibration) == set(reader.VERIFIERS)
    raw = np.linspace(-0.5, 1.5, 2001)  # past both ends too: clipped, not extrapolated
    for name, calibrate in model.calibration.items():
        values = np.array([calibrate(r) for r in raw])
        assert np.all((values >= 0.0) & (values <= 1.0)), name
        assert np.all(np.diff(values) >= 0.0), name
        assert values[-1] > values[0], name  # it does depend on the verifier


@pytest.mark.parametrize(
    "knots",
    [{"x": [0.0, 0.5, 1.0], "y": [0.1, 0.6, 0.4]},  # decreasing
     {"x": [0.0, 1.0], "y": [0.0, 1.2]},  # not a probability
     {"x": [0.5], "y": [0.5]}],  # too few knots
)
def test_a_calibration_that_is_not_a_monotone_probability_is_refused(tmp_path: Path, knots: dict):
    data = json.loads(MODEL_FILE.read_text(encoding="utf-8"))
    data["calibration"]["verifier"] = knots
    path = tmp_path / "bad-calibration.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="non-decreasing"):
        load_model(path)


def test_leave_out_reads_as_if_the_sentences_were_absent(view: ReadView):
    target = sentence(view, KALLAS)
    q = sentence_vector(view, target)
    evidence = evidence_for(view, q, QUESTION)
    without = extract(QUESTION, q, evidence, leave_out=frozenset({target}))
    assert target not in without.sentence_ids and KALLAS not in without.texts
    assert len(without.sentence_ids) == len(all_sentences(view)) - 1
    col = {name: without.sentence[:, i] for i, name in enumerate(SENTENCE_FEATURES)}
    assert col["cosine_gap"].max() == pytest.approx(0.0)  # gaps are to the best sentence left
    assert without.passage_coverage < extract(QUESTION, q, evidence).passage_coverage


def test_passage_coverage_counts_the_question_words_the_passages_hold(view: ReadView):
    q = sentence_vector(view, sentence(view, "A is true."))
    evidence = evidence_for(view, q, "")
    assert evidence.hits
    none_known = extract("Zorblax quixotic frobnicate?", q, evidence)
    assert none_known.passage_coverage == 0.0
    assert np.all(none_known.sentence[:, SENTENCE_FEATURES.index("overlap")] == 0.0)
    assert extract("Kallas peace ceasefire harbour", q, evidence).passage_coverage == pytest.approx(1.0)
    assert 0.0 < extract("Kallas zorblax", q, evidence).passage_coverage < 1.0


def test_a_quote_questions_speech_verb_is_not_a_word_to_find(view: ReadView):
    q = sentence_vector(view, sentence(view, "A is true."))
    evidence = evidence_for(view, q, "")
    assert extract("What did Kallas warn?", q, evidence).passage_coverage == pytest.approx(1.0)
    # Outside a quote question the same verb is content: "warn" is not in these documents.
    assert extract("Why did Kallas warn?", q, evidence).passage_coverage < 1.0


def test_no_hits_read_nothing(view: ReadView):
    q = sentence_vector(view, sentence(view, "A is true."))
    assert rank(QUESTION, q, gather(view, [])) == Reading([], 0.0)
    f = extract(QUESTION, q, gather(view, []))
    assert f.sentence_ids == [] and f.sentence.shape == (0, len(SENTENCE_FEATURES))


class StubSpanModel:
    """Sure the answer is in the sentence holding `needle` (its span), and in no other."""

    def __init__(self, needle: str):
        self.needle = needle
        self.calls: list[list[str]] = []

    def score(self, question: str, sentences: list[str]) -> list[SpanResult]:
        self.calls.append(sentences)
        out = []
        for s in sentences:
            at = s.find(self.needle)
            out.append(SpanResult(at, at + len(self.needle), 20.0) if at >= 0 else SpanResult(0, 1, -20.0))
        return out


def test_answer_model_reranks_the_top_sentences_and_carries_its_span(view: ReadView):
    """The reader reads the ranker's top RERANK_TOP sentences with the answer model; a sentence the
    model is sure of moves to the front, with its span; the rest keep the ranker's order."""
    q = sentence_vector(view, sentence(view, KALLAS))
    evidence = evidence_for(view, q, QUESTION)
    fast = rank(QUESTION, q, evidence)
    second = fast.candidates[1]
    needle = sentence_text(view, second.sentence_id)[:12]
    stub = StubSpanModel(needle)
    read = rank(QUESTION, q, evidence, span_model=stub)
    assert len(stub.calls) == 1 and len(stub.calls[0]) == min(reader.RERANK_TOP, len(fast.candidates))
    assert read.candidates[0].sentence_id == second.sentence_id
    assert read.candidates[0].span is not None and read.candidates[0].span.score == 20.0
    assert read.candidates[0].probability > second.probability  # the reranker's, not the ranker's
    assert [c.sentence_id for c in read.candidates[reader.RERANK_TOP :]] == [c.sentence_id for c in fast.candidates[reader.RERANK_TOP :]]
    assert 0.0 <= read.confidence <= 1.0


def test_base_model_rereads_the_rerankers_best_and_decides(view: ReadView, monkeypatch: pytest.MonkeyPatch):
    """The cascade: the base model reads only the reranker's best BASE_TOP sentences; a sentence it
    is sure of comes first with its span, the other sentences the answer model read follow in the
    reranker's order, and the base verifier gives the confidence."""
    monkeypatch.setattr("qa.read.verdict.BASE_BELOW", 1.01)  # however sure the answer verifier is
    monkeypatch.setattr("qa.read.verdict.BASE_READING", reader.BaseReading(reader.BASE_TOP, 1.01))  # never one more
    q = sentence_vector(view, sentence(view, KALLAS))
    evidence = evidence_for(view, q, QUESTION)
    fast = rank(QUESTION, q, evidence)
    assert len(fast.candidates) > reader.RERANK_TOP  # else the test reads every sentence
    small = StubSpanModel("words in no sentence")  # unsure of every sentence: the ranker's order stands
    without_base = rank(QUESTION, q, evidence, span_model=small)
    second = without_base.candidates[1]  # the reranker's second: the base model is sure of it alone
    base = StubSpanModel(sentence_text(view, second.sentence_id))
    read = rank(QUESTION, q, evidence, span_model=StubSpanModel(small.needle), base_model=base)
    assert len(base.calls) == 1
    assert base.calls[0] == [sentence_text(view, c.sentence_id) for c in without_base.candidates[: reader.BASE_TOP]]
    assert read.candidates[0].sentence_id == second.sentence_id
    assert read.candidates[0].span.score == 20.0 and read.candidates[0].span.start == 0
    assert [c.sentence_id for c in read.candidates[reader.BASE_TOP :]] == [
        c.sentence_id for c in without_base.candidates[reader.BASE_TOP :]]
    assert 0.0 <= read.confidence <= 1.0 and read.confidence != without_base.confidence


def test_a_sure_answer_verifier_keeps_its_choice_and_the_base_model_reads_only_that_sentence(
        view: ReadView, monkeypatch: pytest.MonkeyPatch):
    """When the answer verifier is sure, the order and confidence are its own and the base model
    reads the chosen sentence alone, for its short answer; when it is unsure, BASE_TOP sentences."""
    q = sentence_vector(view, sentence(view, KALLAS))
    evidence = evidence_for(view, q, QUESTION)
    monkeypatch.setattr("qa.read.verdict.BASE_BELOW", 0.0)  # every reading is sure
    alone = rank(QUESTION, q, evidence, span_model=StubSpanModel("Kallas"))
    chosen = sentence_text(view, alone.candidates[0].sentence_id)
    base = StubSpanModel(chosen[-8:])  # a span the small model did not give
    read = rank(QUESTION, q, evidence, span_model=StubSpanModel("Kallas"), base_model=base)
    assert base.calls == [[chosen]]
    assert [c.sentence_id for c in read.candidates] == [c.sentence_id for c in alone.candidates]
    assert read.confidence == alone.confidence and read.candidates[1:] == alone.candidates[1:]
    assert read.candidates[0].span == SpanResult(len(chosen) - 8, len(chosen), 20.0) != alone.candidates[0].span
    monkeypatch.setattr("qa.read.verdict.BASE_BELOW", 1.01)  # none is
    monkeypatch.setattr("qa.read.verdict.BASE_READING", reader.BaseReading(reader.BASE_TOP, 1.01))
    base = StubSpanModel("Kallas")
    rank(QUESTION, q, evidence, span_model=StubSpanModel("Kallas"), base_model=base)
    assert len(base.calls) == 1 and len(base.calls[0]) == reader.BASE_TOP


def test_the_base_model_reads_the_rerankers_best_and_one_more_only_when_it_is_likely_too() -> None:
    reading = reader.BaseReading(top=2, extra_above=0.15)
    assert reading.positions(np.array([0.1, 0.6, 0.3, 0.05])).tolist() == [1, 2]  # the third below 0.15
    assert reading.positions(np.array([0.15, 0.6, 0.3, 0.05])).tolist() == [1, 2, 0]
    assert reading.positions(np.array([0.9])).tolist() == [0]  # fewer candidates than it would read


def test_base_model_never_reads_without_its_parts(view: ReadView, monkeypatch: pytest.MonkeyPatch):
    """A reader model fit without the cascade (no base reranker or verifier) ignores a base model."""
    q = sentence_vector(view, sentence(view, KALLAS))
    evidence = evidence_for(view, q, QUESTION)
    shipped = load_model()
    monkeypatch.setattr("qa.read.verdict.BASE_BELOW", 1.01)
    base = StubSpanModel("Kallas")
    model = ReaderModel(shipped.ranker, shipped.verifier, shipped.reranker, shipped.answer_verifier,
                        calibration=shipped.calibration)
    alone = rank(QUESTION, q, evidence, model, span_model=StubSpanModel("Kallas"))
    assert rank(QUESTION, q, evidence, model, span_model=StubSpanModel("Kallas"), base_model=base) == alone
    assert base.calls == []


@pytest.mark.parametrize(
    "question, sentence, expected",
    [
        ("What did Kallas say?", 'Kallas said: "There is no peace to keep."', True),
        ("What did the minister tell reporters about the talks?", "He told them “talks resume Monday”.", True),
        ("What did Kallas say?", "Kallas spoke about the peace plan at length.", False),  # no quoted speech
        ("Who said there is no peace to keep?", 'Kallas said: "There is no peace to keep."', False),  # a name question
    ],
)
def test_speech_question_is_a_quote_question_read_against_quoted_speech(question: str, sentence: str, expected: bool):
    assert speech_question(question, sentence) is expected
