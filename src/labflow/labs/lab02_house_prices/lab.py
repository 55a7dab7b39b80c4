"""Lab 02: house prices: MSE vs MAE loss, linear model vs MLP (128-64).

The course trained one model with MSE and then kept training the same model with
MAE, so the "MAE" result started from the MSE weights. Here each of the four
variants is a fresh model; models of the same kind start from the same weights.
The target is log(price) standardised on the training split; every reported
error is converted back to dollars.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from labflow.frame import paths
from labflow.frame import base
from labflow.compare.metrics import predict
from labflow.prep.tables import encode_features, split_indices
from labflow.prep.tensors import load_processed, save_processed
from labflow.nets.common import mlp, seeded
from labflow.train import TensorBatches

LAB_ID = "lab02"
TITLE = "House prices: MSE vs MAE, linear vs MLP"
HEADLINE = ("test_rmse_usd",)  # what seed bands and `labflow exp` report
HEADLINE_CURVE = "val_rmse_usd"  # the per-epoch column the seed-band figure draws
DATASETS = ("house_prices",)
LOSSES = {"mse": F.mse_loss, "mae": F.l1_loss}


def preprocess(ctx: base.LabContext) -> dict:
    from labflow.data import load_table

    cfg = ctx.cfg.data
    df, target = load_table(paths.raw_dir("house_prices"))
    dropped = 0
    if cfg.max_living_area is not None and "Gr_Liv_Area" in df.columns:
        keep = df["Gr_Liv_Area"] <= cfg.max_living_area
        dropped = int((~keep).sum())
        df = df[keep].reset_index(drop=True)
    train_idx, val_idx, test_idx = split_indices(len(df), cfg.val_fraction, cfg.test_fraction, ctx.seed)
    if cfg.train_size is not None:
        train_idx = train_idx[: cfg.train_size]
    features = df.drop(columns=[target])
    enc = encode_features(features.iloc[train_idx], features.iloc[val_idx], features.iloc[test_idx])
    price = df[target].to_numpy(dtype=np.float64)
    y = np.log(price) if cfg.log_target else price
    mean, std = float(y[train_idx].mean()), float(y[train_idx].std())

    def target_tensor(idx):
        return torch.from_numpy(((y[idx] - mean) / std).astype(np.float32)).unsqueeze(1)

    tensors = {
        "x_train": torch.from_numpy(enc.train), "y_train": target_tensor(train_idx),
        "x_val": torch.from_numpy(enc.others[0]), "y_val": target_tensor(val_idx),
        "x_test": torch.from_numpy(enc.others[1]), "y_test": target_tensor(test_idx),
    }
    meta = {
        "target": target, "log_target": cfg.log_target, "target_mean": mean, "target_std": std,
        "feature_names": enc.feature_names, "groups": enc.groups,
        "sizes": {"train": len(train_idx), "val": len(val_idx), "test": len(test_idx)},
        "dropped_outliers": dropped,
    }
    save_processed(ctx.processed_dir, tensors, meta)
    return meta


def to_dollars(scaled: torch.Tensor, meta: dict) -> np.ndarray:
    y = scaled.double().flatten().numpy() * meta["target_std"] + meta["target_mean"]
    return np.exp(y) if meta["log_target"] else y


def regression_metrics(pred_usd: np.ndarray, true_usd: np.ndarray, prefix: str) -> dict[str, float]:
    err = pred_usd - true_usd
    mse = float(np.mean(err**2))
    return {
        f"{prefix}_mse_usd": mse,
        f"{prefix}_rmse_usd": float(np.sqrt(mse)),
        f"{prefix}_mae_usd": float(np.mean(np.abs(err))),
        f"{prefix}_r2": float(1 - np.sum(err**2) / np.sum((true_usd - true_usd.mean()) ** 2)),
    }


def build_model(kind: str, n_features: int, hidden) -> nn.Module:
    return nn.Linear(n_features, 1) if kind == "linear" else mlp(n_features, hidden, 1)


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    t, v = ctx.cfg.train, ctx.variant_cfg(variant)
    data, meta = load_processed(ctx.processed_dir)
    device = ctx.device
    n_features = data["x_train"].shape[1]
    model = seeded(lambda: build_model(v.model, n_features, t.hidden), ctx.seed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=t.lr)
    batches = TensorBatches(data["x_train"], data["y_train"], batch_size=t.batch_size, seed=ctx.seed, device=device)
    loss = LOSSES[v.loss]
    true = {split: to_dollars(data[f"y_{split}"], meta) for split in ("val", "test")}

    def loss_fn(m, batch):
        return loss(m(batch[0]), batch[1])

    def evaluate(m):
        pred = predict(m, data["x_val"])
        usd = regression_metrics(to_dollars(pred, meta), true["val"], "val")
        return {"val_loss": loss(pred, data["y_val"]).item(), "val_rmse_usd": usd["val_rmse_usd"], "val_mae_usd": usd["val_mae_usd"]}

    def final_metrics(m, _result):
        return _test_scores(m, data, meta) | regression_metrics(to_dollars(predict(m, data["x_val"]), meta), true["val"], "val")

    result = base.train_variant(
        ctx, variant, model=model, optimizer=optimizer, batches=batches, loss_fn=loss_fn,
        epochs=t.epochs, evaluate=evaluate, final_metrics=final_metrics,
        figures=lambda m, _r: {"feature_importance": _importance_figure(m, data, meta, true["test"])},
        run_params={"model": v.model, "loss": v.loss, "lr": t.lr, "epochs": t.epochs, "batch_size": t.batch_size,
                    "hidden": list(t.hidden) if v.model == "mlp" else [], "log_target": meta["log_target"]},
        model_info={"kind": v.model, "in": n_features, "hidden": list(t.hidden)},
    )
    pred = to_dollars(predict(model, data["x_test"]), meta)
    base.dvc_files.write_rows(ctx.results_dir(variant) / "predictions.csv",
                              [{"actual_usd": a, "predicted_usd": p} for a, p in zip(true["test"], pred)])
    return result


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back)."""
    data, meta = load_processed(ctx.processed_dir)
    return _test_scores(model, data, meta)


