"""Lab 12: canvases (deterministic, true boxes, disjoint sources), the detectors, BatchNorm
re-estimation, and the metric: COCO mAP stays in [0, 1] and the evaluate stage scores the
test split, where the course's formula read 1.1151 on training images."""

from __future__ import annotations

import json
import urllib.error

import numpy as np
import pytest
import torch

from labflow.data.manifest import write_manifest
from labflow.frame import base
from labflow.labs.lab12_detection import lab
from labflow.prep.canvases import CanvasSpec, box_iou, make_canvases, source_pools
from labflow.nets.detectors import WeightsUnavailable, build_detector, recalibrate_batchnorm
from labflow.tracking import dvc_files

from canvas_fixture import fake_repo, params, sources  # noqa: F401  (fake_repo: a fixture)


# --------------------------------------------------------------------------- canvases


def test_canvases_are_deterministic_and_differ_by_seed():
    x, y = sources()
    a, b, c = (make_canvases(x, y, 8, CanvasSpec(), seed=s) for s in (1, 1, 2))
    for field in ("images", "boxes", "labels", "sources"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.images, c.images)


def test_canvas_boxes_are_the_true_tight_boxes_of_the_pasted_objects():
    x, y = sources()
    # No clutter and a threshold above the background level: pixels above it are object pixels.
    spec = CanvasSpec(size=96, fragments=(0, 0), noise_std=0.0, object_threshold=60, max_iou=0.0)
    canv = make_canvases(x, y, 20, spec, seed=3)
    counts = (canv.labels > 0).sum(1)
    assert counts.min() >= 1 and counts.max() <= 4 and counts.mean() > 1.5
    for i in range(20):
        boxes, labels = canv.targets(i)
        assert ((labels >= 1) & (labels <= 10)).all()
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 96).all() and (boxes[:, 2:] > boxes[:, :2]).all()
        side = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
        assert (side > 0).all() and (side <= 40).all()
        assert labels.tolist() == (y[canv.sources[i][canv.labels[i] > 0]] + 1).tolist()
        bright = canv.images[i] > 60
        covered = np.zeros_like(bright)
        for x0, y0, x1, y1 in boxes.astype(int):
            region = bright[y0:y1, x0:x1]
            # tight: every edge row and column of the box holds object pixels
            assert region[0].any() and region[-1].any() and region[:, 0].any() and region[:, -1].any()
            covered[y0:y1, x0:x1] = True
        assert not (bright & ~covered).any()  # no object pixel outside the boxes
        if len(boxes) > 1:
            iou = box_iou(boxes, boxes)
            assert (iou[~np.eye(len(boxes), dtype=bool)] == 0).all()


def test_clutter_makes_the_background_busy():
    x, y = sources()
    plain = make_canvases(x, y, 10, CanvasSpec(fragments=(0, 0), noise_std=0.0), seed=4)
    busy = make_canvases(x, y, 10, CanvasSpec(), seed=4)
    spread = lambda c: np.mean([c.images[i][_background_mask(c, i)].std() for i in range(10)])  # noqa: E731
    assert spread(plain) < 2 and spread(busy) > 10  # within a canvas: a flat grey level vs noise and fragments


def _background_mask(c, i):
    mask = np.ones(c.images[i].shape, bool)
    for x0, y0, x1, y1 in c.targets(i)[0].astype(int):
        mask[y0:y1, x0:x1] = False
    return mask


# --------------------------------------------------------------------------- preprocess on a fake raw set


def smoke_ctx(**edits) -> base.LabContext:
    def edit(raw):
        for key, value in edits.items():
            raw["lab12"]["train"][key] = value
    return base.LabContext("lab12", params(edit=edit), progress=False)


