"""Lab 06's parameters (``labs/lab06/params.yaml``, section ``lab06:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from pydantic import Field

from labflow.frame.config import AugmentConfig, ImageSplitConfig, Strict


class Lab06Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    momentum: float = Field(ge=0, lt=1)
    # Training accuracy is measured each epoch on this many fixed training images (eval mode, no augmentation).
    train_eval_size: int = Field(gt=0)
    augment: AugmentConfig


class Lab06Variant(Strict):
    batch_norm: bool
    augment: bool


class Lab06Config(Strict):
    data: ImageSplitConfig
    train: Lab06Train
    variants: dict[str, Lab06Variant] = Field(min_length=1)
