"""Associative recall: a synthetic task whose right attention pattern is known.

Each example is a memory of ``n`` (key, value) pairs (``min_pairs <= n <= max_pairs``;
keys distinct within a memory, letters ``A, B, ...``; values digits ``0, 1, ...``) and
``queries`` distinct keys taken from it; the answer to a query is the value stored under
that key, and the slot that holds it is where a reader should look (``slots``). Guessing
is right with probability ``1 / values`` per query; uniform attention puts ``1 / n`` of its
mass on the right slot.

Everything is drawn from one seeded NumPy generator, so the same seed and sizes give the
same examples on any machine. A memory (its pair sequence) appears in one split only.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np
import torch

FIELDS = ("keys", "values", "lengths", "queries", "targets", "slots")


@dataclass(frozen=True)
class RecallSpec:
    keys: int
    values: int
    min_pairs: int
    max_pairs: int
    queries: int

    def __post_init__(self):
        if not 1 <= self.queries <= self.min_pairs <= self.max_pairs <= self.keys:
            raise ValueError(f"need 1 <= queries <= min_pairs <= max_pairs <= keys, got {self}")
        if self.keys > 26 or not 2 <= self.values <= 10:
            raise ValueError("keys are letters (at most 26) and values digits (2 to 10)")

    @property
    def pad_key(self) -> int:
        return self.keys

    @property
    def pad_value(self) -> int:
        return self.values


def _draw(spec: RecallSpec, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` examples, possibly repeating a memory (the caller drops repeats)."""
    width = spec.max_pairs
    lengths = rng.integers(spec.min_pairs, spec.max_pairs + 1, size=n)
    real = np.arange(width) < lengths[:, None]
    keys = np.argsort(rng.random((n, spec.keys)), axis=1)[:, :width]  # distinct keys per memory
    values = rng.integers(spec.values, size=(n, width))
    keys = np.where(real, keys, spec.pad_key)
    values = np.where(real, values, spec.pad_value)
    # Distinct real slots to ask about: random order of the real slots, the first `queries` of it.
    slots = np.argsort(np.where(real, rng.random((n, width)), np.inf), axis=1)[:, : spec.queries]
    rows = np.arange(n)[:, None]
    return {"keys": keys, "values": values, "lengths": lengths, "queries": keys[rows, slots],
            "targets": values[rows, slots], "slots": slots}


def memory_signature(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """One integer row id per memory: equal exactly when two memories hold the same pairs in the same order."""
    rows = np.ascontiguousarray(np.concatenate([keys, values], axis=1).astype(np.int16))
    return rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()


def generate(spec: RecallSpec, sizes: dict[str, int], seed: int) -> dict[str, dict[str, torch.Tensor]]:
    """``{split: {field: tensor}}`` with ``sizes[split]`` examples each, no memory in two splits
    (nor twice in one). Raises if the task has too few distinct memories for the sizes asked."""
    rng = np.random.default_rng(seed)
    need = sum(sizes.values())
    kept: dict[str, list[np.ndarray]] = {f: [] for f in FIELDS}
    seen: set[bytes] = set()
    total, attempts = 0, 0
    while total < need:
        attempts += 1
        if attempts > 50:
            raise ValueError(f"could not draw {need} distinct memories from {spec}: make the task larger or the splits smaller")
        batch = _draw(spec, max(64, int((need - total) * 1.1)), rng)
        fresh = []
        for i, sig in enumerate(memory_signature(batch["keys"], batch["values"])):
            sig = sig.tobytes()
            if sig not in seen:
                seen.add(sig)
                fresh.append(i)
        fresh = np.asarray(fresh[: need - total], dtype=np.int64)
        for f in FIELDS:
            kept[f].append(batch[f][fresh])
        total += len(fresh)
    allrows = {f: np.concatenate(v) for f, v in kept.items()}
    out, start = {}, 0
    for split, size in sizes.items():
        out[split] = {f: torch.from_numpy(allrows[f][start : start + size].astype(np.int64)) for f in FIELDS}
        start += size
    return out


def key_label(index: int) -> str:
    return string.ascii_uppercase[index]


def value_label(index: int) -> str:
    return str(index)
