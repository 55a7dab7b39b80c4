"""Where things live, resolved to absolute paths.

``dvc exp run --queue``/``--temp`` run stages in a copy of the repository under
``<repo>/.dvc/tmp/exps/...``; the tracking store must still be the original
repository's, so :func:`store_root` climbs out of such a copy.
"""

from __future__ import annotations

import os
from pathlib import Path

_EXPS_MARKER = os.path.join(".dvc", "tmp", "exps")


def repo_root(start: Path | None = None) -> Path:
    """The folder holding params.yaml/dvc.yaml at or above ``start`` (default: cwd)."""
    if os.environ.get("LABFLOW_ROOT"):
        return Path(os.environ["LABFLOW_ROOT"]).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "params.yaml").exists() and (folder / "dvc.yaml").exists():
            return folder
    return here


def store_root(start: Path | None = None) -> Path:
    """The repository whose mlflow.db/mlruns/ a run should use (never a temporary exp copy)."""
    if os.environ.get("LABFLOW_STORE_ROOT"):
        return Path(os.environ["LABFLOW_STORE_ROOT"]).resolve()
    root = repo_root(start)
    text = str(root)
    idx = text.find(os.sep + _EXPS_MARKER + os.sep)
    if idx >= 0:
        return Path(text[:idx])
    return root


def raw_dir(dataset: str) -> Path:
    return repo_root() / "data" / "raw" / dataset


def processed_dir(lab: str) -> Path:
    return repo_root() / "data" / "processed" / lab


def seed_folder(seed: int) -> str:
    """The folder of one training seed's run under a variant: ``seed42``."""
    return f"seed{int(seed)}"


def model_dir(lab: str, variant: str, seed: int) -> Path:
    """``models/<lab>/<variant>/seed<N>``: one trained model per variant and training seed."""
    return repo_root() / "models" / lab / variant / seed_folder(seed)


def results_dir(lab: str, variant: str | None = None, seed: int | None = None) -> Path:
    """``results/<lab>/variants/<variant>/seed<N>`` for a train stage, ``results/<lab>/compare`` for evaluate."""
    base = repo_root() / "results" / lab
    if variant is None:
        return base / "compare"
    if seed is None:
        raise TypeError(f"results_dir({lab!r}, {variant!r}): a variant's results are per training seed; pass seed=")
    return base / "variants" / variant / seed_folder(seed)


def lab_pipeline(lab: str, root: Path | None = None) -> Path:
    """The lab's own DVC pipeline file (its stages' addresses are ``labs/<lab>/dvc.yaml:<stage>``)."""
    return (repo_root() if root is None else root) / "labs" / lab / "dvc.yaml"
