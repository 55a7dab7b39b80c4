"""Lab 19: canvases with true masks (the pasted objects, never the clutter), disjoint source
images per split, the losses on toy cases, the metrics (a perfect prediction scores IoU 1),
the threshold baseline (IoU 1 on a blank canvas, not on a cluttered one), evaluation on the
test split only, the full profile's data sets, and smp imported by lab 19's stages only."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from labflow.frame.config import ConfigError, SegmentationSource
from labflow.data.download import DataError
from labflow.data.manifest import verify_manifest
from labflow.data.segmentation import fetch_segmentation, load_segmentation, pet_foreground
from labflow.frame import base
from labflow.labs.lab19_segmentation import lab
from labflow.prep.canvases import CanvasSpec, make_canvases
from labflow.tracking import dvc_files

from canvas_fixture import fake_repo, params, sources  # noqa: F401  (fake_repo: a fixture)
from conftest import REPO


BLANK = CanvasSpec(size=64, max_objects=3, min_object_px=16, max_object_px=32, fragments=(0, 0), noise_std=0.0,
                   object_threshold=60)


# --------------------------------------------------------------------------- canvases and their masks


def test_on_a_blank_canvas_the_mask_is_the_input_thresholded():
    """Why the canvases are cluttered: without clutter a threshold alone is a perfect segmenter."""
    x, y = sources()
    canv = make_canvases(x, y, 20, BLANK, seed=3)
    assert canv.masks.dtype == bool and canv.masks.shape == (20, 64, 64)
    assert np.array_equal(canv.masks, canv.images > 60)  # the background stays below 50 here
    images, masks = torch.from_numpy(canv.images).unsqueeze(1), torch.from_numpy(canv.masks).unsqueeze(1)
    level, bright, iou = lab.fit_threshold(images, masks)
    assert bright and iou == pytest.approx(1.0)


def test_masks_are_the_pasted_objects_pixels_inside_their_boxes():
    x, y = sources()
    spec = CanvasSpec(size=64, min_objects=1, max_objects=1, min_object_px=16, max_object_px=32, object_threshold=60)
    canv = make_canvases(x, y, 20, spec, seed=5)
    for i in range(20):
        (box,), _ = canv.targets(i)
        x0, y0, x1, y1 = box.astype(int)
        rows, cols = np.flatnonzero(canv.masks[i].any(1)), np.flatnonzero(canv.masks[i].any(0))
        assert (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1) == (x0, y0, x1, y1)  # the box is the mask's extent
        # an object pixel is at least as bright as the object (pasted with max over the background)
        assert (canv.images[i][canv.masks[i]] > 60).all()


def test_the_clutter_is_not_in_the_masks():
    x, y = sources()
    canv = make_canvases(x, y, 20, CanvasSpec(size=64, max_objects=3, min_object_px=16, max_object_px=32), seed=6)
    outside = np.ones_like(canv.masks)
    for i in range(20):
        for x0, y0, x1, y1 in canv.targets(i)[0].astype(int):
            outside[i, y0:y1, x0:x1] = False
    assert not (canv.masks & outside).any()  # no mask pixel outside the objects' boxes...
    assert (canv.images[outside] > 100).mean() > 0.01  # ...where bright fragments of other images lie


# --------------------------------------------------------------------------- preprocess on a fake raw set


def smoke_ctx(profile="smoke", edit=None) -> base.LabContext:
    return base.LabContext("lab19", params(profile, edit), progress=False)


def test_preprocess_splits_use_disjoint_source_images_and_are_reproducible(fake_repo):
    ctx = smoke_ctx()
    meta = lab.preprocess(ctx)
    tensors = torch.load(ctx.processed_dir / "tensors.pt", weights_only=True)
    assert meta["sizes"] == {"train": 48, "val": 16, "test": 24} and meta["channels"] == 1
    used = {s: set(tensors[f"sources_{s}"][tensors[f"sources_{s}"] >= 0].tolist()) for s in lab.SPLITS}
    assert used["train"] and used["val"] and not used["train"] & used["val"]  # both from the raw training part
    assert meta["source_parts"] == {"train": "train", "val": "train", "test": "test"}
    for split in lab.SPLITS:
        images, masks = tensors[f"images_{split}"], tensors[f"masks_{split}"]
        assert images.shape == masks.shape == (meta["sizes"][split], 1, 64, 64) and masks.dtype == torch.uint8
        assert 0.02 < masks.float().mean() < 0.6 and set(masks.unique().tolist()) == {0, 1}
    lab.preprocess(ctx)
    again = torch.load(ctx.processed_dir / "tensors.pt", weights_only=True)
    assert all(again[k].equal(v) for k, v in tensors.items())


# --------------------------------------------------------------------------- losses and metrics on toy cases


def toy_masks():
    y = torch.zeros(2, 1, 8, 8)
    y[0, 0, 2:5, 2:6] = 1  # 12 pixels
    y[1, 0, 0:2, 0:2] = 1  # 4 pixels
    return y


def test_losses_on_a_perfect_a_wrong_and_an_undecided_prediction():
    y = toy_masks()
    dice, dice_bce = lab.segmentation_loss("dice"), lab.segmentation_loss("dice_bce", bce_weight=0.5)
    perfect = 30 * (2 * y - 1)
    for loss in (dice, dice_bce):
        total, terms = loss(perfect, y)
        assert total.item() == pytest.approx(0, abs=1e-6) and terms["bce"].item() == pytest.approx(0, abs=1e-6)
    assert dice(-perfect, y)[0].item() == pytest.approx(1, abs=1e-6)  # every pixel wrong: no overlap at all
    # p = 0.5 everywhere: Dice = 2 * 0.5|Y| / (0.5 N + |Y|) over the batch, BCE = ln 2 per pixel.
    undecided = torch.zeros_like(y)
    expected_dice = 1 - 2 * 0.5 * 16 / (0.5 * 128 + 16)
    total, terms = dice(undecided, y)
    assert total.item() == pytest.approx(expected_dice, rel=1e-5) and terms["bce"].item() == pytest.approx(math.log(2))
    total, terms = dice_bce(undecided, y)
    assert total.item() == pytest.approx(expected_dice + 0.5 * math.log(2), rel=1e-5)
    with pytest.raises(ValueError, match="unknown loss"):
        lab.segmentation_loss("focal")


def test_dice_alone_gives_no_gradient_to_bce_only_pixels_far_from_a_decision():
    """Dice sees the background only through |P|: the BCE term is what pushes each pixel's probability."""
    y = toy_masks()
    logits = torch.zeros_like(y, requires_grad=True)
    lab.segmentation_loss("dice")(logits, y)[0].backward()
    dice_grad = logits.grad.clone()
    logits.grad = None
    lab.segmentation_loss("dice_bce")(logits, y)[0].backward()
    assert not torch.allclose(dice_grad, logits.grad)
    bce_grad = torch.autograd.grad(torch.nn.functional.binary_cross_entropy_with_logits(logits, y), logits)[0]
    assert torch.allclose(logits.grad, dice_grad + bce_grad, atol=1e-7)


