"""Lab 09: the course's small CNN on digits, beside lab 01's MLP on the same split.

The course's CNN: conv 16 (3x3) -> ReLU -> maxpool -> conv 32 -> ReLU -> maxpool -> fc 128
-> logits (``cnn.course_cnn`` with ``channels=(16, 32)``). Variants: ``cnn`` at lab 01's
Adam lr 0.001 and ``cnn_course_lr`` at the course's lr 0.01, from the same initial weights
(a variant may also set ``batch_norm``: BatchNorm draws no random numbers, so the conv and
linear weights stay the same).

The comparison partner is lab 01's MLP, which is not retrained here. To make that a fair
comparison:

- the data is lab 01's: ``preprocess`` copies ``data/processed/lab01`` byte for byte (same
  images, same train/val/test split, same normalisation), a DVC dependency;
- training copies lab 01's budget: Adam at lab 01's lr 0.001, batch size 64, 10 epochs, and
  the same batch order (``TensorBatches`` seeded with the same seed over the same tensors);
- the evaluate stage reads lab 01's ``metrics.json`` (its numbers fill the MLP row) and
  ``model.pt`` (parameter count, and its test predictions for the confusion matrix and the
  per-class accuracy), all DVC dependencies. It checks that the MLP's accuracy recomputed on
  lab 09's test images equals the one lab 01 reported, which fails if the splits differ.

Changed from the course: Adam lr 0.01 -> 0.001 for ``cnn`` (lab 01's, for the comparison; at
0.01 the course's loss stalled at 0.05-0.06 from the second epoch on, and here
``cnn_course_lr`` ends 1-2.5 points below ``cnn``, its exact value moving by a point with the
CPU thread count, a sign of an unstable run); the first-layer filters are shown
before and after training (the course showed only the trained ones), plus feature maps, a
confusion matrix and per-class accuracy; the device is chosen, not hard-coded to "mps".
"""

from __future__ import annotations

import shutil

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from labflow.train.callbacks import load_weights
from labflow.frame import paths
from labflow.frame import base
from labflow.nets.cnn import EVAL_CHUNK, course_cnn, image_shape
from labflow.prep.images import denormalise
from labflow.compare.metrics import classification_metrics, predict
from labflow.prep.tensors import load_processed
from labflow.nets.common import count_parameters, mlp, seeded
from labflow.train import TensorBatches

LAB_ID = "lab09"
TITLE = "CNN basics: the course's small CNN vs lab 01's MLP"
HEADLINE = ("test_acc",)  # what seed bands and `labflow exp` report
DATASETS = ("mnist",)
# The model compared against, read (not retrained) from its lab's outputs; dvc.yaml names its files.
BASELINE_LAB, BASELINE_VARIANT = "lab01", "mlp"
BASELINE = f"{BASELINE_LAB}_{BASELINE_VARIANT}"
FEATURE_MAP_IMAGES = 4


# --------------------------------------------------------------------------- data


def preprocess(ctx: base.LabContext) -> dict:
    """Copy the source lab's processed data byte for byte: the same split by construction.

    The manifest lists the same files with the same hashes, so the runs of both labs carry
    the same data hash in MLflow.
    """
    from labflow.data.download import DataError
    from labflow.data.manifest import verify_manifest, write_manifest

    source_lab = ctx.cfg.data.same_split_as
    source = paths.processed_dir(source_lab)
    if not (source / "manifest.json").exists():
        raise DataError(f"{source} is missing: lab 09 trains on {source_lab}'s split. "
                        f"Run `dvc repro labs/{source_lab}/dvc.yaml:preprocess` first.")
    files = verify_manifest(source)["files"]
    target = ctx.processed_dir
    if target.exists():
        shutil.rmtree(target)
    for rel in files:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, target / rel)
    write_manifest(target, extra={"copied_from": f"data/processed/{source_lab}"})
    _, meta = load_processed(target)
    return meta


# --------------------------------------------------------------------------- models


