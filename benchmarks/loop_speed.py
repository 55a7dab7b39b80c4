"""How fast does labflow's training loop feed a model, against the course's way?

Two workloads, each trained for a fixed number of optimizer updates from the same
initial weights on the same MNIST-5k training images:

- ``b64``: lab 01's MLP (784-512-256-10, dropout 0.2, Adam 1e-3), batch 64;
- ``b1``:  lab 03's stochastic variant (784-128-64-10, SGD lr 0.005), batch 1.

Four ways of feeding the data are timed, interleaved, each ``--repeats`` times
(rates and ratios use the best run, the median is shown beside it):

- ``ours``: ``labflow.train.fit`` over ``TensorBatches`` of pre-normalised tensors;
- ``course``: a per-sample ``Dataset`` doing uint8 -> PIL -> ToTensor -> Normalize
  (what ``torchvision.datasets.MNIST(transform=...)`` does) behind a ``DataLoader``,
  with the course's plain loop (``running_loss += loss.item()`` every step);
- ``tensor_dataset``: ``DataLoader(TensorDataset(x, y))`` with the same plain loop;
- ``bare``: randperm + index in a bare loop, no logging: the floor.

Then the MLflow tracking overhead of lab 01's real ``train`` function (tracking
off, on without model logging, on with model logging), in a temporary copy of the
repository and a temporary MLflow store. Results go to the console and to
``benchmarks/results/loop_speed.json``.

    .venv/bin/python benchmarks/loop_speed.py [--updates-b64 N] [--updates-b1 N]
        [--threads N] [--repeats N] [--skip-tracking]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "src") not in sys.path:  # runs without `pip install -e .` too
    sys.path.insert(0, str(REPO / "src"))

from labflow.data import load_images  # noqa: E402
from labflow.nets.common import mlp, seeded  # noqa: E402
from labflow.train import TensorBatches, fit  # noqa: E402

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # the course's Normalize((0.1307,), (0.3081,))
SEED = 42
WAYS = ("ours", "course", "tensor_dataset", "bare")
GOALS = {"b64": 1.5, "b1": 3.0}  # ours/course speed-up wanted per workload
BARE_FLOOR = 0.9  # ours must reach this fraction of the bare loop's speed
RESULTS = REPO / "benchmarks" / "results" / "loop_speed.json"


# --------------------------------------------------------------------------- workloads and data


@dataclass(frozen=True)
class Workload:
    name: str
    label: str
    hidden: tuple[int, ...]
    dropout: float
    batch_size: int
    optimizer: str  # "adam" or "sgd"
    lr: float

    def model(self) -> torch.nn.Module:
        return seeded(lambda: mlp(28 * 28, self.hidden, 10, dropout=self.dropout), SEED)

    def make_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        if self.optimizer == "adam":
            return torch.optim.Adam(model.parameters(), lr=self.lr)
        return torch.optim.SGD(model.parameters(), lr=self.lr, momentum=0.0)


WORKLOADS = {
    "b64": Workload("b64", "lab01 MLP 784-512-256-10, Adam, batch 64", (512, 256), 0.2, 64, "adam", 1e-3),
    "b1": Workload("b1", "lab03 stochastic 784-128-64-10, SGD, batch 1", (128, 64), 0.0, 1, "sgd", 0.005),
}


@dataclass
class Data:
    """The same images in both forms: uint8 N×28×28 (course) and normalised float N×1×28×28."""

    x_uint8: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def head(self, n: int) -> Data:
        return Data(self.x_uint8[:n], self.x[:n], self.y[:n])


def load_data() -> Data:
    images = load_images(REPO / "data" / "raw" / "mnist")
    x_uint8 = torch.from_numpy(images.x_train.copy())
    # Exactly what ToTensor() + Normalize() compute, done once for the whole set.
    x = (x_uint8.float().div(255.0).sub(MNIST_MEAN).div(MNIST_STD)).unsqueeze(1).contiguous()
    return Data(x_uint8, x, torch.from_numpy(images.y_train.copy()).long())


def plan(updates: int, batch_size: int, n_available: int) -> tuple[int, int]:
    """(samples, epochs) so that whole epochs of full batches make exactly ``updates`` steps."""
    max_per_epoch = n_available // batch_size
    per_epoch = max(d for d in range(1, min(updates, max_per_epoch) + 1) if updates % d == 0)
    return per_epoch * batch_size, updates // per_epoch


# --------------------------------------------------------------------------- the ways


def loss_fn(model, batch):
    return F.cross_entropy(model(batch[0]), batch[1])


def way_ours(model, optimizer, data: Data, batch_size: int, epochs: int) -> int:
    batches = TensorBatches(data.x, data.y, batch_size=batch_size, seed=SEED)
    return fit(model, optimizer, batches, loss_fn, epochs=epochs, progress=False).updates


class CourseMNIST(Dataset):
    """torchvision.datasets.MNIST's __getitem__ over arrays already in memory."""

    def __init__(self, data: torch.Tensor, targets: torch.Tensor, transform) -> None:
        self.data, self.targets, self.transform = data, targets, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        img, target = self.data[index], int(self.targets[index])
        img = _image_fromarray(img.numpy())
        return self.transform(img), target


