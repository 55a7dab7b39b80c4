"""Image data sets read from a folder the user provides (one subfolder per class).

Some of the course's data sets cannot be downloaded from a canonical host with a
checksum (Kaggle's Cats vs Dogs needs an account), so the full profile reads them
from a folder named in params.yaml, e.g. ``data.cats_vs_dogs.folder``::

    <folder>/cat/*.jpg   <folder>/dog/*.jpg

A class folder may differ in case only (Kaggle's PetImages has ``Cat/`` and ``Dog/``).

The images are centre-cropped to a square, resized to ``image_size`` and written
as the standard ``images.npz`` (uint8 N×H×W×3) with a stratified train/test split,
so labs read them like any other image data set (:func:`labflow.data.load_images`).

Under the smoke and quick profiles no user folder is assumed: the download stage
writes a valid folder whose manifest says the data set is not used by that
profile (``kind: unavailable``, as for CIFAR-10 offline), so the pipeline graph is the same for every profile
and runs offline; the labs that use such a data set under ``full`` pick another
one under quick (lab 07 uses Fashion-MNIST). Loading such a marker as images
fails with a message saying so.
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
from labflow.data.raw import IMAGES, PROFILES, mark_unavailable, replace_dir

if TYPE_CHECKING:
    from labflow.frame.config import ImageFolderSource

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
# The train/test split is part of the data set, like MNIST-5k's: fixed, not the params seed.
FOLDER_SPLIT_SEED = 20240107


@dataclass(frozen=True)
class FolderSpec:
    name: str
    classes: tuple[str, ...]  # subfolder names, in label order

    def describe(self, profile: str) -> str:
        subfolders = ", ".join(f"{c}/" for c in self.classes)
        if profile == "full":
            return f"{self.name}: user folder data.{self.name}.folder ({subfolders} of images)"
        return f"{self.name}: not used by the {profile} profile (full reads a user folder)"


USER_FOLDER_DATASETS: dict[str, FolderSpec] = {
    "cats_vs_dogs": FolderSpec("cats_vs_dogs", ("cat", "dog")),
}


def _class_folder(root: Path, cls: str) -> Path:
    """``root/cls``, or else the one subfolder whose name differs from it in case only (Kaggle's
    PetImages unpacks to ``Cat/`` and ``Dog/``; a case-sensitive file system would not find ``cat/``)."""
    exact = root / cls
    if exact.is_dir():
        return exact
    matches = [p for p in root.iterdir() if p.is_dir() and p.name.lower() == cls.lower()]
    return matches[0] if len(matches) == 1 else exact


def _class_files(root: Path, spec: FolderSpec, key: str) -> dict[str, list[Path]]:
    need = f"a folder with subfolders {', '.join(f'{c}/' for c in spec.classes)} holding images ({', '.join(IMAGE_SUFFIXES)})"
    if not root.is_dir():
        raise DataError(f"{key}: '{root}' is not a folder. Set {key} in params.yaml to {need}.")
    files = {}
    for cls in spec.classes:
        sub = _class_folder(root, cls)
        found = sorted(p for p in sub.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES) if sub.is_dir() else []
        if not found:
            what = "has no images" if sub.is_dir() else "is missing"
            raise DataError(f"{key}: '{sub}' {what}. {key} must be {need}.")
        files[cls] = found
    return files


def _read_image(path: Path, size: int) -> np.ndarray | None:
    """RGB uint8 size×size×3 (centre-cropped to a square, then resized); None if unreadable."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img).convert("RGB")
            img = ImageOps.fit(img, (size, size), method=Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return None  # Kaggle's Cats vs Dogs holds a few empty or truncated files


def build_from_folder(spec: FolderSpec, root: Path, dest: Path, *, image_size: int, test_fraction: float,
                      key: str, seed: int = FOLDER_SPLIT_SEED) -> dict:
    """Read ``root/<class>/*`` into ``dest/images.npz``; returns the manifest extra."""
    files = _class_files(root, spec, key)
    images, labels, skipped = [], [], []
    for label, cls in enumerate(spec.classes):
        for path in files[cls]:
            img = _read_image(path, image_size)
            if img is None:
                skipped.append(str(path.relative_to(root)))
            else:
                images.append(img)
                labels.append(label)
    y = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(y, minlength=len(spec.classes))
    if (counts < 2).any():
        raise DataError(f"{key}: '{root}' has readable images per class {dict(zip(spec.classes, counts.tolist()))}; "
                        "every class needs at least 2 (one for training, one for testing).")
    x = np.stack(images)
    rng = np.random.default_rng(seed)
    test = []
    for c in range(len(spec.classes)):
        members = rng.permutation(np.flatnonzero(y == c))
        n_test = min(len(members) - 1, max(1, int(round(len(members) * test_fraction))))
        test.append(members[:n_test])
    test_idx = rng.permutation(np.concatenate(test))
    train_idx = rng.permutation(np.setdiff1d(np.arange(len(y)), test_idx))
    np.savez(dest / IMAGES, x_train=x[train_idx], y_train=y[train_idx], x_test=x[test_idx], y_test=y[test_idx])
    return {"kind": "images", "classes": list(spec.classes), "n_train": int(len(train_idx)),
            "n_test": int(len(test_idx)), "image_size": image_size, "split_seed": seed,
            "skipped_unreadable": skipped}


def fetch_folder(name: str, profile: str, source: ImageFolderSource, dest: str | os.PathLike) -> dict:
    """The download stage of a user-folder data set: build it under ``full``, a marker otherwise."""
    if name not in USER_FOLDER_DATASETS:
        raise DataError(f"unknown user-folder data set '{name}'; known: {', '.join(sorted(USER_FOLDER_DATASETS))}")
    if profile not in PROFILES:
        raise DataError(f"unknown profile '{profile}'; choose one of {', '.join(PROFILES)}")
    spec = USER_FOLDER_DATASETS[name]
    key = f"data.{name}.folder"
    if profile != "full":
        return mark_unavailable(name, profile, dest, "it is read from a user folder by the full profile only; "
                                                     f"the {profile} profile's labs use other data")
    if not source.folder:
        raise DataError(f"{key} is not set: the full profile reads {name} from your own folder. "
                        f"Set {key} in params.yaml to a folder with subfolders "
                        f"{', '.join(f'{c}/' for c in spec.classes)} of images.")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.new-"))
    build.chmod(0o755)
    try:
        root = Path(source.folder).expanduser()
        extra = build_from_folder(spec, root, build, image_size=source.image_size,
                                  test_fraction=source.test_fraction, key=key)
        manifest = write_manifest(build, extra | {"dataset": name, "profile": profile, "source": f"user folder: {root.resolve()}"})
        replace_dir(build, dest)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return manifest
