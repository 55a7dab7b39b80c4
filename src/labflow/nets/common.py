"""Model builders shared by several labs."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def mlp(in_features: int, hidden: Sequence[int], out_features: int, *, dropout: float = 0.0) -> nn.Sequential:
    """Flatten -> [Linear -> ReLU -> Dropout] * len(hidden) -> Linear (logits, no softmax)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def seeded(build, seed: int) -> nn.Module:
    """Build a model right after seeding: every variant of a lab starts from the same weights."""
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        return build()
    finally:
        torch.set_rng_state(state)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
