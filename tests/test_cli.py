"""The `labflow` command: list, check, ui."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from labflow.cli import main
from labflow.labs import LABS
from conftest import REPO, read_params


def test_list_names_every_lab_variant_and_profile(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for lab in LABS:
        assert lab in out
    for profile in ("smoke", "quick", "full"):
        assert f"data ({profile}" in out
    assert "stochastic" in out and "sha256-checked" in out
    # Labs that switch data set by profile show the one each profile really uses.
    lab04 = out[out.index("lab04"):out.index("lab05")]
    assert "data (full ): cifar10" in lab04 and "data (quick): fashion_mnist" in lab04


def test_list_full_profile_shows_sources_download_sizes_and_their_total(capsys, monkeypatch):
    import re

    from labflow import download_sizes as sizes

    monkeypatch.chdir(REPO)
    assert main(["list", "--profile", "full"]) == 0
    out = capsys.readouterr().out
    assert "data (quick" not in out and "data (smoke" not in out
    lab10 = out[out.index("lab10"):out.index("lab11")]
    assert "cifar-10-python.tar.gz (sha256-checked), 170 MB" in lab10
    lab12 = out[out.index("lab12"):out.index("lab13")]
    assert "VOCtrainval_06-Nov-2007.tar" in lab12 and "weights (full): torchvision COCO weights" in lab12
    # The total counts each data set once, and every pretrained model.
    used = {m for m in re.findall(r"data \(full \): (\w+):", out) if m in sizes.DATA_SETS}
    expected = sum(sizes.DATA_SETS[d].bytes for d in used) + sum(w.bytes for _, w in sizes.PRETRAINED.values())
    total = re.search(r"full profile downloads: ~([\d,]+) MB in all", out)
    assert total and int(total.group(1).replace(",", "")) == round(expected / 1e6)


def test_check_reports_bad_params(tmp_path, monkeypatch, capsys):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({**read_params(), "seed": -1}))
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LABFLOW_ROOT", raising=False)
    assert main(["check"]) == 1
    assert "seed" in capsys.readouterr().err


@pytest.mark.slow
def test_ui_serves_the_store_on_loopback(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["LABFLOW_STORE_ROOT"] = str(tmp_path)
    cli = Path(sys.executable).parent / "labflow"
    proc = subprocess.Popen([str(cli), "ui", "--port", str(port)], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
                time.sleep(1)
        else:
            pytest.fail("MLflow UI did not answer within 120 s")
        assert (tmp_path / "mlflow.db").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
