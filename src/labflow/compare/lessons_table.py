"""`labflow lessons`: every lab's claims and verdicts in one table that fits a terminal.

Reads what the evaluate stages wrote (``results/<lab>/compare/lessons.json``); a lab that has not
run yet says so, with the command that runs it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from labflow.compare import lessons

SHORT = {
    lessons.HOLDS: "holds",
    lessons.HOLDS_ONE_SEED: "holds (1 seed)",
    lessons.WITHIN_NOISE: "within seed noise",
    lessons.REVERSED: "REVERSED",
    lessons.REVERSED_ONE_SEED: "REVERSED (1 seed)",
    lessons.NOT_MEASURED: "not measured",
}
_LAB_W, _VERDICT_W = 5, 17


def read_records(root: Path, labs: list[str]) -> dict[str, dict | None]:
    """{lab: its lessons.json, or None when its evaluate stage has not written one}."""
    out = {}
    for lab in labs:
        path = root / "results" / lab / "compare" / "lessons.json"
        try:
            out[lab] = json.loads(path.read_text())
        except (OSError, ValueError):
            out[lab] = None
    return out


def render(records: dict[str, dict | None], width: int = 80, details: bool = False) -> str:
    """The table: lab, claim (wrapped), verdict; the measured numbers under each claim with ``details``."""
    claim_w = max(20, width - _LAB_W - _VERDICT_W - 4)
    lines = [f"{'lab':<{_LAB_W}}  {'claim (the course says)':<{claim_w}}  verdict", "-" * min(width, _LAB_W + claim_w + _VERDICT_W + 4)]
    counts: dict[str, int] = {}
    for lab, record in records.items():
        if record is None:
            lines.append(f"{lab:<{_LAB_W}}  not run yet: dvc repro labs/{lab}/dvc.yaml")
            counts["not run"] = counts.get("not run", 0) + 1
            continue
        if not record["claims"]:
            for i, part in enumerate(textwrap.wrap(f"no claim: {record['no_claim']}", claim_w)):
                lines.append(f"{lab if i == 0 else '':<{_LAB_W}}  {part}")
            continue
        seeds = len(record.get("seeds") or [])
        for claim in record["claims"]:
            verdict = SHORT.get(claim["verdict"], claim["verdict"])
            counts[verdict] = counts.get(verdict, 0) + 1
            wrapped = textwrap.wrap(claim["says"], claim_w) or [""]
            for i, part in enumerate(wrapped):
                right = verdict if i == 0 else ""
                lines.append(f"{lab if i == 0 else '':<{_LAB_W}}  {part:<{claim_w}}  {right}".rstrip())
            extra = [*(claim["measured"] if details else []), *([f"turns: {claim['turns']}"] if claim.get("turns") else [])]
            for text in extra:
                for part in textwrap.wrap(text, claim_w - 2):
                    lines.append(f"{'':<{_LAB_W}}    {part}")
        lines.append(f"{'':<{_LAB_W}}  ({seeds} training seed{'s' if seeds != 1 else ''})" if details else "")
    lines = [line for line in lines if line != ""]
    total = ", ".join(f"{n} {v}" for v, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    lines.append("")
    lines += textwrap.wrap(f"claims: {total}" if total else "no claims scored yet", width)
    lines += textwrap.wrap("(1 seed) = no estimate of seed noise; run several: dvc exp run -S 'seeds=[42,43,44]'", width)
    return "\n".join(lines)
