"""Four queued smoke experiments run by one DVC queue worker vs two, in one sitting.

Each way gets its own throw-away copy of this repository on the smoke profile: lab 05's
pipeline is run once as the baseline and committed, then four experiments that each change
one knob (`lab05.variants.l2.weight_decay`) are queued with `dvc exp run --queue` and
`dvc queue start -j J` runs them; the clock runs from `queue start` until all four are done.
The two ways use different weight decays, so neither finds the other's results in DVC's run
cache. The tracking store is the default SQLite one, or the server in $MLFLOW_TRACKING_URI.

Usage: python benchmarks/queue_parallel.py [--jobs 1 2]
Results: printed, and written to benchmarks/results/queue_parallel.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stage_overhead import _copy_repo, _env  # noqa: E402  (one way to copy the repository)

REPO = Path(__file__).resolve().parents[1]


def _sh(repo: Path, *argv: str, env: dict) -> str:
    proc = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def _smoke_copy(dest: Path, env: dict) -> Path:
    repo = _copy_repo(dest)
    params = repo / "params.yaml"
    params.write_text(re.sub(r"(?m)^profile: \w+", "profile: smoke", params.read_text()))
    (repo / "dvc.lock").unlink(missing_ok=True)
    _sh(repo, "dvc", "repro", "labs/lab05/dvc.yaml:evaluate", env=env)
    _sh(repo, "git", "add", "-A", env=env)
    _sh(repo, "git", "commit", "-qm", "baseline", env=env)
    return repo


def queue_four(repo: Path, env: dict, jobs: int, decays: list[float], timeout: float = 1800) -> float:
    """Wall seconds from `dvc queue start -j jobs` until the four experiments have finished."""
    names = []
    for i, decay in enumerate(decays):
        names.append(f"j{jobs}-{i}")
        _sh(repo, "dvc", "exp", "run", "--queue", "-n", names[-1], "-S",
            f"labs/lab05/params.yaml:lab05.variants.l2.weight_decay={decay}", "labs/lab05/dvc.yaml:evaluate", env=env)
    started = time.monotonic()
    _sh(repo, "dvc", "queue", "start", "-j", str(jobs), env=env)
    while time.monotonic() - started < timeout:
        status = _sh(repo, "dvc", "queue", "status", env=env)
        done = [n for n in names if re.search(rf"{n}\s+\S+ \S+\s+(Success|Failed)", status)]
        if len(done) == len(names):
            break
        time.sleep(1)
    elapsed = time.monotonic() - started
    failed = [n for n in names if not re.search(rf"{n}\s+\S+ \S+\s+Success", status)]
    if failed:
        raise SystemExit(f"experiments {failed} did not succeed:\n{status}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    extra = {k: v for k, v in os.environ.items() if k.startswith("MLFLOW_TRACKING_")}
    env = _env(**extra)
    seconds = {}
    with tempfile.TemporaryDirectory(prefix="labflow-queue-") as tmp:
        for way, jobs in enumerate(args.jobs):
            repo = _smoke_copy(Path(tmp) / f"j{jobs}", env)
            decays = [round(0.02 + 0.01 * (4 * way + i), 2) for i in range(4)]
            seconds[jobs] = queue_four(repo, env, jobs, decays)
            print(f"-j {jobs}: 4 queued smoke experiments in {seconds[jobs]:.0f} s", flush=True)
    if len(seconds) > 1:
        first, *rest = args.jobs
        for jobs in rest:
            print(f"-j {jobs} / -j {first}: {seconds[jobs] / seconds[first]:.2f}x the wall time")
    out = REPO / "benchmarks" / "results" / "queue_parallel.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"store": extra.get("MLFLOW_TRACKING_URI", "sqlite (default)"),
                               "cpus": os.cpu_count(), "seconds": seconds}, indent=2))


if __name__ == "__main__":
    main()
