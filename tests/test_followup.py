"""Follow-up questions (qa.followup): which questions lean on the conversation, and how they are read."""

from __future__ import annotations

import pytest

from qa.followup import Context, after, is_follow_up, names_in, noun_phrases, read_question
from qa.pipeline import _mentioning
from qa.types import Answer, Citation

SEED = "allies-forge-ahead-on-ukraine-peace-plan.txt"


def answered(question: str, answer: str, read_as: str = "", doc_id: str = "d1", quote: str = "") -> Answer:
    quote = quote or answer
    citation = Citation(doc_id, "Title", SEED, None, 0, len(quote), quote)
    return Answer(question, True, answer=answer, quote=quote, score=0.5, citations=(citation,), read_as=read_as)


def talk(*turns: tuple[str, ...]) -> list[str]:
    """Ask each (question, answer[, quote]) in turn; the questions as they were read."""
    context, read = Context(), []
    for question, answer, *quote in turns:
        reading = read_question(question, context)
        read.append(reading.read_as)
        as_read = reading.read_as if reading.follow_up else ""
        reply = answered(question, answer, as_read, quote="".join(quote)) if answer else Answer(question, False, read_as=as_read)
        context = after(context, reply)
    return read


def test_without_a_conversation_nothing_is_a_follow_up() -> None:
    for question in ("What is her position?", "Where?", "And France?"):
        assert not is_follow_up(question, Context())
        assert read_question(question, Context()).read_as == question


def test_pronouns_stand_for_the_person_named_before() -> None:
    assert talk(("What did Kallas say?", "At the moment there is no peace to keep"), ("What is her position?", "x")) == [
        "What did Kallas say?",
        "What is Kallas' position?",
    ]
    assert talk(("What did Healey clarify?", "x"), ("What did he say about the mission?", "x"))[1] == (
        "What did Healey say about the mission?"
    )


def test_the_answer_to_a_who_question_becomes_the_person() -> None:
    read = talk(("Who is Finland’s Defense Minister?", "Antti Häkkänen"), ("What did he stress?", "x"))
    assert read[1] == "What did Antti Häkkänen stress?"


def test_it_stands_for_the_thing_and_he_for_the_person() -> None:
    read = talk(
        ("When was the University of Notre Dame founded?", "1842"),
        ("Who founded it?", "Father Edward Sorin"),
        ("Where was he born?", "x"),
    )
    assert read[1:] == ["Who founded University of Notre Dame?", "Where was Father Edward Sorin born?"]


def test_a_bare_question_word_takes_over_the_previous_question_with_its_answer() -> None:
    read = talk(("When will the Ukraine Defense Contact Group meet?", "Friday"), ("Where?", "in Oslo"), ("Why?", ""))
    assert read[1:] == [
        "Where will the Ukraine Defense Contact Group meet? (Friday)",
        "Why will the Ukraine Defense Contact Group meet? (in Oslo)",
    ]
    read = talk(("Where was the treaty signed?", "Lisbon"), ("When?", ""), ("In what year?", "x"))
    assert read[1:] == ["When was the treaty signed? (Lisbon)", "In what year was the treaty signed?"]


def test_the_answer_to_a_who_question_takes_the_question_words_place() -> None:
    read = talk(("Who rebuilt the old lighthouse after the storm?", "Ada Lind"), ("In what year?", "x"))
    assert read[1] == "In what year Ada Lind rebuilt the old lighthouse after the storm?"
    long = "the harbour master and the two keepers who had stayed on the island all through that winter"
    read = talk(("Who rebuilt the old lighthouse?", long), ("When?", "x"))
    assert read[1] == "When rebuilt the old lighthouse?"


def test_the_dutch_one_and_the_other_one_are_people_the_last_quote_names() -> None:
    quote = "The fair was opened by Dutch envoy Pieter Vos and his Danish host Mette Lund on Monday."
    read = talk(
        ("Who opened the fair?", "Dutch envoy Pieter Vos and his Danish host Mette Lund", quote),
        ("What is the Dutch one's job?", "envoy", quote),
        ("And the other one?", "x"),
    )
    assert read[1:] == ["What is Pieter Vos's job?", "What is Mette Lund's job?"]


def test_the_one_described_is_cut_to_the_person_the_conversation_knows() -> None:
    quote = "The talks were chaired by Norwegian Foreign Minister Eva Dahl and her Irish colleague Sean Byrne."
    read = talk(("Who chaired the talks?", "Eva Dahl", quote), ("What did the Norwegian one propose?", "x", quote))
    assert read[1] == "What did Eva Dahl propose?"
    read = talk(("Who chaired the talks?", "Eva Dahl", quote), ("And the Swedish one?", "x"))
    assert read[1] == "Who chaired the talks, the Swedish one?"  # nobody Swedish was quoted: a plain fragment


