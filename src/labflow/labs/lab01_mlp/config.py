"""Lab 01's parameters (``labs/lab01/params.yaml``, section ``lab01:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from pydantic import Field

from labflow.frame.config import SplitConfig, Strict


class Lab01Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    hidden: tuple[int, ...] = Field(min_length=1)
    dropout: float = Field(ge=0, lt=1)


class Lab01Variant(Strict):
    """Lab 01 trains one model; a variant may override its training knobs."""

    lr: float | None = Field(None, gt=0)
    dropout: float | None = Field(None, ge=0, lt=1)


class Lab01Config(Strict):
    data: SplitConfig
    train: Lab01Train
    variants: dict[str, Lab01Variant] = Field(min_length=1)
