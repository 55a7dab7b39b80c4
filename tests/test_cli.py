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
