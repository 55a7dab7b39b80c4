"""End to end: every lab's real stages through `dvc repro` in a temporary copy of the
repository (smoke profile: tiny data), then what a user does next: MLflow runs,
`dvc exp run -S`, `dvc metrics diff`, bad params, an unreachable tracking server."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from labflow.labs import LABS, READS_FROM, SHARED_MODEL
from labflow.labs import stages as lab_stages
from conftest import all_stages, copy_repo, read_params, write_params

pytestmark = pytest.mark.slow
TIMING_KEYS = {"train_seconds", "seconds"}


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LABFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "t"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "t@t"
    return env


def sh(repo: Path, *cmd: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=env or _env(), timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = copy_repo(tmp_path_factory.mktemp("pipeline") / "repo", profile="smoke")
    # Every stage writes the labflow files it executed (test_every_stage_declares_the_code_it_runs).
    sh(repo, "dvc", "repro", env={**_env(), "LABFLOW_IMPORT_AUDIT": str(repo.parent / "imports")})
    return repo


def params(repo: Path) -> dict:
    return read_params(repo)


def metrics(repo: Path, lab: str, variant: str) -> dict:
    return json.loads((repo / "results" / lab / "variants" / variant / "seed42" / "metrics.json").read_text())


def test_every_lab_writes_metrics_plots_and_figures(repo):
    p = params(repo)
    for lab in LABS:
        if lab in SHARED_MODEL:  # one trained model, decoded by each variant (lab 25)
            _check_shared_model_lab(repo, lab, p)
            continue
        for variant in p[lab]["variants"] if lab not in READS_FROM else ():  # a lab that trains nothing has no variant folders
            folder = repo / "results" / lab / "variants" / variant / "seed42"
            m = metrics(repo, lab, variant)
            assert m["epochs_run"] == p[lab]["profiles"]["smoke"]["train"]["epochs"]
            assert (folder / "history.csv").read_text().count("\n") == m["epochs_run"] + 1
            assert list((folder / "figures").glob("*.png"))
            assert (repo / "models" / lab / variant / "seed42" / "model.pt").stat().st_size > 0
            assert "train_seconds" in json.loads((folder / "timings.json").read_text())
            assert not TIMING_KEYS & set(m)  # timings are not DVC metrics
        compare = repo / "results" / lab / "compare"
        assert set(json.loads((compare / "metrics.json").read_text())) >= set(p[lab]["variants"])
        assert len(list((compare / "figures").glob("*.png"))) >= 2
        assert (compare / "comparison.md").read_text().startswith("| variant")
        assert "One training seed (42)" in (compare / "seeds.md").read_text()
    assert (repo / "dvc.lock").exists()


def test_every_lab_scores_its_claims_and_labflow_lessons_shows_them(repo):
    """Each claim of each lab is measured on the smoke run (its metrics exist), with a one-seed
    verdict; `labflow lessons` shows every lab; the comparison run carries the verdicts as its note."""
    import mlflow

    from labflow.labs import lab_lessons

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    for lab in LABS:
        compare = repo / "results" / lab / "compare"
        record = json.loads((compare / "lessons.json").read_text())
        claims = lab_lessons(lab).CLAIMS
        assert [c["id"] for c in record["claims"]] == [c.id for c in claims]
        for claim in record["claims"]:
            assert claim["verdict"] in ("holds on one seed (no noise estimate)", "reversed on one seed (no noise estimate)"), (lab, claim)
        scores = json.loads((compare / "metrics.json").read_text())["lessons"]
        assert set(scores) == {c.id for c in claims} and set(scores.values()) <= {1, -1}
        assert "what the course says this lab shows" in (compare / "lessons.md").read_text()
        exp = client.get_experiment_by_name(f"labflow-{lab}")
        parent = next(r for r in client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])
                      if r.data.tags.get("labflow.role") == "comparison")
        assert claims[0].says in parent.data.tags["mlflow.note.content"]
        assert parent.data.metrics[f"lesson.{claims[0].id}"] in (1, -1)
    table = sh(repo, "labflow", "lessons").stdout
    assert all(re.search(rf"^{lab}\b", table, re.M) for lab in LABS), table
    assert "not run yet" not in table and max(len(line) for line in table.splitlines()) <= 80


def _check_shared_model_lab(repo: Path, lab: str, p: dict) -> None:
    """The model trained once (per-epoch history, figures, model file); each variant decoded it
    (metrics, translations) without writing a model of its own; the comparison names every variant."""
    trained = repo / "results" / lab / "variants" / SHARED_MODEL[lab] / "seed42"
    m = json.loads((trained / "metrics.json").read_text())
    assert m["epochs_run"] == p[lab]["profiles"]["smoke"]["train"]["epochs"]
    assert (trained / "history.csv").read_text().count("\n") == m["epochs_run"] + 1
    assert list((trained / "figures").glob("*.png"))
    assert (repo / "models" / lab / SHARED_MODEL[lab] / "seed42" / "model.pt").stat().st_size > 0
    for variant in p[lab]["variants"]:
        decoded = json.loads((repo / "results" / lab / "variants" / variant / "seed42" / "metrics.json").read_text())
        assert 0 <= decoded["test_bleu"] <= 100 and not TIMING_KEYS & set(decoded)
        assert (repo / "results" / lab / "variants" / variant / "seed42" / "translations.csv").exists()
        assert not (repo / "models" / lab / variant).exists()
    compare = repo / "results" / lab / "compare"
    assert set(json.loads((compare / "metrics.json").read_text())) >= set(p[lab]["variants"])
    assert len(list((compare / "figures").glob("*.png"))) >= 2
    assert (compare / "comparison.md").read_text().startswith("| variant")
    assert "One training seed (42)" in (compare / "seeds.md").read_text()


def test_mlflow_has_a_parent_run_per_lab_with_every_variant_as_child(repo):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    p = params(repo)
    for lab in LABS:
        exp = client.get_experiment_by_name(f"labflow-{lab}")
        assert exp is not None and exp.artifact_location.startswith((repo / "mlruns").as_uri())
        all_runs = client.search_runs([exp.experiment_id])
        parents = [r for r in all_runs if r.data.tags.get("labflow.role") == "comparison"]
        assert len(parents) == 1
        parent = parents[0]
        children = [r for r in all_runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        # A lab that trains nothing (READS_FROM) logs its comparison alone.
        trained = [] if lab in READS_FROM else list(p[lab]["variants"])
        if lab in SHARED_MODEL:  # its training run is a child too; the variants' runs only decode
            trained.append(SHARED_MODEL[lab])
        assert sorted(r.data.tags["labflow.variant"] for r in children) == sorted(trained)
        for run in [parent, *children]:
            assert run.info.status == "FINISHED"
            assert run.data.tags["labflow.profile"] == "smoke"
            assert len(run.data.tags["git.commit"]) == 40
            # MLflow's own context tags: the runs table's Source, Version and User columns
            assert run.data.tags["mlflow.source.git.commit"] == run.data.tags["git.commit"]
            assert run.data.tags["mlflow.source.name"].startswith("stages/") and run.data.tags["mlflow.user"]
        # Dataset lineage: a train run read its training split, the comparison the test split,
        # each with the DVC hash of the processed folder as its digest.
        lineage = {(r.data.tags["labflow.stage"], i.tags[0].value): i.dataset.digest
                   for r in [parent, *children] for i in client.get_run(r.info.run_id).inputs.dataset_inputs}
        if lab not in READS_FROM:
            digests = set(lineage.values())
            assert {("train", "training"), ("evaluate", "testing")} <= set(lineage), (lab, lineage)
            assert len(digests) == 1 and next(iter(digests)).endswith(".dir"), (lab, lineage)
        for child in children:
            decoded = lab in SHARED_MODEL and child.data.tags["labflow.variant"] != SHARED_MODEL[lab]
            assert client.get_metric_history(child.info.run_id, "test_bleu" if decoded else "train_loss")
            artifacts = {a.path for a in client.list_artifacts(child.info.run_id)}
            assert "figures" in artifacts
        assert "figures" in {a.path for a in client.list_artifacts(parent.info.run_id)}


def _logged_models(repo: Path) -> dict[tuple[str, str], dict]:
    """(lab, variant) -> run.json of every primary-seed train run that logged a model."""
    found = {}
    for run_file in sorted((repo / "results").glob("lab*/variants/*/seed42/run.json")):
        info = json.loads(run_file.read_text())
        if info.get("model_uri"):
            found[(run_file.parts[-5], run_file.parts[-3])] = info
    return found


def _test_split(repo: Path, lab: str) -> dict:
    """The processed test tensors of a lab that keeps them in one ``tensors.pt`` (lab 09's digits)."""
    import torch

    return torch.load(repo / "data" / "processed" / lab / "tensors.pt", map_location="cpu", weights_only=True)


def test_every_logged_model_loads_back_from_mlflow_and_scores_its_logged_test_metrics(repo, monkeypatch):
    """MLflow 3 models: each variant's model is a LoggedModel with its final metrics; it loads
    back from its models:/ URI and, scored by the lab's own ``test_scores`` on the test split,
    gets every test metric its run logged (a lab scoring in its evaluate stage, or a GAN's sample
    scores: the comparison's)."""
    import mlflow
    import mlflow.pytorch

    from labflow.frame import base
    from labflow.frame.config import load_params, sections_for
    from labflow.labs import lab_module

    uri = f"sqlite:///{repo / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    monkeypatch.setenv("LABFLOW_ROOT", str(repo))  # the labs read the copy's processed data
    client = mlflow.MlflowClient(tracking_uri=uri)
    models = _logged_models(repo)
    trained = {lab for lab in LABS if lab not in READS_FROM}
    assert {lab for lab, _ in models} == trained
    formats, scored = {}, {}
    for (lab, variant), info in models.items():
        run = client.get_run(info["run_id"])
        logged = client.get_logged_model(run.data.tags["labflow.model_id"])
        assert logged.source_run_id == info["run_id"] and f"models:/{logged.model_id}" == info["model_uri"]
        assert {m.key for m in logged.metrics} >= {k for k in run.data.metrics if k.startswith("final_")}, (lab, variant)
        formats[f"{lab}/{variant}"] = info["model_format"]
        assert info["model_format"] == run.data.tags["labflow.model_format"]
        if info["model_format"] == "pickle":
            assert run.data.tags["labflow.model_format_reason"], (lab, variant)
        model = mlflow.pytorch.load_model(info["model_uri"])
        ctx = base.LabContext(lab, load_params(repo / "params.yaml", sections_for(lab)), progress=False)
        got = lab_module(lab).test_scores(ctx, variant, model)
        compared = json.loads((repo / "results" / lab / "compare" / "metrics.json").read_text()).get(variant, {})
        assert got, (lab, variant)
        for key, value in got.items():
            want = run.data.metrics.get(f"final_{key}", compared.get(key))
            assert want is not None, f"{lab}/{variant}: {key} is logged nowhere"
            assert value == pytest.approx(want, rel=1e-4, abs=1e-5), (lab, variant, key, value, want)
        scored[f"{lab}/{variant}"] = sorted(got)
    print(f"model formats: {json.dumps(formats, indent=1)}\nscored: {json.dumps(scored, indent=1)}")
    assert {lab for lab in (k.split("/")[0] for k in scored)} == trained
    # lab 07's registry: one model, a version per variant, the champion chosen on validation loss
    champion = json.loads((repo / "results" / "lab07" / "compare" / "metrics.json").read_text())["summary"]["champion"]
    assert client.get_model_version_by_alias("labflow-lab07", "champion").run_id == models[("lab07", champion)]["run_id"]


def test_lab09s_model_is_served_by_mlflow_and_answers_a_rest_prediction(repo):
    """`mlflow models serve` (local environment, loopback) for lab 09's digit CNN: a REST call
    gives the predictions the model gives in process."""
    import urllib.request

    import mlflow.pytorch
    import torch

    info = _logged_models(repo)[("lab09", "cnn")]
    assert info["model_format"] == "pt2"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**_env(), "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}
    proc = subprocess.Popen(["mlflow", "models", "serve", "-m", info["model_uri"], "--env-manager", "local",
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], cwd=repo, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "mlflow models serve did not answer /ping in 120 s"
            time.sleep(1)
        x = _test_split(repo, "lab09")["x_test"][:4]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", method="POST",
                                         data=json.dumps({"inputs": x.numpy().tolist()}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            served = torch.tensor(json.loads(answer.read())["predictions"])
        mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
        with torch.no_grad():
            local = mlflow.pytorch.load_model(info["model_uri"])(x)
        assert served.shape == (4, 10) and torch.allclose(served, local, atol=1e-5)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def test_lab11_looks_at_lab10s_trained_net_and_its_exact_init(repo):
    """Lab 11 recomputes lab 10's test metrics from the saved model, and its untrained twin scores
    exactly what lab 10's network scored before its first update: the same seeded init."""
    looked = json.loads((repo / "results/lab11/compare/metrics.json").read_text())
    from labflow.compare import NOT_VARIANTS

    for variant, m in looked.items():
        if variant in NOT_VARIANTS:
            continue
        trained = metrics(repo, "lab10", variant)
        assert m["test_acc"] == trained["test_acc"] == m["lab10_test_acc"]
        assert m["test_loss"] == pytest.approx(trained["test_loss"], abs=1e-6)
        assert m["init_test_loss"] == pytest.approx(trained["initial_test_loss"], abs=1e-6)
        assert m["init_test_loss"] != pytest.approx(m["test_loss"], abs=1e-3)


needs_chromium = pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium is not installed (`make setup` installs it)")


@needs_chromium
def test_report_shows_every_labs_table_and_figures_in_a_real_browser(repo):
    from chromium import dump_dom

    # Outside the repository: the pipeline's own report/ (a DVC output, its "written" minute
    # included) stays as the repro left it, for test_nothing_to_do_on_a_second_repro.
    out = repo.parent / "report-by-hand"
    sh(repo, "labflow", "report", "--out", str(out))
    index = dump_dom(out / "index.html")
    for lab in LABS:
        assert f'href="{lab}/index.html"' in index
        dom = dump_dom(out / lab / "index.html")
        assert '<table class="comparison">' in dom, lab
        loaded, total = map(int, re.search(r'data-figures="(\d+)/(\d+)"', dom).groups())
        assert total >= 2 and loaded == total, f"{lab}: {loaded}/{total} figures loaded"
        assert "workflowType=machine_learning" in dom  # the runs are linked in Model training mode
        assert re.search(r"Git commit <code>[0-9a-f]{40}</code>", dom)


def _visible_text(dom: str) -> str:
    """The words a user sees: tags, styles and runs of spaces removed."""
    dom = re.sub(r"<(style|script)\b.*?</\1>", " ", dom, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


@needs_chromium
def test_ui_addresses_open_each_labs_runs_in_a_fresh_browser(repo):
    """`labflow ui` prints per-lab addresses; in a browser with a fresh profile they land on the
    runs table (MLflow's GenAI start page shows no runs)."""
    from chromium import dump_dom

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["labflow", "ui", "--port", str(port)], cwd=repo, env=_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        lines = []
        while not (lines and lines[-1].startswith("MLflow UI on")):
            line = proc.stdout.readline()
            assert line, f"labflow ui stopped early: {lines}"
            lines.append(line.strip())
        addresses = dict(line.split() for line in lines if line.startswith("lab"))
        assert set(addresses) == set(LABS)
        deadline = time.monotonic() + 90
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "MLflow UI did not start in 90 s"
                time.sleep(0.5)
        time.sleep(2)
        for lab in ("lab01", "lab04"):
            assert addresses[lab].endswith("?workflowType=machine_learning")
            dom = dump_dom(addresses[lab], wait_ms=20000)
            assert f"{lab} comparison" in dom, f"{lab}: the runs table did not open at {addresses[lab]}"
        # A train run's page: MLflow's Source, Version (commit), User and Datasets are filled, and
        # its model is listed with the metrics linked to it; the lab's Models tab lists the model.
        info = _logged_models(repo)[("lab09", "cnn")]
        import mlflow

        run = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}").get_run(info["run_id"])
        page = addresses["lab09"].replace("?", f"/runs/{info['run_id']}?")
        text = _visible_text(dump_dom(page, wait_ms=20000))
        assert f"Created by {run.data.tags['mlflow.user']}" in text, text[:3000]
        assert re.search(rf"Source train\.py( \S+)? {run.data.tags['git.commit'][:7]}", text), text[:3000]
        assert re.search(r"Datasets lab09/train \([0-9a-f]{32}\.dir\) training", text), text[:3000]
        assert "Logged models (1)" in text and re.search(r"final_test_acc [0-9.]+ model", text), text[:3000]
        models = _visible_text(dump_dom(addresses["lab09"].replace("?", "/models?"), wait_ms=20000))
        assert re.search(r"model Ready .* train\.py cnn ", models), models[:3000]
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)


def test_nothing_to_do_on_a_second_repro(repo):
    out = sh(repo, "dvc", "status", "--json").stdout
    assert set(json.loads(out)) <= {"preflight"}  # preflight is always_changed by design


def test_same_stage_twice_gives_identical_metrics(repo):
    """...and `dvc metrics diff` after that rerun lists nothing: timings are not metrics."""
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "rerun baseline", check=False)
    before = metrics(repo, "lab03", "mini_batch")
    sh(repo, "dvc", "repro", "-f", "-s", "labs/lab03/dvc.yaml:train@mini_batch-42", "labs/lab03/dvc.yaml:evaluate")
    assert metrics(repo, "lab03", "mini_batch") == before
    assert json.loads(sh(repo, "dvc", "metrics", "diff", "--json").stdout) == {}


def _params_files(repo: Path) -> dict[Path, str]:
    return {f: f.read_text() for f in [repo / "params.yaml", *sorted(repo.glob("labs/*/params.yaml"))]}


def _restore(files: dict[Path, str]) -> None:
    for file, text in files.items():
        file.write_text(text)


def test_bad_params_stop_the_pipeline_before_any_stage_and_keep_outputs(repo):
    saved = (repo / "results/lab01/variants/mlp/seed42/metrics.json").read_text()
    original = _params_files(repo)
    p = params(repo)
    p["lab01"]["train"]["lr"] = "fast"
    write_params(repo, p)
    try:
        proc = sh(repo, "dvc", "repro", check=False)
        assert proc.returncode != 0
        assert "lab01.train.lr" in proc.stderr + proc.stdout
        assert "Running stage 'labs/lab01/dvc.yaml:train@mlp-42'" not in proc.stdout
        assert (repo / "results/lab01/variants/mlp/seed42/metrics.json").read_text() == saved
    finally:
        _restore(original)


def test_unreachable_tracking_server_stops_before_training(repo):
    saved = (repo / "results/lab01/variants/mlp/seed42/metrics.json").read_text()
    model = (repo / "models/lab01/mlp/seed42/model.pt").read_bytes()
    original = _params_files(repo)
    p = params(repo)
    p["lab01"]["train"]["lr"] = 0.002  # a change that would retrain lab01
    write_params(repo, p)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        env = _env() | {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{sock.getsockname()[1]}"}
        try:
            proc = sh(repo, "dvc", "repro", check=False, env=env)
        finally:
            _restore(original)
    assert proc.returncode != 0
    assert "unreachable" in proc.stderr + proc.stdout
    assert (repo / "results/lab01/variants/mlp/seed42/metrics.json").read_text() == saved
    assert (repo / "models/lab01/mlp/seed42/model.pt").read_bytes() == model


def test_exp_run_with_a_new_learning_rate_shows_in_exp_show_and_metrics_diff(repo):
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "smoke baseline")
    old = metrics(repo, "lab03", "mini_batch")
    proc = sh(repo, "dvc", "exp", "run", "-n", "lr02", "-S", "labs/lab03/params.yaml:lab03.variants.mini_batch.lr=0.2")
    assert "Running stage 'labs/lab03/dvc.yaml:train@mini_batch-42'" in proc.stdout
    assert "Running stage 'labs/lab03/dvc.yaml:train@stochastic-42'" not in proc.stdout  # other variants untouched
    assert metrics(repo, "lab03", "mini_batch")["test_loss"] != old["test_loss"]
    diff = json.loads(sh(repo, "dvc", "metrics", "diff", "--json").stdout)
    assert set(diff) == {"results/lab03/compare/metrics.json"}, diff  # one metrics file per lab
    changed = diff["results/lab03/compare/metrics.json"]
    assert changed["mini_batch.test_loss"]["old"] == pytest.approx(old["test_loss"])
    # nothing else moved, but for a lesson whose verdict the new lr flips (`lessons.<claim>`: +1 / -1)
    assert all(key.startswith(("mini_batch.", "lessons.")) for key in changed), changed
    shown = sh(repo, "dvc", "exp", "show", "--json").stdout
    assert "lab03.variants.mini_batch.lr" in shown or '"lr": 0.2' in shown
    # The Git history of an experiment stays readable: a few dozen columns, not a thousand.
    header = sh(repo, "dvc", "exp", "show", "--only-changed", "--csv").stdout.splitlines()[0].split(",")
    print(f"dvc exp show --only-changed: {len(header)} columns: {header}")
    assert len(header) <= 30, header
    table = sh(repo, "labflow", "exp", "lab03").stdout
    print(table)
    assert "lr02" in table and "mini_batch" in table and "lr=0.2" in table
    assert max(map(len, table.splitlines())) <= 80


def test_a_queued_experiment_runs_only_the_stages_its_change_touches(repo):
    """`dvc exp run --queue` runs in a fresh copy of the repository: every output there must
    come from Git or the DVC cache, else every lab would look changed and retrain."""
    import mlflow

    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "queue baseline", check=False)  # nothing to commit is fine
    sh(repo, "dvc", "exp", "run", "--queue", "-n", "queued-l2", "-S", "labs/lab05/params.yaml:lab05.variants.l2.weight_decay=0.05")
    started = time.monotonic()
    sh(repo, "dvc", "queue", "start", "-j", "1")
    status = ""
    while time.monotonic() - started < 600:
        status = sh(repo, "dvc", "queue", "status").stdout
        if re.search(r"queued-l2\s+\S+ \S+\s+(Success|Failed)", status):
            break
        time.sleep(2)
    print(f"queued one-variant experiment done after {time.monotonic() - started:.0f} s")
    assert re.search(r"queued-l2\s+\S+ \S+\s+Success", status), status
    logs = sh(repo, "dvc", "queue", "logs", "queued-l2").stdout
    ran = sorted(re.findall(r"Running stage '([^']+)'", logs))
    # and the report, which reads every lab's results
    assert ran == ["labs/lab05/dvc.yaml:evaluate", "labs/lab05/dvc.yaml:train@l2-42", "preflight", "report"], logs[-3000:]
    # MLflow: the experiment's runs are exactly that variant and its lab's comparison, nested and finished.
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    tagged = [r for exp in client.search_experiments() for r in client.search_runs(
        [exp.experiment_id], "tags.`dvc.exp_name` = 'queued-l2'")]
    by_stage = {(r.data.tags["labflow.lab"], r.data.tags["labflow.stage"], r.data.tags.get("labflow.variant")): r
                for r in tagged}
    assert set(by_stage) == {("lab05", "train", "l2"), ("lab05", "evaluate", None)}
    assert all(r.info.status == "FINISHED" for r in tagged)
    child, parent = by_stage[("lab05", "train", "l2")], by_stage[("lab05", "evaluate", None)]
    assert child.data.params["weight_decay"] == "0.05"
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    # Both comparisons keep their runs: the new one nests only the run it retrained and links the
    # three it reused, which stay nested under the comparison that compared them first.
    assert parent.data.tags["labflow.nested_run_ids"] == child.info.run_id
    reused = [c for c in parent.data.tags["labflow.child_run_ids"].split(",") if c != child.info.run_id]
    assert len(reused) == 3
    [earlier] = {client.get_run(c).data.tags["mlflow.parentRunId"] for c in reused}
    assert earlier != parent.info.run_id
    kept = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{earlier}'")
    assert sorted(r.data.tags["labflow.variant"] for r in kept) == ["dropout", "l1", "l2", "none"]
    assert all(r in parent.data.tags["mlflow.note.content"] for r in reused)  # linked on its page


