"""Lab 08: imbalanced data: none, class weights, weighted sampler, random under-/over-sampling, SMOTE.

The course showed only the weighted sampler and read every number at threshold 0.5.
Here six variants train the course's small network (features -> 16 -> 8 -> ReLU ->
one logit, Adam 1e-3, batch 64, 10 epochs) from the same initial weights, and each
is read twice on the test split: at threshold 0.5 and at the threshold that
maximises the minority F1 on the validation split (never chosen on test data). The
lesson: moving the threshold changes precision and recall as much as resampling.

- ``class_weights``: binary cross-entropy with ``pos_weight = negatives / positives``;
- ``weighted_sampler``: batches drawn with replacement, each class with equal total
  probability (:class:`~labflow.train.WeightedBatches`, the in-memory
  ``WeightedRandomSampler``);
- ``undersample`` / ``oversample`` / ``smote``: imbalanced-learn's RandomUnderSampler,
  RandomOverSampler and SMOTE (SMOTENC when the table has one-hot categorical
  columns, so a synthetic customer is a student or not, never 0.4 of one), applied to
  the training split only and seeded; validation and test keep the true class rate.

Budget: the same number of updates for every variant. Resampling changes the training
set's size (undersampling keeps ~2 x the positives, ~7% of the rows; oversampling
nearly doubles it), so "the same epochs" would give the undersampled model 15x fewer
updates and the oversampled ones 2x more, mixing the effect of the data with the
amount of training. Every epoch therefore makes as many updates of ``batch_size``
rows as one pass over the original training split (resampled sets are read through
:class:`~labflow.train.StepBatches`, continuing across epochs), and every variant runs
``train.epochs`` epochs: same epochs, same updates, same examples seen.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

from labflow.frame import base
from labflow.compare.metrics import predict
from labflow.prep.tables import prepare_table_classification
from labflow.prep.tensors import load_processed
from labflow.nets.common import mlp, seeded
from labflow.train import StepBatches, TensorBatches, WeightedBatches

LAB_ID = "lab08"
TITLE = "Imbalanced data: class weights, sampling, SMOTE, and the threshold"
HEADLINE = ("test_roc_auc", "test_tuned_f1")  # what seed bands and `labflow exp` report
DATASETS = ("credit_default",)
RESAMPLERS = ("undersample", "oversample", "smote")


def preprocess(ctx: base.LabContext) -> dict:
    return prepare_table_classification(LAB_ID, "credit_default", ctx.cfg.data, ctx.seed)


# --------------------------------------------------------------------------- pieces


def resample(method: str, x: np.ndarray, y: np.ndarray, seed: int, *, k_neighbors: int = 5,
              categorical: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The training split resampled to balanced classes with imbalanced-learn (seeded)."""
    from imblearn.over_sampling import SMOTE, SMOTENC, RandomOverSampler
    from imblearn.under_sampling import RandomUnderSampler

    if method == "undersample":
        sampler = RandomUnderSampler(random_state=seed)
    elif method == "oversample":
        sampler = RandomOverSampler(random_state=seed)
    elif method == "smote":
        k = min(k_neighbors, int(np.bincount(y).min()) - 1)
        if k < 1:
            raise ValueError("SMOTE needs at least 2 minority rows in the training split; use more data")
        sampler = (SMOTENC(categorical_features=categorical, k_neighbors=k, random_state=seed) if categorical
                   else SMOTE(k_neighbors=k, random_state=seed))
    else:
        raise ValueError(f"unknown resampling method '{method}'")
    xr, yr = sampler.fit_resample(x, y)
    return np.asarray(xr, dtype=np.float32), np.asarray(yr, dtype=np.int64)


def balanced_weights(y: torch.Tensor) -> torch.Tensor:
    """Per-row weights 1 / (rows of its class): each class is drawn with the same total probability."""
    counts = torch.bincount(y, minlength=2).double()
    return (1.0 / counts)[y]


