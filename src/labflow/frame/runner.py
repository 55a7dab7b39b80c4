"""A warm process that DVC stages fork from, so each stage stops paying for its imports.

Every DVC stage is a new Python process, and before it does any work it imports
torch, torch._dynamo (the first ``optimizer.step()`` pulls it in), mlflow,
matplotlib, pandas and scikit-learn, and lets MLflow map every installed package
to its modules: 5-10 s per stage on a laptop CPU, for stages that train for one.
``stages/*.py`` therefore ask a *stage runner* to do the work: a background
process that has imported those libraries once and forks a child per stage.
The child takes over the caller's stdin/stdout/stderr (passed over a Unix
socket), working directory, environment and ``sys.path``, imports labflow's own
code fresh (so edits are picked up) and runs the stage exactly as
``python stages/<stage>.py`` would. The caller exits with the child's status.

Safety rails:
- the runner only pre-imports third-party libraries; one runner serves one
  interpreter + installed packages + import-time environment (a hash of them
  names its socket), so a ``pip install`` or a different ``OMP_NUM_THREADS``
  gets a fresh runner;
- the runner's folder must be a real directory of this user closed to others
  (``lstat``: a planted symlink does not pass), and the runner serves only
  connections from this user (``SO_PEERCRED``): a stage hands it its whole
  environment, tracking passwords included;
- each stage child leads its own process group; if the caller dies (Ctrl-C,
  SIGKILL of ``dvc repro``'s process group), the child sees its socket close and
  sends SIGTERM to its whole group (SIGKILL 10 s later if the stage still runs),
  so the processes the stage started (torchrun, ...) go too; SIGINT/SIGTERM sent
  to the caller are forwarded to the group;
- when no runner answers, the stage runs in-process (and starts a runner for the
  stages after it); the runner exits after ``LABFLOW_RUNNER_IDLE_S`` seconds
  (default 60) with nothing to do; ``labflow runner stop`` signals the runner
  alone (its pid file): stages it is running finish and report to their callers;
- CUDA does not survive ``fork``: the runner never initialises it (``device: auto`` is
  resolved in each stage's child) and, if a warm-up import did, it does not serve
  (``cuda_touched``): stages then run in their own processes;
- ``LABFLOW_STAGE_RUNNER=0`` turns it off (every stage in its own process, as
  before); it is on by default on Linux only (fork with macOS system libraries is
  unsafe).

``labflow runner status|stop`` shows or stops the runner of this environment.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
import socket
import stat
import struct
import sys
import time
from pathlib import Path

# What a stage imports that costs time; the runner imports each once (missing ones are skipped).
WARM_MODULES = (
    "numpy",
    "torch",
    "torch._dynamo",  # the first optimizer.step() imports it (torch 2.14: ~1.3-4 s)
    "torch.nn.functional",
    "torch.optim",
    "mlflow",
    "mlflow.pytorch",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.db.utils",
    "mlflow.models",
    "sqlalchemy",
    "alembic",
    "matplotlib",
    "matplotlib.pyplot",
    "pandas",
    "sklearn.compose",
    "sklearn.impute",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "sklearn.metrics",
    "sklearn.model_selection",
    "imblearn.over_sampling",
    "imblearn.under_sampling",
    "torchvision",
    "torchmetrics",
    "PIL.Image",
    "pydantic",
    "yaml",
    "tqdm.auto",
)

# Read by libraries at import time: a runner warmed under other values would ignore the caller's.
# huggingface_hub (imported by torchmetrics in the warm-up) fixes its cache folder and offline mode
# (HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE; XDG_CACHE_HOME is HF_HOME's default).
_IMPORT_TIME_ENV_PREFIXES = ("OMP_", "MKL_", "OPENBLAS_", "KMP_", "GOMP_", "CUDA_", "PYTORCH_", "TORCH", "PYTHON", "LD_", "MPL",
                             "NUMEXPR_", "HF_", "HUGGINGFACE_", "TRANSFORMERS_", "XDG_CACHE_HOME")

_HEADER = struct.Struct("!I")
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_STARTUP_WAIT_S = 300.0  # a caller waits this long for a warming runner before running in-process
_KILL_GRACE_S = 10.0  # a stage whose caller died gets this long after SIGTERM before SIGKILL
DEFAULT_IDLE_S = 60.0
_idle_warned = False


def enabled() -> bool:
    value = os.environ.get("LABFLOW_STAGE_RUNNER", "").strip().lower()
    if value in ("0", "off", "false", "no"):
        return False
    if value in ("1", "on", "true", "yes"):
        return True
    return sys.platform.startswith("linux") and hasattr(socket, "send_fds")


# --------------------------------------------------------------------------- identity and places


def runtime_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return Path(base) / f"labflow-runner-{os.getuid()}"


def _private_dir() -> Path | None:
    """The runner's folder, a real directory owned by this user and closed to others (else no runner).

    ``lstat``, not ``stat``: another user may plant a symlink to a 0700 folder of ours (or to a
    folder of theirs) under /tmp before we create it.
    """
    folder = runtime_dir()
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(folder)
    except OSError:
        return _refuse(folder, "cannot be created as a folder")
    if stat.S_ISLNK(info.st_mode):
        return _refuse(folder, "is a symbolic link")
    if not stat.S_ISDIR(info.st_mode):
        return _refuse(folder, "is not a folder")
    if info.st_uid != os.getuid():
        return _refuse(folder, f"belongs to uid {info.st_uid}, not to you (uid {os.getuid()})")
    if info.st_mode & 0o077:
        return _refuse(folder, f"is open to other users (mode {stat.S_IMODE(info.st_mode):o}, needs 700)")
    return folder


def _refuse(folder: Path, why: str) -> None:
    print(f"labflow: warning: the stage runner's folder {folder} {why}; stages run without the runner "
          f"(remove it, or set XDG_RUNTIME_DIR to a private folder)", file=sys.stderr)
    return None


def idle_timeout_s(*, warn: bool = True) -> float:
    """``LABFLOW_RUNNER_IDLE_S``, or the default 60 s (with one warning line) when it is no number >= 0."""
    global _idle_warned
    raw = os.environ.get("LABFLOW_RUNNER_IDLE_S", "").strip()
    if not raw:
        return DEFAULT_IDLE_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if math.isfinite(value) and value >= 0:
        return value
    if warn and not _idle_warned:
        _idle_warned = True
        print(f"labflow: warning: LABFLOW_RUNNER_IDLE_S={raw} is not a number of seconds >= 0; the stage "
              f"runner uses the default {DEFAULT_IDLE_S:.0f} s (set it to e.g. 120, or unset it)", file=sys.stderr)
    return DEFAULT_IDLE_S


def fingerprint() -> str:
    """Interpreter, import path, installed packages and import-time environment: what a runner's imports depend on."""
    parts = [sys.executable, sys.prefix, sys.version, str(Path(__file__).resolve())]
    try:
        parts.append(str(os.stat(__file__).st_mtime_ns))
    except OSError:
        pass
    for entry in sys.path[1:]:  # sys.path[0] is the calling script's folder
        parts.append(entry)
        try:
            parts.append(str(os.stat(entry).st_mtime_ns))  # a site-packages folder changes on (un)install
        except OSError:
            pass
    parts += sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith(_IMPORT_TIME_ENV_PREFIXES) and k != "PYTHONUNBUFFERED")
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:20]


