"""A stage's work seconds (preprocessing, training, evaluating) apart from its fixed cost.

Labs and the shared machinery mark what is work with :func:`work` and carve out the
bookkeeping inside it with :func:`not_work`; what remains of a stage's wall time is
its fixed cost (imports, tracking, files). ``benchmarks/stage_overhead.py`` reads the
totals from the file named by ``LABFLOW_TIMINGS`` (one JSON line per stage), and the
MLflow runs carry them as ``work_seconds`` so a whole ``dvc repro`` can be accounted.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator

_total = 0.0
_depth = 0  # >0 while counting
_since = 0.0


def work_seconds() -> float:
    """Work counted so far in this process (including a span still open)."""
    return _total + (time.perf_counter() - _since if _depth > 0 else 0.0)


@contextlib.contextmanager
def work() -> Iterator[None]:
    """Count the enclosed time as work (nested spans count once)."""
    global _depth, _since, _total
    if _depth == 0:
        _since = time.perf_counter()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            _total += time.perf_counter() - _since


@contextlib.contextmanager
def not_work() -> Iterator[None]:
    """Bookkeeping inside a work span (tracking, writing files): not counted."""
    global _depth, _since, _total
    saved = _depth
    if saved > 0:
        _total += time.perf_counter() - _since
    _depth = 0
    try:
        yield
    finally:
        _depth = saved
        if saved > 0:
            _since = time.perf_counter()


def record(stage: str, argv: list[str], wall_seconds: float) -> None:
    """Append this stage's totals to ``$LABFLOW_TIMINGS`` (if set)."""
    target = os.environ.get("LABFLOW_TIMINGS")
    if not target or os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for the stage
        return
    line = {"stage": stage, "argv": list(argv), "work_seconds": round(work_seconds(), 4),
            "function_seconds": round(wall_seconds, 4), "pid": os.getpid(), "peak_rss_mb": peak_rss_mb()}
    with open(target, "a") as fh:
        fh.write(json.dumps(line) + "\n")


def peak_rss_mb() -> float | None:
    """This process's peak resident memory (Linux ``VmHWM``; a stage forked from the warm runner
    counts the runner's pages it shares), in MiB; None where /proc does not say."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None