def model_info(x: torch.Tensor, n_classes: int, train_cfg, batch_norm: bool) -> dict:
    """Everything needed to rebuild the CNN from its saved state dict."""
    channels, side = image_shape(x)
    return {"kind": "course_cnn", "in_channels": channels, "image_size": side, "n_classes": n_classes,
            "channels": list(train_cfg.channels), "hidden": train_cfg.hidden, "batch_norm": batch_norm}


def cnn_from_info(info: dict) -> nn.Sequential:
    return course_cnn(info["in_channels"], info["image_size"], info["n_classes"], batch_norm=info["batch_norm"],
                      channels=tuple(info["channels"]), hidden=info["hidden"])


def build_model(info: dict, seed: int) -> nn.Module:
    """The CNN built right after seeding: every variant starts from the same conv and linear weights."""
    return seeded(lambda: cnn_from_info(info), seed)


def first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


@torch.no_grad()
def conv_activations(model: nn.Sequential, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The output of each convolution block's ReLU (before its pooling), named conv1, conv2, ..."""
    was_training = model.training
    model.eval()
    out, h = {}, x.to(next(model.parameters()).device)
    for layer in model:
        if isinstance(layer, nn.Flatten):
            break
        h = layer(h)
        if isinstance(layer, nn.ReLU):
            out[f"conv{len(out) + 1}"] = h.cpu()
    model.train(was_training)
    return out


def load_model(path, build) -> tuple[nn.Module, dict]:
    """A saved ``{"state_dict", "info"}`` file back into a model on the CPU, in eval mode."""
    saved = load_weights(path)
    model = build(saved["info"])
    model.load_state_dict(saved["state_dict"])
    return model.eval(), saved["info"]


def baseline_from_info(info: dict) -> nn.Module:
    if info.get("kind") != "mlp":
        raise ValueError(f"{BASELINE_LAB}/{BASELINE_VARIANT}'s model.pt holds a '{info.get('kind')}', expected an mlp")
    return mlp(info["in"], info["hidden"], info["out"], dropout=info["dropout"])


def feature_map_samples(y: torch.Tensor, n: int) -> list[int]:
    """Indices of the first test image of each of the first ``n`` distinct classes, in test order."""
    picked, seen = [], set()
    for i, label in enumerate(y.tolist()):
        if label not in seen:
            picked.append(i)
            seen.add(label)
        if len(picked) == n:
            break
    return picked


# --------------------------------------------------------------------------- train


def _settings(ctx: base.LabContext, variant: str) -> dict:
    t, v = ctx.cfg.train, ctx.variant_cfg(variant)
    return {"epochs": t.epochs, "batch_size": t.batch_size, "lr": v.lr or t.lr, "batch_norm": v.batch_norm,
            "channels": list(t.channels), "hidden": t.hidden}


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    s = _settings(ctx, variant)
    data, meta = load_processed(ctx.processed_dir)
    device = ctx.device
    info = model_info(data["x_train"], len(meta["classes"]), ctx.cfg.train, s["batch_norm"])
    model = build_model(info, ctx.seed).to(device)
    initial_filters = first_conv(model).weight.detach().cpu().clone()
    optimizer = torch.optim.Adam(model.parameters(), lr=s["lr"])
    # Lab 01's batches: same tensors, batch size and seed, so the same images in the same order.
    batches = TensorBatches(data["x_train"], data["y_train"], batch_size=s["batch_size"], seed=ctx.seed, device=device)
    parameters = count_parameters(model)

    def loss_fn(m, batch):
        return F.cross_entropy(m(batch[0]), batch[1])

    def evaluate(m):
        return classification_metrics(predict(m, data["x_val"], chunk=EVAL_CHUNK), data["y_val"], "val")

    def final_metrics(m, _result):
        return _test_scores(m, data) | evaluate(m) | {"parameters": parameters}

    def figures(m, _result):
        return _variant_figures(m, initial_filters, data, meta, variant)

    return base.train_variant(
        ctx, variant, model=model, optimizer=optimizer, batches=batches, loss_fn=loss_fn,
        epochs=s["epochs"], evaluate=evaluate, final_metrics=final_metrics, figures=figures,
        run_params=s | {"parameters": parameters, "dataset": meta["dataset"]}, model_info=info,
    )


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back)."""
    data, _ = load_processed(ctx.processed_dir)
    return _test_scores(model, data)


def _test_scores(model, data) -> dict[str, float]:
    return classification_metrics(predict(model, data["x_test"], chunk=EVAL_CHUNK), data["y_test"], "test")


def _variant_figures(model, initial_filters, data, meta, variant) -> dict:
    from labflow.plots import feature_maps as fm

    after = first_conv(model).weight.detach().cpu()
    idx = feature_map_samples(data["y_test"], FEATURE_MAP_IMAGES)
    x = data["x_test"][idx]
    maps = {name: a.numpy() for name, a in conv_activations(model, x).items()}
    k = after.shape[-1]
    return {
        "first_layer_filters": fm.filters_before_after(
            initial_filters[:, 0].numpy(), after[:, 0].numpy(),
            title=f"{variant}: first-layer {k}x{k} filters (red +, blue -; each on its own scale)"),
        "feature_maps": fm.feature_maps(
            denormalise(x, meta)[:, 0].numpy(), maps, per_layer=8,
            row_titles=[f"digit {meta['classes'][c]}" for c in data["y_test"][idx].tolist()],
            title=f"{variant}: ReLU outputs of each conv layer (its 8 most active channels) for test images"),
    }


# --------------------------------------------------------------------------- evaluate


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Each true class's share predicted right (the confusion matrix's diagonal over its row sums)."""
    return np.diag(cm) / np.maximum(cm.sum(1), 1)


