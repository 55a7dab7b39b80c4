"""Callbacks for :func:`labflow.train.fit`: early stopping, crash-safe checkpoints, loss traces."""

from __future__ import annotations

import copy
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labflow.train import distributed


class Callback:
    """Hooks are no-ops; ``state_dict`` lets a checkpoint carry a callback's memory."""

    name = "callback"

    def on_fit_start(self, state) -> None: ...
    def on_batch_end(self, state, loss: torch.Tensor, seconds: float) -> None: ...
    def on_epoch_end(self, state) -> None: ...
    def on_fit_end(self, state) -> None: ...
    def state_dict(self) -> dict:
        return {}
    def load_state_dict(self, state: dict) -> None: ...


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs; optionally restore the best weights."""

    name = "early_stopping"

    def __init__(self, monitor: str = "val_loss", mode: str = "min", patience: int = 5,
                 min_delta: float = 0.0, restore_best: bool = True) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.min_delta, self.restore_best = min_delta, restore_best
        self.best: float | None = None
        self.best_epoch = 0
        self.bad_epochs = 0
        self.best_weights: dict | None = None
        self.stopped_epoch: int | None = None

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, state) -> None:
        row = state.history[-1]
        if self.monitor not in row:
            raise KeyError(f"EarlyStopping monitors '{self.monitor}' but the epoch metrics are {sorted(row)}")
        value = row[self.monitor]
        if self._improved(value):
            self.best, self.best_epoch, self.bad_epochs = value, state.epoch, 0
            if self.restore_best:
                self.best_weights = copy.deepcopy(state.model.state_dict())
        else:
            self.bad_epochs += 1
            if self.bad_epochs >= self.patience:
                state.stop = True
                self.stopped_epoch = state.epoch

    def on_fit_end(self, state) -> None:
        state.extras.update(best_epoch=self.best_epoch, best_value=self.best, stopped_epoch=self.stopped_epoch)
        if self.restore_best and self.best_weights is not None:
            state.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("best", "best_epoch", "bad_epochs", "best_weights", "stopped_epoch")}

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


class BestCheckpoint(Callback):
    """Write the weights to ``path`` each time ``monitor`` improves: the best checkpoint, on disk.

    Unlike ``EarlyStopping(restore_best=True)`` it neither stops nor changes the model, so a
    run that trains every epoch still leaves its best weights behind (to log or deploy).
    The file holds ``{"model", "epoch", "monitor", "value"}``; its best value and epoch are
    part of :class:`Checkpoint`'s state, so a resumed run keeps comparing against them.
    """

    name = "best_checkpoint"

    def __init__(self, path: Path, monitor: str = "val_loss", mode: str = "min", min_delta: float = 0.0) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.path = Path(path)
        self.monitor, self.mode, self.min_delta = monitor, mode, min_delta
        self.best: float | None = None
        self.best_epoch = 0

    def on_epoch_end(self, state) -> None:
        row = state.history[-1]
        if self.monitor not in row:
            raise KeyError(f"BestCheckpoint monitors '{self.monitor}' but the epoch metrics are {sorted(row)}")
        value = row[self.monitor]
        better = self.best is None or (
            value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        )
        if better:
            self.best, self.best_epoch = value, state.epoch
            if not distributed.is_main():  # every rank keeps the score; rank 0 writes the file
                return
            atomic_torch_save({"model": state.model.state_dict(), "epoch": state.epoch,
                               "monitor": self.monitor, "value": value}, self.path)

    def on_fit_end(self, state) -> None:
        state.extras.update(best_checkpoint=str(self.path), best_checkpoint_epoch=self.best_epoch,
                            best_checkpoint_value=self.best)

    def state_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]


class LossTrace(Callback):
    """Record the mean training loss every ``every`` updates, with updates and seconds, for per-update curves."""

    name = "loss_trace"

    def __init__(self, every: int) -> None:
        self.every = max(1, every)
        self.rows: list[dict[str, float]] = []
        self._sum: torch.Tensor | None = None
        self._count = 0

    def on_batch_end(self, state, loss: torch.Tensor, seconds: float) -> None:
        detached = loss.detach()
        self._sum = detached if self._sum is None else self._sum + detached
        self._count += 1
        if self._count == self.every:
            self.rows.append({"update": state.updates, "seconds": seconds, "train_loss": (self._sum / self._count).item()})
            self._sum, self._count = None, 0

    def on_epoch_end(self, state) -> None:
        # Close the window at each epoch end so a resumed run records the same points.
        if self._count:
            self.rows.append({"update": state.updates, "seconds": state.seconds,
                              "train_loss": (self._sum / self._count).item()})
            self._sum, self._count = None, 0

    def on_fit_end(self, state) -> None:
        state.extras["loss_trace"] = self.rows

    def state_dict(self) -> dict:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict) -> None:
        self.rows = list(state["rows"])


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Write to a temporary file in the same folder, then rename: a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Checkpoint(Callback):
    """Save everything needed to resume after every epoch; resume from it at fit start.

    The checkpoint holds the model, the optimizer (every one of an ``Optimizers``),
    batch-order generator, every RNG and the other callbacks' state, so a resumed run ends bit-identical to an uninterrupted one
    on CPU. ``fingerprint`` (a hash of the params and data) must match, so a checkpoint
    left by other settings is ignored instead of silently continued. Under torchrun rank 0
    writes it (with every rank's RNG state) and every rank resumes from it.
    """

    name = "checkpoint"
    runs_last = True

    def __init__(self, path: Path, fingerprint: str, every: int = 1) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.every = max(1, every)

    def on_fit_start(self, state) -> None:
        if not self.path.exists():
            return
        try:
            ckpt = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as err:  # a corrupt checkpoint must not block training
            print(f"[labflow] ignoring unreadable checkpoint {self.path}: {err}")
            return
        if ckpt.get("complete"):
            return  # a finished run's checkpoint: a rerun trains afresh
        if ckpt.get("fingerprint") != self.fingerprint:
            print(f"[labflow] checkpoint {self.path} was made with other params/data; starting fresh")
            return
        state.model.load_state_dict(ckpt["model"])
        state.optimizer.load_state_dict(ckpt["optimizer"])
        state.batches.load_state_dict(ckpt["batches"])
        state.epoch, state.updates, state.seconds = ckpt["epoch"], ckpt["updates"], ckpt["seconds"]
        state.history = list(ckpt["history"])
        state.resumed_from = ckpt["epoch"]
        for cb in state.callbacks:
            if cb is not self and cb.name in ckpt["callbacks"]:
                cb.load_state_dict(ckpt["callbacks"][cb.name])
        per_rank = ckpt.get("rng_per_rank")
        if distributed.active() and per_rank and len(per_rank) == distributed.world_size():
            _set_rng_state(per_rank[distributed.rank()])  # each rank's own dropout/augmentation stream
        else:
            _set_rng_state(ckpt["rng"])
        if distributed.is_main():
            print(f"[labflow] resumed from {self.path} after epoch {state.epoch}")

    def on_epoch_end(self, state) -> None:
        if state.epoch % self.every and state.epoch != state.epochs and not state.stop:
            return
        from labflow import timing

        with timing.not_work():  # crash safety is bookkeeping, not training
            self._save(state)

    def _save(self, state) -> None:
        extra = {}
        if distributed.active():  # rank 0 writes, holding every rank's RNG streams
            per_rank = distributed.gather_to_main(_get_rng_state())
            if not distributed.is_main():
                return
            extra["rng_per_rank"] = per_rank
        atomic_torch_save(
            {
                "fingerprint": self.fingerprint,
                "complete": state.epoch >= state.epochs or state.stop,
                "epoch": state.epoch,
                "updates": state.updates,
                "seconds": state.seconds,
                "history": state.history,
                "model": state.model.state_dict(),
                "optimizer": state.optimizer.state_dict(),
                "batches": state.batches.state_dict(),
                "callbacks": {cb.name: cb.state_dict() for cb in state.callbacks if cb is not self},
                "rng": _get_rng_state(),
                **extra,
            },
            self.path,
        )


def _get_rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
