"""MLflow runs: one child run per trained variant, one parent run per lab comparison.

Train stages are separate processes and run before the comparison exists, so each
variant logs its own run live (params, per-epoch metrics, model, figures). The
evaluate stage then opens the comparison's parent run, nests under it
(``mlflow.parentRunId``) the variant runs that no earlier comparison holds, and links
every run it compared in its note (see :func:`nest_unclaimed`): retraining one variant never
takes the other variants' runs away from the comparisons that already show them.
A stage that raises ends its run FAILED; one stopped by SIGTERM, SIGINT or SIGHUP ends it
KILLED. Every run is tagged with the host and process that opened it, so a run whose process
died outright (SIGKILL, power loss) is marked KILLED by the next ``preflight`` on that host (or
resumed by the next attempt), and the UI never shows a dead run as RUNNING for long.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from labflow.tracking.store import (
    SQLITE_BUSY_TIMEOUT_S,
    artifact_root,
    check_tracking,
    experiment_name,
    is_server,
    set_http_retry_defaults,
    sqlite_path,
    tracking_uri,
)
from labflow.tracking.tags import HOST_TAG, owner_alive, owner_tags


def _mlflow():
    import mlflow  # imported lazily: ~2 s, and only stages that log need it

    return mlflow


def _flatten(params: Mapping, prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return flat


def ensure_experiment(name: str) -> str:
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    from mlflow.exceptions import MlflowException

    try:
        # A server stores artifacts where it was told to (--artifacts-destination); locally, mlruns/.
        location = None if is_server(tracking_uri()) else f"{artifact_root()}/{name}"
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # another stage (a parallel queued experiment) created it first
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def connect(timeout_s: float = 5.0) -> str:
    """Point MLflow at our store after checking it answers; returns the URI."""
    uri = tracking_uri()
    check_tracking(uri, timeout_s)
    if is_server(uri):
        set_http_retry_defaults()
    _mlflow().set_tracking_uri(uri)
    if sqlite_path(uri) is not None:
        _create_sqlite_store_once(sqlite_path(uri), uri)
    return uri


def _create_sqlite_store_once(db: Path, uri: str) -> None:
    """Create a new SQLite store under a file lock, and make sure it runs in WAL mode.

    MLflow creates its tables on first use; two stages doing that at once (``dvc queue
    start -j 2`` on a fresh clone) break the schema migration ("expected to match one
    row ... in 'alembic_version'"). The first process creates it, the others wait and then
    find it made (decided again under the lock). WAL is set on every connect, not only by the
    creator: a store made by plain MLflow (``labflow ui`` before any stage) is switched too.
    """
    if not _is_new_store(db):
        use_wal(db)
        return
    import fcntl

    with open(db.parent / f".{db.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_new_store(db):  # not made by another stage while we waited for the lock
            _mlflow().MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
        use_wal(db)


def _is_new_store(db: Path) -> bool:
    return not db.exists() or db.stat().st_size == 0


def use_wal(db: Path) -> None:
    """Write-ahead logging: readers (the UI, a comparison) never block a writer, and writers
    queue on the busy timeout instead of failing. Persistent in the file, so every later
    connection (MLflow's included) uses it; a no-op read when it is already on."""
    import sqlite3

    con = sqlite3.connect(db, timeout=SQLITE_BUSY_TIMEOUT_S)
    try:
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()


class Run:
    """A thin handle on one MLflow run, so labs never import mlflow themselves."""

    def __init__(self, run_id: str, experiment_id: str | None = None) -> None:
        self.run_id = run_id
        self.experiment_id = experiment_id
        self._client = _mlflow().MlflowClient()

    def log_params(self, params: Mapping) -> None:
        flat = _flatten(params)
        existing = self._client.get_run(self.run_id).data.params
        fresh = {k: v for k, v in flat.items() if k not in existing}
        if fresh:
            from mlflow.entities import Param

            items = [Param(k, v[:6000]) for k, v in fresh.items()]
            for i in range(0, len(items), 100):
                self._client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None,
                    dataset: tuple[str, str] | None = None, model_id: str | None = None) -> None:
        """``dataset``: (name, digest) of the MLflow dataset the metrics were measured on;
        ``model_id``: the LoggedModel they describe."""
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        name, digest = dataset or (None, None)
        items = [
            Metric(k, float(v), now, step or 0, model_id=model_id, dataset_name=name, dataset_digest=digest)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and v == v  # skip NaN
        ]
        if items:
            self._client.log_batch(self.run_id, metrics=items)

    def log_metric_rows(self, rows: list[tuple[int, Mapping[str, float]]]) -> None:
        """Several steps' metrics in one write: [(step, {name: value}), ...]."""
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(k, float(v), now, step)
            for step, metrics in rows
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and v == v  # skip NaN
        ]
        for i in range(0, len(items), 1000):  # MLflow's limit per batch
            self._client.log_batch(self.run_id, metrics=items[i : i + 1000])

    def last_step(self, key: str) -> int:
        """The highest step logged for ``key`` (0 if none)."""
        return max((m.step for m in self._client.get_metric_history(self.run_id, key)), default=0)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        for k, v in tags.items():
            self._client.set_tag(self.run_id, k, str(v))

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self._client.log_artifact(self.run_id, str(path), artifact_path)

    def log_text(self, text: str, name: str) -> None:
        self._client.log_text(self.run_id, text, name)

    def log_inputs(self, datasets: list) -> None:
        """MLflow datasets the run read (:mod:`labflow.tracking.lineage`); a resumed run's repeats are no-ops."""
        if datasets:
            self._client.log_inputs(self.run_id, datasets=datasets)

    def log_model(self, model, *, input_example=None, no_example_reason: str = "", step: int = 0,
                  registered_model_name: str | None = None) -> LoggedModel:
        """Log an MLflow 3 model (a LoggedModel on the *Models* tab) and link it the run's metrics
        at ``step``.

        With an input example (a batch of 2 for a dynamic batch size) that ``torch.export`` can
        trace: the ``pt2`` format (a graph, loaded without unpickling code), with a signature.
        Else pickle, with the signature and example when there is one, and the reason in the
        run's tag ``labflow.model_format_reason``. Requirements are given, not inferred (slow).
        """
        mlflow = _mlflow()
        import logging

        import mlflow.pytorch
        import torch

        fmt, reason = "pickle", f"no input example: {no_example_reason or 'none given'}"
        example = None
        if input_example is not None:
            example = input_example.detach().cpu()
            reason = export_problem(model, example)
            fmt = "pickle" if reason else "pt2"
        # Pickle is chosen only where pt2 cannot be: its warning would only repeat that.
        logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
        torch_req = f"torch=={torch.__version__.split('+')[0]}"
        with _active(self.run_id):
            info = mlflow.pytorch.log_model(
                model,
                name="model",
                serialization_format=fmt,
                input_example=example.numpy() if example is not None else None,
                pip_requirements=[torch_req],
                registered_model_name=registered_model_name,
                step=step,
            )
        self.set_tags({"labflow.model_format": fmt, "labflow.model_id": info.model_id,
                       **({"labflow.model_format_reason": reason} if reason else {})})
        return LoggedModel(info.model_id, info.model_uri, fmt, reason,
                           str(info.registered_model_version) if info.registered_model_version else None)


