"""Lab 12: object detection, torchvision's SSDlite vs RetinaNet, mAP on held-out images.

Data. Quick and smoke profiles: canvases built from real Fashion-MNIST (or MNIST) images
(``canvases.py``): 1-4 objects of 20-40 px on a 96 px cluttered background, with their
true boxes and classes, generated from the seed; training, validation and test canvases
draw their objects (and their clutter) from disjoint source images (validation from a
held-out part of the source's training images, test from its test images). Full
profile: Pascal VOC 2007 (train / val / test image sets), each image resized to a
320 px square with its boxes scaled alike.

Variants (same seed, same data, same batches, same optimizer and budget):
- ``ssdlite``: SSDlite320 on MobileNetV3-Large, trained from scratch;
- ``retinanet``: RetinaNet (FPN, focal loss) on the same MobileNetV3-Large backbone, from
  scratch. Full profile: torchvision's COCO weights (SSDlite320-MobileNetV3 and
  RetinaNet-ResNet50-FPN-v2, the COCO RetinaNet torchvision has) with new class heads.
Faster R-CNN is left out: from scratch it costs 12-14 s per batch of 16 here.

Speed on a CPU (``detectors.py``): the images keep their 96 px (SSDlite's own transform
would resize them to 320 px), the networks run in ``channels_last`` layout (the default
layout's depthwise-convolution backward pass is ~50x slower), and on one CPU thread unless
params.yaml sets ``threads``: the convolutions on 96 px maps are small; a batch of 16 took
0.19 s on one thread, 0.16 s on two with the machine nearly idle, 0.52 s on two with other work
on the second core.

Evaluation. Before every evaluation the BatchNorm statistics are re-estimated on fixed
training batches (``detectors.recalibrate_batchnorm``: SSDlite's momentum 0.03 leaves
them far behind the weights after a short training, and eval-mode mAP would read near 0);
the saved model carries the re-estimated statistics. Each epoch records the detection
loss on the validation images. The evaluate stage reloads every variant's saved model,
predicts the **test** split, and computes COCO mAP@0.5, mAP@[.5:.95] and per-class AP
with torchmetrics' ``MeanAveragePrecision`` (pycocotools backend, at most 100 detections
per image); it draws the predictions on test images.

The course's bugs, fixed here:
- its "mAP" (1.1151, impossible for a precision) was the number of predicted boxes that
  overlap *any* ground-truth box by IoU > 0.5, divided by the number of ground-truth boxes:
  no ranking by score, no one-to-one matching (ten boxes on one object count ten times),
  no class check. ``seed_formula`` reproduces it so the comparison table can show it next
  to the real mAP, which is a mean of areas under precision-recall curves, within [0, 1];
- it scored the training images; here only the test split is scored;
- it resized images to 320x320 but kept the boxes in the original pixel coordinates;
- it labelled every object class 1 ("just a placeholder") and skipped any batch that raised.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from labflow.train.callbacks import load_weights
from labflow.frame import paths
from labflow.frame import base
from labflow.prep.tensors import load_processed, save_processed
from labflow.train import TensorBatches
from labflow.train.callbacks import Callback

LAB_ID = "lab12"
TITLE = "Object detection: SSDlite vs RetinaNet (torchvision), mAP on held-out images"
HEADLINE = ("test_map_50",)  # what seed bands and `labflow exp` report
HEADLINE_CURVE = "val_loss"  # the per-epoch column the seed-band figure draws
DATASETS = ("fashion_mnist", "mnist", "voc2007")
SPLITS = ("train", "val", "test")
EVAL_CHUNK = 50


# --------------------------------------------------------------------------- data


def preprocess(ctx: base.LabContext) -> dict:
    d = ctx.cfg.data
    tensors, meta = _voc_tensors(d) if d.dataset == "voc2007" else _canvas_tensors(d, ctx.seed)
    meta["sizes"] = {split: int(len(tensors[f"labels_{split}"])) for split in SPLITS}
    meta["objects"] = {split: int((tensors[f"labels_{split}"] > 0).sum()) for split in SPLITS}
    save_processed(ctx.processed_dir, tensors, meta)
    return meta


def _canvas_tensors(d, seed: int) -> tuple[dict, dict]:
    from labflow.prep.canvases import SOURCE_PARTS, canvas_splits

    splits, classes = canvas_splits(d, seed)
    tensors = {}
    for split, (canv, sources) in splits.items():
        tensors[f"images_{split}"] = torch.from_numpy(canv.images).unsqueeze(1)  # N, 1, S, S uint8
        tensors[f"boxes_{split}"] = torch.from_numpy(canv.boxes)
        tensors[f"labels_{split}"] = torch.from_numpy(canv.labels)
        tensors[f"difficult_{split}"] = torch.zeros_like(tensors[f"labels_{split}"], dtype=torch.bool)
        tensors[f"sources_{split}"] = torch.from_numpy(sources)  # -1 = no object
    meta = {"dataset": d.dataset, "source": "canvas", "classes": list(classes), "image_size": d.canvas.size,
            "source_parts": dict(SOURCE_PARTS)}
    return tensors, meta


def _voc_tensors(d) -> tuple[dict, dict]:
    """VOC images resized to ``image_size`` squares and kept JPEG-encoded (the whole set decoded would be ~3 GB)."""
    import io

    from PIL import Image

    from labflow.data import load_detection

    raw = paths.raw_dir("voc2007")
    ann = load_detection(raw)
    s = d.image_size
    limits = {"train": d.train_images, "val": d.val_images, "test": d.test_images}
    tensors = {}
    for split in SPLITS:
        entries = ann["splits"][split][: limits[split]]
        m = max(1, max(len(e["labels"]) for e in entries))
        boxes, labels = torch.zeros(len(entries), m, 4), torch.zeros(len(entries), m, dtype=torch.long)
        difficult = torch.zeros(len(entries), m, dtype=torch.bool)
        encoded = []
        for i, e in enumerate(entries):
            with Image.open(raw / "images" / f"{e['id']}.jpg") as image:
                buf = io.BytesIO()
                image.convert("RGB").resize((s, s), Image.BILINEAR, reducing_gap=None).save(buf, "JPEG", quality=90)
            encoded.append(torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8))
            k = len(e["labels"])
            if k:
                scale = torch.tensor([s / e["width"], s / e["height"]] * 2)
                boxes[i, :k] = torch.tensor(e["boxes"]) * scale  # the course kept unscaled boxes
                labels[i, :k] = torch.tensor(e["labels"]) + 1
                difficult[i, :k] = torch.tensor(e["difficult"], dtype=torch.bool)
        tensors[f"jpeg_{split}"] = torch.cat(encoded)
        tensors[f"jpeg_offsets_{split}"] = torch.tensor([0, *np.cumsum([len(b) for b in encoded])])
        tensors |= {f"boxes_{split}": boxes, f"labels_{split}": labels, f"difficult_{split}": difficult}
    meta = {"dataset": "voc2007", "source": "voc2007", "classes": ann["classes"], "image_size": s}
    return tensors, meta


class DetectionSplit:
    """One split's images (canvases in memory, or JPEG bytes decoded per batch) and targets."""

    def __init__(self, tensors: dict[str, torch.Tensor], split: str) -> None:
        self.split = split
        self.boxes, self.labels = tensors[f"boxes_{split}"], tensors[f"labels_{split}"]
        self.difficult = tensors[f"difficult_{split}"]
        self._images = tensors.get(f"images_{split}")
        self._jpeg, self._offsets = tensors.get(f"jpeg_{split}"), tensors.get(f"jpeg_offsets_{split}")
        self.grey = self._images is not None and self._images.shape[1] == 1

    def __len__(self) -> int:
        return len(self.labels)

    def images(self, idx: torch.Tensor) -> torch.Tensor:
        """Float images in [0, 1], (B, 3, S, S); grey canvases repeat their channel for the RGB backbones."""
        if self._images is not None:
            x = self._images[idx]
        else:
            x = torch.stack([self._decode(i) for i in idx.tolist()])
        return x.float().div_(255).expand(-1, 3, -1, -1)

    def _decode(self, i: int) -> torch.Tensor:
        import io

        from PIL import Image

        data = self._jpeg[self._offsets[i]:self._offsets[i + 1]].numpy().tobytes()
        with Image.open(io.BytesIO(data)) as image:
            return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)

    def targets(self, idx: torch.Tensor, *, with_difficult: bool = True) -> list[dict[str, torch.Tensor]]:
        """torchvision's per-image targets: ``boxes`` (n, 4) xyxy pixels, ``labels`` 1..K (and ``iscrowd``)."""
        out = []
        for i in idx.tolist():
            keep = self.labels[i] > 0
            if not with_difficult:
                keep &= ~self.difficult[i]
            out.append({"boxes": self.boxes[i][keep], "labels": self.labels[i][keep],
                        "iscrowd": self.difficult[i][keep].long()})
        return out

    def chunks(self, size: int = EVAL_CHUNK) -> Iterator[torch.Tensor]:
        for start in range(0, len(self), size):
            yield torch.arange(start, min(start + size, len(self)))


