"""Seed bands: is a difference between two variants bigger than what a new seed changes?

Each variant trains once per training seed (``params.yaml: seeds``). Runs with the same seed
share the seed's weight initialisation (where the architectures match), batch order and
augmentation draws, so the fair test of "A beats B" is a **paired** one: the per-seed
differences A - B, tested against 0 with a two-sided paired t-test (``scipy.stats.ttest_rel``).
Pairing removes what a seed does to both variants alike; the t distribution is the honest
choice for a handful of seeds (3 seeds: 2 degrees of freedom, so only a consistent difference
passes). A pair is "within seed noise" when p >= 0.05. With one seed there is no estimate,
and the tables say so instead of guessing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

ALPHA = 0.05
# Metrics a lab is judged on when its module names none (``HEADLINE``), in this order.
_FALLBACK_HEADLINES = ("test_acc", "test_f1", "test_roc_auc", "test_rmse", "test_mse", "test_loss")
_FALLBACK_CURVES = ("val_acc", "val_loss", "test_acc", "test_loss", "train_loss")


def headline_metrics(module: Any, metrics: Mapping[str, Any]) -> list[str]:
    """The lab's ``HEADLINE`` metrics, else the first known test metric it reports."""
    named = getattr(module, "HEADLINE", None)
    if named:
        return [m for m in named if _is_number(metrics.get(m))]
    for name in _FALLBACK_HEADLINES:
        if _is_number(metrics.get(name)):
            return [name]
    return [k for k, v in metrics.items() if k.startswith("test_") and _is_number(v)][:1]


def band_curve(module: Any, history: Sequence[Mapping[str, Any]]) -> str | None:
    """The per-epoch column the band figure draws: the lab's ``HEADLINE_CURVE`` or a usual one."""
    columns = set(history[0]) if history else set()
    named = getattr(module, "HEADLINE_CURVE", None)
    if named in columns:
        return named
    return next((c for c in _FALLBACK_CURVES if c in columns), None)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def per_seed(results: Mapping[str, Mapping[str, Any]], metric: str) -> dict[str, dict[int, float]]:
    """{variant: {seed: value}} for the variants whose every seed reports ``metric``."""
    out = {}
    for variant, r in results.items():
        seeds = r.get("seeds") or {}
        values = {seed: run["metrics"].get(metric) for seed, run in seeds.items()}
        if values and all(_is_number(v) for v in values.values()):
            out[variant] = values
    return out


def paired_test(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided paired t-test p-value of a - b against 0; None with fewer than 2 pairs."""
    diffs = [x - y for x, y in zip(a, b, strict=True)]
    if len(diffs) < 2:
        return None
    if all(d == diffs[0] for d in diffs):  # no spread: identical runs, or the same gap every seed
        return 1.0 if diffs[0] == 0 else 0.0
    from scipy.stats import ttest_rel

    return float(ttest_rel(a, b).pvalue)


def band_rows(results: Mapping[str, Mapping[str, Any]], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One row per variant and metric: mean, std and every seed's value."""
    rows = []
    for metric in metrics:
        for variant, values in per_seed(results, metric).items():
            mean, std = mean_std(list(values.values()))
            row = {"metric": metric, "variant": variant, "mean": mean, "std": std, "seeds": len(values)}
            row.update({f"seed {seed}": value for seed, value in values.items()})
            rows.append(row)
    return rows


def verdict_rows(results: Mapping[str, Mapping[str, Any]], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One row per metric and pair of variants: the mean gap, the paired p-value and the verdict."""
    rows = []
    for metric in metrics:
        values = per_seed(results, metric)
        for a, b in combinations(values, 2):
            seeds = [s for s in values[a] if s in values[b]]
            xa, xb = [values[a][s] for s in seeds], [values[b][s] for s in seeds]
            p = paired_test(xa, xb)
            if p is None:
                verdict = "one seed: no noise estimate"
            elif p >= ALPHA:
                verdict = "within seed noise"
            else:
                verdict = "real (p < 0.05)"
            rows.append({"metric": metric, "a": a, "b": b, "mean_a_minus_b": (sum(xa) - sum(xb)) / len(seeds),
                         "p_paired_t": p, "seeds": len(seeds), "verdict": verdict})
    return rows


def summary_metrics(band: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """{variant: {metric_mean, metric_std}} for the DVC metrics file (several seeds only)."""
    out: dict[str, dict[str, float]] = {}
    for row in band:
        if row["std"] is None:
            continue
        out.setdefault(row["variant"], {})[f"{row['metric']}_mean"] = row["mean"]
        out[row["variant"]][f"{row['metric']}_std"] = row["std"]
    return out


def markdown(band: Sequence[Mapping[str, Any]], verdicts: Sequence[Mapping[str, Any]], seeds: Sequence[int]) -> str:
    """The seed table a person reads: mean ± std per variant, then which gaps are real."""
    if len(seeds) < 2:
        return (f"One training seed ({seeds[0]}): no estimate of seed noise. Run several, e.g. "
                f"`dvc exp run -S 'seeds=[{seeds[0]},{seeds[0] + 1},{seeds[0] + 2}]'`.\n")
    seed_cols = [f"seed {s}" for s in seeds]
    lines = [f"Training seeds: {', '.join(map(str, seeds))} (mean ± sample std).", "",
             "| metric | variant | mean ± std | " + " | ".join(seed_cols) + " |",
             "|---|---|---|" + "---|" * len(seed_cols)]
    for row in band:
        values = " | ".join(f"{row[c]:.4g}" if _is_number(row.get(c)) else "" for c in seed_cols)
        lines.append(f"| {row['metric']} | {row['variant']} | {row['mean']:.4g} ± {row['std']:.2g} | {values} |")
    lines += ["", f"Pairs of variants, paired t-test over seeds (within seed noise when p >= {ALPHA}):", "",
              "| metric | a | b | mean a - b | p | verdict |", "|---|---|---|---|---|---|"]
    for row in verdicts:
        p = row["p_paired_t"]
        lines.append(f"| {row['metric']} | {row['a']} | {row['b']} | {row['mean_a_minus_b']:+.4g} | "
                     f"{'' if p is None else f'{p:.3g}'} | {row['verdict']} |")
    return "\n".join(lines) + "\n"


def band_figure(results: Mapping[str, Mapping[str, Any]], column: str, title: str):
    """Each variant's mean curve over seeds with its min-max band."""
    from labflow.plots.figures import plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for variant, r in results.items():
        histories = [run["history"] for run in (r.get("seeds") or {}).values()]
        histories = [[row for row in h if _is_number(row.get(column))] for h in histories]
        n = min((len(h) for h in histories), default=0)
        if n == 0:
            continue
        epochs = [histories[0][i]["epoch"] for i in range(n)]
        cols = [[h[i][column] for h in histories] for i in range(n)]
        mean = [sum(c) / len(c) for c in cols]
        line, = ax.plot(epochs, mean, marker=".", label=f"{variant} (mean of {len(histories)})")
        ax.fill_between(epochs, [min(c) for c in cols], [max(c) for c in cols], color=line.get_color(), alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel(column)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