def test_the_town_is_the_town_the_last_quote_named() -> None:
    quote = "The ferry sank off the fishing town of Rostelle in 1911."
    read = talk(("Where did the ferry sink?", "off the fishing town of Rostelle", quote), ("Who rescued the crew near the town?", "x"))
    assert read[1] == "Who rescued the crew near the town of Rostelle?"
    for own in ("Who designed the town hall?", "Who was the mayor of the town of Verden?"):
        assert talk(("Where did the ferry sink?", "x", quote), (own, "x"))[1] == own


def test_a_bare_name_asks_the_previous_question_about_it() -> None:
    read = talk(("How much did Germany pledge?", "x"), ("And France?", "y"), ("What about Italy?", "z"))
    assert read[1:] == ["How much did France pledge?", "How much did Italy pledge?"]


def test_they_are_the_things_counted_and_whose_they_are() -> None:
    read = talk(("How many ships does the royal navy have?", "forty"), ("Who commands them?", "x"))
    assert read[1] == "Who commands the royal navy's ships?"


def test_a_bare_name_or_year_must_be_mentioned_by_the_answer() -> None:
    context = after(Context(), answered("How much did Germany pledge in 2009?", "x"))
    assert read_question("And France?", context).mentions == "France"
    assert read_question("And in 2011?", context).mentions == "2011"
    assert read_question("Where?", context).mentions == ""
    about_2009 = answered("How much did France pledge in 2011?", "40 million", quote="In 2009 France pledged 40 million.")
    assert not _mentioning(about_2009, "2011").answered
    assert _mentioning(about_2009, "france").answered and _mentioning(about_2009, "").answered


def test_a_fragment_is_read_with_what_the_conversation_was_about() -> None:
    read = talk(("How many countries are in the coalition?", "30"), ("And which country is excluded?", "x"))
    assert read[1] == "which country is excluded? (the coalition)"
    read = talk(("How much did Germany pledge this year?", "x"), ("And last year?", "x"))
    assert read[1] == "How much did Germany pledge this year, last year?"


@pytest.mark.parametrize(
    "question",
    [
        "Who is the EU's top diplomat?",  # its own subject
        "When will the Ukraine Defense Contact Group meet?",
        "How many countries are in the coalition of the willing?",
        "What did Healey say about the reassurance mission?",
        "What does the report say about the rent burden of low income households?",
    ],
)
def test_a_question_with_its_own_subject_is_not_bent(question: str) -> None:
    context = Context(question="What did Kallas say?", base="What did Kallas say?", person="Kallas", thing="Kallas", doc_id="d1")
    reading = read_question(question, context)
    assert not reading.follow_up and reading.read_as == question and reading.doc_id is None


def test_a_follow_up_prefers_the_document_that_answered_before_and_an_abstention_keeps_it() -> None:
    context = after(Context(), answered("What did Kallas say?", "no peace to keep", doc_id="seed"))
    assert read_question("What is her position?", context).doc_id == "seed"
    context = after(context, Answer("How old is she?", False, read_as="How old is Kallas?"))
    assert context.doc_id == "seed" and context.person == "Kallas"


def test_names_are_capitalised_runs_but_not_the_first_word() -> None:
    assert names_in("What did Finland’s Defense Minister stress?") == ["Finland’s Defense Minister"]
    assert names_in("Where is the University of Notre Dame?") == ["University of Notre Dame"]
    assert names_in("France?") == [] and names_in("France?", first_word=True) == ["France"]


def test_the_thing_asked_about_ends_before_the_verb() -> None:
    read = talk(("What did the envoy say?", "x"), ("What did he stress?", "x"))
    assert read[1] == "What did the envoy stress?"
    read = talk(("What national maximum speed limit was imposed in 1974?", "55 mph"), ("Who ended it?", "x"))
    assert read[1] == "Who ended national maximum speed limit?"


def test_the_noun_phrases_of_a_question_end_where_a_clause_or_verb_begins() -> None:
    assert noun_phrases("Who signed the trade pact that ended the 1842 tariff war?") == ["the trade pact", "the 1842 tariff war"]
    assert noun_phrases("Who guarded the convoy crossing the pass?") == ["the convoy", "the pass"]
    assert noun_phrases("When was the old bridge rebuilt?") == ["the old bridge"]
    assert noun_phrases("What is the harbour board doing about the silt?") == ["the harbour board", "the silt"]
    assert noun_phrases("When did the City Council approve the Harbour Plan?") == ["the City Council", "the Harbour Plan"]
    assert noun_phrases("Who runs the open.data.gov catalogue of the ministry?") == ["the open.data.gov catalogue of the ministry", "the ministry"]


