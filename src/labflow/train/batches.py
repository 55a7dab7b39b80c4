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