def test_preprocess_splits_use_disjoint_source_images_and_are_reproducible(fake_repo):
    ctx = smoke_ctx()
    meta = lab.preprocess(ctx)
    tensors = torch.load(ctx.processed_dir / "tensors.pt", weights_only=True)
    assert meta["sizes"] == {"train": 64, "val": 16, "test": 24} and meta["image_size"] == 96
    used = {s: set(tensors[f"sources_{s}"][tensors[f"labels_{s}"] > 0].tolist()) for s in lab.SPLITS}
    assert used["train"] and used["val"] and not used["train"] & used["val"]  # both from the raw training part
    assert meta["source_parts"] == {"train": "train", "val": "train", "test": "test"}
    assert tensors["images_train"].shape == (64, 1, 96, 96) and tensors["images_train"].dtype == torch.uint8
    first = (ctx.processed_dir / "tensors.pt").read_bytes()
    lab.preprocess(ctx)
    assert torch.load(ctx.processed_dir / "tensors.pt", weights_only=True)["images_test"].equal(tensors["images_test"])
    assert len(first) > 0


def test_source_pools_are_disjoint_and_cover_the_training_part():
    train, val = source_pools(1000, 0.15, seed=42)
    assert len(val) == 150 and not set(train) & set(val) and len(train) + len(val) == 1000


# --------------------------------------------------------------------------- detectors and training pieces


@pytest.mark.parametrize("arch", ["ssdlite320_mobilenet_v3_large", "retinanet_mobilenet_v3_fpn"])
def test_detectors_train_and_predict_on_small_fixed_size_images(arch):
    from labflow.nets.common import seeded

    a, b = (seeded(lambda: build_detector(arch, 11, 96, width=0.5), 7) for _ in range(2))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    images = torch.rand(2, 3, 96, 96)
    targets = [{"boxes": torch.tensor([[10.0, 12, 40, 44]]), "labels": torch.tensor([3])},
               {"boxes": torch.tensor([[50.0, 50, 80, 70], [5, 60, 30, 90]]), "labels": torch.tensor([1, 10])}]
    a.train()
    losses = lab.detection_loss(a, images, targets)
    assert set(losses) == {"classification", "bbox_regression"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    a.eval()
    with torch.no_grad():
        out = a(list(images))
    assert len(out) == 2 and all(len(o["boxes"]) <= 100 for o in out)
    assert a.transform.fixed_size == (96, 96)  # no resize to 320 px


def test_batchnorm_recalibration_uses_the_given_batches_and_restores_momentum():
    model = build_detector("ssdlite320_mobilenet_v3_large", 11, 96, width=0.5)
    model.eval()
    first_bn = lab_first_bn(model)
    batches = [torch.rand(4, 3, 96, 96), torch.rand(4, 3, 96, 96)]
    assert recalibrate_batchnorm(model, batches) == 8
    assert not model.training and first_bn.momentum == 0.03
    conv = model.backbone.features[0][0][0]  # the stem convolution feeding the first BatchNorm
    with torch.no_grad():
        normed, _ = model.transform(list(torch.cat(batches)))
        expected = conv(normed.tensors).mean(dim=(0, 2, 3))
    assert torch.allclose(first_bn.running_mean, expected, atol=1e-4)
    assert first_bn.num_batches_tracked == 2


def lab_first_bn(model):
    from labflow.nets.detectors import batchnorm_layers

    return batchnorm_layers(model)[0]


def test_box_flip_mirrors_images_with_their_boxes_and_resumes():
    x, y = sources()
    canv = make_canvases(x, y, 16, CanvasSpec(), seed=5)
    images = torch.from_numpy(canv.images).unsqueeze(1).float()
    targets = [{"boxes": torch.from_numpy(canv.targets(i)[0]), "labels": torch.from_numpy(canv.targets(i)[1])}
               for i in range(16)]
    flip = lab.BoxFlip(seed=1)
    state = flip.state_dict()
    out, out_t = flip(images, targets)
    mirrored = 0
    for i in range(16):
        if torch.equal(out[i], images[i]):
            assert torch.equal(out_t[i]["boxes"], targets[i]["boxes"])
            continue
        mirrored += 1
        assert torch.equal(out[i], images[i].flip(-1))
        pairs = zip(out_t[i]["boxes"].int().tolist(), targets[i]["boxes"].int().tolist())
        for (x0, y0, x1, y1), (a0, _, a1, _) in pairs:
            assert (x0, x1) == (96 - a1, 96 - a0)
            assert torch.equal(out[i][0, y0:y1, x0:x1], images[i][0, y0:y1, a0:a1].flip(-1))
    assert 3 <= mirrored <= 13
    flip.load_state_dict(state)
    assert torch.equal(flip(images, targets)[0], out)


# --------------------------------------------------------------------------- the metric


def objects(n_images=12, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_images):
        k = int(rng.integers(1, 4))
        xy = torch.from_numpy(rng.uniform(0, 60, (k, 2))).float()
        wh = torch.from_numpy(rng.uniform(15, 30, (k, 2))).float()
        out.append({"boxes": torch.cat([xy, xy + wh], 1), "labels": torch.from_numpy(rng.integers(1, 4, k)),
                    "iscrowd": torch.zeros(k, dtype=torch.long)})
    return out


CLASSES = ["a", "b", "c"]


def test_perfect_detections_score_one_and_none_score_zero():
    targets = objects()
    perfect = [{"boxes": t["boxes"], "scores": torch.ones(len(t["labels"])), "labels": t["labels"]} for t in targets]
    m = lab.detection_metrics(perfect, targets, CLASSES)
    assert m["map_50"] == pytest.approx(1.0) and m["map"] == pytest.approx(1.0)
    assert all(m[f"ap50_{c}"] == pytest.approx(1.0) for c in CLASSES)
    empty = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}
             for _ in targets]
    assert lab.detection_metrics(empty, targets, CLASSES)["map_50"] == 0.0