def test_it_is_the_questions_first_phrase_not_the_answer_or_a_name_inside_it() -> None:
    read = talk(("Who signed the trade pact that ended the 1842 tariff war?", "the Northern League (NL)"), ("When did it expire?", "x"))
    assert read[1] == "When did the trade pact expire?"
    read = talk(("Who questioned the flood theory of the Great Fire?", "x"), ("And what did Marsh think started it?", "x"))
    assert read[1] == "And what did Marsh think started Great Fire?"
    read = talk(("Who maintains the open.data.gov catalogue?", "x"), ("When was it launched?", "x"))
    assert read[1] == "When was the open.data.gov catalogue launched?"


def test_a_list_of_names_asks_the_previous_question_about_them_all() -> None:
    read = talk(("How many bridges cross the river in Lyon?", "x"), ("What about Nantes and Tours?", "y"), ("And Brest?", "z"))
    assert read[1:] == ["How many bridges cross the river in Nantes and Tours?", "How many bridges cross the river in Brest?"]
    context = after(Context(), answered("What share of Norway's budget went to roads?", "x"))
    reading = read_question("And Sweden, Finland or Denmark?", context)
    assert reading.read_as == "What share of Sweden, Finland or Denmark's budget went to roads?"
    assert reading.mentions == "Sweden"


def test_a_name_in_what_a_which_asks_for_is_not_replaced() -> None:
    read = talk(("Which EFTA country signed the 1992 accord?", "x"), ("What about Austria and Sweden?", "x"))
    assert read[1] == "Which EFTA country signed the 1992 accord, Austria and Sweden?"


def test_a_phrase_replaces_the_previous_questions_phrase_with_its_head_noun() -> None:
    read = talk(("What share of the night shift was unionised in the Leeds plant?", "x"), ("And of the day shift?", "x"))
    assert read[1] == "What share of the day shift was unionised in the Leeds plant?"
    context = after(Context(), answered("How many trains ran on the coastal line?", "x"))
    reading = read_question("And the inland line?", context)
    assert (reading.read_as, reading.mentions) == ("How many trains ran on the inland line?", "inland")


def test_a_phrase_replaces_the_one_phrase_after_its_preposition() -> None:
    read = talk(("How much snow fell in the valley?", "x"), ("What about in the mountains?", "x"))
    assert read[1] == "How much snow fell in the mountains?"
    read = talk(("How much snow fell in the valley during the storm?", "x"), ("And in the mountains?", "x"))
    assert read[1] == "How much snow fell in the mountains during the storm?"
    read = talk(("How many roofs fell in the village in the storm?", "x"), ("And in the town?", "x"))
    assert read[1] == "How many roofs fell in the village in the storm, in the town?"  # which of the two: not said


def test_a_question_that_points_back_with_this_that_or_those_is_a_follow_up() -> None:
    context = after(Context(), answered("Who drafted the harbour dredging plan?", "x"))
    for question in ("When was that version approved by the council?", "Who paid for this survey of the harbour?",
                     "Where were those two trained as engineers?", "How deep was the channel by then?"):
        assert is_follow_up(question, context), question
    assert read_question("When was that version approved by the council?", context).read_as == (
        "When was that version approved by the council? (the harbour dredging plan)"
    )
    for question in ("Which court ruled that the harbour tax was unlawful?", "How much silt was dredged this year?"):
        assert not is_follow_up(question, context), question


def test_it_as_an_object_or_its_with_no_name_is_a_follow_up() -> None:
    read = talk(("How many towns are in the league of the northern ports?", "x"), ("Which large port stayed out of it?", "x"))
    assert read[1] == "Which large port stayed out of the league of the northern ports?"
    context = after(Context(), answered("Who drafted the harbour dredging plan?", "x"))
    assert is_follow_up("Which engineers on the board later opposed it?", context)
    assert not is_follow_up("What makes it hard to dredge a tidal harbour?", context)


def test_a_name_before_a_noun_is_part_of_the_phrase_and_a_verb_after_the_subject_is_not() -> None:
    assert noun_phrases("When did the court rule that the Oslo toll rule was unlawful?") == ["the court", "the Oslo toll rule"]
    assert noun_phrases("When did the appeals court strike down the toll?") == ["the appeals court", "the toll"]