def test_metrics_perfect_empty_and_half_overlap():
    y = toy_masks()
    perfect = lab.segmentation_scores(lab.pixel_stats(y.clone(), y))
    assert perfect["iou"] == pytest.approx(1.0) and perfect["dice"] == pytest.approx(1.0)
    assert perfect["iou_per_image"] == pytest.approx(1.0) and perfect["pixel_accuracy"] == pytest.approx(1.0)
    assert lab.segmentation_scores(lab.pixel_stats(torch.zeros_like(y), y))["iou"] == 0.0
    # one image: truth 2 pixels, prediction 2 pixels, 1 shared -> IoU 1/3, Dice 1/2
    t, p = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    t[0, 0, 0, :2] = 1
    p[0, 0, 0, 1:3] = 1
    s = lab.segmentation_scores(lab.pixel_stats(p.long(), t, threshold=None))
    assert s["iou"] == pytest.approx(1 / 3) and s["dice"] == pytest.approx(1 / 2)


def test_micro_iou_matches_torchmetrics_and_per_image_is_the_mean():
    from torchmetrics.classification import BinaryJaccardIndex

    g = torch.Generator().manual_seed(0)
    probs, y = torch.rand(5, 1, 16, 16, generator=g), (torch.rand(5, 1, 16, 16, generator=g) > 0.7).long()
    stats = lab.pixel_stats(probs, y)
    scores = lab.segmentation_scores(stats)
    assert scores["iou"] == pytest.approx(BinaryJaccardIndex(threshold=0.5)(probs, y).item(), abs=1e-6)
    assert scores["iou_per_image"] == pytest.approx(float(lab.per_image_iou(stats).mean()), abs=1e-6)
    split = lab.split_scores(probs, y)
    bce = torch.nn.functional.binary_cross_entropy(probs, y.float()).item()
    assert split["bce_loss"] == pytest.approx(bce, rel=1e-5)


