"""``labflow exp LAB``: one lab's experiment history as a table a person reads.

``dvc exp show`` lists every parameter and metric of every lab (hundreds of columns). This
reads its JSON and keeps one lab: rows are commits and their experiments, columns the lab's
variants, cells the lab's headline metric (mean ± std when the experiment ran several seeds),
and under the table what each experiment changed against its baseline commit.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from labflow.compare import NOT_VARIANTS
from labflow.report.collect import flatten


@dataclass
class ExpRow:
    name: str  # experiment name, or the branch/commit of a baseline
    rev: str
    baseline: bool
    metrics: dict[str, Any]  # the lab's compare/metrics.json
    changed: list[str] = field(default_factory=list)  # "key=value" against its baseline
    variants: list[str] = field(default_factory=list)  # in params.yaml's order


def lab_params(params: Mapping[str, Any], lab: str) -> dict[str, Any]:
    """The params that decide a lab's numbers: its section, plus the global seeds and profile."""
    keep = {k: params.get(k) for k in ("profile", "seed", "seeds")}
    return flatten({**keep, lab: params.get(lab) or {}})


def _data(entry: Mapping[str, Any], kind: str, file: str) -> dict[str, Any]:
    node = ((entry.get("data") or {}).get(kind) or {}).get(file) or {}
    return node.get("data") or {}


def _params(entry: Mapping[str, Any], lab: str) -> dict[str, Any]:
    """The shared params (params.yaml) and the lab's own section (labs/<lab>/params.yaml)."""
    return {**_data(entry, "params", "params.yaml"), **_data(entry, "params", f"labs/{lab}/params.yaml")}


def rows_for(exp_show: Sequence[Mapping[str, Any]], lab: str) -> list[ExpRow]:
    """Baselines and their experiments from ``dvc exp show --json``, oldest experiment last."""
    metrics_file = f"results/{lab}/compare/metrics.json"
    rows = []
    for commit in exp_show:
        if commit.get("rev") == "workspace":
            continue
        raw = _params(commit, lab)
        base_params = lab_params(raw, lab)
        rows.append(ExpRow(commit.get("name") or commit["rev"][:7], commit["rev"][:7], True,
                           _data(commit, "metrics", metrics_file),
                           variants=list(((raw.get(lab) or {}).get("variants") or {}))))
        for exp in commit.get("experiments") or []:
            tip = (exp.get("revs") or [{}])[0]
            if not tip.get("data"):
                continue
            params = lab_params(_params(tip, lab), lab)
            changed = [f"{k.removeprefix(lab + '.')}={params.get(k)}" for k in params
                       if params.get(k) != base_params.get(k)]
            changed += [f"{k.removeprefix(lab + '.')} removed" for k in base_params if k not in params]
            rows.append(ExpRow(exp.get("name") or tip.get("name") or tip["rev"][:7], tip["rev"][:7], False,
                               _data(tip, "metrics", metrics_file), changed))
    return rows


def cell(metrics: Mapping[str, Any], variant: str, metric: str) -> str:
    band = (metrics.get("seed_bands") or {}).get(variant) or {}
    if f"{metric}_mean" in band:
        return f"{band[f'{metric}_mean']:.3f}±{band[f'{metric}_std']:.3f}"
    value = (metrics.get(variant) or {}).get(metric)
    return f"{value:.4g}" if isinstance(value, (int, float)) else "-"


def render(rows: Sequence[ExpRow], lab: str, metric: str, *, width: int = 80) -> str:
    """Experiments x variants for one metric, split into column blocks that fit ``width``."""
    reported = {v for r in rows for v, m in r.metrics.items()
                if isinstance(m, Mapping) and v not in NOT_VARIANTS}
    ordered = [v for r in rows for v in r.variants] + sorted(reported)  # params.yaml's order first
    variants = [v for v in dict.fromkeys(ordered) if v in reported]
    if not rows or not variants:
        return f"{lab}: no results in the experiment history yet (run `dvc repro` or `dvc exp run`)."
    names = [("* " if r.baseline else "  ") + r.name for r in rows]
    first = max(len("experiment") + 2, *(len(n) for n in names))
    cells = {v: [cell(r.metrics, v, metric) for r in rows] for v in variants}
    widths = {v: max(len(v), *(len(c) for c in cells[v])) for v in variants}
    blocks, current, used = [], [], first
    for v in variants:
        if current and used + 2 + widths[v] > width:
            blocks.append(current)
            current, used = [], first
        current.append(v)
        used += 2 + widths[v]
    blocks.append(current)
    lines = [f"{lab}: {metric} per variant (* = a commit; the others are its experiments)"]
    for block in blocks:
        lines.append("")
        lines.append("experiment".ljust(first) + "".join("  " + v.rjust(widths[v]) for v in block))
        for i, name in enumerate(names):
            lines.append(name.ljust(first) + "".join("  " + cells[v][i].rjust(widths[v]) for v in block))
    notes = [(r.name, r.changed) for r in rows if not r.baseline]
    if notes:
        lines += ["", "changed against its commit:"]
        for name, changed in notes:
            text = ", ".join(changed) or "(no lab param; another lab or the code changed)"
            lines += _wrap(f"  {name}: {text}", width)
    return "\n".join(lines)


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width=width, subsequent_indent="      ", break_on_hyphens=False) or [text]


def exp_show(all_commits: bool = False) -> list[dict]:
    cmd = ["dvc", "exp", "show", "--json"] + (["--all-commits"] if all_commits else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout)