def load_splits(ctx: base.LabContext) -> tuple[dict[str, DetectionSplit], dict]:
    tensors, meta = load_processed(ctx.processed_dir)
    return {split: DetectionSplit(tensors, split) for split in SPLITS}, meta


# --------------------------------------------------------------------------- training


class BoxFlip(Callback):
    """Random horizontal flip of whole images with their boxes; its generator travels in checkpoints."""

    name = "box_flip"

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, images: torch.Tensor, targets: list[dict]) -> tuple[torch.Tensor, list[dict]]:
        mirror = torch.rand(len(images), generator=self.generator) < 0.5
        if not mirror.any():
            return images, targets
        width = images.shape[-1]
        images = torch.where(mirror.view(-1, 1, 1, 1).to(images.device), images.flip(-1), images)
        flipped = []
        for t, m in zip(targets, mirror.tolist()):
            if m:
                b = t["boxes"]
                t = t | {"boxes": torch.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], dim=1)}
            flipped.append(t)
        return images, flipped

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def _to(targets: list[dict], device) -> list[dict]:
    return [{k: v.to(device) for k, v in t.items() if k != "iscrowd"} for t in targets]


def detection_loss(model, images: torch.Tensor, targets: list[dict]) -> dict[str, torch.Tensor]:
    """torchvision's loss dict (``classification``, ``bbox_regression``) for one batch (model in train mode)."""
    return model(list(images.contiguous(memory_format=torch.channels_last)), targets)


