"""Team mode keeps others out: the private PostgreSQL needs a password and has no TCP, secrets stay
off command lines and are never readable by others, credentials over plain HTTP are flagged, and
`labflow ui` stays on loopback. (Issue 16, items 1-3.)"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest

from labflow.team.postgres import PrivatePostgres, find_binary, free_port, private_secret, write_private_file
from labflow.team.server import plan
from labflow.tracking.store import check_credentials, hide_password

needs_postgres = pytest.mark.skipif(
    find_binary("initdb") is None or find_binary("pg_ctl") is None,
    reason="PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql",
)

SECRET = "s3cret-Pa55word"
AUTH_ENV = {"LABFLOW_SERVER_ADMIN_PASSWORD": "a-long-enough-secret"}


# --------------------------------------------------------------------------- item 2: secrets


def test_the_server_plan_keeps_the_store_password_off_the_command_line(tmp_path, monkeypatch):
    uri = f"postgresql+psycopg://mlflow:{SECRET}@dbhost:5432/mlflow"
    for auth in (False, True):
        monkeypatch.setenv("LABFLOW_SERVER_ADMIN_PASSWORD", AUTH_ENV["LABFLOW_SERVER_ADMIN_PASSWORD"])
        p = plan(data=tmp_path, db_uri=uri, host="127.0.0.1", port=5000, auth=auth)
        assert not [arg for arg in p.command if SECRET in arg], p.command
        assert "--backend-store-uri" not in p.command
        assert p.env["MLFLOW_BACKEND_STORE_URI"] == uri  # `mlflow server` reads it from there


def test_mlflow_server_reads_its_store_uri_from_the_environment():
    """The option labflow relies on: `--backend-store-uri` falls back to MLFLOW_BACKEND_STORE_URI."""
    from mlflow.cli import server

    option = next(p for p in server.params if p.name == "backend_store_uri")
    assert option.envvar == "MLFLOW_BACKEND_STORE_URI"


def _no_chmod(path, *args, **kwargs):
    raise AssertionError(f"os.chmod({path}): a secret must be created private, not made private afterwards")


def test_secret_files_are_created_0600_never_readable_by_others_even_for_a_moment(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "chmod", _no_chmod)  # the old write-then-chmod fails here
    old_umask = os.umask(0)  # the creation mode alone must keep others out
    try:
        monkeypatch.setenv("LABFLOW_SERVER_ADMIN_PASSWORD", AUTH_ENV["LABFLOW_SERVER_ADMIN_PASSWORD"])
        p = plan(data=tmp_path, db_uri="postgresql://x@h/db", host="0.0.0.0", port=5000, auth=True)
        write_private_file(tmp_path / "written", "secret\n")
        private_secret(tmp_path / "made")
    finally:
        os.umask(old_umask)
    secrets = [Path(p.env["MLFLOW_AUTH_CONFIG_PATH"]), tmp_path / "secret_key", tmp_path / "basic_auth.db",
               tmp_path / "written", tmp_path / "made"]
    for path in secrets:
        assert path.stat().st_mode & 0o777 == 0o600, (path, oct(path.stat().st_mode))
    assert "admin_password = a-long-enough-secret" in secrets[0].read_text()
    assert private_secret(tmp_path / "made") == (tmp_path / "made").read_text().strip()  # kept, not remade
    assert not list(tmp_path.glob(".*.tmp"))


def test_with_auth_the_served_artifacts_are_not_world_readable(tmp_path, monkeypatch):
    monkeypatch.setenv("LABFLOW_SERVER_ADMIN_PASSWORD", AUTH_ENV["LABFLOW_SERVER_ADMIN_PASSWORD"])
    (tmp_path / "artifacts").mkdir(mode=0o755)  # made by an earlier run without --auth
    os.chmod(tmp_path / "artifacts", 0o755)
    p = plan(data=tmp_path, db_uri="postgresql://x@h/db", host="0.0.0.0", port=5000, auth=True)
    assert p.artifacts.stat().st_mode & 0o777 == 0o700
    fresh = plan(data=tmp_path / "new", db_uri="postgresql://x@h/db", host="127.0.0.1", port=5000, auth=True)
    assert fresh.artifacts.stat().st_mode & 0o777 == 0o700


def test_behind_a_tls_proxy_the_given_allowed_hosts_reach_mlflow_on_loopback(tmp_path, monkeypatch):
    monkeypatch.setenv("LABFLOW_SERVER_ADMIN_PASSWORD", AUTH_ENV["LABFLOW_SERVER_ADMIN_PASSWORD"])
    p = plan(data=tmp_path, db_uri="postgresql://x@h/db", host="127.0.0.1", port=5000, auth=True,
             allowed_hosts="tracking.example.org")
    assert p.command[p.command.index("--allowed-hosts") + 1] == "tracking.example.org"


def test_hide_password_keeps_user_host_and_query():
    assert hide_password(f"postgresql://mlflow:{SECRET}@db:5432/mlflow?sslmode=require") == \
        "postgresql://mlflow:***@db:5432/mlflow?sslmode=require"
    assert hide_password("postgresql://mlflow@db/mlflow") == "postgresql://mlflow@db/mlflow"
    assert hide_password("sqlite:///x/mlflow.db?timeout=20") == "sqlite:///x/mlflow.db?timeout=20"


class _Exec(Exception):
    pass


def _capture_exec(calls):
    def fake_execvpe(file, args, env):
        calls.append((list(args), dict(env)))
        raise _Exec

    return fake_execvpe


def test_labflow_ui_neither_prints_nor_puts_on_argv_the_store_password(monkeypatch, capsys):
    from labflow import cli
    uri = f"postgresql+psycopg://mlflow:{SECRET}@dbhost/mlflow"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(cli, "lab_addresses", lambda ui: [])
    calls = []
    monkeypatch.setattr(os, "execvpe", _capture_exec(calls))
    with pytest.raises(_Exec):
        cli.main(["ui"])
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err and "mlflow:***@dbhost" in out.out
    argv, env = calls[0]
    assert not [arg for arg in argv if SECRET in arg], argv
    assert env["MLFLOW_BACKEND_STORE_URI"] == uri


# --------------------------------------------------------------------------- item 3: plain HTTP


def test_labflow_ui_refuses_to_listen_beyond_loopback_in_one_line(monkeypatch, capsys):
    from labflow import cli
    calls = []
    monkeypatch.setattr(os, "execvpe", _capture_exec(calls))
    monkeypatch.setattr(cli, "lab_addresses", lambda ui: pytest.fail("refuse before reading the store"))
    assert cli.main(["ui", "--host", "0.0.0.0"]) == 1
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("labflow: error: refusing to serve the MLflow UI on 0.0.0.0")
    assert "127.0.0.1" in lines[0] and not out.out and not calls


class _Answer:
    status = 200

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("uri, user, warned", [
    ("http://10.1.2.3:5000", "alice", True),
    ("http://tracking.example.org", "alice", True),
    ("http://127.0.0.1:5000", "alice", False),
    ("http://localhost:5000", "alice", False),
    ("https://tracking.example.org", "alice", False),
    ("http://10.1.2.3:5000", None, False),
])
def test_a_client_warns_in_one_line_when_credentials_go_in_clear_beyond_loopback(uri, user, warned, monkeypatch,
                                                                                  capsys):
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: _Answer())
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD", raising=False)
    if user:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)
    check_credentials(uri)
    lines = capsys.readouterr().err.strip().splitlines()
    if warned:
        assert len(lines) == 1 and lines[0].startswith("labflow: warning:") and uri in lines[0], lines
        assert "https://" in lines[0] and SECRET not in lines[0]
    else:
        assert lines == []


# --------------------------------------------------------------------------- item 1: the private cluster


@pytest.fixture
def cluster_folder():
    folder = Path(tempfile.mkdtemp(prefix="labflow-pg-"))  # not under pytest's 0700 root-only tmp
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _refused(**kwargs) -> str:
    import psycopg

    with pytest.raises(psycopg.OperationalError) as info:
        psycopg.connect(dbname="mlflow", connect_timeout=10, **kwargs).close()
    return str(info.value)


def _as_nobody_psql(pg: PrivatePostgres) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "nobody", "--", find_binary("psql"), "-w", "-h", str(pg.folder),
                           "-p", str(pg.port), "-U", pg.app_user, "-d", pg.database, "-c", "SELECT 1"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def _check_locked(pg: PrivatePostgres) -> None:
    """Password or nothing, socket only, the folder and password files private, MLflow's role no superuser."""
    assert "no password supplied" in _refused(host=str(pg.folder), port=pg.port, user=pg.app_user)
    assert "no password supplied" in _refused(host=str(pg.folder), port=pg.port, user=pg.user)
    assert "password authentication failed" in _refused(host=str(pg.folder), port=pg.port, user=pg.user,
                                                        password="guess")
    assert "Connection refused" in _refused(host="127.0.0.1", port=pg.port, user=pg.user, password="x")
    assert pg.folder.stat().st_mode & 0o777 == 0o700
    for path in (pg.superuser_password_file, pg.app_password_file):
        assert path.stat().st_mode & 0o777 == 0o600
    if os.geteuid() == 0 and shutil.which("runuser") and find_binary("psql"):
        pwd.getpwnam("nobody")
        proc = _as_nobody_psql(pg)  # another OS user cannot even reach the socket
        assert proc.returncode != 0 and "Permission denied" in proc.stderr, proc.stderr
    import psycopg

    with psycopg.connect(host=str(pg.folder), port=pg.port, user=pg.app_user, dbname=pg.database,
                         password=pg.app_password_file.read_text().strip()) as con:
        assert con.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)


