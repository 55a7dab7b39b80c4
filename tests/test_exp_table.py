"""`labflow exp LAB` on `dvc exp show --json` output of the shape DVC 3.67 writes."""

from __future__ import annotations

from labflow import exp_table
LAB = "lab03"


def _entry(rev, name, lr, metrics, seeds=(42,)):
    params = {"profile": "quick", "seed": 42, "seeds": list(seeds),
              LAB: {"train": {"epochs": 5}, "variants": {"mini_batch": {"lr": lr}, "stochastic": {"lr": 0.01}}},
              "lab04": {"train": {"epochs": 3}}}
    return {"rev": rev, "name": name, "data": {
        "rev": rev, "params": {"params.yaml": {"data": params}},
        "metrics": {f"results/{LAB}/compare/metrics.json": {"data": metrics},
                    "results/lab04/compare/metrics.json": {"data": {"adam": {"test_acc": 0.8}}}}},
        "error": None, "experiments": None}


def _exp_show():
    base = _entry("a" * 40, "main", 0.1, {"mini_batch": {"test_acc": 0.946}, "stochastic": {"test_acc": 0.943},
                                          "summary": {"x": 1}})
    lr02 = _entry("b" * 40, "lr02", 0.2, {"mini_batch": {"test_acc": 0.951}, "stochastic": {"test_acc": 0.943}})
    seeds = _entry("c" * 40, "three-seeds", 0.1, {
        "mini_batch": {"test_acc": 0.946}, "stochastic": {"test_acc": 0.943},
        "seed_bands": {"mini_batch": {"test_acc_mean": 0.944, "test_acc_std": 0.002},
                       "stochastic": {"test_acc_mean": 0.94, "test_acc_std": 0.004}}}, seeds=(42, 43, 44))
    base["experiments"] = [{"revs": [lr02], "executor": None, "name": "lr02"},
                           {"revs": [seeds], "executor": None, "name": "three-seeds"}]
    workspace = {**_entry("workspace", None, 0.1, {}), "rev": "workspace"}
    return [workspace, base]


def test_rows_keep_one_lab_and_say_what_each_experiment_changed():
    rows = exp_table.rows_for(_exp_show(), LAB)
    assert [(r.name, r.baseline) for r in rows] == [("main", True), ("lr02", False), ("three-seeds", False)]
    assert rows[1].changed == ["variants.mini_batch.lr=0.2"]
    assert rows[2].changed == ["seeds=[42, 43, 44]"]


def test_table_fits_80_columns_and_shows_seed_bands():
    text = exp_table.render(exp_table.rows_for(_exp_show(), LAB), LAB, "test_acc")
    print(text)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 80
    header = next(line for line in lines if line.startswith("experiment"))
    assert header.split() == ["experiment", "mini_batch", "stochastic"]  # summary/seed_bands are not variants
    assert any(line.startswith("  lr02") and "0.951" in line for line in lines)
    assert any(line.startswith("  three-seeds") and "0.944±0.002" in line for line in lines)
    assert "  lr02: variants.mini_batch.lr=0.2" in lines


def test_many_variants_wrap_into_blocks_instead_of_overflowing():
    rows = [exp_table.ExpRow("main", "a", True, {f"variant_number_{i}": {"test_acc": 0.5} for i in range(8)})]
    text = exp_table.render(rows, LAB, "test_acc", width=80)
    assert max(map(len, text.splitlines())) <= 80
    assert sum(line.startswith("experiment") for line in text.splitlines()) >= 2


def test_no_results_says_how_to_get_them():
    assert "dvc exp run" in exp_table.render([], LAB, "test_acc")
