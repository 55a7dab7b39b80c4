"""The tracking layer: runs, tags, parent/child nesting, failure states, store checks."""

from __future__ import annotations

import json
import socket
import time

import mlflow
import pytest

from labflow.frame import atomic
from labflow.tracking import dvc_files, runs
from labflow.tracking.store import TrackingError, check_tracking, tracking_uri
from labflow.tracking.tags import run_tags, stable_hash


def test_default_store_is_sqlite_in_the_store_root(mlflow_store):
    assert tracking_uri() == f"sqlite:///{mlflow_store / 'mlflow.db'}?timeout=20"


def test_store_root_climbs_out_of_dvc_experiment_copies(monkeypatch, tmp_path):
    from labflow.frame import paths
    monkeypatch.delenv("LABFLOW_STORE_ROOT", raising=False)
    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpabc123"))
    assert paths.store_root() == tmp_path / "repo"


def test_env_overrides_tracking_uri(mlflow_store, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    assert tracking_uri() == "http://127.0.0.1:1"


def test_unreachable_server_fails_fast_with_a_fix():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connection refused
        started = time.monotonic()
        with pytest.raises(TrackingError) as info:
            check_tracking(f"http://127.0.0.1:{port}", timeout_s=2)
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "MLFLOW_TRACKING_URI" in message and "Nothing was trained" in message


def test_missing_store_folder_is_reported(tmp_path):
    with pytest.raises(TrackingError, match="does not exist"):
        check_tracking(f"sqlite:///{tmp_path / 'nope' / 'mlflow.db'}")


def _tags(variant=None, stage="train"):
    return run_tags(lab="lab99", stage=stage, params_hash=stable_hash({"a": 1}), data_hash="d" * 16, profile="smoke", variant=variant)


def test_parent_and_child_runs_with_tags(mlflow_store, monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "exp-test")
    runs.connect()
    child_ids = []
    for variant in ("a", "b"):
        with runs.open_run(prefix="t", lab="lab99", run_name=variant, tags=_tags(variant)) as run:
            run.log_params({"lr": 0.1, "nested": {"k": [1, 2]}})
            for epoch in (1, 2):
                run.log_metrics({"loss": 1.0 / epoch}, step=epoch)
            child_ids.append(run.run_id)
    with runs.open_run(prefix="t", lab="lab99", run_name="lab99 comparison", tags=_tags(stage="evaluate")) as parent:
        assert runs.nest_unclaimed(parent.run_id, child_ids) == (child_ids, child_ids)

    client = mlflow.MlflowClient()
    for child_id, variant in zip(child_ids, ("a", "b")):
        run = client.get_run(child_id)
        assert run.info.status == "FINISHED"
        tags = run.data.tags
        assert tags["mlflow.parentRunId"] == parent.run_id
        assert tags["labflow.variant"] == variant and tags["labflow.stage"] == "train"
        assert tags["dvc.exp_name"] == "exp-test"
        assert tags["labflow.params_hash"] == stable_hash({"a": 1}) and tags["labflow.data_hash"] == "d" * 16
        assert "git.commit" in tags and "git.dirty" in tags
        # MLflow's own context tags: the UI's Source, Version and User columns
        assert tags["mlflow.source.name"] == "stages/train.py" and tags["mlflow.source.type"] == "LOCAL"
        assert tags["mlflow.user"]
        if tags["git.commit"] != "none":
            assert tags["mlflow.source.git.commit"] == tags["git.commit"]
        assert run.data.params["nested.k"] == "[1, 2]"
        history = client.get_metric_history(child_id, "loss")
        assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.5)]
    exp = client.get_experiment_by_name("t-lab99")
    assert exp.artifact_location.startswith((mlflow_store / "mlruns").as_uri())


def test_a_raising_body_leaves_the_run_failed(mlflow_store):
    runs.connect()
    with pytest.raises(ValueError):
        with runs.open_run(prefix="t", lab="lab99", run_name="x", tags=_tags("x")) as run:
            raise ValueError("boom")
    assert runs.run_info(run.run_id)["status"] == "FAILED"


def test_a_killed_run_is_marked_killed_or_resumed(mlflow_store):
    runs.connect()
    client = mlflow.MlflowClient()
    exp_id = runs.ensure_experiment("t-lab99")
    dead = client.create_run(exp_id).info.run_id  # as if SIGKILLed: still RUNNING
    with runs.open_run(prefix="t", lab="lab99", run_name="x", tags=_tags("x"), stale_run_id=dead) as run:
        pass
    assert runs.run_info(dead)["status"] == "KILLED"
    assert run.run_id != dead

    crashed = client.create_run(exp_id).info.run_id
    with runs.open_run(prefix="t", lab="lab99", run_name="x", tags=_tags("x"), resume_run_id=crashed, stale_run_id=crashed) as run:
        pass
    assert run.run_id == crashed and runs.run_info(crashed)["status"] == "FINISHED"


