"""Lab 02's parameters (``labs/lab02/params.yaml``, section ``lab02:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from labflow.frame.config import Strict


class Lab02Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    hidden: tuple[int, ...] = Field(min_length=1)


class Lab02Variant(Strict):
    model: Literal["linear", "mlp"]
    loss: Literal["mse", "mae"]


class Lab02Split(Strict):
    train_size: int | None = Field(None, gt=0)
    # Train on the standardised log price: an unscaled dollar target wrecks the linear model.
    log_target: bool = True
    # Ames only: the data set's author (De Cock, 2011) advises dropping the five homes
    # above 4,000 sq ft (three are partial sales that no model of price can fit). null keeps all.
    max_living_area: float | None = Field(4000, gt=0)
    val_fraction: float = Field(0.15, gt=0, lt=1)
    test_fraction: float = Field(0.15, gt=0, lt=1)


class Lab02Config(Strict):
    data: Lab02Split
    train: Lab02Train
    variants: dict[str, Lab02Variant] = Field(min_length=1)
