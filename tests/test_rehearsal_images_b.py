"""The full-profile rehearsal's fixtures of VOC 2007, Oxford-IIIT Pet and horse2zebra
(labflow.rehearsal.fixtures.images_b): each served over loopback HTTP, its params merged into
params.yaml's data.<name> and validated, fetched by the full profile's own download code, and
read by its lab's real preprocess under the full profile (labs 12, 19 and 21), which must get
at least 2 optimizer steps per epoch at the full profile's batch sizes."""

from __future__ import annotations

import copy
import io
import tarfile
import zipfile

import numpy as np
import pytest
import torch

from labflow.data import datasets as ds
from labflow.data.segmentation import fetch_segmentation, load_segmentation
from labflow.frame import base, paths
from labflow.rehearsal.fixture import Fixture, sha256_of
from labflow.rehearsal.fixtures import images_b
from labflow.train import TensorBatches

from canvas_fixture import params


def _merge(dst: dict, src: dict) -> dict:
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dst.get(key), dict):
            _merge(dst[key], value)
        else:
            dst[key] = copy.deepcopy(value)
    return dst


def served_params(server, name: str, fixture: Fixture, edit=None):
    """Serve the fixture under /<name>/ and return the full profile's params with data.<name> merged
    (its base_url the loopback server's), parsed and validated as a stage would."""
    for path, file in fixture.served.items():
        server.serve(f"/{name}/{path}", file.read_bytes())

    def merged(raw):
        _merge(raw["data"][name], fixture.params)
        raw["data"][name]["online"] |= {"base_url": f"{server.url}/{name}/", "retries": 0, "timeout_s": 10.0}
        if edit:
            edit(raw)

    return params("full", merged)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path / "repo"))
    return tmp_path / "repo"


def test_every_builder_is_named_after_its_data_set_and_is_reproducible(tmp_path):
    assert set(images_b.BUILDERS) == {"voc2007", "segmentation", "horse2zebra"}
    for name, build in images_b.BUILDERS.items():
        a = build(tmp_path / "a" / name, np.random.default_rng(3))
        b = build(tmp_path / "b" / name, np.random.default_rng(3))
        assert a.params == b.params and a.served.keys() == b.served.keys(), name
        assert all(sha256_of(a.served[k]) == sha256_of(b.served[k]) for k in a.served), name
        other = build(tmp_path / "c" / name, np.random.default_rng(4))
        assert other.params != a.params, name


# --------------------------------------------------------------------------- VOC 2007 (lab 12)


def test_voc2007_fixture_in_voc_layout(tmp_path):
    import xml.etree.ElementTree as ET

    from PIL import Image

    fx = images_b.build_voc2007(tmp_path, np.random.default_rng(0))
    assert set(fx.served) == {"VOCtrainval_06-Nov-2007.tar", "VOCtest_06-Nov-2007.tar"}
    assert set(fx.params["online"]["pins"]) == set(fx.served) and not fx.env
    with tarfile.open(fx.served["VOCtrainval_06-Nov-2007.tar"]) as tar:
        names = tar.getnames()
        lists = {s: tar.extractfile(f"VOCdevkit/VOC2007/ImageSets/Main/{s}.txt").read().decode().split()
                 for s in ("train", "val", "trainval")}
        assert (len(lists["train"]), len(lists["val"])) == (64, 4)
        assert lists["trainval"] == sorted(lists["train"] + lists["val"])
        assert "VOCdevkit/VOC2007/ImageSets/Main/dog_trainval.txt" in names
        difficult, poses = [], set()
        for image_id in lists["trainval"]:
            root = ET.fromstring(tar.extractfile(f"VOCdevkit/VOC2007/Annotations/{image_id}.xml").read())
            size = (int(root.findtext("size/width")), int(root.findtext("size/height")))
            with Image.open(io.BytesIO(tar.extractfile(f"VOCdevkit/VOC2007/JPEGImages/{image_id}.jpg").read())) as im:
                assert im.format == "JPEG" and im.mode == "RGB" and im.size == size
            assert size in images_b.VOC_SIZES and root.findtext("filename") == f"{image_id}.jpg"
            objects = root.findall("object")
            assert objects and all(o.findtext("name") in ds.VOC_CLASSES for o in objects)
            difficult += [int(o.findtext("difficult")) for o in objects]
            poses |= {o.findtext("pose") for o in objects}
            assert any(o.findtext("difficult") == "0" for o in objects)  # never only difficult objects
        assert 0 < sum(difficult) < len(difficult) and poses <= set(images_b.VOC_POSES)
    with tarfile.open(fx.served["VOCtest_06-Nov-2007.tar"]) as tar:
        test = tar.extractfile("VOCdevkit/VOC2007/ImageSets/Main/test.txt").read().decode().split()
        assert len(test) == 6 and not set(test) & set(lists["trainval"])
        assert all(not (m.issym() or m.islnk()) for m in tar.getmembers())


