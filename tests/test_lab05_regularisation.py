"""Lab 05: what is special about it: the L1 term, the weight statistics, identical starts,
and preprocessing fitted on the training split only."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from labflow.data import datasets as ds
from labflow.data.manifest import write_manifest
from labflow.labs.lab05_regularisation import lab
from labflow.prep.tables import prepare_table_classification, stratified_split_indices
from labflow.nets.common import seeded


def test_l1_penalty_is_the_sum_of_absolute_weights_not_biases():
    model = lab.build_model(3, [4], 2, dropout=0.0)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(-0.5)
    # weights: 3*4 + 4*2 = 20 entries of |-0.5|; the 6 biases do not count
    assert lab.l1_penalty(model).item() == pytest.approx(10.0)
    lab.l1_penalty(model).backward()
    first = model[1]
    assert torch.equal(first.weight.grad, -torch.ones_like(first.weight)) and first.bias.grad is None


def test_l1_loss_adds_lambda_times_penalty():
    model = lab.build_model(3, [4], 2, dropout=0.0)
    x, y = torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 1])
    plain = F.cross_entropy(model(x), y)
    lam = 5e-4
    assert (plain + lam * lab.l1_penalty(model)).item() == pytest.approx(plain.item() + lam * sum(
        m.weight.abs().sum().item() for m in model if isinstance(m, torch.nn.Linear)))


def test_weight_stats_near_zero_share_and_norms():
    model = lab.build_model(2, [2], 2, dropout=0.0)
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[0.0, 0.005], [0.3, -0.4]]))
        model[3].weight.copy_(torch.tensor([[0.001, 1.0], [-0.02, 0.0]]))
    s = lab.weight_stats(model, near_zero=0.01)
    assert s["near_zero_share"] == pytest.approx(4 / 8)
    w = np.array([0, 0.005, 0.3, -0.4, 0.001, 1.0, -0.02, 0])
    assert s["weight_l2"] == pytest.approx(np.linalg.norm(w), rel=1e-6)
    assert s["weight_l1"] == pytest.approx(np.abs(w).sum(), rel=1e-6)


def test_every_variant_starts_from_the_same_weights():
    plain = seeded(lambda: lab.build_model(7, [64], 2, dropout=0.0), 42)
    dropout = seeded(lambda: lab.build_model(7, [64], 2, dropout=0.3), 42)
    linear = lambda m: [t for t in m.state_dict().values()]  # noqa: E731
    assert len(linear(plain)) == len(linear(dropout))
    assert all(torch.equal(a, b) for a, b in zip(linear(plain), linear(dropout)))
    assert any(isinstance(m, torch.nn.Dropout) for m in dropout.modules())


def test_stratified_split_keeps_the_class_rate():
    y = np.r_[np.zeros(970, int), np.ones(30, int)]
    train, val, test = stratified_split_indices(y, 0.2, 0.2, seed=0)
    assert sorted(np.r_[train, val, test].tolist()) == list(range(1000))
    assert [int(y[i].sum()) for i in (train, val, test)] == [18, 6, 6]
    again = stratified_split_indices(y, 0.2, 0.2, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))


def test_preprocessing_is_fitted_on_the_training_split_only(tmp_path, monkeypatch):
    """Imputation, scaling and encoding see training rows only: extreme val/test rows change nothing."""
    rng = np.random.default_rng(0)
    n = 200
    df = pd.DataFrame({"pclass": rng.choice(["1st", "2nd", "3rd"], n), "age": rng.uniform(1, 60, n),
                       "survived": np.r_[np.zeros(120, int), np.ones(80, int)]})
    df.loc[::7, "age"] = np.nan
    raw = tmp_path / "raw" / "titanic"
    raw.mkdir(parents=True)
    write_manifest(raw, ds._save_table(raw, df, "survived", classes=["died", "survived"]))
    monkeypatch.setattr("labflow.frame.paths.raw_dir", lambda name: tmp_path / "raw" / name)
    monkeypatch.setattr("labflow.frame.paths.processed_dir", lambda lab_id: tmp_path / "processed" / lab_id)

    class Split:
        train_size, val_fraction, test_fraction = None, 0.2, 0.2

    meta = prepare_table_classification("lab05", "titanic", Split, seed=1)
    data = torch.load(tmp_path / "processed" / "lab05" / "tensors.pt")
    age = meta["feature_names"].index("age")
    train_idx, val_idx, _ = stratified_split_indices(df["survived"].to_numpy(), 0.2, 0.2, seed=1)
    train_age = df["age"].to_numpy()[train_idx]
    filled = np.where(np.isnan(train_age), np.nanmedian(train_age), train_age)
    expected = (filled - filled.mean()) / filled.std()
    assert np.allclose(data["x_train"][:, age].numpy(), expected, atol=1e-5)
    # A missing validation age gets the training median, scaled with the training mean and std.
    val_age = df["age"].to_numpy()[val_idx]
    missing = np.flatnonzero(np.isnan(val_age))
    assert len(missing) and np.allclose(data["x_val"][missing, age].numpy(),
                                        (np.nanmedian(train_age) - filled.mean()) / filled.std(), atol=1e-5)
    assert meta["class_counts"]["train"] == [72, 48] and meta["classes"] == ["died", "survived"]
    assert json.loads((tmp_path / "processed" / "lab05" / "meta.json").read_text())["sizes"]["val"] == 40
