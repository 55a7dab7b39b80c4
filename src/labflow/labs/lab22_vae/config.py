"""Lab 22's parameters (``labs/lab22/params.yaml``, section ``lab22:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from pydantic import Field, PositiveInt

from labflow.frame.config import SplitConfig, Strict


class Lab22Train(Strict):
    """One MLP encoder/decoder (the course's 784-400-200 widths) for every latent size."""

    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    hidden: tuple[PositiveInt, ...] = Field((400, 200), min_length=1)  # encoder widths; the decoder mirrors them


class Lab22Variant(Strict):
    latent: int = Field(ge=2, le=256)  # latent dimensions; 2 can be drawn as a map as it is


class Lab22Show(Strict):
    """What the figures draw (lab 22's evaluate stage)."""

    traversal_steps: int = Field(15, ge=3, le=30)  # a steps x steps grid of decoded latent points
    # The grid spans the prior's quantiles [q, 1 - q] in each of the two varied dimensions.
    traversal_quantile: float = Field(0.05, gt=0, lt=0.5)
    reconstructions: int = Field(10, ge=1, le=32)  # test digits shown with each variant's reconstruction
    map_points: int = Field(2000, gt=0)  # test digits in the latent scatter (at most the test split)


class Lab22Config(Strict):
    data: SplitConfig
    train: Lab22Train
    show: Lab22Show = Lab22Show()
    variants: dict[str, Lab22Variant] = Field(min_length=1)
