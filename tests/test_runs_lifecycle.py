"""An MLflow run's end: a signal ends it KILLED, preflight closes runs a dead process left
RUNNING, and a device params.yaml asks for that is not there stops preflight in one line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from labflow.frame import stages
from labflow.tracking import runs
from labflow.tracking.tags import HOST_TAG, PID_START_TAG, PID_TAG, owner_alive, owner_tags

from conftest import REPO, read_params

# A stage that opens a run and waits in it, run through stages.main as stages/*.py do.
HOLD_RUN = textwrap.dedent("""
    import sys, time
    from labflow.frame.stages import main
    from labflow.tracking import runs

    def hold_run():
        runs.connect()
        with runs.open_run(prefix="t", lab="lab99", run_name="held", tags={}) as run:
            print(run.run_id, flush=True)
            time.sleep(120)

    sys.exit(main(hold_run, [], "hold"))
""")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_ends_the_open_run_killed(mlflow_store, signum):
    proc = subprocess.Popen([sys.executable, "-c", HOLD_RUN], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ))
    try:
        run_id = proc.stdout.readline().strip()
        assert run_id, proc.stderr.read()[-2000:]
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, err[-2000:]
    assert "Traceback" not in err, err[-2000:]  # (MLflow's own INFO lines about a new store come before)
    assert err.strip().splitlines()[-1] == f"labflow: hold_run stopped by {signum.name}; its MLflow run is marked KILLED"
    run = mlflow.MlflowClient(tracking_uri=runs.tracking_uri()).get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags[HOST_TAG] == socket.gethostname() and run.data.tags[PID_TAG] == str(proc.pid)


def test_open_run_restores_the_signal_handlers_and_works_off_the_main_thread(mlflow_store):
    runs.connect()
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    with runs.open_run(prefix="t", lab="lab99", run_name="main", tags={}):
        assert signal.getsignal(signal.SIGTERM) is not before[signal.SIGTERM]
    assert {s: signal.getsignal(s) for s in before} == before

    statuses = []

    def in_thread():  # signal.signal would raise ValueError here
        with runs.open_run(prefix="t", lab="lab99", run_name="thread", tags={}) as run:
            pass
        statuses.append(runs.run_info(run.run_id)["status"])

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(60)
    assert statuses == ["FINISHED"]


def test_resumed_run_is_tagged_with_its_new_owner(mlflow_store):
    runs.connect()
    with runs.open_run(prefix="t", lab="lab99", run_name="first", tags={}) as run:
        pass
    client = mlflow.MlflowClient()
    client.set_tag(run.run_id, PID_TAG, "1")
    with runs.open_run(prefix="t", lab="lab99", run_name="first", tags={}, resume_run_id=run.run_id) as again:
        assert again.run_id == run.run_id
        assert client.get_run(run.run_id).data.tags[PID_TAG] == str(os.getpid())


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_zombie_reused_pid_or_reboot_is_not_the_owner_another_pid_namespace_is_unknown():
    me = owner_tags()
    if PID_START_TAG not in me:
        pytest.skip("no /proc here: pid reuse cannot be told")
    assert owner_alive(me)
    boot, namespace, ticks = me[PID_START_TAG].split(":")
    assert not owner_alive({**me, PID_START_TAG: f"{boot}:{namespace}:1"})  # our pid, an older process
    assert not owner_alive({**me, PID_START_TAG: f"another-boot:{namespace}:{ticks}"})  # before a reboot
    # A container sharing this host's name: its pids mean other processes, so its runs are left alone.
    assert owner_alive({**me, PID_TAG: str(_dead_pid()), PID_START_TAG: f"{boot}:1:{ticks}"})
    zombie = subprocess.Popen(["true"])  # exits, not reaped
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not owner_alive({**me, PID_TAG: str(zombie.pid)})
    finally:
        zombie.wait()


def _repo(tmp_path: Path, monkeypatch, **edits) -> Path:
    """A folder with this repository's params.yaml (edited), as LABFLOW_ROOT."""
    params = read_params() | edits
    root = tmp_path / "repo"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.setenv("LABFLOW_ROOT", str(root))
    return root


def test_preflight_closes_the_runs_a_dead_process_of_this_host_left_running(mlflow_store, tmp_path, monkeypatch,
                                                                          capsys):
    _repo(tmp_path, monkeypatch)
    runs.connect()
    client = mlflow.MlflowClient()
    ours = runs.ensure_experiment("labflow-lab99")  # params.yaml's experiment_prefix: labflow
    foreign = runs.ensure_experiment("someone-lab99")
    me, dead = owner_tags(), str(_dead_pid())

    def running(exp_id: str, **tags) -> str:
        return client.create_run(exp_id, tags=tags).info.run_id

    orphan = running(ours, **{**me, PID_TAG: dead})
    live = running(ours, **me)
    remote = running(ours, **{**me, HOST_TAG: "another-host", PID_TAG: dead})
    untagged = running(ours)  # opened before runs were tagged with their owner: unknown
    other_prefix = running(foreign, **{**me, PID_TAG: dead})
    finished = running(ours, **{**me, PID_TAG: dead})
    client.set_terminated(finished, status="FINISHED")

    stages.preflight()

    status = {run_id: client.get_run(run_id).info.status
              for run_id in (orphan, live, remote, untagged, other_prefix, finished)}
    assert status == {orphan: "KILLED", live: "RUNNING", remote: "RUNNING", untagged: "RUNNING",
                      other_prefix: "RUNNING", finished: "FINISHED"}
    out = capsys.readouterr().out
    assert ("[labflow] preflight: 1 MLflow run(s) left RUNNING by a dead process of this host marked KILLED; "
            "1 RUNNING run(s) of other hosts left alone") in out


def test_preflight_creates_no_store(mlflow_store, tmp_path, monkeypatch, capsys):
    _repo(tmp_path, monkeypatch)
    stages.preflight()
    assert not (mlflow_store / "mlflow.db").exists()
    assert "preflight: params.yaml valid" in capsys.readouterr().out


@pytest.fixture
def no_gpu(monkeypatch):
    """This machine's view, on any machine: torch sees no CUDA GPU."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_preflight_refuses_cuda_without_a_gpu_in_one_line(no_gpu, mlflow_store, tmp_path, monkeypatch, capsys):
    root = _repo(tmp_path, monkeypatch, device="cuda")
    assert stages.main(stages.preflight, [], "python stages/preflight.py") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("labflow: error: params.yaml device: cuda, but no CUDA GPU is visible (torch ")
    assert err.rstrip().endswith("): set device: auto or cpu")
    assert not (root / "results" / "preflight.json").exists()  # stopped before anything ran


def test_a_train_stage_reaching_cuda_without_a_gpu_fails_in_one_line(no_gpu, capsys):
    """``dvc repro labs/lab01/dvc.yaml:train@...`` alone skips preflight: the device choice still fails cleanly."""
    from labflow.train import setup_torch

    def train_on_cuda():
        setup_torch(seed=0, device="cuda")

    assert stages.main(train_on_cuda, [], "train") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("labflow: error: params.yaml device: cuda, but no CUDA GPU"), err
