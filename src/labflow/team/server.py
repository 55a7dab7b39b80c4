"""``labflow server``: MLflow's tracking server for a team, on PostgreSQL, serving the artifacts.

The pipeline's clients set ``MLFLOW_TRACKING_URI=http://host:port`` and need no access to the
artifact folder (``--serve-artifacts``: uploads go through the server). Bound to loopback unless
told otherwise; listening beyond loopback requires MLflow's basic-auth app, else it refuses:
an open tracking server lets anyone on the network read and delete every run.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from labflow.team.postgres import PostgresError, PrivatePostgres, free_port, private_secret, write_private_file
from labflow.tracking.store import hide_password, is_loopback

ADMIN_PASSWORD_ENV = "LABFLOW_SERVER_ADMIN_PASSWORD"


class ServerError(RuntimeError):
    """The server cannot start as asked; the message says what to change."""


@dataclass
class ServerPlan:
    command: list[str]
    env: dict[str, str]
    url: str
    db_uri: str
    artifacts: Path


def local_postgres(data: Path) -> PrivatePostgres:
    """The private cluster under ``data/postgres`` on the port it got the first time."""
    folder = data / "postgres"
    port_file = data / "postgres.port"
    port = int(port_file.read_text()) if port_file.exists() else free_port()
    data.mkdir(parents=True, exist_ok=True)
    port_file.write_text(str(port))
    return PrivatePostgres(folder, port)


def write_auth_config(data: Path, admin_password: str) -> Path:
    """MLflow's basic-auth settings: its own user database beside the artifacts, our admin password."""
    if len(admin_password) < 12:
        raise ServerError(f"{ADMIN_PASSWORD_ENV} must be at least 12 characters")
    users = data / "basic_auth.db"
    _create_private(users)  # it holds the users' password hashes; SQLite gives its -wal/-shm the same mode
    config = data / "basic_auth.ini"
    write_private_file(config, (
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{users.resolve()}\n"
        "admin_username = admin\n"
        f"admin_password = {admin_password}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    ))
    return config


def _create_private(path: Path) -> None:
    """An empty 0600 file (a new SQLite database), or an existing one made private."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def plan(*, data: Path, db_uri: str | None, host: str, port: int, auth: bool,
         allowed_hosts: str | None = None) -> ServerPlan:
    """Check the request and build the ``mlflow server`` command (nothing starts here)."""
    if not is_loopback(host) and not auth:
        raise ServerError(
            f"refusing to listen on {host} without authentication: anyone who can reach it could read and "
            f"delete every run. Add --auth (MLflow's basic-auth app; set {ADMIN_PASSWORD_ENV}) or bind to 127.0.0.1."
        )
    data = data.resolve()
    artifacts = data / "artifacts"
    # with --auth the runs' files are for those the server lets in, not for every local account
    artifacts.mkdir(mode=0o700 if auth else 0o777, parents=True, exist_ok=True)
    if auth and artifacts.stat().st_mode & 0o077:
        os.chmod(artifacts, 0o700)  # one made before, without --auth
    # the store URI may hold a password: through the environment (private to us), never on argv (`ps`)
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", MLFLOW_BACKEND_STORE_URI=db_uri or "")
    command = [sys.executable, "-m", "mlflow", "server",
               "--serve-artifacts", "--artifacts-destination", str(artifacts),
               "--host", host, "--port", str(port), "--workers", "2"]
    if allowed_hosts or not is_loopback(host):  # given: also on loopback, behind a TLS reverse proxy
        command += ["--allowed-hosts", allowed_hosts or f"{host},{host}:{port},localhost,localhost:{port}"]
    if auth:
        password = os.environ.get(ADMIN_PASSWORD_ENV, "")
        if not password:
            raise ServerError(f"--auth needs the admin password in {ADMIN_PASSWORD_ENV} (12+ characters)")
        env["MLFLOW_AUTH_CONFIG_PATH"] = str(write_auth_config(data, password))
        # MLflow's CSRF protection needs a secret that survives restarts (sessions stay valid)
        env.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", private_secret(data / "secret_key"))
        command += ["--app-name", "basic-auth"]
    shown = "localhost" if is_loopback(host) else host
    return ServerPlan(command, env, f"http://{shown}:{port}", db_uri or "", artifacts)


def start(*, data: Path, db_uri: str | None, host: str, port: int, auth: bool,
          allowed_hosts: str | None = None) -> None:
    """Start (or reuse) the private PostgreSQL when no --db is given, then become the MLflow server."""
    if db_uri is None:
        pg = local_postgres(data)
        try:
            pg.init()
            pg.start()
        except PostgresError as err:
            raise ServerError(str(err)) from None
        db_uri = pg.uri
    if not db_uri.startswith("postgresql"):
        raise ServerError(f"--db {db_uri}: the team server's store is PostgreSQL (postgresql://user:pass@host/db)")
    p = plan(data=data, db_uri=db_uri, host=host, port=port, auth=auth, allowed_hosts=allowed_hosts)
    print(f"MLflow team server on {p.url} (store: {hide_password(db_uri)}; artifacts served from {p.artifacts})")
    print(f"clients: export MLFLOW_TRACKING_URI={p.url}" + (
        "  MLFLOW_TRACKING_USERNAME=...  MLFLOW_TRACKING_PASSWORD=..." if auth else ""), flush=True)
    os.execvpe(p.command[0], p.command, p.env)

