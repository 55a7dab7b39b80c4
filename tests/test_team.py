"""Team mode for real: a private PostgreSQL 15, `labflow server` on it, the pipeline logging to it,
parallel queued experiments on the server and on SQLite, basic auth, a server killed mid-run.

Skips with the reason where the PostgreSQL binaries are missing (`apt-get install postgresql`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from labflow.team.postgres import PrivatePostgres, find_binary, free_port
from labflow.team.server import ServerError, plan

from conftest import copy_repo

needs_postgres = pytest.mark.skipif(
    find_binary("initdb") is None or find_binary("pg_ctl") is None,
    reason="PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql",
)


# --------------------------------------------------------------------------- fast: the server's rules


def test_the_server_refuses_to_listen_beyond_loopback_without_auth(tmp_path, monkeypatch):
    with pytest.raises(ServerError, match="refusing to listen on 0.0.0.0 without authentication"):
        plan(data=tmp_path, db_uri="postgresql://x@h/db", host="0.0.0.0", port=5000, auth=False)
    monkeypatch.delenv("LABFLOW_SERVER_ADMIN_PASSWORD", raising=False)
    with pytest.raises(ServerError, match="LABFLOW_SERVER_ADMIN_PASSWORD"):
        plan(data=tmp_path, db_uri="postgresql://x@h/db", host="0.0.0.0", port=5000, auth=True)
    monkeypatch.setenv("LABFLOW_SERVER_ADMIN_PASSWORD", "short")
    with pytest.raises(ServerError, match="at least 12"):
        plan(data=tmp_path, db_uri="postgresql://x@h/db", host="0.0.0.0", port=5000, auth=True)
    monkeypatch.setenv("LABFLOW_SERVER_ADMIN_PASSWORD", "a-long-enough-secret")
    p = plan(data=tmp_path, db_uri="postgresql://x@h/db", host="0.0.0.0", port=5000, auth=True)
    assert p.command[p.command.index("--app-name") + 1] == "basic-auth"
    assert "--allowed-hosts" in p.command and "--serve-artifacts" in p.command
    config = Path(p.env["MLFLOW_AUTH_CONFIG_PATH"])
    assert "admin_password = a-long-enough-secret" in config.read_text() and config.stat().st_mode & 0o077 == 0
    local = plan(data=tmp_path, db_uri="postgresql://x@h/db", host="127.0.0.1", port=5000, auth=False)
    assert "--app-name" not in local.command and local.url == "http://localhost:5000"
    assert local.command[local.command.index("--artifacts-destination") + 1] == str(tmp_path.resolve() / "artifacts")


# --------------------------------------------------------------------------- helpers


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LABFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "t"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "t@t"
    return env | extra


def sh(repo: Path, *cmd: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=env or _env(), timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


class Server:
    """`labflow server` as a user starts it, in its own process group."""

    def __init__(self, db_uri: str, data: Path, port: int, *args: str, env: dict | None = None) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.args = ["labflow", "server", "--db", db_uri, "--data", str(data), "--port", str(port), *args]
        self.env = env or _env()
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 180) -> Server:
        log = open(Path(self.args[self.args.index("--data") + 1]) / "server.log", "a")
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "labflow server exited: see server.log"
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2):
                    return self
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"MLflow server not up after {timeout_s} s")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def postgres():
    if find_binary("initdb") is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    folder = Path(tempfile.mkdtemp(prefix="labflow-pg-"))  # not under pytest's 0700 root-only tmp
    os.chmod(folder, 0o755)
    pg = PrivatePostgres(folder / "cluster", free_port())
    pg.init()
    try:
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def server(postgres, tmp_path_factory):
    s = Server(postgres.uri, tmp_path_factory.mktemp("server"), free_port()).start()
    try:
        yield s
    finally:
        s.kill()


# --------------------------------------------------------------------------- slow: for real


pytestmark_slow = pytest.mark.slow


@needs_postgres
@pytestmark_slow
def test_the_pipeline_logs_to_the_team_server_and_its_artifacts_land_on_the_server(server, tmp_path):
    import mlflow

    repo = copy_repo(tmp_path / "repo", profile="smoke")
    sh(repo, "dvc", "repro", "labs/lab01/dvc.yaml:evaluate", env=_env(MLFLOW_TRACKING_URI=server.url))
    client = mlflow.MlflowClient(tracking_uri=server.url)
    exp = client.get_experiment_by_name("labflow-lab01")
    assert exp.artifact_location.startswith("mlflow-artifacts:")  # the server stores them, not the client
    runs = client.search_runs([exp.experiment_id])
    assert {r.info.status for r in runs} == {"FINISHED"} and len(runs) == 2
    child = next(r for r in runs if r.data.tags.get("labflow.role") != "comparison")
    assert "figures" in {a.path for a in client.list_artifacts(child.info.run_id)}
    data = Path(server.args[server.args.index("--data") + 1])
    assert list((data / "artifacts").rglob("learning_curves.png"))  # on the server's disk
    assert not (repo / "mlruns").exists() and not (repo / "mlflow.db").exists()


def _start_queue(repo: Path, env: dict, jobs: int) -> None:
    """`dvc queue start`, its output to a file: DVC's worker daemon inherits the caller's stdout,
    so with a pipe `queue start` would not return before the last worker exits."""
    with open(repo.parent / f"queue-start-j{jobs}.log", "ab") as log:
        subprocess.run(["dvc", "queue", "start", "-j", str(jobs)], cwd=repo, env=env, stdin=subprocess.DEVNULL,
                       stdout=log, stderr=subprocess.STDOUT, timeout=120, check=True)


def _queue_diagnosis(repo: Path, env: dict, names: list[str], status: str) -> str:
    """What a stuck queue was doing: its status, each experiment's log, the workers' logs, the processes."""
    parts = [f"dvc queue status:\n{status}"]
    for n in names:
        parts.append(f"--- dvc queue logs {n}:\n" + sh(repo, "dvc", "queue", "logs", n, check=False, env=env).stdout[-2000:])
    for out in sorted((repo / ".dvc" / "tmp" / "exps").rglob("*.out")):
        parts.append(f"--- {out.relative_to(repo)}:\n" + out.read_text(errors="replace")[-2000:])
    ps = subprocess.run(["ps", "-eo", "pid,ppid,etimes,args"], capture_output=True, text=True).stdout
    parts.append("--- processes:\n" + "\n".join(l for l in ps.splitlines() if "dvc" in l or "labflow" in l))
    return "\n".join(parts)


def _queue_four(repo: Path, env: dict, jobs: int, deadline_s: float = 600) -> tuple[float, list[str]]:
    names = []
    for i, wd in enumerate((0.02, 0.03, 0.04, 0.05)):
        name = f"j{jobs}-wd{i}"
        # the lab as target: the baseline ran only lab 05, and the other labs are not the point
        sh(repo, "dvc", "exp", "run", "--queue", "-n", name, "-S", f"labs/lab05/params.yaml:lab05.variants.l2.weight_decay={wd}",
           "labs/lab05/dvc.yaml:evaluate", env=env)
        names.append(name)
    started = time.monotonic()
    _start_queue(repo, env, jobs)
    status = ""
    while time.monotonic() - started < deadline_s:
        status = sh(repo, "dvc", "queue", "status", env=env).stdout
        if all(re.search(rf"{n}\s+\S+ \S+\s+(Success|Failed)", status) for n in names):
            break
        time.sleep(2)
    else:
        diagnosis = _queue_diagnosis(repo, env, names, status)
        sh(repo, "dvc", "queue", "stop", "--kill", check=False, env=env)
        raise AssertionError(f"4 queued experiments not done {deadline_s:.0f} s after `dvc queue start`:\n{diagnosis}")
    elapsed = time.monotonic() - started
    for n in names:
        assert re.search(rf"{n}\s+\S+ \S+\s+Success", status), (n, status, sh(repo, "dvc", "queue", "logs", n,
                                                                                check=False, env=env).stdout[-3000:])
    return elapsed, names


def _check_queued_runs(client, names: list[str]) -> None:
    """Every queued experiment: its variant run nested under its lab's comparison, all FINISHED."""
    exps = [e for e in client.search_experiments() if e.name == "labflow-lab05"]
    assert len(exps) == 1  # two workers never create the experiment twice
    runs = client.search_runs([exps[0].experiment_id], max_results=1000)
    assert not [r for r in runs if r.info.status != "FINISHED"]  # none left RUNNING
    for name in names:
        mine = [r for r in runs if r.data.tags.get("dvc.exp_name") == name]
        roles = {(r.data.tags["labflow.stage"], r.data.tags.get("labflow.variant")): r for r in mine}
        assert set(roles) == {("train", "l2"), ("evaluate", None)}, (name, roles)
        child, parent = roles[("train", "l2")], roles[("evaluate", None)]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert client.get_metric_history(child.info.run_id, "train_loss")  # per-epoch metrics arrived
        assert child.data.params["weight_decay"] in {"0.02", "0.03", "0.04", "0.05"}


