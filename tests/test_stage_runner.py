"""The warm stage runner: stages forked from it behave as if run as their own process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labflow import stage_runner

from conftest import copy_repo

REPO = Path(__file__).resolve().parents[1]


def _env(runtime: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LABFLOW_", "DVC_"))}
    env.update(XDG_RUNTIME_DIR=str(runtime), LABFLOW_RUNNER_IDLE_S="120", LABFLOW_STAGE_RUNNER="1")
    env.update(extra)
    return env


def _stage(repo: Path, env: dict, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)


def _socket(env: dict) -> Path:
    code = "from labflow import stage_runner as r; print(r.socket_path())"
    return Path(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip())


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    """A private runner (own runtime folder), warmed up once for the module."""
    runtime = tmp_path_factory.mktemp("runtime")
    runtime.chmod(0o700)
    repo = copy_repo(tmp_path_factory.mktemp("runner") / "repo", profile="smoke")
    env = _env(runtime)
    subprocess.run([sys.executable, "-m", "labflow.cli", "runner", "start"], env=env, check=True, capture_output=True)
    sock = _socket(env)
    deadline = time.monotonic() + 180
    while not sock.exists():
        assert time.monotonic() < deadline, (runtime / f"labflow-runner-{os.getuid()}" / "runner.log").read_text()
        time.sleep(0.2)
    yield repo, runtime
    subprocess.run([sys.executable, "-m", "labflow.cli", "runner", "stop"], env=env, capture_output=True, timeout=60)
    assert not sock.exists()


def _pids(timings: Path) -> list[int]:
    return [json.loads(line)["pid"] for line in timings.read_text().splitlines()]


@pytest.mark.slow
def test_a_stage_runs_in_a_forked_child_with_the_callers_folder_env_and_streams(runner, tmp_path):
    repo, runtime = runner
    timings = tmp_path / "timings.jsonl"
    proc = _stage(repo, _env(runtime, LABFLOW_TIMINGS=str(timings)), "stages/preflight.py")
    assert proc.returncode == 0, proc.stderr
    assert "preflight: params.yaml valid (profile smoke)" in proc.stdout  # the caller's stdout, the repo's params
    assert json.loads((repo / "results" / "preflight.json").read_text()) == {"status": "ok"}
    # The child is the runner's, not the caller's: its parent is the runner process.
    (child_pid,) = _pids(timings)
    assert child_pid not in (os.getpid(),)
    # The same stage with the runner off runs in the calling process.
    caller = subprocess.Popen([sys.executable, "stages/preflight.py"], cwd=repo, text=True, stdout=subprocess.PIPE,
                              env=_env(runtime, LABFLOW_TIMINGS=str(timings), LABFLOW_STAGE_RUNNER="0"))
    assert "preflight:" in caller.communicate(timeout=120)[0] and caller.returncode == 0
    assert _pids(timings)[-1] == caller.pid
    # And with the runner on, another process did the work.
    caller = subprocess.Popen([sys.executable, "stages/preflight.py"], cwd=repo, text=True, stdout=subprocess.PIPE,
                              env=_env(runtime, LABFLOW_TIMINGS=str(timings)))
    assert "preflight:" in caller.communicate(timeout=120)[0] and caller.returncode == 0
    assert _pids(timings)[-1] != caller.pid


@pytest.mark.slow
def test_errors_and_exit_status_reach_the_caller(runner, tmp_path):
    repo, runtime = runner
    proc = _stage(repo, _env(runtime), "stages/download.py", "no_such_data")
    assert proc.returncode == 1
    assert "data.no_such_data: no such data set in params.yaml" in proc.stderr
    usage = _stage(repo, _env(runtime), "stages/train.py", "lab01")
    assert usage.returncode == 2 and "usage: python stages/train.py LAB VARIANT" in usage.stderr
    # The child sees the caller's environment, not the runner's: here an unreachable server.
    env = _env(runtime, MLFLOW_TRACKING_URI="http://127.0.0.1:9")
    down = _stage(repo, env, "stages/preflight.py")
    assert down.returncode == 1 and "unreachable" in down.stderr


@pytest.mark.slow
def test_killing_the_caller_kills_the_stage(runner, tmp_path):
    """SIGKILL of the calling process (e.g. `dvc repro`'s process group) must not leave the stage running."""
    repo, runtime = runner
    timings = tmp_path / "timings.jsonl"
    env = _env(runtime, LABFLOW_TIMINGS=str(timings))
    assert _stage(repo, env, "stages/download.py", "titanic").returncode == 0
    assert _stage(repo, env, "stages/preprocess.py", "lab05").returncode == 0
    child = _pids(timings)[-1]
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)  # a finished stage's process is gone
    # Now a train stage, killed as soon as its child reports in.
    proc = subprocess.Popen([sys.executable, "stages/train.py", "lab05", "none"], cwd=repo, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    pid = None
    while pid is None and time.monotonic() < deadline:
        pid = next((p for p in _children_of_runner(runtime) if p != child), None)
        time.sleep(0.02)
    assert pid is not None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _children_of_runner(runtime: Path) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(")")[-1].split()
            cmd = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        parent = Path(f"/proc/{fields[1]}/cmdline")
        try:
            parent_cmd = parent.read_bytes()
        except OSError:
            continue
        if b"labflow.stage_runner" in parent_cmd and str(runtime).encode() in parent_cmd and b"labflow.stage_runner" in cmd:
            out.append(int(stat.parent.name))
    return out


def test_no_runner_means_the_stage_runs_in_process(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("LABFLOW_STAGE_RUNNER", "0")
    assert not stage_runner.enabled()
    monkeypatch.setenv("LABFLOW_STAGE_RUNNER", "1")
    assert stage_runner.enabled()
    assert stage_runner._connect(stage_runner.socket_path()) is None


def test_a_folder_others_can_enter_disables_the_runner(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    folder = stage_runner.runtime_dir()
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    assert stage_runner._private_dir() is None


def test_the_fingerprint_follows_import_time_settings(monkeypatch):
    before = stage_runner.fingerprint()
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    assert stage_runner.fingerprint() != before
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("DVC_EXP_NAME", "any")  # read at run time: same runner
    assert stage_runner.fingerprint() == before


def test_mlflow_still_caches_its_package_map_where_the_runner_fills_it():
    """The runner's warm-up relies on mlflow 3.17 keeping the module->package map in a module
    global (see stage_runner.warm_mlflow_package_map); if that changes, this fails."""
    from mlflow.utils import requirements_utils

    assert stage_runner.warm_mlflow_package_map()
    assert requirements_utils._MODULES_TO_PACKAGES and requirements_utils._PACKAGES_TO_MODULES
    started = time.perf_counter()
    assert requirements_utils._check_requirement_satisfied("torch") is None
    assert time.perf_counter() - started < 0.5  # no second scan of the installed packages


def test_dvc_parses_yaml_with_the_c_parser():
    """pyproject asks for ruamel.yaml's C parser: DVC reads params.yaml once per stage with it."""
    from ruamel.yaml import YAML
    from ruamel.yaml.main import CParser

    assert CParser is not None
    assert YAML(typ="safe").Parser is CParser