def socket_path(folder: Path | None = None) -> Path:
    return (folder or runtime_dir()) / f"{fingerprint()}.sock"


# --------------------------------------------------------------------------- the caller's side


def run_stage(stage: str, argv: list[str]) -> int:
    """What ``stages/<stage>.py`` calls: run the stage in a warm runner's child, else in-process."""
    if not enabled():
        return run_in_process(stage, argv)
    idle_timeout_s()  # a bad value: one warning line, then the default
    folder = _private_dir()
    if folder is None:
        return run_in_process(stage, argv)
    path = socket_path(folder)
    conn = _connect(path)
    if conn is None:
        start_runner(path)
        return run_in_process(stage, argv)
    code = _run_remote(conn, stage, argv)
    return run_in_process(stage, argv) if code is None else code


def run_in_process(stage: str, argv: list[str]) -> int:
    from labflow.frame.stages import STAGES, main

    func, usage = STAGES[stage]
    return main(func, argv, usage)


def _connect(path: Path) -> socket.socket | None:
    """A connection to the runner at ``path``, if it answers and runs as this user."""
    if not path.exists():
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
        uid = _peer_uid(conn)
    except OSError:
        conn.close()
        return None
    if uid != os.getuid():
        print(f"labflow: warning: the stage runner at {path} runs as uid {uid}, not as you (uid {os.getuid()}); "
              "this stage runs without it", file=sys.stderr)
        conn.close()
        return None
    return conn


def _peer_uid(conn: socket.socket) -> int:
    """The uid of the process at the other end of a Unix socket (as the kernel saw it at connect/listen)."""
    _pid, uid, _gid = _PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    return uid