def _image_fromarray(array):
    try:  # what torchvision's MNIST calls (it handles Pillow's deprecation of mode=)
        from torchvision.utils import _Image_fromarray

        return _Image_fromarray(array, mode="L")
    except ImportError:
        from PIL import Image

        return Image.fromarray(array, mode="L")


def course_transform():
    from torchvision import transforms

    return transforms.Compose([transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))])


def plain_loop(model, optimizer, loader: DataLoader, epochs: int) -> int:
    """The course's loop: zero_grad, forward, loss, backward, step, running_loss += loss.item()."""
    updates = 0
    for _epoch in range(epochs):
        model.train()
        running_loss = 0.0
        for images, labels in loader:
            optimizer.zero_grad()
            outputs = model(images)
            loss = F.cross_entropy(outputs, labels)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
            updates += 1
    return updates


def way_course(model, optimizer, data: Data, batch_size: int, epochs: int) -> int:
    dataset = CourseMNIST(data.x_uint8, data.y, course_transform())
    return plain_loop(model, optimizer, DataLoader(dataset, batch_size=batch_size, shuffle=True), epochs)


def way_tensor_dataset(model, optimizer, data: Data, batch_size: int, epochs: int) -> int:
    loader = DataLoader(TensorDataset(data.x, data.y), batch_size=batch_size, shuffle=True)
    return plain_loop(model, optimizer, loader, epochs)


def way_bare(model, optimizer, data: Data, batch_size: int, epochs: int) -> int:
    model.train()
    n, updates = len(data), 0
    for _epoch in range(epochs):
        order = torch.randperm(n)
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(data.x[idx]), data.y[idx]).backward()
            optimizer.step()
            updates += 1
    return updates


WAY_FUNCS: dict[str, Callable[..., int]] = {
    "ours": way_ours,
    "course": way_course,
    "tensor_dataset": way_tensor_dataset,
    "bare": way_bare,
}


# --------------------------------------------------------------------------- timing


def time_way(way: str, wl: Workload, data: Data, epochs: int, expected_updates: int) -> float:
    """Seconds for one training run; model and optimizer are built outside the clock."""
    torch.manual_seed(SEED)  # the DataLoader's shuffle draws from the global generator
    model = wl.model()
    optimizer = wl.make_optimizer(model)
    started = time.perf_counter()
    updates = WAY_FUNCS[way](model, optimizer, data, wl.batch_size, epochs)
    seconds = time.perf_counter() - started
    if updates != expected_updates:
        raise RuntimeError(f"{wl.name}/{way} made {updates} updates, expected {expected_updates}")
    return seconds


