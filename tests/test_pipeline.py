"""The whole pipeline end to end: real model, FAISS and BM25 on a tmp index, no mocks.

Tests that change an index build their own Pipeline (cheap: the model is cached per process);
`seeded_pipeline` from conftest is shared and only ever read.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qa.config import Config
from qa.pipeline import Pipeline
from qa.types import Answer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

NOTE_V1 = "Depot report\nThe northern depot holds 900 tonnes of wheat, according to the quartermaster.\n"
NOTE_V2 = "Depot report\nAfter the spring audit, the northern depot holds 450 tonnes of rice.\n"

PDF_PAGES = [
    "Coastal Heritage Survey\nThis survey lists the harbours and breakwaters of the western coast and their state of repair.",
    "Lighthouses\nThe Orvik lighthouse was rebuilt in 1911 by the engineer Marta Lindqvist.",
    "Appendix\nThe survey team thanks the harbour masters for access to their archives and logbooks.",
]
PDF_QUESTION = "Who rebuilt the Orvik lighthouse?"
PDF_FACT = "Marta Lindqvist"


def new_pipeline(index_dir: Path, seeds_dir: Path | None = None) -> Pipeline:
    return Pipeline(Config.load(index_dir=index_dir, seeds_dir=seeds_dir or index_dir.parent / "no-seeds"))


def indexed(tmp_path: Path, docs: dict[str, str], seeds_dir: Path | None = None) -> Pipeline:
    """A new pipeline over the seed folder (if given) and `docs` (file name: text) written to tmp_path."""
    pipeline = new_pipeline(tmp_path / "index", seeds_dir)
    if seeds_dir is not None:
        pipeline.ensure_seeded()
    for name, text in docs.items():
        (tmp_path / name).write_text(text)
    pipeline.add([tmp_path / name for name in docs])
    return pipeline


def assert_verbatim(pipeline: Pipeline, answer: Answer) -> None:
    """Every citation and passage quotes its document exactly at the offsets it gives."""
    for c in answer.citations:
        text = pipeline.document(c.doc_id).text
        assert 0 <= c.start < c.end <= len(text)
        assert c.quote == text[c.start : c.end]
    if answer.answered:
        assert answer.citations and answer.quote == answer.citations[0].quote
        assert answer.answer and answer.answer in answer.quote
    for p in answer.passages:
        assert p.text == pipeline.document(p.doc_id).text[p.start : p.end]


def assert_abstained(answer: Answer) -> None:
    assert answer.answered is False
    assert answer.answer == "" and answer.quote == "" and answer.citations == ()
    assert answer.message


# --- adding ----------------------------------------------------------------------------------


def test_add_seeds_then_readding_is_unchanged(tmp_path: Path, seeds_dir: Path) -> None:
    pipeline = new_pipeline(tmp_path / "index")
    first = pipeline.add([seeds_dir])
    assert [r.status for r in first] == ["added"]
    assert first[0].doc_id and first[0].title
    generation = pipeline.store.current_generation()
    assert generation is not None
    (doc,) = pipeline.documents()
    assert doc.doc_id == first[0].doc_id and doc.chunks > 0 and doc.pages is None

    again = pipeline.add([seeds_dir, *seeds_dir.glob("*.txt")])
    assert {r.status for r in again} == {"unchanged"}
    assert all(r.doc_id == doc.doc_id for r in again)
    assert pipeline.store.current_generation() == generation
    assert pipeline.documents() == [doc]


def test_changed_file_at_same_path_replaces_the_old_document(tmp_path: Path) -> None:
    pipeline = new_pipeline(tmp_path / "index")
    note = tmp_path / "docs" / "depot.txt"
    note.parent.mkdir()
    note.write_text(NOTE_V1, encoding="utf-8")
    (old,) = pipeline.add([note])
    assert old.status == "added"

    note.write_text(NOTE_V2, encoding="utf-8")
    (new,) = pipeline.add([note])
    assert new.status == "replaced"
    assert new.doc_id != old.doc_id
    docs = pipeline.documents()
    assert [d.doc_id for d in docs] == [new.doc_id]
    assert docs[0].path == str(note.resolve())
    with pytest.raises(KeyError):
        pipeline.document(old.doc_id)

    answer = pipeline.ask("How many tonnes of rice does the northern depot hold?")
    assert answer.answered, answer
    assert "450 tonnes" in answer.quote
    assert answer.citations[0].doc_id == new.doc_id
    assert all(p.doc_id == new.doc_id for p in answer.passages)
    assert_verbatim(pipeline, answer)


def test_file_changed_into_a_copy_of_another_document_drops_its_old_version(tmp_path: Path) -> None:
    """The old text of a path must not stay answerable, even if the new text is already indexed."""
    pipeline = new_pipeline(tmp_path / "index")
    a, b = tmp_path / "a" / "depot.txt", tmp_path / "b" / "ferry.txt"
    a.parent.mkdir()
    b.parent.mkdir()
    a.write_text(NOTE_V1, encoding="utf-8")
    b.write_text("Ferry notice\nThe island ferry leaves at noon every Tuesday.\n", encoding="utf-8")
    old_a, _ = pipeline.add([a, b])
    a.write_text(b.read_text(encoding="utf-8"), encoding="utf-8")
    pipeline.add([a])
    assert old_a.doc_id not in {d.doc_id for d in pipeline.documents()}
    after = pipeline.ask("How many tonnes of wheat does the northern depot hold?")
    assert "900 tonnes" not in after.quote


def test_pdf_fact_is_cited_with_its_page_then_gone_after_removal(
    tmp_path: Path, seeds_dir: Path, make_pdf
) -> None:
    pipeline = new_pipeline(tmp_path / "index")
    pipeline.add([seeds_dir])
    pdf = make_pdf(tmp_path / "Coastal Survey.pdf", PDF_PAGES, title="Coastal Heritage Survey 2024")
    (result,) = pipeline.add([pdf])
    assert result.status == "added", result
    info = next(d for d in pipeline.documents() if d.doc_id == result.doc_id)
    assert info.pages == 3 and info.source == "Coastal Survey.pdf"
    assert info.title == "Coastal Heritage Survey 2024"

    answer = pipeline.ask(PDF_QUESTION)
    assert answer.answered, answer
    assert PDF_FACT in answer.quote
    (citation,) = answer.citations
    assert citation.doc_id == result.doc_id and citation.source == "Coastal Survey.pdf"
    assert citation.page == 2
    text = pipeline.document(result.doc_id).text
    assert citation.quote == text[citation.start : citation.end]
    assert_verbatim(pipeline, answer)
    assert any(p.doc_id == result.doc_id and p.page == 2 for p in answer.passages)

    removed = pipeline.remove(result.doc_id)
    assert [d.doc_id for d in removed] == [result.doc_id]
    assert result.doc_id not in {d.doc_id for d in pipeline.documents()}
    after = pipeline.ask(PDF_QUESTION)
    assert not after.answered or after.citations[0].doc_id != result.doc_id
    assert PDF_FACT not in after.quote
    assert all(p.doc_id != result.doc_id for p in after.passages)


def test_remove_by_path_and_by_id(tmp_path: Path, seeds_dir: Path) -> None:
    pipeline = new_pipeline(tmp_path / "index")
    note = tmp_path / "depot.txt"
    note.write_text(NOTE_V1, encoding="utf-8")
    results = pipeline.add([seeds_dir, note])
    assert [r.status for r in results] == ["added", "added"]
    seed_id, note_id = (r.doc_id for r in results)

    assert [d.doc_id for d in pipeline.remove(str(note))] == [note_id]
    assert [d.doc_id for d in pipeline.documents()] == [seed_id]
    after = pipeline.ask("How many tonnes of wheat does the northern depot hold?")
    assert not after.answered or after.citations[0].doc_id != note_id
    assert "900 tonnes" not in after.quote

    assert pipeline.remove("no-such-document") == []
    assert [d.doc_id for d in pipeline.remove(seed_id)] == [seed_id]
    assert pipeline.documents() == []
    emptied = pipeline.ask("What did Kallas say?")
    assert_abstained(emptied)
    assert "qa add" in emptied.message


def test_good_files_added_and_bad_ones_refused_without_trace(tmp_path: Path, make_pdf) -> None:
    src = tmp_path / "incoming"
    src.mkdir()
    good_txt = src / "depot.txt"
    good_txt.write_text(NOTE_V1, encoding="utf-8")
    good_md = src / "minutes.md"
    good_md.write_text("# Council minutes\n\nThe council approved the new ferry timetable on Tuesday.\n", encoding="utf-8")
    good_pdf = make_pdf(src / "survey.pdf", PDF_PAGES)
    empty = src / "empty.txt"
    empty.write_bytes(b"")
    docx = src / "report.docx"
    docx.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    corrupt = src / "broken.pdf"
    corrupt.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8)

    pipeline = new_pipeline(tmp_path / "index")
    results = pipeline.add([good_txt, empty, docx, good_md, corrupt, good_pdf])
    status = {Path(r.path).name: r for r in results}
    assert set(status) == {"depot.txt", "empty.txt", "report.docx", "minutes.md", "broken.pdf", "survey.pdf"}
    for name in ("depot.txt", "minutes.md", "survey.pdf"):
        assert status[name].status == "added", status[name]
    for name in ("empty.txt", "report.docx", "broken.pdf"):
        assert status[name].status == "refused" and not status[name].ok
        assert status[name].reason and not status[name].doc_id
    assert "empty" in status["empty.txt"].reason
    assert status["report.docx"].reason.startswith("not a readable Word file (")
    assert "PDF" in status["broken.pdf"].reason

    docs = pipeline.documents()
    assert sorted(d.source for d in docs) == ["depot.txt", "minutes.md", "survey.pdf"]
    assert {d.title for d in docs} >= {"Council minutes", "Depot report"}
    index = pipeline.config.index_dir
    stored_texts = {p.stem for p in (index / "texts").glob("*.txt")}
    assert stored_texts == {d.doc_id for d in docs}
    assert not [p for p in index.iterdir() if p.name.startswith(".tmp-")]

    answer = pipeline.ask("When did the council approve the ferry timetable?")
    assert answer.answered, answer
    assert answer.citations[0].source == "minutes.md"
    assert_verbatim(pipeline, answer)


def test_folder_with_only_bad_files_adds_nothing(tmp_path: Path) -> None:
    src = tmp_path / "incoming"
    src.mkdir()
    (src / "empty.md").write_bytes(b"")
    (src / "blank.txt").write_text("  \n\n\t\n", encoding="utf-8")
    pipeline = new_pipeline(tmp_path / "index")
    results = pipeline.add([src, tmp_path / "missing.txt"])
    assert sorted((Path(r.path).name, r.status) for r in results) == [
        ("blank.txt", "refused"),
        ("empty.md", "refused"),
        ("missing.txt", "refused"),
    ]
    assert "no such file" in next(r.reason for r in results if r.path.endswith("missing.txt"))
    assert pipeline.documents() == []
    assert pipeline.store.current_generation() is None


# --- asking ----------------------------------------------------------------------------------


def test_empty_index_tells_how_to_add_documents(tmp_path: Path) -> None:
    pipeline = new_pipeline(tmp_path / "never-created")
    assert pipeline.documents() == []
    answer = pipeline.ask("What did Kallas say?")
    assert_abstained(answer)
    assert "qa add" in answer.message
    assert answer.passages == ()


@pytest.mark.parametrize("question", ["", "   ", "\n\t ", "?", "?!...", " -- ¿? ", "…"])
def test_empty_or_punctuation_questions_get_a_message(seeded_pipeline: Pipeline, question: str) -> None:
    answer = seeded_pipeline.ask(question)
    assert_abstained(answer)


@pytest.mark.parametrize(
    "question",
    [
        ("What did Kallas say? " * 500)[:10_000],
        "x" * 10_000,
        ("Kallas " * 1500)[:10_000],
    ],
    ids=["repeated-question", "one-long-word", "repeated-name"],
)
def test_very_long_question_does_not_crash(seeded_pipeline: Pipeline, question: str) -> None:
    assert len(question) == 10_000
    answer = seeded_pipeline.ask(question)
    assert isinstance(answer.answered, bool)
    assert 0.0 <= answer.score <= 1.0
    if not answer.answered:
        assert_abstained(answer)
    assert_verbatim(seeded_pipeline, answer)


def test_doc_ids_filter_restricts_answers_and_passages(tmp_path: Path, seeds_dir: Path) -> None:
    pipeline = new_pipeline(tmp_path / "index")
    note = tmp_path / "depot.txt"
    note.write_text(NOTE_V1, encoding="utf-8")
    seed_id, note_id = (r.doc_id for r in pipeline.add([seeds_dir, note]))

    unfiltered = pipeline.ask("Who is Finland's Defense Minister?")
    assert unfiltered.answered and unfiltered.citations[0].doc_id == seed_id

    to_note = pipeline.ask("Who is Finland's Defense Minister?", doc_ids=[note_id])
    assert to_note.passages and all(p.doc_id == note_id for p in to_note.passages)
    assert all(c.doc_id == note_id for c in to_note.citations)
    assert "Häkkänen" not in to_note.quote

    to_seed = pipeline.ask("How many tonnes of wheat does the northern depot hold?", doc_ids=[seed_id])
    assert to_seed.passages and all(p.doc_id == seed_id for p in to_seed.passages)
    assert all(c.doc_id == seed_id for c in to_seed.citations)
    assert "900 tonnes" not in to_seed.quote

    in_note = pipeline.ask("How many tonnes of wheat does the northern depot hold?", doc_ids=[note_id])
    assert in_note.answered, in_note
    assert in_note.citations[0].doc_id == note_id and "900 tonnes" in in_note.quote
    assert_verbatim(pipeline, in_note)


def test_second_pipeline_sees_documents_added_by_the_first(tmp_path: Path, seeds_dir: Path) -> None:
    index = tmp_path / "index"
    writer = new_pipeline(index)
    reader = new_pipeline(index)
    assert reader.documents() == []
    assert "qa add" in reader.ask("What did Kallas say?").message

    (seed,) = writer.add([seeds_dir])
    assert [d.doc_id for d in reader.documents()] == [seed.doc_id]
    answer = reader.ask("Who is Finland's Defense Minister?")
    assert answer.answered, answer
    assert "Antti Häkkänen" in answer.quote and answer.citations[0].doc_id == seed.doc_id
    assert_verbatim(reader, answer)

    note = tmp_path / "depot.txt"
    note.write_text(NOTE_V1, encoding="utf-8")
    writer.add([note])
    writer.remove(seed.doc_id)
    assert [d.source for d in reader.documents()] == ["depot.txt"]
    later = reader.ask("Who is Finland's Defense Minister?")
    assert all(c.doc_id != seed.doc_id for c in later.citations)


def test_index_folder_can_move(tmp_path: Path, seeds_dir: Path) -> None:
    """Nothing in the index depends on where it lives: a copied index answers the same."""
    pipeline = new_pipeline(tmp_path / "index")
    pipeline.add([seeds_dir])
    shutil.copytree(tmp_path / "index", tmp_path / "moved")
    moved = new_pipeline(tmp_path / "moved")
    answer = moved.ask("Who is Finland's Defense Minister?")
    assert answer.answered and "Antti Häkkänen" in answer.quote
    assert_verbatim(moved, answer)


@pytest.mark.e2e
def test_fast_mode_answers_from_the_same_index_without_the_answer_model(seeded_pipeline) -> None:
    """QA_READER_MODEL=none: the logistic reader alone, rules for the short answer, no model call."""
    from dataclasses import replace

    from qa.pipeline import Pipeline

    fast = Pipeline(replace(seeded_pipeline.config, reader_model="none"))
    answer = fast.ask("What did Kallas say?")
    assert answer.answered and "no peace to keep" in answer.quote
    assert fast.reader.span_model is None and fast.reader._span_model is None
    assert fast.reader.base_model is None and fast.reader._base_model is False  # never loaded
    accurate = seeded_pipeline.ask("What did Kallas say?")
    assert accurate.citations[0].start == answer.citations[0].start  # same sentence either way
    assert seeded_pipeline.reader._span_model is not None
    # By default the base-size model of the cascade is loaded too, from the shipped adapters.
    from qa.read.span import BUNDLED_BASE_DIR, SpanModel

    assert isinstance(seeded_pipeline.reader._base_model, SpanModel)
    assert seeded_pipeline.reader._base_model.name == str(BUNDLED_BASE_DIR)


def test_strict_asks_for_the_higher_calibrated_confidence(seeded_pipeline: Pipeline) -> None:
    """The same reading, two bars: the score does not change with the mode, only what it must reach."""
    from dataclasses import replace

    question = "Who is Finland's Defense Minister?"
    score = seeded_pipeline.ask(question).score
    assert 0.0 < score < 1.0
    bars = Pipeline(replace(seeded_pipeline.config, min_confidence=score - 1e-3, strict_min_confidence=score + 1e-3))
    # (the score is rounded to 4 places: the bars sit just either side of it)
    balanced, strict = bars.ask(question, strict=False), bars.ask(question, strict=True)
    assert balanced.answered and balanced.score == score
    assert_abstained(strict)
    assert strict.score == score
    assert bars.ask(question).answered  # the configured abstention is balanced
    assert not Pipeline(replace(bars.config, abstention="strict")).ask(question).answered


def test_the_same_fact_in_another_document_is_offered_as_an_alternative(tmp_path: Path) -> None:
    docs = {
        "bulletin.txt": "Harbour bulletin.\nThe Orvik lighthouse was rebuilt in 1911 by the engineer Marta Lindqvist. "
        "The harbour also got a new breakwater.\n",
        "history.txt": "Coastal history.\nIn 1911 the engineer Marta Lindqvist rebuilt the Orvik lighthouse after the "
        "great storm. Fishing boats returned soon after.\n",
        "weather.txt": "Weather notes.\nThe spring storms of 1911 damaged several piers along the coast. Repairs took two years.\n",
    }
    pipeline = indexed(tmp_path, docs)
    answer = pipeline.ask(PDF_QUESTION)
    assert answer.answered and answer.answer == PDF_FACT
    (other,) = answer.alternatives
    assert {answer.citations[0].source, other.citations[0].source} == {"bulletin.txt", "history.txt"}
    assert other.answered and PDF_FACT in other.quote and other.answer == PDF_FACT
    assert 0.3 <= other.score <= answer.score and not other.passages and not other.alternatives
    assert_verbatim(pipeline, other)
    assert pipeline.ask("Who wrote the weather notes?").alternatives == ()  # nothing else answers


def test_what_did_x_say_lists_each_distinct_statement_once(tmp_path: Path, seeds_dir: Path) -> None:
    docs = {
        "summit.txt": 'Summit report.\nEU foreign policy chief Kaja Kallas said: "At the moment there is no peace to '
        'keep." Ministers agreed to meet again in May.\n',
        "interview.txt": 'Interview notes.\nIn a radio interview, Kallas warned that "Russia is not interested in peace '
        'talks." The station broadcast the full interview later.\n',
        "budget.txt": "Budget notes.\nThe defence budget rose by 4 percent. Finance ministers said the increase was affordable.\n",
    }
    pipeline = indexed(tmp_path, docs, seeds_dir)  # the seed briefing quotes the same words of Kallas too
    answer = pipeline.ask("What did Kallas say?")
    statements = [answer.answer, *(other.answer for other in answer.alternatives)]
    assert sorted(s.rstrip(".") for s in statements) == [
        "At the moment there is no peace to keep",
        "Russia is not interested in peace talks",
    ]
    assert all("Kallas" in quoted.quote for quoted in (answer, *answer.alternatives))