def _run_remote(conn: socket.socket, stage: str, argv: list[str]) -> int | None:
    """Hand the stage to the runner; None if it never started (run it here instead)."""
    request = json.dumps({
        "stage": stage,
        "argv": argv,
        "script": sys.argv[0],
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "sys_path": sys.path,
        "umask": _umask(),
    }).encode()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        socket.send_fds(conn, [_HEADER.pack(len(request))], [0, 1, 2])
        conn.sendall(request)
        conn.settimeout(_STARTUP_WAIT_S)
        reader = conn.makefile("rb")
        first = reader.readline()
    except OSError:
        conn.close()
        return None
    if not first:  # the runner was shutting down: nothing ran
        conn.close()
        return None
    conn.settimeout(None)
    _forward_signals(conn)
    line = reader.readline()
    conn.close()
    if not line:
        print(f"labflow: the stage process of `{stage} {' '.join(argv)}` died without an exit status "
              "(killed?); rerun with LABFLOW_STAGE_RUNNER=0 to run it without the stage runner", file=sys.stderr)
        return 1
    return int(json.loads(line)["exit"])


def _forward_signals(conn: socket.socket) -> None:
    def forward(signum, _frame):
        try:
            conn.send(b"I" if signum == signal.SIGINT else b"T")
        except OSError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def start_runner(path: Path | None = None) -> None:
    """Start a runner in the background (it exits at once if one is already starting)."""
    import subprocess

    if not enabled():
        return
    idle_timeout_s()  # a bad value: one warning line (the runner uses the default)
    folder = _private_dir()
    if folder is None:
        return
    path = path or socket_path(folder)
    if _locked(path):
        return
    log = open(folder / "runner.log", "ab")
    subprocess.Popen(
        [sys.executable, "-m", "labflow.frame.runner", "serve", str(path)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path[1:] if p)},
        cwd="/",
    )
    log.close()


def _locked(path: Path) -> bool:
    """True while a runner for ``path`` holds its lock (warming up or serving)."""
    import fcntl

    try:
        with open(f"{path}.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


# --------------------------------------------------------------------------- the runner's side


def warm_up() -> list[str]:
    """Import what stages use, and fill MLflow's package map; returns what could not be imported."""
    import importlib

    try:
        import matplotlib

        matplotlib.use("Agg")  # before pyplot is imported below
    except ImportError:  # absent: it stays cold like any other missing library
        pass
    missing = []
    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional library that is absent or broken stays cold
            missing.append(name)
    warm_mlflow_package_map()
    warm_export()
    return missing


def warm_export() -> bool:
    """Trace a tiny CPU model once with ``torch.export``, so each stage's model logging (pt2,
    ``labflow.tracking.runs.Run.log_model``) skips the tracer's first-use setup (~1.2 s here).

    Without asking for a GPU: export's fake-tensor mode calls ``torch.cuda.is_available()``,
    which on a machine with one initialises the CUDA driver (``cuInit``), and a stage forked from
    the runner then could not use CUDA. The trace is on CPU, so for its length torch is told
    there is none (found by tests/test_stage_runner.py's CUDA tests)."""
    try:
        import torch

        model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()).eval()
        asks = torch.cuda.is_available
        torch.cuda.is_available = lambda: False
        try:
            torch.export.export(model, (torch.zeros(2, 4),), dynamic_shapes=({0: torch.export.Dim.AUTO},))
        finally:
            torch.cuda.is_available = asks
    except Exception:  # noqa: BLE001 - an export problem shows in the stage, not here
        return False
    return True