def _queue_baseline(tmp_path: Path, env: dict) -> Path:
    repo = copy_repo(tmp_path / "repo", profile="smoke")
    sh(repo, "dvc", "repro", "labs/lab05/dvc.yaml:evaluate", env=env)
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "baseline")
    return repo


@needs_postgres
@pytestmark_slow
def test_four_queued_experiments_two_at_a_time_on_the_server(server, tmp_path):
    import mlflow

    env = _env(MLFLOW_TRACKING_URI=server.url)
    repo = _queue_baseline(tmp_path, env)
    elapsed, names = _queue_four(repo, env, jobs=2)
    print(f"server: 4 queued experiments at -j 2 in {elapsed:.0f} s")
    _check_queued_runs(mlflow.MlflowClient(tracking_uri=server.url), names)


@pytestmark_slow
def test_four_queued_experiments_two_at_a_time_on_sqlite(tmp_path):
    import mlflow

    env = _env()
    repo = _queue_baseline(tmp_path, env)
    elapsed, names = _queue_four(repo, env, jobs=2)
    print(f"sqlite: 4 queued experiments at -j 2 in {elapsed:.0f} s")
    logs = "".join(sh(repo, "dvc", "queue", "logs", n, env=env).stdout for n in names)
    assert "database is locked" not in logs
    _check_queued_runs(mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}"), names)
    import sqlite3

    assert sqlite3.connect(repo / "mlflow.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@needs_postgres
@pytestmark_slow
def test_basic_auth_server_refuses_a_missing_or_wrong_password_in_one_line(postgres, tmp_path):
    from labflow.tracking.store import TrackingError, check_tracking

    secret = "labflow-test-secret-1"
    s = Server(postgres.uri, tmp_path, free_port(), "--auth", env=_env(LABFLOW_SERVER_ADMIN_PASSWORD=secret)).start()
    try:
        os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
        os.environ.pop("MLFLOW_TRACKING_PASSWORD", None)
        with pytest.raises(TrackingError, match=r"refused no credentials \(401\)"):
            check_tracking(s.url)
        os.environ.update(MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD="wrong-password")
        with pytest.raises(TrackingError, match=r"refused user 'admin' with that password \(401\)"):
            check_tracking(s.url)
        os.environ["MLFLOW_TRACKING_PASSWORD"] = secret
        check_tracking(s.url)
        repo = copy_repo(tmp_path / "repo", profile="smoke")
        proc = sh(repo, "dvc", "repro", "labs/lab01/dvc.yaml:evaluate", check=False, env=_env(MLFLOW_TRACKING_URI=s.url))
        assert proc.returncode != 0
        errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("labflow: error:")]
        assert len(errors) == 1 and "401" in errors[0] and "MLFLOW_TRACKING_PASSWORD" in errors[0], errors
        assert not (repo / "models").exists()  # stopped before training
    finally:
        os.environ.pop("MLFLOW_TRACKING_USERNAME", None)
        os.environ.pop("MLFLOW_TRACKING_PASSWORD", None)
        s.kill()


