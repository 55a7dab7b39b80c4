"""Lab 19: UNet segmentation (segmentation-models-pytorch), Dice loss vs Dice + BCE.

Data. Quick and smoke profiles: canvases built from real Fashion-MNIST (or MNIST) images
(``canvases.py``, as lab 12's): 1-3 objects of 20-36 px on a 64 px background cluttered
with noise, a random grey level and fragments of other images, each canvas with its true
mask (the pasted objects' own pixels, never the clutter). On a blank canvas the mask would
be the input thresholded (a threshold alone scores IoU 1.0, tested); the clutter is what a
network has to learn to ignore, and a tuned global threshold is the baseline in the table.
Training, validation and test canvases draw their objects and their clutter from disjoint
source images (validation from a held-out part of the source's training images, test from
its test images). Full profile: Oxford-IIIT Pet masks (torchvision) or the user's folder of
image/mask pairs (``data.segmentation``, ``labflow.data.segmentation``), its training part split
into train and validation.

Variants: the same UNet (encoder, depth, decoder), seed and initial weights, batches, Adam
learning rate and epochs; only the loss differs:
- ``dice``: smp's soft Dice loss on the batch (the course's loss);
- ``dice_bce``: the same Dice loss plus per-pixel binary cross-entropy.
The encoder trains from scratch (``encoder_weights: null``): no ImageNet weights are available
offline. The quick profile cuts the encoder to depth 4 (ResNet18 without its last stage,
layer4, which this module does not even build) with a narrow decoder, at 64 px.

Evaluation (test split only): IoU and Dice (F1) from smp's metrics, over all test pixels
(micro) and per image (mean), the per-pixel BCE (how well the probabilities are calibrated),
the same scores for the threshold baseline (its threshold chosen on the training images),
and overlays of prediction vs truth on test images.

The course's bugs, fixed here:
- it trained on one folder and showed a prediction on a *training* image, with no metric:
  here every score and overlay is on held-out test images from unseen source objects;
- it defined an IoU function and never called it, and reported only the training loss;
- it built an Adam optimizer at lr 1e-4, then trained with another one at 1e-3 (the first
  was dead code); here one optimizer, its lr in params.yaml;
- it normalised ImageNet-pretrained inputs with mean 0.5 / std 0.5 instead of the ImageNet
  statistics the encoder was trained with; here ImageNet weights (full profile) get ImageNet
  statistics, and a network from scratch gets its training images' own.

segmentation-models-pytorch (and timm under it) is imported only inside this module's
functions: no other lab's stage pays for it (tested). On a CPU the stages run on one thread
unless params.yaml sets ``threads`` (as lab 12: with other work on the second core, two
threads on these small convolutions stall each other).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from labflow.train.callbacks import load_weights
from labflow.frame import paths
from labflow.data.download import DataError
from labflow.frame import base
from labflow.prep.tensors import load_processed, save_processed
from labflow.train import TensorBatches

LAB_ID = "lab19"
TITLE = "UNet segmentation (segmentation-models-pytorch): Dice vs Dice + BCE, IoU on held-out images"
DATASETS = ("fashion_mnist", "mnist", "segmentation")
SPLITS = ("train", "val", "test")
HEADLINE = ("test_iou", "test_dice")  # what the seed bands compare (labflow.compare.seed_bands)
HEADLINE_CURVE = "val_iou"
EVAL_CHUNK = 64
FIT_IMAGES = 300  # training images the fit to the training data is measured on (eval mode)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
BASELINE = "threshold (baseline)"


# --------------------------------------------------------------------------- data


def preprocess(ctx: base.LabContext) -> dict:
    d = ctx.cfg.data
    tensors, meta = _canvas_tensors(d, ctx.seed) if d.canvases else _real_tensors(d, ctx.seed)
    x = tensors["images_train"].float() / 255
    meta["mean"] = x.mean(dim=(0, 2, 3)).tolist()
    meta["std"] = x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()
    meta["channels"] = int(x.shape[1])
    meta["sizes"] = {split: int(len(tensors[f"masks_{split}"])) for split in SPLITS}
    meta["foreground_share"] = {split: float(tensors[f"masks_{split}"].float().mean()) for split in SPLITS}
    save_processed(ctx.processed_dir, tensors, meta)
    return meta


def _canvas_tensors(d, seed: int) -> tuple[dict, dict]:
    from labflow.prep.canvases import SOURCE_PARTS, canvas_splits

    splits, _classes = canvas_splits(d, seed)
    tensors = {}
    for split, (canv, sources) in splits.items():
        tensors[f"images_{split}"] = torch.from_numpy(canv.images).unsqueeze(1)  # N, 1, S, S uint8
        tensors[f"masks_{split}"] = torch.from_numpy(canv.masks.astype(np.uint8)).unsqueeze(1)  # N, 1, S, S 0/1
        tensors[f"sources_{split}"] = torch.from_numpy(sources)  # -1 = no object
    meta = {"dataset": d.dataset, "source": "canvas", "image_size": d.canvas.size, "source_parts": dict(SOURCE_PARTS)}
    return tensors, meta


def _real_tensors(d, seed: int) -> tuple[dict, dict]:
    """A real set's training part split into train/val (seeded), its test part as test; the first N of each."""
    from labflow.data.segmentation import load_segmentation
    from labflow.prep.canvases import SOURCE_PARTS, source_pools

    data = load_segmentation(paths.raw_dir(d.dataset))
    train_pool, val_pool = source_pools(len(data.x_train), d.val_source_fraction, seed)
    parts = {"train": (data.x_train, data.m_train, train_pool), "val": (data.x_train, data.m_train, val_pool),
             "test": (data.x_test, data.m_test, np.arange(len(data.x_test)))}
    limits = {"train": d.train_images, "val": d.val_images, "test": d.test_images}
    tensors = {}
    for split, (x, m, idx) in parts.items():
        idx = idx[: limits[split]]
        tensors[f"images_{split}"] = torch.from_numpy(np.ascontiguousarray(x[idx].transpose(0, 3, 1, 2)))
        tensors[f"masks_{split}"] = torch.from_numpy(m[idx]).unsqueeze(1)
    meta = {"dataset": data.source or d.dataset, "source": d.dataset, "image_size": int(data.x_train.shape[1]),
            "source_parts": dict(SOURCE_PARTS)}
    return tensors, meta


