"""What the full profile costs, from a rehearsal: per train stage its parameters, the optimizer
steps of the real run, seconds per step and peak memory measured at full size, and the total.

Steps of the real run are estimated from the rehearsal's own: its updates x (the full profile's
epochs / the rehearsal's) x (rows of the canonical data set / rows of the fixture). Seconds per
step are the rehearsal's training seconds per update (validation included, as in a real epoch).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from labflow.frame.config import apply_profile
from labflow.rehearsal.plan import GENERATED_DATA

# Rows of each canonical data set (every split), for the step estimate.
CANONICAL_ROWS = {
    "mnist": 70_000, "fashion_mnist": 70_000, "cifar10": 60_000, "house_prices": 20_640,
    "credit_default": 284_807, "titanic": 1_309, "flowers": 3_670, "voc2007": 9_963, "melbourne_temp": 3_650,
    "imdb": 50_000, "horse2zebra": 2_661, "sentence_pairs": 230_000, "segmentation": 7_349,
    "cats_vs_dogs": 25_000, "air_quality": 2_009,
}
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


def _dataset_of(repo: Path, lab: str) -> str | None:
    from labflow.frame.config import load_params
    from labflow.labs import data_set

    return data_set(lab, load_params(repo / "params.yaml"))


def _parameters(model_file: Path) -> int | None:
    """Learned weights of a saved model (its state dict, BatchNorm statistics left out)."""
    import torch

    if not model_file.is_file():
        return None
    state = torch.load(model_file, map_location="cpu", weights_only=True).get("state_dict", {})
    skip = ("running_mean", "running_var", "num_batches_tracked")
    return sum(t.numel() for k, t in state.items() if hasattr(t, "numel") and not k.endswith(skip))


def collect(repo: Path, timings_file: Path, labs: list[str], raw: Mapping, cuts: Mapping, fixtures) -> dict:
    timings = _timings(timings_file)
    out: dict = {"labs": {}}
    for lab in labs:
        dataset = _dataset_of(repo, lab)
        manifest = repo / "data" / "raw" / (dataset or "-") / "manifest.json"
        fixture_rows = manifest_rows(json.loads(manifest.read_text())) if manifest.is_file() else None
        scale = (CANONICAL_ROWS[dataset] / fixture_rows) if fixture_rows and dataset in CANONICAL_ROWS else None
        if lab in GENERATED_DATA:  # a lab that draws its data: the full profile's size over the rehearsal's
            fixture_rows = GENERATED_DATA[lab]["data"]["train_size"]
            scale = apply_profile(dict(raw), "full")[lab]["data"]["train_size"] / fixture_rows
        stages = []
        for metrics_file in sorted((repo / "results" / lab / "variants").glob("*/seed*/metrics.json")):
            variant, seed = metrics_file.parts[-3], metrics_file.parts[-2].removeprefix("seed")
            m = json.loads(metrics_file.read_text())
            updates = m.get("updates") or 0
            timings_file = metrics_file.with_name("timings.json")
            seconds = (json.loads(timings_file.read_text()) if timings_file.is_file() else m).get("train_seconds")
            timing = timings.get(("train", lab, variant, seed)) or timings.get(("train", lab, variant)) or {}
            params = _parameters(repo / "models" / lab / variant / f"seed{seed}" / "model.pt")
            full_steps = (updates * _epochs_ratio(cuts.get(lab, {}), variant) * scale) if scale and updates else None
            per_step = (seconds / updates) if seconds and updates else None
            stages.append({"variant": variant, "seed": int(seed), "parameters": params,
                           "rehearsal_updates": updates, "seconds_per_step": per_step,
                           "peak_rss_mb": timing.get("peak_rss_mb"), "full_steps": round(full_steps) if full_steps else None,
                           "full_hours": (full_steps * per_step / 3600) if full_steps and per_step else None})
        ran = (repo / "results" / lab / "compare" / "metrics.json").is_file()
        out["labs"][lab] = {"dataset": dataset, "fixture_rows": fixture_rows, "canonical_rows": CANONICAL_ROWS.get(dataset),
                            "epoch_cuts": {k: list(v) for k, v in cuts.get(lab, {}).items()}, "compared": ran,
                            "train_stages": stages}
    return out


def _count(n: int) -> str:
    return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.0f} k" if n >= 1e3 else str(n)


def _seconds(values: list[float]) -> str:
    if not values:
        return "-"
    low, high = min(values), max(values)
    return f"{low:.3g}" if abs(high - low) <= 0.05 * high else f"{low:.3g}-{high:.3g}"


def table(found: Mapping) -> str:
    """The README's cost table: one row per lab, its variants summed."""
    rows = ["| lab | data set (canonical rows) | parameters (largest variant) | optimizer steps, all variants "
            "| s/step on 2 CPU cores | peak memory | hours on 2 CPU cores |", "|---|---|---|---|---|---|---|"]
    total = 0.0
    for lab, info in found["labs"].items():
        stages = info["train_stages"]
        steps = sum(s["full_steps"] or 0 for s in stages)
        hours = sum(s["full_hours"] or 0 for s in stages)
        total += hours
        params = max((s["parameters"] or 0 for s in stages), default=0)
        per_step = [s["seconds_per_step"] for s in stages if s["seconds_per_step"]]
        peak = max((s["peak_rss_mb"] or 0 for s in stages), default=0)
        rows.append(f"| {lab} | {info['dataset'] or '-'} ({info['canonical_rows'] or '-'}) | "
                    f"{_count(params)} | {steps:,.0f} | "
                    f"{_seconds(per_step)} | "
                    f"{peak / 1024:.1f} GB | {hours:.1f} |" if stages else f"| {lab} | {info['dataset'] or '-'} | - | - | - | - | - |")
    rows.append(f"| all | | | | | | {total:.0f} |")
    return "\n".join(rows)