def _long_lab07(p: dict) -> None:
    p["lab07"]["profiles"]["smoke"]["train"]["epochs"] = 300  # long enough to be killed mid-way


@needs_postgres
@pytestmark_slow
def test_a_server_killed_mid_run_fails_the_stage_in_one_line_and_the_next_repro_resumes(postgres, tmp_path):
    import mlflow

    data = tmp_path / "server"
    data.mkdir()
    s = Server(postgres.uri, data, free_port()).start()
    env = _env(MLFLOW_TRACKING_URI=s.url)
    repo = copy_repo(tmp_path / "repo", profile="smoke", edit=_long_lab07)
    sh(repo, "dvc", "repro", "labs/lab07/dvc.yaml:preprocess", env=env)
    variant = "no_early_stopping"
    ckpt = repo / "checkpoints" / "lab07" / variant / "seed42" / "last.pt"
    proc = subprocess.Popen(["dvc", "repro", f"labs/lab07/dvc.yaml:train@{variant}-42"], cwd=repo, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert ckpt.exists(), "no checkpoint before the deadline"
        time.sleep(1.0)
        s.kill()  # mid-training
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0, out[-3000:]
    errors = [line for line in out.splitlines() if line.startswith("labflow: error:")]
    assert len(errors) == 1 and "lost the MLflow tracking server" in errors[0], out[-3000:]
    assert "Traceback" not in out
    assert ckpt.exists()  # nothing already saved is lost

    s.start()
    try:
        again = sh(repo, "dvc", "repro", f"labs/lab07/dvc.yaml:train@{variant}-42", env=env)
        assert "resumed from" in again.stdout + again.stderr, (again.stdout + again.stderr)[-3000:]
        run_id = json.loads((repo / "results" / "lab07" / "variants" / variant / "seed42" / "run.json").read_text())["run_id"]
        assert mlflow.MlflowClient(tracking_uri=s.url).get_run(run_id).info.status == "FINISHED"
    finally:
        s.kill()
