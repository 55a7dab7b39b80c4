"""Mini-batches sliced from tensors already in memory.

The course fed data through torchvision-style datasets that convert and normalise
every sample on access (PIL image -> ToTensor -> Normalize) and collate batches in
Python. Normalising once and slicing a permuted index into whole tensors skips all
of that (about 3x faster at batch 64 here; see benchmarks/README.md), and is as fast
as a bare loop over tensors.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class TensorBatches:
    """Iterate ``(x[idx], y[idx], ...)`` batches; shuffling uses its own seeded generator.

    ``batch_size`` 0 (or >= len) yields the whole set as one batch (full-batch gradient
    descent). The generator's state is part of :meth:`state_dict`, so a resumed run
    draws the same permutations as an uninterrupted one.
    """

    def __init__(
        self,
        *tensors: torch.Tensor,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        if not tensors:
            raise ValueError("TensorBatches needs at least one tensor")
        n = len(tensors[0])
        if any(len(t) != n for t in tensors):
            raise ValueError(f"all tensors must have the same length, got {[len(t) for t in tensors]}")
        if batch_size < 0:
            raise ValueError(f"batch_size must be >= 0, got {batch_size}")
        self.tensors = tuple(t.to(device) for t in tensors) if device is not None else tensors
        self.n = n
        self.batch_size = n if batch_size == 0 or batch_size >= n else batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full if (self.drop_last or rest == 0) else full + 1

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        if self.batch_size == self.n and not self.shuffle:
            yield self.tensors
            return
        order = torch.randperm(self.n, generator=self.generator) if self.shuffle else None
        if order is not None and self.batch_size == self.n:
            # Full batch: the order does not change the gradient; skip the copy.
            yield self.tensors
            return
        if order is not None:
            order = order.to(self.tensors[0].device)
        stop = self.n - self.batch_size + 1 if self.drop_last else self.n
        for start in range(0, stop, self.batch_size):
            if order is None:
                yield tuple(t[start : start + self.batch_size] for t in self.tensors)
            else:
                idx = order[start : start + self.batch_size]
                yield tuple(t.index_select(0, idx) for t in self.tensors)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def _to_device(tensors: tuple[torch.Tensor, ...], device) -> tuple[torch.Tensor, ...]:
    if not tensors:
        raise ValueError("a batch source needs at least one tensor")
    n = len(tensors[0])
    if n == 0 or any(len(t) != n for t in tensors):
        raise ValueError(f"all tensors must have the same non-zero length, got {[len(t) for t in tensors]}")
    return tuple(t.to(device) for t in tensors) if device is not None else tensors


class WeightedBatches:
    """Batches drawn with replacement, row ``i`` with probability ``weights[i] / sum(weights)``.

    The in-memory counterpart of ``DataLoader(sampler=WeightedRandomSampler(...))``:
    each epoch draws ``num_samples`` rows (default: as many as there are rows, so an
    epoch costs as many updates as one pass of :class:`TensorBatches`) with
    ``torch.multinomial`` and its own seeded generator, whose state is part of
    :meth:`state_dict` so a resumed run draws what an uninterrupted one would.
    """

    def __init__(
        self,
        *tensors: torch.Tensor,
        weights: torch.Tensor,
        batch_size: int,
        num_samples: int | None = None,
        seed: int = 0,
        device: torch.device | str | None = None,
    ) -> None:
        self.tensors = _to_device(tensors, device)
        weights = torch.as_tensor(weights, dtype=torch.float64).flatten()
        if len(weights) != len(tensors[0]):
            raise ValueError(f"{len(weights)} weights for {len(tensors[0])} rows")
        if (weights < 0).any() or not torch.isfinite(weights).all() or weights.sum() <= 0:
            raise ValueError("weights must be finite, non-negative and not all zero")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        self.weights = weights
        self.num_samples = len(weights) if num_samples is None else num_samples
        if self.num_samples <= 0:
            raise ValueError(f"num_samples must be > 0, got {self.num_samples}")
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-self.num_samples // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        idx = torch.multinomial(self.weights, self.num_samples, replacement=True, generator=self.generator)
        idx = idx.to(self.tensors[0].device)
        for start in range(0, self.num_samples, self.batch_size):
            part = idx[start : start + self.batch_size]
            yield tuple(t.index_select(0, part) for t in self.tensors)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class StepBatches:
    """A fixed number of batches per epoch from shuffled passes over the rows, continued across epochs.

    For comparing training sets of different sizes at the same budget: every epoch
    makes ``steps`` updates of ``batch_size`` rows whatever the number of rows, by
    walking through one shuffled pass after another (a batch may straddle two
    passes). The generator, the current pass and the position in it are all in
    :meth:`state_dict`, so a resumed run continues exactly where it stopped.
    """

    def __init__(
        self,
        *tensors: torch.Tensor,
        batch_size: int,
        steps: int,
        seed: int = 0,
        device: torch.device | str | None = None,
    ) -> None:
        if batch_size <= 0 or steps <= 0:
            raise ValueError(f"batch_size and steps must be > 0, got {batch_size} and {steps}")
        self.tensors = _to_device(tensors, device)
        self.n = len(self.tensors[0])
        self.batch_size, self.steps = batch_size, steps
        self.generator = torch.Generator().manual_seed(seed)
        self.order: torch.Tensor | None = None
        self.pos = 0

    def __len__(self) -> int:
        return self.steps

    def _next_indices(self) -> torch.Tensor:
        parts, need = [], self.batch_size
        while need:
            if self.order is None or self.pos == self.n:
                self.order, self.pos = torch.randperm(self.n, generator=self.generator), 0
            take = min(need, self.n - self.pos)
            parts.append(self.order[self.pos : self.pos + take])
            self.pos += take
            need -= take
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        device = self.tensors[0].device
        for _ in range(self.steps):
            idx = self._next_indices().to(device)
            yield tuple(t.index_select(0, idx) for t in self.tensors)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "order": self.order, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.order, self.pos = state["order"], state["pos"]
