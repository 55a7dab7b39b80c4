"""Lab 03's parameters (``labs/lab03/params.yaml``, section ``lab03:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from pydantic import Field

from labflow.frame.config import SplitConfig, Strict


class Lab03Train(Strict):
    epochs: int = Field(gt=0)
    hidden: tuple[int, ...] = Field(min_length=1)
    # How many loss points to record per epoch for the per-update curves.
    points_per_epoch: int = Field(20, gt=0)


class Lab03Variant(Strict):
    # 0 means the whole training set in one batch (full-batch gradient descent).
    batch_size: int = Field(ge=0)
    lr: float = Field(gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    # CPU threads for this variant (None: the global `threads`). At batch size 1 each op is
    # tiny: one thread is ~10% slower than two on an idle 2-core machine but several times
    # faster when another process holds a core (thread-pool hand-offs then stall).
    threads: int | None = Field(None, gt=0)


class Lab03Config(Strict):
    data: SplitConfig
    train: Lab03Train
    variants: dict[str, Lab03Variant] = Field(min_length=1)