def cuda_touched() -> str:
    """Why this process may have initialised CUDA ("" if it has not), asked without touching it.

    CUDA does not survive ``fork``: a child of a process that initialised it fails at its first
    CUDA call. So the runner never initialises CUDA (warm-up imports libraries and traces on CPU;
    ``device: auto`` is resolved in each stage's child) and checks this before it serves: torch's
    own flag, and the driver library in the process's memory (loaded by any CUDA call, even
    ``torch.cuda.is_available()``)."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    if cuda is not None and cuda.is_initialized():
        return "torch initialised CUDA during warm-up"
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return ""
    return "the CUDA driver (libcuda) was loaded during warm-up" if "/libcuda.so" in maps else ""


def warm_mlflow_package_map() -> bool:
    """Fill MLflow's module->package map once, in the runner, instead of in every stage.

    Workaround, mlflow 3.17: ``mlflow.pytorch.log_model`` checks the model's requirements
    against the environment, and the first check in a process maps every installed
    distribution to its modules (``importlib_metadata.packages_distributions``, ~3 s here);
    MLflow keeps the map in a module global, so filling it before forking makes the check
    cheap in every stage. tests/test_stage_runner.py fails if MLflow stops caching it there.
    """
    try:
        from mlflow.utils import requirements_utils
    except ImportError:
        return False
    init = getattr(requirements_utils, "_init_packages_to_modules_map", None)
    if init is None:
        return False
    init()
    return getattr(requirements_utils, "_MODULES_TO_PACKAGES", None) is not None


def serve(path: Path, idle_s: float | None = None) -> int:
    """Warm up, then fork a child per connection of this user until idle; SIGTERM stops accepting
    (children running stages are separate processes: they finish and report to their callers)."""
    import fcntl

    idle_s = idle_s if idle_s is not None else idle_timeout_s(warn=False)
    lock = open(f"{path}.lock", "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another runner is starting or serving
    pidfile = _pidfile(path)
    _atomic_write(pidfile, f"{os.getpid()}\n")  # `labflow runner stop` signals this pid alone
    started = time.monotonic()
    try:
        missing = warm_up()
    except BaseException:  # SIGTERM (`labflow runner stop`) while warming up
        _remove_own_pidfile(pidfile)
        raise
    import threading

    touched = cuda_touched()
    if touched:  # a child forked from here could not use the GPU: stages run in their own processes
        _log(f"runner not started: {touched}; a stage forked from it could not use CUDA, so stages run "
             "in their own processes")
        _remove_own_pidfile(pidfile)
        return 1
    if threading.active_count() > 1:  # fork copies only the calling thread: refuse rather than risk it
        _log(f"runner not started: warm-up left {threading.active_count()} threads running")
        _remove_own_pidfile(pidfile)
        return 1
    path.unlink(missing_ok=True)  # stale: we hold the lock, so no live runner owns it
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(64)
    server.settimeout(1.0)
    _log(f"runner {os.getpid()} ready in {time.monotonic() - started:.1f}s at {path}"
         + (f" (not imported: {', '.join(missing)})" if missing else ""))
    children: set[int] = set()
    last_busy = time.monotonic()
    why = f"idle for {idle_s:.0f}s"
    try:
        while True:
            children = {pid for pid in children if not _reaped(pid)}
            if children:
                last_busy = time.monotonic()
            elif time.monotonic() - last_busy > idle_s:
                break
            try:
                conn, _ = server.accept()
            except OSError:  # TimeoutError included
                continue
            if not _from_this_user(conn):
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                server.close()
                lock.close()
                os.setsid()  # its own process group: the stage's processes go with it (_watch_caller)
                _child(conn)  # never returns
            conn.close()
            children.add(pid)
            last_busy = time.monotonic()
    except SystemExit:
        why = f"stopped (SIGTERM); {len(children)} running stage(s) left to finish"
        raise
    finally:
        path.unlink(missing_ok=True)  # new callers start a new runner rather than reach a closing one
        server.close()
        _remove_own_pidfile(pidfile)
        _log(f"runner {os.getpid()} {why}: exiting")
        lock.close()
    return 0


def _from_this_user(conn: socket.socket) -> bool:
    """A stage hands the runner its environment and the runner runs code as us: only our uid may ask."""
    try:
        uid = _peer_uid(conn)
    except OSError as err:
        uid, reason = None, str(err)
    else:
        reason = f"uid {uid}"
    if uid == os.getuid():
        return True
    _log(f"refused a connection from {reason} (this runner serves uid {os.getuid()} only)")
    conn.close()
    return False


def _pidfile(path: Path) -> Path:
    return Path(f"{path}.pid")


def _atomic_write(target: Path, text: str) -> None:
    """The pid file, whole or not at all. Not labflow.frame.atomic: the runner imports no labflow module,
    so that every stage child imports labflow's code fresh (edits count)."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _remove_own_pidfile(pidfile: Path) -> None:
    try:
        if pidfile.read_text().strip() == str(os.getpid()):
            pidfile.unlink()
    except OSError:
        pass


def _reaped(pid: int) -> bool:
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done != 0


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", flush=True)


