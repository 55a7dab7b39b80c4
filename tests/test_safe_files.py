"""Resume and saved files that cannot be turned against the run (issue 16, items 4, 11, 12):
model files and checkpoints load weights-only, a checkpoint of other code or other shapes is
not resumed (nor its MLflow run), and a half-written run.json does not break the next train."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch.nn import functional as F

from labflow.frame.config import parse_params
from labflow.frame import base
from labflow.frame.base import LabContext
from labflow.prep.tensors import save_processed
from labflow.nets.common import mlp, seeded
from labflow.train import TensorBatches, seed_everything
from labflow.train.callbacks import Callback, UnsafeFileError, load_weights
from conftest import read_params

REPO = Path(__file__).resolve().parents[1]


class _Payload:
    """A pickle that runs a shell command when unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Crash(Callback):
    def on_epoch_end(self, state):
        if state.epoch == 2:
            raise RuntimeError("simulated crash")


# --------------------------------------------------------------------------- a tiny lab01 in a tmp repo


@pytest.fixture
def repo(tmp_path, monkeypatch, raw_params, mlflow_store):
    """A repository whose labs/lab01/dvc.yaml gives the train stage one code dep, src/toy_model.py."""
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    params = {**raw_params, "profile": "smoke", "tracking": {**raw_params["tracking"], "log_models": False}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "src" / "toy_model.py").write_text("HIDDEN = 16\n")
    stage = {"cmd": "python stages/train.py lab01 ${item.variant}", "deps": ["src/toy_model.py", "data/processed/lab01"]}
    (root / "labs" / "lab01").mkdir(parents=True)
    (root / "labs" / "lab01" / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": stage}}))
    monkeypatch.setenv("LABFLOW_ROOT", str(root))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 8, generator=g)
    save_processed(root / "data" / "processed" / "lab01", {"x": x, "y": (x[:, 0] > 0).long()}, {})
    return root


def _train(repo, hidden=16, crash=False):
    ctx = LabContext("lab01", parse_params(read_params(repo)), progress=False)
    data = torch.load(repo / "data" / "processed" / "lab01" / "tensors.pt", weights_only=True)
    seed_everything(0)
    model = seeded(lambda: mlp(8, [hidden], 2), 0)

    def val_loss(m):
        with torch.no_grad():
            return {"val_loss": F.cross_entropy(m(data["x"]), data["y"]).item()}

    return base.train_variant(
        ctx, "mlp", model=model, optimizer=torch.optim.Adam(model.parameters(), lr=0.01),
        batches=TensorBatches(data["x"], data["y"], batch_size=32, seed=0),
        loss_fn=lambda m, b: F.cross_entropy(m(b[0]), b[1]), epochs=3, evaluate=val_loss,
        final_metrics=lambda m, _r: val_loss(m), callbacks=(_Crash(),) if crash else (),
    )


def _crash(repo) -> str:
    """Train until the simulated crash after epoch 2 (checkpoint after epoch 1); the run's id."""
    with pytest.raises(RuntimeError, match="simulated crash"):
        _train(repo, crash=True)
    return json.loads(_run_file(repo).read_text())["run_id"]


def _run_file(repo):
    return repo / "checkpoints" / "lab01" / "mlp" / "seed42" / "run.json"


def _labflow_lines(capsys) -> list[str]:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return [line for line in captured.out.splitlines() if line.startswith("[labflow]")]


@pytest.mark.parametrize("edit", [False, True], ids=["same code resumes", "edited code starts fresh"])
def test_a_checkpoint_of_other_code_is_not_resumed_nor_its_run(repo, capsys, edit):
    crashed_run = _crash(repo)
    if edit:
        (repo / "src" / "toy_model.py").write_text("HIDDEN = 16  # edited\n")
    capsys.readouterr()
    result = _train(repo)
    lines = _labflow_lines(capsys)
    if edit:
        assert result.fit.resumed_from is None and result.run_id != crashed_run
        assert len(lines) == 1 and "other params/data/code; starting fresh" in lines[0], lines
    else:
        assert result.fit.resumed_from == 1 and result.run_id == crashed_run, lines


def test_a_checkpoint_that_does_not_fit_the_model_starts_fresh_with_one_line(repo, capsys):
    crashed_run = _crash(repo)
    capsys.readouterr()
    result = _train(repo, hidden=32)  # the model changed and the code hash did not see it
    lines = _labflow_lines(capsys)
    assert len(lines) == 1, lines
    assert "does not fit the model" in lines[0] and "(16, 8) there, (32, 8) here" in lines[0]
    assert result.fit.resumed_from is None and result.fit.epochs_run == 3
    assert result.run_id != crashed_run  # the crashed run is not continued by other weights