def _stale_stages(repo: Path) -> set[str]:
    return set(json.loads(sh(repo, "dvc", "status", "--json").stdout)) - {"preflight"}


def test_a_lab10_variant_change_reruns_only_it_and_the_labs_that_read_it(repo):
    """Lab 11 reads lab 10's ResNet18 as a DVC dependency: an experiment on that variant reaches it
    (lab 13 trains its own source backbone now and stays put); one on VGG stays in lab 10."""
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "lab10 baseline", check=False)
    assert _stale_stages(repo) == set()
    proc = sh(repo, "dvc", "exp", "run", "-S", "labs/lab10/params.yaml:lab10.variants.resnet18.width=0.5")
    ran = set(re.findall(r"Running stage '([^']+)'", proc.stdout)) - {"preflight"}
    # (and the report, which reads every lab's results)
    assert ran == {"labs/lab10/dvc.yaml:train@resnet18-42", "labs/lab10/dvc.yaml:evaluate", "labs/lab11/dvc.yaml:evaluate",
                   "report"}, proc.stdout[-3000:]
    assert _stale_stages(repo) == set()
    proc = sh(repo, "dvc", "exp", "run", "-S", "labs/lab10/params.yaml:lab10.variants.vgg.width=0.5")
    ran = set(re.findall(r"Running stage '([^']+)'", proc.stdout)) - {"preflight"}
    assert ran == {"labs/lab10/dvc.yaml:train@vgg-42", "labs/lab10/dvc.yaml:evaluate", "report"}, proc.stdout[-3000:]


