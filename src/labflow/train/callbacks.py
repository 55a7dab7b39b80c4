"""Callbacks for :func:`labflow.train.fit`: early stopping, crash-safe checkpoints, loss traces."""

from __future__ import annotations

import copy
import pickle
import random
import re
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from labflow.frame.atomic import replacing
from labflow.data.download import DataError
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
    """``torch.save`` that a crash never leaves half-written (see :mod:`labflow.frame.atomic`)."""
    with replacing(path, "wb") as fh:
        torch.save(obj, fh)


class UnsafeFileError(DataError):
    """A model or checkpoint file holds more than tensors and plain values: refused, never unpickled.
    ``what`` says what the file asked for."""

    what = "it needs a full unpickle"


def load_weights(path: Path, map_location: Any = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True``: model files and checkpoints come through the DVC
    remote from teammates, and a full unpickle runs whatever code the file names.

    Raises :class:`UnsafeFileError` (one line: the file, what it asked for, the fix) for a file
    that needs more than tensors and plain Python values; nothing in it runs.
    """
    try:
        with warnings.catch_warnings():  # torch warns about the pickle protocol of a foreign file
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        what = _refused_what(err)
        refused = UnsafeFileError(
            f"{path} is not a plain weights file ({what}); labflow loads only tensors and plain values and "
            "ran nothing from it: delete it and rerun the stage that writes it, or pull a copy you trust")
        refused.what = what
        raise refused from None


def _refused_what(err: Exception) -> str:
    """The part of torch's long weights-only refusal that says what the file asked for."""
    text = str(err)
    found = re.search(r"GLOBAL (\S+)", text)
    if found:
        return f"it asks for {found.group(1)}"
    found = re.search(r"Unsupported operand (\d+)", text)
    if found:
        return f"it holds pickle opcode {found.group(1)}, which weights-only loading refuses"
    return text.strip().splitlines()[0][:200] if text.strip() else type(err).__name__


def plain(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and numpy arrays as tensors, so that
    :func:`load_weights` reads it back (``weights_only=True`` refuses numpy objects).

    A container that needs no change is returned as it is (a state dict keeps its ``_metadata``).
    """
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping) and not isinstance(value, torch.Tensor):
        items = {k: plain(v) for k, v in value.items()}
        if isinstance(value, (dict, OrderedDict)) and all(items[k] is v for k, v in value.items()):
            return value
        return OrderedDict(items) if isinstance(value, OrderedDict) else items
    if isinstance(value, (list, tuple)):
        items = [plain(v) for v in value]
        if all(a is b for a, b in zip(items, value)):
            return value
        return items if isinstance(value, list) else tuple(items)
    return value


class Checkpoint(Callback):
    """Save everything needed to resume after every epoch; resume from it at fit start.

    The checkpoint holds the model, the optimizer (every one of an ``Optimizers``),
    batch-order generator, every RNG and the other callbacks' state, so a resumed run ends bit-identical to an uninterrupted one
    on CPU. ``fingerprint`` (a hash of the params, data and code) must match, so a checkpoint
    left by other settings is ignored instead of silently continued; one that does not fit
    the model (other keys or shapes) or that holds more than tensors and plain values is
    ignored too, with one line saying why. Under torchrun rank 0 writes it (with every
    rank's RNG state) and every rank resumes from it.
    """

    name = "checkpoint"
    runs_last = True

    def __init__(self, path: Path, fingerprint: str, every: int = 1) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.every = max(1, every)

    def resume_state(self, model: torch.nn.Module, optimizer) -> tuple[dict | None, str | None]:
        """(the checkpoint to resume from, None), or (None, why not: a line to print, or None
        when there is nothing to say: no file, or a finished run's file)."""
        if not self.path.exists():
            return None, None
        try:
            ckpt = load_weights(self.path)
        except UnsafeFileError as err:
            return None, (f"[labflow] ignoring checkpoint {self.path}: not a plain weights file ({err.what}), "
                          "so nothing in it ran; starting fresh")
        except Exception as err:  # a corrupt checkpoint must not block training
            return None, f"[labflow] ignoring unreadable checkpoint {self.path}: {_first_line(err)}"
        if not isinstance(ckpt, dict):
            return None, f"[labflow] ignoring {self.path}: not a labflow checkpoint; starting fresh"
        if ckpt.get("complete"):
            return None, None  # a finished run's checkpoint: a rerun trains afresh
        if ckpt.get("fingerprint") != self.fingerprint:
            return None, f"[labflow] checkpoint {self.path} was made with other params/data/code; starting fresh"
        misfit = _state_misfit(model.state_dict(), ckpt.get("model")) or _optimizer_misfit(
            optimizer.state_dict(), ckpt.get("optimizer"))
        if misfit:
            return None, f"[labflow] checkpoint {self.path} does not fit the model ({misfit}); starting fresh"
        return ckpt, None

    def resumable(self, model: torch.nn.Module, optimizer) -> bool:
        """Whether :meth:`on_fit_start` will resume (so the caller can resume the run's MLflow run too).

        The decision is kept for :meth:`on_fit_start`, which then does not read the file again."""
        self._decided = self.resume_state(model, optimizer)
        return self._decided[0] is not None

    def on_fit_start(self, state) -> None:
        decided = self.__dict__.pop("_decided", None)
        ckpt, why_not = decided if decided is not None else self.resume_state(state.model, state.optimizer)
        if ckpt is None:
            if why_not and distributed.is_main():
                print(why_not)
            return
        before = _snapshot(state, self)
        try:
            self._load(state, ckpt)
        except Exception as err:  # passed the checks above, yet does not load: train afresh
            _restore(state, self, before)
            if distributed.is_main():
                print(f"[labflow] checkpoint {self.path} does not fit the model ({_first_line(err)}); starting fresh")
            return
        state.epoch, state.updates, state.seconds = ckpt["epoch"], ckpt["updates"], ckpt["seconds"]
        state.history = list(ckpt["history"])
        state.resumed_from = ckpt["epoch"]
        if distributed.is_main():
            print(f"[labflow] resumed from {self.path} after epoch {state.epoch}")

    def _load(self, state, ckpt: dict) -> None:
        state.model.load_state_dict(ckpt["model"])
        state.optimizer.load_state_dict(ckpt["optimizer"])
        state.batches.load_state_dict(ckpt["batches"])
        for cb in state.callbacks:
            if cb is not self and cb.name in ckpt["callbacks"]:
                cb.load_state_dict(ckpt["callbacks"][cb.name])
        per_rank = ckpt.get("rng_per_rank")
        if distributed.active() and per_rank and len(per_rank) == distributed.world_size():
            _set_rng_state(per_rank[distributed.rank()])  # each rank's own dropout/augmentation stream
        else:
            _set_rng_state(ckpt["rng"])

    def on_epoch_end(self, state) -> None:
        if state.epoch % self.every and state.epoch != state.epochs and not state.stop:
            return
        from labflow.frame import timing
        with timing.not_work():  # crash safety is bookkeeping, not training
            self._save(state)

    def _save(self, state) -> None:
        extra = {}
        if distributed.active():  # rank 0 writes, holding every rank's RNG streams
            per_rank = distributed.gather_to_main(_get_rng_state())
            if not distributed.is_main():
                return
            extra["rng_per_rank"] = per_rank
        atomic_torch_save(plain(
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
            }),
            self.path,
        )


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


def _state_misfit(ours: Mapping, theirs: Any) -> str | None:
    """Why a saved model state dict does not load into a model with state dict ``ours`` (keys, shapes)."""
    if not isinstance(theirs, Mapping):
        return "it holds no model weights"
    missing, unexpected = [k for k in ours if k not in theirs], [k for k in theirs if k not in ours]
    if missing or unexpected:
        return "; ".join(part for part in (
            f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}" if missing else "",
            f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}" if unexpected else "",
        ) if part)
    for key, value in ours.items():
        saved = theirs[key]
        if isinstance(value, torch.Tensor) and isinstance(saved, torch.Tensor) and saved.shape != value.shape:
            return f"{key} is {tuple(saved.shape)} there, {tuple(value.shape)} here"
    return None


def _optimizer_misfit(ours: Mapping, theirs: Any) -> str | None:
    """What ``Optimizer.load_state_dict`` would refuse: other optimizers, groups or group sizes."""
    if not isinstance(theirs, Mapping):
        return "it holds no optimizer state"
    if "param_groups" not in ours:  # an Optimizers: name -> optimizer state dict
        if set(theirs) != set(ours):
            return f"optimizers {sorted(theirs)} there, {sorted(ours)} here"
        return next((m for m in (_optimizer_misfit(ours[k], theirs[k]) for k in ours) if m), None)
    groups = theirs.get("param_groups")
    if not isinstance(groups, list):
        return "its optimizer state has no parameter groups"
    sizes = [len(g["params"]) for g in ours["param_groups"]]
    saved = [len(g.get("params", ())) for g in groups]
    return None if saved == sizes else f"optimizer parameter groups of {saved} parameters there, {sizes} here"


def _snapshot(state, checkpoint: Checkpoint) -> dict:
    """What resuming changes, copied, so a resume that fails half-way can be undone."""
    return copy.deepcopy({
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "batches": state.batches.state_dict(),
        "callbacks": {cb.name: cb.state_dict() for cb in state.callbacks if cb is not checkpoint},
        "rng": _get_rng_state(),
    })


def _restore(state, checkpoint: Checkpoint, before: dict) -> None:
    state.model.load_state_dict(before["model"])
    state.optimizer.load_state_dict(before["optimizer"])
    state.batches.load_state_dict(before["batches"])
    for cb in state.callbacks:
        if cb is not checkpoint:
            cb.load_state_dict(before["callbacks"][cb.name])
    _set_rng_state(before["rng"])


def _get_rng_state() -> dict:
    """Every RNG's state as tensors and plain values (weights-only loadable, unlike numpy's tuple)."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)},
        "python": [version, list(internal), gauss_next],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