def test_voc2007_fetched_by_the_full_profile_and_preprocessed_by_lab12(server, repo, tmp_path):
    fx = images_b.build_voc2007(tmp_path / "fixture", np.random.default_rng(0))
    p = served_params(server, "voc2007", fx)
    manifest = ds.fetch("voc2007", "full", p.data.voc2007.online, paths.raw_dir("voc2007"), progress=False,
                        cache=tmp_path / "cache")
    assert manifest["images"] == {"train": 64, "val": 4, "test": 6}
    ann = ds.load_detection(paths.raw_dir("voc2007"))
    entries = [e for split in ann["splits"].values() for e in split]
    assert all(0 <= b[0] < b[2] <= e["width"] and 0 <= b[1] < b[3] <= e["height"] for e in entries for b in e["boxes"])
    assert any(1 in e["difficult"] for e in entries)
    # The code's pins are the real archives': without the fixture's pins the full profile refuses them.
    with pytest.raises(ds.DataError, match="checksum mismatch.*expected sha256 7d8cd951"):
        ds.fetch("voc2007", "full", p.data.voc2007.online.model_copy(update={"pins": {}}), tmp_path / "other",
                 progress=False, cache=tmp_path / "cache2")

    from labflow.labs.lab12_detection import lab

    ctx = base.LabContext("lab12", p, progress=False)
    assert ctx.cfg.data.dataset == "voc2007" and ctx.cfg.train.batch_size == 32
    meta = lab.preprocess(ctx)
    assert meta["sizes"] == {"train": 64, "val": 4, "test": 6} and len(meta["classes"]) == 20
    splits, _ = lab.load_splits(ctx)
    train = splits["train"]
    assert train.images(torch.arange(2)).shape == (2, 3, 320, 320)
    steps = TensorBatches(torch.arange(len(train)), batch_size=ctx.cfg.train.batch_size, drop_last=True)
    assert len(steps) == 2  # lab 12's train loop: 2 full batches of 32 per epoch
    assert len(lab.calibration_batches(train, ctx.cfg.train.bn_calibration_batches, ctx.cfg.train.batch_size)) == 2
    assert all(len(t["labels"]) for t in train.targets(torch.arange(len(train)), with_difficult=False))
    assert len(splits["test"]) >= ctx.cfg.evaluate.draw_images


# --------------------------------------------------------------------------- Oxford-IIIT Pet (lab 19)