def test_threshold_baseline_finds_the_level_and_the_polarity():
    g = torch.Generator().manual_seed(1)
    masks = (torch.rand(4, 1, 16, 16, generator=g) > 0.6).to(torch.uint8)
    bright = torch.where(masks.bool(), 200, 90).to(torch.uint8)  # fg 200, bg 90: any level in [90, 200) separates
    level, is_bright, iou = lab.fit_threshold(bright, masks)
    assert is_bright and 90 <= level < 200 and iou == pytest.approx(1.0)
    assert torch.equal(lab.apply_threshold(bright, level, is_bright), masks)
    dark = 255 - bright
    level, is_bright, iou = lab.fit_threshold(dark, masks)
    assert not is_bright and iou == pytest.approx(1.0) and torch.equal(lab.apply_threshold(dark, level, False), masks)
    rgb = bright.repeat(1, 3, 1, 1)
    assert lab.fit_threshold(rgb, masks)[2] == pytest.approx(1.0)


def test_threshold_baseline_falls_short_on_cluttered_canvases():
    x, y = sources(200, seed=3)
    canv = make_canvases(x, y, 40, CanvasSpec(size=64, max_objects=3, min_object_px=16, max_object_px=32), seed=2)
    _, _, iou = lab.fit_threshold(torch.from_numpy(canv.images).unsqueeze(1), torch.from_numpy(canv.masks).unsqueeze(1))
    assert 0.3 < iou < 0.95


# --------------------------------------------------------------------------- the model


def test_unet_from_the_same_seed_is_the_same_and_keeps_only_the_stages_it_uses():
    from labflow.nets.common import seeded

    a, b = (seeded(lambda: lab.build_unet("resnet18", 4, (32, 16, 8, 8), 1), 3) for _ in range(2))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not hasattr(a.encoder, "layer4") and hasattr(a.encoder, "layer3")
    x = torch.rand(2, 1, 64, 64)
    assert a.eval()(x).shape == (2, 1, 64, 64)
    assert hasattr(lab.build_unet("resnet18", 5, (32, 16, 8, 8, 8), 3).encoder, "layer4")


def test_imagenet_weights_offline_name_the_key_to_change(monkeypatch):
    import segmentation_models_pytorch.encoders as encoders

    def unreachable(*a, **k):
        raise OSError("no route to host")

    monkeypatch.setattr(encoders, "hf_hub_download", unreachable)  # never touch the network
    with pytest.raises(DataError, match="imagenet weights of resnet18.*no route to host.*encoder_weights: null"):
        lab.build_unet("resnet18", 4, (32, 16, 8, 8), 3, weights="imagenet")


def test_normalisation_uses_imagenet_statistics_only_for_imagenet_weights():
    meta = {"mean": [0.2], "std": [0.3], "channels": 1}
    assert lab.normalisation(meta, None) == ([0.2], [0.3])
    mean, std = lab.normalisation({**meta, "channels": 3}, "imagenet")
    assert mean == list(lab.IMAGENET_MEAN) and std == list(lab.IMAGENET_STD)
    norm = lab.Normalise([0.5], [0.25], "cpu")
    assert torch.allclose(norm(torch.tensor([[[[0, 255]]]], dtype=torch.uint8)), torch.tensor([[[[-2.0, 2.0]]]]))


