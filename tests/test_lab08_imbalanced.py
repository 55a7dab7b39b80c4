"""Lab 08: the weighted sampler and step batches (seeded, resumable), resampling of the
training split, metrics that agree with scikit-learn, and a threshold chosen on validation data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labflow.labs.lab08_imbalanced import lab
from labflow.train import StepBatches, TensorBatches, WeightedBatches, fit


def imbalanced(n=1000, positives=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.zeros(n, dtype=torch.long)
    y[torch.randperm(n, generator=g)[:positives]] = 1
    x = torch.randn(n, 3, generator=g) + y.unsqueeze(1).float()
    return x, y


def rows(batches):
    return [b[1].clone() for b in batches]


# --------------------------------------------------------------------------- batch sources


def test_weighted_batches_balance_the_classes():
    x, y = imbalanced()
    wb = WeightedBatches(x, y, weights=lab.balanced_weights(y), batch_size=64, seed=3)
    assert len(wb) == 16  # ceil(1000 / 64): one epoch = as many updates as one pass
    drawn = torch.cat([b[1] for _ in range(5) for b in wb])
    assert len(drawn) == 5000 and 0.45 < drawn.float().mean().item() < 0.55  # 4% -> ~50% positives
    assert all(len(b[0]) == len(b[1]) for b in wb)


def test_weighted_batches_are_seeded_and_resume_exactly():
    x, y = imbalanced()
    make = lambda: WeightedBatches(x, y, weights=lab.balanced_weights(y), batch_size=50, seed=7)  # noqa: E731
    a, b = make(), make()
    first = rows(a)
    assert all(torch.equal(u, v) for u, v in zip(first, rows(b)))
    state = a.state_dict()
    second = rows(a)
    c = make()
    c.load_state_dict(state)
    assert all(torch.equal(u, v) for u, v in zip(second, rows(c)))
    assert not all(torch.equal(u, v) for u, v in zip(first, second))  # a new draw each epoch


def test_weighted_batches_reject_bad_weights():
    x, y = imbalanced(10, 2)
    with pytest.raises(ValueError, match="weights"):
        WeightedBatches(x, y, weights=torch.zeros(10), batch_size=4)
    with pytest.raises(ValueError, match="9 weights for 10 rows"):
        WeightedBatches(x, y, weights=torch.ones(9), batch_size=4)


def test_step_batches_make_a_fixed_number_of_updates_and_cover_every_row():
    x = torch.arange(10).float().unsqueeze(1)
    sb = StepBatches(x, torch.arange(10), batch_size=4, steps=5, seed=0)
    assert len(sb) == 5
    epoch = rows(sb)  # 20 rows = two whole passes over 10 rows
    assert [len(r) for r in epoch] == [4] * 5
    seen = torch.cat(epoch)
    assert sorted(seen[:10].tolist()) == list(range(10)) and sorted(seen[10:].tolist()) == list(range(10))


def test_step_batches_resume_mid_pass():
    x = torch.arange(7).float().unsqueeze(1)
    make = lambda: StepBatches(x, torch.arange(7), batch_size=3, steps=2, seed=5)  # noqa: E731
    a = make()
    rows(a)
    state = a.state_dict()  # 6 of 7 rows of the first pass used
    expected = rows(a)
    b = make()
    b.load_state_dict(state)
    assert all(torch.equal(u, v) for u, v in zip(expected, rows(b)))


def test_new_batch_sources_train_with_fit_and_tensor_batches_unchanged():
    x, y = imbalanced(200, 20)
    yf = y.float().unsqueeze(1)
    for batches in (WeightedBatches(x, yf, weights=lab.balanced_weights(y), batch_size=32, seed=0),
                    StepBatches(x, yf, batch_size=32, steps=7, seed=0)):
        model = torch.nn.Linear(3, 1)
        result = fit(model, torch.optim.SGD(model.parameters(), lr=0.1), batches,
                     lambda m, b: torch.nn.functional.binary_cross_entropy_with_logits(m(b[0]), b[1]),
                     epochs=2, progress=False)
        assert result.updates == 14 and result.epochs_run == 2
    tb = TensorBatches(x, y, batch_size=32, seed=0)
    assert len(tb) == 7 and sum(len(b[0]) for b in tb) == 200


# --------------------------------------------------------------------------- resampling


def test_resampling_balances_the_training_split_and_is_seeded():
    x, y = imbalanced(600, 30)
    x, y = x.numpy(), y.numpy()
    under = lab.resample("undersample", x, y, seed=1)
    assert np.bincount(under[1]).tolist() == [30, 30]
    over = lab.resample("oversample", x, y, seed=1)
    assert np.bincount(over[1]).tolist() == [570, 570]
    smote = lab.resample("smote", x, y, seed=1)
    assert np.bincount(smote[1]).tolist() == [570, 570]
    again = lab.resample("smote", x, y, seed=1)
    assert np.array_equal(smote[0], again[0])
    # SMOTE adds new points between minority neighbours, not copies.
    new = smote[0][len(x):]
    assert not any((new[:, None, :] == x[y == 1][None]).all(-1).any(1))


def test_smotenc_keeps_one_hot_columns_binary():
    rng = np.random.default_rng(0)
    n = 400
    y = (rng.random(n) < 0.08).astype(np.int64)
    student = rng.random(n) < 0.3
    x = np.c_[rng.normal(size=(n, 2)) + y[:, None], ~student, student].astype(np.float32)
    xr, yr = lab.resample("smote", x, y, seed=0, categorical=[2, 3])
    assert set(np.unique(xr[:, 2:])) <= {0.0, 1.0} and np.all(xr[:, 2] + xr[:, 3] == 1)
    assert np.bincount(yr)[0] == np.bincount(yr)[1]


def test_categorical_columns_are_the_one_hot_groups():
    meta = {"feature_names": ["balance", "income", "student_No", "student_Yes"],
            "groups": {"balance": [0], "income": [1], "student": [2, 3]}}
    assert lab._categorical_columns(meta) == [2, 3]


# --------------------------------------------------------------------------- metrics, threshold


@pytest.mark.parametrize("ties", [False, True])
def test_ranking_metrics_match_sklearn(ties):
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(1)
    y = (rng.random(500) < 0.1).astype(int)
    p = rng.random(500) * 0.6 + 0.3 * y
    if ties:
        p = np.round(p, 1)
    m = lab.ranking_metrics(y, p, "t")
    assert m["t_roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["t_pr_auc"] == pytest.approx(average_precision_score(y, p))


def test_threshold_metrics_counts():
    y = np.array([1, 1, 0, 0, 0, 1])
    p = np.array([0.9, 0.4, 0.6, 0.1, 0.2, 0.5])
    m = lab.threshold_metrics(y, p, 0.5, "x")
    assert (m["x_tp"], m["x_fp"], m["x_fn"], m["x_tn"]) == (2, 1, 1, 2)
    assert m["x_precision"] == pytest.approx(2 / 3) and m["x_recall"] == pytest.approx(2 / 3)


def test_threshold_maximises_validation_f1():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(2)
    y = (rng.random(400) < 0.1).astype(int)
    p = np.clip(rng.random(400) * 0.5 + 0.4 * y, 0, 1)
    t = lab.tune_threshold(y, p)
    best = max(f1_score(y, p >= c) for c in np.unique(p))
    assert f1_score(y, p >= t) == pytest.approx(best)


def test_threshold_is_chosen_on_validation_data_not_test_data():
    """Val and test disagree on the best threshold; the tuned one is validation's."""
    y_val, p_val = np.array([0, 0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.35, 0.9])
    y_test, p_test = np.array([0, 0, 1, 1, 0]), np.array([0.1, 0.2, 0.7, 0.9, 0.8])
    t = lab.tune_threshold(y_val, p_val)
    assert t == pytest.approx(0.35)
    assert lab.tune_threshold(y_test, p_test) == pytest.approx(0.7)
    # test F1 at the validation threshold is what gets reported, not test's own optimum
    assert lab.threshold_metrics(y_test, p_test, t, "t")["t_f1"] == pytest.approx(0.8)


