"""Raw data folders (``data/raw/<name>``): what every kind of data set shares, below all of them.

The profiles, the standard file names, where full-profile downloads are cached, how a new
folder replaces the old one whole, and the marker a download stage writes for a data set its
profile does not use. labflow.data.datasets and the modules of special data sets (folder,
reviews, segmentation, timeseries) import this module; it imports none of them, so their
imports go one way.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from labflow.data.download import DataError
from labflow.data.manifest import verify_manifest, write_manifest

PROFILES = ("smoke", "quick", "full")
IMAGES, TABLE, ANNOTATIONS = "images.npz", "table.csv", "annotations.json"


def default_cache() -> Path:
    """Where full-profile downloads are kept between runs (outside the repo, so
    `dvc exp run --temp` copies and `dvc repro -f` reuse them)."""
    if os.environ.get("LABFLOW_DOWNLOAD_CACHE"):
        return Path(os.environ["LABFLOW_DOWNLOAD_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "labflow" / "downloads"


def replace_dir(new: Path, dest: Path) -> None:
    """Swap ``new`` into ``dest``; the old folder is kept until the swap succeeded."""
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old-"))
        os.replace(dest, old / "data")
    try:
        os.replace(new, dest)
    except BaseException:
        if old is not None:
            os.replace(old / "data", dest)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def mark_unavailable(name: str, profile: str, dest: str | os.PathLike, reason: str) -> dict:
    """A valid folder whose manifest says why ``profile`` does not use data set ``name``.

    The download stage writes it so ``dvc repro`` runs offline; a lab that tries to load
    it gets the reason (:func:`manifest_of_kind`) instead of a missing-file error.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.new-"))
    build.chmod(0o755)
    try:
        note = f"{name} is not used by the {profile} profile: {reason}"
        manifest = write_manifest(build, {"dataset": name, "profile": profile, "kind": "unavailable", "note": note})
        replace_dir(build, dest)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return manifest


def manifest_of_kind(dest: Path, kind: str) -> dict:
    """``dest``'s verified manifest; one clear error if it is a marker or another kind of data."""
    manifest = verify_manifest(dest)
    if manifest.get("kind") == "unavailable":
        raise DataError(f"{dest} holds no data: {manifest.get('note')}; choose another data set for this profile in params.yaml.")
    if manifest.get("kind") != kind:
        raise DataError(f"{dest} holds a {manifest.get('kind')} data set, not {kind}; check the lab's data set name.")
    return manifest