def binary_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, true positives, false positives) at every distinct score, highest first.

    Predicting 1 when ``p >= thresholds[i]`` gives ``tps[i]`` and ``fps[i]``. NumPy only,
    the same points as scikit-learn's curves: a train stage need not import sklearn.
    """
    order = np.argsort(-p, kind="mergesort")
    ys, ps = np.asarray(y)[order], np.asarray(p)[order]
    last = np.r_[np.flatnonzero(np.diff(ps)), len(ps) - 1]  # last row of each run of equal scores
    tps = np.cumsum(ys)[last]
    return ps[last], tps, (last + 1) - tps


def roc_points(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate), starting at (0, 0)."""
    _, tps, fps = binary_curve(y, p)
    return np.r_[0.0, fps / max(fps[-1], 1)], np.r_[0.0, tps / max(tps[-1], 1)]


def pr_points(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) from the highest threshold down."""
    _, tps, fps = binary_curve(y, p)
    return tps / max(tps[-1], 1), tps / (tps + fps)


def tune_threshold(y_val: np.ndarray, p_val: np.ndarray) -> float:
    """The probability threshold that maximises the minority-class F1 on the validation split.

    Ties go to the highest such threshold (fewer alarms for the same F1).
    """
    thresholds, tps, fps = binary_curve(y_val, p_val)
    positives = tps[-1]
    if positives == 0:
        return 0.5
    f1 = 2 * tps / (tps + fps + positives)  # = 2PR / (P + R)
    return float(thresholds[int(np.argmax(f1))])


def threshold_metrics(y: np.ndarray, p: np.ndarray, threshold: float, prefix: str) -> dict[str, float]:
    """Minority precision, recall, F1 and the confusion counts at ``threshold`` (predict 1 if p >= it)."""
    pred = p >= threshold
    tp, fp = int(np.sum(pred & (y == 1))), int(np.sum(pred & (y == 0)))
    fn, tn = int(np.sum(~pred & (y == 1))), int(np.sum(~pred & (y == 0)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {f"{prefix}_precision": precision, f"{prefix}_recall": recall, f"{prefix}_f1": f1,
            f"{prefix}_tp": tp, f"{prefix}_fp": fp, f"{prefix}_fn": fn, f"{prefix}_tn": tn}


def ranking_metrics(y: np.ndarray, p: np.ndarray, prefix: str) -> dict[str, float]:
    """ROC-AUC and PR-AUC (average precision, as scikit-learn defines it) of scores ``p``."""
    fpr, tpr = roc_points(y, p)
    recall, precision = pr_points(y, p)
    return {f"{prefix}_roc_auc": float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)),
            f"{prefix}_pr_auc": float(np.sum(np.diff(np.r_[0.0, recall]) * precision))}


def probabilities(model, x: torch.Tensor) -> np.ndarray:
    return torch.sigmoid(predict(model, x).flatten()).double().numpy()


def _categorical_columns(meta: dict) -> list[int]:
    """Encoded columns of the table's categorical features (one-hot groups)."""
    names = meta["feature_names"]
    return sorted(i for col, idx in meta["groups"].items() if idx and names[idx[0]] != col for i in idx)


