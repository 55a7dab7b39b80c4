"""Lab 07: the CNN, the patience replay, the best checkpoint, the user-folder data set,
the model registry, and (slow) a real SIGKILL of `dvc repro` followed by a resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from labflow.frame.config import ImageFolderSource, parse_params
from labflow.data import DataError, load_images, verify_manifest
from labflow.data.folder import fetch_folder
from labflow.labs.lab07_early_stopping import lab as lab07
from labflow.train import BestCheckpoint, Callback, EarlyStopping, TensorBatches, fit
from labflow.train.callbacks import load_weights

from conftest import REPO, copy_repo


# --------------------------------------------------------------------------- model and replay


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64), (3, 33, 17)])
def test_small_cnn_takes_any_image_size(shape):
    model = lab07.small_cnn(shape, [8, 16], 32, 2)
    assert model(torch.zeros(5, *shape)).shape == (5, 2)


def test_patience_sweep_replays_early_stopping():
    curve = [1.0, 0.8, 0.85, 0.7, 0.75, 0.76, 0.9, 0.95]
    rows = {r["patience"]: r for r in lab07.patience_sweep(curve, [1, 2, 3, 10])}
    assert (rows[1]["stop_epoch"], rows[1]["best_epoch"]) == (3, 2)  # stops at the first bump, misses epoch 4
    assert (rows[2]["stop_epoch"], rows[2]["best_epoch"]) == (6, 4)
    assert (rows[3]["stop_epoch"], rows[3]["best_epoch"]) == (7, 4)
    assert rows[10] == {"patience": 10, "stop_epoch": 8, "best_epoch": 4, "best_val_loss": 0.7, "stopped_early": 0}


def _toy_fit(tmp_path, epochs, val_losses, callbacks):
    """A fit whose val_loss follows a script, so the best epoch is known in advance."""
    model = torch.nn.Linear(2, 1)
    batches = TensorBatches(torch.randn(8, 2), torch.randn(8, 1), batch_size=4, seed=0)
    scripted = iter(val_losses)
    return fit(model, torch.optim.SGD(model.parameters(), lr=0.1), batches,
               lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]), epochs=epochs,
               evaluate=lambda m: {"val_loss": next(scripted)}, callbacks=callbacks, progress=False)


def test_best_checkpoint_keeps_the_best_epochs_weights(tmp_path):
    best = BestCheckpoint(tmp_path / "best.pt")
    snapshots = []

    class Snap(Callback):
        name = "snap"

        def on_epoch_end(self, state):
            snapshots.append({k: v.clone() for k, v in state.model.state_dict().items()})

    result = _toy_fit(tmp_path, 5, [0.9, 0.5, 0.7, 0.4, 0.6], [best, Snap()])
    saved = torch.load(tmp_path / "best.pt", weights_only=False)
    assert saved["epoch"] == 4 and saved["value"] == 0.4 and result.extras["best_checkpoint_epoch"] == 4
    for key, value in saved["model"].items():
        assert torch.equal(value, snapshots[3][key])
    assert best.state_dict() == {"best": 0.4, "best_epoch": 4}


def test_early_stopping_with_restore_ends_on_the_best_weights(tmp_path):
    best = BestCheckpoint(tmp_path / "best.pt")
    result = _toy_fit(tmp_path, 10, [0.9, 0.5, 0.7, 0.6, 0.8, 0.1], [best, EarlyStopping(patience=3, restore_best=True)])
    assert result.epochs_run == 5 and result.stopped_early and result.extras["best_epoch"] == 2


# --------------------------------------------------------------------------- user folder data set


def _image_folder(root: Path, per_class: dict[str, int]) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, n in per_class.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            size = (int(rng.integers(20, 60)), int(rng.integers(20, 60)))  # varied, non-square
            img = Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8))
            img.save(root / cls / f"{i}.{'png' if i % 2 else 'jpg'}")
    return root


def test_folder_loader_builds_a_stratified_rgb_image_set(tmp_path):
    root = _image_folder(tmp_path / "pets", {"cat": 10, "dog": 6})
    (root / "cat" / "broken.jpg").write_bytes(b"not a jpeg")  # Kaggle's set has a few of these
    (root / "dog" / "notes.txt").write_text("ignored: not an image")
    src = ImageFolderSource(folder=str(root), image_size=16, test_fraction=0.25)
    manifest = fetch_folder("cats_vs_dogs", "full", src, tmp_path / "raw")
    assert manifest["skipped_unreadable"] == ["cat/broken.jpg"]
    data = load_images(tmp_path / "raw")
    assert data.classes == ["cat", "dog"]
    assert data.x_train.dtype == np.uint8 and data.x_train.shape[1:] == (16, 16, 3)
    assert len(data.y_train) + len(data.y_test) == 16
    assert np.bincount(data.y_test).tolist() == [round(10 * 0.25), round(6 * 0.25)]  # stratified
    again = fetch_folder("cats_vs_dogs", "full", src, tmp_path / "raw2")
    assert again["files"] == manifest["files"]  # deterministic split and resize


@pytest.mark.parametrize(
    "folder, message",
    [
        (None, "data.cats_vs_dogs.folder is not set"),
        ("nowhere", "is not a folder"),
        ("only_cats", "dog' is missing"),
    ],
)
def test_folder_loader_names_the_params_key_and_the_layout(tmp_path, folder, message):
    _image_folder(tmp_path / "only_cats", {"cat": 3})
    src = ImageFolderSource(folder=str(tmp_path / folder) if folder else None)
    with pytest.raises(DataError, match=message) as info:
        fetch_folder("cats_vs_dogs", "full", src, tmp_path / "raw")
    assert "data.cats_vs_dogs.folder" in str(info.value) and "cat/, dog/" in str(info.value)
    assert not (tmp_path / "raw").exists()


@pytest.mark.parametrize("profile", ["smoke", "quick"])
def test_folder_data_set_is_a_valid_unused_marker_offline(tmp_path, profile):
    manifest = fetch_folder("cats_vs_dogs", profile, ImageFolderSource(), tmp_path / "raw")
    assert manifest["kind"] == "unavailable" and verify_manifest(tmp_path / "raw") == manifest
    with pytest.raises(DataError, match="holds no data"):
        load_images(tmp_path / "raw")


def test_profiles_pick_the_data_set(raw_params):
    assert parse_params({**raw_params, "profile": "quick"}).lab07.data.dataset == "fashion_mnist"
    assert parse_params({**raw_params, "profile": "smoke"}).lab07.data.dataset == "fashion_mnist"
    assert parse_params({**raw_params, "profile": "full"}).lab07.data.dataset == "cats_vs_dogs"


# --------------------------------------------------------------------------- registry


def _tiny_lab(tmp_path, monkeypatch, raw_params):
    """A repository root with smoke params and random processed data, for in-process training."""
    from labflow.frame.base import LabContext
    from labflow.prep.tensors import save_processed

    root = tmp_path / "repo"
    root.mkdir()
    params = {**raw_params, "profile": "smoke"}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.setenv("LABFLOW_ROOT", str(root))
    g = torch.Generator().manual_seed(0)
    tensors = {f"{x}_{s}": torch.randn(n, 1, 28, 28, generator=g) if x == "x" else torch.randint(0, 3, (n,), generator=g)
               for s, n in (("train", 48), ("val", 24), ("test", 24)) for x in ("x", "y")}
    save_processed(root / "data" / "processed" / "lab07", tensors,
                   {"classes": ["a", "b", "c"], "sizes": {"train": 48, "val": 24, "test": 24}})
    return root, LabContext("lab07", parse_params(params), progress=False)


def test_each_variant_is_a_version_of_one_registered_model_and_the_champion_is_chosen_on_validation(
        tmp_path, monkeypatch, raw_params, mlflow_store):
    import mlflow
    import mlflow.pytorch

    from labflow.prep.tensors import load_processed

    root, ctx = _tiny_lab(tmp_path, monkeypatch, raw_params)
    trained = {variant: lab07.train(ctx, variant) for variant in ctx.cfg.variants}
    result = trained["early_stopping"]
    client = mlflow.MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "checkpoints")}
    assert artifacts == {"checkpoints/best.pt"}
    assert client.get_run(result.run_id).info.status == "FINISHED"
    best = torch.load(root / "checkpoints" / "lab07" / "early_stopping" / "seed42" / "best.pt", weights_only=False)
    assert best["epoch"] == result.metrics["best_epoch"] == result.metrics["model_epoch"]
    # One registered model, a version per variant, each variant's name an alias of its version.
    name = lab07.registered_model_name(ctx)
    assert name == "labflow-lab07"
    versions = client.search_model_versions(f"name='{name}'")
    assert sorted(v.run_id for v in versions) == sorted(r.run_id for r in trained.values())
    for variant, r in trained.items():
        assert client.get_model_version_by_alias(name, variant).run_id == r.run_id
    # An MLflow 3 model: pt2 (no pickle), a signature, its final metrics linked with the test split.
    assert (result.model.format, result.model.reason) == ("pt2", "")
    logged = client.get_logged_model(result.model.model_id)
    assert logged.source_run_id == result.run_id
    assert mlflow.models.get_model_info(result.model.uri).signature is not None
    linked = {m.key: m for m in logged.metrics}
    assert linked["final_test_acc"].value == pytest.approx(result.metrics["test_acc"])
    assert linked["final_test_acc"].dataset_name == "lab07/test"
    # It loads back from the store and scores the test accuracy it was logged with.
    data, _ = load_processed(root / "data" / "processed" / "lab07")
    model = mlflow.pytorch.load_model(result.model.uri)
    with torch.no_grad():
        accuracy = (model(data["x_test"]).argmax(1) == data["y_test"]).float().mean().item()
    assert accuracy == pytest.approx(result.metrics["test_acc"], abs=1e-6)
    # test_scores reproduces the test metrics the train stage wrote, for the exported graph MLflow
    # loads back and for the module rebuilt from the DVC-tracked state dict (left in train mode).
    written = json.loads((ctx.results_dir("early_stopping") / "metrics.json").read_text())
    scores = lab07.test_scores(ctx, "early_stopping", model)
    assert set(scores) == {"test_loss", "test_acc"}
    assert scores == pytest.approx({k: written[k] for k in scores}, rel=1e-6)
    s = lab07._settings(ctx, "early_stopping")
    module = lab07.small_cnn((1, 28, 28), s["channels"], s["hidden"], 3)
    module.load_state_dict(load_weights(ctx.model_dir("early_stopping") / "model.pt")["state_dict"])
    assert lab07.test_scores(ctx, "early_stopping", module.train()) == {k: written[k] for k in scores}
    assert module.training
    # The champion: the lowest validation loss, never the test split's numbers.
    lab07.evaluate(ctx)
    expected = min(trained, key=lambda v: trained[v].metrics["val_loss"])
    assert client.get_model_version_by_alias(name, "champion").run_id == trained[expected].run_id
    # Registering again (a rerun) adds a version and moves the variant's alias to it.
    again = lab07.train(ctx, "early_stopping")
    assert len(client.search_model_versions(f"name='{name}'")) == 4
    assert client.get_model_version_by_alias(name, "early_stopping").run_id == again.run_id


# --------------------------------------------------------------------------- a real crash


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LABFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env["PYTHONPATH"] = str(REPO / "src")  # this checkout's code, whatever the venv's editable install points at
    return env


def _sh(repo, *cmd, check=True):
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=_env(), timeout=600)
    if check and proc.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def _checkpoint(path: Path) -> dict | None:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError):  # not written yet
        return None


def _rows_without_timing(path: Path) -> list[dict]:
    from labflow.tracking.dvc_files import read_rows

    return [{k: v for k, v in row.items() if k != "seconds"} for row in read_rows(path)]


TIMING = {"train_seconds"}
KILLED = "early_stopping"  # the variant with the most state to carry: optimizer, RNGs, early-stopping memory


def _crash_params(p):
    # Epochs long enough (~1 s) to kill mid-run; patience high enough that it cannot stop first.
    p["threads"] = 1
    p["lab07"]["profiles"]["smoke"] = {"data": {"train_size": 12000, "test_size": 500, "val_fraction": 0.1},
                                       "train": {"epochs": 6}}
    p["lab07"]["variants"] = {KILLED: {"patience": 10, "restore_best": True}}
    p["lab07"]["profiles"].pop("full", None)  # it overrides the variants removed above


@pytest.mark.slow
def test_a_killed_train_stage_resumes_from_its_checkpoint(tmp_path):
    import mlflow

    repo = copy_repo(tmp_path / "repo", profile="smoke", edit=_crash_params)
    stage = f"labs/lab07/dvc.yaml:train@{KILLED}-42"
    folder = repo / "results" / "lab07" / "variants" / KILLED / "seed42"
    ckpt = repo / "checkpoints" / "lab07" / KILLED / "seed42" / "last.pt"

    # 1. An uninterrupted run: the reference numbers.
    _sh(repo, "dvc", "repro", stage)
    reference = json.loads((folder / "metrics.json").read_text())
    reference_history = _rows_without_timing(folder / "history.csv")
    assert reference["stop_epoch"] == 6

    # 2. The same stage again, SIGKILLed (the whole process group: dvc and python) after a checkpoint.
    # In its own process (no stage runner): through the runner the caller's death would SIGTERM the
    # stage and end its run KILLED (tests/test_stage_runner.py); here nothing gets to end it.
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen(["dvc", "repro", "-f", "-s", stage], cwd=repo, env={**_env(), "LABFLOW_STAGE_RUNNER": "0"},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            state = _checkpoint(ckpt)
            if state and not state["complete"] and state["epoch"] >= 1:
                break
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    saved = _checkpoint(ckpt)
    assert saved and not saved["complete"] and 1 <= saved["epoch"] < 6, (tmp_path / "killed.log").read_text()
    killed_at = saved["epoch"]
    print(f"killed after epoch {killed_at}")
    assert not (folder / "metrics.json").exists()  # DVC removed the old outputs before running
    run_id = json.loads((ckpt.parent / "run.json").read_text())["run_id"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    assert client.get_run(run_id).info.status == "RUNNING"  # killed outright: nobody could end it

    # 3. `dvc repro` again: it continues from the saved epoch, in the same MLflow run.
    out = _sh(repo, "dvc", "repro", stage)
    text = out.stdout + out.stderr
    assert f"resumed from {ckpt} after epoch {killed_at}" in text
    resumed = json.loads((folder / "metrics.json").read_text())
    strip = lambda m: {k: v for k, v in m.items() if k not in TIMING}  # noqa: E731
    assert strip(resumed) == strip(reference)
    assert _rows_without_timing(folder / "history.csv") == reference_history
    assert json.loads((folder / "run.json").read_text())["run_id"] == run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    # Every epoch is in the run's metric history, before and after the crash.
    steps = {m.step for m in client.get_metric_history(run_id, "val_loss")}
    assert steps == set(range(1, 7))
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["complete"]
    assert client.get_model_version_by_alias("labflow-lab07", KILLED).run_id == run_id
