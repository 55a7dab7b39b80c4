"""Tags that tie an MLflow run to its Git commit, DVC experiment, stage, params and data."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
from pathlib import Path

from labflow.frame.paths import repo_root


def stable_hash(obj) -> str:
    """A short hash of JSON-able data; equal params give equal hashes across runs."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _git(*args: str, cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(root: Path | None = None) -> dict[str, str]:
    root = root or repo_root()
    commit = _git("rev-parse", "HEAD", cwd=root)
    if commit is None:
        return {"git.commit": "none", "git.dirty": "unknown"}
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=root)
    return {"git.commit": commit, "git.dirty": str(bool(status)).lower()}


def mlflow_context_tags(*, stage: str, commit: str, root: Path | None = None) -> dict[str, str]:
    """MLflow's own context tags, which ``MlflowClient.create_run`` leaves out: the runs table's
    *Source*, *Version* and *User* columns and their filters read these.

    Source is the stage script DVC ran (``stages/train.py``); Version is the Git commit.
    """
    root = root or repo_root()
    tags = {
        "mlflow.source.name": f"stages/{stage}.py",
        "mlflow.source.type": "LOCAL",
        "mlflow.user": _user(),
    }
    if commit and commit != "none":
        tags["mlflow.source.git.commit"] = commit
        branch = _git("rev-parse", "--abbrev-ref", "HEAD", cwd=root)
        if branch and branch != "HEAD":  # not a detached HEAD (dvc exp run's temporary checkouts)
            tags["mlflow.source.git.branch"] = branch
        url = _git("remote", "get-url", "origin", cwd=root)
        if url:
            tags["mlflow.source.git.repoURL"] = url
    return tags


def _user() -> str:
    """The login name; containers without a passwd entry for their uid fall back to $USER or the uid."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or f"uid{os.getuid()}"


def run_tags(*, lab: str, stage: str, params_hash: str, data_hash: str, profile: str, variant: str | None = None,
             seed: int | None = None) -> dict[str, str]:
    git = git_state()
    tags = {
        **git,
        **mlflow_context_tags(stage=stage, commit=git["git.commit"]),
        "labflow.lab": lab,
        "labflow.stage": stage,
        "labflow.profile": profile,
        "labflow.params_hash": params_hash,
        "labflow.data_hash": data_hash,
    }
    if variant:
        tags["labflow.variant"] = variant
    if seed is not None:
        tags["labflow.seed"] = str(seed)
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc.exp_name"] = os.environ["DVC_EXP_NAME"]
    return tags


# --------------------------------------------------------------------------- which process runs a run

HOST_TAG, PID_TAG, PID_START_TAG = "labflow.host", "labflow.pid", "labflow.pid_start"


def process_start(pid: int) -> str | None:
    """``<boot id>:<pid namespace>:<start ticks>`` of a live process (Linux /proc); None where unknown or gone.

    A pid is reused once its process is gone: the start time in clock ticks after boot tells
    the process that opened a run from a later one with the same pid, and the boot id and
    pid namespace say whether that pid can be looked up here at all.
    """
    here = _pid_space()
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces and ')'
    if here is None or fields[0] == "Z":  # a zombie: dead, only not reaped yet
        return None
    return f"{here}:{fields[19]}"  # field 22 of stat: starttime


def _pid_space() -> str | None:
    """``<boot id>:<pid namespace>``: where a pid means the same process (None without /proc)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")  # pid:[4026531836]
    except OSError:
        return None
    return f"{boot}:{namespace.strip('pid:[]')}"


def owner_tags() -> dict[str, str]:
    """Host and process of the run's owner, so a later ``preflight`` can tell a dead run from a live one."""
    tags = {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}
    start = process_start(os.getpid())
    if start is not None:
        tags[PID_START_TAG] = start
    return tags


def owner_alive(tags: dict[str, str]) -> bool:
    """Whether the process that a run's owner tags name (on this host) may still run.

    False only when it is surely gone: no such pid, a zombie, a later process with its pid, or
    a reboot since. A pid of another pid namespace (a container sharing the host's name)
    cannot be looked up from here: True.
    """
    try:
        pid = int(tags[PID_TAG])
    except (KeyError, ValueError):
        return True
    recorded = tags.get(PID_START_TAG, "")
    here = _pid_space()
    if recorded and here:
        boot, namespace, _ticks = (recorded.split(":") + ["", ""])[:3]
        here_boot, here_namespace = here.split(":")
        if boot != here_boot:
            return False  # started before this machine's last boot
        if namespace != here_namespace:
            return True
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    except (OverflowError, OSError):
        return True
    if not recorded or here is None:
        return True
    return process_start(pid) == recorded
