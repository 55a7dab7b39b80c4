"""Lab 05's parameters (``labs/lab05/params.yaml``, section ``lab05:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from pydantic import Field

from labflow.frame.config import Strict, TableSplit


class Lab05Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    hidden: tuple[int, ...] = Field(min_length=1)
    # |w| below this counts as a near-zero weight (the L1 sparsity measure).
    near_zero: float = Field(1e-2, gt=0)


class Lab05Variant(Strict):
    l1: float = Field(0.0, ge=0)  # lambda * sum |w| added to the loss (weights, not biases)
    weight_decay: float = Field(0.0, ge=0)  # L2 through the optimizer (Adam's coupled weight_decay)
    dropout: float = Field(0.0, ge=0, lt=1)


class Lab05Config(Strict):
    data: TableSplit
    train: Lab05Train
    variants: dict[str, Lab05Variant] = Field(min_length=1)
