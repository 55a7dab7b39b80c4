"""Shared fixtures. Every test that logs gets its own MLflow store, and MLflow's
global state (active runs, tracking URI, MLFLOW_* variables) is reset afterwards,
as kedro-mlflow's tests do. Download tests get a loopback HTTP server (``server``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from labflow.rehearsal.run import write_params  # noqa: F401 - the tests' writer too

REPO = Path(__file__).resolve().parents[1]


def pipeline_files(root: Path = REPO) -> list[Path]:
    """The root dvc.yaml and every lab's labs/<lab>/dvc.yaml."""
    return [root / "dvc.yaml", *sorted((root / "labs").glob("*/dvc.yaml"))]


def read_params(root: Path = REPO) -> dict:
    """params.yaml with every lab's section from labs/<lab>/params.yaml: the shape labflow validates."""
    from labflow.frame.config import read_raw_params

    return read_raw_params(root / "params.yaml")


def all_stages(root: Path = REPO) -> dict[str, dict]:
    """Every stage definition by its DVC address (``preflight``, ``labs/lab01/dvc.yaml:train``)."""
    stages = {}
    for file in pipeline_files(root):
        prefix = "" if file.parent == root else f"{file.parent.relative_to(root).as_posix()}/dvc.yaml:"
        for name, spec in (yaml.safe_load(file.read_text()).get("stages") or {}).items():
            stages[prefix + name] = spec
    return stages


def all_plots(root: Path = REPO) -> list:
    """Every top-level plot, its paths made relative to the root (a lab's are relative to its folder)."""
    plots = []
    for file in pipeline_files(root):
        up = "../" * len(file.parent.relative_to(root).parts)
        for plot in yaml.safe_load(file.read_text()).get("plots") or []:
            if isinstance(plot, str):
                plots.append(plot.removeprefix(up))
            else:
                plots.append({pid: {**spec, "y": {k.removeprefix(up): v for k, v in (spec.get("y") or {}).items()}}
                              for pid, spec in plot.items()})
    return plots


@pytest.fixture
def raw_params() -> dict:
    return read_params()


@pytest.fixture
def one_thread():
    """One torch thread for the test, as the labs' stages run tiny networks (threads stall on a busy CPU)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def server():
    """A loopback HTTP server (tests/loopback.py) serving from a thread for one test."""
    import threading

    from loopback import Server

    srv = Server()
    thread = threading.Thread(target=srv.httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A private SQLite store under tmp_path; yields its root folder."""
    for key in list(os.environ):
        if key.startswith("MLFLOW_") or key in ("LABFLOW_STORE_ROOT", "DVC_EXP_NAME"):
            monkeypatch.delenv(key, raising=False)
    root = tmp_path / "store"
    root.mkdir()
    monkeypatch.setenv("LABFLOW_STORE_ROOT", str(root))
    import mlflow

    yield root
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    return [line for line in out.stdout.splitlines() if line]


def copy_repo(dest: Path, *, profile: str = "smoke", edit=None) -> Path:
    """A fresh git+DVC repository with the tracked files of this one and the given profile."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in tracked_files():
        src = REPO / rel
        if not src.exists():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    # Outputs a run will make are not part of the copy: start from nothing.
    for stale in ("dvc.lock", "results"):
        path = dest / stale
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    params = read_params(dest)
    params["profile"] = profile
    if edit:
        edit(params)
    write_params(dest, params)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dest, check=True, env={**os.environ, **env})
    return dest