@pytest.mark.parametrize("text", ['{"run_id": "ab', "", "[1, 2]\n", "\x00\x00\x00"])
def test_a_corrupt_run_json_does_not_break_the_next_train(repo, capsys, text):
    crashed_run = _crash(repo)
    _run_file(repo).write_text(text)  # killed mid-write, as the old in-place write could be
    capsys.readouterr()
    result = _train(repo)
    lines = _labflow_lines(capsys)
    assert sum("run.json" in line and "will not be resumed" in line for line in lines) == 1, lines
    assert result.fit.resumed_from == 1  # the checkpoint itself is fine
    assert result.run_id != crashed_run
    assert json.loads(_run_file(repo).read_text())["run_id"] == result.run_id
    assert not [p for p in _run_file(repo).parent.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- the code hash


def test_the_code_hash_covers_the_train_stage_code_deps_of_dvc_yaml():
    lab25 = base._train_stage_code_files(REPO, "lab25")
    assert REPO / "src/labflow/nets/transformer_mt.py" in lab25 and REPO / "stages/train.py" in lab25
    assert REPO / "src/labflow/train/loop.py" in lab25  # a folder dep: every *.py in it
    assert all(p.suffix == ".py" and "data" != p.relative_to(REPO).parts[0] for p in lab25)
    lab01 = base._train_stage_code_files(REPO, "lab01")
    assert REPO / "src/labflow/labs/lab01_mlp/lab.py" in lab01 and REPO / "src/labflow/nets/transformer_mt.py" not in lab01
    assert base.code_hash("lab01", REPO) != base.code_hash("lab25", REPO)
    assert base._train_stage_code_files(REPO, "lab11") is None  # no train stage: the whole package


def test_the_code_hash_follows_an_edit_of_a_dep(tmp_path):
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "a.py").write_text("A = 1\n")
    (tmp_path / "src" / "pkg" / "notes.txt").write_text("not code\n")
    pipeline = tmp_path / "labs" / "lab99" / "dvc.yaml"
    pipeline.parent.mkdir(parents=True)
    pipeline.write_text("stages:\n  train:\n    cmd: x\n    deps: [src/pkg, data/x]\n")
    before = base.code_hash("lab99", tmp_path)
    (tmp_path / "src" / "pkg" / "notes.txt").write_text("still not code\n")
    assert base.code_hash("lab99", tmp_path) == before
    (tmp_path / "src" / "pkg" / "a.py").write_text("A = 2\n")
    assert base.code_hash("lab99", tmp_path) != before
    pipeline.write_text("stages: [broken\n")
    assert base.code_hash("lab99", tmp_path) == base.code_hash("lab99", tmp_path / "nowhere")  # the fallback


# --------------------------------------------------------------------------- model files


def test_a_model_file_with_a_payload_is_refused_in_one_error_line(tmp_path, capsys, monkeypatch, raw_params):
    from labflow.frame import stages
    from labflow.labs.lab05_regularisation import lab as lab05
    from labflow.labs.lab15_rnn_sentiment import lab as lab15
    marker = tmp_path / "payload_ran"
    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    ctx = LabContext("lab05", parse_params({**raw_params, "profile": "smoke"}), progress=False)
    variant = next(iter(ctx.cfg.variants))
    for path in (tmp_path / "model.pt", ctx.model_dir(variant) / "model.pt"):
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": {}, "info": _Payload(marker)}, path)

    def evaluate_lab15():
        lab15.load_model(tmp_path / "model.pt")

    def evaluate_lab05():
        lab05._weights(ctx, variant)

    for evaluate in (evaluate_lab15, evaluate_lab05):
        assert stages.main(evaluate, [], "usage") == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("labflow: error: ") and "not a plain weights file" in err[0], err
        assert "posix.system" in err[0] or "os.system" in err[0]
    assert not marker.exists()


def test_a_saved_model_with_numpy_info_loads_weights_only(tmp_path):
    model = mlp(3, [4], 2)
    base._save_model(tmp_path / "model.pt", model, {"in": np.int64(3), "scale": np.float32(0.5), "hidden": [4]})
    saved = load_weights(tmp_path / "model.pt")
    assert saved["info"] == {"in": 3, "scale": 0.5, "hidden": [4]} and type(saved["info"]["in"]) is int
    with pytest.raises(UnsafeFileError):
        torch.save({"x": np.float64(1.0)}, tmp_path / "numpy.pt")
        load_weights(tmp_path / "numpy.pt")