def test_a_teammate_pulls_the_trained_models_from_a_dvc_remote_instead_of_training(repo, tmp_path):
    """`dvc push` to a remote (a local folder here; S3/SSH the same way), then in a fresh clone
    `dvc pull`: nothing left to reproduce and the same metrics, without training."""
    remote = tmp_path / "remote"
    sh(repo, "dvc", "remote", "add", "-f", "-d", "team", str(remote))
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "results to share", check=False)
    sh(repo, "dvc", "push")
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    assert not (clone / "models").exists()
    sh(clone, "dvc", "pull")
    assert _stale_stages(clone) == set()  # `dvc repro` would run nothing but the preflight check
    ours = json.loads(sh(repo, "dvc", "metrics", "show", "--json").stdout)
    theirs = json.loads(sh(clone, "dvc", "metrics", "show", "--json").stdout)
    assert theirs == ours and ours  # keyed by revision ("" is the workspace in DVC 3's JSON)
    assert (clone / "models" / "lab01" / "mlp" / "seed42" / "model.pt").read_bytes() == \
        (repo / "models" / "lab01" / "mlp" / "seed42" / "model.pt").read_bytes()
    proc = sh(clone, "dvc", "repro")
    assert not set(re.findall(r"Running stage '([^']+)'", proc.stdout)) - {"preflight"}, proc.stdout[-2000:]