# --------------------------------------------------------------------------- test_scores


def test_test_scores_are_what_the_train_stage_wrote_with_the_threshold_tuned_on_validation(
        tmp_path, monkeypatch, raw_params, one_thread):
    import json

    import yaml

    from labflow.frame.base import LabContext
    from labflow.frame.config import parse_params
    from labflow.nets.common import mlp
    from labflow.prep.tensors import save_processed
    from labflow.train.callbacks import load_weights

    params = {**raw_params, "profile": "smoke", "tracking": {**raw_params["tracking"], "enabled": False}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    tensors = {}
    for i, (split, n) in enumerate((("train", 240), ("val", 120), ("test", 120))):
        x, y = imbalanced(n, n // 5, seed=i)
        tensors |= {f"x_{split}": x, f"y_{split}": y}
    save_processed(tmp_path / "data" / "processed" / "lab08", tensors, {"classes": ["no", "yes"]})
    ctx = LabContext("lab08", parse_params(params), progress=False)
    for variant in ("none", "class_weights"):
        lab.train(ctx, variant)
        written = json.loads((ctx.results_dir(variant) / "metrics.json").read_text())
        model = mlp(3, ctx.cfg.train.hidden, 1)
        model.load_state_dict(load_weights(ctx.model_dir(variant) / "model.pt")["state_dict"])
        scores = lab.test_scores(ctx, variant, model.train())
        assert set(scores) == {k for k in written if k.startswith("test_")} and "test_tuned_f1" in scores
        assert scores == {k: written[k] for k in scores}
        assert model.training
        # The tuned threshold is the model's validation-F1 one, never read off the test split.
        p_val = lab.probabilities(model, tensors["x_val"])
        assert lab.tune_threshold(tensors["y_val"].numpy(), p_val) == written["threshold"]
