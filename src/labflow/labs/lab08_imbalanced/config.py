"""Lab 08's parameters (``labs/lab08/params.yaml``, section ``lab08:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from labflow.frame.config import Strict, TableSplit


class Lab08Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    hidden: tuple[int, ...] = Field(min_length=1)
    smote_k: int = Field(5, gt=0)  # SMOTE's nearest neighbours


class Lab08Variant(Strict):
    method: Literal["none", "class_weights", "weighted_sampler", "undersample", "oversample", "smote"]


class Lab08Config(Strict):
    data: TableSplit
    train: Lab08Train
    variants: dict[str, Lab08Variant] = Field(min_length=1)