@dataclass(frozen=True)
class LoggedModel:
    model_id: str
    uri: str  # models:/<model_id>
    format: str  # "pt2" or "pickle"
    reason: str  # why not pt2 ("" when pt2)
    version: str | None  # its version in the registry, when registered


def export_problem(model, example) -> str:
    """Why ``torch.export`` cannot trace ``model`` on ``example`` with a dynamic batch size ("" if it can).

    The same call MLflow makes for ``pt2``, run first so a model that cannot be exported is logged
    as pickle at once, not left as a FAILED LoggedModel beside it."""
    import torch

    try:
        torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim.AUTO},))
    except Exception as error:  # noqa: BLE001 - any tracing failure means "not exportable"
        first = (str(error).strip().splitlines() or [""])[0]
        return f"torch.export: {type(error).__name__}: {first[:160]}"
    return ""


def set_alias(name: str, alias: str, version: str) -> None:
    """Point a registered model's alias (``champion``) at a version; MLflow 3 has aliases, not stages."""
    _mlflow().MlflowClient().set_registered_model_alias(name, alias, version)


@contextlib.contextmanager
def _active(run_id: str) -> Iterator[None]:
    """Make ``run_id`` the fluent API's active run for one call, without ending it."""
    mlflow = _mlflow()
    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        yield
        return
    mlflow.start_run(run_id=run_id)
    try:
        yield
    finally:
        # Leave the run's status alone: the owner ends it.
        from mlflow.tracking.fluent import _active_run_stack

        _active_run_stack.get().pop()