def test_config_checks_the_unet_against_the_image_side():
    def odd_canvas(raw):
        raw["lab19"]["data"]["canvas"]["size"] = 72  # not a multiple of 16 (depth 4)

    with pytest.raises(ConfigError, match=r"lab19.data.canvas.size 72.*multiple of 16"):
        params("quick", odd_canvas)

    def short_decoder(raw):
        raw["lab19"]["model"]["decoder_channels"] = [16, 8]

    with pytest.raises(ConfigError, match="decoder_channels has 2 entries for encoder_depth 4"):
        params("quick", short_decoder)
    full = params("full")
    assert full.lab19.data.dataset == "segmentation" and full.data.segmentation.source == "oxford_pets"
    assert full.lab19.model.encoder == "resnet34" and full.lab19.model.encoder_depth == 5

    def odd_pets(raw):
        raw["data"]["segmentation"]["image_size"] = 144  # a multiple of 16, not of 32 (depth 5)

    with pytest.raises(ConfigError, match=r"data.segmentation.image_size 144.*multiple of 32"):
        params("full", odd_pets)
    assert params("quick").lab19.model.encoder_weights is None  # no ImageNet weights offline


# --------------------------------------------------------------------------- evaluate scores the test split


class Oracle(torch.nn.Module):
    """Answers the true mask of the images it was told about, and background for any other image."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor) -> None:
        super().__init__()
        self.known = {img.float().numpy().tobytes(): m for img, m in zip(images, masks)}

    def forward(self, x):
        keys = [img.round().numpy().tobytes() for img in x]  # the inputs are normalised back to 0-255
        return torch.stack([20 * (2 * self.known[k].float() - 1) if k in self.known else torch.full(img.shape, -20.0)
                            for k, img in zip(keys, x)])


def test_evaluate_scores_the_test_split_with_the_threshold_row(fake_repo, monkeypatch):
    ctx = smoke_ctx()
    lab.preprocess(ctx)
    data, _ = lab.load_splits(ctx)
    oracle = Oracle(data["images_test"], data["masks_test"])
    identity = lab.Normalise([0.0], [1 / 255], "cpu")  # images as their 0-255 floats
    monkeypatch.setattr(lab, "load_model", lambda ctx, variant: (oracle, identity))
    for variant in ctx.cfg.variants:
        folder = ctx.results_dir(variant)
        dvc_files.write_metrics(folder / "metrics.json", {"val_iou": 0.5, "train_seconds": 1.0, "updates": 3})
        dvc_files.write_rows(folder / "history.csv", [
            {"epoch": 1, "train_loss": 0.5, "train_dice_loss": 0.5, "train_bce_loss": 0.3, "val_dice_loss": 0.4,
             "val_bce_loss": 0.2, "val_iou": 0.5}])
        dvc_files.write_metrics(folder / "run.json", {"run_id": None})
    lab.evaluate(ctx)
    out = json.loads((ctx.results_dir() / "metrics.json").read_text())
    assert out["summary"]["test_images"] == 24
    for variant in ctx.cfg.variants:
        # The oracle knows only the test images: scoring any other split would read 0.
        assert out[variant]["test_iou"] == pytest.approx(1.0) and out[variant]["test_dice"] == pytest.approx(1.0)
        assert out[variant]["train_iou"] == 0.0
    assert 0 < out["summary"]["threshold_test_iou"] < 1
    table = (ctx.results_dir() / "comparison.md").read_text()
    assert table.startswith("| variant") and lab.BASELINE in table
    figures = {p.stem for p in (ctx.results_dir() / "figures").glob("*.png")}
    assert {"test_overlays", "test_scores", "val_iou", "losses", "test_iou_per_image", "test_probabilities"} <= figures


# --------------------------------------------------------------------------- full profile data sets


def _pair_folder(root, n=5, size=(20, 16), mask_values=(0, 255)):
    from PIL import Image

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(root / "images" / f"p{i}.jpg")
        mask = np.full((size[1], size[0]), mask_values[0], np.uint8)
        mask[: size[1] // 2] = mask_values[1]  # the top half is foreground
        Image.fromarray(mask).save(root / "masks" / f"p{i}.png")
    return root


@pytest.mark.parametrize("mask_values", [(0, 255), (0, 1)])
def test_segmentation_folder_builds_resized_pairs_with_a_fixed_split(tmp_path, mask_values):
    root = _pair_folder(tmp_path / "pairs", mask_values=mask_values)
    src = SegmentationSource(source="folder", folder=str(root), image_size=32, test_fraction=0.4)
    manifest = fetch_segmentation("full", src, tmp_path / "raw")
    assert manifest["kind"] == "segmentation" and (manifest["n_train"], manifest["n_test"]) == (3, 2)
    data = load_segmentation(tmp_path / "raw")
    assert data.x_train.shape == (3, 32, 32, 3) and data.m_test.shape == (2, 32, 32)
    assert set(np.unique(data.m_train)) == {0, 1}
    assert data.m_train[:, :16].all() and not data.m_train[:, 16:].any()  # nearest resize keeps the halves
    assert data.source == "folder"
    again = fetch_segmentation("full", src, tmp_path / "raw2")
    assert again["files"] == manifest["files"]


def test_full_profile_preprocess_splits_the_real_sets_training_part(tmp_path, monkeypatch):
    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    root = _pair_folder(tmp_path / "pairs", n=12)
    fetch_segmentation("full", SegmentationSource(source="folder", folder=str(root), image_size=32, test_fraction=0.25),
                       tmp_path / "data" / "raw" / "segmentation")

    def edit(raw):
        raw["data"]["segmentation"] |= {"source": "folder", "folder": str(root), "image_size": 32}
        raw["lab19"]["profiles"]["full"]["data"]["val_source_fraction"] = 0.25

    ctx = smoke_ctx("full", edit)
    meta = lab.preprocess(ctx)
    assert meta["sizes"] == {"train": 7, "val": 2, "test": 3} and meta["channels"] == 3
    assert meta["dataset"] == "folder" and len(meta["mean"]) == 3
    tensors = torch.load(ctx.processed_dir / "tensors.pt", weights_only=True)
    assert tensors["images_val"].shape == (2, 3, 32, 32) and tensors["masks_test"].shape == (3, 1, 32, 32)
    assert tensors["masks_train"][:, 0, :16].all() and not tensors["masks_train"][:, 0, 16:].any()


def _broken(kind):
    def make(root):
        from PIL import Image

        if kind == "missing":
            return
        if kind == "no_masks":
            (root / "images").mkdir(parents=True)
            return
        _pair_folder(root, n=3)
        if kind == "unmatched":
            (root / "masks" / "p1.png").unlink()
        elif kind == "size":
            Image.fromarray(np.zeros((5, 5), np.uint8)).save(root / "masks" / "p2.png")
        elif kind == "unreadable":
            (root / "masks" / "p0.png").write_bytes(b"not a png")
        elif kind == "one_pair":
            for i in (1, 2):
                (root / "images" / f"p{i}.jpg").unlink()
    return make


@pytest.mark.parametrize("kind, message", [
    ("missing", "is not a folder"),
    ("no_masks", "has no masks/ subfolder"),
    ("unmatched", "1 image.s. have no mask of the same name in masks/ .p1.jpg."),
    ("size", "p2.png is 5x5 px but its image p2.jpg is 20x16"),
    ("unreadable", "cannot read p0.jpg or p0.png"),
    ("one_pair", "only 1 image/mask pair"),
])
def test_a_malformed_segmentation_folder_names_the_key_and_the_layout(tmp_path, kind, message):
    root = tmp_path / "pairs"
    _broken(kind)(root)
    with pytest.raises(DataError, match=message) as info:
        fetch_segmentation("full", SegmentationSource(source="folder", folder=str(root)), tmp_path / "raw")
    assert "data.segmentation.folder" in str(info.value)
    assert "images/<name>" in str(info.value) and "masks/<name>.png" in str(info.value)
    assert not (tmp_path / "raw").exists()


def test_an_unset_segmentation_folder_says_what_to_set(tmp_path):
    with pytest.raises(DataError, match="data.segmentation.folder is not set.*masks/<name>.png"):
        fetch_segmentation("full", SegmentationSource(source="folder"), tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def _pets_archives(folder, names) -> dict[str, bytes]:
    """images.tar.gz and annotations.tar.gz laid out as Oxford-IIIT Pet's (images/, annotations/trimaps/, lists)."""
    import io
    import tarfile

    from PIL import Image

    def encoded(array, fmt):
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, fmt)
        return buf.getvalue()

    members = {"images.tar.gz": {}, "annotations.tar.gz": {}}
    for split, ids in names.items():
        members["annotations.tar.gz"][f"annotations/{split}.txt"] = "".join(f"{i} 1 1 1\n" for i in ids).encode()
        for i in ids:
            members["images.tar.gz"][f"images/{i}.jpg"] = encoded(np.full((30, 40, 3), 120, np.uint8), "JPEG")
            trimap = np.full((30, 40), 2, np.uint8)  # background
            trimap[10:20, 10:30] = 1  # pet
            trimap[9, 10:30] = 3  # border
            members["annotations.tar.gz"][f"annotations/trimaps/{i}.png"] = encoded(trimap, "PNG")
    out = {}
    for archive, files in members.items():
        with tarfile.open(folder / archive, "w:gz") as tar:
            for name, body in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
        out[archive] = (folder / archive).read_bytes()
    return out