def check_same_split(reported: float, recomputed: float, n_test: int) -> None:
    """Lab 01's reported accuracy must be what its model scores on lab 09's test images."""
    from labflow.data.download import DataError

    if abs(reported - recomputed) > 1.5 / n_test:
        raise DataError(
            f"{BASELINE_LAB}'s {BASELINE_VARIANT} scores {recomputed:.4f} on lab 09's {n_test} test images but "
            f"{BASELINE_LAB} reported {reported:.4f}: the labs no longer share their split. Rerun "
            f"`dvc repro labs/{BASELINE_LAB}/dvc.yaml:train labs/{LAB_ID}/dvc.yaml:preprocess`.")


def _baseline(data: dict, seed: int) -> dict:
    """Lab 01's MLP as lab 01 left it (its run with training seed ``seed``): metrics, history, model; nothing retrained."""
    from labflow.tracking import dvc_files

    folder = paths.results_dir(BASELINE_LAB, BASELINE_VARIANT, seed)
    model_file = paths.model_dir(BASELINE_LAB, BASELINE_VARIANT, seed) / "model.pt"
    for needed in (folder / "metrics.json", model_file):
        if not needed.exists():
            raise FileNotFoundError(f"{needed} is missing: lab 09 compares with {BASELINE_LAB}'s {BASELINE_VARIANT}. "
                                    f"Run `dvc repro labs/{BASELINE_LAB}/dvc.yaml:train@{BASELINE_VARIANT}-{seed}` first.")
    model, info = load_model(model_file, baseline_from_info)
    return {
        "metrics": dvc_files.read_metrics_and_timings(folder),  # its train_seconds live in timings.json
        "history": dvc_files.read_rows(folder / "history.csv"),
        "parameters": count_parameters(model),
        "pred": predict(model, data["x_test"]).argmax(1),
        "info": info,
    }


