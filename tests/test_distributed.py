"""Multi-process training: the same fit under torchrun/DDP (gloo, 2 CPU processes) matches one process.

The loop-level tests spawn two ranks with torch.multiprocessing; the pipeline test runs lab 01's
train stage with params.yaml's ``distributed.processes: 2`` in a copied repository, so the stage
relaunches itself under torchrun, and checks the weights, the metrics and the MLflow store.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from torch.nn import functional as F

from labflow.frame.config import ConfigError, parse_params
from labflow.train import BestCheckpoint, Checkpoint, EarlyStopping, TensorBatches, distributed, fit

from conftest import copy_repo, read_params, write_params

ROWS, BATCH, EPOCHS = 61, 7, 4  # 9 batches a epoch, the last of 5 rows: uneven shards on 2 ranks


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(ROWS, 5, generator=g)
    y = (x[:, 0] - x[:, 1] > 0).long()
    return x, y


def _model():
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))


def _train(folder: Path, epochs: int, *, stop_after: int | None = None) -> dict:
    """Train the tiny model (Adam, early stopping, best checkpoint, checkpoint); rank 0's weights and history."""
    x, y = _data()
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    batches = TensorBatches(x, y, batch_size=BATCH, seed=1)

    def loss_fn(m, batch):
        return F.cross_entropy(m(batch[0]), batch[1])

    def evaluate(m):
        return {"val_loss": F.cross_entropy(m(x), y).item()}

    class Crash(EarlyStopping):  # a crash after an epoch's checkpoint, for the resume test
        def on_epoch_end(self, state):
            if stop_after is not None and state.epoch == stop_after + 1:
                raise KeyboardInterrupt

    result = fit(model, opt, batches, loss_fn, epochs=epochs, evaluate=evaluate, progress=False,
                 callbacks=[EarlyStopping(patience=50), BestCheckpoint(folder / "best.pt"), Crash(),
                            Checkpoint(folder / "last.pt", "fp")])
    return {"weights": {k: v.clone() for k, v in model.state_dict().items()}, "history": result.history,
            "resumed_from": result.resumed_from}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, folder: str, stop_after) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        try:
            out = _train(Path(folder), EPOCHS, stop_after=stop_after)
        except KeyboardInterrupt:
            return
        torch.save(out, Path(folder) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _spawn(folder: Path, stop_after=None) -> list[dict]:
    import torch.multiprocessing as mp

    mp.spawn(_rank, args=(2, _free_port(), str(folder), stop_after), nprocs=2, join=True)
    if stop_after is not None:
        return []
    return [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(2)]


def _max_diff(a: dict, b: dict) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_two_ranks_train_like_one_process_with_the_same_global_batch(tmp_path):
    single = _train(tmp_path / "single", EPOCHS)
    (tmp_path / "ddp").mkdir()
    ranks = _spawn(tmp_path / "ddp")
    # Every rank holds the same weights and the same history (rank 0's evaluation).
    assert _max_diff(ranks[0]["weights"], ranks[1]["weights"]) == 0.0
    assert ranks[0]["history"] == ranks[1]["history"]
    # The same updates as one process up to float rounding (each rank sums half the batch).
    assert _max_diff(ranks[0]["weights"], single["weights"]) < 1e-5
    for a, b in zip(ranks[0]["history"], single["history"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5)
        assert a["updates"] == b["updates"] == a["epoch"] * 9
    # Rank 0 alone wrote the files: one best and one last checkpoint, with both ranks' RNG streams.
    ckpt = torch.load(tmp_path / "ddp" / "last.pt", weights_only=False)
    assert ckpt["complete"] and len(ckpt["rng_per_rank"]) == 2
    assert _max_diff(ckpt["model"], ranks[0]["weights"]) == 0.0
    assert (tmp_path / "ddp" / "best.pt").exists()
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == ["best.pt", "last.pt", "rank0.pt", "rank1.pt"]


@pytest.mark.slow  # three two-rank runs: ~50 s on 2 busy cores
def test_a_killed_two_rank_run_resumes_from_rank_0s_checkpoint_on_both_ranks(tmp_path):
    (tmp_path / "whole").mkdir()
    (tmp_path / "resumed").mkdir()
    whole = _spawn(tmp_path / "whole")
    _spawn(tmp_path / "resumed", stop_after=2)  # dies during epoch 3's end, after epoch 2's checkpoint
    assert torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)["epoch"] == 2
    resumed = _spawn(tmp_path / "resumed")
    assert [r["resumed_from"] for r in resumed] == [2, 2]
    assert _max_diff(resumed[0]["weights"], whole[0]["weights"]) == 0.0
    assert _max_diff(resumed[1]["weights"], whole[0]["weights"]) == 0.0


def test_shards_weight_uneven_slices_to_the_global_mean():
    batch = (torch.arange(5.0),)
    parts = list(distributed.shards([batch], 0, 2)) + list(distributed.shards([batch], 1, 2))
    assert [p[0][0].tolist() for p in parts] == [[0.0, 2.0, 4.0], [1.0, 3.0]]
    # mean over ranks of weight * shard mean == global mean
    assert sum(w * p[0].mean() for p, w in parts) / 2 == pytest.approx(batch[0].mean())
    with pytest.raises(distributed.DistributedError, match="cannot be split over 2 processes"):
        list(distributed.shards([(torch.zeros(1),)], 0, 2))


def test_distributed_switch_is_validated(raw_params):
    assert parse_params(raw_params).distributed.processes == 1
    with pytest.raises(ConfigError, match="distributed.processes"):
        parse_params({**raw_params, "distributed": {"processes": 0}})
    with pytest.raises(ConfigError, match="distributed.procs"):
        parse_params({**raw_params, "distributed": {"procs": 2}})


def test_a_gan_lab_refuses_several_processes_naming_the_lab_and_the_switch():
    from labflow.labs import lab_module
    with pytest.raises(distributed.DistributedError, match=r"lab20 .*distributed.processes: 1"):
        distributed.check_lab_supports("lab20", lab_module("lab20"), 2)
    distributed.check_lab_supports("lab20", lab_module("lab20"), 1)
    distributed.check_lab_supports("lab01", lab_module("lab01"), 2)


# --------------------------------------------------------------------------- lab 01, the real stage


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LABFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(DVC_NO_ANALYTICS="1", LABFLOW_STAGE_RUNNER="0")
    return env


def _sh(repo: Path, *cmd: str) -> str:
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=_env(), timeout=900)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def _no_dropout(p: dict) -> None:
    # Dropout masks are drawn per rank, so with dropout the two runs differ as two seeds would;
    # without it the only difference is float rounding.
    p["lab01"]["train"]["dropout"] = 0.0


def _lab01_outputs(repo: Path) -> tuple[dict, dict]:
    weights = torch.load(repo / "models/lab01/mlp/seed42/model.pt", weights_only=False)["state_dict"]
    metrics = json.loads((repo / "results/lab01/variants/mlp/seed42/metrics.json").read_text())
    return weights, metrics


def _runs(repo: Path) -> list[tuple]:
    with sqlite3.connect(repo / "mlflow.db") as con:
        return con.execute("SELECT run_uuid, name, status FROM runs ORDER BY start_time").fetchall()


@pytest.mark.slow
def test_lab01_with_two_processes_matches_one_process_and_logs_one_run(tmp_path):
    repo = copy_repo(tmp_path / "repo", profile="smoke", edit=_no_dropout)
    _sh(repo, "dvc", "repro", "labs/lab01/dvc.yaml:train")
    single_w, single_m = _lab01_outputs(repo)
    before = _runs(repo)

    params = read_params(repo)
    params["distributed"] = {"processes": 2, "backend": "gloo"}
    write_params(repo, params)
    out = _sh(repo, "dvc", "repro", "labs/lab01/dvc.yaml:train")
    assert "relaunching under torchrun" in out, out[-3000:]
    ddp_w, ddp_m = _lab01_outputs(repo)

    diff = _max_diff(ddp_w, single_w)
    print(f"lab01 smoke, 2 gloo ranks vs 1 process: max |weight diff| {diff:.3g}; "
          + ", ".join(f"{k} {ddp_m[k]:.6g} vs {single_m[k]:.6g}" for k in ("test_acc", "test_loss", "val_acc", "val_loss")))
    assert diff < 1e-4
    assert ddp_m["updates"] == single_m["updates"]
    for key in ("test_acc", "val_acc"):
        assert ddp_m[key] == pytest.approx(single_m[key], abs=0.006)  # one image in 200 test / 60 val
    for key in ("test_loss", "val_loss"):
        assert ddp_m[key] == pytest.approx(single_m[key], abs=1e-4)

    after = _runs(repo)
    new = [r for r in after if r not in before and r[0] not in {b[0] for b in before}]
    assert len(new) == 1, after  # rank 1 opened no run
    run_id = json.loads((repo / "results/lab01/variants/mlp/seed42/run.json").read_text())["run_id"]
    assert new[0][0] == run_id and new[0][2] == "FINISHED"


@pytest.mark.parametrize("lab", ["lab13", "lab16", "lab25"])
def test_labs_whose_loss_bypasses_the_wrapped_model_refuse_several_processes_and_say_why(lab):
    """DDP averages gradients only after a forward through its wrapper: these labs would train
    each rank on its own gradients, silently. They stop before training instead."""
    from labflow.labs import lab_module
    with pytest.raises(distributed.DistributedError, match=rf"{lab} cannot train .*DistributedDataParallel.*processes: 1"):
        distributed.check_lab_supports(lab, lab_module(lab), 2)
    distributed.check_lab_supports(lab, lab_module(lab), 1)


# --------------------------------------------------------------------------- torchrun ends with its stage

RANK_THAT_WAITS = """import os, sys, time
open(sys.argv[1] + '.' + os.environ['RANK'], 'w').write(str(os.getpid()))
time.sleep(300)
"""

RELAUNCHER = "import sys\nfrom labflow.train import distributed\nsys.exit(distributed.relaunch(sys.argv[1], sys.argv[2:], 1))\n"


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[1])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_stage_takes_torchrun_and_its_ranks_with_it(tmp_path, signum):
    """dvc stopping a stage (SIGTERM), or a SIGKILL, must not leave torchrun training on.

    SIGTERM: the stage forwards it to torchrun, waits until torchrun stopped its ranks, then
    ends by the signal. SIGKILL: the kernel sends torchrun SIGTERM (parent-death signal)."""
    worker = tmp_path / "rank.py"
    worker.write_text(RANK_THAT_WAITS)
    pidfile = tmp_path / "rank.pid"
    env = {**_env(), "OMP_NUM_THREADS": "1"}
    stage = subprocess.Popen([sys.executable, "-c", RELAUNCHER, str(worker), str(pidfile)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    rank_file = Path(f"{pidfile}.0")
    deadline = time.monotonic() + 120
    while not (rank_file.exists() and rank_file.read_text()):
        assert stage.poll() is None, stage.stderr.read()
        assert time.monotonic() < deadline, "torchrun never started its rank"
        time.sleep(0.05)
    rank = int(rank_file.read_text())
    torchrun = _parent(rank)
    assert _parent(torchrun) == stage.pid
    stage.send_signal(signum)
    assert stage.wait(timeout=60) == -signum
    if signum == signal.SIGTERM:  # the stage ended only after torchrun had
        assert not _alive(torchrun) and not _alive(rank)
    deadline = time.monotonic() + 40  # torchrun gives its ranks up to 30 s after SIGTERM (they take less)
    while (_alive(torchrun) or _alive(rank)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(rank), "a rank outlived its stage"
    assert not _alive(torchrun), "torchrun outlived its stage"
