"""Lab 04's parameters (``labs/lab04/params.yaml``, section ``lab04:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from labflow.frame.config import ImageSplitConfig, Strict


class Lab04Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    # How many loss points to record per epoch for the per-update curves.
    points_per_epoch: int = Field(10, gt=0)


class Lab04Variant(Strict):
    optimizer: Literal["sgd", "adam", "rmsprop"]
    lr: float = Field(gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)  # SGD only


class Lab04Config(Strict):
    data: ImageSplitConfig
    train: Lab04Train
    variants: dict[str, Lab04Variant] = Field(min_length=1)
