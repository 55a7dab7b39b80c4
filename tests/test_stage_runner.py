"""The warm stage runner: stages forked from it behave as if run as their own process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labflow.frame import runner as stage_runner
from conftest import copy_repo, read_params, write_params

REPO = Path(__file__).resolve().parents[1]


def _env(runtime: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LABFLOW_", "DVC_"))}
    env.update(XDG_RUNTIME_DIR=str(runtime), LABFLOW_RUNNER_IDLE_S="120", LABFLOW_STAGE_RUNNER="1")
    env.update(extra)
    return env


def _stage(repo: Path, env: dict, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)


def _socket(env: dict) -> Path:
    code = "from labflow.frame import runner as r; print(r.socket_path())"
    return Path(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip())


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    """A private runner (own runtime folder), warmed up once for the module."""
    runtime = tmp_path_factory.mktemp("runtime")
    runtime.chmod(0o700)
    repo = copy_repo(tmp_path_factory.mktemp("runner") / "repo", profile="smoke")
    env = _env(runtime)
    subprocess.run([sys.executable, "-m", "labflow.cli", "runner", "start"], env=env, check=True, capture_output=True)
    sock = _socket(env)
    deadline = time.monotonic() + 180
    while not sock.exists():
        assert time.monotonic() < deadline, (runtime / f"labflow-runner-{os.getuid()}" / "runner.log").read_text()
        time.sleep(0.2)
    yield repo, runtime
    subprocess.run([sys.executable, "-m", "labflow.cli", "runner", "stop"], env=env, capture_output=True, timeout=60)
    assert not sock.exists()


def _pids(timings: Path) -> list[int]:
    return [json.loads(line)["pid"] for line in timings.read_text().splitlines()]


@pytest.mark.slow
def test_a_stage_runs_in_a_forked_child_with_the_callers_folder_env_and_streams(runner, tmp_path):
    repo, runtime = runner
    timings = tmp_path / "timings.jsonl"
    proc = _stage(repo, _env(runtime, LABFLOW_TIMINGS=str(timings)), "stages/preflight.py")
    assert proc.returncode == 0, proc.stderr
    assert "preflight: params.yaml valid (profile smoke)" in proc.stdout  # the caller's stdout, the repo's params
    assert json.loads((repo / "results" / "preflight.json").read_text()) == {"status": "ok"}
    # The child is the runner's, not the caller's: its parent is the runner process.
    (child_pid,) = _pids(timings)
    assert child_pid not in (os.getpid(),)
    # The same stage with the runner off runs in the calling process.
    caller = subprocess.Popen([sys.executable, "stages/preflight.py"], cwd=repo, text=True, stdout=subprocess.PIPE,
                              env=_env(runtime, LABFLOW_TIMINGS=str(timings), LABFLOW_STAGE_RUNNER="0"))
    assert "preflight:" in caller.communicate(timeout=120)[0] and caller.returncode == 0
    assert _pids(timings)[-1] == caller.pid
    # And with the runner on, another process did the work.
    caller = subprocess.Popen([sys.executable, "stages/preflight.py"], cwd=repo, text=True, stdout=subprocess.PIPE,
                              env=_env(runtime, LABFLOW_TIMINGS=str(timings)))
    assert "preflight:" in caller.communicate(timeout=120)[0] and caller.returncode == 0
    assert _pids(timings)[-1] != caller.pid


@pytest.mark.slow
def test_errors_and_exit_status_reach_the_caller(runner, tmp_path):
    repo, runtime = runner
    proc = _stage(repo, _env(runtime), "stages/download.py", "no_such_data")
    assert proc.returncode == 1
    assert "data.no_such_data: no such data set in params.yaml" in proc.stderr
    usage = _stage(repo, _env(runtime), "stages/train.py", "lab01")
    assert usage.returncode == 2 and "usage: python stages/train.py LAB VARIANT" in usage.stderr
    # The child sees the caller's environment, not the runner's: here an unreachable server.
    env = _env(runtime, MLFLOW_TRACKING_URI="http://127.0.0.1:9")
    down = _stage(repo, env, "stages/preflight.py")
    assert down.returncode == 1 and "unreachable" in down.stderr


@pytest.mark.slow
def test_killing_the_caller_kills_the_stage(runner, tmp_path):
    """SIGKILL of the calling process (e.g. `dvc repro`'s process group) must not leave the stage running."""
    repo, runtime = runner
    timings = tmp_path / "timings.jsonl"
    env = _env(runtime, LABFLOW_TIMINGS=str(timings))
    assert _stage(repo, env, "stages/download.py", "titanic").returncode == 0
    assert _stage(repo, env, "stages/preprocess.py", "lab05").returncode == 0
    child = _pids(timings)[-1]
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)  # a finished stage's process is gone
    # Now a train stage, killed as soon as its child reports in.
    proc = subprocess.Popen([sys.executable, "stages/train.py", "lab05", "none"], cwd=repo, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    pid = None
    while pid is None and time.monotonic() < deadline:
        pid = next((p for p in _children_of_runner(runtime) if p != child), None)
        time.sleep(0.02)
    assert pid is not None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _children_of_runner(runtime: Path) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(")")[-1].split()
            cmd = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        parent = Path(f"/proc/{fields[1]}/cmdline")
        try:
            parent_cmd = parent.read_bytes()
        except OSError:
            continue
        if b"labflow.frame.runner" in parent_cmd and str(runtime).encode() in parent_cmd and b"labflow.frame.runner" in cmd:
            out.append(int(stat.parent.name))
    return out


def test_no_runner_means_the_stage_runs_in_process(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("LABFLOW_STAGE_RUNNER", "0")
    assert not stage_runner.enabled()
    monkeypatch.setenv("LABFLOW_STAGE_RUNNER", "1")
    assert stage_runner.enabled()
    assert stage_runner._connect(stage_runner.socket_path()) is None


def test_a_folder_others_can_enter_disables_the_runner(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    folder = stage_runner.runtime_dir()
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    assert stage_runner._private_dir() is None


def test_the_fingerprint_follows_import_time_settings(monkeypatch):
    before = stage_runner.fingerprint()
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    assert stage_runner.fingerprint() != before
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("DVC_EXP_NAME", "any")  # read at run time: same runner
    assert stage_runner.fingerprint() == before
    # huggingface_hub, imported in the warm-up, fixes its cache folder and offline mode at import
    # (unset first: an earlier test in this process may have set one, e.g. lab 17's HF_HUB_OFFLINE)
    settings = (("HF_HOME", "/elsewhere"), ("HF_HUB_OFFLINE", "1"), ("XDG_CACHE_HOME", "/cache"))
    for key, _ in settings:
        monkeypatch.delenv(key, raising=False)
    unset = stage_runner.fingerprint()
    for key, value in settings:
        with monkeypatch.context() as env:
            env.setenv(key, value)
            assert stage_runner.fingerprint() != unset, key
    assert stage_runner.fingerprint() == unset


def test_mlflow_still_caches_its_package_map_where_the_runner_fills_it():
    """The runner's warm-up relies on mlflow 3.17 keeping the module->package map in a module
    global (see stage_runner.warm_mlflow_package_map); if that changes, this fails."""
    from mlflow.utils import requirements_utils

    assert stage_runner.warm_mlflow_package_map()
    assert requirements_utils._MODULES_TO_PACKAGES and requirements_utils._PACKAGES_TO_MODULES
    started = time.perf_counter()
    assert requirements_utils._check_requirement_satisfied("torch") is None
    assert time.perf_counter() - started < 0.5  # no second scan of the installed packages


def test_dvc_parses_yaml_with_the_c_parser():
    """pyproject asks for ruamel.yaml's C parser: DVC reads params.yaml once per stage with it."""
    from ruamel.yaml import YAML
    from ruamel.yaml.main import CParser

    assert CParser is not None
    assert YAML(typ="safe").Parser is CParser


# --------------------------------------------------------------------------- a runner with fake stages
#
# The process-handling tests run the real stage_runner in a bare interpreter (a venv without
# packages: its warm-up imports nothing, so a runner is ready in a blink) against a stand-in
# `labflow` package whose stages.py holds tiny stages; every other labflow module is the real one.

FAKE_INIT = '''"""Stand-in labflow for tests: stages.py here, every other module from the real package."""
__path__.append({real!r})
'''

FAKE_STAGES = '''"""Tiny stages for the stage runner's tests."""
import os
import subprocess
import sys
import time
from pathlib import Path


def wait(pidfile, gate, code):
    """Write this process's pid, wait until ``gate`` exists, end with status ``code``."""
    Path(pidfile).write_text(str(os.getpid()))
    while not Path(gate).exists():
        time.sleep(0.05)
    return int(code)


def spawn(pidfile):
    """Start a process of its own (as the train stage starts torchrun), write both pids, wait."""
    child = subprocess.Popen(["sleep", "300"])
    Path(pidfile).write_text(f"{os.getpid()} {child.pid}")
    time.sleep(300)
    return 0


def touch(marker):
    Path(marker).write_text(str(os.getpid()))
    return 0


STAGES = {name: (func, "python stages/" + name + ".py ...") for name, func in
          (("wait", wait), ("spawn", spawn), ("touch", touch))}


def main(func, argv, usage):
    return func(*argv) or 0
'''

CALLER = "import sys\nfrom labflow.frame.runner import run_stage\nsys.exit(run_stage(sys.argv[1], sys.argv[2:]))\n"


class FakeRunner:
    """Callers, a runner and `stop` for the fake stages, in one runtime folder."""

    def __init__(self, python: Path, fake: Path, runtime: Path, **env):
        self.python, self.runtime = python, runtime
        self.caller = fake / "caller.py"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LABFLOW_", "MLFLOW_"))}
        self.env.update({"PYTHONPATH": str(fake), "XDG_RUNTIME_DIR": str(runtime), "LABFLOW_STAGE_RUNNER": "1",
                         "LABFLOW_RUNNER_IDLE_S": "120", **env})
        self.folder = runtime / f"labflow-runner-{os.getuid()}"
        self.socket = Path(self.api("print(r.socket_path())"))

    def api(self, code: str) -> str:
        """Run ``code`` with ``r`` = labflow.frame.runner in the bare interpreter; its stdout."""
        proc = subprocess.run([str(self.python), "-c", f"from labflow.frame import runner as r\n{code}"],
                              env=self.env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    def start(self) -> int:
        """Start the runner and wait until it listens; its pid."""
        self.api("r.start_runner()")
        deadline = time.monotonic() + 60
        while not self.socket.exists():
            assert time.monotonic() < deadline, self.log()
            time.sleep(0.05)
        (pid,) = [pid for pid, cmd in _processes() if b"labflow.frame.runner" in cmd and str(self.socket).encode() in cmd]
        return pid

    def stage(self, *argv: str, **popen) -> subprocess.Popen:
        return subprocess.Popen([str(self.python), str(self.caller), *argv], env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)

    def stop(self) -> str:
        return self.api("print(r.stop())")

    def log(self) -> str:
        log = self.folder / "runner.log"
        return log.read_text() if log.exists() else "(no runner.log)"


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory) -> tuple[Path, Path]:
    """A venv without packages and the stand-in labflow package."""
    root = tmp_path_factory.mktemp("bare")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    fake = root / "fake"
    (fake / "labflow" / "frame").mkdir(parents=True)
    real_frame = Path(stage_runner.__file__).parent
    (fake / "labflow" / "__init__.py").write_text(FAKE_INIT.format(real=str(real_frame.parent)))
    (fake / "labflow" / "frame" / "__init__.py").write_text(FAKE_INIT.format(real=str(real_frame)))
    (fake / "labflow" / "frame" / "stages.py").write_text(FAKE_STAGES)
    (fake / "caller.py").write_text(CALLER)
    return root / "venv" / "bin" / "python", fake


@pytest.fixture
def short_runtime():
    """A runtime folder under /tmp: pytest's are too deep for a Unix socket's path (108 bytes)."""
    import tempfile

    runtime = Path(tempfile.mkdtemp(prefix="lf-", dir="/tmp"))
    yield runtime
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture
def fake_runner(bare_python, short_runtime):
    runner = FakeRunner(*bare_python, short_runtime)
    yield runner
    runner.stop()


def _processes():
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            yield int(proc.name), (proc / "cmdline").read_bytes()
        except OSError:
            continue


def _wait_for_text(path: Path, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.02)
    return path.read_text().strip()


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[1])


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not _alive(pid)


# --------------------------------------------------------------------------- issue 16 item 5


def test_a_symlink_as_the_runtime_folder_is_refused_and_the_stage_runs_in_process(tmp_path, monkeypatch, capsys):
    """Another user can plant labflow-runner-<uid> as a symlink before we create it: even one
    pointing at a 0700 folder of ours must not pass (stat follows links, lstat does not)."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("LABFLOW_STAGE_RUNNER", "1")
    ours = tmp_path / "ours"
    ours.mkdir(mode=0o700)
    ours.chmod(0o700)
    stage_runner.runtime_dir().symlink_to(ours)
    ran, started = [], []
    monkeypatch.setattr(stage_runner, "run_in_process", lambda stage, argv: ran.append(stage) or 0)
    monkeypatch.setattr(stage_runner, "start_runner", lambda *a, **k: started.append(a))
    assert stage_runner._private_dir() is None
    assert stage_runner.run_stage("preflight", []) == 0
    assert ran == ["preflight"] and started == []  # in-process, and no runner started in that folder
    assert "is a symbolic link; stages run without the runner" in capsys.readouterr().err
    stage_runner.runtime_dir().unlink()
    stage_runner.runtime_dir().symlink_to("/tmp")
    assert stage_runner._private_dir() is None


def test_a_connection_from_another_user_is_refused(bare_python, short_runtime):
    """Even with the folder opened by mistake, the runner serves its own uid only (SO_PEERCRED)."""
    runtime = short_runtime  # also: pytest's tmp folders are closed to uid 65534
    runner = FakeRunner(*bare_python, runtime)
    try:
        runner.start()
        for folder in (runtime, runner.folder):
            folder.chmod(0o711)
        runner.socket.chmod(0o777)
        marker = runtime / "ran"
        assert _connect_and_ask_as(65534, runner.socket, "touch", [str(marker)]) == "closed"
        time.sleep(0.5)
        assert not marker.exists()  # no child ran the stage
        assert "refused a connection from uid 65534" in runner.log()
        runner.folder.chmod(0o700)
        # Our own uid is still served.
        proc = runner.stage("touch", str(marker))
        assert proc.wait(timeout=30) == 0
        assert int(marker.read_text()) != proc.pid
    finally:
        runner.stop()


def _connect_and_ask_as(uid: int, path: Path, stage: str, argv: list[str]) -> str:
    """In a forked child running as ``uid``: connect, send a stage request as a caller would;
    "closed" if the runner hung up without starting it, "served" if it answered."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        verdict = b"error"
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.settimeout(20)
            conn.connect(str(path))
            body = json.dumps({"stage": stage, "argv": argv, "script": "x", "cwd": "/", "env": {},
                               "sys_path": [], "umask": 0o22}).encode()
            socket.send_fds(conn, [stage_runner._HEADER.pack(len(body))], [0, 1, 2])
            conn.sendall(body)
            verdict = b"served" if conn.makefile("rb").readline() else b"closed"
        except OSError as err:
            verdict = b"closed" if isinstance(err, (BrokenPipeError, ConnectionResetError)) else repr(err).encode()
        finally:
            os.write(write_end, verdict)
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as fh:
        return fh.read().decode()


def test_a_runner_of_another_user_is_not_used(tmp_path, monkeypatch, capsys):
    """The caller checks the runner's uid too: it hands the runner its whole environment."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    folder = stage_runner._private_dir()
    path = stage_runner.socket_path(folder)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child: a listener that runs as uid 65534
        try:
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.bind(str(path))
            os.seteuid(65534)  # the kernel records the listener's uid at listen()
            server.listen(1)
            os.write(ready_w, b"listening")
            server.settimeout(20)
            server.accept()
        finally:
            os._exit(0)
    os.close(ready_w)
    try:
        assert os.read(ready_r, 64) == b"listening"
        assert stage_runner._connect(path) is None
        assert "runs as uid 65534, not as you" in capsys.readouterr().err
    finally:
        os.close(ready_r)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


# --------------------------------------------------------------------------- issue 16 item 8


def test_runner_stop_signals_the_runner_alone_and_running_stages_finish(fake_runner, tmp_path):
    runner_pid = fake_runner.start()
    pidfile, gate = tmp_path / "stage.pid", tmp_path / "gate"
    caller = fake_runner.stage("wait", str(pidfile), str(gate), "7")
    stage = int(_wait_for_text(pidfile))
    assert stage != caller.pid and _parent_of(stage) == runner_pid  # a child of the runner
    assert fake_runner.stop() == "True"
    assert _gone_within(runner_pid, 10)
    assert not fake_runner.socket.exists() and not Path(f"{fake_runner.socket}.pid").exists()
    assert _alive(stage) and caller.poll() is None  # the stage goes on
    gate.touch()
    assert caller.wait(timeout=30) == 7, caller.stderr.read()  # and its caller gets its own status
    assert "stopped (SIGTERM); 1 running stage(s) left to finish" in fake_runner.log()
    assert fake_runner.stop() == "False"


def test_runner_stop_checks_the_pid_file_before_signalling(fake_runner, tmp_path):
    """A pid file naming another process (a reused pid, a stage child) is not signalled."""
    runner_pid = fake_runner.start()
    pidfile, gate = tmp_path / "stage.pid", tmp_path / "gate"
    caller = fake_runner.stage("wait", str(pidfile), str(gate), "0")
    stage = int(_wait_for_text(pidfile))
    Path(f"{fake_runner.socket}.pid").write_text(f"{stage}\n")  # same command line, but no lock
    assert fake_runner.api("print(r._runner_pid(r.socket_path()))") == "None"
    Path(f"{fake_runner.socket}.pid").write_text(f"{runner_pid}\n")
    assert fake_runner.api("print(r._runner_pid(r.socket_path()))") == str(runner_pid)
    gate.touch()
    assert caller.wait(timeout=30) == 0


# --------------------------------------------------------------------------- issue 16 item 9


@pytest.mark.parametrize("how", ["SIGKILL of the caller's group", "SIGTERM to the caller"])
def test_a_killed_caller_ends_the_processes_its_stage_started(fake_runner, tmp_path, how):
    fake_runner.start()
    pidfile = tmp_path / "pids"
    caller = fake_runner.stage("spawn", str(pidfile), start_new_session=True)
    stage, grandchild = map(int, _wait_for_text(pidfile).split())
    assert os.getpgid(stage) == stage and os.getpgid(grandchild) == stage  # the stage leads its own group
    if how.startswith("SIGKILL"):
        os.killpg(caller.pid, signal.SIGKILL)
    else:
        caller.send_signal(signal.SIGTERM)  # forwarded to the stage's group
    caller.wait(timeout=30)
    assert _gone_within(grandchild, 5), f"the stage's own process {grandchild} outlived its caller"
    assert _gone_within(stage, 5)


# --------------------------------------------------------------------------- issue 16 item 14


def test_a_bad_idle_setting_warns_once_and_uses_the_default(monkeypatch, capsys):
    for bad in ("abc", "-5", "nan", "inf"):
        monkeypatch.setattr(stage_runner, "_idle_warned", False)
        monkeypatch.setenv("LABFLOW_RUNNER_IDLE_S", bad)
        assert stage_runner.idle_timeout_s() == 60
        assert stage_runner.idle_timeout_s() == 60
        err = capsys.readouterr().err
        assert err.count(f"labflow: warning: LABFLOW_RUNNER_IDLE_S={bad} is not a number of seconds") == 1
        assert "the stage runner uses the default 60 s" in err
    monkeypatch.setenv("LABFLOW_RUNNER_IDLE_S", "2.5")
    assert stage_runner.idle_timeout_s() == 2.5 and capsys.readouterr().err == ""


def test_with_a_bad_idle_setting_the_runner_still_starts(bare_python, short_runtime, tmp_path):
    """It used to crash in the background (float('abc')), silently leaving every stage cold."""
    runner = FakeRunner(*bare_python, short_runtime, LABFLOW_RUNNER_IDLE_S="abc")
    try:
        first = runner.stage("touch", str(tmp_path / "one"))
        _out, err = first.communicate(timeout=60)
        assert first.returncode == 0
        assert err.count("LABFLOW_RUNNER_IDLE_S=abc is not a number of seconds") == 1, err
        deadline = time.monotonic() + 60
        while not runner.socket.exists():
            assert time.monotonic() < deadline, runner.log()
            time.sleep(0.05)
        second = runner.stage("touch", str(tmp_path / "two"))
        assert second.wait(timeout=60) == 0
        assert int((tmp_path / "two").read_text()) != second.pid  # served by the runner
    finally:
        runner.stop()


# --------------------------------------------------------------------------- CUDA and fork
#
# CUDA does not survive fork: the runner must never initialise it, and each stage child must be
# where the GPU is first asked for. No GPU here, so torch is told it has one: a sitecustomize on
# PYTHONPATH (loaded by every process of the test, the runner included) makes
# torch.cuda.is_available() answer True and log which process asked, and its parent.

FAKE_CUDA_SITE = '''"""Test stand-in: torch sees one CUDA GPU; who asks is logged (what, pid, parent pid)."""
import os

import torch


def _available():
    with open(os.environ["FAKE_CUDA_LOG"], "a") as log:
        log.write(f"is_available {os.getpid()} {os.getppid()}\\n")
    return True


torch.cuda.is_available = _available
if os.environ.get("FAKE_CUDA_INITIALISED"):  # as if a warm-up import had initialised CUDA
    torch.cuda.is_initialized = lambda: True
'''


def _gpu_repo_and_env(tmp_path: Path, runtime: Path, **extra) -> tuple[Path, dict]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(FAKE_CUDA_SITE)
    repo = copy_repo(tmp_path / "repo", profile="smoke")
    params = read_params(repo)
    params["device"] = "cuda"  # preflight asks torch for it: the first CUDA call of a pipeline
    write_params(repo, params)
    env = _env(runtime, PYTHONPATH=str(site), FAKE_CUDA_LOG=str(tmp_path / "cuda.log"),
               LABFLOW_TIMINGS=str(tmp_path / "timings.jsonl"), **extra)
    return repo, env


def _runner_log(runtime: Path) -> str:
    log = runtime / f"labflow-runner-{os.getuid()}" / "runner.log"
    return log.read_text() if log.exists() else ""


@pytest.mark.slow
def test_with_a_gpu_cuda_is_first_asked_for_in_the_stage_child_never_in_the_runner(tmp_path, short_runtime):
    repo, env = _gpu_repo_and_env(tmp_path, short_runtime)
    subprocess.run([sys.executable, "-m", "labflow.cli", "runner", "start"], env=env, check=True, capture_output=True)
    sock = _socket(env)
    deadline = time.monotonic() + 180
    while not sock.exists():
        assert time.monotonic() < deadline, _runner_log(short_runtime)
        time.sleep(0.2)
    try:
        runner_pid = int(Path(f"{sock}.pid").read_text())
        proc = _stage(repo, env, "stages/preflight.py")
        assert proc.returncode == 0, proc.stderr
        (child,) = _pids(tmp_path / "timings.jsonl")
        asked = {(int(pid), int(parent)) for _, pid, parent in
                 (line.split() for line in (tmp_path / "cuda.log").read_text().splitlines())}
        assert asked == {(child, runner_pid)}  # the runner's child asked; the runner never did
    finally:
        subprocess.run([sys.executable, "-m", "labflow.cli", "runner", "stop"], env=env, capture_output=True, timeout=60)


@pytest.mark.slow
def test_a_runner_whose_warm_up_initialised_cuda_steps_aside(tmp_path, short_runtime):
    repo, env = _gpu_repo_and_env(tmp_path, short_runtime, FAKE_CUDA_INITIALISED="1")
    subprocess.run([sys.executable, "-m", "labflow.cli", "runner", "start"], env=env, check=True, capture_output=True)
    deadline = time.monotonic() + 180
    while "runner not started" not in _runner_log(short_runtime):
        assert time.monotonic() < deadline, _runner_log(short_runtime)
        time.sleep(0.2)
    assert "torch initialised CUDA during warm-up" in _runner_log(short_runtime)
    assert not _socket(env).exists()
    caller = subprocess.Popen([sys.executable, "stages/preflight.py"], cwd=repo, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = caller.communicate(timeout=300)
    assert caller.returncode == 0, err
    assert _pids(tmp_path / "timings.jsonl") == [caller.pid]  # in its own process, where CUDA works