# --------------------------------------------------------------------------- model, loss, metrics


class WeightsUnavailable(DataError):
    """The encoder's pretrained weights could not be fetched (offline): one line naming the key to change."""


def build_unet(encoder: str, depth: int, decoder_channels, in_channels: int, weights: str | None = None):
    """smp's Unet with one output channel (foreground logits); encoder stages deeper than ``depth`` are not kept.

    smp builds the whole encoder and skips its deeper stages in ``forward``; dropping them keeps
    the saved model and its parameter count to what the network uses (ResNet18 to depth 4:
    2.8M of its 11.2M encoder weights).
    """
    import segmentation_models_pytorch as smp

    try:
        model = smp.Unet(encoder_name=encoder, encoder_depth=depth, encoder_weights=weights,
                         decoder_channels=tuple(decoder_channels), in_channels=in_channels, classes=1)
    except Exception as err:  # noqa: BLE001 - offline hub errors come in many types
        if weights is None:
            raise
        raise WeightsUnavailable(
            f"the {weights} weights of {encoder} could not be loaded ({type(err).__name__}: {err}); they come from "
            "the Hugging Face hub (internet). Set lab19.model.encoder_weights: null to train from scratch."
        ) from None
    unused = [m for stride, modules in model.encoder.get_stages().items() if stride > 2**depth for m in modules]
    for name, child in list(model.encoder.named_children()):
        if any(child is m for m in unused):
            delattr(model.encoder, name)
    return model


def normalisation(meta: dict, weights: str | None) -> tuple[list[float], list[float]]:
    """(mean, std) per input channel on the 0-1 scale: ImageNet's for ImageNet weights, else the training images'."""
    if weights is None:
        return list(meta["mean"]), list(meta["std"])
    if meta["channels"] == 3:
        return list(IMAGENET_MEAN), list(IMAGENET_STD)
    return [float(np.mean(IMAGENET_MEAN))] * meta["channels"], [float(np.mean(IMAGENET_STD))] * meta["channels"]


class Normalise:
    """uint8 N x C x S x S -> normalised float on ``device``."""

    def __init__(self, mean, std, device) -> None:
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        self.device = device

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return (images.to(self.device).float() / 255 - self.mean) / self.std


