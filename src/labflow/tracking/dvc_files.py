"""DVC metrics and plots files: what `dvc metrics diff` and `dvc plots diff` read."""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from labflow.frame.atomic import replacing
from labflow.frame.atomic import write_text as _atomic_write_text


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _clean(value.item())
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_metrics(path: Path, metrics: Mapping) -> None:
    """A JSON metrics file (NaN/inf become null so the file stays valid JSON)."""
    _atomic_write_text(Path(path), json.dumps(_clean(dict(metrics)), indent=2, sort_keys=True) + "\n")


_TIMING = re.compile(r"(^|_)(seconds?|time|wall)(_|$)")


def is_timing(key: str) -> bool:
    """Wall-clock numbers (``train_seconds``, ``test_acc_per_train_second``) differ on every run,
    so they stay out of DVC's metrics: ``dvc metrics diff`` lists only what really moved."""
    return bool(_TIMING.search(key.rsplit(".", 1)[-1]))


def split_timings(metrics: Mapping) -> tuple[dict, dict]:
    """(metrics, timings) of a flat or one-level-nested metrics mapping."""
    kept, timings = {}, {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            inner_kept, inner_timings = split_timings(value)
            kept[key] = inner_kept
            if inner_timings:
                timings[key] = inner_timings
        elif is_timing(str(key)):
            timings[key] = value
        else:
            kept[key] = value
    return kept, timings


def write_metrics_and_timings(folder: Path, metrics: Mapping) -> None:
    """``metrics.json`` (a DVC metric) and ``timings.json`` (a plain output) side by side."""
    kept, timings = split_timings(metrics)
    write_metrics(Path(folder) / "metrics.json", kept)
    write_metrics(Path(folder) / "timings.json", timings)


def read_metrics_and_timings(folder: Path) -> dict:
    """What :func:`write_metrics_and_timings` split, merged back (timings.json may be absent)."""
    merged = read_metrics(Path(folder) / "metrics.json")
    timings_file = Path(folder) / "timings.json"
    if timings_file.exists():
        for key, value in read_metrics(timings_file).items():
            if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    return merged


def write_rows(path: Path, rows: Iterable[Mapping], columns: list[str] | None = None) -> None:
    """A CSV plots file, one row per point (epoch, update, ...)."""
    rows = [dict(r) for r in rows]
    if columns is None:
        columns = list(dict.fromkeys(k for r in rows for k in r))
    with replacing(path, newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _clean(row.get(k)) for k in columns})


def read_metrics(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def read_rows(path: Path) -> list[dict[str, float | str]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for row in rows:
        parsed = {}
        for k, v in row.items():
            try:
                parsed[k] = float(v) if v not in ("", None) else None
            except ValueError:
                parsed[k] = v
        out.append(parsed)
    return out
