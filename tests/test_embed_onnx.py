"""The ONNX int8 encoder (the default) gives (nearly) the torch encoder's vectors, through the same API.

The first run exports and quantises the bundled model into a cache folder (about 10-60 s); later
runs reuse it.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SENTENCES = [
    "Which NFL team represented the AFC at Super Bowl 50?",
    "The Denver Broncos defeated the Carolina Panthers 24–10 to earn their third Super Bowl title.",
    "Kaja Kallas said Europe must keep supporting Ukraine.",
    "Rainfall doubled in autumn.",
    "Hello",
    "A very long passage " + "about harbours, ships and storms " * 60,  # past the 256-token window
]


@pytest.fixture(scope="module")
def encoders():
    from qa.embed import Embedder

    return Embedder(encoder="torch"), Embedder(encoder="onnx")


def test_onnx_vectors_match_torch(encoders):
    torch_encoder, onnx_encoder = encoders
    assert onnx_encoder.backend == "onnx" and onnx_encoder.dim == torch_encoder.dim
    a = torch_encoder.encode(SENTENCES)
    b = onnx_encoder.encode(SENTENCES)
    assert b.shape == a.shape and b.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-4)
    cosines = np.sum(a * b, axis=1)
    assert cosines.min() >= 0.98, cosines


def test_single_questions_and_batches_agree(encoders):
    _, onnx_encoder = encoders
    batch = onnx_encoder.encode(SENTENCES)
    one = np.stack([onnx_encoder.encode([s])[0] for s in SENTENCES])
    # Dynamic int8 quantisation scales activations per batch, so a sentence's vector moves a
    # little with its batch-mates: measured 0.991-0.993, and 0.980 for the one-word "Hello"
    # batched with a 256-token passage (onnxruntime 1.32).
    assert np.sum(batch * one, axis=1).min() >= 0.97
    assert onnx_encoder.encode([]).shape == (0, onnx_encoder.dim)


def test_the_tokenizer_matches_transformers(encoders):
    """tokenizer.json read directly gives the ids transformers.AutoTokenizer gives."""
    from transformers import AutoTokenizer

    from qa.embed import resolve_model_path

    _, onnx_encoder = encoders
    reference = AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    expected = reference(SENTENCES, truncation=True, max_length=256, return_offsets_mapping=True)
    ours = onnx_encoder._model.tokenizer(SENTENCES)
    assert [t.ids for t in ours] == expected["input_ids"]
    assert [[tuple(o) for o in t.offsets] for t in ours] == [[tuple(o) for o in row] for row in expected["offset_mapping"]]


def test_the_encoder_is_chosen_by_config_and_environment(monkeypatch):
    from qa.config import Config
    from qa.embed import _choose_encoder

    monkeypatch.delenv("QA_ENCODER", raising=False)
    assert Config.load().encoder == "onnx" and _choose_encoder(None) == "onnx"
    monkeypatch.setenv("QA_ENCODER", "torch")
    assert Config.load().encoder == "torch" and _choose_encoder(Config.load().encoder) == "torch"
    assert _choose_encoder("onnx") == "onnx"
    with pytest.raises(ValueError, match="unknown encoder"):
        _choose_encoder("tensorflow")


PASSAGE = ("The Ukraine Defense Contact Group will meet at NATO headquarters on Friday. "
           "Kaja Kallas said Europe must keep supporting Ukraine. "
           "Rainfall in Brussels doubled in autumn.")
FAR = "The harbour reopened after the storms."
LONG_PASSAGE = "A very long passage " + "about harbours, ships and storms " * 60 + FAR


def _spans(text: str, sentences: list[str]) -> list[tuple[int, int]]:
    return [(text.index(s), text.index(s) + len(s)) for s in sentences]


@pytest.mark.parametrize("backend", [0, 1], ids=["torch", "onnx"])
def test_a_chunk_pass_gives_the_chunk_and_its_sentences(encoders, backend):
    """The chunk's vector is the one `encode` gives it; each sentence read in its chunk is nearest
    to the question it answers; a sentence past the chunk's token window is embedded alone."""
    encoder = encoders[backend]
    sentences = ["The Ukraine Defense Contact Group will meet at NATO headquarters on Friday.",
                 "Kaja Kallas said Europe must keep supporting Ukraine.", "Rainfall in Brussels doubled in autumn."]
    passages = [(PASSAGE, _spans(PASSAGE, sentences)), (LONG_PASSAGE, _spans(LONG_PASSAGE, [FAR]))]
    chunks, in_context = encoder.encode_chunks(passages)
    assert chunks.shape == (2, encoder.dim) and in_context.shape == (4, encoder.dim)
    assert np.allclose(np.linalg.norm(in_context, axis=1), 1.0, atol=1e-4)
    assert np.allclose(chunks, encoder.encode([PASSAGE, LONG_PASSAGE]), atol=1e-4)
    questions = encoder.encode(["When will the contact group meet?", "What did Kallas say?", "How much did it rain?"])
    assert ((questions @ in_context[:3].T).argmax(axis=1) == [0, 1, 2]).all()
    assert np.allclose(in_context[3], encoder.encode([FAR])[0], atol=1e-4)  # cut off by the window: alone
    empty_chunks, empty_sentences = encoder.encode_chunks([])
    assert empty_chunks.shape == (0, encoder.dim) and empty_sentences.shape == (0, encoder.dim)


def test_the_two_backends_read_sentences_in_context_alike(encoders):
    torch_encoder, onnx_encoder = encoders
    sentences = ["The Ukraine Defense Contact Group will meet at NATO headquarters on Friday.",
                 "Kaja Kallas said Europe must keep supporting Ukraine."]
    passages = [(PASSAGE, _spans(PASSAGE, sentences))]
    a, b = torch_encoder.encode_chunks(passages)[1], onnx_encoder.encode_chunks(passages)[1]
    assert ((a * b).sum(axis=1) > 0.97).all()
