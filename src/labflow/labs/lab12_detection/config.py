"""Lab 12's parameters (``labs/lab12/params.yaml``, section ``lab12:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from labflow.frame.config import CanvasConfig, Strict


class Lab12Data(Strict):
    # smoke/quick: canvases of Fashion-MNIST (or MNIST) objects; full: Pascal VOC 2007.
    dataset: Literal["fashion_mnist", "mnist", "voc2007"]
    # Canvases per split (required for canvases); for voc2007 the first N images of each split (null: all).
    train_images: int | None = Field(None, gt=0)
    val_images: int | None = Field(None, gt=0)
    test_images: int | None = Field(None, gt=0)
    # Canvases: the share of the source's training images kept for validation canvases.
    val_source_fraction: float = Field(0.15, gt=0, lt=1)
    canvas: CanvasConfig = CanvasConfig()
    image_size: int = Field(320, ge=64, le=1024)  # voc2007: every image resized to this square (SSDlite's 320)

    @model_validator(mode="after")
    def _sizes_for_canvases(self):
        if self.dataset != "voc2007":
            missing = [k for k in ("train_images", "val_images", "test_images") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"{', '.join(missing)}: canvases need a count (null means 'all' for voc2007 only)")
        return self


class Lab12Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    optimizer: Literal["adam", "sgd"]
    lr: float = Field(gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)  # sgd only
    weight_decay: float = Field(0.0, ge=0)
    # none: from scratch; coco: torchvision's COCO weights (downloaded once; full profile).
    weights: Literal["none", "coco"] = "none"
    width: float = Field(1.0, gt=0, le=2)  # MobileNetV3 width multiplier, every variant alike (from scratch only)
    # Training batches whose BatchNorm statistics replace the running ones before every
    # evaluation (0: keep the running statistics; see the lab's module docstring).
    bn_calibration_batches: int = Field(8, ge=0)
    flip: bool = True  # random horizontal flip of training images (boxes flipped with them)


class Lab12Variant(Strict):
    arch: Literal["ssdlite320_mobilenet_v3_large", "retinanet_mobilenet_v3_fpn", "retinanet_resnet50_fpn_v2"]
    lr: float | None = Field(None, gt=0)  # overrides train.lr


class Lab12Evaluate(Strict):
    draw_images: int = Field(6, ge=1, le=32)  # test images drawn with their predictions
    draw_score: float = Field(0.4, ge=0, le=1)  # detections drawn from this score up


class Lab12Config(Strict):
    data: Lab12Data
    train: Lab12Train
    evaluate: Lab12Evaluate = Lab12Evaluate()
    variants: dict[str, Lab12Variant] = Field(min_length=1)

    @model_validator(mode="after")
    def _weights_exist(self):
        if self.train.weights == "coco" and self.train.width != 1.0:
            raise ValueError(f"train.width {self.train.width}: COCO weights exist at width 1.0 only")
        if self.train.weights == "coco":
            bad = [name for name, v in self.variants.items() if v.arch == "retinanet_mobilenet_v3_fpn"]
            if bad:
                raise ValueError(f"variants {', '.join(bad)}: torchvision has no COCO weights for "
                                 "retinanet_mobilenet_v3_fpn; use retinanet_resnet50_fpn_v2 or weights: none")
        return self