def test_dvc_files_round_trip(tmp_path):
    dvc_files.write_metrics(tmp_path / "m.json", {"acc": 0.5, "bad": float("nan")})
    assert dvc_files.read_metrics(tmp_path / "m.json") == {"acc": 0.5, "bad": None}
    dvc_files.write_rows(tmp_path / "h.csv", [{"epoch": 1, "loss": 0.5}, {"epoch": 2, "loss": 0.25}])
    assert dvc_files.read_rows(tmp_path / "h.csv") == [{"epoch": 1.0, "loss": 0.5}, {"epoch": 2.0, "loss": 0.25}]
    assert not list(tmp_path.glob(".*tmp"))


def test_atomic_write_text_fsyncs_the_file_before_the_rename(tmp_path, monkeypatch):
    import os

    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (calls.append(("fsync", os.path.isdir(f"/proc/self/fd/{fd}"))), real_fsync(fd))[1])
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (calls.append(("replace", None)), real_replace(a, b))[1])
    dvc_files.write_metrics(tmp_path / "m.json", {"acc": 0.5})
    assert calls == [("fsync", False), ("replace", None), ("fsync", True)]  # data, rename, folder entry
    assert dvc_files.read_metrics(tmp_path / "m.json") == {"acc": 0.5}


@pytest.mark.parametrize("failing", ["write", "replace"])
def test_a_failed_atomic_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch, failing):
    path = tmp_path / "m.json"
    dvc_files.write_metrics(path, {"acc": 0.5})

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    if failing == "write":
        monkeypatch.setattr(atomic.os, "fsync", boom)  # the data did not reach the disk
    else:
        monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(OSError, match="No space"):
        dvc_files.write_metrics(path, {"acc": 0.9})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]
    assert dvc_files.read_metrics(path) == {"acc": 0.5}


class _State:
    """The part of labflow.train.loop.FitState the epoch logger reads."""

    def __init__(self, resumed_from=None):
        self.history, self.resumed_from = [], resumed_from


def _epochs(state, logger, first, last, seconds_each=0.0):
    for epoch in range(first, last + 1):
        state.history.append({"epoch": epoch, "train_loss": 1.0 / epoch, "val_acc": epoch / 10})
        time.sleep(seconds_each)
        logger.on_epoch_end(state)


def test_epoch_logger_batches_fast_epochs_but_logs_each_one(mlflow_store, monkeypatch):
    from labflow.tracking.callbacks import MlflowEpochLogger

    runs.connect()
    writes = []
    with runs.open_run(prefix="t", lab="lab99", run_name="x", tags=_tags("x")) as run:
        original = run.log_metric_rows
        monkeypatch.setattr(run, "log_metric_rows", lambda rows: (writes.append([s for s, _ in rows]), original(rows)))
        logger, state = MlflowEpochLogger(run, min_interval_s=0.2), _State()
        _epochs(state, logger, 1, 5)  # fast: nothing written yet
        assert writes == []
        _epochs(state, logger, 6, 7, seconds_each=0.25)  # slow epochs: written as they end
        logger.on_fit_end(state)
    assert writes == [[1, 2, 3, 4, 5, 6], [7]]
    history = mlflow.MlflowClient().get_metric_history(run.run_id, "val_acc")
    assert sorted((m.step, m.value) for m in history) == [(e, e / 10) for e in range(1, 8)]


def test_epoch_logger_after_a_resume_logs_what_the_killed_process_had_not(mlflow_store):
    from labflow.tracking.callbacks import MlflowEpochLogger

    runs.connect()
    with runs.open_run(prefix="t", lab="lab99", run_name="x", tags=_tags("x")) as run:
        first = MlflowEpochLogger(run, min_interval_s=60)
        state = _State()
        _epochs(state, first, 1, 2)
        first.on_fit_end(state)  # epochs 1-2 logged
        state.history.append({"epoch": 3, "train_loss": 1 / 3, "val_acc": 0.3})  # checkpointed, then killed unlogged
        resumed = _State(resumed_from=3)
        resumed.history = list(state.history)
        second = MlflowEpochLogger(run, min_interval_s=60)
        _epochs(resumed, second, 4, 5)
        second.on_fit_end(resumed)
    steps = [m.step for m in mlflow.MlflowClient().get_metric_history(run.run_id, "train_loss")]
    assert sorted(steps) == [1, 2, 3, 4, 5]


