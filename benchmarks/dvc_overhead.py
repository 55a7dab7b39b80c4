"""How much CPU the ``dvc repro`` process itself spends, beside the wall time of the repro.

DVC's own bookkeeping (collecting stages, hashing, reading params, rewriting ``dvc.lock`` after
every stage) runs in the ``dvc`` process; the stages run in child processes or in labflow's warm
stage runner (not a child of dvc). This script measures the former on a fresh ``git clone``:

1. ``git clone`` the repository (HEAD of this checkout, or ``--repo``) into a temporary folder;
2. optionally set ``profile:`` and ``seeds:`` in the clone's ``params.yaml`` (comments kept);
3. run ``dvc repro [TARGETS]`` through a small wrapper process that calls DVC's entry point
   in-process (``dvc.cli.main``) and reports ``getrusage(RUSAGE_SELF)``: the user + system CPU
   of that one process, its children excluded;
4. run a second, no-op ``dvc repro`` with the same targets right after.

Goals (issue 17, quick profile, whole pipeline): dvc CPU <= 5% of the repro's wall time with one
seed, <= 10% with several; a no-op repro under 5 s. With another profile or with targets the
goals are printed for information only and do not set the exit status.

Usage: python benchmarks/dvc_overhead.py [--profile quick] [--seeds 42,43,44] [--targets T ...]
                                         [--repo PATH] [--out FILE] [--remove]
Results: printed, and written to benchmarks/results/dvc_overhead-<profile>-<n>seed(s).json
(git-ignored). DVC's output goes to dvc-repro.log and dvc-repro-noop.log in the clone.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
PROFILES = ("smoke", "quick", "full")
SHARE_GOAL_ONE_SEED = 0.05
SHARE_GOAL_SEEDS = 0.10
NOOP_GOAL_S = 5.0

# Run in a fresh interpreter in the clone: DVC's own entry point, then this process's rusage.
WRAPPER = """
import json, resource, sys, time
started = time.perf_counter()
from dvc.cli import main
rc = main(sys.argv[2:])
own = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
report = {"rc": rc, "wall_s_inside": time.perf_counter() - started,
          "user_s": own.ru_utime, "system_s": own.ru_stime, "max_rss_kb": own.ru_maxrss,
          "waited_children_cpu_s": kids.ru_utime + kids.ru_stime}
with open(sys.argv[1], "w") as fh:
    json.dump(report, fh)
sys.exit(rc)
"""


# --------------------------------------------------------------------------- params.yaml


def set_top_level_value(text: str, key: str, value: str) -> str:
    """Replace the value of a top-level ``key:`` line in YAML text, keeping its comment and every other line.

    A regex rather than a YAML round trip: params.yaml is what users read, its comments stay.
    """
    pattern = re.compile(rf"^({re.escape(key)}:[ \t]*)([^#\n]*?)([ \t]*#.*)?$", re.MULTILINE)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"params.yaml has no single top-level '{key}:' line to set")

    def replace(match: re.Match) -> str:
        comment = (match.group(3) or "").lstrip(" \t")
        if not comment:
            return f"{match.group(1)}{value}"
        room = len(match.group(2)) + len(match.group(3)) - len(comment)  # the comment's column stays where room
        return f"{match.group(1)}{value}{' ' * max(1, room - len(value))}{comment}"

    return pattern.sub(replace, text, count=1)


def parse_seeds(raw: str) -> list[int]:
    """``42,43,44`` -> [42, 43, 44]; anything else is a clear error before any work."""
    try:
        seeds = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        raise SystemExit(f"labflow: error: --seeds {raw!r} is not a comma-separated list of integers "
                         "(write e.g. --seeds 42,43,44)")
    return seeds


def edit_params(params: Path, profile: str | None, seeds: list[int] | None) -> None:
    text = params.read_text()
    if profile is not None:
        text = set_top_level_value(text, "profile", profile)
    if seeds is not None:
        text = set_top_level_value(text, "seeds", "[" + ", ".join(str(s) for s in seeds) + "]")
    params.write_text(text)


# --------------------------------------------------------------------------- the clone and dvc


def bench_env(clone: Path) -> dict:
    """The clone's own code, MLflow store and stage runner; no settings inherited from the caller's labflow."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LABFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(PYTHON).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(clone / "src")
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def git_clone(source: Path, dest: Path) -> str:
    if subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=source,
                      capture_output=True, text=True).stdout.strip():
        print(f"note: {source} has uncommitted changes; the clone has its HEAD only")
    subprocess.run(["git", "clone", "--quiet", str(source), str(dest)], check=True)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=dest, capture_output=True, text=True,
                          check=True).stdout.strip()