def _pets_online(server, archives, **pins) -> SegmentationSource:
    import hashlib

    for name, body in archives.items():
        server.serve(f"/pets/{name}", body)
    pins = {name: hashlib.sha256(body).hexdigest() for name, body in archives.items()} | pins
    return {"base_url": server.url + "/pets/", "retries": 0, "timeout_s": 5.0, "pins": pins}


def test_oxford_pets_downloaded_checked_and_read_by_torchvisions_class(server, tmp_path):
    archives = _pets_archives(tmp_path, {"trainval": ["cat_1", "dog_2", "dog_3"], "test": ["cat_4"]})
    # folder is set but unused: the source decides
    src = SegmentationSource(source="oxford_pets", folder=str(tmp_path / "nowhere"), image_size=32,
                             online=_pets_online(server, archives))
    manifest = fetch_segmentation("full", src, tmp_path / "raw", cache=tmp_path / "cache", progress=False)
    assert (manifest["n_train"], manifest["n_test"]) == (3, 1) and "pet (1) or border (3)" in manifest["mask_rule"]
    assert manifest["source"].startswith(f"online: {server.url}/pets/")
    data = load_segmentation(tmp_path / "raw")
    assert data.x_train.shape == (3, 32, 32, 3) and data.source == "oxford_pets"
    expected = pet_foreground(np.asarray(__import__("PIL.Image", fromlist=["Image"]).fromarray(
        np.pad(np.full((11, 20), 1, np.uint8), ((9, 10), (10, 10)), constant_values=2)).resize((32, 32), 0)))
    assert np.array_equal(data.m_test[0], expected)
    assert pet_foreground(np.array([1, 2, 3])).tolist() == [1, 0, 1]
    # the archives stay in the cache where torchvision kept them; nothing else is left there
    assert sorted(p.name for p in (tmp_path / "cache" / "oxford-iiit-pet").iterdir()) == ["annotations.tar.gz",
                                                                                        "images.tar.gz"]
    fetch_segmentation("full", src, tmp_path / "raw2", cache=tmp_path / "cache", progress=False)
    assert server.hits == {"/pets/images.tar.gz": 1, "/pets/annotations.tar.gz": 1}  # checked copies are reused


