"""Seed bands and the split of timings from metrics (unit level; tests/test_pipeline.py runs
`dvc exp run -S seeds=[...]` end to end)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from labflow.compare import seed_bands
from labflow.tracking import dvc_files


def _results(values: dict[str, list[float]], metric="test_acc", seeds=(42, 43, 44)) -> dict:
    out = {}
    for variant, vals in values.items():
        runs = {s: {"metrics": {metric: v, "train_seconds": 1.0},
                    "history": [{"epoch": e, "val_acc": v * e / 3} for e in (1, 2, 3)]} for s, v in zip(seeds, vals)}
        out[variant] = {**runs[seeds[0]], "seeds": runs}
    return out


def test_mean_and_sample_std():
    assert seed_bands.mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert seed_bands.mean_std([0.5]) == (0.5, None)


def test_a_consistent_gap_is_real_and_a_gap_that_flips_is_noise():
    results = _results({"adam": [0.81, 0.82, 0.80], "rmsprop": [0.79, 0.80, 0.78], "noisy": [0.83, 0.77, 0.81]})
    verdicts = {(r["a"], r["b"]): r for r in seed_bands.verdict_rows(results, ["test_acc"])}
    assert verdicts[("adam", "rmsprop")]["verdict"] == "real (p < 0.05)"  # the same +0.02 every seed
    assert verdicts[("adam", "rmsprop")]["mean_a_minus_b"] == pytest.approx(0.02)
    flip = verdicts[("adam", "noisy")]
    assert flip["verdict"] == "within seed noise" and flip["p_paired_t"] > 0.05


def test_paired_test_matches_scipy_and_handles_no_spread():
    from scipy.stats import ttest_rel

    a, b = [0.80, 0.83, 0.79], [0.78, 0.80, 0.785]
    assert seed_bands.paired_test(a, b) == pytest.approx(ttest_rel(a, b).pvalue)
    assert seed_bands.paired_test([1, 2], [1, 2]) == 1.0  # identical runs
    assert seed_bands.paired_test([1, 2], [0, 1]) == 0.0  # the same gap every seed
    assert seed_bands.paired_test([1], [0]) is None


def test_one_seed_says_it_has_no_noise_estimate():
    results = _results({"a": [0.8], "b": [0.7]}, seeds=(42,))
    verdicts = seed_bands.verdict_rows(results, ["test_acc"])
    assert verdicts[0]["verdict"] == "one seed: no noise estimate"
    band = seed_bands.band_rows(results, ["test_acc"])
    assert seed_bands.summary_metrics(band) == {}  # nothing to add to the DVC metrics
    assert "seeds=[42,43,44]" in seed_bands.markdown(band, verdicts, [42])


def test_markdown_shows_mean_std_every_seed_and_the_verdicts():
    results = _results({"adam": [0.81, 0.82, 0.80], "sgd": [0.66, 0.70, 0.62]})
    band = seed_bands.band_rows(results, ["test_acc"])
    text = seed_bands.markdown(band, seed_bands.verdict_rows(results, ["test_acc"]), [42, 43, 44])
    assert "| test_acc | adam | 0.81 ± 0.01 | 0.81 | 0.82 | 0.8 |" in text
    assert "| test_acc | adam | sgd | +0.15 |" in text
    assert seed_bands.summary_metrics(band)["sgd"] == {"test_acc_mean": pytest.approx(0.66),
                                                       "test_acc_std": pytest.approx(0.04)}


def test_headline_metrics_come_from_the_lab_or_a_known_test_metric():
    metrics = {"test_loss": 0.5, "test_acc": 0.8, "val_acc": 0.9, "note": "x"}
    assert seed_bands.headline_metrics(SimpleNamespace(HEADLINE=("test_loss",)), metrics) == ["test_loss"]
    assert seed_bands.headline_metrics(SimpleNamespace(), metrics) == ["test_acc"]
    assert seed_bands.headline_metrics(SimpleNamespace(), {"test_psnr": 20.0}) == ["test_psnr"]
    assert seed_bands.band_curve(SimpleNamespace(), [{"epoch": 1, "train_loss": 1, "val_acc": 0.5}]) == "val_acc"


def test_band_figure_draws_one_band_per_variant():
    fig = seed_bands.band_figure(_results({"adam": [0.81, 0.82, 0.80], "sgd": [0.6, 0.7, 0.5]}), "val_acc", "t")
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and len(ax.collections) == 2  # a mean line and a min-max band each


def test_timings_leave_the_dvc_metrics_but_come_back_when_read(tmp_path):
    metrics = {"test_acc": 0.8, "train_seconds": 12.3, "test_acc_per_train_second": 0.07, "updates": 10,
               "phase1_seconds": 1.0, "adam": {"val_loss": 0.4, "train_seconds": 3.0}}
    dvc_files.write_metrics_and_timings(tmp_path, metrics)
    kept = json.loads((tmp_path / "metrics.json").read_text())
    assert kept == {"test_acc": 0.8, "updates": 10, "adam": {"val_loss": 0.4}}
    assert json.loads((tmp_path / "timings.json").read_text()) == {
        "train_seconds": 12.3, "test_acc_per_train_second": 0.07, "phase1_seconds": 1.0, "adam": {"train_seconds": 3.0}}
    assert dvc_files.read_metrics_and_timings(tmp_path) == metrics
    assert not dvc_files.is_timing("secondary_acc") and dvc_files.is_timing("seconds")


def test_seeds_must_hold_the_primary_seed_once(raw_params):
    from labflow.frame.config import ConfigError, parse_params

    for seeds, message in (([1, 2], "does not include seed \\(42\\)"), ([42, 42], "listed twice"), ([], "seeds")):
        with pytest.raises(ConfigError, match=message):
            parse_params({**raw_params, "seeds": seeds})
    assert parse_params({**raw_params, "seeds": [43, 42]}).seeds == [43, 42]