def run_dvc(clone: Path, argv: list[str], log: Path, report: Path, env: dict) -> dict:
    """``dvc ARGV`` in one process (DVC's entry point in the wrapper); its own rusage and the wall time."""
    started = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.run([PYTHON, "-c", WRAPPER, str(report), *argv], cwd=clone, env=env,
                              stdout=out, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - started
    if proc.returncode or not report.exists():
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise SystemExit(f"labflow: error: dvc {' '.join(argv)} failed (exit {proc.returncode}); "
                         f"the end of {log}:\n{tail}")
    result = json.loads(report.read_text())
    result["wall_s"] = wall
    result["cpu_s"] = result["user_s"] + result["system_s"]
    result["cpu_share"] = result["cpu_s"] / wall
    result["stages_run"] = log.read_text(errors="replace").count("Running stage '")
    return result


def lock_files(clone: Path) -> dict[str, int]:
    """Every dvc.lock in the clone (root and per-folder, tracked or new), path -> size in bytes."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "--",
                             "dvc.lock", "*/dvc.lock"], cwd=clone, capture_output=True, text=True,
                            check=True).stdout.split()
    return {rel: (clone / rel).stat().st_size for rel in sorted(set(listed)) if (clone / rel).is_file()}


def locked_stage_count(clone: Path, locks: dict[str, int]) -> int:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return sum(len((yaml.load((clone / rel).read_text(), Loader=loader) or {}).get("stages", {}))
               for rel in locks)


def pipeline_stage_count(clone: Path, env: dict) -> int:
    """Stages of every dvc.yaml in the clone (``dvc stage list --all``), foreach instances counted one by one."""
    out = subprocess.run([PYTHON, "-m", "dvc", "stage", "list", "--all", "--name-only"], cwd=clone, env=env,
                         capture_output=True, text=True)
    if out.returncode:
        return -1
    return len([line for line in out.stdout.splitlines() if line.strip()])


def stop_stage_runner(clone: Path, env: dict) -> None:
    """The clone's warm stage runner would idle on; stop it (the measurement is over)."""
    code = "from labflow.frame import runner; runner.stop()"
    subprocess.run([PYTHON, "-c", code], cwd=clone, env=env, capture_output=True)


# --------------------------------------------------------------------------- report


def judge(result: dict, seeds: list[int], profile: str, targets: list[str]) -> dict:
    share_goal = SHARE_GOAL_ONE_SEED if len(seeds) == 1 else SHARE_GOAL_SEEDS
    return {
        "applies": profile == "quick" and not targets,
        "share_goal": share_goal,
        "share_ok": result["repro"]["cpu_share"] <= share_goal,
        "noop_goal_s": NOOP_GOAL_S,
        "noop_ok": result["noop"]["wall_s"] < NOOP_GOAL_S,
    }


def print_report(result: dict) -> None:
    print(f"\n{'run':<8}{'stages run':>11}{'wall s':>10}{'dvc CPU s':>11}{'user s':>9}{'sys s':>8}"
          f"{'dvc CPU/wall':>14}{'max RSS MB':>12}")
    for name in ("repro", "noop"):
        r = result[name]
        print(f"{name:<8}{r['stages_run']:>11}{r['wall_s']:>10.1f}{r['cpu_s']:>11.1f}{r['user_s']:>9.1f}"
              f"{r['system_s']:>8.1f}{r['cpu_share']:>14.1%}{r['max_rss_kb'] / 1024:>12.0f}")
    print(f"\nstages: {result['pipeline_stages']} in the pipeline (dvc stage list --all), "
          f"{result['locked_stages']} in the lock files after the repro")
    print("lock files (bytes):")
    for rel, size in result["lock_bytes"].items():
        print(f"  {size:>12,}  {rel}")
    print(f"  {sum(result['lock_bytes'].values()):>12,}  total")
    g = result["goals"]
    scope = "" if g["applies"] else "  (for information: the goals are for the quick profile, no targets)"
    print(f"\n{'PASS' if g['share_ok'] else 'FAIL'}  dvc CPU <= {g['share_goal']:.0%} of the repro's wall time, "
          f"{len(result['seeds'])} seed(s) (measured {result['repro']['cpu_share']:.1%}){scope}")
    print(f"{'PASS' if g['noop_ok'] else 'FAIL'}  no-op dvc repro < {g['noop_goal_s']:.0f} s "
          f"(measured {result['noop']['wall_s']:.1f} s){scope}")


def default_out(profile: str, seeds: list[int], targets: list[str]) -> Path:
    n = len(seeds)
    name = f"dvc_overhead-{profile}-{n}seed{'s' if n > 1 else ''}{'-targets' if targets else ''}.json"
    return REPO / "benchmarks" / "results" / name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", type=Path, default=REPO, help="repository to clone (its HEAD); default: this one")
    ap.add_argument("--profile", choices=PROFILES, help="set params.yaml's profile in the clone")
    ap.add_argument("--seeds", type=parse_seeds, help="set params.yaml's seeds in the clone, e.g. 42,43,44")
    ap.add_argument("--targets", nargs="+", default=[], help="dvc repro targets (default: the whole pipeline)")
    ap.add_argument("--out", type=Path, help="JSON results file (default: benchmarks/results/dvc_overhead-...)")
    ap.add_argument("--remove", action="store_true", help="delete the clone at the end (default: keep it)")
    args = ap.parse_args(argv)
    if not (args.repo / ".git").exists():
        raise SystemExit(f"labflow: error: --repo {args.repo} is not a git repository (give a labflow checkout)")

    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: 1-minute load average is {load:.2f} before starting: other processes compete for "
              "the CPUs; wall times grow and the CPU share shrinks")
    clone = Path(tempfile.mkdtemp(prefix="labflow-dvc-overhead-")) / "labflow"
    commit = git_clone(args.repo.resolve(), clone)
    try:
        edit_params(clone / "params.yaml", args.profile, args.seeds)
    except ValueError as error:
        shutil.rmtree(clone.parent, ignore_errors=True)
        raise SystemExit(f"labflow: error: {error}; --profile/--seeds need that line in the cloned params.yaml")
    params = yaml.safe_load((clone / "params.yaml").read_text())
    profile, seeds = params["profile"], list(params["seeds"])
    env = bench_env(clone)
    print(f"clone of {args.repo} at {commit[:10]}: {clone}")
    print(f"profile {profile}, seeds {seeds}, targets {args.targets or '(whole pipeline)'}; "
          f"dvc output: {clone / 'dvc-repro.log'}, {clone / 'dvc-repro-noop.log'}")

    try:
        repro = run_dvc(clone, ["repro", *args.targets], clone / "dvc-repro.log", clone.parent / "repro.json", env)
        print(f"dvc repro: {repro['wall_s']:.1f} s, {repro['stages_run']} stages run")
        noop = run_dvc(clone, ["repro", *args.targets], clone / "dvc-repro-noop.log",
                       clone.parent / "noop.json", env)
    finally:
        stop_stage_runner(clone, env)
    locks = lock_files(clone)
    result = {
        "command": " ".join([Path(PYTHON).name, *sys.argv]),
        "repo": str(args.repo.resolve()), "commit": commit, "clone": str(clone),
        "profile": profile, "seeds": seeds, "targets": args.targets,
        "cpus": os.cpu_count(), "load_average_at_start": load,
        "repro": repro, "noop": noop,
        "pipeline_stages": pipeline_stage_count(clone, env),
        "locked_stages": locked_stage_count(clone, locks),
        "lock_bytes": locks,
    }
    result["goals"] = judge(result, seeds, profile, args.targets)
    print_report(result)

    out = args.out or default_out(profile, seeds, args.targets)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten: {out}")
    if args.remove:
        shutil.rmtree(clone.parent, ignore_errors=True)
        print(f"removed {clone.parent}")
    else:
        print(f"the clone stays for inspection: rm -rf {clone.parent}")
    g = result["goals"]
    return 1 if g["applies"] and not (g["share_ok"] and g["noop_ok"]) else 0


if __name__ == "__main__":
    sys.exit(main())
