"""Many small images drawn as one picture (one ``imshow``), for image-generating labs.

A 15 x 15 traversal grid drawn as 225 matplotlib axes takes seconds to render; tiled
into one array it takes milliseconds and reads the same. Images are 2-D arrays of
grey values in [0, 1] (black 0, white 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from labflow.plots import figures as _figures  # noqa: F401  (selects the Agg backend first)

SEPARATOR = np.nan  # between tiles: drawn in SEPARATOR_COLOUR, never mistaken for a grey pixel
SEPARATOR_COLOUR = "#4c78a8"


def grey_map():
    """Grey levels 0 (black) to 1 (white); separators (NaN) in a colour."""
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("gray").copy()
    cmap.set_bad(SEPARATOR_COLOUR)
    return cmap


def tile(images: np.ndarray, cols: int, *, pad: int = 2, fill: float = SEPARATOR) -> np.ndarray:
    """``(N, H, W)`` images -> one ``(rows*(H+pad)-pad, cols*(W+pad)-pad)`` array, row by row."""
    images = np.asarray(images, dtype=float)
    n, h, w = images.shape
    rows = -(-n // cols)
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), fill)
    for k, img in enumerate(images):
        r, c = divmod(k, cols)
        out[r * (h + pad): r * (h + pad) + h, c * (w + pad): c * (w + pad) + w] = img
    return out


def labelled_rows(rows: Mapping[str, np.ndarray], *, title: str, col_labels: Sequence[str] | None = None,
                  pad: int = 2):
    """One row of images per entry (``{label: (N, H, W)}``), labels on the left."""
    import matplotlib.pyplot as plt

    names = list(rows)
    cols = max(len(v) for v in rows.values())
    h, w = np.asarray(next(iter(rows.values()))).shape[1:]
    stacked = np.full((len(names) * cols, h, w), SEPARATOR)
    for r, name in enumerate(names):
        block = np.asarray(rows[name], dtype=float)
        stacked[r * cols: r * cols + len(block)] = block
    picture = tile(stacked, cols, pad=pad)
    fig, ax = plt.subplots(figsize=(0.75 * cols + 1.8, 0.75 * len(names) + 0.8))
    ax.imshow(picture, cmap=grey_map(), vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks([r * (h + pad) + h / 2 for r in range(len(names))], names, fontsize=8)
    if col_labels is not None:
        ax.set_xticks([c * (w + pad) + w / 2 for c in range(len(col_labels))], col_labels, fontsize=7)
    else:
        ax.set_xticks([])
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def value_grid(images: np.ndarray, x_values: Sequence[float], y_values: Sequence[float], *, xlabel: str,
               ylabel: str, title: str, pad: int = 1):
    """``images[i, j]`` (an ``(R, C, H, W)`` array) drawn at row ``y_values[i]``, column ``x_values[j]``.

    Rows run top to bottom in the order given: pass ``y_values`` descending for a y axis that rises.
    """
    import matplotlib.pyplot as plt

    images = np.asarray(images, dtype=float)
    n_rows, n_cols, h, w = images.shape
    picture = tile(images.reshape(n_rows * n_cols, h, w), n_cols, pad=pad)
    fig, ax = plt.subplots(figsize=(7.5, 7.5 * n_rows / n_cols + 0.3))
    ax.imshow(picture, cmap=grey_map(), vmin=0, vmax=1, interpolation="nearest")
    every = max(1, n_cols // 8)
    ax.set_xticks([c * (w + pad) + w / 2 for c in range(0, n_cols, every)],
                  [f"{x_values[c]:.2f}" for c in range(0, n_cols, every)], fontsize=7)
    ax.set_yticks([r * (h + pad) + h / 2 for r in range(0, n_rows, every)],
                  [f"{y_values[r]:.2f}" for r in range(0, n_rows, every)], fontsize=7)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
