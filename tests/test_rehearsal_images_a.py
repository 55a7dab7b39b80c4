"""Rehearsal fixtures of MNIST, Fashion-MNIST, CIFAR-10, the flower photos and Cats vs Dogs
(labflow.rehearsal.fixtures.images_a): each is served over loopback HTTP (or named as the user
folder), fetched by the real download stage under the full profile with the fixture's params merged
into data.<name>, and then every lab that reads it under ``full`` runs its real preprocess stage,
whose training split must give at least two full batches at the lab's full batch size."""

from __future__ import annotations

import copy
import gzip
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from labflow.data import load_images
from labflow.data.datasets import DATASETS, FLOWERS_CLASSES, FLOWERS_IMAGE_SIZE
from labflow.rehearsal.fixture import Fixture, sha256_of
from labflow.rehearsal.fixtures import images_a
from labflow.rehearsal.fixtures.images_a import BUILDERS

from conftest import REPO

# The labs whose full profile reads each data set (labs/<lab>/params.yaml profiles.full, and the labs
# that hard-code MNIST: 01, 03, 22, 23; lab 09 copies lab 01's split; lab 11 reads lab 10's).
USERS = {
    "mnist": ("lab01", "lab03", "lab09", "lab22", "lab23"),
    "fashion_mnist": ("lab20",),
    "cifar10": ("lab04", "lab06", "lab10"),
    "flowers": ("lab13",),
    "cats_vs_dogs": ("lab07",),
}


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def _rehearse(name: str, server, tmp_path, monkeypatch, raw_params) -> tuple[Fixture, dict]:
    """Build the fixture, serve it, write a full-profile repository whose data.<name> has the
    fixture's params (base_url: the loopback server) and run the real download stage."""
    from labflow.frame import stages

    fixture = BUILDERS[name](tmp_path / "fixture", np.random.default_rng(0))
    for rel, path in fixture.served.items():
        server.serve(f"/{name}/{rel}", path.read_bytes())
    params = copy.deepcopy({**raw_params, "profile": "full",
                            "tracking": {**raw_params["tracking"], "enabled": False}})
    params["data"][name] = _merge(params["data"][name], fixture.params)
    if fixture.served:
        params["data"][name]["online"] |= {"base_url": f"{server.url}/{name}/", "retries": 0, "timeout_s": 5.0}
    root = tmp_path / "repo"
    for key in [k for k in params if (REPO / "labs" / k).is_dir()]:  # each lab's section to labs/<lab>/
        (root / "labs" / key).mkdir(parents=True)
        (root / "labs" / key / "params.yaml").write_text(yaml.safe_dump({key: params.pop(key)}))
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.setenv("LABFLOW_ROOT", str(root))
    monkeypatch.setenv("LABFLOW_DOWNLOAD_CACHE", str(tmp_path / "cache"))
    stages.download(name)
    from labflow.data.manifest import verify_manifest

    return fixture, verify_manifest(root / "data" / "raw" / name)


def _preprocess_all_users(name: str) -> dict[str, dict]:
    """Each lab reading ``name`` under full: its real preprocess stage, then its split checked."""
    from labflow.frame import paths, stages
    from labflow.frame.config import load_params
    from labflow.prep.tensors import load_processed

    seen = {}
    for lab in USERS[name]:
        stages.preprocess(lab)
        cfg = load_params(paths.repo_root() / "params.yaml", (lab,)).lab(lab)
        dataset = getattr(cfg.data, "dataset", None)
        assert dataset in (None, name), f"{lab} reads {dataset} under full, not {name}"
        batch = max([getattr(cfg.train, "batch_size", 0)] + [getattr(v, "batch_size", 0) or 0 for v in cfg.variants.values()])
        tensors, meta = load_processed(paths.processed_dir(lab))
        n_train, classes = len(tensors["y_train"]), len(meta["classes"])
        assert n_train >= 2 * batch, f"{lab}: {n_train} training images, batch {batch}"
        assert n_train % batch != 1, f"{lab}: a last batch of one image ({n_train} at {batch})"
        for split in ("train", "val", "test"):
            if f"y_{split}" in tensors:
                assert set(tensors[f"y_{split}"].tolist()) == set(range(classes)), f"{lab} {split}"
        seen[lab] = {"batch": batch, **{k[2:]: len(v) for k, v in tensors.items() if k.startswith("y_")}}
    return seen


# --------------------------------------------------------------------------- every builder


