"""What the time-series labs (14 and 18) share: split, scale, window, train, baselines, metrics.

- :func:`chronological_split`: train, then validation, then test, in time order (never shuffled);
- :class:`Scaler`: per-column mean and standard deviation of the *training* rows only;
- :func:`target_indices` / :func:`make_windows`: a window of ``window`` past steps and the next
  step's target, cut inside one split, so no window reads across a split boundary;
- :func:`persistence` (next = last) and :func:`seasonal_naive` (next = one season ago):
  the baselines a forecasting net has to beat, on exactly the targets the nets predict;
- :func:`regression_metrics`: MSE, RMSE and MAE in the series' own units (scikit-learn);
- :func:`build_model`: an RNN/LSTM/GRU reading the last step, or a dense net on the flattened window;
- :func:`prepare` and :func:`train_forecaster`: a lab's preprocess and train stages;
- :func:`forecasts_on_test` and :func:`forecast_panels`: what their evaluate stages compare and draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from labflow.frame import base
SPLITS = ("train", "val", "test")
RECURRENT = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
# Below this many parameters a model trains on one CPU thread (see base.small_model_threads).
SMALL_MODEL = 50_000


# --------------------------------------------------------------------------- split, scale, windows


def chronological_split(n: int, val_fraction: float, test_fraction: float, window: int) -> dict[str, tuple[int, int]]:
    """{split: (start, stop)} row ranges in time order; each must hold at least one window and its target."""
    n_test, n_val = int(round(n * test_fraction)), int(round(n * val_fraction))
    bounds = {"train": (0, n - n_val - n_test), "val": (n - n_val - n_test, n - n_test), "test": (n - n_test, n)}
    short = {k: stop - start for k, (start, stop) in bounds.items() if stop - start <= window}
    if short:
        raise ValueError(f"splits {short} (rows) are not longer than the window ({window}): a window and its "
                         "target must fit inside one split; use a longer series, larger fractions or a shorter window")
    return bounds


@dataclass(frozen=True)
class Scaler:
    """Standardise columns with statistics of the training rows only (the test years stay unseen)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, train_rows: np.ndarray) -> Scaler:
        train_rows = np.asarray(train_rows, dtype=np.float64)
        std = train_rows.std(axis=0)
        return cls(train_rows.mean(axis=0), np.where(std > 0, std, 1.0))

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (np.asarray(values, dtype=np.float64) - self.mean) / self.std

    def inverse(self, scaled: np.ndarray, column: int) -> np.ndarray:
        return np.asarray(scaled, dtype=np.float64) * self.std[column] + self.mean[column]

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Scaler:
        return cls(np.asarray(d["mean"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64))


def target_indices(start: int, stop: int, window: int) -> np.ndarray:
    """Rows ``t`` in ``[start, stop)`` whose window ``[t - window, t)`` also starts inside the split."""
    return np.arange(start + window, stop, dtype=np.int64)


def keep_share(idx: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """A random ``share`` of ``idx`` (at least one), in time order; every phase of a cycle stays represented."""
    if share >= 1:
        return idx
    return np.sort(rng.choice(idx, max(1, int(round(len(idx) * share))), replace=False))


def make_windows(values: np.ndarray, target: np.ndarray, idx: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``values[t - window : t]`` (N x window x columns) and targets ``target[t]`` (N x 1) for t in idx."""
    values = np.asarray(values)
    if values.ndim == 1:
        values = values[:, None]
    rows = idx[:, None] + np.arange(-window, 0)[None, :]
    return values[rows], np.asarray(target)[idx][:, None]


# --------------------------------------------------------------------------- baselines and metrics


def persistence(series: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Tomorrow = today: the value one step before each target."""
    return np.asarray(series)[np.asarray(idx) - 1]


def seasonal_naive(series: np.ndarray, idx: np.ndarray, period: int) -> np.ndarray:
    """The value one season (``period`` steps) before each target; needs that much history."""
    idx = np.asarray(idx)
    if idx.min() < period:
        raise ValueError(f"seasonal naive with period {period} needs {period} steps of history; the first target is at {idx.min()}")
    return np.asarray(series)[idx - period]


def regression_metrics(pred: np.ndarray, true: np.ndarray, prefix: str) -> dict[str, float]:
    """MSE, RMSE and MAE in the series' own units (squared units for the MSE)."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    pred, true = np.asarray(pred, dtype=np.float64).ravel(), np.asarray(true, dtype=np.float64).ravel()
    mse = float(mean_squared_error(true, pred))
    return {f"{prefix}_mse": mse, f"{prefix}_rmse": float(np.sqrt(mse)), f"{prefix}_mae": float(mean_absolute_error(true, pred))}


def versus_persistence(mse: float, persistence_mse: float) -> str:
    """The table's verdict: a net that does not beat tomorrow = today says so."""
    change = 100 * (mse / persistence_mse - 1)
    return f"yes ({change:+.0f}% MSE)" if mse < persistence_mse else f"NO: worse than persistence ({change:+.0f}% MSE)"


# --------------------------------------------------------------------------- models


class RecurrentRegressor(nn.Module):
    """A recurrent net over the window; a linear layer reads the last step's hidden state."""

    def __init__(self, cell: str, n_features: int, hidden: int, layers: int = 1):
        super().__init__()
        self.rnn = RECURRENT[cell](n_features, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)  # zero initial state, on x's device (the course built it on a global device)
        return self.head(out[:, -1])


def build_model(kind: str, *, window: int, n_features: int, hidden: int, layers: int, mlp_hidden: Sequence[int]) -> nn.Module:
    if kind in RECURRENT:
        return RecurrentRegressor(kind, n_features, hidden, layers)
    if kind == "mlp":
        from labflow.nets.common import mlp

        return mlp(window * n_features, mlp_hidden, 1)  # flattens the window itself
    raise ValueError(f"unknown model '{kind}'; choose one of {', '.join([*RECURRENT, 'mlp'])}")


# --------------------------------------------------------------------------- the stages


def prepare(ctx: base.LabContext, df, manifest: dict, *, inputs: Sequence[str], target: str) -> dict:
    """Split ``df`` in time, fit the scaler on the training rows, cut windows inside each split, save.

    Saved: scaled windows ``x_<split>``/``y_<split>``, the targets' row numbers ``idx_<split>``,
    the unscaled target series ``series`` and the timestamps ``time_ns`` (for baselines and plots).
    """
    from labflow.prep.tensors import save_processed

    cfg = ctx.cfg.data
    missing = [c for c in dict.fromkeys([*inputs, target]) if c not in df.columns]
    if missing:
        raise KeyError(f"{ctx.lab_id}.data: column(s) {', '.join(missing)} are not in data set {cfg.dataset} "
                       f"(it has: {', '.join(c for c in df.columns if c != 'date')})")
    values = df[list(inputs)].to_numpy(dtype=np.float64)
    series = df[target].to_numpy(dtype=np.float64)
    bounds = chronological_split(len(df), cfg.val_fraction, cfg.test_fraction, cfg.window)
    scaler = Scaler.fit(values[slice(*bounds["train"])])
    scaled = scaler.transform(values).astype(np.float32)
    target_col = list(inputs).index(target)
    tensors = {"series": torch.from_numpy(series), "time_ns": torch.from_numpy(df["date"].to_numpy().astype("datetime64[ns]").astype(np.int64))}
    sizes = {}
    rng = np.random.default_rng(ctx.seed)
    for split, (start, stop) in bounds.items():
        idx = target_indices(start, stop, cfg.window)
        if split != "test":
            idx = keep_share(idx, cfg.keep_windows, rng)
        x, y = make_windows(scaled, scaled[:, target_col], idx, cfg.window)
        tensors |= {f"x_{split}": torch.from_numpy(x), f"y_{split}": torch.from_numpy(y), f"idx_{split}": torch.from_numpy(idx)}
        sizes[split] = len(idx)
    first_eval = int(tensors["idx_val"].min())
    if first_eval < cfg.seasonal_period:
        raise ValueError(f"{ctx.lab_id}.data.seasonal_period {cfg.seasonal_period} is longer than the history before "
                         f"the first validation target ({first_eval} steps)")
    meta = {
        "dataset": cfg.dataset, "description": manifest.get("description", cfg.dataset),
        "inputs": list(inputs), "target": target, "target_column": target_col,
        "unit": manifest.get("units", {}).get(target, ""), "frequency": manifest.get("frequency", ""),
        "window": cfg.window, "keep_windows": cfg.keep_windows, "seasonal_period": cfg.seasonal_period,
        "bounds": {k: list(v) for k, v in bounds.items()}, "sizes": sizes, "scaler": scaler.to_dict(),
        "split_dates": {k: [str(df["date"].iloc[a]), str(df["date"].iloc[b - 1])] for k, (a, b) in bounds.items()},
    }
    save_processed(ctx.processed_dir, tensors, meta)
    return meta


def to_units(scaled: torch.Tensor, meta: dict) -> np.ndarray:
    return Scaler.from_dict(meta["scaler"]).inverse(scaled.double().numpy().ravel(), meta["target_column"])


def split_scores(model: nn.Module, data: dict, meta: dict, split: str) -> tuple[dict[str, float], np.ndarray]:
    """A forecaster's scores on a split's windows: ``<split>_loss`` (MSE on the scaled targets, the
    training loss) and MSE, RMSE and MAE in the series' units; and its predictions in those units.

    What :func:`train_forecaster` records every epoch (val) and at the end (test), and what a
    lab's ``test_scores`` computes for any model of a variant (an exported one included)."""
    from torch.nn import functional as F

    from labflow.compare.metrics import predict

    pred = predict(model, data[f"x_{split}"])
    predicted = to_units(pred, meta)
    loss = F.mse_loss(pred, data[f"y_{split}"]).item()
    return {f"{split}_loss": loss} | regression_metrics(predicted, to_units(data[f"y_{split}"], meta), split), predicted


def forecaster_test_scores(ctx: base.LabContext, variant: str, model: nn.Module) -> dict[str, float]:
    """A forecasting lab's ``test_scores``: what :func:`train_forecaster`'s final metrics hold for
    the test windows, for any model of a variant (the MSE on the scaled targets, ``test_loss``, and
    MSE, RMSE and MAE in the series' units)."""
    from labflow.prep.tensors import load_processed

    data, meta = load_processed(ctx.processed_dir)
    return split_scores(model, data, meta, "test")[0]


def train_forecaster(ctx: base.LabContext, variant: str) -> base.VariantResult:
    """Train one variant on the scaled windows (MSE), scored in the series' units on val per epoch and test at the end."""
    from torch.nn import functional as F

    from labflow.prep.tensors import load_processed
    from labflow.nets.common import count_parameters, seeded
    from labflow.train import TensorBatches

    torch.set_flush_denormal(True)  # denormal gradients make recurrent nets many times slower on CPUs
    t, v = ctx.cfg.train, ctx.variant_cfg(variant)
    data, meta = load_processed(ctx.processed_dir)
    window, n_features = data["x_train"].shape[1:]
    model = seeded(lambda: build_model(v.model, window=window, n_features=n_features, hidden=t.hidden,
                                       layers=t.layers, mlp_hidden=t.mlp_hidden), ctx.seed)
    device = ctx.device
    if t.threads and device.type == "cpu":
        torch.set_num_threads(t.threads)
    elif count_parameters(model) < SMALL_MODEL:
        base.small_model_threads(ctx)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=t.lr)
    batches = TensorBatches(data["x_train"], data["y_train"], batch_size=t.batch_size, seed=ctx.seed, device=device)
    true = {s: to_units(data[f"y_{s}"], meta) for s in ("val", "test")}

    def loss_fn(m, batch):
        return F.mse_loss(m(batch[0]), batch[1])

    final_test: dict[str, np.ndarray] = {}

    def scores(m, split: str) -> dict[str, float]:
        metrics, predicted = split_scores(m, data, meta, split)
        if split == "test":
            final_test["predicted"] = predicted
        return metrics

    def final_metrics(m, _result):
        return scores(m, "test") | scores(m, "val") | {"parameters": count_parameters(m)}

    result = base.train_variant(
        ctx, variant, model=model, optimizer=optimizer, batches=batches, loss_fn=loss_fn, epochs=t.epochs,
        evaluate=lambda m: scores(m, "val"), final_metrics=final_metrics,
        run_params={"model": v.model, "window": int(window), "inputs": ",".join(meta["inputs"]), "target": meta["target"],
                    "hidden": t.hidden if v.model != "mlp" else list(t.mlp_hidden), "layers": t.layers if v.model != "mlp" else len(t.mlp_hidden),
                    "lr": t.lr, "batch_size": t.batch_size, "epochs": t.epochs, "keep_windows": meta["keep_windows"],
                    "train_windows": len(data["x_train"]), "dataset": meta["dataset"], "parameters": count_parameters(model),
                    "threads": torch.get_num_threads()},
        model_info={"kind": v.model, "window": int(window), "n_features": int(n_features), "hidden": t.hidden,
                    "layers": t.layers, "mlp_hidden": list(t.mlp_hidden)},
    )
    base.dvc_files.write_rows(ctx.results_dir(variant) / "predictions.csv",
                              [{"row": int(i), "actual": float(a), "predicted": float(p)}
                               for i, a, p in zip(data["idx_test"].tolist(), true["test"], final_test["predicted"])])
    return result


# --------------------------------------------------------------------------- the comparison


def saved_predictions(results: dict) -> dict[str, np.ndarray]:
    """{variant: predicted test values} as the train stages wrote them (rows in test order)."""
    out = {}
    for variant, r in results.items():
        rows = base.dvc_files.read_rows(r["folder"] / "predictions.csv")
        out[variant] = np.array([row["predicted"] for row in rows], dtype=np.float64)
    return out


def baselines(data: dict, meta: dict, split: str = "test") -> dict[str, np.ndarray]:
    """Persistence and seasonal-naive predictions for the split's targets, in the series' units."""
    series, idx = data["series"].numpy(), data[f"idx_{split}"].numpy()
    return {"persistence": persistence(series, idx),
            f"seasonal_naive_{meta['seasonal_period']}": seasonal_naive(series, idx, meta["seasonal_period"])}


def comparison_rows(ctx: base.LabContext, results: dict, data: dict, meta: dict) -> tuple[list[dict], dict]:
    """One table row per net and per baseline on the same test targets, and the summary metrics.

    Every row's numbers are recomputed here from the saved predictions, so nets and baselines
    go through the same metric code; the nets' verdict against persistence is spelled out.
    """
    actual = data["series"].numpy()[data["idx_test"].numpy()]
    unit = meta["unit"]
    base_pred = baselines(data, meta)
    scored = {name: regression_metrics(p, actual, "test") for name, p in base_pred.items()}
    persistence_mse = scored["persistence"]["test_mse"]
    rows, summary = [], {}
    for variant, pred in saved_predictions(results).items():
        m, r = regression_metrics(pred, actual, "test"), results[variant]["metrics"]
        rows.append({"variant": variant, "model": ctx.cfg.variants[variant].model, **_unit_cols(m, unit),
                     "beats_persistence": versus_persistence(m["test_mse"], persistence_mse),
                     "parameters": int(r.get("parameters", 0)), "train_seconds": r["train_seconds"]})
    for name, m in scored.items():
        rows.append({"variant": name, "model": "baseline", **_unit_cols(m, unit),
                     "beats_persistence": "-" if name == "persistence" else versus_persistence(m["test_mse"], persistence_mse),
                     "parameters": 0, "train_seconds": 0.0})
        summary |= {f"{name}_{k}": v for k, v in m.items()}
    summary["test_windows"] = len(actual)
    return rows, summary


def metric_columns(unit: str) -> dict[str, str]:
    """The table's column names, with the unit in them: {"mse": "test_mse (°C²)", ...}."""
    if not unit:
        return {k: f"test_{k}" for k in ("mse", "rmse", "mae")}
    return {"mse": f"test_mse ({unit}²)", "rmse": f"test_rmse ({unit})", "mae": f"test_mae ({unit})"}


def _unit_cols(m: dict, unit: str) -> dict:
    return {column: m[f"test_{k}"] for k, column in metric_columns(unit).items()}


def val_with_persistence(results: dict, data: dict, metric: str) -> dict:
    """{name: (epochs, values)} of the nets' per-epoch val metric, with persistence as a flat line."""
    curves = base.series(results, "epoch", f"val_{metric}")
    series, idx = data["series"].numpy(), data["idx_val"].numpy()
    level = regression_metrics(persistence(series, idx), series[idx], "val")[f"val_{metric}"]
    epochs = sorted({e for xs, _ in curves.values() for e in xs})
    return curves | {"persistence": (epochs, [level] * len(epochs))}


def times(data: dict, idx: np.ndarray):
    """The timestamps of series rows ``idx`` (for plot axes)."""
    return np.asarray(data["time_ns"].numpy()[idx], dtype="datetime64[ns]")


@dataclass(frozen=True)
class Forecasts:
    """What an evaluate stage compares and draws: the variants' results, the table, and the test part's
    times, actual values, the nets' saved predictions and the baselines' (all in the series' units)."""

    results: dict
    data: dict
    meta: dict
    table: list[dict]
    summary: dict
    when: np.ndarray
    actual: np.ndarray
    nets: dict[str, np.ndarray]
    baselines: dict[str, np.ndarray]


def forecasts_on_test(ctx: base.LabContext) -> Forecasts:
    from labflow.prep.tensors import load_processed

    results = base.variant_results(ctx)
    data, meta = load_processed(ctx.processed_dir)
    table, summary = comparison_rows(ctx, results, data, meta)
    idx = data["idx_test"].numpy()
    return Forecasts(results, data, meta, table, summary, when=times(data, idx), actual=data["series"].numpy()[idx],
                     nets=saved_predictions(results), baselines=baselines(data, meta))


def forecast_panels(f: Forecasts, *, whole: str, zoomed: str, zoom: int) -> dict:
    """Two ``figures.time_panels`` panels: the whole test part (actual and the nets), titled ``whole``,
    and its first ``zoom`` steps with persistence beside them, titled ``zoomed``."""
    z = slice(0, zoom)
    return {
        whole: {"actual": (f.when, f.actual)} | {v: (f.when, p) for v, p in f.nets.items()},
        zoomed: {"actual": (f.when[z], f.actual[z])} | {v: (f.when[z], p[z]) for v, p in f.nets.items()}
        | {"persistence": (f.when[z], f.baselines["persistence"][z])},
    }