def test_pets_fixture_in_the_oxford_layout(tmp_path):
    from PIL import Image

    fx = images_b.build_segmentation(tmp_path, np.random.default_rng(0))
    assert set(fx.served) == {"images.tar.gz", "annotations.tar.gz"} and fx.params["source"] == "oxford_pets"
    with tarfile.open(fx.served["annotations.tar.gz"], "r:gz") as tar:
        text = {s: tar.extractfile(f"annotations/{s}.txt").read().decode() for s in ("trainval", "test", "list")}
        trimaps = {m.name: tar.extractfile(m).read() for m in tar.getmembers()
                   if m.name.startswith("annotations/trimaps/") and m.isfile()}
        xmls = [m.name for m in tar.getmembers() if m.name.startswith("annotations/xmls/")]
    rows = {s: [line.split() for line in text[s].splitlines()] for s in ("trainval", "test")}
    assert (len(rows["trainval"]), len(rows["test"])) == (9, 6)
    for name, class_id, species, breed in rows["trainval"] + rows["test"]:
        breed_name = name.rsplit("_", 1)[0]
        assert images_b.PET_BREEDS[int(class_id) - 1] == breed_name
        assert species == ("1" if breed_name[0].isupper() else "2")
        assert int(breed) >= 1
    assert text["list"].startswith("#Image CLASS-ID SPECIES BREED ID\n")
    assert sorted(line.split()[0] for line in text["list"].splitlines() if not line.startswith("#")) == \
        sorted(r[0] for r in rows["trainval"] + rows["test"])
    assert len(xmls) == 9 and any("/._" in n for n in trimaps)
    with tarfile.open(fx.served["images.tar.gz"], "r:gz") as tar:
        for name, *_ in rows["trainval"] + rows["test"]:
            with Image.open(io.BytesIO(tar.extractfile(f"images/{name}.jpg").read())) as image, \
                    Image.open(io.BytesIO(trimaps[f"annotations/trimaps/{name}.png"])) as trimap:
                assert image.format == "JPEG" and trimap.format == "PNG" and image.size == trimap.size
                assert set(np.unique(np.asarray(trimap)).tolist()) == {1, 2, 3}


def test_pets_fetched_by_the_full_profile_and_preprocessed_by_lab19(server, repo, tmp_path):
    fx = images_b.build_segmentation(tmp_path / "fixture", np.random.default_rng(0))
    p = served_params(server, "segmentation", fx)
    assert p.data.segmentation.source == "oxford_pets"
    manifest = fetch_segmentation("full", p.data.segmentation, paths.raw_dir("segmentation"), cache=tmp_path / "cache",
                                  progress=False)
    assert (manifest["n_train"], manifest["n_test"], manifest["image_size"]) == (9, 6, 160)
    assert 0.05 < manifest["foreground_share"] < 0.6
    data = load_segmentation(paths.raw_dir("segmentation"))
    assert data.x_train.shape == (9, 160, 160, 3) and set(np.unique(data.m_train).tolist()) == {0, 1}

    from labflow.labs.lab19_segmentation import lab

    ctx = base.LabContext("lab19", p, progress=False)
    assert ctx.cfg.data.dataset == "segmentation" and ctx.cfg.train.batch_size == 4
    meta = lab.preprocess(ctx)
    assert meta["sizes"] == {"train": 8, "val": 1, "test": 6} and meta["channels"] == 3
    assert all(0 < share < 1 for share in meta["foreground_share"].values())
    steps = TensorBatches(torch.arange(meta["sizes"]["train"]), batch_size=ctx.cfg.train.batch_size, drop_last=True)
    assert len(steps) == 2 and meta["sizes"]["test"] >= ctx.cfg.evaluate.draw_images


# --------------------------------------------------------------------------- horse2zebra (lab 21)


def test_horse2zebra_fixture_in_the_cyclegan_layout(tmp_path):
    from PIL import Image

    fx = images_b.build_horse2zebra(tmp_path, np.random.default_rng(0))
    assert set(fx.served) == {"horse2zebra.zip"} and set(fx.params["online"]) == {"sha256"}
    with zipfile.ZipFile(fx.served["horse2zebra.zip"]) as z:
        files = [i for i in z.infolist() if not i.is_dir()]
        counts = {}
        modes = set()
        for info in files:
            top, folder, name = info.filename.split("/")
            assert top == "horse2zebra" and name.startswith(images_b.H2Z_SYNSETS[folder[-1]] + "_")
            counts[folder] = counts.get(folder, 0) + 1
            with Image.open(io.BytesIO(z.read(info))) as image:
                assert image.format == "JPEG" and image.size == (256, 256)
                modes.add(image.mode)
    assert counts == images_b.H2Z_COUNTS and modes == {"RGB", "L"}


