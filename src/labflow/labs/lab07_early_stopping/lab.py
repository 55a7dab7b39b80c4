"""Lab 07: early stopping and checkpoints.

One small CNN, trained on a small training set without regularisation so that it
overfits inside the epoch budget: validation loss bottoms out, then climbs while the
training loss keeps falling. The variants differ only in when they stop and which
weights they keep (same seed, same initial weights, same batches):

- ``no_early_stopping``: every epoch, the last epoch's weights;
- ``early_stopping``: stop after ``patience`` epochs without a better val_loss, then
  restore the best epoch's weights;
- ``early_stopping_no_restore``: the same stop, but keep the last epoch's weights
  (what forgetting ``restore_best`` costs).

Because the runs are deterministic and stopping only truncates training, the
early-stopped runs retrace the first epochs of ``no_early_stopping`` exactly; the
evaluate stage checks that and replays other patience values on the full-length
val_loss curve (where each would stop and which epoch it would keep) at no cost.

Every run saves a resumable checkpoint after each epoch (``checkpoints/lab07/<variant>/
last.pt``, model + optimizer + batch order + RNGs + early-stopping state; DVC keeps it
with ``persist: true``) so a killed ``dvc repro`` continues from the last finished epoch
and ends with the same numbers; ``best.pt`` holds the best epoch's weights and is logged
to the MLflow run. Every variant's model is a version of the registered model ``<prefix>-lab07``
with the variant's name as its alias; the evaluate stage points the alias ``champion`` at the
variant with the lowest validation loss (``models:/labflow-lab07@champion``).

Quick profile: Fashion-MNIST (offline). Full: Cats vs Dogs from a user folder
(``data.cats_vs_dogs.folder``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from labflow.frame import base
from labflow.prep.images import prepare_image_splits
from labflow.compare.metrics import classification_metrics, predict
from labflow.prep.tensors import load_processed
from labflow.nets.common import count_parameters, seeded
from labflow.train import BestCheckpoint, EarlyStopping, TensorBatches

LAB_ID = "lab07"
TITLE = "Early stopping + checkpoints"
HEADLINE = ("test_loss", "test_acc")  # what seed bands and `labflow exp` report
DATASETS = ("fashion_mnist", "cats_vs_dogs")
MONITOR = "val_loss"
SWEEP_PATIENCE = (1, 2, 3, 5, 8)


def small_cnn(in_shape: Sequence[int], channels: Sequence[int], hidden: int, classes: int) -> nn.Sequential:
    """[Conv 3x3 stride 2 -> ReLU] per entry of ``channels`` -> Flatten -> Linear -> ReLU -> Linear.

    Stride-2 convolutions downsample instead of max-pooling: several times cheaper on a
    CPU at this size, and the net still overfits a small training set in a few epochs.
    """
    c, h, w = in_shape
    layers: list[nn.Module] = []
    for out in channels:
        layers += [nn.Conv2d(c, out, 3, stride=2, padding=1), nn.ReLU()]
        c, h, w = out, (h + 1) // 2, (w + 1) // 2
    layers += [nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(), nn.Linear(hidden, classes)]
    return nn.Sequential(*layers)


def preprocess(ctx: base.LabContext) -> dict:
    return prepare_image_splits(LAB_ID, ctx.cfg.data.dataset, ctx.cfg.data, ctx.seed)


def _settings(ctx: base.LabContext, variant: str) -> dict:
    t, v = ctx.cfg.train, ctx.variant_cfg(variant)
    return {
        "dataset": ctx.cfg.data.dataset,
        "epochs": t.epochs,
        "batch_size": t.batch_size,
        "lr": t.lr,
        "channels": list(t.channels),
        "hidden": t.hidden,
        "monitor": MONITOR,
        "patience": v.patience,
        "restore_best": v.restore_best,
        "min_delta": v.min_delta,
    }


def registered_model_name(ctx: base.LabContext) -> str:
    return f"{ctx.params.tracking.experiment_prefix}-{LAB_ID}"


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    s = _settings(ctx, variant)
    data, meta = load_processed(ctx.processed_dir)
    device = ctx.device
    in_shape = tuple(data["x_train"].shape[1:])
    n_classes = len(meta["classes"])
    model = seeded(lambda: small_cnn(in_shape, s["channels"], s["hidden"], n_classes), ctx.seed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=s["lr"])
    batches = TensorBatches(data["x_train"], data["y_train"], batch_size=s["batch_size"], seed=ctx.seed, device=device)

    best_file = ctx.checkpoint_dir(variant) / "best.pt"
    callbacks: list = [BestCheckpoint(best_file, monitor=MONITOR, mode="min", min_delta=s["min_delta"])]
    if s["patience"] is not None or s["restore_best"]:
        # No patience but restore_best: train every epoch, then restore the best weights.
        callbacks.append(EarlyStopping(monitor=MONITOR, mode="min", patience=s["patience"] or s["epochs"] + 1,
                                       min_delta=s["min_delta"], restore_best=s["restore_best"]))

    def loss_fn(m, batch):
        return F.cross_entropy(m(batch[0]), batch[1])

    def evaluate(m):
        return classification_metrics(predict(m, data["x_val"]), data["y_val"], "val")

    def final_metrics(m, result):
        best_epoch = result.extras["best_checkpoint_epoch"]
        return {
            **_test_scores(m, data),
            **evaluate(m),  # val metrics of the weights the variant ends with
            "best_epoch": best_epoch,
            "best_val_loss": result.extras["best_checkpoint_value"],
            "stop_epoch": result.epochs_run,
            "stopped_early": int(result.stopped_early),
            # The epoch whose weights the final model holds.
            "model_epoch": best_epoch if s["restore_best"] else result.epochs_run,
            "epochs_saved": s["epochs"] - result.epochs_run,
        }

    def figures(_m, result):
        return {"val_loss_curve": _val_loss_figure({variant: result.history}, {variant: _marks(result, s["restore_best"])})}

    result = base.train_variant(
        ctx, variant, model=model, optimizer=optimizer, batches=batches, loss_fn=loss_fn,
        epochs=s["epochs"], evaluate=evaluate, final_metrics=final_metrics, figures=figures,
        callbacks=tuple(callbacks),
        run_params=s | {"parameters": count_parameters(model)},
        model_info={"kind": "small_cnn", "in_shape": list(in_shape), "classes": n_classes, **s},
        artifacts={"checkpoints": best_file},
        registered_model_name=registered_model_name(ctx),
    )
    if result.model and result.model.version and ctx.seed == ctx.params.seed:
        from labflow.tracking.runs import set_alias

        set_alias(registered_model_name(ctx), variant, result.model.version)
    return result


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back)."""
    data, _ = load_processed(ctx.processed_dir)
    return _test_scores(model, data)


