"""The course's lessons as checks on a lab's own metrics, and the verdict on each.

A lab states what the course says its comparison shows (``labs/<lab>/lessons.py``: ``CLAIMS``,
or ``NO_CLAIM`` with the reason when the course makes none). A claim is one to a few checks
"a > b" (or "a < b"), where a side is a variant's metric (``"resnet18.test_acc"``), a summary
metric (``"summary.persistence_test_mae"``) or a number the course gives. The claim's words and
its source (the course's sentence or number) come from the course, never from our results.

Verdict of one check, over the training seeds (``params.yaml: seeds``):

- one seed: *holds on one seed (no noise estimate)* or *reversed on one seed (no noise estimate)*;
- two or more: the paired t-test of the seed bands (:mod:`labflow.compare.seed_bands`) on the
  per-seed differences; p < 0.05 gives *holds* or *reversed* by the sign of the mean difference,
  otherwise *within seed noise*.

A side with no per-seed values (a baseline that trains nothing, a summary number, a constant)
is the same on every seed. A claim's verdict is its worst check's. A claim that cannot hold
honestly within the quick budget carries ``turns``: the measured budget at which it turns,
shown with its verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from labflow.compare.seed_bands import ALPHA, paired_test

HOLDS = "holds"
HOLDS_ONE_SEED = "holds on one seed (no noise estimate)"
WITHIN_NOISE = "within seed noise"
REVERSED_ONE_SEED = "reversed on one seed (no noise estimate)"
REVERSED = "reversed"
NOT_MEASURED = "not measured"
# Worst first: a claim's verdict is the worst of its checks'.
_SEVERITY = (NOT_MEASURED, REVERSED, REVERSED_ONE_SEED, WITHIN_NOISE, HOLDS_ONE_SEED, HOLDS)
# For `dvc metrics diff`: +1 holds, 0 undecided, -1 reversed.
SCORE = {HOLDS: 1, HOLDS_ONE_SEED: 1, WITHIN_NOISE: 0, NOT_MEASURED: 0, REVERSED_ONE_SEED: -1, REVERSED: -1}

Side = str | float | int


@dataclass(frozen=True)
class Check:
    """``a`` beats ``b``: greater when ``higher`` (accuracy, BLEU), smaller otherwise (loss, RMSE)."""

    a: Side
    b: Side
    higher: bool = True

    def __str__(self) -> str:
        return f"{self.a} {'>' if self.higher else '<'} {self.b}"


def gt(a: Side, b: Side) -> Check:
    return Check(a, b, higher=True)


def lt(a: Side, b: Side) -> Check:
    return Check(a, b, higher=False)


@dataclass(frozen=True)
class Claim:
    """One lesson of the course: ``says`` in our words, ``course`` quoting where it comes from."""

    id: str
    says: str
    course: str
    checks: tuple[Check, ...]
    turns: str = ""  # measured: the budget at which the claim turns, when it cannot hold within quick's

    def __post_init__(self):
        if not self.checks:
            raise ValueError(f"claim {self.id!r} has no checks")
        object.__setattr__(self, "checks", tuple(self.checks))


@dataclass
class CheckResult:
    check: Check
    a: list[float]
    b: list[float]
    seeds: int
    p: float | None
    verdict: str

    @property
    def mean_a(self) -> float | None:
        return sum(self.a) / len(self.a) if self.a else None

    @property
    def mean_b(self) -> float | None:
        return sum(self.b) / len(self.b) if self.b else None


@dataclass
class ClaimResult:
    claim: Claim
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        return min((c.verdict for c in self.checks), key=_SEVERITY.index)

    @property
    def verdict_text(self) -> str:
        """The verdict, and where the claim does not hold, the budget at which it turns (measured)."""
        if self.claim.turns and SCORE[self.verdict] <= 0:
            return f"{self.verdict}; {self.claim.turns}"
        return self.verdict


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def side_values(side: Side, results: Mapping[str, Mapping[str, Any]], summary: Mapping[str, Any],
                seeds: Sequence[int]) -> dict[int, float] | float | None:
    """Per-seed values {seed: value} of a variant's metric, one value for what no seed changes
    (a number, a summary metric, a variant without per-seed runs), None when it is not reported."""
    if not isinstance(side, str):
        return _number(side)
    variant, _, metric = side.partition(".")
    if variant == "summary":  # may be nested: "summary.lab01_mlp.test_acc"
        value: Any = summary
        for key in metric.split("."):
            value = value.get(key) if isinstance(value, Mapping) else None
        return _number(value)
    r = results.get(variant)
    if r is None:
        return None
    runs = r.get("seeds") or {}
    top = _number((r.get("metrics") or {}).get(metric))
    if not runs:  # trains nothing per seed (a baseline): the same on every seed
        return top
    values = {s: _number(runs[s]["metrics"].get(metric)) for s in seeds if s in runs}
    if values and all(v is not None for v in values.values()):
        return values
    # Computed by the comparison for the primary seed's run only: one seed's value.
    return {seeds[0]: top} if top is not None and seeds else None


def score_check(check: Check, results, summary, seeds: Sequence[int]) -> CheckResult:
    a = side_values(check.a, results, summary, seeds)
    b = side_values(check.b, results, summary, seeds)
    if a is None or b is None:
        return CheckResult(check, [], [], 0, None, NOT_MEASURED)
    if isinstance(a, float) and isinstance(b, float):  # neither side depends on the training seed
        xa, xb = [a], [b]
    else:
        used = [s for s in seeds if (not isinstance(a, dict) or s in a) and (not isinstance(b, dict) or s in b)]
        xa = [a[s] if isinstance(a, dict) else a for s in used]
        xb = [b[s] if isinstance(b, dict) else b for s in used]
    if not check.higher:  # "a < b" is "b - a > 0"
        gaps_a, gaps_b = xb, xa
    else:
        gaps_a, gaps_b = xa, xb
    mean_gap = (sum(gaps_a) - sum(gaps_b)) / len(xa)
    if len(xa) < 2:
        p = None
        verdict = HOLDS_ONE_SEED if mean_gap > 0 else REVERSED_ONE_SEED
    else:
        p = paired_test(gaps_a, gaps_b)
        verdict = WITHIN_NOISE if p >= ALPHA or mean_gap == 0 else (HOLDS if mean_gap > 0 else REVERSED)
    return CheckResult(check, xa, xb, len(xa), p, verdict)


def score(claims: Sequence[Claim], results: Mapping[str, Mapping[str, Any]], summary: Mapping[str, Any] | None,
          seeds: Sequence[int]) -> list[ClaimResult]:
    """Every claim's checks scored on the lab's results (the comparison's ``variant_results``)."""
    summary = summary or {}
    return [ClaimResult(c, [score_check(k, results, summary, seeds) for k in c.checks]) for c in claims]


# --------------------------------------------------------------------------- what people read


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}"


