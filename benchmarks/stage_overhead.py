"""What a DVC stage costs beyond its work, beside the floor `python -c "import torch"`.

Runs lab 05's real stages (preprocess; train of the tiny Titanic MLP with tracking on and
the model logged; evaluate) as separate processes in a throw-away copy of this repository,
interleaved with the floor, several times. Each stage appends its work seconds
(preprocessing, training, evaluating: labflow.frame.timing) to $LABFLOW_TIMINGS; its fixed cost
is its wall time minus that work. Two ways are measured in the same sitting:

- ``runner``: the default, stages forked from the warm stage runner (labflow.frame.runner);
- ``cold``: ``LABFLOW_STAGE_RUNNER=0``, every stage importing everything itself.

Optional parts:
- ``--noop REPO``: time a no-op ``dvc repro`` and ``dvc status`` in a repository whose
  pipeline is up to date (median of 3);
- ``--account REPO --wall SECONDS``: how much of a ``dvc repro`` went to work, from that
  repository's MLflow store (runs' ``work_seconds`` and ``final_train_seconds``).

Usage: python benchmarks/stage_overhead.py [--repeats 5] [--noop .] [--account DIR --wall S]
Results: printed, and written to benchmarks/results/stage_overhead.json (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
GOALS = {"train": 1.5, "evaluate": 1.5, "preprocess": 1.2}
STAGES = {
    "preprocess": ["stages/preprocess.py", "lab05"],
    "train": ["stages/train.py", "lab05", "none"],
    "evaluate": ["stages/evaluate.py", "lab05"],
}


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LABFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(PYTHON).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(DVC_NO_ANALYTICS="1", LABFLOW_RUNNER_IDLE_S="900", GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b",
               GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@b")
    env.update(extra)
    return env


def _copy_repo(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
        subprocess.run(cmd, cwd=dest, check=True, env=_env())
    return dest


def _run(repo: Path, argv: list[str], env: dict) -> float:
    started = time.perf_counter()
    proc = subprocess.run([PYTHON, *argv], cwd=repo, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return wall


def _last_work(timings: Path) -> float:
    return json.loads(timings.read_text().splitlines()[-1])["work_seconds"]


def _wait_for_runner(env: dict, timeout: float = 120) -> None:
    code = "from labflow.frame import runner as r; r.start_runner(); print(r.socket_path())"
    sock = Path(subprocess.run([PYTHON, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip())
    deadline = time.monotonic() + timeout
    while not sock.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"the stage runner did not start; see {sock.parent / 'runner.log'}")
        time.sleep(0.2)


def measure_stages(repeats: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="labflow-bench-"))
    try:
        repo = _copy_repo(tmp / "repo")
        timings = tmp / "timings.jsonl"
        ways = {"runner": _env(LABFLOW_TIMINGS=str(timings)),
                "cold": _env(LABFLOW_TIMINGS=str(timings), LABFLOW_STAGE_RUNNER="0")}
        print("setting up (download, preprocess, train all lab05 variants once; warm runner) ...", flush=True)
        _run(repo, ["stages/download.py", "titanic"], ways["cold"])
        _run(repo, STAGES["preprocess"], ways["cold"])
        for variant in ("none", "l1", "l2", "dropout"):
            _run(repo, ["stages/train.py", "lab05", variant], ways["cold"])
        _wait_for_runner(ways["runner"])
        for name in ways:  # one untimed pass each: file caches, the store's first writes
            for argv in STAGES.values():
                _run(repo, argv, ways[name])
        raw: dict[str, list[dict]] = {"floor": []}
        for r in range(repeats):
            raw["floor"].append({"wall": _run(repo, ["-c", "import torch"], ways["cold"]), "work": 0.0})
            order = list(ways) if r % 2 == 0 else list(reversed(ways))
            for name in order:
                for stage, argv in STAGES.items():
                    wall = _run(repo, argv, ways[name])
                    raw.setdefault(f"{stage}/{name}", []).append({"wall": wall, "work": _last_work(timings)})
            print(f"  repeat {r + 1}/{repeats} done", flush=True)
        return raw
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def summarise(raw: dict) -> list[dict]:
    floor = statistics.median(x["wall"] for x in raw["floor"])
    rows = [{"what": "floor: python -c 'import torch'", "wall": floor, "work": 0.0, "fixed": floor, "ratio": 1.0}]
    for key, samples in raw.items():
        if key == "floor":
            continue
        fixed = statistics.median(x["wall"] - x["work"] for x in samples)
        rows.append({"what": key, "wall": statistics.median(x["wall"] for x in samples),
                     "work": statistics.median(x["work"] for x in samples), "fixed": fixed, "ratio": fixed / floor})
    return rows


def print_table(rows: list[dict]) -> list[str]:
    print(f"\n{'stage/way':34} {'wall s':>8} {'work s':>8} {'fixed s':>8} {'fixed/floor':>12}")
    for row in rows:
        print(f"{row['what']:34} {row['wall']:8.2f} {row['work']:8.2f} {row['fixed']:8.2f} {row['ratio']:11.2f}x")
    verdicts = []
    for row in rows:
        stage, _, way = row["what"].partition("/")
        if stage in GOALS:
            ok = row["ratio"] <= GOALS[stage]
            verdicts.append(f"{'PASS' if ok else 'FAIL'}  {row['what']}: fixed cost <= {GOALS[stage]}x floor "
                            f"(measured {row['ratio']:.2f}x)")
    print("\n".join(verdicts))
    return verdicts


def time_noop(repo: Path) -> dict:
    out = {}
    for cmd in (["dvc", "status"], ["dvc", "repro"]):
        walls = []
        for _ in range(3):
            started = time.perf_counter()
            proc = subprocess.run(cmd, cwd=repo, env=_env(), capture_output=True, text=True)
            walls.append(time.perf_counter() - started)
            if proc.returncode:
                raise SystemExit(f"{' '.join(cmd)} failed in {repo}:\n{proc.stderr[-2000:]}")
        out[" ".join(cmd)] = statistics.median(walls)
        print(f"no-op `{' '.join(cmd)}` in {repo}: median {out[' '.join(cmd)]:.2f} s of {[round(w, 2) for w in walls]}")
    return out


def account(repo: Path, wall: float) -> dict:
    """Work vs wall of a whole `dvc repro`, from the repository's MLflow store."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    runs = [r for exp in client.search_experiments() for r in client.search_runs([exp.experiment_id], max_results=5000)]
    train = sum(r.data.metrics.get("final_train_seconds", 0.0) for r in runs)
    work = sum(r.data.metrics.get("work_seconds", 0.0) for r in runs)
    spans = sorted((r.info.start_time, r.info.end_time or r.info.start_time) for r in runs)
    in_runs = sum(end - start for start, end in spans) / 1000
    gaps = sum(max(0, b[0] - a[1]) for a, b in zip(spans, spans[1:])) / 1000
    result = {"runs": len(runs), "wall": wall, "train_seconds": train, "work_seconds": work,
              "run_seconds": in_runs, "gaps_between_runs": gaps,
              "train_share": train / wall, "work_share": work / wall}
    print(f"\n{repo}: {len(runs)} runs; dvc repro wall {wall:.0f} s; training {train:.0f} s ({train / wall:.0%}); "
          f"work (training + evaluation) {work:.0f} s ({work / wall:.0%}); inside runs {in_runs:.0f} s; "
          f"gaps between runs {gaps:.0f} s")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-stages", action="store_true", help="only the --noop/--account parts")
    parser.add_argument("--noop", type=Path, help="an up-to-date repository to time a no-op dvc repro in")
    parser.add_argument("--account", type=Path, help="a repository whose MLflow store holds one dvc repro")
    parser.add_argument("--wall", type=float, help="that dvc repro's wall seconds (for --account)")
    args = parser.parse_args()
    report: dict = {"when": time.strftime("%Y-%m-%d %H:%M:%S"), "python": PYTHON, "cpus": os.cpu_count(),
                    "load_at_start": os.getloadavg()}
    if os.getloadavg()[0] > 0.5:
        print(f"warning: load average {os.getloadavg()[0]:.1f} at start; timings will be noisy")
    failed = False
    if not args.skip_stages:
        raw = measure_stages(args.repeats)
        rows = summarise(raw)
        verdicts = print_table(rows)
        failed = any(v.startswith("FAIL") and "/runner" in v for v in verdicts)
        report |= {"raw": raw, "rows": rows, "verdicts": verdicts}
    if args.noop:
        report["noop"] = time_noop(args.noop.resolve())
    if args.account:
        if args.wall is None:
            parser.error("--account needs --wall")
        report["account"] = account(args.account.resolve(), args.wall)
    out = REPO / "benchmarks" / "results" / "stage_overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
