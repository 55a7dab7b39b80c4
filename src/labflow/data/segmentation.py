"""Lab 19's real segmentation set (full profile): Oxford-IIIT Pet, or the user's image/mask folder.

One data set, ``segmentation`` (params.yaml: ``data.segmentation``), whose ``source`` picks
where it comes from; either way it becomes one raw format, ``segmentation.npz``:
``x_train``/``x_test`` uint8 N x S x S x 3 (RGB, resized to ``image_size`` squares) and
``m_train``/``m_test`` uint8 N x S x S (1 = foreground, 0 = background; resized with nearest
neighbours, so a mask stays a mask). Resizing to a square changes the aspect ratio of image
and mask alike.

- ``source: oxford_pets``: labflow downloads the two archives (``images.tar.gz`` and
  ``annotations.tar.gz``) from ``data.segmentation.online.base_url`` into the download cache,
  checks their sha256 (pinned here; ``online.pins`` replaces a pin for a mirror), extracts
  them into a temporary folder laid out as torchvision's ``OxfordIIITPet`` expects and reads
  them with it (``download=False``: torchvision's own URLs are hard-coded, so no mirror could
  serve them). Its trimaps mark each pixel pet (1), background (2) or border (3); pet and
  border are foreground, as in segmentation-models-pytorch's own Oxford Pet example. Its
  official trainval/test lists are the train/test split.
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

from labflow.data.datasets import RemoteFile, _pinned_sha256
from labflow.data.download import DataError, download
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

# Oxford-IIIT Pet (Parkhi et al. 2012): torchvision's OxfordIIITPet fetches
# https://www.robots.ox.ac.uk/~vgg/data/pets/data/{images,annotations}.tar.gz (md5 5c4f3ee8... and
# 95a8c909...), which now redirect to https://thor.robots.ox.ac.uk/pets/ (the default base_url in
# params.yaml). sha256 as pinned by TensorFlow Datasets (oxford_iiit_pet/checksums.tsv, with the byte
# sizes 791,918,971 and 19,173,078) and by other projects that fetch the same archives.
PETS_IMAGES = RemoteFile("images.tar.gz", "67195c5e1c01f1ab5f9b6a5d22b8c27a580d896ece458917e61d459337fa318d")
PETS_ANNOTATIONS = RemoteFile("annotations.tar.gz", "52425fb6de5c424942b7626b428656fcbd798db970a937df61750c0f1d358e91")
PETS_FILES = (PETS_IMAGES, PETS_ANNOTATIONS)
PETS_DIR = "oxford-iiit-pet"  # OxfordIIITPet's folder under its root (the archives hold images/ and annotations/)


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
            return (f"{self.name}: data.segmentation.source: oxford_pets (online, Oxford-IIIT Pet: "
                    f"{', '.join(f.name for f in PETS_FILES)}, sha256-checked) or folder ({KEY}: images/ and "
                    "masks/, same names)")
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


def _pets_split(root: Path, split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One official split read by torchvision's OxfordIIITPet from ``root/oxford-iiit-pet`` (never downloading)."""
    from PIL import UnidentifiedImageError
    from torchvision.datasets import OxfordIIITPet

    try:
        ds = OxfordIIITPet(str(root), split=split, target_types="segmentation", download=False)
    except ValueError as err:  # a line of the list that is not "name class species breed"
        raise DataError(f"Oxford-IIIT Pet: annotations/{split}.txt is not a list of 'name class species breed' lines "
                        f"({err}); the mirror serves different archives, check data.segmentation.online.base_url."
                        ) from None
    images, masks = [], []
    for i in range(len(ds)):
        try:
            image, trimap = ds[i]
            rgb, labels = resize_pair(image, np.asarray(trimap, dtype=np.uint8), size)
        except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
            raise DataError(f"Oxford-IIIT Pet: the {split} image '{ds._images[i].stem}' or its trimap cannot be read "
                            f"({err}); the mirror serves different archives, check data.segmentation.online.base_url."
                            ) from None
        images.append(rgb)
        masks.append(pet_foreground(labels))
    if not images:
        raise DataError(f"Oxford-IIIT Pet: annotations/{split}.txt lists no images; the mirror serves different "
                        "archives, check data.segmentation.online.base_url.")
    return np.stack(images), np.stack(masks)


def download_pets(online, cache: Path, progress: bool = True) -> dict[str, Path]:
    """The two archives, sha256-checked, in ``cache/oxford-iiit-pet/`` (where torchvision kept them; reused)."""
    folder = cache / PETS_DIR
    return {f.name: download(f.url(online.base_url), folder / f.name, _pinned_sha256(f, online, "segmentation"),
                             retries=online.retries, timeout=online.timeout_s, progress=progress,
                             dataset="segmentation")
            for f in PETS_FILES}


def build_pets(files: dict[str, Path], dest: Path, size: int) -> dict:
    """Extract the checked archives into a temporary ``oxford-iiit-pet/`` and read both splits from it."""
    from labflow.data.archive import safe_extract_tar

    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        base = Path(tmp) / PETS_DIR
        for f in PETS_FILES:
            safe_extract_tar(files[f.name], base)
        expected = ("images", "annotations/trimaps", "annotations/trainval.txt", "annotations/test.txt")
        missing = [p for p in expected if not (base / p).exists()]
        if missing:
            raise DataError(f"the Oxford-IIIT Pet archives hold no {missing[0]}; the mirror serves different archives, "
                            "check data.segmentation.online.base_url.")
        x_train, m_train = _pets_split(Path(tmp), "trainval", size)
        x_test, m_test = _pets_split(Path(tmp), "test", size)
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
                       cache: str | os.PathLike | None = None, progress: bool = True) -> dict:
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
            files = download_pets(source.online, folder, progress)
            extra = build_pets(files, build, source.image_size)
            origin = f"online: {source.online.base_url} (Oxford-IIIT Pet, read by torchvision's OxfordIIITPet)"
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