def segmentation_loss(kind: str, bce_weight: float = 1.0) -> Callable[[torch.Tensor, torch.Tensor], tuple]:
    """``(logits, masks) -> (loss, {"dice": ..., "bce": ...})``: the loss to minimise and both terms, detached.

    Dice is smp's soft Dice loss over the batch (``1 - 2|P.Y| / (|P| + |Y|)`` on sigmoid
    probabilities P); BCE is computed for both variants so their curves can be compared,
    and enters the loss only for ``dice_bce``.
    """
    from segmentation_models_pytorch.losses import DiceLoss

    dice_loss = DiceLoss("binary", from_logits=True)
    if kind not in ("dice", "dice_bce"):
        raise ValueError(f"unknown loss '{kind}'; choose dice or dice_bce")

    def loss(logits: torch.Tensor, masks: torch.Tensor):
        masks = masks.float()
        dice = dice_loss(logits, masks)
        bce = F.binary_cross_entropy_with_logits(logits, masks)
        total = dice if kind == "dice" else dice + bce_weight * bce
        return total, {"dice": dice.detach(), "bce": bce.detach()}

    return loss


def pixel_stats(probs: torch.Tensor, masks: torch.Tensor, threshold: float | None = 0.5):
    """smp's per-image (tp, fp, fn, tn) counts, each N x 1: ``probs`` thresholded, or 0/1 predictions (``None``)."""
    import segmentation_models_pytorch as smp

    output = probs if threshold is not None else probs.long()
    return smp.metrics.get_stats(output, masks.long(), mode="binary", threshold=threshold)


def segmentation_scores(stats) -> dict[str, float]:
    """IoU and Dice (= F1) over all pixels of the split (micro) and as a mean over its images, from smp's metrics."""
    import segmentation_models_pytorch as smp

    m = smp.metrics
    return {"iou": m.iou_score(*stats, reduction="micro").item(), "dice": m.f1_score(*stats, reduction="micro").item(),
            "iou_per_image": m.iou_score(*stats, reduction="micro-imagewise").item(),
            "dice_per_image": m.f1_score(*stats, reduction="micro-imagewise").item(),
            "pixel_accuracy": m.accuracy(*stats, reduction="micro").item()}


def per_image_iou(stats) -> np.ndarray:
    import segmentation_models_pytorch as smp

    return smp.metrics.iou_score(*stats, reduction="none")[:, 0].numpy()


@torch.no_grad()
def predict(model, images: torch.Tensor, normalise: Normalise, chunk: int = EVAL_CHUNK) -> torch.Tensor:
    """Foreground probabilities (eval mode), float32 N x 1 x S x S on the CPU."""
    from labflow.nets.common import evaluating

    with evaluating(model):
        out = [torch.sigmoid(model(normalise(images[i:i + chunk]))).cpu() for i in range(0, len(images), chunk)]
    return torch.cat(out)