@contextlib.contextmanager
def open_run(
    *,
    prefix: str,
    lab: str,
    run_name: str,
    tags: Mapping[str, str],
    resume_run_id: str | None = None,
    stale_run_id: str | None = None,
    system_metrics: bool = False,
) -> Iterator[Run]:
    """Start (or resume) a run; end it FINISHED, FAILED if the body raises, KILLED on a signal.

    While the run is open, SIGTERM/SIGINT/SIGHUP raise :class:`RunInterrupted` (see
    :func:`_interrupt_on_signals`), so the run is ended KILLED instead of left RUNNING.
    ``system_metrics``: MLflow's monitor samples CPU, memory, disk, network (and GPU, with
    ``nvidia-ml-py`` installed) while the run is open; a resumed run continues its steps.
    """
    mlflow = _mlflow()
    client = mlflow.MlflowClient()
    exp_id = ensure_experiment(experiment_name(prefix, lab))
    tags = {**tags, **owner_tags()}
    run_id = None
    if resume_run_id:
        try:
            old = client.get_run(resume_run_id)
            if old.info.experiment_id == exp_id:
                run_id = resume_run_id
                client.update_run(run_id, status="RUNNING")
        except Exception:
            run_id = None
    if stale_run_id and stale_run_id != run_id:
        with contextlib.suppress(Exception):
            if client.get_run(stale_run_id).info.status == "RUNNING":
                client.set_terminated(stale_run_id, status="KILLED")
    if run_id is None:
        run_id = client.create_run(exp_id, run_name=run_name, tags=tags).info.run_id
    else:
        for k, v in tags.items():
            client.set_tag(run_id, k, v)
    monitor = _start_system_metrics(run_id, resumed=run_id == resume_run_id) if system_metrics else None
    status = "FAILED"
    try:
        with _interrupt_on_signals():
            yield Run(run_id, exp_id)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if monitor is not None:
            monitor.finish()
        client.set_terminated(run_id, status=status)


SYSTEM_METRICS_INTERVAL_S = 2.0  # quick-profile stages last seconds to minutes


def _start_system_metrics(run_id: str, *, resumed: bool):
    import logging

    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # no "started/stopped" lines per run
    monitor = SystemMetricsMonitor(run_id, sampling_interval=SYSTEM_METRICS_INTERVAL_S, samples_before_logging=1,
                                   resume_logging=resumed)
    monitor.start()
    return monitor


class RunInterrupted(KeyboardInterrupt):
    """A signal stopped the process while it had a run open (the run is ended KILLED)."""

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(self.name)


_ENDING_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP")


