"""The offline report and the MLflow addresses, on a small results tree (no pipeline run).

The end-to-end check (every lab of a real smoke run, rendered in headless Chromium) is in
tests/test_pipeline.py."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml

from labflow.report.collect import collect_lab, differing, flatten, variant_run_ids
from labflow.tracking import links
from conftest import read_params

REPO = Path(__file__).resolve().parents[1]
PNG = (  # a 1x1 PNG
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4"
    b"\x89\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
)


def test_addresses_open_the_model_training_mode():
    assert links.experiment_url("http://h:5000/", "7") == "http://h:5000/#/experiments/7?workflowType=machine_learning"
    assert links.run_url("http://h:5000", "7", "abc") == (
        "http://h:5000/#/experiments/7/runs/abc?workflowType=machine_learning")


def test_only_params_that_differ_between_variants_are_shown():
    variants = {"sgd": {"optimizer": "sgd", "lr": 0.01, "momentum": 0.0},
                "adam": {"optimizer": "adam", "lr": 0.001, "momentum": 0.0},
                "odd": {"optimizer": "sgd", "lr": 0.01, "momentum": 0.0, "extra": {"a": 1}}}
    diff = differing(variants)
    assert set(diff["sgd"]) == {"optimizer", "lr", "extra.a"}  # momentum is the same everywhere
    assert diff["sgd"]["extra.a"] is None and diff["odd"]["extra.a"] == 1
    assert flatten({"a": {"b": 1, "c": {"d": 2}}}) == {"a.b": 1, "a.c.d": 2}


def _fake_results(root: Path, lab: str, variants: list[str]) -> None:
    compare = root / "results" / lab / "compare"
    (compare / "figures").mkdir(parents=True)
    with (compare / "comparison.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, ["variant", "test_acc"])
        w.writeheader()
        for i, v in enumerate(variants):
            w.writerow({"variant": v, "test_acc": 0.5 + i / 10})
    (compare / "figures" / "test_accuracy.png").write_bytes(PNG)
    (compare / "seeds.md").write_text("Training seeds: 42, 43.\n\n| metric | variant | mean ± std |\n|---|---|---|\n"
                                      "| test_acc | adam | 0.81 ± 0.01 |\n")
    for v in variants:
        folder = root / "results" / lab / "variants" / v / "seed42"
        (folder / "figures").mkdir(parents=True)
        (folder / "figures" / "curves.png").write_bytes(PNG)
        (folder / "run.json").write_text(json.dumps({"run_id": f"run-{v}", "variant": v}))


def test_a_lab_page_holds_its_table_figures_and_the_course_number(tmp_path):
    from labflow.frame.config import load_params

    params = load_params(REPO / "params.yaml")
    variants = list(params.lab04.variants)
    _fake_results(tmp_path, "lab04", variants)
    page = collect_lab(tmp_path, "lab04", "optimizers", params.lab04)
    assert [row["variant"] for row in page.table] == variants
    assert [f.name for f in page.figures] == ["test_accuracy.png"]
    assert set(page.variant_figures) == set(variants)
    assert "optimizer" in page.differing_params["adam"]
    assert "70.15" in page.course.reported
    assert variant_run_ids(tmp_path, "lab04") == {v: f"run-{v}" for v in variants}
    assert variant_run_ids(tmp_path, "lab04", [43]) == {}  # runs of seeds params.yaml does not list
    assert "0.81 ± 0.01" in page.seeds_md
    missing = collect_lab(tmp_path, "lab05", "regularisation", params.lab05)
    assert "dvc repro labs/lab05/dvc.yaml:evaluate" in missing.missing and not missing.table


def test_report_writes_an_index_and_a_page_per_lab_that_work_from_disk(tmp_path, monkeypatch):
    from labflow.labs import LABS
    from labflow.report.build import build_report

    root = tmp_path / "repo"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(read_params()))
    _fake_results(root, "lab04", ["sgd", "sgd_momentum", "adam", "rmsprop"])
    (root / "report" / "stale").mkdir(parents=True)  # an old report's leftovers go
    (root / "report" / ".labflow-report").touch()
    index = build_report(root, root / "report", with_links=False)
    text = index.read_text()
    for lab in LABS:
        assert f'href="{lab}/index.html"' in text
        assert (root / "report" / lab / "index.html").exists()
    assert not (root / "report" / "stale").exists()
    lab04 = (root / "report" / "lab04" / "index.html").read_text()
    assert '<table class="comparison">' in lab04 and "http" not in lab04.split("<body>")[0]
    assert '<table class="seeds">' in lab04 and "<td>0.81 ± 0.01</td>" in lab04
    for src in ("figures/test_accuracy.png", "figures/adam__curves.png"):
        assert f'src="{src}"' in lab04 and (root / "report" / "lab04" / src).exists()
    assert "not run yet" in text  # labs without results say so on the index
    assert "run `dvc repro labs/lab05/dvc.yaml:evaluate` first" in (root / "report" / "lab05" / "index.html").read_text()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (make setup installs it)")
def test_a_broken_figure_is_reported_on_the_page_in_a_real_browser(tmp_path):
    from labflow.report import html
    from chromium import dump_dom

    (tmp_path / "ok.png").write_bytes(PNG)
    page = html.page("t", html.figure("ok.png", "fine") + html.figure("gone.png", "missing"))
    (tmp_path / "index.html").write_text(page)
    dom = dump_dom(tmp_path / "index.html")
    assert 'data-figures="1/2"' in dom
    assert "1 figure(s) did not load: gone.png" in dom


# --------------------------------------------------------------------------- --out: replace only a report


def _repo(tmp_path: Path, monkeypatch) -> Path:
    """A tiny repository the CLI finds (LABFLOW_ROOT), with lab04's results."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(read_params()))
    (root / "dvc.yaml").write_text("stages: {}\n")
    _fake_results(root, "lab04", ["sgd", "sgd_momentum", "adam", "rmsprop"])
    monkeypatch.setenv("LABFLOW_ROOT", str(root))
    return root