def test_users_are_the_labs_reading_each_set_under_full(raw_params):
    from labflow.frame.config import _lab_ids, parse_params
    from labflow.labs import lab_module

    full = parse_params({**raw_params, "profile": "full"})
    found = {name: set() for name in BUILDERS}
    for lab in _lab_ids():
        data = getattr(full.lab(lab), "data", None)
        dataset = getattr(data, "dataset", None) or getattr(data, "same_split_as", None)
        if dataset is None and lab_module(lab).DATASETS == ("mnist",):
            dataset = "mnist"  # labs 01, 03, 22, 23 read MNIST in every profile
        if dataset == "lab01":
            dataset = "mnist"  # lab 09 copies lab 01's split
        if dataset in found:
            found[dataset].add(lab)
    assert found == {name: set(labs) for name, labs in USERS.items()}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_builder_is_deterministic_and_pins_what_it_serves(name, tmp_path):
    a = BUILDERS[name](tmp_path / "a", np.random.default_rng(7))
    b = BUILDERS[name](tmp_path / "b", np.random.default_rng(7))
    assert {k: sha256_of(p) for k, p in a.served.items()} == {k: sha256_of(p) for k, p in b.served.items()}
    if name == "cats_vs_dogs":
        files = lambda f: sorted(p.relative_to(f) for p in Path(f).rglob("*"))  # noqa: E731
        assert files(a.params["folder"]) == files(b.params["folder"])
        return
    spec = DATASETS[name]
    assert set(a.served) == {f.path or f.name for f in spec.online_files}
    pins = a.params["online"]["pins"]
    assert pins == {k: sha256_of(p) for k, p in a.served.items()}
    # The code pins the canonical files: without the fixture's pins the download would be refused.
    assert all(pins[f.name] != f.sha256 for f in spec.online_files)


# --------------------------------------------------------------------------- MNIST, Fashion-MNIST


@pytest.mark.parametrize("name, n_train", [("mnist", images_a.MNIST_TRAIN), ("fashion_mnist", images_a.FASHION_TRAIN)])
def test_idx_sets_fetch_and_feed_their_labs(name, n_train, server, tmp_path, monkeypatch, raw_params):
    fixture, manifest = _rehearse(name, server, tmp_path, monkeypatch, raw_params)
    for rel, path in fixture.served.items():  # gzip with the IDX file's name in its header, as served
        raw = path.read_bytes()
        assert raw[:3] == b"\x1f\x8b\x08" and raw[3] & 0x08 and raw[10:].startswith(rel.removesuffix(".gz").encode() + b"\0")
        magic = gzip.decompress(raw)[:4]
        assert magic == (b"\0\0\x08\x03" if "images" in rel else b"\0\0\x08\x01")
    assert (manifest["n_train"], manifest["n_test"]) == (n_train, 20) and len(manifest["classes"]) == 10
    assert manifest["source"].startswith("online: http://127.0.0.1")
    data = load_images(tmp_path / "repo" / "data" / "raw" / name)
    assert data.x_train.shape == (n_train, 28, 28) and data.x_test.shape == (20, 28, 28)
    assert data.x_train.dtype == np.uint8 and 0.05 < data.x_train.mean() / 255 < 0.5  # dark background
    assert np.bincount(data.y_test, minlength=10).tolist() == [2] * 10
    seen = _preprocess_all_users(name)
    if name == "mnist":
        assert seen["lab22"] == {"batch": 128, "train": 261, "val": 29, "test": 20}
        assert seen["lab01"] == seen["lab09"] | {"batch": 64} and seen["lab03"]["batch"] == 64
    else:
        assert seen["lab20"] == {"batch": 128, "train": 260, "test": 20}


# --------------------------------------------------------------------------- CIFAR-10


def test_cifar10_archive_is_the_python_version(tmp_path):
    """Python 2 pickles: loaded with encoding='bytes' (torchvision, Keras) the keys are bytes."""
    fixture = images_a.build_cifar10(tmp_path, np.random.default_rng(0))
    with tarfile.open(fixture.served["cifar-10-python.tar.gz"]) as tar:
        names = tar.getnames()
        batch = pickle.load(tar.extractfile("cifar-10-batches-py/data_batch_1"), encoding="bytes")
        meta = pickle.load(tar.extractfile("cifar-10-batches-py/batches.meta"), encoding="bytes")
    assert sorted(names) == sorted(["cifar-10-batches-py"] + [f"cifar-10-batches-py/{m}" for m in images_a.CIFAR_MEMBERS])
    assert set(batch) == {b"data", b"labels", b"batch_label", b"filenames"}
    assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape == (58, 3072)
    assert isinstance(batch[b"labels"], list) and batch[b"batch_label"] == b"training batch 1 of 5"
    assert meta[b"label_names"][0] == b"airplane" and meta[b"num_vis"] == 3072


