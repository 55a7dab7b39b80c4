"""File manifests: what a raw data folder holds, so runs can name their input data.

``manifest.json`` lists every file with its sha256 and size. Loaders verify it
before training so a missing or damaged file fails early with a fix, and
:func:`manifest_hash` gives one stable id per data version to tag MLflow runs.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from labflow.data.download import DataError, sha256_file

MANIFEST = "manifest.json"


def _files(folder: Path) -> dict[str, dict]:
    files = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and rel != MANIFEST:
            files[rel] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    return files


def write_manifest(folder: str | os.PathLike, extra: dict | None = None) -> dict:
    """Hash every file under ``folder`` into ``folder/manifest.json`` and return the manifest."""
    folder = Path(folder)
    manifest = {"files": _files(folder), **(extra or {})}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def _fix(folder: Path) -> str:
    stage = f"download_{folder.name}" if folder.parent.name == "raw" else "<the stage that writes it>"
    return f"Rebuild it: rerun `dvc repro -f {stage}`."


def read_manifest(folder: str | os.PathLike) -> dict:
    folder = Path(folder)
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        if not isinstance(manifest.get("files"), dict):
            raise ValueError("no 'files' mapping")
    except FileNotFoundError:
        raise DataError(f"{path}: missing, so the data in {folder} cannot be checked. {_fix(folder)}") from None
    except (ValueError, AttributeError) as err:
        raise DataError(f"{path}: unreadable ({err}). {_fix(folder)}") from None
    return manifest


def manifest_hash(folder: str | os.PathLike) -> str:
    """sha256 of the manifest's file list: the identity of the data, whatever the extra fields say."""
    files = read_manifest(folder)["files"]
    return hashlib.sha256(json.dumps(files, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def verify_manifest(folder: str | os.PathLike) -> dict:
    """Check every listed file exists with its recorded hash; return the manifest or raise DataError."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    for rel, meta in manifest["files"].items():
        path = folder / rel
        if not path.is_file():
            raise DataError(f"{path}: missing (listed in {folder / MANIFEST}). {_fix(folder)}")
        if path.stat().st_size != meta.get("bytes") or sha256_file(path) != meta.get("sha256"):
            raise DataError(f"{path}: corrupt (its sha256 or size differs from {folder / MANIFEST}). {_fix(folder)}")
    return manifest