def split_scores(probs: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    """Scores at probability 0.5 plus the Dice loss and BCE of the probabilities (comparable across variants)."""
    scores = segmentation_scores(pixel_stats(probs, masks))
    p, y = probs.clamp(1e-7, 1 - 1e-7), masks.float()
    scores["dice_loss"] = (1 - 2 * (p * y).sum() / (p.sum() + y.sum()).clamp_min(1e-7)).item()
    scores["bce_loss"] = F.binary_cross_entropy(p, y).item()
    return scores


# --------------------------------------------------------------------------- the threshold baseline


def grey_levels(images: torch.Tensor) -> torch.Tensor:
    """uint8 N x S x S intensity (the mean of the channels, rounded)."""
    return images.float().mean(1).round().to(torch.uint8) if images.shape[1] > 1 else images[:, 0]


def fit_threshold(images: torch.Tensor, masks: torch.Tensor) -> tuple[int, bool, float]:
    """(level, bright, IoU): the global grey-level threshold with the best pixel IoU on these images.

    ``bright``: foreground is above the level (else below it). Exhaustive over all 256 levels
    and both polarities, from the histograms of foreground and background pixels.
    """
    grey, fg = grey_levels(images).long().flatten(), masks[:, 0].flatten().bool()
    fg_hist = torch.bincount(grey[fg], minlength=256).double()
    bg_hist = torch.bincount(grey[~fg], minlength=256).double()
    n_fg = fg_hist.sum()
    best = (0, True, -1.0)
    for bright in (True, False):
        # Foreground predicted at levels > t (bright) or < t (dark), for t = 0..255.
        tp = n_fg - fg_hist.cumsum(0) if bright else fg_hist.cumsum(0) - fg_hist
        fp = bg_hist.sum() - bg_hist.cumsum(0) if bright else bg_hist.cumsum(0) - bg_hist
        iou = tp / (n_fg + fp).clamp_min(1)
        t = int(iou.argmax())
        if iou[t].item() > best[2]:
            best = (t, bright, iou[t].item())
    return best


def apply_threshold(images: torch.Tensor, level: int, bright: bool) -> torch.Tensor:
    grey = grey_levels(images).unsqueeze(1)
    return (grey > level if bright else grey < level).to(torch.uint8)


# --------------------------------------------------------------------------- training


def load_splits(ctx: base.LabContext) -> tuple[dict[str, torch.Tensor], dict]:
    return load_processed(ctx.processed_dir)


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    from labflow.nets.common import count_parameters, seeded

    t, v, mc = ctx.cfg.train, ctx.variant_cfg(variant), ctx.cfg.model
    data, meta = load_splits(ctx)
    device = ctx.device
    base.small_model_threads(ctx)  # one thread unless params.yaml sets threads (see the module docstring)
    model = seeded(lambda: build_unet(mc.encoder, mc.encoder_depth, mc.decoder_channels, meta["channels"],
                                      mc.encoder_weights), ctx.seed).to(device)
    mean, std = normalisation(meta, mc.encoder_weights)
    normalise = Normalise(mean, std, device)
    loss = segmentation_loss(v.loss, v.bce_weight)
    optimizer = torch.optim.Adam(model.parameters(), lr=t.lr)
    images, masks = data["images_train"], data["masks_train"]
    batches = TensorBatches(torch.arange(len(images)), batch_size=t.batch_size, seed=ctx.seed, drop_last=True)
    parts: dict[str, torch.Tensor] = {}

    def loss_fn(m, batch):
        idx = batch[0]
        total, terms = loss(m(normalise(images[idx])), masks[idx].to(device))
        for k, val in terms.items():
            parts[k] = parts.get(k, 0.0) + val
        return total

    def evaluate(m):
        row = {f"train_{k}_loss": (val / len(batches)).item() for k, val in parts.items()}
        parts.clear()
        val = split_scores(predict(m, data["images_val"], normalise), data["masks_val"])
        return row | {f"val_{k}": x for k, x in val.items()}

    def final_metrics(m, result):
        # Every training seed's run scores the test split here (the seed bands compare them);
        # the evaluate stage draws the primary seed's predictions.
        last = result.history[-1]
        test, _ = _scored_test(m, data, normalise)
        fit = split_scores(predict(m, images[:FIT_IMAGES], normalise), masks[:FIT_IMAGES])
        return ({k: last[k] for k in last if k.startswith("val_")} | test
                | {"train_iou": fit["iou"], "parameters": count_parameters(m)})

    return base.train_variant(
        ctx, variant, model=model, optimizer=optimizer, batches=batches, loss_fn=loss_fn, epochs=t.epochs,
        evaluate=evaluate, final_metrics=final_metrics,
        input_example=normalise(images[:2]).cpu(),  # the batches are indices; the model takes normalised images
        run_params={"loss": v.loss, "bce_weight": v.bce_weight if v.loss == "dice_bce" else 0.0,
                    "encoder": mc.encoder, "encoder_depth": mc.encoder_depth,
                    "decoder_channels": list(mc.decoder_channels), "encoder_weights": str(mc.encoder_weights),
                    "optimizer": "adam", "lr": t.lr, "batch_size": t.batch_size, "epochs": t.epochs,
                    "dataset": meta["dataset"], "image_size": meta["image_size"],
                    "parameters": count_parameters(model)},
        model_info={"encoder": mc.encoder, "encoder_depth": mc.encoder_depth,
                    "decoder_channels": list(mc.decoder_channels), "in_channels": meta["channels"],
                    "encoder_weights": mc.encoder_weights, "mean": mean, "std": std},
    )


# --------------------------------------------------------------------------- evaluation (test split)


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back).

    Its inputs normalised as the train stage normalised them (params' encoder weights, the
    training images' statistics), on the model's device."""
    data, meta = load_splits(ctx)
    mean, std = normalisation(meta, ctx.cfg.model.encoder_weights)
    return _scored_test(model, data, Normalise(mean, std, next(model.parameters()).device))[0]


def _scored_test(model, data, normalise: Normalise) -> tuple[dict[str, float], torch.Tensor]:
    """(``test_*`` scores, foreground probabilities) of the test images: what the train and evaluate stages record."""
    probs = predict(model, data["images_test"], normalise)
    return {f"test_{k}": x for k, x in split_scores(probs, data["masks_test"]).items()}, probs


def load_model(ctx: base.LabContext, variant: str):
    """A variant's trained UNet as its train stage saved it (rebuilt from scratch, then its weights loaded)."""
    saved = load_weights(ctx.model_dir(variant) / "model.pt")
    info = saved["info"]
    model = build_unet(info["encoder"], info["encoder_depth"], info["decoder_channels"], info["in_channels"])
    model.load_state_dict(saved["state_dict"])
    return model.to(ctx.device).eval(), Normalise(info["mean"], info["std"], ctx.device)


def evaluate(ctx: base.LabContext) -> None:
    results = base.variant_results(ctx)
    base.small_model_threads(ctx)
    data, meta = load_splits(ctx)
    test_x, test_y = data["images_test"], data["masks_test"]  # scores and overlays: never the training images
    level, bright, train_iou = fit_threshold(data["images_train"], data["masks_train"])
    baseline_pred = apply_threshold(test_x, level, bright)
    baseline_stats = pixel_stats(baseline_pred, test_y, threshold=None)
    baseline = segmentation_scores(baseline_stats)
    predictions, per_image, table = {}, {BASELINE: per_image_iou(baseline_stats)}, []
    for variant, r in results.items():
        # The primary seed's model (params.yaml: seed), rescored here: its predictions are drawn below.
        model, normalise = load_model(ctx, variant)
        scores, probs = _scored_test(model, data, normalise)
        stats = pixel_stats(probs, test_y)
        fit = split_scores(predict(model, data["images_train"][:FIT_IMAGES], normalise),
                           data["masks_train"][:FIT_IMAGES])
        predictions[variant], per_image[variant] = probs, per_image_iou(stats)
        r["metrics"] |= scores | {"train_iou": fit["iou"]}
        v, m = ctx.cfg.variants[variant], r["metrics"]
        table.append({"variant": variant, "loss": "Dice" if v.loss == "dice" else f"Dice + {v.bce_weight:g} x BCE",
                      "test_IoU": scores["test_iou"], "test_Dice": scores["test_dice"],
                      "test_IoU_per_image": scores["test_iou_per_image"], "test_BCE": scores["test_bce_loss"],
                      "train_IoU": fit["iou"], "parameters": m.get("parameters", 0),
                      "updates": m.get("updates", 0), "train_seconds": m.get("train_seconds", 0.0)})
    rule = f"grey {'>' if bright else '<'} {level}"
    table.append({"variant": BASELINE, "loss": f"none ({rule}, chosen on training images)",
                  "test_IoU": baseline["iou"], "test_Dice": baseline["dice"],
                  "test_IoU_per_image": baseline["iou_per_image"], "test_BCE": "", "train_IoU": train_iou,
                  "parameters": 0, "updates": 0, "train_seconds": 0.0})
    summary = {"test_images": len(test_x), "threshold_level": level, "threshold_bright": bright,
               "threshold_train_iou": train_iou} | {f"threshold_test_{k}": x for k, x in baseline.items()}
    figures = _figures(ctx, results, meta, test_x, test_y, predictions, baseline_pred, baseline, per_image, rule)
    base.publish_comparison(ctx, results, table=table, figures=figures, summary=summary)


# --------------------------------------------------------------------------- figures


def _figures(ctx, results, meta, test_x, test_y, predictions, baseline_pred, baseline, per_image, rule) -> dict:
    from labflow.plots import figures as figs

    scores = {v: {"IoU": r["metrics"]["test_iou"], "Dice": r["metrics"]["test_dice"]} for v, r in results.items()}
    scores[BASELINE] = {"IoU": baseline["iou"], "Dice": baseline["dice"]}
    shown = {BASELINE: baseline_pred.float()} | predictions
    n = ctx.cfg.evaluate.draw_images
    return {
        "test_overlays": draw_overlays(test_x[:n], test_y[:n], {k: p[:n] for k, p in shown.items()}, meta),
        "test_scores": figs.grouped_bars(scores, ylabel="test score",
                                         title=f"IoU and Dice on {len(test_x)} held-out test images"),
        "val_iou": figs.curves(base.series(results, "epoch", "val_iou"), xlabel="epoch", ylabel="validation IoU",
                               title=f"validation IoU per epoch (threshold baseline on test: {baseline['iou']:.3f})"),
        "losses": figs.panels(
            {name: {f"{variant} {part}": base.series(results, "epoch", f"{prefix}_{term}_loss")[variant]
                    for variant in results for part, prefix in (("train", "train"), ("validation", "val"))}
             for name, term in (("epoch (soft Dice loss)", "dice"), ("epoch (binary cross-entropy)", "bce"))},
            xlabel="epoch", ylabel="loss",
            title="both terms for every variant (the dice variant trains on the Dice loss only; its BCE is measured)"),
        "test_iou_per_image": figs.histograms(per_image, xlabel="IoU of one test image", bins=20,
                                              title=f"IoU per test image (threshold baseline: {rule})"),
        "test_probabilities": _probability_histogram(figs, predictions),
    }


def _probability_histogram(figs, predictions: dict[str, torch.Tensor]):
    """Predicted foreground probabilities of the test pixels (log counts): Dice alone pushes them to 0 or 1."""
    fig = figs.histograms({v: p.flatten().numpy() for v, p in predictions.items()}, bins=25,
                          xlabel="predicted foreground probability (every test pixel)",
                          title="how sure each UNet is: probabilities of the test pixels")
    fig.axes[0].set_yscale("log")
    return fig


def draw_overlays(images: torch.Tensor, masks: torch.Tensor, predictions: dict[str, torch.Tensor], meta: dict):
    """Rows: the image, its true mask, then each prediction (at 0.5) coloured by agreement with the truth.

    Green: foreground found; red: background called foreground; blue: foreground missed.
    The per-image IoU is in each panel's title.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    n = len(images)
    rows = 2 + len(predictions)
    fig, axes = plt.subplots(rows, n, figsize=(1.9 * n, 2.0 * rows), squeeze=False)
    pictures = images.permute(0, 2, 3, 1).float().numpy() / 255
    grey = pictures.mean(-1)
    truth = masks[:, 0].bool().numpy()
    for c in range(n):
        axes[0, c].imshow(pictures[c, ..., 0] if pictures.shape[-1] == 1 else pictures[c],
                          cmap="gray", vmin=0, vmax=1)
        axes[1, c].imshow(truth[c], cmap="gray", vmin=0, vmax=1)
        for r, (name, probs) in enumerate(predictions.items(), start=2):
            pred = probs[c, 0].numpy() >= 0.5
            overlay = np.repeat(grey[c][..., None] * 0.45, 3, axis=-1)
            overlay[pred & truth[c]] = (0.1, 0.8, 0.2)
            overlay[pred & ~truth[c]] = (0.95, 0.15, 0.1)
            overlay[~pred & truth[c]] = (0.15, 0.35, 1.0)
            union = (pred | truth[c]).sum()
            axes[r, c].imshow(overlay)
            axes[r, c].set_title(f"IoU {(pred & truth[c]).sum() / max(union, 1):.2f}", fontsize=8)
    for r, label in enumerate(["test image", "true mask", *predictions]):
        axes[r, 0].set_ylabel(label, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    legend = {"found": (0.1, 0.8, 0.2), "false alarm": (0.95, 0.15, 0.1), "missed": (0.15, 0.35, 1.0)}
    fig.legend(handles=[Patch(color=c, label=k) for k, c in legend.items()], loc="lower center", ncol=3, fontsize=8)
    fig.suptitle(f"held-out test images ({meta['dataset']}): truth and predictions")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig
