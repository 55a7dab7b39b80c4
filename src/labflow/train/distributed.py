"""Multi-process training with torch.distributed: the same loop, the same files, one MLflow run.

``torchrun --nproc_per_node=N`` (or params.yaml's ``distributed.processes: N``, which makes
the train stage relaunch itself under torchrun) starts N copies of a train stage. Each
copy calls :func:`init_from_env`, then :func:`labflow.train.fit` sees a process group and

- wraps the model in ``DistributedDataParallel`` (gloo on CPU, nccl on CUDA);
- gives every rank its slice ``batch[rank::world]`` of every *global* batch (all ranks draw
  the same batch order from the same seeded generator), and weights each rank's mean
  loss by its share of the batch, so DDP's gradient average is the gradient of the global
  batch's mean loss: the same update as one process, up to float rounding;
- lets rank 0 alone evaluate and broadcasts its epoch row, so early stopping and the best
  checkpoint decide the same on every rank;
- lets rank 0 alone write checkpoints (holding every rank's RNG state, so a resumed run
  continues each rank's dropout stream) while every rank resumes from that file.

:func:`labflow.frame.base.train_variant` keeps MLflow, the model file and the DVC files to
rank 0. With no process group nothing here runs: one process trains exactly as before.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import torch

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
# Long enough for rank 0 to open its MLflow run, log a model or write figures while the others wait.
TIMEOUT = timedelta(minutes=30)


class DistributedError(RuntimeError):
    """Multi-process training cannot run as asked; the message names the lab and the switch."""


def under_torchrun(environ: dict | None = None) -> bool:
    """True when this process was started by torchrun (its RANK/WORLD_SIZE/LOCAL_RANK are set)."""
    env = os.environ if environ is None else environ
    return all(key in env for key in TORCHRUN_ENV)


def active() -> bool:
    """A process group with more than one rank is running: fit trains distributed."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return _dist().get_rank() if active() else 0


def world_size() -> int:
    return _dist().get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0, or the only process: the one that logs and writes files."""
    return rank() == 0


def _dist():
    import torch.distributed as dist

    return dist


def choose_backend(backend: str, device: str) -> str:
    """``auto``: nccl when this run trains on CUDA, else gloo (CPU)."""
    if backend != "auto":
        return backend
    on_cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    return "nccl" if on_cuda else "gloo"


def init_from_env(backend: str = "auto", device: str = "auto") -> bool:
    """Join torchrun's process group (once); pins each rank to its GPU under nccl. False if not under torchrun."""
    if not under_torchrun():
        return False
    dist = _dist()
    if dist.is_initialized():
        return True
    chosen = choose_backend(backend, device)
    if chosen == "nccl":
        if not torch.cuda.is_available():
            raise DistributedError("distributed.backend: nccl needs CUDA GPUs; set backend: gloo (CPU) or auto")
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend=chosen, timeout=TIMEOUT)
    return True


def shutdown() -> None:
    dist = _dist()
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# --------------------------------------------------------------------------- relaunching a stage


def relaunch_command(script: str, argv: Sequence[str], processes: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
            script, *argv]


def relaunch(script: str, argv: Sequence[str], processes: int) -> int:
    """Run ``script argv`` under torchrun with ``processes`` ranks; returns torchrun's exit status.

    The ranks run their stage in their own process (no stage runner: torchrun must see its
    workers), one CPU thread each unless OMP_NUM_THREADS says otherwise (torchrun's default).
    torchrun must not outlive this stage: see :func:`run_until_done`.
    """
    env = {**os.environ, "LABFLOW_STAGE_RUNNER": "0"}
    print(f"[labflow] distributed.processes={processes}: relaunching under torchrun: "
          + " ".join(relaunch_command(script, argv, processes)[1:]), flush=True)
    return run_until_done(relaunch_command(script, argv, processes), env)


_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_STOP_GRACE_S = 30.0  # torchrun's own grace for its workers after SIGTERM


def run_until_done(cmd: list[str], env: dict) -> int:
    """Run ``cmd`` (torchrun) in its own session and take it down with this process.

    torchrun stops its workers (each in a session of its own) when it gets SIGTERM/SIGINT, not
    when it is SIGKILLed, and a SIGTERM to this stage (``dvc`` stopping it, ``kill``, the stage
    runner's caller dying) would otherwise leave it training. So: SIGINT/SIGTERM/SIGHUP here are
    forwarded to torchrun's group and this process waits for it, then takes the signal itself;
    an exception here stops torchrun; and the kernel sends torchrun SIGTERM if this process dies
    even by SIGKILL (Linux's parent-death signal).
    """
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=_parent_death_signal())
    received: list[int] = []

    def forward(signum, _frame):
        received.append(signum)
        _signal_group(proc.pid, signum)

    previous = _install_handlers(forward)
    try:
        return proc.wait()
    finally:
        if proc.poll() is None:
            _stop(proc)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if received:
            signal.raise_signal(received[0])  # as if it had come now: default dies, SIGINT raises KeyboardInterrupt


def _install_handlers(handler) -> dict:
    """Install ``handler`` for the forwarded signals (main thread only); returns the previous handlers."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for signum in _FORWARDED:
        previous[signum] = signal.signal(signum, handler)
    return previous


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except OSError:
        pass


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to torchrun's group (it stops its workers), SIGKILL if it is still there after the grace."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=_STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()


def _parent_death_signal():
    """A ``preexec_fn`` asking Linux to send the child SIGTERM when this process dies (None elsewhere)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def check_lab_supports(lab_id: str, module: Any, processes: int) -> None:
    """A lab whose module says ``DISTRIBUTED = False`` trains in one process; its
    ``DISTRIBUTED_WHY`` says why (DDP syncs gradients only for a forward through the wrapped model)."""
    if processes > 1 and not getattr(module, "DISTRIBUTED", True):
        why = getattr(module, "DISTRIBUTED_WHY", "its training step updates several optimizers itself, "
                                                 "which DistributedDataParallel does not cover")
        raise DistributedError(
            f"{lab_id} cannot train with several processes ({why}); set distributed.processes: 1 in "
            "params.yaml or run this stage without torchrun"
        )


# --------------------------------------------------------------------------- what fit uses


def wrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """DistributedDataParallel around ``model`` (on its device); rank 0's weights are broadcast to all."""
    from torch.nn.parallel import DistributedDataParallel

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if device.type == "cuda":
        return DistributedDataParallel(model, device_ids=[device.index if device.index is not None
                                                          else torch.cuda.current_device()])
    return DistributedDataParallel(model)


def shards(batches, rank_: int, world: int) -> Iterator[tuple[tuple[torch.Tensor, ...], float]]:
    """Each global batch's rows ``rank::world`` with this rank's loss weight ``world * rows / global rows``.

    The weight turns DDP's mean of the ranks' gradients into the gradient of the global batch's
    mean loss, also when the batch does not split evenly.
    """
    for batch in batches:
        total = len(batch[0])
        if total < world:
            raise DistributedError(
                f"a batch of {total} rows cannot be split over {world} processes; use a batch size "
                f"(and a last batch) of at least {world} rows, or fewer distributed.processes"
            )
        part = tuple(t[rank_::world] for t in batch)
        yield part, world * len(part[0]) / total


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over the ranks (a weighted per-rank loss becomes the global batch's loss)."""
    dist = _dist()
    reduced = value.detach().clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced / dist.get_world_size()


def from_main(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    box = [obj]
    _dist().broadcast_object_list(box, src=0)
    return box[0]


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every rank's ``obj``, in rank order, on rank 0 (None elsewhere)."""
    dist = _dist()
    out = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def barrier() -> None:
    if active():
        _dist().barrier()


def rank_rng_offset(rank_: int) -> None:
    """Give rank ``rank_`` (> 0) its own dropout/augmentation stream: rows in different shards
    must not share random masks, as they do not in one process. Rank 0 keeps its stream."""
    if rank_ == 0:
        return
    import random

    import numpy as np

    base = torch.initial_seed()
    seed = (base + 1_000_003 * rank_) % 2**63
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