def _tree(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


def test_report_out_dot_refuses_and_deletes_nothing(tmp_path, monkeypatch, capsys):
    from labflow.cli import main

    root = _repo(tmp_path, monkeypatch)
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "notes.txt").write_text("mine")
    before, around = _tree(root), sorted(tmp_path.iterdir())
    assert main(["report", "--out", ".", "--no-links"]) == 1
    err = capsys.readouterr().err
    assert err == ("labflow: error: --out . is not a labflow report folder (it holds .git, dvc.yaml, notes.txt, "
                   "params.yaml and 1 more): choose an empty or new folder\n")
    assert _tree(root) == before and sorted(tmp_path.iterdir()) == around  # nothing deleted, nothing left beside


def test_report_out_a_folder_with_a_foreign_file_or_a_file_is_refused(tmp_path, monkeypatch, capsys):
    from labflow.cli import main

    root = _repo(tmp_path, monkeypatch)
    other = tmp_path / "docs"
    (other / "lab04").mkdir(parents=True)  # looks like a report, but holds a file of its own
    (other / "index.html").write_text("my page")
    (other / "thesis.tex").write_text("months of work")
    before = _tree(other)
    assert main(["report", "--out", str(other), "--no-links"]) == 1
    assert "(it holds index.html, lab04, thesis.tex): choose an empty or new folder" in capsys.readouterr().err
    assert _tree(other) == before
    (root / "report").write_text("a file")
    assert main(["report", "--no-links"]) == 1
    assert "--out report is not a folder" in capsys.readouterr().err
    assert (root / "report").read_text() == "a file"


def test_a_second_report_replaces_the_first_in_a_new_or_empty_folder(tmp_path, monkeypatch):
    from labflow.cli import main
    from labflow.report.build import MARKER

    root = _repo(tmp_path, monkeypatch)
    (root / "empty").mkdir()
    for out in ("report", "empty"):
        assert main(["report", "--out", out, "--no-links"]) == 0
        assert (root / out / MARKER).is_file() and (root / out / "lab04" / "index.html").is_file()
        (root / out / "lab99").mkdir()  # a page of a lab that is gone
        assert main(["report", "--out", out, "--no-links"]) == 0
        assert not (root / out / "lab99").exists() and (root / out / MARKER).is_file()
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".")) == []  # no temp folder left


def test_a_report_of_the_old_layout_is_replaced(tmp_path, monkeypatch):
    from labflow.report.build import MARKER, build_report

    root = _repo(tmp_path, monkeypatch)
    (root / "report" / "lab04" / "figures").mkdir(parents=True)  # written before the marker existed
    (root / "report" / "index.html").write_text("old")
    build_report(root, root / "report", with_links=False)
    assert (root / "report" / MARKER).is_file() and (root / "report" / "index.html").read_text() != "old"


def test_a_failed_build_leaves_the_previous_report_intact(tmp_path, monkeypatch):
    from labflow.report import build

    root = _repo(tmp_path, monkeypatch)
    build.build_report(root, root / "report", with_links=False)
    before = _tree(root / "report")

    def broken(*args, **kwargs):
        raise RuntimeError("disk gone")

    monkeypatch.setattr(build, "_index_html", broken)  # fails after every lab page is written
    with pytest.raises(RuntimeError, match="disk gone"):
        build.build_report(root, root / "report", with_links=False)
    assert _tree(root / "report") == before
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".")) == []  # the half-built folder is gone