def bench_workload(wl: Workload, data: Data, updates: int, repeats: int, warmup_updates: int) -> dict:
    n, epochs = plan(updates, wl.batch_size, len(data))
    subset = data.head(n)
    warm_n = min(n, warmup_updates * wl.batch_size)
    for way in WAYS:
        time_way(way, wl, data.head(warm_n), 1, warm_n // wl.batch_size)
    seconds: dict[str, list[float]] = {way: [] for way in WAYS}
    for rep in range(repeats):
        order = WAYS[rep % len(WAYS):] + WAYS[: rep % len(WAYS)]  # rotate so no way always goes first
        for way in order:
            seconds[way].append(time_way(way, wl, subset, epochs, updates))
    ways = {}
    for way, runs in seconds.items():
        # Rates from the best run: on a shared machine, noise only ever adds time.
        best = min(runs)
        ways[way] = {
            "seconds": runs,
            "median_s": statistics.median(runs),
            "best_s": best,
            "updates_per_s": updates / best,
            "samples_per_s": updates * wl.batch_size / best,
        }
    rate = {way: ways[way]["updates_per_s"] for way in WAYS}
    ratios = {f"ours/{other}": rate["ours"] / rate[other] for other in WAYS if other != "ours"}
    goals = {
        f"ours/course >= {GOALS[wl.name]}": ratios["ours/course"] >= GOALS[wl.name],
        f"ours/bare >= {BARE_FLOOR}": ratios["ours/bare"] >= BARE_FLOOR,
    }
    return {
        "workload": asdict(wl), "updates": updates, "samples": n, "epochs": epochs,
        "ways": ways, "ratios": ratios, "goals": goals,
    }


def profile_ours(wl: Workload, data: Data, updates: int, top: int = 14) -> str:
    """cProfile of one ``ours`` run: the top functions by own time, then labflow's own lines."""
    n, epochs = plan(updates, wl.batch_size, len(data))
    profiler = cProfile.Profile()
    profiler.enable()
    time_way("ours", wl, data.head(n), epochs, updates)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("tottime")
    stats.print_stats(top)
    stats.sort_stats("cumulative").print_stats(r"labflow|tqdm", 12)
    return out.getvalue()


# --------------------------------------------------------------------------- tracking overhead


TRACKING_CONFIGS = {
    "off": {"enabled": False},
    "on_no_models": {"enabled": True, "log_models": False},
    "on_models": {"enabled": True, "log_models": True},
}


def bench_tracking(repeats: int) -> dict:
    """Wall time of lab 01's train() with tracking off/on, in a temporary repo and store."""
    from labflow.frame.config import load_params
    from labflow.frame import base
    from labflow.labs.lab01_mlp import lab as lab01_mlp
    from labflow.tracking import runs

    tmp = Path(tempfile.mkdtemp(prefix="labflow-bench-"))
    root, store = tmp / "repo", tmp / "store"
    store.mkdir(parents=True)
    for name in ("params.yaml", "dvc.yaml"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name)
    # A copy, not a link: a concurrent `dvc repro` may rewrite the original.
    shutil.copytree(REPO / "data" / "processed" / "lab01", root / "data" / "processed" / "lab01")
    saved_env = {k: os.environ.get(k) for k in ("LABFLOW_ROOT", "LABFLOW_STORE_ROOT", "MLFLOW_TRACKING_URI")}
    os.environ["LABFLOW_ROOT"], os.environ["LABFLOW_STORE_ROOT"] = str(root), str(store)
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # never log benchmark runs to a team server

    # Time Run.log_model itself, to split the model-logging share from the rest.
    log_model_seconds: list[float] = []
    original_log_model = runs.Run.log_model

    def timed_log_model(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return original_log_model(self, *args, **kwargs)
        finally:
            log_model_seconds.append(time.perf_counter() - started)

    runs.Run.log_model = timed_log_model
    base_params = load_params(REPO / "params.yaml")

    def train_once(config: str) -> dict:
        for folder in ("checkpoints", "models", "results"):
            shutil.rmtree(root / folder, ignore_errors=True)
        tracking = base_params.tracking.model_copy(update=TRACKING_CONFIGS[config])
        ctx = base.LabContext("lab01", base_params.model_copy(update={"tracking": tracking}), progress=False)
        n_logged = len(log_model_seconds)
        started = time.perf_counter()
        result = lab01_mlp.train(ctx, "mlp")
        wall = time.perf_counter() - started
        return {
            "wall_s": wall,
            "train_s": result.fit.train_seconds,
            "log_model_s": sum(log_model_seconds[n_logged:]),
        }

    try:
        first = train_once("on_models")  # imports mlflow, creates the store (migrations): untimed
        samples: dict[str, list[dict]] = {c: [] for c in TRACKING_CONFIGS}
        configs = tuple(TRACKING_CONFIGS)
        for rep in range(repeats):
            for config in configs[rep % len(configs):] + configs[: rep % len(configs)]:
                samples[config].append(train_once(config))
        # Proof that the "on" runs really logged: one pickled model per on_models run.
        models_logged = sum(1 for _ in store.rglob("model.pth"))
    finally:
        runs.Run.log_model = original_log_model
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(tmp, ignore_errors=True)

    summary = {
        config: {
            "wall_s": statistics.median(r["wall_s"] for r in rows),
            "train_s": statistics.median(r["train_s"] for r in rows),
            "log_model_s": statistics.median(r["log_model_s"] for r in rows),
            "runs": rows,
        }
        for config, rows in samples.items()
    }
    off = summary["off"]["wall_s"]
    overhead_models = summary["on_models"]["wall_s"] - off
    overhead_plain = summary["on_no_models"]["wall_s"] - off
    return {
        "lab": "lab01/mlp", "profile": base_params.profile,
        "epochs": base_params.lab01.train.epochs,
        "first_run_s": first["wall_s"],
        "models_in_store": models_logged,
        "configs": summary,
        "overhead_s": {"on_models": overhead_models, "on_no_models": overhead_plain},
        "model_logging_s": summary["on_models"]["log_model_s"],
        "model_logging_share_of_overhead": (summary["on_models"]["log_model_s"] / overhead_models
                                            if overhead_models > 0 else None),
    }


# --------------------------------------------------------------------------- report


def print_table(results: dict) -> None:
    header = f"{'workload':<9}{'way':<16}{'samples/s':>12}{'updates/s':>12}{'median s':>10}{'best s':>9}"
    print(header)
    print("-" * len(header))
    for name, r in results.items():
        for way in WAYS:
            w = r["ways"][way]
            print(f"{name:<9}{way:<16}{w['samples_per_s']:>12,.0f}{w['updates_per_s']:>12,.0f}"
                  f"{w['median_s']:>10.3f}{w['best_s']:>9.3f}")
        ratios = "  ".join(f"{k} {v:.2f}x" for k, v in r["ratios"].items())
        print(f"{'':<9}ratios (speed): {ratios}")
        print("-" * len(header))


def print_tracking(t: dict) -> None:
    c = t["configs"]
    print(f"\nMLflow tracking overhead: {t['lab']} train() ({t['profile']} profile, {t['epochs']} epochs), "
          f"median wall time")
    print(f"  first run (imports mlflow, creates the store; not in the medians): {t['first_run_s']:.2f} s")
    for config in TRACKING_CONFIGS:
        print(f"  {config:<14}{c[config]['wall_s']:>7.2f} s   (training loop {c[config]['train_s']:.2f} s, "
              f"log_model {c[config]['log_model_s']:.2f} s)")
    o = t["overhead_s"]
    print(f"  overhead, tracking with models:    {o['on_models']:+.2f} s "
          f"({o['on_models'] / c['off']['wall_s']:+.0%})")
    print(f"  overhead, tracking without models: {o['on_no_models']:+.2f} s "
          f"({o['on_no_models'] / c['off']['wall_s']:+.0%})")
    share = t["model_logging_share_of_overhead"]
    share_text = f"{share:.0%} of the overhead" if share is not None else "overhead not positive"
    print(f"  model logging (Run.log_model): {t['model_logging_s']:.2f} s = {share_text}; "
          f"{t['models_in_store']} pickled models in the temporary store")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--updates-b64", type=int, default=500, help="optimizer updates, lab01 MLP at batch 64")
    ap.add_argument("--updates-b1", type=int, default=4000, help="optimizer updates, lab03 MLP at batch 1")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for every way")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per way (best and median reported)")
    ap.add_argument("--warmup", type=int, default=30, help="untimed warm-up updates per way")
    ap.add_argument("--skip-tracking", action="store_true", help="skip the MLflow overhead measurement")
    ap.add_argument("--output", type=Path, default=RESULTS, help="JSON results file")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as labflow's setup_torch does, for every way alike
    data = load_data()
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: 1-minute load average is {load:.2f} before starting: other processes compete "
              "for the CPUs and timings will be noisy (OpenMP threads suffer most)\n")
    print(f"labflow loop benchmark: torch {torch.__version__}, {args.threads} threads, "
          f"{os.cpu_count()} CPUs, {len(data)} MNIST-5k training images, {args.repeats} repeats (rates from the best run)\n")

    results = {}
    for name, updates in (("b64", args.updates_b64), ("b1", args.updates_b1)):
        wl = WORKLOADS[name]
        started = time.perf_counter()
        results[name] = bench_workload(wl, data, updates, args.repeats, args.warmup)
        r = results[name]
        print(f"[{name}] {wl.label}: {updates} updates = {r['epochs']} epochs x {r['samples']} samples "
              f"({time.perf_counter() - started:.0f} s)")
    print()
    print_table(results)

    failed = []
    for name, r in results.items():
        for goal, ok in r["goals"].items():
            value = r["ratios"][goal.split(" ")[0]]
            print(f"{'PASS' if ok else 'FAIL'}  {name}: {goal} (measured {value:.2f}x)")
            if not ok:
                failed.append(name)

    profiles = {}
    for name in dict.fromkeys(failed):
        print(f"\ncProfile of `ours` on {name} (a goal failed), top functions by own time:")
        profiles[name] = profile_ours(WORKLOADS[name], data, min(results[name]["updates"], 2000))
        print(profiles[name])

    tracking = None
    if not args.skip_tracking:
        tracking = bench_tracking(args.repeats)
        print_tracking(tracking)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "threads": args.threads, "platform": platform.platform(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "repeats": args.repeats,
        "load_average_1m": {"start": load, "end": os.getloadavg()[0]},
        "workloads": results,
        "goals_passed": not failed,
        "profiles": profiles,
        "tracking": tracking,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.output.relative_to(REPO) if args.output.is_relative_to(REPO) else args.output}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