def evaluate(ctx: base.LabContext) -> None:
    from sklearn.metrics import confusion_matrix

    from labflow.plots import figures as figs

    results = base.variant_results(ctx)
    data, meta = load_processed(ctx.processed_dir)
    classes, y_test = meta["classes"], data["y_test"].numpy()
    labels = list(range(len(classes)))
    baseline = _baseline(data, ctx.params.seed)  # lab 01 run with the primary seed
    preds = {v: predict(load_model(ctx.model_dir(v) / "model.pt", cnn_from_info)[0], data["x_test"], chunk=EVAL_CHUNK).argmax(1)
             for v in results}
    preds[BASELINE] = baseline["pred"]
    cms = {name: confusion_matrix(y_test, p.numpy(), labels=labels) for name, p in preds.items()}
    per_class = {name: per_class_accuracy(cm) for name, cm in cms.items()}
    recomputed = float(np.trace(cms[BASELINE]) / len(y_test))
    check_same_split(baseline["metrics"]["test_acc"], recomputed, len(y_test))

    def row(name, lab, model, lr, parameters, m):
        worst = int(np.argmin(per_class[name]))
        return {"variant": name, "lab": lab, "model": model, "lr": lr, "parameters": parameters,
                "test_acc": m["test_acc"], "test_loss": m["test_loss"], "val_acc": m["val_acc"],
                "worst_digit": classes[worst], "worst_digit_acc": float(per_class[name][worst]),
                "epochs": m["epochs_run"], "train_seconds": m["train_seconds"]}

    c1, c2 = ctx.cfg.train.channels
    cnn_name = f"CNN conv {c1}-{c2}, fc {ctx.cfg.train.hidden}"
    table = [row(v, LAB_ID, cnn_name + (" + BN" if ctx.cfg.variants[v].batch_norm else ""),
                 ctx.cfg.variants[v].lr or ctx.cfg.train.lr, r["metrics"]["parameters"], r["metrics"])
             for v, r in results.items()]
    mlp_shape = "-".join(str(n) for n in (baseline["info"]["in"], *baseline["info"]["hidden"], baseline["info"]["out"]))
    table.append(row(BASELINE, f"{BASELINE_LAB} (read, not retrained)", f"MLP {mlp_shape}", baseline["info"].get("lr"),
                     baseline["parameters"],
                     baseline["metrics"]))
    summary = {
        BASELINE: {**baseline["metrics"], "parameters": baseline["parameters"], "test_acc_recomputed": recomputed},
        "per_class_acc": {name: dict(zip(classes, map(float, acc))) for name, acc in per_class.items()},
    }
    val_curves = base.series(results, "epoch", "val_acc") | base.series({BASELINE: baseline}, "epoch", "val_acc")
    figures = {
        "test_accuracy": figs.bars({f"{r['variant']}\n{r['parameters']:,} params": r["test_acc"] for r in table},
                                   ylabel="test accuracy", title=f"test accuracy on the same {len(y_test)} test images"),
        "val_accuracy": figs.curves(val_curves, xlabel="epoch", ylabel="validation accuracy",
                                    title="validation accuracy per epoch (same split, batches and optimizer)"),
        "per_class_accuracy": _per_class_figure(per_class, classes),
    }
    for name, cm in cms.items():
        figures[f"confusion_matrix_{name}"] = figs.confusion(cm, classes, title=f"{name}: test confusion matrix")
    first = next(iter(results))
    if (preds[first] != data["y_test"]).any():
        figures[f"mistakes_{first}"] = _mistakes(data, meta, preds[first], first)
    base.publish_comparison(ctx, results, table=table, figures=figures, summary=summary)


def _per_class_figure(per_class: dict, classes: list[str]):
    from labflow.plots import figures as figs

    fig = figs.grouped_bars({n: dict(zip(classes, map(float, a))) for n, a in per_class.items()},
                            ylabel="test accuracy", title="test accuracy per digit (y axis cut: the bars differ near 1)",
                            fmt="{:.2f}")
    lowest = min(float(a.min()) for a in per_class.values())
    fig.axes[0].set_ylim(max(0.0, lowest - 0.05), 1.01)
    fig.axes[0].legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=len(per_class), fontsize=8)
    fig.set_size_inches(12, 4)
    return fig


def _mistakes(data, meta, pred: torch.Tensor, name: str, limit: int = 24):
    from labflow.plots import figures as figs

    wrong = torch.nonzero(pred != data["y_test"]).flatten()[:limit]
    images = denormalise(data["x_test"][wrong], meta)[:, 0].numpy()
    titles = [f"{meta['classes'][t]} -> {meta['classes'][p]}" for t, p in zip(data["y_test"][wrong].tolist(), pred[wrong].tolist())]
    return figs.image_grid(images, titles, cols=8,
                           title=f"{name}: the first {len(wrong)} misclassified test images (true -> predicted)")
