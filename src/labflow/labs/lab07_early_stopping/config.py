"""Lab 07's parameters (``labs/lab07/params.yaml``, section ``lab07:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from labflow.frame.config import SplitConfig, Strict


class Lab07Data(SplitConfig):
    # quick/smoke: fashion_mnist (offline); full: cats_vs_dogs read from data.cats_vs_dogs.folder.
    dataset: Literal["fashion_mnist", "cats_vs_dogs"] = "fashion_mnist"


class Lab07Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    # Small CNN: one stride-2 3x3 conv (+ReLU) per entry, then a hidden dense layer.
    channels: tuple[int, ...] = Field(min_length=1)
    hidden: int = Field(gt=0)


class Lab07Variant(Strict):
    """Early stopping on val_loss: ``patience`` null trains every epoch."""

    patience: int | None = Field(None, gt=0)
    restore_best: bool = False  # end with the best epoch's weights instead of the last epoch's
    min_delta: float = Field(0.0, ge=0)


class Lab07Config(Strict):
    data: Lab07Data
    train: Lab07Train
    variants: dict[str, Lab07Variant] = Field(min_length=1)
