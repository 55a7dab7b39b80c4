"""Dataset lineage: each run names the data version it read, as MLflow datasets.

A lab's processed folder (``data/processed/<lab>``) is a DVC output; its DVC hash (the ``md5`` of
the preprocess stage's out in the lab's ``dvc.lock``) is the identity of that data version. Every
split in the folder's ``meta.json`` becomes one MLflow dataset with that hash as its digest, so
the runs table's *Datasets* column shows what a run trained and was tested on, and
``mlflow.search_runs(filter_string="datasets.digest = '<hash>'")`` finds every run that read one
version of the data.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from labflow.frame.paths import repo_root

# meta.json split name (its ending) -> MLflow's input context
CONTEXTS = (("train", "training"), ("val", "validation"), ("test", "testing"))
TRAIN_CONTEXTS = ("training", "validation")
TEST_CONTEXTS = ("testing",)
ALL_CONTEXTS = TRAIN_CONTEXTS + TEST_CONTEXTS
SOURCE_TYPE = "dvc"
_DIGEST_LEN = 36  # MLflow's column width; a DVC directory hash ("<md5>.dir") is exactly that


def dvc_hash(path: Path, root: Path | None = None) -> str | None:
    """The DVC hash the pipeline recorded for an output folder, from the ``dvc.lock`` of the lab
    that makes it (``labs/<lab>/dvc.lock``, else the root one); None when no lock lists it yet
    (a stage run outside DVC)."""
    root = root or repo_root()
    rel = path.resolve().relative_to(root.resolve()).as_posix()
    producer = path.name
    for lock in (root / "labs" / producer / "dvc.lock", root / "dvc.lock"):
        if not lock.is_file():
            continue
        try:
            stages = (yaml.load(lock.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {})
        except (OSError, yaml.YAMLError):
            continue
        for stage in (stages.get("stages") or {}).values():
            for out in stage.get("outs") or ():
                if out.get("path") == rel and out.get("md5"):
                    return out["md5"]
    return None


def split_inputs(processed: Path, *, contexts: tuple[str, ...], commit: str, fallback_digest: str,
                 root: Path | None = None) -> list:
    """One ``DatasetInput`` per split of ``processed`` whose context is in ``contexts``.

    Digest: the DVC hash of the folder, or (run outside DVC) labflow's manifest hash, cut to
    MLflow's width; the source says which. Name ``<lab>/<split>``; source: the folder at the commit.
    """
    from mlflow.entities import Dataset, DatasetInput, InputTag

    root = root or repo_root()
    meta_file = processed / "meta.json"
    if not meta_file.is_file():
        return []
    sizes = json.loads(meta_file.read_text()).get("sizes") or {}
    digest = dvc_hash(processed, root)
    rel = processed.resolve().relative_to(root.resolve()).as_posix()
    source = {"path": rel, "git_commit": commit,
              "hash": "dvc md5" if digest else "labflow manifest sha256 (no dvc.lock entry: run outside DVC)"}
    digest = (digest or fallback_digest)[:_DIGEST_LEN]
    inputs = []
    for split, rows in sizes.items():
        context = next((ctx for ending, ctx in CONTEXTS if split.endswith(ending)), None)
        if context not in contexts:
            continue
        dataset = Dataset(
            name=f"{processed.name}/{split}",
            digest=digest,
            source_type=SOURCE_TYPE,
            source=json.dumps({**source, "split": split}),
            profile=json.dumps({"num_rows": rows}),
        )
        inputs.append(DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)]))
    return inputs


def context_of(dataset_input) -> str | None:
    """The MLflow context (training, validation, testing) a ``DatasetInput`` was tagged with."""
    return next((t.value for t in dataset_input.tags if t.key == "mlflow.data.context"), None)
