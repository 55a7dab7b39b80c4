"""Lab 10's parameters (``labs/lab10/params.yaml``, section ``lab10:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from labflow.frame.config import AugmentConfig, ImageSplitConfig, Strict


class Lab10Train(Strict):
    """One optimizer (Adam), batch size and epoch count for every network: only the network differs."""

    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    augment: AugmentConfig  # crop_padding 0 and flip false: no augmentation


class Lab10Variant(Strict):
    arch: Literal["simple_cnn", "vgg11", "vgg16", "resnet18"]
    # Multiplies every channel count of VGG/ResNet (architectures.build); the course CNN has none.
    width: float = Field(1.0, gt=0, le=4)

    @model_validator(mode="after")
    def _simple_cnn_has_no_width(self):
        if self.arch == "simple_cnn" and self.width != 1.0:
            raise ValueError(f"width {self.width}: the simple CNN has no width multiplier; use 1.0")
        return self


class Lab10Config(Strict):
    data: ImageSplitConfig
    train: Lab10Train
    variants: dict[str, Lab10Variant] = Field(min_length=1)
