"""Lab 04: SGD vs SGD with momentum vs Adam vs RMSprop on the course's CNN.

The course saved the initial weights and never loaded them, so each optimizer
started from different random weights. Here every variant builds its model with
``seeded`` (the same weights: the table shows the identical test loss before
training as proof), sees the same batches in the same order for the same epochs,
and differs only in its optimizer and learning rate (each at its usual default:
plain SGD at Adam's 0.001 barely moves, which is a tuning lesson, not a verdict on
SGD). Data: Fashion-MNIST (quick) or CIFAR-10 (full), chosen in params.yaml; the
CNN adapts to its channels and image size.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from labflow.frame import base
from labflow.nets.cnn import EVAL_CHUNK, build_cnn
from labflow.prep.images import prepare_image_splits
from labflow.compare.metrics import classification_metrics, predict
from labflow.prep.tensors import load_processed
from labflow.nets.common import count_parameters
from labflow.train import TensorBatches
from labflow.train.callbacks import LossTrace

LAB_ID = "lab04"
TITLE = "Optimizers: SGD, SGD + momentum, Adam, RMSprop"
HEADLINE = ("test_acc",)  # what seed bands and `labflow exp` report
DATASETS = ("fashion_mnist", "cifar10")


def preprocess(ctx: base.LabContext) -> dict:
    return prepare_image_splits(LAB_ID, ctx.cfg.data.dataset, ctx.cfg.data, ctx.seed)



def make_optimizer(kind: str, params, lr: float, momentum: float = 0.0) -> torch.optim.Optimizer:
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr)
    if kind == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    raise ValueError(f"unknown optimizer '{kind}'; choose sgd, adam or rmsprop")


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    t, v = ctx.cfg.train, ctx.variant_cfg(variant)
    data, meta = load_processed(ctx.processed_dir)
    device = ctx.device
    model = build_cnn(data["x_train"], len(meta["classes"]), ctx.seed).to(device)
    optimizer = make_optimizer(v.optimizer, model.parameters(), v.lr, v.momentum)
    batches = TensorBatches(data["x_train"], data["y_train"], batch_size=t.batch_size, seed=ctx.seed, device=device)
    trace = LossTrace(every=max(1, len(batches) // t.points_per_epoch))
    # Before any update: identical for every variant, because the weights are.
    initial = classification_metrics(predict(model, data["x_test"], chunk=EVAL_CHUNK), data["y_test"], "initial_test")

    def loss_fn(m, batch):
        return F.cross_entropy(m(batch[0]), batch[1])

    def evaluate(m):
        # Test accuracy per epoch, as the course plots it (nothing is chosen on it; val is there too).
        return classification_metrics(predict(m, data["x_val"], chunk=EVAL_CHUNK), data["y_val"], "val") | _test_scores(m, data)

    def final_metrics(m, _result):
        return evaluate(m) | initial

    return base.train_variant(
        ctx, variant, model=model, optimizer=optimizer, batches=batches, loss_fn=loss_fn,
        epochs=t.epochs, evaluate=evaluate, final_metrics=final_metrics, callbacks=(trace,),
        run_params={"optimizer": v.optimizer, "lr": v.lr, "momentum": v.momentum, "batch_size": t.batch_size,
                    "epochs": t.epochs, "dataset": meta["dataset"], "parameters": count_parameters(model)},
        model_info={"kind": "course_cnn", "in_channels": data["x_train"].shape[1],
                    "image_size": data["x_train"].shape[-1], "n_classes": len(meta["classes"])},
        history_extra={"trace": trace.rows},
    )


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back)."""
    data, _ = load_processed(ctx.processed_dir)
    return _test_scores(model, data)


def _test_scores(model, data) -> dict[str, float]:
    return classification_metrics(predict(model, data["x_test"], chunk=EVAL_CHUNK), data["y_test"], "test")


def evaluate(ctx: base.LabContext) -> None:
    from labflow.plots import figures as figs

    results = base.variant_results(ctx)
    _, meta = load_processed(ctx.processed_dir)
    table = []
    for variant, r in results.items():
        v, m = ctx.cfg.variants[variant], r["metrics"]
        r["trace"] = base.dvc_files.read_rows(r["folder"] / "trace.csv")
        table.append({
            "variant": variant, "optimizer": v.optimizer, "lr": v.lr, "momentum": v.momentum,
            "initial_test_loss": m["initial_test_loss"], "final_train_loss": r["history"][-1]["train_loss"],
            "test_loss": m["test_loss"], "test_acc": m["test_acc"], "train_seconds": m["train_seconds"],
        })

    def with_start(y: str, start: str) -> dict:
        # Epoch 0 is the shared initial model: every curve starts from the same point.
        return {v: ([0, *xs], [results[v]["metrics"][start], *ys]) for v, (xs, ys) in base.series(results, "epoch", y).items()}

    data_name = meta["dataset"]
    figures = {
        "test_accuracy": figs.curves(with_start("test_acc", "initial_test_acc"), xlabel="epoch", ylabel="test accuracy",
                                     title=f"test accuracy per epoch ({data_name}; epoch 0 = the shared initial weights)"),
        "train_loss": figs.curves(base.series(results, "epoch", "train_loss"), xlabel="epoch",
                                  ylabel="mean training loss of the epoch", title=f"training loss per epoch ({data_name})"),
        "loss_by_update": figs.curves(base.series(results, "update", "train_loss", "trace"), xlabel="update",
                                      ylabel="mean batch loss", title="training loss against updates", logy=True),
        "test_loss": figs.curves(with_start("test_loss", "initial_test_loss"), xlabel="epoch", ylabel="test loss",
                                 title="test loss per epoch"),
        "final_test_accuracy": figs.bars({r["variant"]: r["test_acc"] for r in table}, ylabel="test accuracy",
                                         title=f"test accuracy after {ctx.cfg.train.epochs} epochs"),
    }
    base.publish_comparison(ctx, results, table=table, figures=figures)