def test_map_stays_in_0_1_where_the_course_formula_passes_one():
    """The course's 1.1151: ten boxes on every object count ten times in its formula, once in COCO mAP."""
    targets = objects(seed=1)
    rng = torch.Generator().manual_seed(0)
    noisy = []
    for t in targets:
        boxes = t["boxes"].repeat(10, 1) + torch.randn(10 * len(t["boxes"]), 4, generator=rng)
        labels = torch.randint(1, 4, (len(boxes),), generator=rng)  # mostly the wrong class
        noisy.append({"boxes": boxes, "scores": torch.rand(len(boxes), generator=rng), "labels": labels})
    course = lab.seed_formula(noisy, targets)
    m = lab.detection_metrics(noisy, targets, CLASSES)
    assert course > 5  # ~10: one per duplicate
    assert 0.0 <= m["map"] <= m["map_50"] <= 1.0
    assert all(0.0 <= m[f"ap50_{c}"] <= 1.0 for c in CLASSES)


def test_per_class_ap50_matches_torchmetrics_class_metrics():
    from torchmetrics.detection import MeanAveragePrecision

    targets = objects(seed=2)
    rng = torch.Generator().manual_seed(1)
    preds = [{"boxes": t["boxes"] + 3 * torch.randn(len(t["boxes"]), 4, generator=rng),
              "scores": torch.rand(len(t["boxes"]), generator=rng),
              "labels": torch.where(torch.rand(len(t["labels"]), generator=rng) < 0.7, t["labels"], 4)}
             for t in targets]  # label 4 occurs only in predictions
    ours = lab.detection_metrics(preds, targets, CLASSES + ["d"])
    ref = MeanAveragePrecision(iou_thresholds=[0.5], class_metrics=True, backend="pycocotools")
    ref.update(preds, targets)
    r = ref.compute()
    per_class = dict(zip(r["classes"].tolist(), r["map_per_class"].tolist()))
    for label, name in enumerate(CLASSES, start=1):
        assert ours[f"ap50_{name}"] == pytest.approx(per_class[label], abs=1e-6)
    assert ours["ap50_d"] == -1.0  # never in the ground truth: no AP, not 0


