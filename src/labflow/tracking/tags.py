"""Tags that tie an MLflow run to its Git commit, DVC experiment, stage, params and data."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

from labflow.paths import repo_root


def stable_hash(obj) -> str:
    """A short hash of JSON-able data; equal params give equal hashes across runs."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _git(*args: str, cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(root: Path | None = None) -> dict[str, str]:
    root = root or repo_root()
    commit = _git("rev-parse", "HEAD", cwd=root)
    if commit is None:
        return {"git.commit": "none", "git.dirty": "unknown"}
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=root)
    return {"git.commit": commit, "git.dirty": str(bool(status)).lower()}


def run_tags(*, lab: str, stage: str, params_hash: str, data_hash: str, profile: str, variant: str | None = None,
             seed: int | None = None) -> dict[str, str]:
    tags = {
        **git_state(),
        "labflow.lab": lab,
        "labflow.stage": stage,
        "labflow.profile": profile,
        "labflow.params_hash": params_hash,
        "labflow.data_hash": data_hash,
    }
    if variant:
        tags["labflow.variant"] = variant
    if seed is not None:
        tags["labflow.seed"] = str(seed)
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc.exp_name"] = os.environ["DVC_EXP_NAME"]
    return tags
