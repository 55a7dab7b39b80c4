"""Lab 03: full-batch vs mini-batch vs stochastic gradient descent.

The course gave all three the same lr (0.01 with momentum 0.9): full-batch then
makes 15 tiny updates (25% accuracy) and batch size 1 diverges (10%). Here every
variant has its own lr in params.yaml, all start from the same initial weights
and see the same data for the same number of epochs, and the loss is reported
against epochs, against updates and against seconds: the three views tell
different stories, which is the lesson.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from labflow.frame import base
from labflow.prep.images import prepare_image_splits
from labflow.compare.metrics import classification_metrics, predict
from labflow.prep.tensors import load_processed
from labflow.nets.common import mlp, seeded
from labflow.train import TensorBatches
from labflow.train.callbacks import LossTrace

LAB_ID = "lab03"
TITLE = "Gradient descent: full batch vs mini-batch vs stochastic"
HEADLINE = ("test_acc",)  # what seed bands and `labflow exp` report
DATASETS = ("mnist",)


def preprocess(ctx: base.LabContext) -> dict:
    return prepare_image_splits(LAB_ID, "mnist", ctx.cfg.data, ctx.seed)


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    t, v = ctx.cfg.train, ctx.variant_cfg(variant)
    data, meta = load_processed(ctx.processed_dir)
    device = ctx.device
    if v.threads and device.type == "cpu":
        torch.set_num_threads(v.threads)
    model = seeded(lambda: mlp(28 * 28, t.hidden, len(meta["classes"])), ctx.seed).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=v.lr, momentum=v.momentum)
    batches = TensorBatches(data["x_train"], data["y_train"], batch_size=v.batch_size, seed=ctx.seed, device=device)
    trace = LossTrace(every=max(1, len(batches) // t.points_per_epoch))
    x_train_eval, y_train_eval = data["x_train"], data["y_train"]

    def loss_fn(m, batch):
        return F.cross_entropy(m(batch[0]), batch[1])

    def evaluate(m):
        # The full training loss after each epoch: comparable across batch sizes,
        # unlike the running mean of noisy batch losses.
        return classification_metrics(predict(m, x_train_eval), y_train_eval, "full_train") | classification_metrics(
            predict(m, data["x_val"]), data["y_val"], "val"
        )

    # The loss before the first update: the same for every variant (same initial weights).
    initial = classification_metrics(predict(model, x_train_eval), y_train_eval, "initial_full_train")

    def final_metrics(m, _result):
        return _test_scores(m, data) | initial

    result = base.train_variant(
        ctx, variant, model=model, optimizer=optimizer, batches=batches, loss_fn=loss_fn,
        epochs=t.epochs, evaluate=evaluate, final_metrics=final_metrics, callbacks=(trace,),
        run_params={"batch_size": v.batch_size or len(data["y_train"]), "lr": v.lr, "momentum": v.momentum,
                    "threads": torch.get_num_threads(), "epochs": t.epochs, "hidden": list(t.hidden)},
        model_info={"kind": "mlp", "hidden": list(t.hidden)},
        history_extra={"trace": trace.rows},
    )
    return result


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back)."""
    data, _ = load_processed(ctx.processed_dir)
    return _test_scores(model, data)


def _test_scores(model, data) -> dict[str, float]:
    return classification_metrics(predict(model, data["x_test"]), data["y_test"], "test")


def evaluate(ctx: base.LabContext) -> None:
    from labflow.plots import figures as figs

    results = base.variant_results(ctx)
    for variant, r in results.items():
        r["trace"] = base.dvc_files.read_rows(r["folder"] / "trace.csv")
    table = []
    for variant, r in results.items():
        v, m = ctx.cfg.variants[variant], r["metrics"]
        table.append({
            "variant": variant, "batch_size": v.batch_size or "all", "lr": v.lr, "momentum": v.momentum,
            "updates": m["updates"], "train_seconds": m["train_seconds"],
            "final_train_loss": r["history"][-1]["full_train_loss"], "test_acc": m["test_acc"],
        })
    figures = {
        "loss_vs_epoch_update_second": figs.panels(
            {
                "epoch": {
                    v: ([0, *xs], [results[v]["metrics"]["initial_full_train_loss"], *ys])
                    for v, (xs, ys) in base.series(results, "epoch", "full_train_loss").items()
                },
                "update (log scale)": base.series(results, "updates", "full_train_loss"),
                "training seconds (log scale)": base.series(results, "seconds", "full_train_loss"),
            },
            xlabel="", ylabel="training loss (whole training set)", title="the same loss, three clocks", logy=True,
        ),
        "running_loss_vs_update": figs.curves(base.series(results, "update", "train_loss", "trace"), xlabel="update", ylabel="mean batch loss", title="batch loss against updates", logx=True, logy=True),
        "val_accuracy": figs.curves(base.series(results, "epoch", "val_acc"), xlabel="epoch", ylabel="validation accuracy", title="validation accuracy per epoch"),
        "test_accuracy": figs.bars({r["variant"]: r["test_acc"] for r in table}, ylabel="test accuracy", title="test accuracy"),
        "wall_time": figs.bars({r["variant"]: r["train_seconds"] for r in table}, ylabel="seconds", title="training time", fmt="{:.1f}"),
    }
    # Log-scale x for updates and seconds: the variants differ by orders of magnitude.
    figures["loss_vs_epoch_update_second"].axes[1].set_xscale("log")
    figures["loss_vs_epoch_update_second"].axes[2].set_xscale("log")
    base.publish_comparison(ctx, results, table=table, figures=figures)
