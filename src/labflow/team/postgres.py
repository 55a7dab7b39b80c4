"""A private PostgreSQL cluster in a folder, reachable only through a Unix socket in that folder.

For ``labflow server`` without ``--db`` (one machine serves the team) and for the tests. It uses
the PostgreSQL binaries already installed (Debian's ``postgresql``: ``initdb``/``pg_ctl`` on PATH
or under ``/usr/lib/postgresql/<version>/bin``). PostgreSQL refuses to run as root, so as root
the cluster belongs to the ``postgres`` system user (``runuser``).

Nobody else gets in: no TCP at all (``listen_addresses = ''``), the socket lives in the 0700
folder, and every connection needs a scram-sha-256 password. The superuser's password and that of
``mlflow`` (the role MLflow uses: no superuser, owns only its database) are random, each in its own
0600 file. A cluster made by older labflow versions (trust auth on a loopback port) is migrated to
this on its next start, its runs kept.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shlex
import shutil
import socket
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from labflow.frame import atomic
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


def write_private_file(path: Path, text: str) -> None:
    """Write a secret that no other user can read at any moment: :mod:`labflow.frame.atomic` creates
    its temporary file 0600 (never written first and chmod-ed after) and renames it over ``path``."""
    atomic.write_text(path, text)


def private_secret(path: Path) -> str:
    """A random secret kept in a 0600 file: made on first use, the same one afterwards."""
    if not path.exists():
        write_private_file(path, secrets.token_hex(24) + "\n")
    return path.read_text().strip()


# The only way in: the Unix socket (in the 0700 folder), with a password. No `host` lines: no TCP.
PG_HBA = "# labflow: Unix socket only, password (scram-sha-256) for every role\nlocal all all scram-sha-256\n"
SETTINGS_MARK = "# labflow: private cluster"


@dataclass
class PrivatePostgres:
    folder: Path  # holds the cluster (data/), its log, socket and password files
    port: int  # names the socket file (.s.PGSQL.<port>); nothing listens on TCP
    user: str = "labflow"  # the superuser, for setting the cluster up only
    database: str = "mlflow"
    app_user: str = "mlflow"  # MLflow's role: owns its database, nothing else

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def superuser_password_file(self) -> Path:
        return self.folder / "superuser.password"

    @property
    def app_password_file(self) -> Path:
        return self.folder / "mlflow.password"

    @property
    def uri(self) -> str:
        """SQLAlchemy URI MLflow uses: psycopg 3, the socket in our folder, the app role's password.
        It holds a secret: pass it through the environment, never on a command line."""
        password = self.app_password_file.read_text().strip()
        socket_dir = urllib.parse.quote(str(self.folder), safe="/")
        return (f"postgresql+psycopg://{self.app_user}:{password}@/{self.database}"
                f"?host={socket_dir}&port={self.port}")

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

    def _give_to_owner(self, *paths: Path) -> None:
        """As root, the cluster's files belong to `postgres` (modes unchanged: 0600 stays 0600)."""
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            for path in paths:
                os.chown(path, owner.pw_uid, owner.pw_gid)

    def init(self) -> None:
        """Create the cluster, the app role and its database once; start it. A cluster made by an
        older labflow (trust auth, TCP) is locked down here first. Safe to call on every start."""
        import psycopg

        try:
            if not (self.data / "PG_VERSION").exists():
                self._initdb()
            elif self.is_legacy():
                self._lock_down_legacy()
            self.start()
            self._ensure_app_role(self._superuser_password())
        except psycopg.Error as err:
            reason = str(err).strip().splitlines()[0]
            raise PostgresError(f"the private PostgreSQL cluster in {self.folder} refused labflow's set-up ({reason}); "
                                f"if its password files were lost, move the folder aside and start again") from None

    def is_legacy(self) -> bool:
        """Made by an older labflow: some pg_hba line trusts without a password, or no password file."""
        hba = self.data / "pg_hba.conf"
        lines = [line.split() for line in hba.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
        return any("trust" in fields for fields in lines) or not self.superuser_password_file.exists()

    def _initdb(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)  # mkdir's mode is cut by the umask and ignored for an existing folder
        private_secret(self.superuser_password_file)
        private_secret(self.app_password_file)
        self._give_to_owner(self.folder, self.superuser_password_file, self.app_password_file)
        self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth-local=scram-sha-256",
                  "--auth-host=scram-sha-256", f"--pwfile={self.superuser_password_file}", "-E", "UTF8",
                  "--locale=C", "--no-instructions")
        self._write_settings()
        self._write_config(self.data / "pg_hba.conf", PG_HBA)

    def _write_settings(self) -> None:
        """No TCP, the socket in our folder and usable by its owner only; kept in postgresql.conf so
        that a hand-run `pg_ctl start` is as closed as ours."""
        conf = self.data / "postgresql.conf"
        text = conf.read_text()
        if SETTINGS_MARK not in text:
            folder = str(self.folder).replace("'", "''")
            text += (f"\n{SETTINGS_MARK}\nlisten_addresses = ''\nport = {self.port}\n"
                     f"unix_socket_directories = '{folder}'\nunix_socket_permissions = 0700\n"
                     "password_encryption = scram-sha-256\n")
            self._write_config(conf, text)

    def _write_config(self, path: Path, text: str) -> None:
        write_private_file(path, text)
        self._give_to_owner(path)

    def _lock_down_legacy(self) -> None:
        """Migrate an old trust/TCP cluster in place: stop it, restart it without TCP (so only this
        folder's owner can reach it while it still trusts), set the superuser's password, then
        require passwords; `init` then hands MLflow's tables to the app role."""
        self.stop()
        os.chmod(self.folder, 0o700)
        private_secret(self.superuser_password_file)
        private_secret(self.app_password_file)
        self._give_to_owner(self.superuser_password_file, self.app_password_file)
        self._write_settings()
        self.start()
        from psycopg import sql

        with self._connect("postgres", password=None) as con:  # still trust, but only via our folder now
            con.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(self.user), sql.Literal(self._superuser_password())))
        self._write_config(self.data / "pg_hba.conf", PG_HBA)
        self._run("pg_ctl", "reload", "-D", str(self.data))

    def _superuser_password(self) -> str:
        return self.superuser_password_file.read_text().strip()

    def _connect(self, dbname: str, password: str | None):
        import psycopg

        kwargs = {} if password is None else {"password": password}
        return psycopg.connect(host=str(self.folder), port=self.port, user=self.user, dbname=dbname,
                               autocommit=True, connect_timeout=30, **kwargs)

    def _ensure_app_role(self, su_password: str) -> None:
        """The `mlflow` role (login, no superuser) with its password, owning the database and every
        table, sequence and type MLflow made in it (an old cluster made them as the superuser)."""
        from psycopg import sql

        role, db = sql.Identifier(self.app_user), sql.Identifier(self.database)
        app_password = private_secret(self.app_password_file)
        with self._connect("postgres", su_password) as con:
            exists = con.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (self.app_user,)).fetchone()
            verb = "ALTER" if exists else "CREATE"
            con.execute(sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}")
                        .format(role, sql.Literal(app_password)))
            if con.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone():
                con.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, role))
            else:
                con.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(db, role))
        with self._connect(self.database, su_password) as con:
            con.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
            owned = con.execute(
                "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S') "
                "AND pg_get_userbyid(c.relowner) <> %s AND NOT EXISTS (SELECT 1 FROM pg_depend d "
                "WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i'))",
                (self.app_user,)).fetchall()  # a column's sequence moves with its table
            for name, kind in owned:
                what = {"v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}.get(kind, "TABLE")
                con.execute(sql.SQL(f"ALTER {what} public.{{}} OWNER TO {{}}").format(sql.Identifier(name), role))
            types = con.execute(
                "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
                "WHERE n.nspname = 'public' AND t.typtype = 'e' AND pg_get_userbyid(t.typowner) <> %s",
                (self.app_user,)).fetchall()
            for (name,) in types:
                con.execute(sql.SQL("ALTER TYPE public.{} OWNER TO {}").format(sql.Identifier(name), role))

    def running(self) -> bool:
        exe = find_binary("pg_ctl")
        if exe is None or not (self.data / "PG_VERSION").exists():
            return False
        proc = subprocess.run([*self._as_owner(), exe, "status", "-D", str(self.data)], capture_output=True)
        return proc.returncode == 0

    def start(self) -> None:
        if self.running():
            return
        # the settings (no TCP, socket here) are in postgresql.conf; the socket folder again in case
        # the folder moved since
        options = f"-c {shlex.quote(f'unix_socket_directories={self.folder}')} -p {self.port}"
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.folder / "postgres.log"),
                  "-o", options)

    def stop(self) -> None:
        if self.running():
            self._run("pg_ctl", "stop", "-m", "fast", "-w", "-D", str(self.data))
