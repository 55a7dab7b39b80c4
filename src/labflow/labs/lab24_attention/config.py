"""Lab 24's parameters (``labs/lab24/params.yaml``, section ``lab24:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from labflow.frame.config import Strict


class Lab24Data(Strict):
    """Associative recall (src/labflow/prep/recall.py): synthetic, drawn from ``seed``; nothing to download."""

    keys: int = Field(20, ge=2, le=26)  # distinct keys (letters A..): a memory holds each at most once
    values: int = Field(10, ge=2, le=10)  # values (digits 0..): guessing is right 1 / values of the time
    min_pairs: int = Field(4, ge=1)  # (key, value) pairs per memory, drawn uniformly in [min_pairs, max_pairs]
    max_pairs: int = Field(12, ge=1)
    queries: int = Field(4, ge=1)  # distinct keys of the memory asked about per example
    train_size: int = Field(gt=0)  # examples per split; no memory is in two splits
    val_size: int = Field(gt=0)
    test_size: int = Field(gt=0)

    @model_validator(mode="after")
    def _task_is_possible(self):
        if not self.queries <= self.min_pairs <= self.max_pairs <= self.keys:
            raise ValueError(f"need queries ({self.queries}) <= min_pairs ({self.min_pairs}) <= max_pairs "
                             f"({self.max_pairs}) <= keys ({self.keys})")
        return self


class Lab24Train(Strict):
    """Shared by both readers: same embedding size, head, optimizer (Adam), batches and epochs."""

    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    embed_dim: int = Field(gt=0)  # key/value embeddings, and the attention's query/key/value size
    hidden: int = Field(gt=0)  # the classifier head's hidden layer (both readers)
    rnn_hidden: int = Field(gt=0)  # the RNN summary's size (rnn reader only)


class Lab24Variant(Strict):
    reader: Literal["attention", "rnn"]
    cell: Literal["gru", "lstm"] = "gru"  # rnn reader only

    @model_validator(mode="after")
    def _cell_needs_rnn(self):
        if self.reader == "attention" and self.cell != "gru":
            raise ValueError(f"cell {self.cell}: only the rnn reader has a recurrent cell")
        return self


class Lab24Evaluate(Strict):
    heatmaps: int = Field(4, ge=1, le=12)  # held-out examples whose attention is drawn


class Lab24Config(Strict):
    data: Lab24Data
    train: Lab24Train
    evaluate: Lab24Evaluate = Lab24Evaluate()
    variants: dict[str, Lab24Variant] = Field(min_length=1)
