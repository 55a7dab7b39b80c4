"""Which MLflow store a stage logs to, and a fast check that it is reachable.

Default: ``sqlite:///<repo>/mlflow.db`` with artifacts in ``<repo>/mlruns``, both
absolute and resolved out of ``dvc exp run --queue`` copies (see
:func:`labflow.frame.paths.store_root`). ``MLFLOW_TRACKING_URI`` points at a team server.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from labflow.frame.paths import store_root


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message says how to fix it."""


# Parallel queued experiments write one SQLite file: a writer waits up to this long for the lock
# (SQLite's default is 5 s) instead of failing with "database is locked". MLflow 3.17 runs
# `PRAGMA busy_timeout = 20000` at the start of every session it opens (mlflow/store/db/utils.py),
# which overrides whatever the URI asks for, so 20 s is what runs; the URI says the same for the
# connections MLflow opens outside a session (schema set-up). The store runs in WAL mode (see
# runs.use_wal), so readers never block the writer.
SQLITE_BUSY_TIMEOUT_S = 20


def tracking_uri() -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{store_root() / 'mlflow.db'}?timeout={SQLITE_BUSY_TIMEOUT_S}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (query string dropped); None for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):].split("?", 1)[0])


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def hide_password(uri: str) -> str:
    """The URI for printing: ``scheme://user:***@host/...``."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def warn_if_credentials_in_clear(uri: str) -> None:
    """One line on stderr when basic-auth credentials would cross the network unencrypted."""
    has_credentials = os.environ.get("MLFLOW_TRACKING_USERNAME") and os.environ.get("MLFLOW_TRACKING_PASSWORD")
    host = urllib.parse.urlsplit(uri).hostname or ""
    if has_credentials and uri.startswith("http://") and not is_loopback(host):
        print(f"labflow: warning: MLFLOW_TRACKING_PASSWORD goes to {uri} in clear text (http:// beyond this "
              "machine): anyone on the network path can read it; serve the tracking server over https:// "
              "(a TLS reverse proxy, see README \"Team setup\")", file=sys.stderr, flush=True)


def artifact_root() -> str:
    return (store_root() / "mlruns").as_uri()


def check_tracking(uri: str, timeout_s: float = 5.0) -> None:
    """Fail before training, not after, when the store is unusable."""
    if is_server(uri):
        probe = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(probe, timeout=timeout_s) as resp:
                if resp.status >= 400:
                    raise TrackingError(f"status {resp.status}")
        except (urllib.error.URLError, OSError, TrackingError) as err:
            raise TrackingError(
                f"MLflow tracking server {uri} is unreachable ({err}). Start it (`labflow server`, "
                "`make ui`), fix MLFLOW_TRACKING_URI, or unset it to log to the local "
                "mlflow.db. Nothing was trained."
            ) from None
        check_credentials(uri, timeout_s)
    elif sqlite_path(uri) is not None:
        db = sqlite_path(uri)
        if not db.parent.is_dir():
            raise TrackingError(f"MLflow store folder {db.parent} does not exist; fix MLFLOW_TRACKING_URI.")
        if not os.access(db.parent, os.W_OK):
            raise TrackingError(f"MLflow store folder {db.parent} is not writable; fix its permissions.")


def check_credentials(uri: str, timeout_s: float = 5.0) -> None:
    """One authenticated read, so a server with basic auth refuses us now, not mid-training."""
    import base64

    warn_if_credentials_in_clear(uri)
    request = urllib.request.Request(uri.rstrip("/") + "/api/2.0/mlflow/experiments/search?max_results=1")
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            return
    except urllib.error.HTTPError as err:
        if err.code == 401:
            given = f"user '{user}' with that password" if user and password else "no credentials"
            raise TrackingError(
                f"MLflow tracking server {uri} refused {given} (401): set MLFLOW_TRACKING_USERNAME and "
                "MLFLOW_TRACKING_PASSWORD to an account on that server. Nothing was trained."
            ) from None
        if err.code == 403:
            raise TrackingError(
                f"MLflow tracking server {uri}: user '{user}' may not read experiments (403); ask the "
                "server's admin for access. Nothing was trained."
            ) from None
        raise TrackingError(f"MLflow tracking server {uri} answered {err.code} to a search: {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise TrackingError(f"MLflow tracking server {uri} is unreachable ({err}). Nothing was trained.") from None


# A stage gives up on a dead server after ~10 s (MLflow's defaults retry for minutes); the
# user's own settings win.
HTTP_RETRY_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                       "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def set_http_retry_defaults() -> None:
    for key, value in HTTP_RETRY_DEFAULTS.items():
        os.environ.setdefault(key, value)


def lost_server_message(err: BaseException, stage: str) -> str | None:
    """One line for a tracking server that went away mid-stage; None for any other error."""
    uri = tracking_uri()
    if not is_server(uri):
        return None
    text = f"{type(err).__name__}: {err}"
    lost = ("Max retries exceeded", "Connection refused", "ConnectionError", "RemoteDisconnected",
            "Connection aborted", "Failed to establish a new connection")
    if not any(marker in text for marker in lost):
        return None
    return (f"lost the MLflow tracking server {uri} during `{stage}`. Everything saved so far is kept "
            "(train stages: the last epoch checkpoint); start the server again and rerun `dvc repro`: "
            "the stage resumes from its checkpoint, in the same MLflow run.")


def experiment_name(prefix: str, lab: str) -> str:
    return f"{prefix}-{lab}"
