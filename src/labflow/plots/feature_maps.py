"""What a CNN looks at: its first-layer filters and the feature maps it computes.

Kept apart from ``figures`` so the CNN labs (09 basics, 11 filters and feature maps) share
one way of drawing them. Filters are drawn red (+) / blue (-) on a scale centred on 0,
each filter on its own scale (their shapes matter, not their sizes); feature maps are
drawn on one scale per layer, so a weak map looks weak.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _filter_panel(fig, spec, filters: np.ndarray, title: str, cols: int, labels: Sequence[str]) -> None:
    rows = int(np.ceil(len(filters) / cols))
    grid = spec.subgridspec(rows + 1, cols, height_ratios=[0.35] + [1] * rows)
    head = fig.add_subplot(grid[0, :])
    head.axis("off")
    head.text(0.5, 0.0, title, ha="center", va="bottom", fontsize=10)
    for k in range(rows * cols):
        ax = fig.add_subplot(grid[1 + k // cols, k % cols])
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= len(filters):
            ax.axis("off")
            continue
        lim = float(np.abs(filters[k]).max()) or 1.0
        ax.imshow(filters[k], cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(labels[k], fontsize=6, pad=1)


def filters_before_after(before: np.ndarray, after: np.ndarray, *, title: str, cols: int = 4):
    """Two grids of (n, k, k) kernels side by side: at initialisation and after training.

    Each trained filter is labelled with how far it moved (``relative_change``): with few
    updates the trained filters still resemble their random start, and the label says so.
    """
    before, after = np.asarray(before), np.asarray(after)
    if before.shape != after.shape or before.ndim != 3:
        raise ValueError(f"expected two (n, k, k) arrays of one shape, got {before.shape} and {after.shape}")
    rows = int(np.ceil(len(before) / cols))
    change = relative_change(before, after)
    fig = plt.figure(figsize=(2 * 1.05 * cols + 0.6, 1.1 * rows + 0.9))
    outer = fig.add_gridspec(1, 2, wspace=0.15)
    _filter_panel(fig, outer[0], before, "before training (initial weights)", cols, [str(k) for k in range(len(before))])
    _filter_panel(fig, outer[1], after, f"after training (mean change {change.mean():.0%})", cols,
                  [f"{k}: moved {c:.0%}" for k, c in enumerate(change)])
    fig.suptitle(title)
    return fig


def relative_change(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Per filter: how far training moved it, as a share of its initial size (||after - before|| / ||before||)."""
    before, after = np.asarray(before, float), np.asarray(after, float)
    axes = tuple(range(1, before.ndim))
    return np.linalg.norm(after - before, axis=axes) / np.maximum(np.linalg.norm(before, axis=axes), 1e-12)


def top_channels(maps: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` channels of (n, C, h, w) maps with the highest mean activation, strongest first."""
    strength = np.asarray(maps).mean(axis=(0, 2, 3))
    return np.argsort(-strength, kind="stable")[:k]


def feature_maps(images: np.ndarray, maps: Mapping[str, np.ndarray], *, per_layer: int = 8,
                 row_titles: Sequence[str] | None = None, title: str = ""):
    """One row per image: the input, then ``per_layer`` maps of each layer.

    ``maps`` is {layer name: (n, C, h, w) activations}; each layer shows the same channels in
    every row (its most active ones over these images), so a column is one filter's response.
    """
    images = np.asarray(images)
    chosen = {name: top_channels(m, per_layer) for name, m in maps.items()}
    cols = 1 + sum(len(c) for c in chosen.values())
    n = len(images)
    fig, axes = plt.subplots(n, cols, figsize=(0.95 * cols, 1.05 * n + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for i in range(n):
        axes[i, 0].imshow(images[i], cmap="gray")
        axes[i, 0].set_ylabel(row_titles[i] if row_titles is not None else "", fontsize=8)
    axes[0, 0].set_title("input", fontsize=7)
    col = 1
    for name, m in maps.items():
        m = np.asarray(m)
        vmax = float(m[:, chosen[name]].max()) or 1.0
        for j, ch in enumerate(chosen[name]):
            for i in range(n):
                axes[i, col].imshow(m[i, ch], cmap="viridis", vmin=0.0, vmax=vmax)
            axes[0, col].set_title(f"{name}\n#{ch}" if j == 0 else f"#{ch}", fontsize=7)
            col += 1
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
