"""Which MLflow store a stage logs to, and a fast check that it is reachable.

Default: ``sqlite:///<repo>/mlflow.db`` with artifacts in ``<repo>/mlruns``, both
absolute and resolved out of ``dvc exp run --queue`` copies (see
:func:`labflow.paths.store_root`). ``MLFLOW_TRACKING_URI`` points at a team server.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from labflow.paths import store_root


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message says how to fix it."""


def tracking_uri() -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{store_root() / 'mlflow.db'}"


def artifact_root() -> str:
    return (store_root() / "mlruns").as_uri()


def check_tracking(uri: str, timeout_s: float = 5.0) -> None:
    """Fail before training, not after, when the store is unusable."""
    if uri.startswith(("http://", "https://")):
        probe = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(probe, timeout=timeout_s) as resp:
                if resp.status >= 400:
                    raise TrackingError(f"status {resp.status}")
        except (urllib.error.URLError, OSError, TrackingError) as err:
            raise TrackingError(
                f"MLflow tracking server {uri} is unreachable ({err}). Start it (`make ui`, or "
                "`mlflow server`), fix MLFLOW_TRACKING_URI, or unset it to log to the local "
                "mlflow.db. Nothing was trained."
            ) from None
    elif uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        if not db.parent.is_dir():
            raise TrackingError(f"MLflow store folder {db.parent} does not exist; fix MLFLOW_TRACKING_URI.")
        if not os.access(db.parent, os.W_OK):
            raise TrackingError(f"MLflow store folder {db.parent} is not writable; fix its permissions.")


def experiment_name(prefix: str, lab: str) -> str:
    return f"{prefix}-{lab}"