def test_difficult_objects_are_neither_required_nor_penalised():
    t = [{"boxes": torch.tensor([[0.0, 0, 20, 20], [40, 40, 70, 70]]), "labels": torch.tensor([1, 1]),
          "iscrowd": torch.tensor([0, 1])}]
    p = [{"boxes": torch.tensor([[0.0, 0, 20, 20]]), "scores": torch.tensor([0.9]), "labels": torch.tensor([1])}]
    assert lab.detection_metrics(p, t, ["a"])["map_50"] == pytest.approx(1.0)


# --------------------------------------------------------------------------- evaluate scores the test split


class Oracle(torch.nn.Module):
    """Answers the ground truth of the images it was told about, and nothing for any other image."""

    def __init__(self, images: torch.Tensor, targets: list[dict]) -> None:
        super().__init__()
        self.known = {img.numpy().tobytes(): t for img, t in zip(images, targets)}

    def forward(self, images):
        none = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long), "scores": torch.zeros(0)}
        out = []
        for img in images:
            t = self.known.get(img.contiguous().numpy().tobytes())
            out.append(none if t is None else {"boxes": t["boxes"], "labels": t["labels"],
                                               "scores": torch.ones(len(t["labels"]))})
        return out


def test_evaluate_scores_the_test_split_and_reports_map_within_0_1(fake_repo, monkeypatch):
    ctx = smoke_ctx()
    lab.preprocess(ctx)
    splits, _ = lab.load_splits(ctx)
    test = splits["test"]
    idx = torch.arange(len(test))
    oracle = Oracle(test.images(idx), test.targets(idx))
    monkeypatch.setattr(lab, "load_model", lambda ctx, variant: oracle)
    for variant in ctx.cfg.variants:
        folder = ctx.results_dir(variant)
        dvc_files.write_metrics(folder / "metrics.json", {"val_loss": 1.0, "train_seconds": 1.0, "updates": 4})
        dvc_files.write_rows(folder / "history.csv", [{"epoch": 1, "train_loss": 2.0, "val_loss": 1.0}])
        dvc_files.write_metrics(folder / "run.json", {"run_id": None})
    lab.evaluate(ctx)
    out = json.loads((ctx.results_dir() / "metrics.json").read_text())
    assert out["summary"]["test_images"] == 24
    for variant in ctx.cfg.variants:
        # The oracle knows only the test images: scoring any other split would read 0.
        assert out[variant]["test_map_50"] == pytest.approx(1.0) and out[variant]["test_map"] == pytest.approx(1.0)
        assert out[variant]["test_seed_formula"] == pytest.approx(1.0)
    assert (ctx.results_dir() / "figures" / "test_predictions.png").stat().st_size > 0


# --------------------------------------------------------------------------- full profile pieces


def test_parse_voc_annotation_makes_continuous_xyxy_boxes():
    from labflow.data.datasets import parse_voc_annotation

    xml = """<annotation><size><width>500</width><height>375</height><depth>3</depth></size>
      <object><name>dog</name><difficult>0</difficult><bndbox><xmin>48</xmin><ymin>240</ymin>
      <xmax>195</xmax><ymax>371</ymax></bndbox></object>
      <object><name>person</name><difficult>1</difficult><bndbox><xmin>8</xmin><ymin>12</ymin>
      <xmax>352</xmax><ymax>498</ymax></bndbox></object></annotation>"""
    a = parse_voc_annotation(xml)
    assert (a["width"], a["height"]) == (500, 375)
    assert a["boxes"][0] == [47.0, 239.0, 195.0, 371.0]  # 1-based inclusive -> 0-based continuous
    assert a["labels"] == [11, 14] and a["difficult"] == [0, 1]


def test_full_profile_config_and_coco_weights_offline(monkeypatch):
    p = params("full")
    assert p.lab12.data.dataset == "voc2007" and p.lab12.train.weights == "coco"
    assert p.lab12.variants["retinanet"].arch == "retinanet_resnet50_fpn_v2"

    def unreachable(*a, **k):
        raise urllib.error.URLError("no route to host")

    import torchvision.models._api as weights_api

    monkeypatch.setattr(weights_api, "load_state_dict_from_url", unreachable)  # never touch the network
    with pytest.raises(WeightsUnavailable, match="COCO weights.*no route to host.*lab12.train.weights: none"):
        build_detector("ssdlite320_mobilenet_v3_large", 21, 320, weights="coco")