def _test_scores(model, data) -> dict[str, float]:
    return classification_metrics(predict(model, data["x_test"]), data["y_test"], "test")


def _marks(result, restore_best: bool) -> dict:
    best = result.extras["best_checkpoint_epoch"]
    return {"best_epoch": best, "stop_epoch": result.epochs_run, "model_epoch": best if restore_best else result.epochs_run}


def _val_loss_figure(histories: dict, marks: dict, title: str = "validation loss per epoch"):
    """val_loss per epoch per variant; a star at the best epoch, a dashed line where each run stopped."""
    from labflow.plots import figures as figs

    series = {v: ([r["epoch"] for r in h], [r[MONITOR] for r in h]) for v, h in histories.items()}
    fig = figs.curves(series, xlabel="epoch", ylabel="validation loss", title=title)
    ax = fig.axes[0]
    for line, (variant, m) in zip(ax.get_lines(), marks.items()):
        rows = {int(r["epoch"]): r[MONITOR] for r in histories[variant]}
        color = line.get_color()
        ax.plot([m["best_epoch"]], [rows[int(m["best_epoch"])]], marker="*", markersize=14, color=color,
                markeredgecolor="black", linestyle="none", zorder=5)
        ax.axvline(m["stop_epoch"], color=color, linestyle="--", alpha=0.6)
        if "model_epoch" in m:
            ax.plot([m["model_epoch"]], [rows[int(m["model_epoch"])]], marker="s", markersize=9, color=color,
                    markerfacecolor="none", markeredgewidth=2, linestyle="none", zorder=6)
    ax.text(0.01, 0.98, "star: best epoch; square: weights kept; dashed: stop epoch", transform=ax.transAxes,
            va="top", fontsize=8)
    return fig