# --------------------------------------------------------------------------- stages


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    t, v = ctx.cfg.train, ctx.variant_cfg(variant)
    data, meta = load_processed(ctx.processed_dir)
    device = ctx.device
    base.small_model_threads(ctx)
    x, y = data["x_train"], data["y_train"]
    n_features = x.shape[1]
    steps = math.ceil(len(y) / t.batch_size)  # updates per epoch for every variant
    pos_weight = None
    if v.method in RESAMPLERS:
        xr, yr = resample(v.method, x.numpy(), y.numpy(), ctx.seed, k_neighbors=t.smote_k,
                          categorical=_categorical_columns(meta))
        x, y = torch.from_numpy(xr), torch.from_numpy(yr)
        batches = StepBatches(x, y.float().unsqueeze(1), batch_size=t.batch_size, steps=steps, seed=ctx.seed, device=device)
    elif v.method == "weighted_sampler":
        batches = WeightedBatches(x, y.float().unsqueeze(1), weights=balanced_weights(y), batch_size=t.batch_size,
                                  seed=ctx.seed, device=device)
    else:
        batches = TensorBatches(x, y.float().unsqueeze(1), batch_size=t.batch_size, seed=ctx.seed, device=device)
        if v.method == "class_weights":
            counts = torch.bincount(y, minlength=2)
            pos_weight = torch.tensor([counts[0].item() / counts[1].item()], device=device)
    train_counts = torch.bincount(y, minlength=2).tolist()
    # Share of the loss carried by positives: what each method changes (0.5 = balanced).
    if v.method == "weighted_sampler":
        w = balanced_weights(y)
        effective_share = float(w[y == 1].sum() / w.sum())
    elif pos_weight is not None:
        effective_share = train_counts[1] * pos_weight.item() / (train_counts[1] * pos_weight.item() + train_counts[0])
    else:
        effective_share = train_counts[1] / len(y)
    model = seeded(lambda: mlp(n_features, t.hidden, 1), ctx.seed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=t.lr)
    y_val, y_test = data["y_val"].numpy(), data["y_test"].numpy()

    def loss_fn(m, batch):
        return F.binary_cross_entropy_with_logits(m(batch[0]), batch[1], pos_weight=pos_weight)

    def evaluate(m):
        p = probabilities(m, data["x_val"])
        val_loss = F.binary_cross_entropy(torch.from_numpy(p), torch.from_numpy(y_val).double()).item()
        at05 = threshold_metrics(y_val, p, 0.5, "val_at05")
        return {"val_loss": val_loss} | ranking_metrics(y_val, p, "val") | {
            k: at05[k] for k in ("val_at05_precision", "val_at05_recall", "val_at05_f1")}

    def final_metrics(m, _result):
        threshold, test, val_tuned = _scored(m, data)
        return (
            {"threshold": threshold, "train_rows": len(y), "train_positives": train_counts[1],
             "train_positive_share": train_counts[1] / len(y), "effective_positive_share": effective_share}
            | test | val_tuned
        )

    def figures(m, _result):
        from labflow.plots import figures as figs

        p_test = probabilities(m, data["x_test"])
        threshold = tune_threshold(y_val, probabilities(m, data["x_val"]))
        cms = {"threshold 0.5": _confusion(y_test, p_test, 0.5),
               f"tuned on val: {threshold:.3f}": _confusion(y_test, p_test, threshold)}
        return {"confusion_matrices": figs.confusion_grid(cms, meta["classes"], title=f"{variant}: test confusion matrices", cols=2)}

    result = base.train_variant(
        ctx, variant, model=model, optimizer=optimizer, batches=batches, loss_fn=loss_fn,
        epochs=t.epochs, evaluate=evaluate, final_metrics=final_metrics, figures=figures,
        run_params={"method": v.method, "lr": t.lr, "epochs": t.epochs, "batch_size": t.batch_size,
                    "updates_per_epoch": steps, "hidden": list(t.hidden), "train_rows": len(y),
                    "pos_weight": pos_weight.item() if pos_weight is not None else None},
        model_info={"kind": "mlp", "in": n_features, "out": 1, "hidden": list(t.hidden)},
    )
    p_test = probabilities(model, data["x_test"])
    base.dvc_files.write_rows(ctx.results_dir(variant) / "scores.csv",
                              [{"y": int(a), "p": float(b)} for a, b in zip(y_test, p_test)])
    return result


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back).

    The tuned threshold is the model's own, chosen on the validation split as the train stage does."""
    data, _ = load_processed(ctx.processed_dir)
    return _scored(model, data)[1]


def _scored(model, data) -> tuple[float, dict[str, float], dict[str, float]]:
    """(threshold tuned on validation, the test metrics at 0.5 and at it, the validation metrics at it)."""
    y_val, y_test = data["y_val"].numpy(), data["y_test"].numpy()
    p_val, p_test = probabilities(model, data["x_val"]), probabilities(model, data["x_test"])
    threshold = tune_threshold(y_val, p_val)
    test = (ranking_metrics(y_test, p_test, "test")
            | threshold_metrics(y_test, p_test, 0.5, "test_at05")
            | threshold_metrics(y_test, p_test, threshold, "test_tuned"))
    return threshold, test, threshold_metrics(y_val, p_val, threshold, "val_tuned")