def build_model(ctx: base.LabContext, variant: str, meta: dict):
    from labflow.nets.detectors import build_detector
    from labflow.nets.common import seeded

    v = ctx.variant_cfg(variant)
    return seeded(lambda: build_detector(v.arch, len(meta["classes"]) + 1, meta["image_size"],
                                         weights=ctx.cfg.train.weights, width=ctx.cfg.train.width), ctx.seed)


def calibration_batches(train: DetectionSplit, batches: int, batch_size: int) -> list[torch.Tensor]:
    """Indices of the first ``batches`` x ``batch_size`` training images (fixed, unflipped): alike for every variant."""
    n = min(len(train), batches * batch_size)
    return list(torch.arange(n).split(batch_size)) if n else []


@torch.no_grad()
def split_loss(model, split: DetectionSplit, device, chunk: int = EVAL_CHUNK) -> dict[str, float]:
    """Mean detection loss on a split with BatchNorm in eval mode (its running statistics), weights untouched."""
    from torch import nn

    was_training = model.training
    model.train()  # torchvision detectors return losses only in training mode...
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm | nn.Dropout):
            m.eval()  # ...but nothing may update statistics or drop units here
    sums: dict[str, float] = {}
    for idx in split.chunks(chunk):
        targets = _to(split.targets(idx, with_difficult=False), device)
        parts = detection_loss(model, split.images(idx).to(device), targets)
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v.item() * len(idx)
    model.train(was_training)
    return {k: v / len(split) for k, v in sums.items()}


