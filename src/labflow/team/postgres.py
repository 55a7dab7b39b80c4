"""A private PostgreSQL cluster in a folder, on a loopback port: ``initdb`` once, ``pg_ctl`` to run.

For ``labflow server`` without ``--db`` (one machine serves the team) and for the tests. It uses
the PostgreSQL binaries already installed (Debian's ``postgresql``: ``initdb``/``pg_ctl`` on PATH
or under ``/usr/lib/postgresql/<version>/bin``). PostgreSQL refuses to run as root, so as root
the cluster belongs to the ``postgres`` system user (``runuser``).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path


class PostgresError(RuntimeError):
    """The private cluster cannot be set up or started; the message says how to fix it."""


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PrivatePostgres:
    folder: Path  # holds the cluster (data/), its log and socket
    port: int
    user: str = "labflow"
    database: str = "mlflow"

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def uri(self) -> str:
        """SQLAlchemy URI MLflow uses (psycopg2 driver); trust auth on loopback only."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _as_owner(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        runuser = shutil.which("runuser")
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresError("PostgreSQL will not run as root and there is no `postgres` user: "
                                "run as another user, or `apt-get install postgresql`") from None
        if runuser is None:
            raise PostgresError("PostgreSQL will not run as root and `runuser` is missing")
        return [runuser, "-u", "postgres", "--"]

    def _run(self, binary: str, *args: str) -> subprocess.CompletedProcess:
        exe = find_binary(binary)
        if exe is None:
            raise PostgresError(f"`{binary}` not found: install PostgreSQL (Debian: `apt-get install postgresql`) "
                                "or pass --db postgresql://... for an existing server")
        proc = subprocess.run([*self._as_owner(), exe, *args], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise PostgresError(f"{binary} {' '.join(args)} failed: {(proc.stderr or proc.stdout).strip()[-800:]}")
        return proc

    def _give_to_owner(self) -> None:
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            for path in (self.folder, *self.folder.rglob("*")):
                os.chown(path, owner.pw_uid, owner.pw_gid)

    def init(self) -> None:
        """Create the cluster and the database once; a second call finds them and does nothing."""
        if (self.data / "PG_VERSION").exists():
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        self._give_to_owner()
        self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-instructions")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, self.database)

    def running(self) -> bool:
        exe = find_binary("pg_ctl")
        if exe is None or not (self.data / "PG_VERSION").exists():
            return False
        proc = subprocess.run([*self._as_owner(), exe, "status", "-D", str(self.data)], capture_output=True)
        return proc.returncode == 0

    def start(self) -> None:
        if self.running():
            return
        # listen on loopback only, socket in our folder (not /var/run/postgresql)
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.folder}"
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.folder / "postgres.log"),
                  "-o", options)

    def stop(self) -> None:
        if self.running():
            self._run("pg_ctl", "stop", "-m", "fast", "-w", "-D", str(self.data))
