"""README "Add a lab", followed to the letter: in a temporary copy of the repository, a newcomer
adds a minimal lab 26 (logistic regression on the digits, one variant, a few optimizer steps) by
writing its folder and its labs/lab26/ (params.yaml, dvc.yaml), and nothing else; then
`dvc repro labs/lab26/dvc.yaml` runs it with its MLflow parent and child runs, `labflow list`
shows it, the root `report` stage reaches it, and every labflow file its stages ran is declared."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import copy_repo

pytestmark = pytest.mark.slow

LAB_FOLDER = "src/labflow/labs/lab26_logistic"
# The repository's fast tests that check every lab (params per profile; stages, matrix and plots in
# its dvc.yaml; `labflow list`): run in the copy, they cover lab 26 too.
REGISTRY_TESTS = ("tests/test_config.py::test_repository_params_are_valid_for_every_profile",
                  "tests/test_config.py::test_dvc_yaml_matches_params_and_registry",
                  "tests/test_cli.py::test_list_names_every_lab_variant_and_profile")

# Step 1: the lab's folder, labNN_<topic>/ with __init__.py, config.py, lab.py and lessons.py.
INIT_PY = '''"""Lab 26: logistic regression on handwritten digits, the smallest lab.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""
'''

CONFIG_PY = '''"""Lab 26's section of params.yaml (``lab26:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from pydantic import Field

from labflow.frame.config import SplitConfig, Strict


class Lab26Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)


class Lab26Variant(Strict):
    lr: float | None = Field(None, gt=0)


class Lab26Config(Strict):
    data: SplitConfig
    train: Lab26Train
    variants: dict[str, Lab26Variant] = Field(min_length=1)
'''

LAB_PY = '''"""Lab 26: logistic regression (one linear layer, softmax) on handwritten digits."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from labflow.compare.metrics import classification_metrics, predict
from labflow.frame import base
from labflow.nets.common import mlp, seeded
from labflow.prep.images import prepare_image_splits
from labflow.prep.tensors import load_processed
from labflow.train import TensorBatches

LAB_ID = "lab26"
TITLE = "Logistic regression on digits"
HEADLINE = ("test_acc",)
DATASETS = ("mnist",)