def make_optimizer(t, params, lr: float) -> torch.optim.Optimizer:
    if t.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=t.weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=t.momentum, weight_decay=t.weight_decay)


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    from labflow.nets.detectors import recalibrate_batchnorm
    from labflow.nets.common import count_parameters

    t, v = ctx.cfg.train, ctx.variant_cfg(variant)
    splits, meta = load_splits(ctx)
    train_split, val_split = splits["train"], splits["val"]
    device = ctx.device
    base.small_model_threads(ctx)  # see the module docstring
    model = build_model(ctx, variant, meta).to(device)
    lr = v.lr or t.lr
    optimizer = make_optimizer(t, [p for p in model.parameters() if p.requires_grad], lr)
    batches = TensorBatches(torch.arange(len(train_split)), batch_size=t.batch_size, seed=ctx.seed, drop_last=True)
    flip = BoxFlip(ctx.seed) if t.flip else None
    calibration = calibration_batches(train_split, t.bn_calibration_batches, t.batch_size)
    parts: dict[str, torch.Tensor] = {}

    def loss_fn(m, batch):
        idx = batch[0]
        images, targets = train_split.images(idx), train_split.targets(idx, with_difficult=False)
        if flip is not None:
            images, targets = flip(images, targets)
        loss_dict = detection_loss(m, images.to(device), _to(targets, device))
        for k, val in loss_dict.items():
            parts[k] = parts.get(k, 0.0) + val.detach()
        return sum(loss_dict.values())

    def evaluate(m):
        row = {f"train_{k}_loss": (val / len(batches)).item() for k, val in parts.items()}
        parts.clear()
        if calibration:  # images decoded batch by batch: 50 batches of VOC images would not fit a GPU at once
            recalibrate_batchnorm(m, (train_split.images(idx).to(device) for idx in calibration))
        val = split_loss(m, val_split, device)
        row |= {f"val_{k}_loss": x for k, x in val.items()} | {"val_loss": sum(val.values())}
        return row

    def final_metrics(m, result):
        return {"val_loss": result.history[-1]["val_loss"], "parameters": count_parameters(m),
                "bn_calibration_images": sum(len(b) for b in calibration)}

    return base.train_variant(
        ctx, variant, model=model, optimizer=optimizer, batches=batches, loss_fn=loss_fn, epochs=t.epochs,
        evaluate=evaluate, final_metrics=final_metrics, callbacks=(flip,) if flip else (),
        run_params={"arch": v.arch, "width": t.width, "weights": t.weights, "optimizer": t.optimizer, "lr": lr,
                    "batch_size": t.batch_size, "epochs": t.epochs, "flip": t.flip,
                    "bn_calibration_batches": t.bn_calibration_batches, "dataset": meta["dataset"],
                    "image_size": meta["image_size"], "parameters": count_parameters(model)},
        model_info={"arch": v.arch, "width": t.width, "weights": t.weights, "num_classes": len(meta["classes"]) + 1,
                    "image_size": meta["image_size"]},
    )


# --------------------------------------------------------------------------- evaluation (test split)


def load_model(ctx: base.LabContext, variant: str):
    """A variant's trained detector as its train stage saved it (re-estimated BatchNorm statistics included).

    COCO-initialised models are rebuilt from torchvision's cached COCO weights first, for their exact structure.
    """
    from labflow.nets.detectors import build_detector

    saved = load_weights(ctx.model_dir(variant) / "model.pt")
    info = saved["info"]
    model = build_detector(info["arch"], info["num_classes"], info["image_size"], weights=info["weights"],
                           width=info["width"])
    model.load_state_dict(saved["state_dict"])
    return model.to(ctx.device).eval()