def _test_scores(model, data, meta) -> dict[str, float]:
    pred = to_dollars(predict(model, data["x_test"]), meta)
    return regression_metrics(pred, to_dollars(data["y_test"], meta), "test")


def permutation_importance(model, x: torch.Tensor, true_usd: np.ndarray, meta: dict, seed: int) -> dict[str, float]:
    """Rise in test RMSE (dollars) when one original column (all its one-hot parts) is shuffled."""
    base_rmse = regression_metrics(to_dollars(predict(model, x), meta), true_usd, "t")["t_rmse_usd"]
    gen = torch.Generator().manual_seed(seed)
    scores = {}
    for column, idx in meta["groups"].items():
        if not idx:
            continue
        shuffled = x.clone()
        perm = torch.randperm(len(x), generator=gen)
        shuffled[:, idx] = x[perm][:, idx]
        rmse = regression_metrics(to_dollars(predict(model, shuffled), meta), true_usd, "t")["t_rmse_usd"]
        scores[column] = rmse - base_rmse
    return scores


def _importance_figure(model, data, meta, true_test):
    from labflow.plots import figures as figs

    scores = permutation_importance(model, data["x_test"], true_test, meta, seed=0)
    top = dict(sorted(scores.items(), key=lambda kv: -kv[1])[:15])
    return figs.bars(top, ylabel="test RMSE increase ($)", title="permutation importance (top 15 columns)", fmt="{:,.0f}")


def evaluate(ctx: base.LabContext) -> None:
    from labflow.plots import figures as figs

    results = base.variant_results(ctx)
    table = []
    actual, predicted = {}, {}
    for variant, r in results.items():
        v, m = ctx.cfg.variants[variant], r["metrics"]
        table.append({"variant": variant, "model": v.model, "loss": v.loss, "test_rmse_usd": m["test_rmse_usd"],
                      "test_mae_usd": m["test_mae_usd"], "test_mse_usd": m["test_mse_usd"], "test_r2": m["test_r2"]})
        rows = base.dvc_files.read_rows(r["folder"] / "predictions.csv")
        actual[variant] = np.array([row["actual_usd"] for row in rows])
        predicted[variant] = np.array([row["predicted_usd"] for row in rows])
    figures = {
        "val_rmse": figs.curves(base.series(results, "epoch", "val_rmse_usd"), xlabel="epoch", ylabel="validation RMSE ($)", title="validation RMSE in dollars (comparable across losses)"),
        "train_loss": figs.curves(base.series(results, "epoch", "train_loss"), xlabel="epoch", ylabel="training loss (own loss, scaled target)", title="training loss per epoch", logy=True),
        "predicted_vs_actual": figs.scatter_predicted(actual, predicted, unit="$", title="test set: predicted vs actual price"),
        "test_rmse": figs.bars({r["variant"]: r["test_rmse_usd"] for r in table}, ylabel="test RMSE ($)", title="test RMSE", fmt="{:,.0f}"),
    }
    base.publish_comparison(ctx, results, table=table, figures=figures)
