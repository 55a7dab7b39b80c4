"""Model builders shared by several labs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

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


def is_exported(model: nn.Module) -> bool:
    """A graph from ``torch.export`` (how MLflow's ``pt2`` format loads back): frozen in the mode
    it was exported in (eval), forward only, and ``.eval()``/``.train()`` raise."""
    return isinstance(model, torch.fx.GraphModule)


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for a block, the previous mode restored after; an exported graph as it is."""
    if is_exported(model):
        yield model
        return
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