def measured_text(result: CheckResult) -> str:
    """``resnet18.test_acc 0.81 > simple_cnn.test_acc 0.78 (3 seeds, p 0.01)``."""
    c = result.check
    op = ">" if c.higher else "<"
    if result.verdict == NOT_MEASURED:
        return f"{c}: not reported"
    left = f"{c.a} {_fmt(result.mean_a)}" if isinstance(c.a, str) else _fmt(result.mean_a)
    right = f"{c.b} {_fmt(result.mean_b)}" if isinstance(c.b, str) else _fmt(result.mean_b)
    seeds = "1 seed" if result.seeds == 1 else f"mean of {result.seeds} seeds, p {_fmt(result.p)}"
    return f"{left} {op} {right} ({seeds})"


def rows(results: Sequence[ClaimResult]) -> list[dict[str, Any]]:
    """One row per check, for lessons.csv and the MLflow run."""
    out = []
    for r in results:
        for c in r.checks:
            out.append({"claim": r.claim.id, "says": r.claim.says, "check": str(c.check), "a": c.mean_a,
                        "b": c.mean_b, "seeds": c.seeds, "p_paired_t": c.p, "check_verdict": c.verdict,
                        "claim_verdict": r.verdict_text, "course": r.claim.course})
    return out


def metrics(results: Sequence[ClaimResult]) -> dict[str, int]:
    """{claim id: +1 holds, 0 undecided, -1 reversed}, for the lab's DVC metrics."""
    return {r.claim.id: SCORE[r.verdict] for r in results}


def markdown(lab_id: str, results: Sequence[ClaimResult], seeds: Sequence[int], no_claim: str = "") -> str:
    """The lab's lessons.md: each claim, where the course says it, what we measured, the verdict."""
    if not results:
        reason = no_claim or "the lab declares no claims"
        return f"# {lab_id}: what the course says this lab shows\n\nNo claim to check: {reason}\n"
    noise = ("one training seed: no estimate of seed noise" if len(seeds) < 2 else
             f"{len(seeds)} training seeds ({', '.join(map(str, seeds))}); paired t-test, within seed noise "
             f"when p >= {ALPHA}")
    lines = [f"# {lab_id}: what the course says this lab shows", "",
             f"Verdicts on {noise}.", "",
             "| claim | verdict | measured | the course |", "|---|---|---|---|"]
    for r in results:
        measured = "<br>".join(measured_text(c) for c in r.checks)
        lines.append(f"| {r.claim.says} | **{r.verdict_text}** | {measured} | {r.claim.course} |")
    return "\n".join(lines) + "\n"


def note(lab_id: str, results: Sequence[ClaimResult], seeds: Sequence[int], no_claim: str = "") -> str:
    """The MLflow comparison run's description (its page shows it above everything else)."""
    return markdown(lab_id, results, seeds, no_claim).replace(f"# {lab_id}: w", "**W", 1).replace(
        "shows\n", "shows**\n", 1)


def summary_record(lab_id: str, results: Sequence[ClaimResult], seeds: Sequence[int], no_claim: str = "") -> dict:
    """lessons.json: what `labflow lessons` and the report read."""
    return {
        "lab": lab_id,
        "seeds": list(seeds),
        "no_claim": no_claim if not results else "",
        "claims": [{"id": r.claim.id, "says": r.claim.says, "course": r.claim.course, "verdict": r.verdict,
                    "verdict_text": r.verdict_text, "turns": r.claim.turns,
                    "measured": [measured_text(c) for c in r.checks]} for r in results],
    }
