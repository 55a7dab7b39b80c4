"""Lab 15's parameters (``labs/lab15/params.yaml``, section ``lab15:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from labflow.frame.config import Strict


class ReviewsData(Strict):
    """Lab 15's texts, split (by movie, see labflow.prep.reviews) and word tokeniser; lab 17 copies them."""

    dataset: Literal["rotten_tomatoes", "imdb"]
    subset: int | None = Field(None, gt=0)  # keep this many texts (seeded) before splitting; null: all
    val_fraction: float = Field(0.1, gt=0, lt=1)
    test_fraction: float = Field(0.15, gt=0, lt=1)
    vocab_size: int = Field(20000, ge=10)  # word vocabulary incl. [PAD] and [UNK], fitted on the training split
    min_frequency: int = Field(2, ge=1)  # rarer training words become [UNK]
    max_tokens: int = Field(64, ge=2)  # longer texts are cut


class Lab15Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    embedding_dim: int = Field(100, gt=0)
    hidden: int = Field(128, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)  # on the final hidden state, before the classifier
    # The weights of the epoch with the best validation accuracy are kept (the same rule for every cell).
    keep_best: bool = True


class Lab15Variant(Strict):
    cell: Literal["lstm", "gru"]


class Lab15Config(Strict):
    data: ReviewsData
    train: Lab15Train
    variants: dict[str, Lab15Variant] = Field(min_length=1)