def _child(conn: socket.socket) -> None:
    """Become the caller's stage process: its fds, folder, environment and import path."""
    code = 1
    finished = None
    try:
        conn.settimeout(30)
        head, fds, _flags, _addr = socket.recv_fds(conn, _HEADER.size, 3)
        (size,) = _HEADER.unpack(head)
        body = b""
        while len(body) < size:
            chunk = conn.recv(size - len(body))
            if not chunk:
                os._exit(1)
            body += chunk
        conn.settimeout(None)
        request = json.loads(body)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        _adopt(request)
        conn.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\n")
        finished = _watch_caller(conn)
        code = run_in_process(request["stage"], request["argv"])
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException:  # noqa: BLE001 - report it as the stage's own crash would be
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        import atexit

        atexit._run_exitfuncs()  # what a normal exit of the stage would run (MLflow flushes, ...)
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        if finished is not None:
            finished.set()  # the caller closing the socket now is no death: leave the group alone
        try:
            conn.sendall(json.dumps({"exit": code}).encode() + b"\n")
        except OSError:
            pass
        os._exit(code)


def _adopt(request: dict) -> None:
    import tempfile

    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.umask(request["umask"])
    sys.argv = [request["script"], *request["argv"]]
    sys.path[:] = request["sys_path"]
    tempfile.tempdir = None  # re-read TMPDIR
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    sys.stdin = open(0, closefd=False)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        stream = open(fd, "w", buffering=1 if os.isatty(fd) else -1, closefd=False)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def _watch_caller(conn: socket.socket):
    """Forwarded signals arrive as bytes; a closed socket means the caller died: end the stage's group.

    This child leads its own process group (``serve`` calls setsid), so the group holds the
    processes the stage started (a subprocess, torchrun): they get the signal too. Returns an
    event to set once the stage is done, after which a closed socket is the caller leaving.
    """
    import threading

    finished = threading.Event()

    def watch():
        while True:
            try:
                data = conn.recv(1)
            except OSError:
                data = b""
            if finished.is_set():
                return
            if not data:
                _signal_group(signal.SIGTERM)  # torchrun stops its workers on SIGTERM, not on SIGKILL
                time.sleep(_KILL_GRACE_S)
                _signal_group(signal.SIGKILL)  # still here: the stage ignored SIGTERM
                return
            _signal_group(signal.SIGINT if data == b"I" else signal.SIGTERM)

    threading.Thread(target=watch, name="labflow-caller-watch", daemon=True).start()
    return finished


def _signal_group(signum: int) -> None:
    try:
        os.killpg(os.getpgrp(), signum)
    except OSError:
        pass


# --------------------------------------------------------------------------- status / stop


def status() -> dict:
    path = socket_path()
    locked = _locked(path)
    state = ("running" if path.exists() else "starting") if locked else "not running"
    return {"socket": str(path), "state": state, "running": locked and path.exists(), "enabled": enabled(),
            "pid": _runner_pid(path) if locked else None}


def stop() -> bool:
    """Stop this environment's runner (children already running finish); False if none ran.

    Only the pid in the runner's pid file is signalled, and only while that process is a
    stage runner holding the lock: the stage children share its command line.
    """
    import fcntl

    path = socket_path()
    lock_file = Path(f"{path}.lock")
    if not lock_file.exists() or not _locked(path):
        return False
    pid = _runner_pid(path)
    if pid is None:
        print(f"labflow: warning: a stage runner holds {lock_file} but {_pidfile(path)} does not name it "
              "(still starting?); nothing signalled: try again in a moment", file=sys.stderr)
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    with open(lock_file, "a") as fh:  # wait until it let go
        fcntl.flock(fh, fcntl.LOCK_EX)
    return True


def _runner_pid(path: Path) -> int | None:
    """The pid in the runner's pid file, if that process runs ``stage_runner serve path`` and holds its lock."""
    try:
        pid = int(_pidfile(path).read_text().strip())
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    if b"labflow.frame.runner" not in cmd or str(path).encode() not in cmd:
        return None
    return pid if _holds_flock(pid, Path(f"{path}.lock")) else None


def _holds_flock(pid: int, lock_file: Path) -> bool:
    """Whether /proc/locks lists ``pid`` as holding a flock on ``lock_file`` ("1: FLOCK ADVISORY WRITE pid maj:min:inode ...")."""
    try:
        inode = os.stat(lock_file).st_ino
        table = Path("/proc/locks").read_text()
    except OSError:
        return False
    for line in table.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[4] == str(pid) and fields[5].endswith(f":{inode}"):
            return True
    return False


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.exit(serve(Path(sys.argv[2])))
    print("usage: python -m labflow.frame.runner serve SOCKET", file=sys.stderr)
    sys.exit(2)