def test_horse2zebra_fetched_by_the_full_profile_and_preprocessed_by_lab21(server, repo, tmp_path):
    fx = images_b.build_horse2zebra(tmp_path / "fixture", np.random.default_rng(0))
    p = served_params(server, "horse2zebra", fx)
    manifest = ds.fetch("horse2zebra", "full", p.data.horse2zebra.online, paths.raw_dir("horse2zebra"),
                        progress=False, cache=tmp_path / "cache")
    assert manifest["per_folder"] == images_b.H2Z_COUNTS and manifest["skipped_unreadable"] == []
    data = ds.load_images(paths.raw_dir("horse2zebra"))
    assert data.x_train.shape == (6, 256, 256, 3) and data.x_test.shape == (16, 256, 256, 3)

    from labflow.labs.lab21_cyclegan import lab

    ctx = base.LabContext("lab21", p, progress=False)
    assert ctx.cfg.data.dataset == "horse2zebra" and ctx.cfg.train.batch_size == 1
    meta = lab.preprocess(ctx)
    assert meta["sizes"] == {"a_train": 3, "a_test": 8, "b_train": 3, "b_test": 8} and meta["image_size"] == 256
    tensors, _ = lab.load_processed(ctx.processed_dir)
    assert len(lab.UnpairedBatches(tensors["a_train"], tensors["b_train"], batch_size=ctx.cfg.train.batch_size)) >= 2
    judge = TensorBatches(torch.arange(6), batch_size=ctx.cfg.judge.batch_size)  # the evaluate stage's domain judge
    assert len(judge) == 1 and meta["sizes"]["a_test"] >= ctx.cfg.train.show


# --------------------------------------------------------------------------- the full profile's train and evaluate

# Per lab: its fixture's data set, what is cut for a CPU test (one epoch, one training seed, no
# pretrained weights: other fixtures stand in for those, and there is no internet here; lab 21's
# networks narrowed) and the variants left out. The data, its sizes and the batch sizes stay the full
# profile's.
STAGE_RUNS = {
    "lab12": ("voc2007", {"train": {"epochs": 1, "weights": "none"}},
              ("retinanet",)),  # RetinaNet-ResNet50 from scratch: ~3 min here
    "lab19": ("segmentation", {"train": {"epochs": 1}, "model": {"encoder_weights": None}}, ()),
    "lab21": ("horse2zebra", {"train": {"epochs": 1}, "judge": {"epochs": 1},
                              "model": {"generator_channels": 8, "residual_blocks": 2, "discriminator_channels": 8}},
              ()),
}


@pytest.mark.slow  # 20-40 s each on 2 busy cores
@pytest.mark.parametrize("lab_id", sorted(STAGE_RUNS))
def test_the_full_profile_trains_and_evaluates_on_the_fixture(server, repo, tmp_path, lab_id):
    import json

    from labflow.labs import lab_module

    name, full, dropped = STAGE_RUNS[lab_id]
    fx = images_b.BUILDERS[name](tmp_path / "fixture", np.random.default_rng(0))

    def cut(raw):
        raw["seeds"] = [raw["seed"]]
        _merge(raw[lab_id]["profiles"]["full"], full)
        for variant in dropped:
            raw[lab_id]["variants"].pop(variant)
            raw[lab_id]["profiles"]["full"].get("variants", {}).pop(variant, None)

    p = served_params(server, name, fx, edit=cut)
    source = getattr(p.data, name)
    if name == "segmentation":
        fetch_segmentation("full", source, paths.raw_dir(name), cache=tmp_path / "cache", progress=False)
    else:
        ds.fetch(name, "full", source.online, paths.raw_dir(name), progress=False, cache=tmp_path / "cache")
    lab = lab_module(lab_id)
    ctx = base.LabContext(lab_id, p, progress=False)
    lab.preprocess(ctx)
    for variant in ctx.cfg.variants:
        lab.train(ctx, variant)
        metrics = json.loads((ctx.results_dir(variant) / "metrics.json").read_text())
        assert metrics["updates"] >= 2, (variant, metrics["updates"])
    lab.evaluate(ctx)