def test_coco_weights_for_retinanet_mobilenet_are_refused_by_the_config():
    def edit(raw):
        raw["lab12"]["profiles"]["full"]["variants"] = {}

    with pytest.raises(Exception, match="no COCO weights for retinanet_mobilenet_v3_fpn"):
        params("full", edit)


def test_voc_preprocess_scales_boxes_with_the_resized_images(tmp_path, monkeypatch):
    """The course resized VOC images to 320 px and kept the boxes in the original pixels."""
    from labflow.data import datasets as ds
    from voc_fixture import voc_archives

    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    raw = tmp_path / "data" / "raw" / "voc2007"
    raw.mkdir(parents=True)
    files = {}
    for name, body in voc_archives().items():
        files[name] = tmp_path / name
        files[name].write_bytes(body)
    write_manifest(raw, ds._voc2007_online(files, raw) | {"dataset": "voc2007"})

    def edit(raw_params):
        raw_params["lab12"]["profiles"]["full"]["data"]["image_size"] = 64

    ctx = base.LabContext("lab12", params("full", edit), progress=False)
    meta = lab.preprocess(ctx)
    assert meta["sizes"] == {"train": 2, "val": 1, "test": 1} and len(meta["classes"]) == 20
    splits, _ = lab.load_splits(ctx)
    test = splits["test"]
    assert test.images(torch.arange(1)).shape == (1, 3, 64, 64) and not test.grey
    t = test.targets(torch.arange(1))[0]
    # 64 x 48 image -> 64 x 64: y scaled by 4/3; VOC's 1-based inclusive (10, 12, 40, 40) -> (9, 11, 40, 40)
    assert torch.allclose(t["boxes"][0], torch.tensor([9.0, 11 * 4 / 3, 40, 40 * 4 / 3]))
    assert t["labels"].tolist() == [12, 15]  # dog, person: VOC class index + 1
    train = splits["train"]
    assert len(train.targets(torch.tensor([1]), with_difficult=False)[0]["labels"]) == 1  # the difficult person dropped
    assert train.targets(torch.tensor([1]))[0]["iscrowd"].tolist() == [0, 1]  # kept, and ignored, when scoring


def test_metric_names_of_classes():
    assert [lab.metric_name(c) for c in ("T-shirt/top", "Ankle boot", "7")] == ["t_shirt_top", "ankle_boot", "7"]


def test_test_scores_reproduce_the_test_metrics_the_evaluate_stage_wrote(fake_repo):
    """A tiny smoke run of one detector: ``test_scores`` of its saved model (left in train mode)
    gives the test mAP, per-class AP and course formula the evaluate stage wrote, and keeps the mode."""
    def one_variant(raw):
        raw["lab12"]["variants"] = {"ssdlite": raw["lab12"]["variants"]["ssdlite"]}
        for profile in raw["lab12"].get("profiles", {}).values():
            profile.get("variants", {}).pop("retinanet", None)

    ctx = base.LabContext("lab12", params(edit=one_variant), progress=False)
    lab.preprocess(ctx)
    lab.train(ctx, "ssdlite")
    lab.evaluate(ctx)
    compared = json.loads((ctx.results_dir() / "metrics.json").read_text())["ssdlite"]
    model = lab.load_model(ctx, "ssdlite").train()
    scores = lab.test_scores(ctx, "ssdlite", model)
    assert {"test_map_50", "test_map", "test_map_75", "test_mar_100", "test_seed_formula"} <= set(scores)
    assert {k for k in compared if k.startswith("test_")} == set(scores)
    assert scores == pytest.approx({k: compared[k] for k in scores}, rel=1e-6)
    assert model.training