def test_cifar10_fetches_and_feeds_its_labs(server, tmp_path, monkeypatch, raw_params):
    _, manifest = _rehearse("cifar10", server, tmp_path, monkeypatch, raw_params)
    assert (manifest["n_train"], manifest["n_test"]) == (290, 20)
    data = load_images(tmp_path / "repo" / "data" / "raw" / "cifar10")
    assert data.x_train.shape == (290, 32, 32, 3) and data.classes[0] == "airplane"
    seen = _preprocess_all_users("cifar10")
    assert seen["lab10"] == {"batch": 128, "train": 262, "val": 28, "test": 20}
    assert seen["lab04"]["batch"] == seen["lab06"]["batch"] == 64


# --------------------------------------------------------------------------- flower photos


def test_flowers_fetch_and_feed_lab13(server, tmp_path, monkeypatch, raw_params):
    fixture, manifest = _rehearse("flowers", server, tmp_path, monkeypatch, raw_params)
    with tarfile.open(fixture.served["flower_photos.tgz"]) as tar:
        names = tar.getnames()
    assert "flower_photos/LICENSE.txt" in names
    assert {n.split("/")[1] for n in names if n.count("/") == 2} == set(FLOWERS_CLASSES)
    assert manifest["n_train"] + manifest["n_test"] == sum(images_a.FLOWERS_PER_CLASS.values())
    assert manifest["n_test"] == 20 and manifest["skipped_unreadable"] == []
    data = load_images(tmp_path / "repo" / "data" / "raw" / "flowers")
    assert data.x_train.shape[1:] == (FLOWERS_IMAGE_SIZE, FLOWERS_IMAGE_SIZE, 3) and data.classes == list(FLOWERS_CLASSES)
    seen = _preprocess_all_users("flowers")
    assert seen["lab13"] == {"batch": 32, "train": 70, "val": 8, "test": 20}


# --------------------------------------------------------------------------- Cats vs Dogs


def test_cats_vs_dogs_folder_feeds_lab07(server, tmp_path, monkeypatch, raw_params):
    fixture, manifest = _rehearse("cats_vs_dogs", server, tmp_path, monkeypatch, raw_params)
    folder = Path(fixture.params["folder"])
    assert (folder / "cat" / "666.jpg").stat().st_size == 0 and (folder / "dog" / "Thumbs.db").is_file()
    assert manifest["skipped_unreadable"] == ["cat/666.jpg"]
    assert (manifest["n_train"], manifest["n_test"]) == (144, 36) and manifest["image_size"] == 64
    data = load_images(tmp_path / "repo" / "data" / "raw" / "cats_vs_dogs")
    assert data.x_train.shape == (144, 64, 64, 3) and data.classes == ["cat", "dog"]
    seen = _preprocess_all_users("cats_vs_dogs")
    assert seen["lab07"] == {"batch": 64, "train": 130, "val": 14, "test": 36}


def test_kaggles_capitalised_cat_and_dog_folders_are_found(tmp_path):
    """Kaggle's PetImages unpacks to Cat/ and Dog/ (params.yaml names it as a valid folder): found on a
    case-sensitive file system too, with the same images and split as cat/ and dog/."""
    from labflow.data.folder import fetch_folder
    from labflow.frame.config import ImageFolderSource

    folder = Path(images_a.build_cats_vs_dogs(tmp_path / "fixture", np.random.default_rng(0)).params["folder"])
    lower = fetch_folder("cats_vs_dogs", "full", ImageFolderSource(folder=str(folder)), tmp_path / "lower")
    for cls in ("cat", "dog"):
        (folder / cls).rename(folder / cls.capitalize())
    upper = fetch_folder("cats_vs_dogs", "full", ImageFolderSource(folder=str(folder)), tmp_path / "upper")
    assert upper["skipped_unreadable"] == ["Cat/666.jpg"] and upper["classes"] == ["cat", "dog"]
    assert (upper["n_train"], upper["n_test"]) == (lower["n_train"], lower["n_test"]) == (144, 36)
    assert upper["files"] == lower["files"]
