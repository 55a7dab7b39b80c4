"""Lab 01: an MLP on handwritten digits, and what it learned, made visible.

The course's 784-512-256-10 MLP (ReLU, dropout 0.2, Adam 1e-3). Figures: sample
grid, label histogram, first-layer weights as 28x28 images, hidden activations
per class, confusion matrix. The course loaded MNIST through Keras; here the
data comes from the shared data layer (MNIST-5k offline, MNIST online).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from labflow.frame import base
from labflow.prep.images import denormalise, prepare_image_splits
from labflow.compare.metrics import classification_metrics, confusion_matrix, predict
from labflow.prep.tensors import load_processed
from labflow.nets.common import mlp, seeded
from labflow.train import TensorBatches

LAB_ID = "lab01"
TITLE = "MLP on digits + visualisation"
HEADLINE = ("test_acc",)  # what seed bands and `labflow exp` report
DATASETS = ("mnist",)


def preprocess(ctx: base.LabContext) -> dict:
    return prepare_image_splits(LAB_ID, "mnist", ctx.cfg.data, ctx.seed)


def _settings(ctx: base.LabContext, variant: str) -> dict:
    t, v = ctx.cfg.train, ctx.variant_cfg(variant)
    return {
        "epochs": t.epochs,
        "batch_size": t.batch_size,
        "lr": v.lr or t.lr,
        "dropout": t.dropout if v.dropout is None else v.dropout,
        "hidden": list(t.hidden),
    }


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    s = _settings(ctx, variant)
    data, meta = load_processed(ctx.processed_dir)
    device = ctx.device
    n_classes = len(meta["classes"])
    model = seeded(lambda: mlp(28 * 28, s["hidden"], n_classes, dropout=s["dropout"]), ctx.seed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=s["lr"])
    batches = TensorBatches(data["x_train"], data["y_train"], batch_size=s["batch_size"], seed=ctx.seed, device=device)

    def loss_fn(m, batch):
        return F.cross_entropy(m(batch[0]), batch[1])

    def evaluate(m):
        return classification_metrics(predict(m, data["x_val"]), data["y_val"], "val")

    def final_metrics(m, _result):
        return _test_scores(m, data) | evaluate(m)

    def figures(m, _result):
        return _variant_figures(m, data, meta)

    return base.train_variant(
        ctx, variant, model=model, optimizer=optimizer, batches=batches, loss_fn=loss_fn,
        epochs=s["epochs"], evaluate=evaluate, final_metrics=final_metrics, figures=figures,
        run_params=s, model_info={"kind": "mlp", "in": 784, "out": n_classes, **s},
    )


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back)."""
    data, _ = load_processed(ctx.processed_dir)
    return _test_scores(model, data)


def _test_scores(model, data) -> dict[str, float]:
    return classification_metrics(predict(model, data["x_test"]), data["y_test"], "test")


def _variant_figures(model, data, meta) -> dict:
    from labflow.plots import figures as figs

    classes = meta["classes"]
    logits = predict(model, data["x_test"])
    cm = confusion_matrix(logits.argmax(1), data["y_test"], len(classes)).numpy()
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Linear))
    weights = first.weight.detach().cpu().numpy()[:32].reshape(-1, 28, 28)
    # Mean first-hidden-layer activation per digit class: which neurons fire for which digit.
    with torch.no_grad():
        hidden = torch.relu(first(data["x_test"].flatten(1).to(first.weight.device))).cpu()
    per_class = np.stack([hidden[data["y_test"] == c].mean(0).numpy() for c in range(len(classes))])
    top = np.argsort(-per_class.var(0))[:64]
    return {
        "confusion_matrix": figs.confusion(cm, classes, title="test confusion matrix"),
        "first_layer_weights": figs.image_grid(weights, cols=8, title="first-layer weights (28x28, red +, blue -)", symmetric=True),
        "hidden_activations": figs.heatmap(per_class[:, top], xlabel="hidden unit (64 most class-selective)", ylabel="digit class", title="mean first-layer activation per class"),
    }


def evaluate(ctx: base.LabContext) -> None:
    from labflow.plots import figures as figs

    results = base.variant_results(ctx)
    data, meta = load_processed(ctx.processed_dir)
    classes = meta["classes"]
    samples = denormalise(data["x_train"][:16], meta)[:, 0].numpy()
    counts = torch.bincount(data["y_train"], minlength=len(classes)).tolist()
    table = [
        {"variant": v, "test_acc": r["metrics"]["test_acc"], "test_loss": r["metrics"]["test_loss"],
         "val_acc": r["metrics"]["val_acc"], "epochs": r["metrics"]["epochs_run"], "train_seconds": r["metrics"]["train_seconds"]}
        for v, r in results.items()
    ]
    figures = {
        "samples": figs.image_grid(samples, [classes[i] for i in data["y_train"][:16].tolist()], cols=8, title="training samples"),
        "label_histogram": figs.bars(dict(zip(classes, counts)), ylabel="training images", title="labels in the training split", fmt="{:.0f}"),
        "val_accuracy": figs.curves(base.series(results, "epoch", "val_acc"), xlabel="epoch", ylabel="validation accuracy", title="validation accuracy per epoch"),
        "train_loss": figs.curves(base.series(results, "epoch", "train_loss"), xlabel="epoch", ylabel="training loss", title="training loss per epoch"),
    }
    base.publish_comparison(ctx, results, table=table, figures=figures)