def test_oxford_pets_default_host_and_pins():
    from labflow.data import segmentation as seg

    from conftest import read_params

    assert SegmentationSource().online.base_url == "https://thor.robots.ox.ac.uk/pets/"
    assert read_params()["data"]["segmentation"]["online"]["base_url"] == SegmentationSource().online.base_url
    base_url = SegmentationSource().online.base_url
    assert seg.PETS_IMAGES.url(base_url) == "https://thor.robots.ox.ac.uk/pets/images.tar.gz"
    assert seg.PETS_IMAGES.sha256.startswith("67195c5e") and seg.PETS_ANNOTATIONS.sha256.startswith("52425fb6")


def test_oxford_pets_with_a_wrong_checksum_stops_and_leaves_nothing(server, tmp_path):
    archives = _pets_archives(tmp_path, {"trainval": ["cat_1"], "test": ["cat_4"]})
    src = SegmentationSource(online=_pets_online(server, archives, **{"annotations.tar.gz": "0" * 64}))
    with pytest.raises(DataError, match="annotations.tar.gz: checksum mismatch.*data.segmentation.online.base_url"):
        fetch_segmentation("full", src, tmp_path / "raw", cache=tmp_path / "cache", progress=False)
    assert not (tmp_path / "raw").exists()
    assert not (tmp_path / "cache" / "oxford-iiit-pet" / "annotations.tar.gz").exists()
    # Without a pin in params.yaml the code's (the real archives') applies: the fixture is refused too.
    src = SegmentationSource(online={"base_url": server.url + "/pets/", "retries": 0, "timeout_s": 5.0})
    with pytest.raises(DataError, match="images.tar.gz: checksum mismatch.*expected sha256 67195c5e"):
        fetch_segmentation("full", src, tmp_path / "raw", cache=tmp_path / "cache", progress=False)


