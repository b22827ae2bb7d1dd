"""Low-rank adapters (LoRA, Hu et al. 2021) over a frozen encoder: a few lines instead of `peft`.

Every `nn.Linear` inside the encoder's layers gets a trainable `B @ A` of rank r beside its frozen
weight (`y = W x + (alpha / r) * B A x`); B starts at zero, so training starts from the base model.
Only the adapters and the question-answering head are trained and saved (a few MB); at first use
they are merged into the base weights (`merge`), so inference runs a plain model (and its int8
ONNX graph) at no extra cost.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LoraLinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_a.t() @ self.lora_b.t()) * self.scale

    def merged(self) -> nn.Linear:
        """The base Linear with the adapter folded into its weight."""
        with torch.no_grad():
            self.base.weight += (self.lora_b @ self.lora_a).to(self.base.weight.dtype) * self.scale
        return self.base


def add_adapters(encoder: nn.Module, rank: int, alpha: float) -> list[str]:
    """Freeze `encoder` and wrap each of its Linear layers with an adapter; the wrapped names."""
    for parameter in encoder.parameters():
        parameter.requires_grad_(False)
    names = [name for name, module in encoder.named_modules() if isinstance(module, nn.Linear)]
    for name in names:
        parent, _, leaf = name.rpartition(".")
        owner = encoder.get_submodule(parent) if parent else encoder
        setattr(owner, leaf, LoraLinear(getattr(owner, leaf), rank, alpha))
    return names


def merge(model: nn.Module) -> nn.Module:
    """Fold every adapter of `model` into its base weight, in place; returns `model`."""
    wrapped = [name for name, module in model.named_modules() if isinstance(module, LoraLinear)]
    for name in wrapped:
        parent, _, leaf = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, leaf, getattr(owner, leaf).merged())
    return model


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """What training changed: the adapters and every parameter left trainable (the head)."""
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
