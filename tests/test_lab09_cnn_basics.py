"""Lab 09: the course's 16-32 CNN, lab 01's split copied exactly, lab 01's MLP read (not retrained)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from conftest import REPO, all_stages
from labflow.frame.config import parse_params
from labflow.data.download import DataError
from labflow.data.manifest import manifest_hash
from labflow.frame import base
from labflow.labs.lab09_cnn_basics import lab
from labflow.prep.tensors import load_processed, save_processed
from labflow.nets.common import count_parameters, mlp
from labflow.plots import feature_maps as fm


@pytest.fixture
def params(raw_params):
    return parse_params(raw_params | {"profile": "quick"})


def cnn_info(params, batch_norm=False):
    return lab.model_info(torch.zeros(2, 1, 28, 28), 10, params.lab09.train, batch_norm)


def test_the_model_is_the_courses_16_32_cnn(params):
    model = lab.build_model(cnn_info(params), seed=42)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (1, 16, (3, 3), (1, 1)), (16, 32, (3, 3), (1, 1))]
    assert [(l.in_features, l.out_features) for l in linears] == [(32 * 7 * 7, 128), (128, 10)]
    # conv 160 + conv 4,640 + fc 200,832 + fc 1,290: the course's ClassicCNN
    assert count_parameters(model) == 206_922
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_variants_start_from_the_same_weights(params):
    plain, bn = lab.build_model(cnn_info(params), 42), lab.build_model(cnn_info(params, batch_norm=True), 42)
    weights = lambda m: [l.weight for l in m.modules() if isinstance(l, (nn.Conv2d, nn.Linear))]  # noqa: E731
    assert all(torch.equal(p, q) for p, q in zip(weights(plain), weights(bn)))
    other = lab.build_model(cnn_info(params), 7)
    assert not torch.equal(lab.first_conv(plain).weight, lab.first_conv(other).weight)


def test_saved_model_round_trips_through_its_info(tmp_path, params):
    info = cnn_info(params, batch_norm=True)
    model = lab.build_model(info, 1)
    torch.save({"state_dict": model.state_dict(), "info": info}, tmp_path / "model.pt")
    loaded, loaded_info = lab.load_model(tmp_path / "model.pt", lab.cnn_from_info)
    assert loaded_info == info and not loaded.training
    x = torch.randn(4, 1, 28, 28)
    assert torch.equal(loaded(x), model.eval()(x))


def test_baseline_mlp_is_rebuilt_from_lab01s_model_info(tmp_path):
    # lab01 saves {"kind": "mlp", "in", "out", "hidden", "dropout", ...} beside its state dict.
    info = {"kind": "mlp", "in": 784, "out": 10, "hidden": [512, 256], "dropout": 0.2, "lr": 0.001}
    model = mlp(784, [512, 256], 10, dropout=0.2)
    torch.save({"state_dict": model.state_dict(), "info": info}, tmp_path / "model.pt")
    loaded, _ = lab.load_model(tmp_path / "model.pt", lab.baseline_from_info)
    assert count_parameters(loaded) == 535_818  # 784-512-256-10
    with pytest.raises(ValueError, match="expected an mlp"):
        lab.baseline_from_info({"kind": "course_cnn"})


def test_conv_activations_are_each_blocks_relu_output(params):
    model = lab.build_model(cnn_info(params), 0)
    maps = lab.conv_activations(model, torch.randn(2, 1, 28, 28))
    assert {k: tuple(v.shape) for k, v in maps.items()} == {"conv1": (2, 16, 28, 28), "conv2": (2, 32, 14, 14)}
    assert all((v >= 0).all() for v in maps.values())
    assert model.training  # left as it was


def test_feature_map_samples_take_distinct_classes_in_test_order():
    y = torch.tensor([3, 3, 1, 3, 7, 1, 0])
    assert lab.feature_map_samples(y, 3) == [0, 2, 4]
    assert lab.feature_map_samples(y, 10) == [0, 2, 4, 6]


def test_per_class_accuracy_matches_sklearn():
    from sklearn.metrics import confusion_matrix, recall_score

    rng = np.random.default_rng(0)
    y, pred = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    cm = confusion_matrix(y, pred, labels=range(4))
    assert lab.per_class_accuracy(cm) == pytest.approx(recall_score(y, pred, average=None))
    assert lab.per_class_accuracy(np.zeros((2, 2), int)).tolist() == [0.0, 0.0]  # no division by zero


def test_check_same_split_allows_rounding_and_catches_another_split():
    lab.check_same_split(0.936, 0.9360001, 1000)
    with pytest.raises(DataError, match="no longer share their split"):
        lab.check_same_split(0.936, 0.940, 1000)


def test_relative_change_and_top_channels():
    before = np.ones((2, 3, 3))
    after = before.copy()
    after[1] *= 1.5
    assert fm.relative_change(before, after).tolist() == pytest.approx([0.0, 0.5])
    maps = np.zeros((2, 4, 5, 5))
    maps[:, 2] = 3.0
    maps[:, 0] = 1.0
    assert fm.top_channels(maps, 2).tolist() == [2, 0]


def test_figures_build(params):
    import matplotlib.pyplot as plt

    model = lab.build_model(cnn_info(params), 0)
    w = lab.first_conv(model).weight.detach()[:, 0].numpy()
    figs = [fm.filters_before_after(w, w * 2, title="t"),
            fm.feature_maps(np.zeros((2, 28, 28)), {k: v.numpy() for k, v in lab.conv_activations(model, torch.randn(2, 1, 28, 28)).items()},
                            per_layer=3, row_titles=["a", "b"])]
    assert len(figs[1].axes) == 2 * (1 + 3 + 3)
    with pytest.raises(ValueError):
        fm.filters_before_after(w, w[:3], title="t")
    for fig in figs:
        plt.close(fig)


# --------------------------------------------------------------------------- lab 01's split


def _fake_lab01(root, seed=0):
    g = torch.Generator().manual_seed(seed)
    tensors = {f"{p}_{s}": (torch.randn(n, 1, 28, 28, generator=g) if p == "x" else torch.randint(0, 10, (n,), generator=g))
               for s, n in (("train", 40), ("val", 10), ("test", 20)) for p in ("x", "y")}
    meta = {"dataset": "mnist", "classes": [str(i) for i in range(10)], "mean": [0.13], "std": [0.3],
            "sizes": {"train": 40, "val": 10, "test": 20}}
    save_processed(root / "data" / "processed" / "lab01", tensors, meta)
    return tensors


def test_preprocess_copies_lab01s_split_byte_for_byte(tmp_path, monkeypatch, params):
    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    original = _fake_lab01(tmp_path)
    ctx = base.LabContext("lab09", params, progress=False)
    (ctx.processed_dir / "stale.txt").parent.mkdir(parents=True)
    (ctx.processed_dir / "stale.txt").write_text("from an older run")
    meta = lab.preprocess(ctx)
    copied, _ = load_processed(ctx.processed_dir)
    assert set(copied) == set(original)
    assert all(torch.equal(copied[k], original[k]) for k in original)
    assert meta["sizes"] == {"train": 40, "val": 10, "test": 20}
    # Same files, same hashes: both labs' MLflow runs carry the same data hash.
    assert manifest_hash(ctx.processed_dir) == manifest_hash(tmp_path / "data" / "processed" / "lab01")
    assert not (ctx.processed_dir / "stale.txt").exists()
    assert json.loads((ctx.processed_dir / "manifest.json").read_text())["copied_from"] == "data/processed/lab01"


def test_preprocess_without_lab01_names_the_stage_to_run(tmp_path, monkeypatch, params):
    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    with pytest.raises(DataError, match="dvc repro labs/lab01/dvc.yaml:preprocess"):
        lab.preprocess(base.LabContext("lab09", params, progress=False))


def test_training_settings_match_lab01s_budget(raw_params):
    """Same optimizer lr, batch size and epochs as lab 01 in every profile (the batch order follows)."""
    for profile in ("smoke", "quick", "full"):
        p = parse_params(raw_params | {"profile": profile})
        assert (p.lab09.train.lr, p.lab09.train.batch_size, p.lab09.train.epochs) == (
            p.lab01.train.lr, p.lab01.train.batch_size, p.lab01.train.epochs), profile
        assert p.lab09.train.channels == (16, 32) and p.lab09.train.hidden == 128


def test_dvc_yaml_declares_lab01s_data_and_results_as_dependencies():
    stages = all_stages()
    assert "data/processed/lab01" in stages["labs/lab09/dvc.yaml:preprocess"]["deps"]
    deps = stages["labs/lab09/dvc.yaml:evaluate"]["deps"]
    run = f"{lab.BASELINE_VARIANT}/seed${{seed}}"  # lab 01's run with the primary seed
    for needed in (f"results/{lab.BASELINE_LAB}/variants/{run}/metrics.json",
                   f"results/{lab.BASELINE_LAB}/variants/{run}/history.csv",
                   f"models/{lab.BASELINE_LAB}/{run}/model.pt"):
        assert needed in deps
    # Lab 01 is read, never retrained by lab 09's stages.
    outs = [s.get("outs") or s.get("do", {}).get("outs", []) for name, s in stages.items() if name.startswith("labs/lab09/")]
    assert all(outs) and not any("lab01" in str(o) for o in outs)


def test_test_scores_are_what_the_train_stage_wrote(tmp_path, monkeypatch, raw_params, one_thread):
    params = {**raw_params, "profile": "smoke", "tracking": {**raw_params["tracking"], "enabled": False}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    g = torch.Generator().manual_seed(0)
    tensors = {f"{x}_{s}": torch.randn(n, 1, 28, 28, generator=g) if x == "x" else torch.randint(0, 3, (n,), generator=g)
               for s, n in (("train", 48), ("val", 24), ("test", 24)) for x in ("x", "y")}
    save_processed(tmp_path / "data" / "processed" / "lab09", tensors,
                   {"classes": ["a", "b", "c"], "mean": [0.0], "std": [1.0], "dataset": "toy"})
    ctx = base.LabContext("lab09", parse_params(params), progress=False)
    lab.train(ctx, "cnn")
    written = json.loads((ctx.results_dir("cnn") / "metrics.json").read_text())
    model, _ = lab.load_model(ctx.model_dir("cnn") / "model.pt", lab.cnn_from_info)
    scores = lab.test_scores(ctx, "cnn", model.train())
    assert set(scores) == {k for k in written if k.startswith("test_")} == {"test_loss", "test_acc"}
    assert scores == {k: written[k] for k in scores}
    assert model.training
