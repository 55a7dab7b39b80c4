"""Lab 06: batch normalisation and data augmentation, the 2x2 ablation.

The course compared a plain CNN against one with both BatchNorm and augmentation, so
it could not say which of the two helped. Here all four combinations train from the
same initial convolution and linear weights (BatchNorm layers add no random weights),
with the same optimizer (SGD, lr 0.01, momentum 0.9), batches and epochs. Each epoch
records the accuracy on a fixed subset of the training images (eval mode, no
augmentation: the model's fit to the data it learns from) and on the test set; the
difference is the generalisation gap. Augmentation is a random crop from the image
padded with black and, where the data allows, a horizontal flip (right for clothes
and CIFAR-10 objects; wrong for digits, where a mirrored 2 or 7 is no digit), applied
to whole batches in memory.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from labflow.frame import base
from labflow.nets.cnn import EVAL_CHUNK, BatchAugment, black_fill, build_cnn
from labflow.prep.images import denormalise, prepare_image_splits
from labflow.compare.metrics import classification_metrics, predict
from labflow.prep.tensors import load_processed
from labflow.nets.common import count_parameters
from labflow.train import TensorBatches

LAB_ID = "lab06"
TITLE = "Batch normalisation x data augmentation (2x2 ablation)"
HEADLINE = ("test_acc",)  # what seed bands and `labflow exp` report
DATASETS = ("fashion_mnist", "cifar10")


def preprocess(ctx: base.LabContext) -> dict:
    return prepare_image_splits(LAB_ID, ctx.cfg.data.dataset, ctx.cfg.data, ctx.seed)



def make_augment(ctx: base.LabContext, meta: dict) -> BatchAugment:
    a = ctx.cfg.train.augment
    return BatchAugment(a.crop_padding, a.flip, fill=black_fill(meta), seed=ctx.seed)


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    t, v = ctx.cfg.train, ctx.variant_cfg(variant)
    data, meta = load_processed(ctx.processed_dir)
    device = ctx.device
    model = build_cnn(data["x_train"], len(meta["classes"]), ctx.seed, batch_norm=v.batch_norm).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum)
    batches = TensorBatches(data["x_train"], data["y_train"], batch_size=t.batch_size, seed=ctx.seed, device=device)
    augment = make_augment(ctx, meta) if v.augment else None
    # The training images are shuffled by preprocess: the first N are a fixed, class-balanced sample.
    x_fit, y_fit = data["x_train"][: t.train_eval_size], data["y_train"][: t.train_eval_size]

    def loss_fn(m, batch):
        x = augment(batch[0]) if augment is not None else batch[0]
        return F.cross_entropy(m(x), batch[1])

    def evaluate(m):
        row = (classification_metrics(predict(m, x_fit, chunk=EVAL_CHUNK), y_fit, "train_eval")
               | classification_metrics(predict(m, data["x_val"], chunk=EVAL_CHUNK), data["y_val"], "val")
               | _test_scores(m, data))
        row["gap"] = row["train_eval_acc"] - row["test_acc"]
        return row

    return base.train_variant(
        ctx, variant, model=model, optimizer=optimizer, batches=batches, loss_fn=loss_fn,
        epochs=t.epochs, evaluate=evaluate, final_metrics=lambda m, _r: evaluate(m),
        callbacks=(augment,) if augment is not None else (),
        run_params={"batch_norm": v.batch_norm, "augment": v.augment, "crop_padding": t.augment.crop_padding,
                    "flip": t.augment.flip, "lr": t.lr, "momentum": t.momentum, "batch_size": t.batch_size,
                    "epochs": t.epochs, "dataset": meta["dataset"], "parameters": count_parameters(model)},
        model_info={"kind": "course_cnn", "batch_norm": v.batch_norm, "in_channels": data["x_train"].shape[1],
                    "image_size": data["x_train"].shape[-1], "n_classes": len(meta["classes"])},
    )


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back)."""
    data, _ = load_processed(ctx.processed_dir)
    return _test_scores(model, data)


def _test_scores(model, data) -> dict[str, float]:
    return classification_metrics(predict(model, data["x_test"], chunk=EVAL_CHUNK), data["y_test"], "test")


def _as_images(x: torch.Tensor, meta: dict) -> np.ndarray:
    """Normalised N x C x H x W tensors back to displayable images (grey H x W or colour H x W x 3)."""
    img = denormalise(x, meta).clamp(0, 1)
    return img[:, 0].numpy() if img.shape[1] == 1 else img.permute(0, 2, 3, 1).numpy()


def _train_vs_test(results: dict):
    """One panel per variant: training and test accuracy per epoch, the gap shaded between them."""
    import matplotlib.pyplot as plt

    names = list(results)
    cols = min(2, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.6 * rows), squeeze=False, sharey=True)
    for ax, name in zip(axes.flat, names):
        h = results[name]["history"]
        ep = [r["epoch"] for r in h]
        tr, te = [r["train_eval_acc"] for r in h], [r["test_acc"] for r in h]
        ax.plot(ep, tr, marker="o", markersize=3, label="train (fixed subset, no augmentation)")
        ax.plot(ep, te, marker="o", markersize=3, label="test")
        ax.fill_between(ep, te, tr, alpha=0.15, color="grey")
        ax.set(title=f"{name}: gap {tr[-1] - te[-1]:+.3f} at the end", xlabel="epoch", ylabel="accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle("train vs test accuracy per epoch (shaded: the generalisation gap)")
    fig.tight_layout()
    return fig


def evaluate(ctx: base.LabContext) -> None:
    from labflow.plots import figures as figs

    results = base.variant_results(ctx)
    data, meta = load_processed(ctx.processed_dir)
    table = []
    for variant, r in results.items():
        v, m = ctx.cfg.variants[variant], r["metrics"]
        table.append({
            "variant": variant, "batch_norm": v.batch_norm, "augment": v.augment,
            "train_acc": m["train_eval_acc"], "test_acc": m["test_acc"], "gap": m["gap"],
            "test_loss": m["test_loss"], "train_seconds": m["train_seconds"],
        })
    originals = data["x_train"][:8]
    augmented = make_augment(ctx, meta)(originals.repeat(2, 1, 1, 1))
    samples = _as_images(torch.cat([originals, augmented]), meta)
    a = ctx.cfg.train.augment
    figures = {
        "train_vs_test_accuracy": _train_vs_test(results),
        "generalisation_gap": figs.curves(base.series(results, "epoch", "gap"), xlabel="epoch",
                                          ylabel="train accuracy - test accuracy", title="generalisation gap per epoch"),
        "test_accuracy": figs.curves(base.series(results, "epoch", "test_acc"), xlabel="epoch",
                                     ylabel="test accuracy", title=f"test accuracy per epoch ({meta['dataset']})"),
        "final_test_accuracy": figs.bars({r["variant"]: r["test_acc"] for r in table}, ylabel="test accuracy",
                                         title=f"test accuracy after {ctx.cfg.train.epochs} epochs"),
        "augmentation_samples": figs.image_grid(
            samples, ["original"] * 8 + ["augmented"] * 16, cols=8,
            title=f"augmentation: random crop (padding {a.crop_padding})" + (" + horizontal flip" if a.flip else "")),
    }
    base.publish_comparison(ctx, results, table=table, figures=figures)
