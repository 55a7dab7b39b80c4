"""``labflow rehearse``: every lab's full profile through ``dvc repro`` on fixtures, in a copy.

The copy holds the repository's tracked files (as a clone would), the fixtures are served on
127.0.0.1, and params.yaml is the full profile's with :mod:`labflow.rehearsal.plan`'s changes.
What it finds is written to ``<work>/rehearsal.json``: per lab, whether every stage ran, and per
train stage what a real full run costs (:mod:`labflow.rehearsal.cost`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

from labflow.frame.config import read_raw_params
from labflow.frame.paths import repo_root
from labflow.rehearsal import cost
from labflow.rehearsal.fixture import Fixture
from labflow.rehearsal.plan import rehearsal_params
from labflow.rehearsal.serve import FixtureServer

FIXTURE_SEED = 20261205


def tracked_files(root: Path) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]


def copy_repository(root: Path, dest: Path) -> Path:
    """A fresh git repository with ``root``'s tracked files: what a new clone holds."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in tracked_files(root):
        source = root / rel
        if source.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / rel)
    return dest


def write_params(repo: Path, params: dict) -> None:
    """Each lab's section to labs/<lab>/params.yaml, the shared ones to params.yaml."""
    shared = {}
    for key, value in params.items():
        lab_file = repo / "labs" / key / "params.yaml"
        if lab_file.exists():
            lab_file.write_text(yaml.safe_dump({key: value}, sort_keys=False))
        else:
            shared[key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(shared, sort_keys=False))


def build_fixtures(folder: Path) -> dict[str, Fixture]:
    """Every family's fixtures (all of them, also for a few labs: the params point every data set at them)."""
    from labflow.rehearsal.fixtures import BUILDERS, FOLDERS

    rng = np.random.default_rng(FIXTURE_SEED)
    built = {}
    for name, build in BUILDERS.items():
        (folder / FOLDERS[name]).mkdir(parents=True, exist_ok=True)
        built[name] = build(folder / FOLDERS[name], rng)
    return built


def _git(repo: Path, *args: str, env: dict) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env=env)


def _env(work: Path, repo: Path, fixtures: dict[str, Fixture]) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LABFLOW_", "DVC_", "HF_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(repo / "src")  # the copy's code, whatever the installed labflow points at
    env.update(DVC_NO_ANALYTICS="1", LABFLOW_DOWNLOAD_CACHE=str(work / "downloads"),
               LABFLOW_TIMINGS=str(work / "timings.jsonl"), GIT_AUTHOR_NAME="rehearsal",
               GIT_AUTHOR_EMAIL="rehearsal@localhost", GIT_COMMITTER_NAME="rehearsal",
               GIT_COMMITTER_EMAIL="rehearsal@localhost")
    for fixture in fixtures.values():
        env.update(fixture.env)
    return env


def rehearse(work: Path, labs: list[str] | None = None, *, root: Path | None = None, echo=print) -> dict:
    """Run the rehearsal in ``work`` (made if missing); returns what ``rehearsal.json`` holds."""
    from labflow.labs import LABS

    root = root or repo_root()
    labs = labs or list(LABS)
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    repo = copy_repository(root, work / "repo")
    echo(f"[rehearse] building fixtures in {work / 'fixtures'}")
    fixtures = build_fixtures(work / "fixtures")
    routes = {f"/{name}/{rel}": path for name, fx in fixtures.items() for rel, path in fx.served.items()}
    env = _env(work, repo, fixtures)
    with FixtureServer(routes) as server:
        raw = read_raw_params(repo / "params.yaml")
        params, cuts = rehearsal_params(raw, fixtures, server.url, labs)
        write_params(repo, params)
        # The committed quick-profile outputs are not the rehearsal's: start from none.
        for stale in ("dvc.lock", *(f"labs/{lab}/dvc.lock" for lab in LABS)):
            (repo / stale).unlink(missing_ok=True)
        shutil.rmtree(repo / "results", ignore_errors=True)
        _git(repo, "init", "-q", env=env)
        _git(repo, "add", "-A", env=env)
        _git(repo, "commit", "-qm", "full-profile rehearsal", env=env)
        targets = [] if set(labs) == set(LABS) else [f"labs/{lab}/dvc.yaml" for lab in labs]
        echo(f"[rehearse] dvc repro --keep-going {' '.join(targets) or '(every lab)'}: log in {work / 'repro.log'}")
        with open(work / "repro.log", "w") as log:
            proc = subprocess.run(["dvc", "repro", "--keep-going", *targets], cwd=repo, env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
    found = cost.collect(repo, work / "timings.jsonl", labs, raw, cuts)
    found.update(returncode=proc.returncode, wall_seconds=round(time.monotonic() - started, 1),
                 failed_stages=cost.failed_stages((work / "repro.log").read_text()))
    (work / "rehearsal.json").write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    (work / "cost.md").write_text(cost.table(found) + "\n")
    return found
