"""Image-classification data shared by several labs: subset, split, normalise, batch."""

from __future__ import annotations

import numpy as np
import torch

from labflow.frame import paths
from labflow.frame.config import SplitConfig
from labflow.prep.tensors import save_processed


def stratified_take(y: np.ndarray, n: int | None, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` samples with the class proportions of ``y`` (all, shuffled, when n is None)."""
    order = rng.permutation(len(y))
    if n is None or n >= len(y):
        return order
    picked = []
    for cls in np.unique(y):
        members = order[y[order] == cls]
        picked.append(members[: max(1, round(n * len(members) / len(y)))])
    return rng.permutation(np.concatenate(picked))[:n]


def prepare_image_splits(lab_id: str, dataset: str, split: SplitConfig, seed: int,
                         stats: tuple[list[float], list[float]] | None = None,
                         classes: list[int] | None = None) -> dict:
    """Subset and split a raw image data set, standardise with train statistics, save tensors.

    Train/val come from the data set's training part (stratified), test from its test part,
    so every lab that uses a data set evaluates on the same untouched test images.
    ``stats`` (per-channel mean, std of pixels in 0-1) replaces the train statistics, for a
    pretrained net that expects its own input normalisation (ImageNet's). ``classes`` keeps only
    those classes of the data set, relabelled 0..k-1 in that order (lab 13's target task).
    """
    from labflow.data import load_images

    data = select_classes(load_images(paths.raw_dir(dataset)), classes)
    rng = np.random.default_rng(seed)
    test_idx = stratified_take(data.y_test, split.test_size, rng)
    pool = stratified_take(data.y_train, split.train_size, rng)
    n_val = max(1, int(round(len(pool) * split.val_fraction)))
    val_idx = stratified_take(data.y_train[pool], n_val, rng)
    val_mask = np.zeros(len(pool), bool)
    val_mask[val_idx] = True
    train_idx, val_idx = pool[~val_mask], pool[val_mask]

    def to_tensor(x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(x)).float().div_(255.0)
        return t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)  # N,C,H,W

    x_train = to_tensor(data.x_train[train_idx])
    if stats is None:
        mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
        std = x_train.std(dim=(0, 2, 3), keepdim=True)
    else:
        mean, std = (torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1) for v in stats)

    def norm(x):
        return ((x - mean) / std).contiguous()

    tensors = {
        "x_train": norm(x_train),
        "y_train": torch.from_numpy(data.y_train[train_idx]).long(),
        "x_val": norm(to_tensor(data.x_train[val_idx])),
        "y_val": torch.from_numpy(data.y_train[val_idx]).long(),
        "x_test": norm(to_tensor(data.x_test[test_idx])),
        "y_test": torch.from_numpy(data.y_test[test_idx]).long(),
    }
    meta = {
        "dataset": dataset,
        "classes": list(data.classes),
        "mean": mean.flatten().tolist(),
        "std": std.flatten().tolist(),
        "sizes": {k[2:]: len(v) for k, v in tensors.items() if k.startswith("y_")},
    }
    save_processed(paths.processed_dir(lab_id), tensors, meta)
    return meta


def select_classes(data, classes: list[int] | None):
    """The data set with only ``classes`` (labels renumbered 0..k-1 in the order given); as is for None."""
    if classes is None:
        return data
    import dataclasses

    known = len(data.classes)
    bad = [c for c in classes if not 0 <= c < known]
    if bad:
        raise ValueError(f"classes {bad} are not classes of this data set (0-{known - 1})")
    relabel = np.full(known, -1)
    relabel[list(classes)] = np.arange(len(classes))
    keep_train, keep_test = np.isin(data.y_train, classes), np.isin(data.y_test, classes)
    return dataclasses.replace(
        data, x_train=data.x_train[keep_train], y_train=relabel[data.y_train[keep_train]],
        x_test=data.x_test[keep_test], y_test=relabel[data.y_test[keep_test]],
        classes=[data.classes[c] for c in classes])


def denormalise(x: torch.Tensor, meta: dict) -> torch.Tensor:
    mean = torch.tensor(meta["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(meta["std"]).view(1, -1, 1, 1)
    return x * std + mean
