"""Lab 09's parameters (``labs/lab09/params.yaml``, section ``lab09:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from labflow.frame.config import Strict


class Lab09Data(Strict):
    """Lab 09 trains on another lab's split (its processed tensors, copied byte for byte), so
    its comparison with that lab's model is on the same images. Only lab01 is wired in dvc.yaml."""

    same_split_as: Literal["lab01"] = "lab01"


class Lab09Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    channels: tuple[PositiveInt, PositiveInt] = (16, 32)  # output channels of the two 3x3 convolutions
    hidden: int = Field(128, gt=0)  # the fully connected layer before the logits


class Lab09Variant(Strict):
    batch_norm: bool = False  # BatchNorm after each convolution and after the hidden layer
    lr: float | None = Field(None, gt=0)  # None: train.lr


class Lab09Config(Strict):
    data: Lab09Data = Lab09Data()
    train: Lab09Train
    variants: dict[str, Lab09Variant] = Field(min_length=1)
