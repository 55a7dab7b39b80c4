"""What the full profile costs, from a rehearsal: per lab the parameters, the optimizer steps of
the real run, seconds per step and peak memory measured at full size, and the hours on this CPU.

Networks, images and batches are full size in a rehearsal; only the rows and the epochs are cut.
So a step's time is measured, and the real run's steps and hours are the rehearsal's scaled by
(the full profile's epochs / the rehearsal's) and (rows of the canonical data set / rows of the
fixture); see :func:`stage_estimate` for full-batch runs. Seconds per step are training seconds per
update, the per-epoch validation included as in a real epoch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from labflow import download_sizes as sizes
from labflow.frame.config import apply_profile
from labflow.rehearsal.plan import GENERATED_DATA

# Rows of each canonical data set (every split), for the step estimate.
CANONICAL_ROWS = {
    "mnist": 70_000, "fashion_mnist": 70_000, "cifar10": 60_000, "house_prices": 20_640,
    "credit_default": 284_807, "titanic": 1_309, "flowers": 3_670, "voc2007": 9_963, "melbourne_temp": 3_650,
    "imdb": 50_000, "horse2zebra": 2_661, "sentence_pairs": 230_000, "segmentation": 7_349,
    "cats_vs_dogs": 25_000, "air_quality": 2_009,
}
# Test split of the data sets that come with one (the others are split by labflow, in proportion).
CANONICAL_TEST_ROWS = {"mnist": 10_000, "fashion_mnist": 10_000, "cifar10": 10_000, "voc2007": 4_952,
                       "horse2zebra": 260, "segmentation": 3_669}
_ROW_KEYS = ("n_rows", "n_pairs", "n_texts", "n_images", "n_days")


def manifest_rows(manifest: Mapping) -> int | None:
    """Rows of a downloaded data set, from its manifest."""
    if isinstance(manifest.get("images"), Mapping):  # detection: images per split
        return sum(int(n) for n in manifest["images"].values())
    if "n_train" in manifest:
        return int(manifest["n_train"]) + int(manifest.get("n_test", 0)) + int(manifest.get("n_val", 0))
    for key in _ROW_KEYS:
        if key in manifest:
            return int(manifest[key])
    return None


def manifest_test_rows(manifest: Mapping) -> int | None:
    if isinstance(manifest.get("images"), Mapping):
        return manifest["images"].get("test")
    return manifest.get("n_test")


def failed_stages(log: str) -> list[str]:
    return sorted(set(re.findall(r"failed to reproduce '([^']+)'", log)))


def _timings(path: Path) -> dict[tuple, dict]:
    found = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            found[(row["stage"], *row["argv"])] = row
    return found


def _epochs_ratio(cuts: Mapping[str, tuple[int, int]], variant: str) -> float:
    for key in (f"variants.{variant}.epochs", "train.epochs"):
        if key in cuts:
            full, rehearsed = cuts[key]
            return full / rehearsed
    return 1.0


def _parameters(model_file: Path) -> int | None:
    """Learned weights of a saved model (its state dict, BatchNorm statistics left out)."""
    import torch

    if not model_file.is_file():
        return None
    state = torch.load(model_file, map_location="cpu", weights_only=True).get("state_dict", {})
    skip = ("running_mean", "running_var", "num_batches_tracked")
    return sum(t.numel() for k, t in state.items() if hasattr(t, "numel") and not k.endswith(skip))


def stage_estimate(updates: int, epochs_run: int | None, seconds: float | None, epochs_ratio: float,
                   rows_scale: float | None) -> dict:
    """The real run's optimizer steps, seconds per step and hours, from one rehearsed train stage.

    An epoch's time grows with the data set's rows (``rows_scale``) and the run with its epochs
    (``epochs_ratio``). Its steps grow with the rows too, unless the rehearsal took one step an epoch:
    then the batch is the whole training set (lab 03's full-batch gradient descent), the real run
    takes as many steps as epochs and each step, not the count, grows (``per_step_measured`` False).
    """
    full_batch = bool(epochs_run) and updates == epochs_run
    measured = (seconds / updates) if seconds and updates else None
    if not (updates and seconds and rows_scale):
        return {"full_steps": None, "full_hours": None, "seconds_per_step": measured, "per_step_measured": True}
    steps = updates * epochs_ratio * (1.0 if full_batch else rows_scale)
    hours = seconds * epochs_ratio * rows_scale / 3600
    return {"full_steps": round(steps), "full_hours": hours,
            "seconds_per_step": hours * 3600 / steps if full_batch else measured, "per_step_measured": not full_batch}


def _rows_scale(repo: Path, lab: str, dataset: str | None, raw: Mapping) -> tuple[int | None, float | None, float | None]:
    """The fixture's rows, canonical rows / fixture rows (for a lab that draws its data: the full
    profile's size over the rehearsal's), and the same for the test split where the data set has one."""
    if lab in GENERATED_DATA:
        rows = GENERATED_DATA[lab]["data"]["train_size"]
        scale = apply_profile(dict(raw), "full")[lab]["data"]["train_size"] / rows
        return rows, scale, scale
    manifest_file = repo / "data" / "raw" / (dataset or "-") / "manifest.json"
    manifest = json.loads(manifest_file.read_text()) if manifest_file.is_file() else {}
    rows, test_rows = manifest_rows(manifest), manifest_test_rows(manifest)
    scale = (CANONICAL_ROWS[dataset] / rows) if rows and dataset in CANONICAL_ROWS else None
    test_scale = (CANONICAL_TEST_ROWS[dataset] / test_rows) if test_rows and dataset in CANONICAL_TEST_ROWS else scale
    return rows, scale, test_scale


def collect(repo: Path, timings_file: Path, labs: list[str], raw: Mapping, cuts: Mapping) -> dict:
    """Per lab: its data set's rows, each train stage's cost (:func:`stage_estimate`, parameters, peak
    memory) and the other stages' (preprocess by the rows, decode and evaluate by the test split's:
    rough, as a fixed cost is scaled too; downloads left out, they depend on the network)."""
    from labflow.frame.config import load_params
    from labflow.labs import data_set

    timings = _timings(timings_file)
    params = load_params(repo / "params.yaml")  # the rehearsal's: which data set each lab read
    out: dict = {"labs": {}}
    for lab in labs:
        dataset = data_set(lab, params)
        fixture_rows, scale, test_scale = _rows_scale(repo, lab, dataset, raw)
        stages = []
        for key, timing in sorted(timings.items()):  # the train stages that ran (a decode stage has results too)
            if key[:2] != ("train", lab):
                continue
            _, _, variant, seed = key  # stages/train.py <lab> <variant> <seed>
            metrics_file = repo / "results" / lab / "variants" / variant / f"seed{seed}" / "metrics.json"
            m = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
            updates = m.get("updates") or 0
            seconds_file = metrics_file.with_name("timings.json")
            seconds = (json.loads(seconds_file.read_text()) if seconds_file.is_file() else m).get("train_seconds")
            estimate = stage_estimate(updates, m.get("epochs_run"), seconds,
                                      _epochs_ratio(cuts.get(lab, {}), variant), scale)
            stages.append({"variant": variant, "seed": int(seed), "rehearsal_updates": updates,
                           "parameters": _parameters(repo / "models" / lab / variant / f"seed{seed}" / "model.pt"),
                           "peak_rss_mb": timing.get("peak_rss_mb")} | estimate)
        others = []
        for key, row in timings.items():
            if key[0] != "train" and key[1:2] == (lab,):
                by = scale if key[0] == "preprocess" else test_scale
                others.append({"stage": " ".join(key), "seconds": row["work_seconds"], "peak_rss_mb": row.get("peak_rss_mb"),
                               "full_hours": row["work_seconds"] * by / 3600 if by else None})
        ran = (repo / "results" / lab / "compare" / "metrics.json").is_file()
        out["labs"][lab] = {"dataset": dataset, "fixture_rows": fixture_rows, "canonical_rows": CANONICAL_ROWS.get(dataset),
                            "full_rows": round(fixture_rows * scale) if fixture_rows and scale else None,
                            "epoch_cuts": {k: list(v) for k, v in cuts.get(lab, {}).items()}, "compared": ran,
                            "train_stages": stages, "other_stages": others}
    return out


def _count(n: int) -> str:
    return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.0f} k" if n >= 1e3 else str(n)


def _seconds(values: list[float]) -> str:
    if not values:
        return "-"
    low, high = min(values), max(values)
    return f"{low:.2g}" if abs(high - low) <= 0.05 * high else f"{low:.2g}-{high:.2g}"


def _duration(hours: float) -> str:
    return "<1 min" if hours * 60 < 0.5 else f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h"


def _data(lab: str, info: Mapping) -> str:
    if info["dataset"] is None:
        return f"generated ({info['full_rows']:,})" if info.get("full_rows") else "generated"
    rows = info["canonical_rows"]
    return f"{info['dataset']} ({rows:,})" if rows else info["dataset"]


def _downloads(lab: str, dataset: str | None) -> list[tuple[str, "sizes.Download"]]:
    """(what, size) the lab's full profile downloads: its data set (none for a user folder or an
    offline set) and the pretrained weights it loads."""
    got = [(dataset, sizes.DATA_SETS[dataset])] if dataset in sizes.DATA_SETS else []
    return got + ([(f"{lab} weights", sizes.PRETRAINED[lab][1])] if lab in sizes.PRETRAINED else [])


def table(found: Mapping) -> str:
    """The README's cost table: one row per lab, its variants summed; a total row (each data set
    downloaded once)."""
    rows = ["| lab | data set (rows) | downloads | parameters (largest variant) | optimizer steps, all variants "
            "| s/step | peak memory | training | other stages | all |", "|---|---|---|---|---|---|---|---|---|---|"]
    total, downloaded = 0.0, {}
    for lab, info in found["labs"].items():
        got = _downloads(lab, info["dataset"])
        downloaded.update(got)
        fetched = " + ".join(size.human() for _, size in got) or "-"
        stages, others = info["train_stages"], info.get("other_stages", [])
        train_hours = sum(s["full_hours"] or 0 for s in stages)
        other_hours = sum(s["full_hours"] or 0 for s in others)
        total += train_hours + other_hours
        peak = max((s["peak_rss_mb"] or 0 for s in [*stages, *others]), default=0)
        if not stages:
            rows.append(f"| {lab} | {_data(lab, info)} | {fetched} | - | - | - | {peak / 1024:.1f} GB | - | "
                        f"{_duration(other_hours)} | {_duration(other_hours)} |")
            continue
        per_step = _seconds([s["seconds_per_step"] for s in stages if s["seconds_per_step"]])
        if not all(s.get("per_step_measured", True) for s in stages):
            per_step += " *"
        rows.append(f"| {lab} | {_data(lab, info)} | {fetched} | {_count(max(s['parameters'] or 0 for s in stages))} | "
                    f"{sum(s['full_steps'] or 0 for s in stages):,} | {per_step} | {peak / 1024:.1f} GB | "
                    f"{_duration(train_hours)} | {_duration(other_hours)} | {_duration(train_hours + other_hours)} |")
    all_bytes = sizes.Download(sum(d.bytes for d in downloaded.values()), approx=any(d.approx for d in downloaded.values()))
    rows.append(f"| all | | {all_bytes.human()} | | | | | | | {total:.0f} h |")
    return "\n".join(rows)
