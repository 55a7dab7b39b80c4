"""Lab 16's parameters (``labs/lab16/params.yaml``, section ``lab16:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from labflow.frame.config import Strict


class Lab16Data(Strict):
    """Lab 16's sentence pairs (data.sentence_pairs: verses offline, English-French online), split and cut."""

    # hash: each pair's split from a fixed hash of its reference; book: whole books per split.
    # Either way a sentence repeated word for word stays in one split (labflow.data.verses.split_pairs).
    split: Literal["hash", "book"] = "hash"
    val_fraction: float = Field(0.05, gt=0, lt=0.5)
    test_fraction: float = Field(0.1, gt=0, lt=0.5)
    # Pairs longer than this many subword tokens on either side are dropped from every split
    # (after splitting, so the splits stay disjoint): short pairs let a CPU learn something.
    max_tokens: int = Field(20, ge=4, le=200)
    vocab_size: int = Field(4000, ge=100, le=100_000)  # BPE tokens per language, learnt on the training split
    # Caps after the length cut (null: all): the first N of each split in a fixed shuffled order.
    train_size: int | None = Field(None, gt=0)
    test_size: int | None = Field(None, gt=0)


class Lab16Train(Strict):
    """Everything both variants share: the network's sizes, the optimizer, the budget."""

    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)  # Adam
    emb: int = Field(128, gt=0)  # embedding size, source and target
    hidden: int = Field(256, gt=0, multiple_of=2)  # decoder state; the encoder's two directions have hidden/2 each
    dropout: float = Field(0.2, ge=0, lt=1)
    clip: float = Field(1.0, ge=0)  # gradient-norm clipping before each step (0: none)
    # Greedy decoding stops at the end mark or after the source length + this many tokens.
    extra_decode_tokens: int = Field(5, ge=0)


class Lab16Variant(Strict):
    attention: bool  # the one difference between the variants


class Lab16Evaluate(Strict):
    heatmaps: int = Field(4, ge=1, le=12)  # test sentences whose attention weights are drawn
    samples: int = Field(8, ge=1, le=50)  # test sentences shown with every system's translation


class Lab16Config(Strict):
    data: Lab16Data
    train: Lab16Train
    evaluate: Lab16Evaluate = Lab16Evaluate()
    variants: dict[str, Lab16Variant] = Field(min_length=1)
