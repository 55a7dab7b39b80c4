"""Processed data: one file of named tensors per lab, plus a manifest for tagging runs."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from labflow.train.callbacks import atomic_torch_save

TENSORS = "tensors.pt"


def save_processed(folder: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    from labflow.data.manifest import write_manifest

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_torch_save({k: v.contiguous() for k, v in tensors.items()}, folder / TENSORS)
    (folder / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    write_manifest(folder)


def load_processed(folder: Path) -> tuple[dict[str, torch.Tensor], dict]:
    from labflow.data.manifest import verify_manifest

    folder = Path(folder)
    verify_manifest(folder)
    tensors = torch.load(folder / TENSORS, map_location="cpu", weights_only=True)
    meta = json.loads((folder / "meta.json").read_text())
    return tensors, meta
