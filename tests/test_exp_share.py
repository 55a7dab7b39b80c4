"""Shared experiments (issue 19): one teammate's DVC experiment reaches another through a Git
remote and a DVC remote, with `dvc exp push` / `dvc exp pull` (README "Share experiments with
teammates").

alice clones this repository's HEAD, runs one small experiment (lab 01, smoke profile, one knob)
and sends it with `dvc exp push origin NAME`. bob clones the Git remote, `dvc exp pull origin NAME`,
finds it in `dvc exp show` with alice's param and metrics, and `dvc exp apply NAME` + `dvc pull`
give him alice's model and results, byte for byte. Everything lives under tmp_path: a bare Git
repository is the team's Git remote, a folder its DVC remote, and each clone logs to its own
MLflow store (`mlflow.db` in the clone: `_env` drops MLFLOW_*/LABFLOW_* variables)."""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from test_team import _env, sh

pytestmark = pytest.mark.slow

NAME = "lr003"
LAB = "lab01"  # one variant, offline MNIST-5k: preflight, download@mnist, preprocess, train, evaluate
KNOB, VALUE = f"labs/{LAB}/params.yaml:{LAB}.train.lr", 0.003
MODEL = f"models/{LAB}/mlp/seed42/model.pt"


def _digests(root: Path, *folders: str) -> dict[str, str]:
    """sha256 of every file under ``folders`` of ``root``, by path relative to root."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in folders for p in sorted((root / folder).rglob("*")) if p.is_file()}


def _in_cache(cache: Path, md5: str) -> bool:
    """Whether a DVC 3 cache or local remote folder holds the object ``md5``."""
    return (cache / "files" / "md5" / md5[:2] / md5[2:]).is_file()


def _out_md5(repo: Path, lab: str, path: str) -> str:
    """The md5 that the lab's dvc.lock in ``repo``'s workspace records for output ``path``."""
    lock = yaml.safe_load((repo / "labs" / lab / "dvc.lock").read_text())
    for stage in lock["stages"].values():
        for out in stage.get("outs") or ():
            if out["path"] == path:
                return out["md5"]
    raise AssertionError(f"labs/{lab}/dvc.lock records no output {path}")


def _shown(repo: Path, name: str, env: dict) -> tuple[dict, dict]:
    """The data (params, metrics) that `dvc exp show --json` lists for experiment ``name``, and for
    the commit it started from."""
    rows = json.loads(sh(repo, "dvc", "exp", "show", "--json", env=env).stdout)
    for row in rows:
        for exp in row.get("experiments") or ():
            if exp.get("name") == name:
                return exp["revs"][0]["data"], row["data"]
    raise AssertionError(f"`dvc exp show` lists no experiment {name!r}: {[r.get('name') or r['rev'] for r in rows]}")


def test_an_experiment_pushed_by_alice_is_shown_applied_and_pulled_by_bob(tmp_path):
    started = time.monotonic()
    git_remote, dvc_remote = tmp_path / "origin.git", tmp_path / "dvc-remote"
    alice, bob = tmp_path / "alice", tmp_path / "bob"
    dvc_remote.mkdir()
    # The team's Git remote. Its HEAD names main, so that bob's clone checks main out.
    sh(tmp_path, "git", "init", "-q", "--bare", "--initial-branch=main", str(git_remote))

    # ---- alice: a clone of this repository's HEAD, re-pointed at the team's remotes at once (no push
    # can reach REPO), the smoke profile and the DVC remote committed as the experiment's baseline.
    sh(tmp_path, "git", "clone", "-q", str(REPO), str(alice))
    sh(alice, "git", "remote", "set-url", "origin", str(git_remote))
    params = alice / "params.yaml"
    text, n = re.subn(r"(?m)^profile: \w+", "profile: smoke", params.read_text())
    assert n == 1, "params.yaml has no top-level `profile:` line"
    params.write_text(text)
    sh(alice, "dvc", "remote", "add", "-d", "team", str(dvc_remote))
    sh(alice, "git", "add", "params.yaml", ".dvc/config")
    sh(alice, "git", "commit", "-qm", "smoke profile; the team's DVC remote")
    sh(alice, "git", "push", "-q", "origin", "HEAD:main")
    # Stages import labflow from the clone (the commit it ran), not from REPO's working tree.
    alice_env = _env(PYTHONPATH=str(alice / "src"))
    sh(alice, "dvc", "exp", "run", "-n", NAME, "-S", f"{KNOB}={VALUE}", f"labs/{LAB}/dvc.yaml:evaluate", env=alice_env)
    metrics = json.loads((alice / "results" / LAB / "compare" / "metrics.json").read_text())
    model_md5 = _out_md5(alice, LAB, MODEL)
    assert _in_cache(alice / ".dvc" / "cache", model_md5)
    assert (alice / "mlflow.db").is_file()  # alice's runs went to her clone's own store

    # A plain `git push` carries no experiment: they live under refs/exps/, not refs/heads/.
    sh(alice, "git", "push", "-q", "origin")
    assert "refs/exps/" not in sh(alice, "git", "ls-remote", "origin").stdout
    sh(alice, "dvc", "exp", "push", "origin", NAME, env=alice_env)
    assert re.search(rf"\srefs/exps/\S+/{NAME}$", sh(alice, "git", "ls-remote", "origin").stdout, re.M)
    assert _in_cache(dvc_remote, model_md5)  # and the experiment's cache to the DVC remote

    # ---- bob: a fresh clone of the team's Git remote; no experiment, no cache until he pulls.
    bob_env = _env()
    sh(tmp_path, "git", "clone", "-q", str(git_remote), str(bob))
    assert NAME not in sh(bob, "dvc", "exp", "list", "--name-only", env=bob_env).stdout.split()
    sh(bob, "dvc", "exp", "pull", "origin", NAME, env=bob_env)
    assert _in_cache(bob / ".dvc" / "cache", model_md5)  # exp pull fetched the experiment's cache from the DVC remote

    shown, baseline = _shown(bob, NAME, bob_env)
    assert shown["params"][f"labs/{LAB}/params.yaml"]["data"][LAB]["train"]["lr"] == VALUE
    assert baseline["params"][f"labs/{LAB}/params.yaml"]["data"][LAB]["train"]["lr"] != VALUE
    assert shown["params"]["params.yaml"]["data"]["profile"] == "smoke"
    got = shown["metrics"][f"results/{LAB}/compare/metrics.json"]["data"]
    assert got["mlp"]["test_acc"] == metrics["mlp"]["test_acc"] and got == metrics
    # alice's numbers, not the commit's (its committed results are the quick profile's)
    assert baseline["metrics"][f"results/{LAB}/compare/metrics.json"]["data"] != metrics

    assert not (bob / MODEL).exists()
    applied = sh(bob, "dvc", "exp", "apply", NAME, check=False, env=bob_env)
    if applied.returncode != 0:
        # `exp apply` checks out every output of the repository; the other labs' outputs of HEAD were
        # never pushed in this sandbox, so it names them and fails after applying NAME's Git changes.
        # None of this lab's outputs may be among them.
        out = applied.stdout + applied.stderr
        assert "Checkout failed for following targets" in out, out[-3000:]
        failed = [line.strip() for line in out.splitlines() if re.match(r"\s*(data|models|results|report)\b", line)]
        assert failed and not [p for p in failed if LAB in p or p == "data/raw/mnist"], failed
    sh(bob, "dvc", "pull", f"labs/{LAB}/dvc.yaml", env=bob_env)

    assert (bob / MODEL).is_file()
    folders = (f"models/{LAB}", f"results/{LAB}")
    mine, theirs = _digests(bob, *folders), _digests(alice, *folders)
    assert mine == theirs, sorted(set(mine.items()) ^ set(theirs.items()))
    assert f"results/{LAB}/variants/mlp/seed42/run.json" in mine  # a DVC-cached result, not only Git's
    assert (bob / f"labs/{LAB}/params.yaml").read_bytes() == (alice / f"labs/{LAB}/params.yaml").read_bytes()
    assert not (bob / "mlflow.db").exists()  # bob ran nothing: no store written
    print(f"exp push/pull round trip: {time.monotonic() - started:.0f} s")
