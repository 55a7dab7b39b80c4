"""Small figure builders; each returns a matplotlib Figure for files and MLflow alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def close(fig) -> None:
    plt.close(fig)


def curves(
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    logx: bool = False,
    logy: bool = False,
):
    """One line per variant on one chart: the comparison people want to see."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, (x, y) in series.items():
        ax.plot(x, y, label=name, marker="o" if len(x) <= 30 else None, markersize=3)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def panels(
    panels: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    logx: bool = False,
    logy: bool = False,
):
    """Several comparison charts side by side sharing a y label (e.g. loss vs epoch/update/second)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (panel_xlabel, series) in zip(axes[0], panels.items()):
        for name, (x, y) in series.items():
            ax.plot(x, y, label=name)
        ax.set(xlabel=panel_xlabel or xlabel, ylabel=ylabel)
        if logx:
            ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def bars(values: Mapping[str, float], *, ylabel: str, title: str, fmt: str = "{:.3f}"):
    fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(values)), 3.8))
    names, heights = list(values), [values[k] for k in values]
    rects = ax.bar(names, heights, color="#4c78a8")
    for rect, h in zip(rects, heights):
        ax.annotate(fmt.format(h), (rect.get_x() + rect.get_width() / 2, h), ha="center", va="bottom", fontsize=8)
    ax.set(ylabel=ylabel, title=title)
    ax.grid(axis="y", alpha=0.3)
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    return fig


def confusion(matrix: np.ndarray, labels: Sequence[str], *, title: str):
    matrix = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(0.55 * len(labels) + 2.5, 0.55 * len(labels) + 2))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    thresh = matrix.max() / 2 if matrix.size else 0
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color="white" if v > thresh else "black")
    fig.tight_layout()
    return fig


def image_grid(images: np.ndarray, titles: Sequence[str] | None = None, *, cols: int = 8, title: str = "", cmap: str = "gray", symmetric: bool = False,
               value_range: tuple[float, float] | None = None):
    """A grid of 2-D images (samples, filters, weights); ``symmetric`` centres the colour map on 0.

    ``value_range`` (e.g. (0, 1) for pixels) draws every image on the same scale instead of
    stretching each to its own min..max (which makes a faint generated image look like a real one).
    """
    images = np.asarray(images)
    rows = int(np.ceil(len(images) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.4 * rows + 0.4), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= len(images):
            continue
        img = images[k]
        if symmetric:
            lim = float(np.abs(img).max()) or 1.0
            ax.imshow(img, cmap="RdBu_r", vmin=-lim, vmax=lim)
        elif value_range is not None:
            ax.imshow(img, cmap=cmap, vmin=value_range[0], vmax=value_range[1])
        else:
            ax.imshow(img, cmap=cmap)
        if titles is not None:
            ax.set_title(str(titles[k]), fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def heatmap(matrix: np.ndarray, *, xlabel: str, ylabel: str, title: str, cmap: str = "viridis"):
    fig, ax = plt.subplots(figsize=(8, 3.5))
    im = ax.imshow(np.asarray(matrix), aspect="auto", cmap=cmap)
    fig.colorbar(im, ax=ax)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    return fig


def scatter_predicted(actual: Mapping[str, np.ndarray], predicted: Mapping[str, np.ndarray], *, unit: str, title: str):
    """Predicted vs actual per variant, with the y = x line of a perfect model."""
    names = list(predicted)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        a, p = np.asarray(actual[name]), np.asarray(predicted[name])
        ax.scatter(a, p, s=4, alpha=0.4)
        lo, hi = float(min(a.min(), p.min())), float(max(a.max(), p.max()))
        ax.plot([lo, hi], [lo, hi], color="red", lw=1)
        ax.set(title=name, xlabel=f"actual ({unit})", ylabel=f"predicted ({unit})")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def histograms(values: Mapping[str, np.ndarray], *, xlabel: str, title: str, bins: int = 40, logx: bool = False):
    """Overlaid outline histograms, one per variant (e.g. weight magnitudes); ``logx`` uses log-spaced bins."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    arrays = {k: np.asarray(v, dtype=float).ravel() for k, v in values.items()}
    pooled = np.concatenate(list(arrays.values())) if arrays else np.zeros(1)
    if logx:
        positive = pooled[pooled > 0]
        lo, hi = (positive.min(), positive.max()) if positive.size else (1e-6, 1.0)
        edges = np.logspace(np.log10(lo), np.log10(hi), bins + 1)
        ax.set_xscale("log")
    else:
        edges = np.linspace(pooled.min(), pooled.max() or 1.0, bins + 1)
    for name, a in arrays.items():
        ax.hist(np.clip(a, edges[0], edges[-1]), bins=edges, histtype="step", linewidth=1.5, label=name)
    ax.set(xlabel=xlabel, ylabel="count", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def grouped_bars(groups: Mapping[str, Mapping[str, float]], *, ylabel: str, title: str, fmt: str = "{:.2f}"):
    """Bars per category, one colour per series: ``{series: {category: value}}``."""
    series = list(groups)
    categories = list(dict.fromkeys(c for s in groups.values() for c in s))
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(categories) * max(1, len(series)) / 1.5), 4))
    x = np.arange(len(categories))
    for k, name in enumerate(series):
        heights = [groups[name].get(c, np.nan) for c in categories]
        rects = ax.bar(x + (k - (len(series) - 1) / 2) * width, heights, width, label=name)
        for rect, h in zip(rects, heights):
            if np.isfinite(h):
                ax.annotate(fmt.format(h), (rect.get_x() + rect.get_width() / 2, h), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, categories, rotation=20, ha="right")
    ax.set(ylabel=ylabel, title=title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    return fig


def confusion_grid(matrices: Mapping[str, np.ndarray], labels: Sequence[str], *, title: str, cols: int = 3):
    """Several small confusion matrices side by side (rows: true, columns: predicted), counts written in."""
    names = list(matrices)
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax, name in zip(axes.flat, names):
        m = np.asarray(matrices[name])
        ax.imshow(m / np.maximum(m.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(len(labels)), labels, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set(title=name, xlabel="predicted", ylabel="true")
        for (i, j), v in np.ndenumerate(m):
            share = v / max(m[i].sum(), 1)
            ax.text(j, i, f"{v}\n({share:.0%} of row)", ha="center", va="center", fontsize=7,
                    color="white" if share > 0.5 else "black")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def time_panels(
    panels: Mapping[str, Mapping[str, tuple[Sequence, Sequence[float]]]],
    *,
    ylabel: str,
    title: str,
    zero_line: bool = False,
):
    """Line charts against time stacked one above the other (forecasts, residuals); "actual" is drawn in black."""
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.2 * len(panels)), squeeze=False)
    for ax, (panel_title, series) in zip(axes[:, 0], panels.items()):
        for name, (x, y) in series.items():
            style = {"color": "black", "lw": 1.6, "alpha": 0.7} if name == "actual" else {"lw": 1.0}
            ax.plot(x, y, label=name, **style)
        if zero_line:
            ax.axhline(0, color="gray", lw=0.8, ls="--")
        ax.set(ylabel=ylabel, title=panel_title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=min(4, len(series)))
    fig.suptitle(title)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig
