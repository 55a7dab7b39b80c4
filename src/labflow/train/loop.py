"""The training loop every lab shares: plain PyTorch, callbacks at epoch ends.

The loop knows nothing about MLflow, files or metrics: a lab passes a
``loss_fn(model, batch) -> loss`` and an ``evaluate(model) -> {name: value}``;
checkpoints, early stopping and logging are callbacks. Losses stay on the
device until the epoch ends (no ``.item()`` per step), so the loop costs no
more than a hand-written one (benchmarks/loop_speed.py measures it).

A lab whose step is more than one backward and one optimizer step (a GAN: two
optimizers, alternating updates) passes ``step_fn(model, batch) -> {name: loss}``
instead and makes the updates itself; ``optimizer`` is then an :class:`Optimizers`
holding all of them, so checkpoints save and resume every optimizer's state. The
epochs, callbacks, checkpoints, progress bar and tracking are the same loop's.

Under torchrun (a process group of several ranks) the same ``fit`` trains with
DistributedDataParallel: see :mod:`labflow.train.distributed`. Without one, none of
that code runs and one process trains exactly as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from labflow.train import distributed
from labflow.train.batches import TensorBatches

LossFn = Callable[[nn.Module, tuple[torch.Tensor, ...]], torch.Tensor]
# One training step done by the lab itself (zero_grad, backward and step of each optimizer);
# returns its losses, detached or not, with "train_loss" among them.
StepFn = Callable[[nn.Module, tuple[torch.Tensor, ...]], dict[str, torch.Tensor]]
EvalFn = Callable[[nn.Module], dict[str, float]]
EpochResult = dict[str, float]


class Optimizers:
    """Several named optimizers that checkpoints save and resume as one (a GAN's G and D).

    ``fit`` and :class:`~labflow.train.callbacks.Checkpoint` only call ``state_dict`` and
    ``load_state_dict``; the lab's ``step_fn`` steps each optimizer (``opts["g"].step()``).
    """

    def __init__(self, **optimizers: torch.optim.Optimizer) -> None:
        if not optimizers:
            raise ValueError("Optimizers needs at least one named optimizer")
        self.named = optimizers

    def __getitem__(self, name: str) -> torch.optim.Optimizer:
        return self.named[name]

    def __iter__(self):
        return iter(self.named.values())

    def state_dict(self) -> dict:
        return {name: opt.state_dict() for name, opt in self.named.items()}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != set(self.named):
            raise ValueError(f"checkpoint holds optimizers {sorted(state)}, this run has {sorted(self.named)}")
        for name, opt in self.named.items():
            opt.load_state_dict(state[name])


@dataclass
class FitState:
    """What callbacks may read (and, for ``stop``/``epoch``, change) during a fit."""

    model: nn.Module
    optimizer: torch.optim.Optimizer | Optimizers
    batches: TensorBatches
    epochs: int
    epoch: int = 0  # epochs completed
    updates: int = 0  # optimizer steps taken
    seconds: float = 0.0  # training time (evaluation excluded)
    history: list[EpochResult] = field(default_factory=list)
    stop: bool = False
    resumed_from: int | None = None
    callbacks: Sequence[Any] = ()
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class FitResult:
    history: list[EpochResult]
    epochs_run: int
    updates: int
    train_seconds: float
    stopped_early: bool
    resumed_from: int | None
    extras: dict[str, Any]


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | Optimizers,
    batches: TensorBatches,
    loss_fn: LossFn | None = None,
    *,
    step_fn: StepFn | None = None,
    epochs: int,
    evaluate: EvalFn | None = None,
    callbacks: Sequence[Any] = (),
    progress: bool = True,
    desc: str = "train",
) -> FitResult:
    """Train ``model`` for up to ``epochs`` epochs and return the per-epoch history.

    Give ``loss_fn`` (the loop does zero_grad, backward, step) or ``step_fn`` (the lab
    does them; each returned loss's epoch mean becomes a column, ``train_loss`` first).
    """
    if (loss_fn is None) == (step_fn is None):
        raise ValueError("fit needs exactly one of loss_fn (one optimizer step per batch) or step_fn (the lab's own step)")
    if loss_fn is not None and isinstance(optimizer, Optimizers):
        raise ValueError("several optimizers need a step_fn that steps each of them; loss_fn steps one optimizer")
    ddp = distributed.active()
    if ddp and step_fn is not None:
        raise distributed.DistributedError(
            "fit(step_fn=...) makes its own optimizer steps, which DistributedDataParallel does not cover: "
            "train this lab in one process (distributed.processes: 1, no torchrun)")
    import_optimizer_machinery()  # before any clock starts
    # Checkpoints run last so they save what the other callbacks decided this epoch.
    callbacks = sorted(callbacks, key=lambda cb: getattr(cb, "runs_last", False))
    state = FitState(model, optimizer, batches, epochs, callbacks=callbacks)
    if ddp:
        distributed.rank_rng_offset(distributed.rank())  # before a resume, which restores each rank's stream
        progress = progress and distributed.is_main()
    for cb in callbacks:
        cb.on_fit_start(state)
    if ddp:
        return _fit_distributed(state, loss_fn, evaluate, progress, desc)
    batch_hooks = [cb for cb in callbacks if type(cb).on_batch_end is not _base_on_batch_end()]
    per_epoch = len(batches)
    bar = tqdm(
        total=epochs * per_epoch,
        initial=state.epoch * per_epoch,
        desc=desc,
        unit="step",
        disable=not progress,
        mininterval=0.5,
        dynamic_ncols=True,
    )
    bar_every = max(1, per_epoch // 100)
    try:
        while state.epoch < epochs and not state.stop:
            model.train()
            started = time.perf_counter()
            if step_fn is not None:
                losses, steps = _epoch_of_own_steps(state, step_fn, batch_hooks, bar, bar_every, started)
            else:
                loss_sum = torch.zeros((), device=_device_of(model))
                steps = 0
                for batch in batches:
                    optimizer.zero_grad(set_to_none=True)
                    loss = loss_fn(model, batch)
                    loss.backward()
                    optimizer.step()
                    loss_sum += loss.detach()
                    steps += 1
                    state.updates += 1
                    if batch_hooks:
                        elapsed = state.seconds + time.perf_counter() - started
                        for cb in batch_hooks:
                            cb.on_batch_end(state, loss, elapsed)
                    if steps % bar_every == 0:
                        bar.update(bar_every)
                losses = {"train_loss": loss_sum}
            bar.update(steps % bar_every)
            state.seconds += time.perf_counter() - started
            state.epoch += 1
            row: EpochResult = {"epoch": state.epoch}
            row.update({name: (total / max(steps, 1)).item() for name, total in losses.items()})
            row.update(updates=state.updates, seconds=state.seconds)
            if evaluate is not None:
                model.eval()
                with torch.no_grad():
                    row.update(evaluate(model))
            state.history.append(row)
            bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k not in ("epoch", "updates", "seconds")})
            for cb in callbacks:
                cb.on_epoch_end(state)
        for cb in callbacks:
            cb.on_fit_end(state)
    finally:
        bar.close()
    return FitResult(
        history=state.history,
        epochs_run=state.epoch,
        updates=state.updates,
        train_seconds=state.seconds,
        stopped_early=state.stop,
        resumed_from=state.resumed_from,
        extras=state.extras,
    )


def _fit_distributed(state: FitState, loss_fn: LossFn, evaluate: EvalFn | None, progress: bool,
                     desc: str) -> FitResult:
    """``fit``'s epochs on one rank of a process group (after ``on_fit_start``, so after any resume).

    Every rank sees the same global batches and trains the DDP-wrapped model on its slice;
    rank 0 evaluates and its epoch row (losses averaged over the ranks) becomes every
    rank's, so callbacks decide the same everywhere; ``stop`` is rank 0's too.
    """
    model, optimizer, callbacks = state.model, state.optimizer, state.callbacks
    train_model = distributed.wrap_model(model)
    rank, world = distributed.rank(), distributed.world_size()
    batch_hooks = [cb for cb in callbacks if type(cb).on_batch_end is not _base_on_batch_end()]
    per_epoch = len(state.batches)
    bar = tqdm(total=state.epochs * per_epoch, initial=state.epoch * per_epoch, desc=f"{desc} x{world}", unit="step",
               disable=not progress, mininterval=0.5, dynamic_ncols=True)
    try:
        while state.epoch < state.epochs and not state.stop:
            model.train()
            started = time.perf_counter()
            loss_sum = torch.zeros((), device=_device_of(model))
            steps = 0
            for part, weight in distributed.shards(state.batches, rank, world):
                optimizer.zero_grad(set_to_none=True)
                # weight: this rank's share of the global batch, so the ranks' mean gradient is the global one
                loss = loss_fn(train_model, part) * weight
                loss.backward()
                optimizer.step()
                loss_sum += loss.detach()
                steps += 1
                state.updates += 1
                if batch_hooks:
                    global_loss = distributed.mean_over_ranks(loss)
                    elapsed = state.seconds + time.perf_counter() - started
                    for cb in batch_hooks:
                        cb.on_batch_end(state, global_loss, elapsed)
                bar.update(1)
            train_loss = distributed.mean_over_ranks(loss_sum) / max(steps, 1)
            state.seconds += time.perf_counter() - started
            state.epoch += 1
            row: EpochResult | None = None
            if rank == 0:
                row = {"epoch": state.epoch, "train_loss": train_loss.item(), "updates": state.updates,
                       "seconds": state.seconds}
                if evaluate is not None:
                    model.eval()
                    with torch.no_grad():
                        row.update(evaluate(model))
            row = distributed.from_main(row)
            state.seconds = row["seconds"]
            state.history.append(row)
            bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k not in ("epoch", "updates", "seconds")})
            _epoch_end_callbacks(state)
        for cb in callbacks:
            cb.on_fit_end(state)
    finally:
        bar.close()
    return FitResult(history=state.history, epochs_run=state.epoch, updates=state.updates,
                     train_seconds=state.seconds, stopped_early=state.stop, resumed_from=state.resumed_from,
                     extras=state.extras)


def _epoch_end_callbacks(state: FitState) -> None:
    """The callbacks' epoch end on every rank; rank 0's ``stop`` is made everyone's before the
    checkpoint (which runs last) saves it, so all ranks stop, save and resume together."""
    synced = False
    for cb in state.callbacks:
        if getattr(cb, "runs_last", False) and not synced:
            state.stop, synced = distributed.from_main(state.stop), True
        cb.on_epoch_end(state)
    if not synced:
        state.stop = distributed.from_main(state.stop)


def _epoch_of_own_steps(state: FitState, step_fn: StepFn, batch_hooks, bar, bar_every: int,
                        started: float) -> tuple[dict[str, torch.Tensor], int]:
    """One epoch of the lab's own steps: the summed losses by name (train_loss first) and the step count."""
    sums: dict[str, torch.Tensor] = {}
    steps = 0
    for batch in state.batches:
        losses = step_fn(state.model, batch)
        if "train_loss" not in losses:
            raise KeyError(f"step_fn must return a 'train_loss' (the loss the loop reports and logs); got {sorted(losses)}")
        if not sums:
            sums = {"train_loss": losses["train_loss"].detach().clone()}
            sums.update((k, v.detach().clone()) for k, v in losses.items() if k != "train_loss")
        else:
            for name, value in losses.items():
                sums[name] += value.detach()
        steps += 1
        state.updates += 1
        if batch_hooks:
            elapsed = state.seconds + time.perf_counter() - started
            for cb in batch_hooks:
                cb.on_batch_end(state, losses["train_loss"], elapsed)
        if steps % bar_every == 0:
            bar.update(bar_every)
    return sums, steps


def import_optimizer_machinery() -> None:
    """Import what the first ``optimizer.step()`` would, so no timed epoch pays for it.

    torch 2.14's optimizers import ``torch._dynamo`` on their first step (1-4 s on a laptop
    CPU); inside the loop that time would land in the first epoch's seconds and make a
    variant trained in a fresh process look slower than one trained in the warm stage runner.
    """
    import torch._dynamo  # noqa: F401


def _device_of(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _base_on_batch_end():
    from labflow.train.callbacks import Callback

    return Callback.on_batch_end