def test_nesting_skips_a_run_this_store_does_not_have(mlflow_store, capsys):
    runs.connect()
    with runs.open_run(prefix="t", lab="lab99", run_name="a", tags=_tags("a")) as child:
        pass
    with runs.open_run(prefix="t", lab="lab99", run_name="cmp", tags=_tags(stage="evaluate")) as parent:
        compared, nested = runs.nest_unclaimed(parent.run_id, [child.run_id, "0" * 32])
    assert compared == nested == [child.run_id]
    assert runs.run_info(child.run_id)["tags"]["mlflow.parentRunId"] == parent.run_id
    assert "not in this tracking store" in capsys.readouterr().out


def test_a_second_comparison_links_runs_an_earlier_one_holds_and_nests_only_new_ones(mlflow_store):
    """One variant retrained: the new comparison nests its new run; the old one keeps both of its own."""
    runs.connect()

    def train(variant):
        with runs.open_run(prefix="t", lab="lab99", run_name=variant, tags=_tags(variant)) as run:
            return run.run_id

    a1, b1 = train("a"), train("b")
    with runs.open_run(prefix="t", lab="lab99", run_name="cmp1", tags=_tags(stage="evaluate")) as first:
        assert runs.nest_unclaimed(first.run_id, [a1, b1]) == ([a1, b1], [a1, b1])
    a2 = train("a")  # only variant a retrained
    with runs.open_run(prefix="t", lab="lab99", run_name="cmp2", tags=_tags(stage="evaluate")) as second:
        assert runs.nest_unclaimed(second.run_id, [a2, b1]) == ([a2, b1], [a2])
        # the same comparison run again (a resumed evaluate) keeps what it holds
        assert runs.nest_unclaimed(second.run_id, [a2, b1]) == ([a2, b1], [a2])
    parent = {r: runs.run_info(r)["tags"]["mlflow.parentRunId"] for r in (a1, b1, a2)}
    assert parent == {a1: first.run_id, b1: first.run_id, a2: second.run_id}
    # a run whose comparison was deleted is taken by the next one
    mlflow.MlflowClient().delete_run(first.run_id)
    with runs.open_run(prefix="t", lab="lab99", run_name="cmp3", tags=_tags(stage="evaluate")) as third:
        assert runs.nest_unclaimed(third.run_id, [a2, b1]) == ([a2, b1], [b1])


def test_system_metrics_are_logged_only_when_asked(mlflow_store, monkeypatch):
    monkeypatch.setattr(runs, "SYSTEM_METRICS_INTERVAL_S", 0.2)
    runs.connect()
    with runs.open_run(prefix="t", lab="lab99", run_name="off", tags=_tags("a")) as off:
        time.sleep(0.6)
    with runs.open_run(prefix="t", lab="lab99", run_name="on", tags=_tags("a"), system_metrics=True) as on:
        time.sleep(0.6)
    client = mlflow.MlflowClient()
    assert not [k for k in client.get_run(off.run_id).data.metrics if k.startswith("system/")]
    logged = client.get_run(on.run_id).data.metrics
    assert "system/cpu_utilization_percentage" in logged and "system/system_memory_usage_megabytes" in logged
    # resumed: its samples continue after the first ones
    first_steps = [m.step for m in client.get_metric_history(on.run_id, "system/cpu_utilization_percentage")]
    with runs.open_run(prefix="t", lab="lab99", run_name="on", tags=_tags("a"), resume_run_id=on.run_id,
                       system_metrics=True):
        time.sleep(0.6)
    steps = [m.step for m in client.get_metric_history(on.run_id, "system/cpu_utilization_percentage")]
    assert len(steps) > len(first_steps) and min(set(steps) - set(first_steps)) > max(first_steps)


def test_concurrent_first_runs_create_one_sqlite_store(tmp_path):
    """`dvc queue start -j 2` on a fresh clone: two stages create the store at once."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | {"LABFLOW_STORE_ROOT": str(tmp_path)}
    code = ("from labflow.tracking import runs; runs.connect();"
            "import mlflow; mlflow.MlflowClient().create_run(runs.ensure_experiment('t-lab99'))")
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n".join(errors)[-3000:]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert len(client.search_runs([client.get_experiment_by_name("t-lab99").experiment_id])) == 3


def _journal_mode(db) -> str:
    import sqlite3

    con = sqlite3.connect(db)
    try:
        return con.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        con.close()


def test_a_store_made_by_plain_mlflow_is_in_wal_mode_once_a_stage_connects(mlflow_store):
    """`labflow ui` (plain `mlflow server`) made the store first: labflow's stages still get WAL."""
    db = mlflow_store / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments(max_results=1)
    assert _journal_mode(db) == "delete"  # what MLflow leaves
    runs.connect()
    assert _journal_mode(db) == "wal"


