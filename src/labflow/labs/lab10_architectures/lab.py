"""Lab 10: a simple CNN vs VGG vs ResNet18, each trained from scratch on the same data.

The networks are torchvision's own VGG and ResNet18 builders adapted to 28-32 px inputs
(``architectures.py``: first convolution, pooling, classifier) and the course's simple CNN;
params.yaml names each variant's architecture and width multiplier (the quick profile
narrows VGG and ResNet to a quarter of their channels to fit two CPU cores; full: 1.0).

What the course did differently, and why it changed:
- Its VGG16 and ResNet18 were torchvision's ImageNet layouts on 32 px images: ResNet's
  stride-2 stem and max-pool shrink the image to 8 px before the first block, and VGG16's
  7x7 adaptive pool copies a 1x1 map 49 times into a 4096-wide classifier (134M parameters,
  most of them in the classifier). The adapted builders keep the convolutional bodies.
- It trained all three with SGD at lr 0.001 (its simple CNN ended at 48.9% training accuracy
  after 10 epochs, still climbing). Here every network gets the same Adam (lr 1e-3), the same
  batches in the same order and the same epochs, and is built right after seeding with the
  same seed (different networks cannot share weights; each starts from its own seeded init).
- Its simple CNN had three convolutions (32-64-128) and a 512-unit layer; here it is the
  course CNN of labs 04 and 06 (32-64, fc 128), so the labs' numbers can be read together.

Metrics per network: test accuracy (per epoch and final), training seconds (the loop's
clock: evaluation excluded), parameter count, forward FLOPs per image, and test accuracy
per second of training. On a shared CPU the seconds move by 10-20% from run to run.
Each model is saved with ``info`` = the keyword arguments of ``architectures.build``, so
labs 11 and 13 rebuild it with ``build(**info)``.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from labflow.frame import base
from labflow.nets.cnn import EVAL_CHUNK, BatchAugment, black_fill
from labflow.prep.images import prepare_image_splits
from labflow.compare.metrics import classification_metrics, predict
from labflow.prep.tensors import load_processed
from labflow.nets.common import count_parameters, seeded
from labflow.train import TensorBatches

LAB_ID = "lab10"
TITLE = "Simple CNN vs VGG vs ResNet18, from scratch"
HEADLINE = ("test_acc",)  # what seed bands and `labflow exp` report
DATASETS = ("fashion_mnist", "cifar10")


def preprocess(ctx: base.LabContext) -> dict:
    return prepare_image_splits(LAB_ID, ctx.cfg.data.dataset, ctx.cfg.data, ctx.seed)


def model_info(arch: str, width: float, x: torch.Tensor, n_classes: int) -> dict:
    """The keyword arguments of ``architectures.build`` for images like ``x`` (N, C, H, W)."""
    return {"arch": arch, "in_channels": int(x.shape[1]), "n_classes": int(n_classes),
            "width": float(width), "image_size": int(x.shape[-1])}


def build_model(info: dict, seed: int) -> torch.nn.Module:
    """The network ``info`` describes, built right after seeding (lab 11 rebuilds the same init)."""
    from labflow.nets.architectures import build

    return seeded(lambda: build(**info), seed)


def forward_mflops(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Millions of floating-point operations of one image's forward pass (eval mode)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x[:1].to(next(model.parameters()).device))
    model.train(was_training)
    return counter.get_total_flops() / 1e6


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    t, v = ctx.cfg.train, ctx.variant_cfg(variant)
    data, meta = load_processed(ctx.processed_dir)
    device = ctx.device
    info = model_info(v.arch, v.width, data["x_train"], len(meta["classes"]))
    model = build_model(info, ctx.seed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=t.lr)
    batches = TensorBatches(data["x_train"], data["y_train"], batch_size=t.batch_size, seed=ctx.seed, device=device)
    a = t.augment
    augment = BatchAugment(a.crop_padding, a.flip, fill=black_fill(meta), seed=ctx.seed) if a.crop_padding or a.flip else None
    parameters = count_parameters(model)
    mflops = forward_mflops(model, data["x_test"])
    initial = classification_metrics(predict(model, data["x_test"], chunk=EVAL_CHUNK), data["y_test"], "initial_test")

    def loss_fn(m, batch):
        x = augment(batch[0]) if augment is not None else batch[0]
        return F.cross_entropy(m(x), batch[1])

    def evaluate(m):
        return classification_metrics(predict(m, data["x_val"], chunk=EVAL_CHUNK), data["y_val"], "val") | _test_scores(m, data)

    def final_metrics(m, result):
        final = evaluate(m)
        return final | initial | {
            "parameters": parameters,
            "mflops_per_image": round(mflops, 3),
            "test_acc_per_train_second": final["test_acc"] / max(result.train_seconds, 1e-9),
        }

    return base.train_variant(
        ctx, variant, model=model, optimizer=optimizer, batches=batches, loss_fn=loss_fn,
        epochs=t.epochs, evaluate=evaluate, final_metrics=final_metrics,
        callbacks=(augment,) if augment is not None else (),
        run_params={"arch": v.arch, "width": v.width, "optimizer": "adam", "lr": t.lr, "batch_size": t.batch_size,
                    "epochs": t.epochs, "crop_padding": a.crop_padding, "flip": a.flip, "dataset": meta["dataset"],
                    "parameters": parameters},
        model_info=info,
    )


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back)."""
    data, _ = load_processed(ctx.processed_dir)
    return _test_scores(model, data)


