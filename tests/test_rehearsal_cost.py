"""The full profile's cost table (labflow.rehearsal.cost): the real run's steps and hours scaled
from a rehearsal's, and the table the README shows."""

from __future__ import annotations

import pytest

from labflow.rehearsal import cost


def test_a_mini_batch_run_keeps_its_measured_step_time_and_scales_its_steps():
    # 10 steps in 2 epochs on 300 rows took 2 s; the real run has 20 epochs on 30,000 rows.
    est = cost.stage_estimate(updates=10, epochs_run=2, seconds=2.0, epochs_ratio=10, rows_scale=100)
    assert est["full_steps"] == 10 * 10 * 100 and est["per_step_measured"]
    assert est["seconds_per_step"] == pytest.approx(0.2)
    assert est["full_hours"] == pytest.approx(10_000 * 0.2 / 3600)


def test_a_full_batch_run_takes_one_step_an_epoch_and_its_step_grows_with_the_rows():
    # One update an epoch: the batch is the training set, so the real run has as many steps as
    # epochs, each on 100 times the rows: the step time is extrapolated, not measured.
    est = cost.stage_estimate(updates=2, epochs_run=2, seconds=0.01, epochs_ratio=7.5, rows_scale=100)
    assert est["full_steps"] == 15 and not est["per_step_measured"]
    assert est["seconds_per_step"] == pytest.approx(0.005 * 100)
    assert est["full_hours"] == pytest.approx(15 * 0.5 / 3600)


def test_without_the_data_sets_size_only_the_measured_step_time_is_given():
    est = cost.stage_estimate(updates=4, epochs_run=2, seconds=2.0, epochs_ratio=10, rows_scale=None)
    assert est == {"full_steps": None, "full_hours": None, "seconds_per_step": 0.5, "per_step_measured": True}


def test_rows_and_test_rows_from_each_kind_of_manifest():
    assert cost.manifest_rows({"n_train": 290, "n_test": 20}) == 310
    assert cost.manifest_rows({"images": {"train": 64, "val": 4, "test": 6}}) == 74
    assert cost.manifest_rows({"n_pairs": 410}) == 410 and cost.manifest_rows({"x": 1}) is None
    assert cost.manifest_test_rows({"images": {"train": 64, "test": 6}}) == 6
    assert cost.manifest_test_rows({"n_train": 290, "n_test": 20}) == 20
    assert cost.manifest_test_rows({"n_texts": 200}) is None


def _stage(variant, steps, hours, per_step, measured=True, params=1000, peak=700.0):
    return {"variant": variant, "seed": 42, "parameters": params, "peak_rss_mb": peak, "full_steps": steps,
            "full_hours": hours, "seconds_per_step": per_step, "per_step_measured": measured}


def test_the_table_sums_variants_marks_extrapolated_steps_and_totals_every_lab():
    found = {"labs": {
        "lab03": {"dataset": "mnist", "canonical_rows": 70_000, "full_rows": 70_000,
                  "train_stages": [_stage("full_batch", 15, 0.002, 0.5, measured=False),
                                   _stage("stochastic", 900_000, 0.1, 0.0004, params=2_000)],
                  "other_stages": [{"stage": "evaluate lab03", "seconds": 1.0, "peak_rss_mb": 2048.0,
                                    "full_hours": 0.5}]},
        "lab11": {"dataset": "cifar10", "canonical_rows": 60_000, "full_rows": 60_000, "train_stages": [],
                  "other_stages": [{"stage": "evaluate lab11", "seconds": 2.0, "peak_rss_mb": 900.0, "full_hours": 2.0}]},
        "lab24": {"dataset": None, "canonical_rows": None, "full_rows": 50_000,
                  "train_stages": [_stage("attention", 100, 0.0001, 0.004)], "other_stages": []},
    }}
    lines = cost.table(found).splitlines()
    lab03 = next(line for line in lines if line.startswith("| lab03 "))
    assert "| 900,015 |" in lab03 and "0.0004-0.5 *" in lab03 and "| 2 k |" in lab03
    assert "| 2.0 GB |" in lab03 and "| 6 min | 30 min | 36 min |" in lab03
    lab11 = next(line for line in lines if line.startswith("| lab11 "))
    assert "| 170 MB | - | - | - |" in lab11 and lab11.endswith("| 2.0 h | 2.0 h |")
    assert any(line.startswith("| lab24 | generated (50,000) |") and "<1 min" in line for line in lines)
    assert "| 12 MB |" in lab03 and "| 170 MB |" in lab11  # MNIST's four files, CIFAR-10's tarball
    assert lines[-1] == "| all | | 182 MB | | | | | | | 3 h |"  # each data set once