@needs_postgres
def test_the_private_cluster_needs_a_password_has_no_tcp_and_mlflow_works_as_its_own_role(cluster_folder):
    import mlflow

    pg = PrivatePostgres(cluster_folder / "cluster", free_port())
    pg.init()
    try:
        pg.init()  # a second start finds it set up
        assert not pg.is_legacy()
        _check_locked(pg)
        assert "@/mlflow?host=" in pg.uri and pg.uri.startswith("postgresql+psycopg://mlflow:")
        client = mlflow.MlflowClient(tracking_uri=pg.uri)
        run = client.create_run(client.create_experiment("locked"))
        client.log_metric(run.info.run_id, "m", 1.0)
        assert client.get_run(run.info.run_id).data.metrics == {"m": 1.0}
    finally:
        pg.stop()


def _make_legacy_cluster(pg: PrivatePostgres) -> None:
    """What labflow made before: trust for everyone, listening on a loopback port."""
    import psycopg

    pg.folder.mkdir(mode=0o700)
    pg._give_to_owner(pg.folder)
    pg._run("initdb", "-D", str(pg.data), "-U", pg.user, "--auth=trust", "-E", "UTF8", "--locale=C",
            "--no-instructions")
    pg._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(pg.data), "-l", str(pg.folder / "postgres.log"), "-o",
            f"-c listen_addresses=127.0.0.1 -p {pg.port} -c unix_socket_directories={pg.folder}")
    with psycopg.connect(host="127.0.0.1", port=pg.port, user=pg.user, dbname="postgres", autocommit=True) as con:
        con.execute("CREATE DATABASE mlflow")


@needs_postgres
def test_a_cluster_made_by_the_old_trust_code_is_locked_down_and_keeps_its_runs(cluster_folder):
    import mlflow

    pg = PrivatePostgres(cluster_folder / "cluster", free_port())
    _make_legacy_cluster(pg)
    try:
        old = mlflow.MlflowClient(tracking_uri=f"postgresql+psycopg://{pg.user}@127.0.0.1:{pg.port}/mlflow")
        old_run = old.create_run(old.create_experiment("before")).info.run_id  # tables owned by the superuser
        assert pg.is_legacy()
        pg.init()
        assert not pg.is_legacy()
        _check_locked(pg)
        client = mlflow.MlflowClient(tracking_uri=pg.uri)
        assert client.get_run(old_run).info.experiment_id == client.get_experiment_by_name("before").experiment_id
        run = client.create_run(client.create_experiment("after"))  # the app role owns the tables now
        client.log_metric(run.info.run_id, "m", 2.0)
    finally:
        pg.stop()
