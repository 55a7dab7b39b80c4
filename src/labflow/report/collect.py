"""What one lab's report page shows, read from the files the pipeline wrote (no retraining).

Everything comes from DVC outputs (``results/<lab>/compare``, ``results/<lab>/variants``) and
``params.yaml``; the MLflow store adds the run addresses when it is there.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labflow.report.course import COURSE, CourseResult


@dataclass
class LabPage:
    lab_id: str
    title: str
    table: list[dict[str, str]]  # the comparison table as the evaluate stage wrote it
    figures: list[Path]  # the comparison's figures
    variant_figures: dict[str, list[Path]]  # each variant's own figures
    differing_params: dict[str, dict[str, Any]]  # variant -> {param: value} where variants differ
    shared_train: dict[str, Any]  # the lab's train section, the same for every variant
    course: CourseResult | None
    missing: str = ""  # why there is nothing to show, when the lab has not run
    seeds_md: str = ""  # the seed-band tables (mean ± std, noise verdicts) as markdown
    lessons: dict | None = None  # lessons.json: the course's claims and their verdicts
    links: dict[str, str] = field(default_factory=dict)  # label -> MLflow UI address


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): obj}


def differing(variants: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Only the keys whose values are not the same for every variant (a missing key counts)."""
    flat = {name: flatten(cfg) for name, cfg in variants.items()}
    keys = list(dict.fromkeys(k for cfg in flat.values() for k in cfg))
    varying = [k for k in keys if len({repr(cfg.get(k)) for cfg in flat.values()}) > 1]
    return {name: {k: cfg.get(k) for k in varying} for name, cfg in flat.items()}


def read_table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def collect_lab(root: Path, lab_id: str, title: str, lab_cfg: Any, seed: int = 42) -> LabPage:
    compare = root / "results" / lab_id / "compare"
    variants_cfg = {name: v.model_dump(mode="json") for name, v in getattr(lab_cfg, "variants", {}).items()}
    train = getattr(lab_cfg, "train", None)
    page = LabPage(
        lab_id=lab_id,
        title=title,
        table=[],
        figures=[],
        variant_figures={},
        differing_params=differing(variants_cfg) if len(variants_cfg) > 1 else {n: {} for n in variants_cfg},
        shared_train=flatten(train.model_dump(mode="json")) if train is not None else {},
        course=COURSE.get(lab_id),
    )
    table_file = compare / "comparison.csv"
    if not table_file.exists():
        page.missing = f"{table_file.relative_to(root)} is missing: run `dvc repro labs/{lab_id}/dvc.yaml:evaluate` first."
        return page
    page.table = read_table(table_file)
    page.figures = sorted((compare / "figures").glob("*.png"))
    if (compare / "seeds.md").exists():
        page.seeds_md = (compare / "seeds.md").read_text()
    if (compare / "lessons.json").exists():
        page.lessons = json.loads((compare / "lessons.json").read_text())
    for variant in variants_cfg:  # each variant's own figures: its run with the primary seed
        folder = root / "results" / lab_id / "variants" / variant / f"seed{seed}" / "figures"
        if folder.is_dir():
            page.variant_figures[variant] = sorted(folder.glob("*.png"))
    return page


def variant_run_ids(root: Path, lab_id: str, seeds: list[int] | None = None) -> dict[str, str]:
    """{"<variant>" or "<variant> seed N": MLflow run id} of the runs behind the workspace's results."""
    import json

    out = {}
    for run_file in sorted((root / "results" / lab_id / "variants").glob("*/seed*/run.json")):
        seed = run_file.parent.name.removeprefix("seed")
        if seeds is not None and (not seed.isdigit() or int(seed) not in seeds):
            continue  # a run of a seed params.yaml no longer lists
        try:
            data = json.loads(run_file.read_text())
        except (OSError, ValueError):
            continue
        if data.get("run_id"):
            variant = data.get("variant") or run_file.parent.parent.name
            primary = seeds is None or int(seed) == seeds[0]
            out[variant if primary else f"{variant} seed {seed}"] = data["run_id"]
    return out
