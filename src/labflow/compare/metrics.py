"""Evaluation helpers: loss, accuracy and predictions over in-memory tensors, in chunks."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, *, chunk: int = 4096) -> torch.Tensor:
    """Model outputs for ``x`` (eval mode, on the model's device), returned on the CPU."""
    from labflow.nets.common import evaluating

    device = next(model.parameters()).device
    with evaluating(model):
        outs = [model(x[i : i + chunk].to(device)).cpu() for i in range(0, len(x), chunk)]
    return torch.cat(outs)


def classification_metrics(logits: torch.Tensor, y: torch.Tensor, prefix: str) -> dict[str, float]:
    return {
        f"{prefix}_loss": F.cross_entropy(logits, y).item(),
        f"{prefix}_acc": (logits.argmax(1) == y).float().mean().item(),
    }


def confusion_matrix(pred: torch.Tensor, y: torch.Tensor, classes: int) -> torch.Tensor:
    return torch.bincount(y * classes + pred, minlength=classes * classes).reshape(classes, classes)
