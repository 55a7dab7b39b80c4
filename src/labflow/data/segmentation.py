"""Lab 19's real segmentation set (full profile): Oxford-IIIT Pet, or the user's image/mask folder.

One data set, ``segmentation`` (params.yaml: ``data.segmentation``), whose ``source`` picks
where it comes from; either way it becomes one raw format, ``segmentation.npz``:
``x_train``/``x_test`` uint8 N x S x S x 3 (RGB, resized to ``image_size`` squares) and
``m_train``/``m_test`` uint8 N x S x S (1 = foreground, 0 = background; resized with nearest
neighbours, so a mask stays a mask). Resizing to a square changes the aspect ratio of image
and mask alike.

- ``source: oxford_pets``: torchvision's ``OxfordIIITPet`` class downloads the two archives
  (images and annotations, md5-checked by torchvision) into the download cache, once. Its
  trimaps mark each pixel pet (1), background (2) or border (3); pet and border are
  foreground, as in segmentation-models-pytorch's own Oxford Pet example. Its official
  trainval/test lists are the train/test split.
- ``source: folder``: ``data.segmentation.folder``, laid out as ``images/<name>.<jpg|png|...>``
  and ``masks/<name>.png`` (the same ``<name>``). Masks are 0/255 (foreground above 127) or
  0/1 images; the split is fixed (its own seed, ``test_fraction`` of the pairs).

One data set rather than two keeps the pipeline honest: its download stage depends on
``data.segmentation``, so switching the source rebuilds it, and the full profile never
downloads the set it does not use. Under the smoke and quick profiles it is not used (lab 19
pastes real objects on canvases instead): the download stage writes a marker saying so.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from labflow.data.download import DataError
from labflow.data.manifest import write_manifest
from labflow.data.raw import PROFILES, default_cache, manifest_of_kind, mark_unavailable, replace_dir

if TYPE_CHECKING:
    from labflow.frame.config import SegmentationSource

SEGMENTATION = "segmentation.npz"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# A user folder's train/test split is part of the data set, fixed like MNIST-5k's (not the params seed).
FOLDER_SPLIT_SEED = 20240119
KEY = "data.segmentation.folder"
FOLDER_LAYOUT = ("a folder with images/<name>.<jpg|png|...> and masks/<name>.png (the same <name> for an image "
                 "and its mask; masks 0 = background, 255 (anything above 127) or 1 = foreground)")
PET_TRIMAP_FOREGROUND = (1, 3)  # pet, border; 2 is background


@dataclass
class SegmentationData:
    x_train: np.ndarray  # uint8 N x S x S x 3
    m_train: np.ndarray  # uint8 N x S x S, 1 = foreground
    x_test: np.ndarray
    m_test: np.ndarray
    source: str = ""  # oxford_pets or folder


@dataclass(frozen=True)
class SegmentationSpec:
    name: str

    def describe(self, profile: str) -> str:
        if profile == "full":
            return (f"{self.name}: data.segmentation.source: oxford_pets (online, Oxford-IIIT Pet through "
                    f"torchvision's OxfordIIITPet, md5-checked) or folder ({KEY}: images/ and masks/, same names)")
        return f"{self.name}: not used by the {profile} profile (lab 19 pastes real objects on canvases)"


SEGMENTATION_DATASETS: dict[str, SegmentationSpec] = {"segmentation": SegmentationSpec("segmentation")}


# --------------------------------------------------------------------------- reading and resizing


def resize_pair(image, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A PIL image and its label array as size x size RGB uint8 and uint8 labels (nearest: labels stay labels)."""
    from PIL import Image

    rgb = np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.uint8)
    labels = np.asarray(Image.fromarray(mask).resize((size, size), Image.NEAREST), dtype=np.uint8)
    return rgb, labels


def _save(folder: Path, data: SegmentationData) -> dict:
    np.savez(folder / SEGMENTATION, x_train=data.x_train, m_train=data.m_train, x_test=data.x_test, m_test=data.m_test)
    return {"kind": "segmentation", "n_train": int(len(data.x_train)), "n_test": int(len(data.x_test)),
            "image_size": int(data.x_train.shape[1]),
            "foreground_share": float(np.concatenate([data.m_train.ravel(), data.m_test.ravel()]).mean())}


# --------------------------------------------------------------------------- Oxford-IIIT Pet


def pet_foreground(trimap: np.ndarray) -> np.ndarray:
    """The pet's mask from an Oxford-IIIT Pet trimap: pet and its border are foreground."""
    return np.isin(trimap, PET_TRIMAP_FOREGROUND).astype(np.uint8)


