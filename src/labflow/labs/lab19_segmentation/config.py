"""Lab 19's parameters (``labs/lab19/params.yaml``, section ``lab19:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from labflow.frame.config import CanvasConfig, Strict


class Lab19Data(Strict):
    # smoke/quick: canvases of Fashion-MNIST (or MNIST) objects with their true masks;
    # full: segmentation (data.segmentation: Oxford-IIIT Pet or your own folder).
    dataset: Literal["fashion_mnist", "mnist", "segmentation"]
    # Canvases per split (required for canvases); for a real set the first N images of each split (null: all).
    train_images: int | None = Field(None, gt=0)
    val_images: int | None = Field(None, gt=0)
    test_images: int | None = Field(None, gt=0)
    # The share of the source's training images kept for validation (canvases: their source images).
    val_source_fraction: float = Field(0.15, gt=0, lt=1)
    canvas: CanvasConfig = CanvasConfig()

    @property
    def canvases(self) -> bool:
        return self.dataset in ("fashion_mnist", "mnist")

    @model_validator(mode="after")
    def _sizes_for_canvases(self):
        if self.canvases:
            missing = [k for k in ("train_images", "val_images", "test_images") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"{', '.join(missing)}: canvases need a count (null means 'all' for a real data set)")
        return self


class Lab19Model(Strict):
    """segmentation-models-pytorch's Unet; every variant trains the same one from the same initial weights."""

    encoder: Literal["resnet18", "resnet34", "resnet50", "mobilenet_v2", "efficientnet-b0"] = "resnet18"
    encoder_depth: int = Field(5, ge=3, le=5)  # downsamplings: image sides must be multiples of 2**depth
    decoder_channels: tuple[PositiveInt, ...] = (256, 128, 64, 32, 16)  # one per encoder stage
    # null: from scratch (no ImageNet weights offline); imagenet: smp downloads them (full profile, internet)
    encoder_weights: Literal["imagenet"] | None = None

    @model_validator(mode="after")
    def _one_decoder_block_per_stage(self):
        if len(self.decoder_channels) != self.encoder_depth:
            raise ValueError(f"decoder_channels has {len(self.decoder_channels)} entries for encoder_depth "
                             f"{self.encoder_depth}: give one per encoder stage")
        return self


class Lab19Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)  # Adam, every variant alike


class Lab19Variant(Strict):
    loss: Literal["dice", "dice_bce"]  # soft Dice (smp's DiceLoss) alone, or plus per-pixel BCE
    bce_weight: float = Field(1.0, gt=0)  # dice_bce: loss = dice + bce_weight * BCE

    @model_validator(mode="after")
    def _weight_only_with_bce(self):
        if self.loss == "dice" and self.bce_weight != 1.0:
            raise ValueError(f"bce_weight {self.bce_weight}: the dice loss has no BCE term; use loss: dice_bce")
        return self


class Lab19Evaluate(Strict):
    draw_images: int = Field(6, ge=1, le=16)  # test images drawn with truth and every prediction


class Lab19Config(Strict):
    data: Lab19Data
    model: Lab19Model
    train: Lab19Train
    evaluate: Lab19Evaluate = Lab19Evaluate()
    variants: dict[str, Lab19Variant] = Field(min_length=1)


def check_params(params) -> None:
    """Checked against the other sections: lab 19's UNet halves the image side encoder_depth times: the side must divide evenly."""
    d, depth = params.lab19.data, params.lab19.model.encoder_depth
    side = d.canvas.size if d.canvases else getattr(params.data, d.dataset).image_size
    key = "lab19.data.canvas.size" if d.canvases else f"data.{d.dataset}.image_size"
    if side % 2**depth:
        raise ValueError(f"{key} {side}: lab 19's UNet (encoder_depth {depth}) needs a multiple of {2**depth}")