def patience_sweep(val_losses: Sequence[float], patiences: Sequence[int], min_delta: float = 0.0) -> list[dict]:
    """Where early stopping with each patience would stop on one val-loss curve, and what it keeps.

    Exact for a deterministic run: stopping only truncates training, so the curve up to
    the stop epoch is the same as the full-length run's.
    """
    rows = []
    for patience in patiences:
        best, best_epoch, bad, stop = None, 0, 0, len(val_losses)
        for epoch, value in enumerate(val_losses, start=1):
            if best is None or value < best - min_delta:
                best, best_epoch, bad = value, epoch, 0
            else:
                bad += 1
                if bad >= patience:
                    stop = epoch
                    break
        rows.append({"patience": patience, "stop_epoch": stop, "best_epoch": best_epoch, "best_val_loss": best,
                     "stopped_early": int(stop < len(val_losses))})
    return rows


def _same_prefix(a: list[dict], b: list[dict], key: str = MONITOR) -> bool:
    n = min(len(a), len(b))
    return all(float(a[i][key]) == float(b[i][key]) for i in range(n))


def evaluate(ctx: base.LabContext) -> None:
    from labflow.plots import figures as figs

    results = base.variant_results(ctx)
    table = []
    for variant, r in results.items():
        v, m = ctx.cfg.variants[variant], r["metrics"]
        table.append({
            "variant": variant, "patience": v.patience if v.patience is not None else "none",
            "restore_best": v.restore_best, "best_epoch": m["best_epoch"], "stop_epoch": m["stop_epoch"],
            "model_epoch": m["model_epoch"], "best_val_loss": m["best_val_loss"], "val_loss": m["val_loss"],
            "test_loss": m["test_loss"], "test_acc": m["test_acc"], "train_seconds": m["train_seconds"],
        })
    histories = {v: r["history"] for v, r in results.items()}
    marks = {v: {k: r["metrics"][k] for k in ("best_epoch", "stop_epoch", "model_epoch")} for v, r in results.items()}
    longest = max(results, key=lambda v: len(histories[v]))
    curve = [float(row[MONITOR]) for row in histories[longest]]
    sweep = patience_sweep(curve, SWEEP_PATIENCE)
    overfit = {
        "train loss": ([r["epoch"] for r in histories[longest]], [r["train_loss"] for r in histories[longest]]),
        "validation loss": ([r["epoch"] for r in histories[longest]], curve),
    }
    figures = {
        "val_loss_curves": _val_loss_figure(histories, marks),
        "overfitting": figs.curves(overfit, xlabel="epoch", ylabel="loss",
                                   title=f"{longest}: train vs validation loss (the gap is overfitting)"),
        "patience_sweep": figs.curves(
            {"stop epoch": ([r["patience"] for r in sweep], [r["stop_epoch"] for r in sweep]),
             "best epoch kept": ([r["patience"] for r in sweep], [r["best_epoch"] for r in sweep])},
            xlabel="patience (epochs without improvement)", ylabel="epoch",
            title=f"early stopping replayed on {longest}'s val-loss curve",
        ),
        "test_loss": figs.bars({r["variant"]: r["test_loss"] for r in table}, ylabel="test loss",
                               title="test loss of the weights each variant ends with"),
        "test_accuracy": figs.bars({r["variant"]: r["test_acc"] for r in table}, ylabel="test accuracy",
                                   title="test accuracy of the weights each variant ends with"),
    }
    summary = {
        "curve_from": longest,
        # Early-stopped runs retrace the full run's first epochs exactly (deterministic CPU runs).
        "same_trajectory": int(all(_same_prefix(histories[v], histories[longest]) for v in results)),
        **{f"patience_{r['patience']}_{k}": r[k] for r in sweep for k in ("stop_epoch", "best_epoch")},
    }
    # The registry's champion: the variant whose kept weights have the lowest validation loss
    # (chosen on validation data, never on the test split).
    champion = min(results, key=lambda v: results[v]["metrics"]["val_loss"])
    summary["champion"] = champion
    base.publish_comparison(ctx, results, table=table, figures=figures, summary=summary)
    if ctx.params.tracking.enabled and ctx.params.tracking.log_models:
        _crown(ctx, champion)


def _crown(ctx: base.LabContext, champion: str) -> None:
    """Point ``champion`` at the version the champion variant's alias names (its primary seed's model)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from labflow.tracking import runs

    runs.connect(ctx.params.tracking.server_timeout_s)
    name = registered_model_name(ctx)
    try:
        version = mlflow.MlflowClient().get_model_version_by_alias(name, champion).version
    except MlflowException:
        print(f"[labflow] {name} has no version aliased {champion!r} in this store (trained with another store?): "
              "no champion set")
        return
    runs.set_alias(name, "champion", str(version))
    print(f"[labflow] models:/{name}@champion -> version {version} ({champion}, lowest validation loss)")
