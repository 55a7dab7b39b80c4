"""Lab 13's parameters (``labs/lab13/params.yaml``, section ``lab13:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from labflow.frame.config import SplitConfig, Strict


class Lab13Data(SplitConfig):
    # quick/smoke: Fashion-MNIST's target classes (offline); full: the flower photos (online).
    dataset: Literal["fashion_mnist", "mnist", "flowers"] = "fashion_mnist"
    # The target task's classes of the data set (relabelled 0..k-1); null: every class.
    classes: tuple[int, ...] | None = None


class Lab13Pretrain(Strict):
    """The source task (``backbone.source: pretrain``): a ResNet18 trained in this lab's preprocess
    stage on other classes of the same data set, as the downloaded ImageNet weights are in full."""

    classes: tuple[int, ...] = Field(min_length=2)
    train_size: int | None = Field(None, gt=0)  # source training images (class-balanced); null: all
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)  # Adam
    width: float = Field(0.25, gt=0, le=1)  # the ResNet18's channel multiplier (lab 10's quick width)


class Lab13Backbone(Strict):
    # pretrain: a backbone this lab trains on `pretrain.classes` (near transfer, quick);
    # imagenet: torchvision's ImageNet weights (data.resnet18_imagenet, full profile).
    source: Literal["pretrain", "imagenet"] = "pretrain"
    pretrain: Lab13Pretrain | None = None

    @model_validator(mode="after")
    def _pretrain_is_described(self):
        if self.source == "pretrain" and self.pretrain is None:
            raise ValueError("backbone.source is pretrain but backbone.pretrain (classes, epochs, ...) is missing")
        return self


class Lab13Train(Strict):
    epochs: int = Field(gt=0)  # every variant's whole budget, both phases together
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)  # the new head's learning rate
    backbone_lr: float = Field(gt=0)  # the trained backbone stages' learning rate (a variant may override it)


class Lab13Variant(Strict):
    """What a variant starts from and trains.

    Phase 1 (``warmup_epochs`` epochs) trains the head only; phase 2 (the remaining
    epochs) also trains the stages in ``unfreeze`` at the backbone learning rate. With
    ``warmup_epochs: 0`` there is one phase that trains ``unfreeze`` and the head from the start.
    """

    pretrained: bool  # start from the source backbone's weights (false: the same net, seeded random weights)
    unfreeze: tuple[Literal["stem", "layer1", "layer2", "layer3", "layer4"], ...] = ()
    warmup_epochs: int = Field(0, ge=0)
    backbone_lr: float | None = Field(None, gt=0)  # lr of the unfrozen stages (null: train.backbone_lr)

    @model_validator(mode="after")
    def _phases_make_sense(self):
        if self.warmup_epochs and not self.unfreeze:
            raise ValueError("warmup_epochs > 0 needs stages in `unfreeze` (nothing to unfreeze after the warm-up)")
        if self.backbone_lr is not None and not self.unfreeze:
            raise ValueError("backbone_lr is set but `unfreeze` is empty (no backbone stage trains)")
        return self


class Lab13Config(Strict):
    data: Lab13Data
    backbone: Lab13Backbone
    train: Lab13Train
    variants: dict[str, Lab13Variant] = Field(min_length=1)

    @model_validator(mode="after")
    def _source_and_target_classes_differ(self):
        b = self.backbone
        if b.source == "pretrain" and b.pretrain is not None:
            if self.data.classes is None:
                raise ValueError("backbone.source pretrain needs data.classes: the target classes, apart from "
                                 "backbone.pretrain.classes (otherwise the source has seen the target's labels)")
            shared = sorted(set(self.data.classes) & set(b.pretrain.classes))
            if shared:
                raise ValueError(f"classes {shared} are both source (backbone.pretrain.classes) and target "
                                 f"(data.classes): the source would have seen the target's labels")
        return self

    @model_validator(mode="after")
    def _warmup_within_budget(self):
        for name, v in self.variants.items():
            if v.warmup_epochs >= self.train.epochs:
                raise ValueError(f"variants.{name}.warmup_epochs ({v.warmup_epochs}) must be below train.epochs "
                                 f"({self.train.epochs}): phase 2 needs at least one epoch")
        return self