@contextlib.contextmanager
def _interrupt_on_signals() -> Iterator[None]:
    """Raise :class:`RunInterrupted` on SIGTERM/SIGINT/SIGHUP for the block; restore the old handlers after.

    By default SIGTERM and SIGHUP (CI cancel, ``timeout``, ``kill``, a closed terminal) end a
    process without unwinding it, so ``open_run``'s ``finally`` would never end the run.
    Handlers can be set only in the main thread: elsewhere nothing changes. A signal the
    process ignores stays ignored. A process forked inside the block (a DataLoader worker)
    keeps the old behaviour: only the process that opened the run raises.
    """
    import os
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()
    previous: dict[int, Any] = {}

    def interrupt(signum, frame):
        if os.getpid() == owner:
            raise RunInterrupted(signum)
        _as_before(signum, frame, previous[signum])

    for name in _ENDING_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        old = signal.getsignal(signum)
        if old is None or old == signal.SIG_IGN:  # set outside Python, or ignored on purpose
            continue
        previous[signum] = old
        signal.signal(signum, interrupt)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _as_before(signum: int, frame, old) -> None:
    """What the process did on ``signum`` before the run opened: call its handler, or die of it."""
    import os
    import signal

    if callable(old):
        old(signum, frame)
        return
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def close_dead_runs(prefix: str) -> tuple[int, int]:
    """Mark KILLED the RUNNING runs that a process of this host left behind when it died.

    Looks at the experiments ``<prefix>-*`` only, and only at RUNNING runs (a filter the store
    answers). A run is dead when the host tag is this host and its process is gone (or its pid
    now belongs to a process started later). Runs of other hosts, or opened before runs were
    tagged with their owner, are left alone. Returns (runs closed, RUNNING runs of other hosts).
    """
    import socket

    uri = tracking_uri()
    db = sqlite_path(uri)
    if db is not None and not _sqlite_has_running_runs(db):
        return 0, 0
    if is_server(uri):
        set_http_retry_defaults()
    client = _mlflow().MlflowClient(tracking_uri=uri)
    exp_ids = [exp.experiment_id for exp in _all_pages(client.search_experiments)
               if exp.name.startswith(f"{prefix}-")]
    if not exp_ids:
        return 0, 0
    host = socket.gethostname()
    closed = elsewhere = 0
    running = _all_pages(client.search_runs, exp_ids, filter_string="attributes.status = 'RUNNING'")
    for run in running:
        tags = run.data.tags
        owner_host = tags.get(HOST_TAG)
        if owner_host is None:
            continue
        if owner_host != host:
            elsewhere += 1
        elif not owner_alive(tags) and _terminated(client, run.info.run_id):
            closed += 1
    return closed, elsewhere


def _terminated(client, run_id: str) -> bool:
    """End a dead run KILLED; False where the server does not let us (another user's run)."""
    from mlflow.exceptions import MlflowException

    try:
        client.set_terminated(run_id, status="KILLED")
    except MlflowException:
        return False
    return True


def _all_pages(search, *args, **kwargs) -> list:
    found, token = [], None
    while True:
        page = search(*args, max_results=1000, page_token=token, **kwargs)
        found.extend(page)
        token = page.token
        if not token:
            return found


def _sqlite_has_running_runs(db: Path) -> bool:
    """One SQL read, so ``preflight`` imports MLflow (~2 s) only when some run is RUNNING.

    False for a store not created yet (nothing to close, and nothing is created here); True
    when the file cannot be read this way (MLflow then answers).
    """
    import sqlite3

    if _is_new_store(db):
        return False
    try:
        con = sqlite3.connect(db, timeout=10)
        try:
            return con.execute("SELECT 1 FROM runs WHERE status = 'RUNNING' LIMIT 1").fetchone() is not None
        finally:
            con.close()
    except sqlite3.Error:
        return True


def nest_unclaimed(parent_id: str, child_ids: list[str]) -> tuple[list[str], list[str]]:
    """Nest under the comparison the variant runs no comparison holds yet; returns (compared, nested).

    A run is nested once, under the first comparison that compares it: a later comparison that
    reuses it (only another variant was retrained) links it in its note instead of taking it, so
    every comparison run keeps showing exactly the runs it compared. A run whose parent was
    deleted is taken. ``compared``: the ids found in this store. A variant's ``run.json`` comes
    with its DVC outputs, so it may name a run of another tracking store (outputs pulled from a
    DVC remote, a fresh MLflow store): such a run is skipped with a note instead of failing.
    """
    from mlflow.exceptions import MlflowException

    client = _mlflow().MlflowClient()
    compared, nested = [], []
    for child in child_ids:
        try:
            run = client.get_run(child)
        except MlflowException:
            print(f"[labflow] run {child} is not in this tracking store (trained with another store?): not nested")
            continue
        compared.append(child)
        parent = run.data.tags.get("mlflow.parentRunId")
        if parent and parent != parent_id and _exists(client, parent):
            continue
        client.set_tag(child, "mlflow.parentRunId", parent_id)
        nested.append(child)
    return compared, nested


def _exists(client, run_id: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException:
        return False


def run_info(run_id: str) -> dict[str, Any]:
    run = _mlflow().MlflowClient().get_run(run_id)
    return {"status": run.info.status, "tags": run.data.tags, "experiment_id": run.info.experiment_id}