def preprocess(ctx: base.LabContext) -> dict:
    return prepare_image_splits(LAB_ID, "mnist", ctx.cfg.data, ctx.seed)


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    t, v = ctx.cfg.train, ctx.variant_cfg(variant)
    lr = v.lr or t.lr
    data, meta = load_processed(ctx.processed_dir)
    model = seeded(lambda: mlp(28 * 28, (), len(meta["classes"])), ctx.seed).to(ctx.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    batches = TensorBatches(data["x_train"], data["y_train"], batch_size=t.batch_size, seed=ctx.seed, device=ctx.device)
    return base.train_variant(
        ctx, variant, model=model, optimizer=optimizer, batches=batches,
        loss_fn=lambda m, batch: F.cross_entropy(m(batch[0]), batch[1]), epochs=t.epochs,
        evaluate=lambda m: classification_metrics(predict(m, data["x_val"]), data["y_val"], "val"),
        final_metrics=lambda m, _fit: classification_metrics(predict(m, data["x_test"]), data["y_test"], "test"),
        run_params={"lr": lr, "batch_size": t.batch_size, "epochs": t.epochs},
        model_info={"kind": "logistic regression", "in": 784},
    )


def evaluate(ctx: base.LabContext) -> None:
    from labflow.plots import figures as figs

    results = base.variant_results(ctx)
    table = [{"variant": v, "test_acc": r["metrics"]["test_acc"], "test_loss": r["metrics"]["test_loss"],
              "updates": r["metrics"]["updates"]} for v, r in results.items()]
    figures = {
        "test_accuracy": figs.bars({row["variant"]: row["test_acc"] for row in table}, ylabel="test accuracy", title="test accuracy"),
        "val_accuracy": figs.curves(base.series(results, "epoch", "val_acc"), xlabel="epoch", ylabel="validation accuracy", title="validation accuracy per epoch"),
    }
    base.publish_comparison(ctx, results, table=table, figures=figures)
'''

LESSONS_PY = '''"""Lab 26's lesson: what the course would say it shows, as a check on its metrics."""

from labflow.compare.lessons import Claim, gt

CLAIMS = (
    Claim("beats_chance", "A linear classifier reads digits far better than chance (10%)",
          "a one-layer softmax model is the baseline every later lab beats", (gt("logreg.test_acc", 0.1),)),
)
'''

# Step 2: the lab's parameters, labs/lab26/params.yaml (smoke: 180 training images, 4 steps of 50).
PARAMS_SECTION = """
lab26:
  data:
    train_size: 2000
    test_size: 500
    val_fraction: 0.1
  train:
    epochs: 3
    batch_size: 64
    lr: 0.1
  variants:
    logreg: {}
  profiles:
    smoke:
      data: {train_size: 200, test_size: 100}
      train: {epochs: 1, batch_size: 50}
"""

# Step 3: labs/lab26/dvc.yaml, the shape of labs/lab01/dvc.yaml.
CODE_DEPS = """\
    - src/labflow/__init__.py
    - src/labflow/labs/__init__.py
    - src/labflow/nets/__init__.py
    - src/labflow/nets/common.py
    - src/labflow/prep/__init__.py
    - src/labflow/prep/images.py
    - src/labflow/prep/tensors.py
    - src/labflow/compare
    - src/labflow/data
    - src/labflow/frame
    - src/labflow/labs/lab26_logistic
    - src/labflow/plots
    - src/labflow/tracking
    - src/labflow/train
"""

DVC_YAML = f"""\
vars:
- ../../params.yaml
- params.yaml
stages:
  preprocess:
    wdir: ../..
    cmd: python stages/preprocess.py lab26
    deps:
    - results/preflight.json
    - stages/preprocess.py
{CODE_DEPS}    - data/raw/mnist
    params:
    - profile
    - seed
    - labs/lab26/params.yaml:
      - lab26.data
      - lab26.profiles
    outs:
    - data/processed/lab26
  train:
    matrix:
      variant: ${{lab26.variants}}
      seed: ${{seeds}}
    wdir: ../..
    cmd: python stages/train.py lab26 ${{item.variant}} ${{item.seed}}
    deps:
    - results/preflight.json
    - stages/train.py
{CODE_DEPS}    - data/processed/lab26
    params:
    - profile
    - seed
    - device
    - deterministic
    - tracking
    - distributed
    - labs/lab26/params.yaml:
      - lab26.train
      - lab26.profiles
      - lab26.variants.${{item.variant}}
    outs:
    - models/lab26/${{item.variant}}/seed${{item.seed}}/model.pt
    - results/lab26/variants/${{item.variant}}/seed${{item.seed}}/run.json
    - results/lab26/variants/${{item.variant}}/seed${{item.seed}}/figures
    - results/lab26/variants/${{item.variant}}/seed${{item.seed}}/history.csv:
        cache: false
    - results/lab26/variants/${{item.variant}}/seed${{item.seed}}/metrics.json:
        cache: false
    - results/lab26/variants/${{item.variant}}/seed${{item.seed}}/timings.json:
        cache: false
  evaluate:
    wdir: ../..
    cmd: python stages/evaluate.py lab26
    deps:
    - results/preflight.json
    - stages/evaluate.py
{CODE_DEPS}    - data/processed/lab26
    - results/lab26/variants
    params:
    - seeds
    - tracking
    - labs/lab26/params.yaml:
      - lab26.variants
    outs:
    - results/lab26/compare/figures
    - results/lab26/compare/comparison.md:
        cache: false
    - results/lab26/compare/comparison.csv:
        cache: false
    - results/lab26/compare/seeds.md:
        cache: false
    - results/lab26/compare/seeds.csv:
        cache: false
    - results/lab26/compare/lessons.md:
        cache: false
    - results/lab26/compare/lessons.csv:
        cache: false
    - results/lab26/compare/lessons.json:
        cache: false
    - results/lab26/compare/timings.json:
        cache: false
    metrics:
    - results/lab26/compare/metrics.json:
        cache: false
plots:
- lab26_loss_by_epoch:
    x: epoch
    y:
      ../../results/lab26/variants/logreg/seed${{seed}}/history.csv: train_loss
    title: 'lab26: train_loss by epoch'
    x_label: epoch
    y_label: train_loss
- ../../results/lab26/compare/figures
"""


def add_lab26(repo: Path) -> None:
    """What the newcomer writes, by README "Add a lab"."""
    folder = repo / LAB_FOLDER
    folder.mkdir()
    (folder / "__init__.py").write_text(INIT_PY)
    (folder / "config.py").write_text(CONFIG_PY)
    (folder / "lab.py").write_text(LAB_PY)
    (folder / "lessons.py").write_text(LESSONS_PY)
    (repo / "labs" / "lab26").mkdir()
    (repo / "labs" / "lab26" / "params.yaml").write_text(PARAMS_SECTION)
    (repo / "labs" / "lab26" / "dvc.yaml").write_text(DVC_YAML)


def _env(repo: Path) -> dict:
    """A user's shell in the copy: its own src/ first on the import path (the installed labflow is
    another checkout's, which has no lab 26), nothing of this session's MLflow, LabFlow or DVC."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LABFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(repo / "src")
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def sh(repo: Path, *cmd: str, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout + proc.stderr


def _undeclared(files: list[str], deps: list) -> list[str]:
    declared = [d for d in deps if isinstance(d, str)]
    return [f for f in files if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in declared)]


def _authored_files(repo: Path) -> list[str]:
    """Files git sees as new or changed, less what `dvc repro` wrote: dvc.lock files and results/."""
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=repo,
                         capture_output=True, text=True, check=True).stdout
    changed = [line[3:] for line in out.splitlines() if line]
    return sorted(f for f in changed if Path(f).name != "dvc.lock" and not f.startswith("results/"))


def test_adding_lab26_touches_its_folder_params_section_and_dvc_yaml_and_runs(tmp_path):
    repo = copy_repo(tmp_path / "repo", profile="smoke")
    add_lab26(repo)
    env = _env(repo)
    audit = tmp_path / "imports"
    try:
        out = sh(repo, "dvc", "repro", "labs/lab26/dvc.yaml", env={**env, "LABFLOW_IMPORT_AUDIT": str(audit)})
        listing = sh(repo, "labflow", "list", env=env)
        dag = sh(repo, "dvc", "dag", "--dot", "report", env=env)
        suite = sh(repo, sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *REGISTRY_TESTS, env=env)
    finally:
        subprocess.run(["labflow", "runner", "stop"], cwd=repo, env=env, capture_output=True, timeout=60)

    # The stages ran from the copy's src (the installed labflow knows no lab26) and wrote their files.
    for stage in ("preprocess", "train@logreg-42", "evaluate"):
        assert f"Running stage 'labs/lab26/dvc.yaml:{stage}'" in out, out[-3000:]
    results = repo / "results" / "lab26"
    metrics = json.loads((results / "variants" / "logreg" / "seed42" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 1 and metrics["updates"] == 4 and 0 <= metrics["test_acc"] <= 1
    assert (results / "compare" / "comparison.md").read_text().startswith("| variant")
    assert set(json.loads((results / "compare" / "metrics.json").read_text())) == {"logreg", "lessons"}
    lesson = json.loads((results / "compare" / "lessons.json").read_text())["claims"]
    assert [c["id"] for c in lesson] == ["beats_chance"]
    assert lesson[0]["verdict"] in ("holds on one seed (no noise estimate)", "reversed on one seed (no noise estimate)")
    assert (repo / "labs" / "lab26" / "dvc.lock").exists()

    # MLflow: experiment labflow-lab26, one comparison (parent) run, one child run per variant.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("labflow-lab26")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("labflow.role") == "comparison"]
    assert len(parents) == 1
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert [r.data.tags["labflow.variant"] for r in children] == ["logreg"]
    assert all(r.info.status == "FINISHED" for r in [*parents, *children])
    assert client.get_metric_history(children[0].info.run_id, "train_loss")

    # The CLI lists it, and the root pipeline's report stage depends on it (a root `dvc repro` runs it).
    assert "lab26  Logistic regression on digits" in listing
    assert "labs/lab26/dvc.yaml:evaluate" in dag
    assert re.search(r"\b3 passed\b", suite) and "failed" not in suite, suite[-3000:]

    # Every labflow file its stages ran is among that stage's declared deps (the import audit).
    stages = yaml.safe_load((repo / "labs" / "lab26" / "dvc.yaml").read_text())["stages"]
    records = [json.loads(f.read_text()) for f in audit.glob("*.json")]
    lab26 = [r for r in records if r["argv"][:1] == ["lab26"]]
    assert sorted(r["stage"] for r in lab26) == ["evaluate", "preprocess", "train"]
    for record in lab26:
        assert f"{LAB_FOLDER}/lab.py" in record["files"]
        assert not _undeclared(record["files"], stages[record["stage"]]["deps"]), record["stage"]

    # What the author touched: the lab's four files, labs/lab26/params.yaml and dvc.yaml. Nothing else.
    authored = _authored_files(repo)
    assert authored == sorted([f"{LAB_FOLDER}/__init__.py", f"{LAB_FOLDER}/config.py", f"{LAB_FOLDER}/lab.py",
                               f"{LAB_FOLDER}/lessons.py", "labs/lab26/dvc.yaml", "labs/lab26/params.yaml"]), authored