def test_a_store_another_stage_made_while_we_waited_for_the_lock_is_not_made_again(mlflow_store, monkeypatch):
    db = mlflow_store / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments(max_results=1)
    looks = iter([True])  # the first look (before the lock) still saw no store
    real = runs._is_new_store
    monkeypatch.setattr(runs, "_is_new_store", lambda path: next(looks, None) or real(path))
    monkeypatch.setattr(runs, "_mlflow", lambda: pytest.fail("the store was made again"))
    runs._create_sqlite_store_once(db, tracking_uri())
    assert _journal_mode(db) == "wal"


def test_the_busy_timeout_on_mlflows_own_sessions_is_what_the_readme_says(mlflow_store):
    from pathlib import Path

    import sqlalchemy
    from mlflow.tracking._tracking_service.utils import _get_store

    from labflow.tracking.store import SQLITE_BUSY_TIMEOUT_S

    runs.connect()
    store = _get_store()
    with store.ManagedSessionMaker() as session:  # a session as MLflow opens them to log
        in_effect_ms = session.execute(sqlalchemy.text("PRAGMA busy_timeout")).scalar()
    assert in_effect_ms == SQLITE_BUSY_TIMEOUT_S * 1000
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert f"{SQLITE_BUSY_TIMEOUT_S} s busy timeout" in readme


def _processed(root, lab="lab99", md5="0123456789abcdef0123456789abcdef.dir"):
    folder = root / "data" / "processed" / lab
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text('{"sizes": {"train": 90, "val": 10, "test": 20}}')
    if md5:
        (root / "labs" / lab).mkdir(parents=True)
        (root / "labs" / lab / "dvc.lock").write_text(
            f"schema: '2.0'\nstages:\n  preprocess:\n    cmd: x\n    outs:\n    - path: data/processed/{lab}\n"
            f"      hash: md5\n      md5: {md5}\n")
    return folder


def test_runs_log_their_splits_as_datasets_whose_digest_is_the_dvc_hash(mlflow_store, tmp_path):
    from labflow.tracking import lineage

    folder = _processed(tmp_path)
    runs.connect()
    train = lineage.split_inputs(folder, contexts=lineage.TRAIN_CONTEXTS, commit="c" * 40, fallback_digest="f" * 64,
                                 root=tmp_path)
    test = lineage.split_inputs(folder, contexts=lineage.TEST_CONTEXTS, commit="c" * 40, fallback_digest="f" * 64,
                                root=tmp_path)
    assert [(i.dataset.name, i.tags[0].value) for i in train] == [("lab99/train", "training"), ("lab99/val", "validation")]
    assert [(i.dataset.name, i.tags[0].value) for i in test] == [("lab99/test", "testing")]
    with runs.open_run(prefix="t", lab="lab99", run_name="a", tags=_tags("a")) as trained:
        trained.log_inputs(train)
        trained.log_inputs(train)  # a resumed run logs them again: no duplicates
    with runs.open_run(prefix="t", lab="lab99", run_name="other", tags=_tags("b")):
        pass
    run = mlflow.MlflowClient().get_run(trained.run_id)
    inputs = run.inputs.dataset_inputs
    assert sorted(i.dataset.name for i in inputs) == ["lab99/train", "lab99/val"]
    assert {i.dataset.digest for i in inputs} == {"0123456789abcdef0123456789abcdef.dir"}
    assert json.loads(inputs[0].dataset.source)["path"] == "data/processed/lab99"
    # every run that read this version of the data, found by its DVC hash
    found = mlflow.search_runs(search_all_experiments=True, output_format="list",
                               filter_string="datasets.digest = '0123456789abcdef0123456789abcdef.dir'")
    assert [r.info.run_id for r in found] == [trained.run_id]


def test_a_folder_no_dvc_lock_lists_falls_back_to_the_manifest_hash_and_says_so(tmp_path):
    from labflow.tracking import lineage

    folder = _processed(tmp_path, md5=None)
    assert lineage.dvc_hash(folder, tmp_path) is None
    [one] = lineage.split_inputs(folder, contexts=("testing",), commit="none", fallback_digest="e" * 64, root=tmp_path)
    assert one.dataset.digest == "e" * 36 and "manifest" in json.loads(one.dataset.source)["hash"]