def test_a_lab16_training_knob_shows_its_bleu_change_in_metrics_diff(repo):
    """Issue 8: `dvc exp run -S labs/lab16/params.yaml:lab16.<a training knob>=...` retrains both variants (the knob is
    shared) and `dvc metrics diff` shows how held-out BLEU moved, in lab 16's one metrics file."""
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "lab16 baseline", check=False)
    proc = sh(repo, "dvc", "exp", "run", "-n", "lab16-lr", "-S", "labs/lab16/params.yaml:lab16.train.lr=0.01")
    ran = set(re.findall(r"Running stage '([^']+)'", proc.stdout))
    assert {"labs/lab16/dvc.yaml:train@attention-42", "labs/lab16/dvc.yaml:train@no_attention-42", "labs/lab16/dvc.yaml:evaluate"} <= ran, ran
    assert not {s for s in ran if s.startswith(("lab15", "lab17"))}, ran  # nothing else retrained
    diff = json.loads(sh(repo, "dvc", "metrics", "diff", "--json").stdout)
    changed = diff["results/lab16/compare/metrics.json"]
    print({k: v for k, v in changed.items() if "bleu" in k})
    for variant in ("attention", "no_attention"):
        assert f"{variant}.test_bleu" in changed, sorted(changed)
        assert changed[f"{variant}.test_bleu"]["new"] != changed[f"{variant}.test_bleu"]["old"]
    assert not [k for k in changed if k.endswith("_seconds")]  # timings are not metrics


