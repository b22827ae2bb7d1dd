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
    expected = reference(SENTENCES, truncation=True, max_length=256)["input_ids"]
    assert onnx_encoder._model.tokenizer(SENTENCES) == expected


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