@torch.no_grad()
def predict(model, split: DetectionSplit, device) -> list[dict[str, torch.Tensor]]:
    """Eval-mode detections for every image of ``split`` (boxes, scores, labels on the CPU)."""
    from labflow.nets.common import evaluating

    out = []
    with evaluating(model):
        for idx in split.chunks():
            images = split.images(idx).to(device).contiguous(memory_format=torch.channels_last)
            out += [{k: v.cpu() for k, v in d.items()} for d in model(list(images))]
    return out


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back).

    Scored in the evaluate stage (``labs/lab12/dvc.yaml:evaluate``): COCO mAP, per-class AP@0.5 and
    the course's formula on the test split, on the model's device."""
    splits, meta = load_splits(ctx)
    test = splits["test"]
    return _test_scores(model, test, test.targets(torch.arange(len(test))), meta["classes"],
                        next(model.parameters()).device)[0]


def _test_scores(model, test: DetectionSplit, targets: list[dict], classes: list[str],
                 device) -> tuple[dict[str, float], list[dict]]:
    """(``test_*`` scores, the detections) of the test split: what the evaluate stage records per variant."""
    predictions = predict(model, test, device)
    scores = {f"test_{k}": v for k, v in detection_metrics(predictions, targets, classes).items()}
    return scores | {"test_seed_formula": seed_formula(predictions, targets)}, predictions


def detection_metrics(predictions: list[dict], targets: list[dict], classes: list[str]) -> dict[str, float]:
    """COCO mAP@0.5, mAP@[.5:.95], mAR@100 and per-class AP@0.5 (torchmetrics + pycocotools); all within [0, 1].

    Objects flagged ``iscrowd`` (VOC's "difficult") are neither required nor penalised.
    A class absent from the split gets AP -1 (COCO's convention), not 0.
    """
    from torchmetrics.detection import MeanAveragePrecision

    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} images")
    metric = MeanAveragePrecision(iou_type="bbox", max_detection_thresholds=[1, 10, 100], backend="pycocotools",
                                  extended_summary=True)
    metric.update(predictions, targets)
    r = metric.compute()
    out = {"map_50": r["map_50"].item(), "map": r["map"].item(), "map_75": r["map_75"].item(),
           "mar_100": r["mar_100"].item()}
    # precision[iou threshold, recall point, class, area range, max detections]; -1 where a class has no objects.
    precision = r["precision"][0, :, :, 0, -1]  # IoU 0.5, all areas, 100 detections
    present = {int(c) for t in targets for c in t["labels"].tolist()}
    # COCO's category order is the sorted label ids that occur in the targets or predictions.
    ids = sorted(present | {int(c) for p in predictions for c in p["labels"].tolist()})
    for label, name in enumerate(classes, start=1):
        column = precision[:, ids.index(label)] if label in ids and label in present else None
        out[f"ap50_{metric_name(name)}"] = column.clamp(min=0).mean().item() if column is not None else -1.0
    return out


def metric_name(class_name: str) -> str:
    """A class name as a metric key: 'T-shirt/top' -> 't_shirt_top', 'Ankle boot' -> 'ankle_boot'."""
    import re

    return re.sub(r"[^0-9a-z]+", "_", class_name.lower()).strip("_")


def seed_formula(predictions: list[dict], targets: list[dict], iou_threshold: float = 0.5) -> float:
    """The course's "mAP", for comparison only: per image, predicted boxes overlapping any
    ground-truth box by IoU > 0.5 divided by the number of ground-truth boxes, averaged.
    Unbounded above: every duplicate box on an object counts again, whatever its class or score."""
    from torchvision.ops import box_iou

    values = []
    for p, t in zip(predictions, targets):
        iou = box_iou(p["boxes"], t["boxes"])
        if iou.numel() == 0:
            continue
        values.append((iou.max(dim=1).values > iou_threshold).sum().item() / len(t["boxes"]))
    return sum(values) / len(values) if values else 0.0


def evaluate(ctx: base.LabContext) -> None:
    results = base.variant_results(ctx)
    base.small_model_threads(ctx)
    splits, meta = load_splits(ctx)
    test = splits["test"]  # the only split scored here: never the training images
    targets = test.targets(torch.arange(len(test)))
    classes = meta["classes"]
    predictions, table = {}, []
    for variant, r in results.items():
        scores, predictions[variant] = _test_scores(load_model(ctx, variant), test, targets, classes, ctx.device)
        r["metrics"] |= scores
        v, m = ctx.cfg.variants[variant], r["metrics"]
        table.append({"variant": variant, "arch": v.arch, "test_mAP@0.5": scores["test_map_50"],
                      "test_mAP@[.5:.95]": scores["test_map"], "test_mAR@100": scores["test_mar_100"],
                      "course_formula (not a mAP)": scores["test_seed_formula"], "parameters": m.get("parameters", 0),
                      "updates": m.get("updates", 0), "train_seconds": m["train_seconds"]})
    figures = _figures(ctx, results, test, targets, predictions, classes, meta)
    base.publish_comparison(ctx, results, table=table, figures=figures,
                            summary={"test_images": len(test), "test_objects": sum(len(t["labels"]) for t in targets)})


# --------------------------------------------------------------------------- figures


def _figures(ctx, results, test, targets, predictions, classes, meta) -> dict:
    from labflow.plots import figures as figs

    per_class = {variant: {name: r["metrics"][f"test_ap50_{metric_name(name)}"] for name in classes}
                 for variant, r in results.items()}
    e = ctx.cfg.evaluate
    return {
        "test_map": figs.grouped_bars(
            {variant: {"mAP@0.5": r["metrics"]["test_map_50"], "mAP@[.5:.95]": r["metrics"]["test_map"]}
             for variant, r in results.items()},
            ylabel="test mAP", title=f"COCO mAP on {len(test)} held-out test images ({meta['dataset']})"),
        "test_ap_per_class": figs.grouped_bars(per_class, ylabel="AP@0.5 (test)",
                                               title="average precision per class at IoU 0.5 (test split)"),
        "losses": figs.panels(
            {f"{variant}: epoch": {"train": (xs, ys), "validation": base.series(results, "epoch", "val_loss")[variant]}
             for variant, (xs, ys) in base.series(results, "epoch", "train_loss").items()},
            xlabel="epoch", ylabel="detection loss",
            title="training and validation loss per epoch (each detector has its own loss: compare within a panel)"),
        "test_predictions": draw_predictions(test, targets, predictions, classes, n=e.draw_images,
                                             min_score=e.draw_score),
    }


def draw_predictions(split: DetectionSplit, targets: list[dict], predictions: dict[str, list[dict]],
                     classes: list[str], *, n: int, min_score: float):
    """Rows: the ground truth, then each variant's detections (score >= ``min_score``), on the first ``n`` images."""
    import matplotlib.pyplot as plt

    n = min(n, len(split))
    images = split.images(torch.arange(n))
    rows = {"ground truth": [{"boxes": t["boxes"], "labels": t["labels"], "scores": None} for t in targets[:n]]}
    rows.update({v: p[:n] for v, p in predictions.items()})
    fig, axes = plt.subplots(len(rows), n, figsize=(2.4 * n, 2.6 * len(rows)), squeeze=False)
    colours = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for r, (name, dets) in enumerate(rows.items()):
        for c in range(n):
            ax = axes[r, c]
            img = images[c].permute(1, 2, 0).numpy()
            ax.imshow(img[..., 0] if split.grey else img, cmap="gray", vmin=0, vmax=1)
            d = dets[c]
            keep = torch.ones(len(d["labels"]), dtype=torch.bool) if d["scores"] is None else d["scores"] >= min_score
            for k in torch.nonzero(keep).flatten().tolist():
                x0, y0, x1, y1 = d["boxes"][k].tolist()
                label = int(d["labels"][k])
                colour = colours((label - 1) % colours.N)
                ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color=colour, linewidth=1.3))
                text = classes[label - 1] + ("" if d["scores"] is None else f" {d['scores'][k]:.2f}")
                ax.text(x0, y0 - 1, text, color="black", fontsize=6, backgroundcolor=colour, va="bottom")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.suptitle(f"test images: ground truth and detections with score >= {min_score}")
    fig.tight_layout()
    return fig