def test_three_seeds_on_lab04_give_mean_std_and_noise_verdicts(repo):
    """Last in this file: it leaves seeds=[42,43,44] in the workspace. Only lab 04's new seeds train."""
    import mlflow

    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "seeds baseline", check=False)
    before = metrics(repo, "lab04", "adam")
    proc = sh(repo, "dvc", "exp", "run", "-n", "three-seeds", "-S", "seeds=[42,43,44]", "labs/lab04/dvc.yaml:evaluate")
    ran = set(re.findall(r"Running stage '([^']+)'", proc.stdout)) - {"preflight"}
    variants = list(params(repo)["lab04"]["variants"])
    assert ran == {f"labs/lab04/dvc.yaml:train@{v}-{s}" for v in variants for s in (43, 44)} | {"labs/lab04/dvc.yaml:evaluate"}, ran
    assert metrics(repo, "lab04", "adam") == before  # seed 42's run was not retrained
    compare = repo / "results" / "lab04" / "compare"
    seeds_md = (compare / "seeds.md").read_text()
    print(seeds_md)
    assert "Training seeds: 42, 43, 44" in seeds_md
    for v in variants:
        assert re.search(rf"\| test_acc \| {v} \| [0-9.]+ ± [0-9.e-]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|", seeds_md), v
    assert re.search(r"\| test_acc \| sgd \| adam \| [-+][0-9.]+ \| [0-9.e-]+ \| (within seed noise|real)", seeds_md)
    bands = json.loads((compare / "metrics.json").read_text())["seed_bands"]
    assert set(bands) == set(variants) and bands["adam"]["test_acc_std"] >= 0
    assert (compare / "figures" / "seed_bands.png").stat().st_size > 0
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("labflow-lab04")
    runs = client.search_runs([exp.experiment_id], "tags.`dvc.exp_name` = 'three-seeds'")
    parent = next(r for r in runs if r.data.tags.get("labflow.role") == "comparison")
    assert parent.data.params["seeds"] == "42,43,44"
    assert "adam.test_acc_mean" in parent.data.metrics and "adam.test_acc_std" in parent.data.metrics
    assert "seeds.md" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    children = parent.data.tags["labflow.child_run_ids"].split(",")
    assert len(children) == 3 * len(variants)  # seed 42's runs too, from before the experiment
    seeds = sorted(client.get_run(c).data.params["seed"] for c in children)
    assert seeds == sorted(str(s) for s in (42, 43, 44) for _ in variants)