def _test_scores(model, data) -> dict[str, float]:
    return classification_metrics(predict(model, data["x_test"], chunk=EVAL_CHUNK), data["y_test"], "test")


def _labelled_points(points: dict[str, tuple[float, float]], *, xlabel: str, ylabel: str, title: str, logx: bool = False):
    """One labelled point per variant (e.g. accuracy against parameter count)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, (x, y) in points.items():
        ax.scatter([x], [y], s=50, label=name)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, 6), fontsize=9)
    if logx:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    return fig


def _label(row: dict) -> str:
    return row["variant"] if row["arch"] == "simple_cnn" else f"{row['variant']} ({row['arch']}, width {row['width']:g})"


def evaluate(ctx: base.LabContext) -> None:
    from labflow.plots import figures as figs

    results = base.variant_results(ctx)
    _, meta = load_processed(ctx.processed_dir)
    table = []
    for variant, r in results.items():
        v, m = ctx.cfg.variants[variant], r["metrics"]
        table.append({
            "variant": variant, "arch": v.arch, "width": v.width, "parameters": int(m["parameters"]),
            "mflops_per_image": m["mflops_per_image"], "test_acc": m["test_acc"], "test_loss": m["test_loss"],
            "train_seconds": m["train_seconds"], "test_acc_per_train_second": m["test_acc_per_train_second"],
        })

    def from_start(x: str, y: str, start_x: float, start: str) -> dict:
        # Epoch 0 / second 0: each network's own seeded init, before any update.
        return {v: ([start_x, *xs], [results[v]["metrics"][start], *ys]) for v, (xs, ys) in base.series(results, x, y).items()}

    data_name, epochs = meta["dataset"], ctx.cfg.train.epochs
    figures = {
        "test_accuracy": figs.curves(from_start("epoch", "test_acc", 0, "initial_test_acc"), xlabel="epoch",
                                     ylabel="test accuracy", title=f"test accuracy per epoch ({data_name}; epoch 0 = init)"),
        "accuracy_vs_train_time": figs.curves(from_start("seconds", "test_acc", 0.0, "initial_test_acc"),
                                              xlabel="training seconds (evaluation excluded)", ylabel="test accuracy",
                                              title="test accuracy against training time (one point per epoch)"),
        "accuracy_vs_parameters": _labelled_points(
            {_label(r): (r["parameters"], r["test_acc"]) for r in table}, xlabel="parameters (log scale)",
            ylabel="test accuracy", title=f"test accuracy after {epochs} epochs against parameter count", logx=True),
        "train_loss": figs.curves(base.series(results, "epoch", "train_loss"), xlabel="epoch",
                                  ylabel="mean training loss of the epoch", title=f"training loss per epoch ({data_name})"),
        "accuracy_per_train_second": figs.bars({r["variant"]: r["test_acc_per_train_second"] for r in table},
                                               ylabel="test accuracy / training second", fmt="{:.4f}",
                                               title="test accuracy per second of training"),
    }
    base.publish_comparison(ctx, results, table=table, figures=figures)