def test_oxford_pets_archives_without_the_layout_say_so(server, tmp_path):
    archives = _pets_archives(tmp_path, {"trainval": ["cat_1"]})  # no annotations/test.txt
    src = SegmentationSource(online=_pets_online(server, archives))
    with pytest.raises(DataError, match="no annotations/test.txt.*data.segmentation.online.base_url"):
        fetch_segmentation("full", src, tmp_path / "raw", cache=tmp_path / "cache", progress=False)
    assert not (tmp_path / "raw").exists()


def test_oxford_pets_unreachable_names_the_key(tmp_path):
    import socket

    with socket.socket() as s:  # a loopback port with nothing listening: never the network
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = SegmentationSource(online={"base_url": f"http://127.0.0.1:{port}/pets/", "retries": 0, "timeout_s": 2.0})
    with pytest.raises(DataError, match="images.tar.gz: download failed.*data.segmentation.online.base_url"):
        fetch_segmentation("full", src, tmp_path / "raw", cache=tmp_path / "c", progress=False)
    assert not (tmp_path / "raw").exists()


@pytest.mark.parametrize("source", ["oxford_pets", "folder"])
def test_the_segmentation_set_is_a_valid_unused_marker_offline(tmp_path, source):
    manifest = fetch_segmentation("quick", SegmentationSource(source=source), tmp_path / "raw")
    assert manifest["kind"] == "unavailable" and verify_manifest(tmp_path / "raw") == manifest
    with pytest.raises(DataError, match="holds no data"):
        load_segmentation(tmp_path / "raw")


# --------------------------------------------------------------------------- smp stays out of other labs


def test_no_other_lab_pays_for_importing_smp():
    """Importing every lab (lab 19's module too), the stages and the CLI imports neither smp nor timm."""
    code = ("import sys; import labflow.labs, labflow.frame.stages, labflow.cli; from labflow.labs import LABS, lab_module; "
            "[lab_module(lab) for lab in LABS]; "
            "print(sorted(m for m in ('segmentation_models_pytorch', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
    assert "lab19" in __import__("labflow.labs", fromlist=["LABS"]).LABS


# --------------------------------------------------------------------------- test_scores


def test_test_scores_reproduce_the_test_metrics_both_stages_wrote(fake_repo):
    """A tiny smoke run: ``test_scores`` of its saved UNet (left in train mode) gives the test_*
    scores the train stage wrote and the evaluate stage rescored, and keeps the mode."""
    def one_variant(raw):
        raw["lab19"]["variants"] = {"dice_bce": raw["lab19"]["variants"]["dice_bce"]}

    ctx = smoke_ctx(edit=one_variant)
    lab.preprocess(ctx)
    lab.train(ctx, "dice_bce")
    written = json.loads((ctx.results_dir("dice_bce") / "metrics.json").read_text())
    lab.evaluate(ctx)
    compared = json.loads((ctx.results_dir() / "metrics.json").read_text())["dice_bce"]
    model, _ = lab.load_model(ctx, "dice_bce")
    scores = lab.test_scores(ctx, "dice_bce", model.train())
    assert set(scores) == {f"test_{k}" for k in ("iou", "dice", "iou_per_image", "dice_per_image", "pixel_accuracy",
                                                 "dice_loss", "bce_loss")}
    assert scores == pytest.approx({k: written[k] for k in scores}, rel=1e-6)
    assert scores == pytest.approx({k: compared[k] for k in scores}, rel=1e-6)
    assert model.training