def _undeclared(files: list[str], deps: list) -> list[str]:
    declared = [d for d in deps if isinstance(d, str)]
    return [f for f in files if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in declared)]


def _stage_of(record: dict) -> str:
    """The dvc.yaml address of the stage definition a record comes from (matrix items share deps)."""
    stage, argv = record["stage"], record["argv"]
    if stage in ("download", "report"):
        return stage
    return f"labs/{argv[0]}/dvc.yaml:{stage}"


def test_every_stage_declares_the_code_it_runs(repo):
    """Every labflow source file a stage executed (its sys.modules at the end, in the warm runner's
    forked child or in its own process) is among that stage's DVC deps, itself or under a declared
    folder: otherwise editing that file would leave the stage's result stale and `dvc status` clean."""
    records = [json.loads(f.read_text()) for f in sorted((repo.parent / "imports").glob("*.json"))]
    # One stage again in a process of its own (no runner): a download, which rewrites the same bytes
    # and reads no seed, so no other test's changes to the workspace matter.
    audit = repo.parent / "imports-in-process"
    sh(repo, sys.executable, "stages/download.py", "mnist",
       env={**_env(), "LABFLOW_IMPORT_AUDIT": str(audit), "LABFLOW_STAGE_RUNNER": "0"})
    in_process = [json.loads(f.read_text()) for f in audit.glob("*.json")]
    assert len(in_process) == 1 and {r["pid"] for r in in_process}.isdisjoint(r["pid"] for r in records)
    records += in_process
    stages = all_stages(repo)
    expected = {"report", "download"} | {f"labs/{lab}/dvc.yaml:{s}" for lab in LABS for s in lab_stages(lab)}
    seen = {_stage_of(r) for r in records if r["stage"] != "preflight"}  # preflight always runs: nothing to go stale
    assert seen == expected, f"stages that recorded nothing: {sorted(expected - seen)}"
    problems = []
    for record in records:
        if record["stage"] == "preflight":
            continue
        address = _stage_of(record)
        spec = stages[address]
        deps = (spec.get("do") or spec).get("deps") or []
        assert any(f.startswith("src/labflow/") for f in record["files"]), record
        for file in _undeclared(record["files"], deps):
            problems.append(f"{address} ({' '.join(record['argv'])}) runs {file} but does not declare it")
    assert not problems, "add these files (or their room) to the stages' deps:\n" + "\n".join(sorted(set(problems)))


def test_the_import_audit_names_an_undeclared_file():
    deps = ["stages/train.py", "src/labflow/frame", "src/labflow/labs/lab01_mlp", "data/processed/lab01"]
    files = ["src/labflow/frame/base.py", "src/labflow/labs/lab01_mlp/lab.py", "src/labflow/nets/common.py",
             "src/labflow/frame_extra.py"]
    assert _undeclared(files, deps) == ["src/labflow/nets/common.py", "src/labflow/frame_extra.py"]