def _confusion(y: np.ndarray, p: np.ndarray, threshold: float) -> np.ndarray:
    m = threshold_metrics(y, p, threshold, "c")
    return np.array([[m["c_tn"], m["c_fp"]], [m["c_fn"], m["c_tp"]]])


def evaluate(ctx: base.LabContext) -> None:
    from labflow.plots import figures as figs

    results = base.variant_results(ctx)
    _, meta = load_processed(ctx.processed_dir)
    table, roc, pr, cms_tuned, cms_05 = [], {}, {}, {}, {}
    for variant, r in results.items():
        m = r["metrics"]
        table.append({
            "variant": variant, "train_rows": m["train_rows"], "effective_pos_share": m["effective_positive_share"],
            "precision@0.5": m["test_at05_precision"], "recall@0.5": m["test_at05_recall"], "f1@0.5": m["test_at05_f1"],
            "threshold": m["threshold"], "precision@tuned": m["test_tuned_precision"],
            "recall@tuned": m["test_tuned_recall"], "f1@tuned": m["test_tuned_f1"],
            "roc_auc": m["test_roc_auc"], "pr_auc": m["test_pr_auc"], "train_seconds": m["train_seconds"],
        })
        rows = base.dvc_files.read_rows(r["folder"] / "scores.csv")
        y, p = np.array([row["y"] for row in rows], dtype=int), np.array([row["p"] for row in rows])
        fpr, tpr = roc_points(y, p)
        recall, precision = pr_points(y, p)
        roc[f"{variant} (AUC {m['test_roc_auc']:.3f})"] = (fpr, tpr)
        pr[f"{variant} (AP {m['test_pr_auc']:.3f})"] = (recall, precision)
        cms_tuned[f"{variant} @ {m['threshold']:.3f}"] = _confusion(y, p, m["threshold"])
        cms_05[f"{variant} @ 0.5"] = _confusion(y, p, 0.5)
    positive_rate = sum(meta["class_counts"]["test"][1:]) / meta["sizes"]["test"]
    curves = figs.panels({"ROC: false positive rate": roc, "precision-recall: recall": pr}, xlabel="",
                         ylabel="", title="test ROC and precision-recall curves, every variant")
    roc_ax, pr_ax = curves.axes
    roc_ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    roc_ax.set_ylabel("true positive rate (recall)")
    pr_ax.axhline(positive_rate, color="grey", ls="--", lw=1)
    pr_ax.set_ylabel("precision")
    for ax in curves.axes:
        ax.legend(fontsize=7)
    figures = {
        "roc_pr_curves": curves,
        "f1_threshold_05_vs_tuned": figs.grouped_bars(
            {"threshold 0.5": {r["variant"]: r["f1@0.5"] for r in table},
             "threshold tuned on validation": {r["variant"]: r["f1@tuned"] for r in table}},
            ylabel="test F1 (minority class)", title="the threshold matters as much as the resampling"),
        "precision_recall_05_vs_tuned": figs.grouped_bars(
            {"precision @0.5": {r["variant"]: r["precision@0.5"] for r in table},
             "recall @0.5": {r["variant"]: r["recall@0.5"] for r in table},
             "precision @tuned": {r["variant"]: r["precision@tuned"] for r in table},
             "recall @tuned": {r["variant"]: r["recall@tuned"] for r in table}},
            ylabel="test, minority class", title="precision and recall at 0.5 and at the validation-tuned threshold"),
        "confusion_at_0.5": figs.confusion_grid(cms_05, meta["classes"], title="test confusion matrices at threshold 0.5"),
        "confusion_tuned": figs.confusion_grid(cms_tuned, meta["classes"], title="test confusion matrices at the validation-tuned threshold"),
        "val_pr_auc": figs.curves(base.series(results, "epoch", "val_pr_auc"), xlabel="epoch", ylabel="validation PR-AUC", title="validation PR-AUC per epoch (same updates per epoch for all)"),
    }
    base.publish_comparison(ctx, results, table=table, figures=figures,
                            summary={"test_positive_rate": positive_rate})