def _pets_split(cache: Path, split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    from torchvision.datasets import OxfordIIITPet

    try:
        ds = OxfordIIITPet(str(cache), split=split, target_types="segmentation", download=True)
    except (OSError, RuntimeError) as err:  # URLError is an OSError; torchvision raises RuntimeError on a bad md5
        raise DataError(
            f"Oxford-IIIT Pet could not be downloaded into {cache} ({err}). torchvision fetches images.tar.gz and "
            "annotations.tar.gz from www.robots.ox.ac.uk and checks their md5; without internet, copy both archives "
            f"into {cache / 'oxford-iiit-pet'}, or set data.segmentation.source: folder and {KEY} to use your own "
            "images and masks."
        ) from None
    images, masks = [], []
    for i in range(len(ds)):
        image, trimap = ds[i]
        rgb, labels = resize_pair(image, np.asarray(trimap, dtype=np.uint8), size)
        images.append(rgb)
        masks.append(pet_foreground(labels))
    return np.stack(images), np.stack(masks)


def build_pets(cache: Path, dest: Path, size: int) -> dict:
    x_train, m_train = _pets_split(cache, "trainval", size)
    x_test, m_test = _pets_split(cache, "test", size)
    return _save(dest, SegmentationData(x_train, m_train, x_test, m_test)) | {
        "mask_rule": "trimap pet (1) or border (3) = foreground", "split": "official trainval / test"}


# --------------------------------------------------------------------------- the user's folder


def _pairs(root: Path, key: str) -> list[tuple[Path, Path]]:
    where = f"{key} ('{root}')"
    if not root.is_dir():
        raise DataError(f"{where} is not a folder. Set {key} in params.yaml to {FOLDER_LAYOUT}.")
    missing = [sub for sub in ("images", "masks") if not (root / sub).is_dir()]
    if missing:
        raise DataError(f"{where} has no {' or '.join(s + '/' for s in missing)} subfolder. "
                        f"{key} must be {FOLDER_LAYOUT}.")
    listing = {sub: {p.stem: p for p in sorted((root / sub).iterdir())
                     if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES} for sub in ("images", "masks")}
    if not listing["images"]:
        raise DataError(f"{where}: images/ holds no images. {key} must be {FOLDER_LAYOUT}.")
    unmatched = sorted(set(listing["images"]) - set(listing["masks"]))
    if unmatched:
        shown = ", ".join(listing["images"][s].name for s in unmatched[:3]) + (" ..." if len(unmatched) > 3 else "")
        raise DataError(f"{where}: {len(unmatched)} image(s) have no mask of the same name in masks/ ({shown}). "
                        f"{key} must be {FOLDER_LAYOUT}.")
    pairs = [(listing["images"][s], listing["masks"][s]) for s in sorted(listing["images"])]
    if len(pairs) < 2:
        raise DataError(f"{where}: only {len(pairs)} image/mask pair; at least 2 are needed (one for training, one "
                        f"for testing). {key} must be {FOLDER_LAYOUT}.")
    return pairs


def _read_pair(image_path: Path, mask_path: Path, size: int, key: str) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(image_path) as image, Image.open(mask_path) as mask:
            if image.size != mask.size:
                raise DataError(f"{key}: {mask_path.name} is {mask.size[0]}x{mask.size[1]} px but its image "
                                f"{image_path.name} is {image.size[0]}x{image.size[1]}; a mask must match its image. "
                                f"{key} must be {FOLDER_LAYOUT}.")
            return resize_pair(image, np.asarray(mask.convert("L"), dtype=np.uint8), size)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        raise DataError(f"{key}: cannot read {image_path.name} or {mask_path.name} in '{image_path.parent.parent}' "
                        f"({err}). {key} must be {FOLDER_LAYOUT}.") from None


def build_from_folder(root: Path, dest: Path, *, image_size: int, test_fraction: float, key: str,
                      seed: int = FOLDER_SPLIT_SEED) -> dict:
    """Read ``root/images`` and ``root/masks`` into ``dest/segmentation.npz``; returns the manifest extra."""
    pairs = _pairs(root, key)
    read = [_read_pair(i, m, image_size, key) for i, m in pairs]
    x = np.stack([img for img, _ in read])
    labels = np.stack([lab for _, lab in read])
    binary01 = labels.max() <= 1  # 0/1 masks (else 0/255: foreground above 127)
    masks = (labels >= 1 if binary01 else labels > 127).astype(np.uint8)
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_test = min(len(pairs) - 1, max(1, int(round(len(pairs) * test_fraction))))
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    extra = _save(dest, SegmentationData(x[train], masks[train], x[test], masks[test]))
    return extra | {"mask_rule": "value 1 = foreground" if binary01 else "value above 127 = foreground",
                    "split_seed": seed, "test_names": [pairs[i][0].name for i in test]}


# --------------------------------------------------------------------------- the download stage


def fetch_segmentation(profile: str, source: SegmentationSource, dest: str | os.PathLike,
                       cache: str | os.PathLike | None = None) -> dict:
    """The download stage of ``segmentation``: built under ``full`` from ``source.source``, a marker otherwise."""
    if profile not in PROFILES:
        raise DataError(f"unknown profile '{profile}'; choose one of {', '.join(PROFILES)}")
    if profile != "full":
        return mark_unavailable("segmentation", profile, dest, "the full profile's segmentation data; the quick "
                                                               "and smoke profiles paste real objects on canvases")
    if source.source == "folder" and not source.folder:
        raise DataError(f"{KEY} is not set: data.segmentation.source is folder, so lab 19 reads your own images "
                        f"and masks. Set {KEY} in params.yaml to {FOLDER_LAYOUT}.")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.new-"))
    build.chmod(0o755)
    try:
        if source.source == "oxford_pets":
            folder = Path(cache) if cache else default_cache() / "oxford_pets"
            extra = build_pets(folder, build, source.image_size)
            origin = "online: Oxford-IIIT Pet (torchvision OxfordIIITPet)"
        else:
            root = Path(source.folder).expanduser()
            extra = build_from_folder(root, build, image_size=source.image_size, test_fraction=source.test_fraction,
                                      key=KEY)
            origin = f"user folder: {root.resolve()}"
        manifest = write_manifest(build, extra | {"dataset": "segmentation", "profile": profile, "source": origin,
                                                  "segmentation_source": source.source})
        replace_dir(build, dest)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return manifest


def load_segmentation(dest: str | os.PathLike) -> SegmentationData:
    """The segmentation data set fetched into ``dest``, after checking its manifest."""
    dest = Path(dest)
    manifest = manifest_of_kind(dest, "segmentation")
    with np.load(dest / SEGMENTATION) as z:
        return SegmentationData(z["x_train"], z["m_train"], z["x_test"], z["m_test"],
                                manifest.get("segmentation_source", ""))
