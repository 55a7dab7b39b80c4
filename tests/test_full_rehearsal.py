"""The full profile, rehearsed end to end (``labflow rehearse``, ~25 min here): every lab's
full-profile stages through ``dvc repro`` in a copy of the repository, on fixtures of the
canonical data sets in their canonical formats served on loopback, pretrained weights as
same-architecture stand-ins, networks and images at full size, epochs cut to 2."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import REPO
from labflow.labs import LABS, reads_from

# One rehearsal for the module, set up within the first test: ~25 min idle, more on a busy machine
# (the suite's default per-test limit is 15 min).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    from labflow.rehearsal.run import rehearse

    work = tmp_path_factory.mktemp("rehearsal")
    yield rehearse(work, root=REPO, echo=lambda *_: None), work
    # ~8 GB of full-size models, checkpoints and fixtures: pytest keeps its last three temporary
    # folders, so only the log, rehearsal.json and cost.md stay.
    for bulky in ("repo", "fixtures", "downloads"):
        shutil.rmtree(work / bulky, ignore_errors=True)


def test_every_labs_full_profile_runs_end_to_end(rehearsal):
    found, work = rehearsal
    log = (work / "repro.log").read_text()
    assert found["failed_stages"] == [] and found["returncode"] == 0, log[-8000:]
    assert {lab for lab, info in found["labs"].items() if info["compared"]} == set(LABS)


def test_it_was_the_full_profile_on_the_served_fixtures(rehearsal):
    found, work = rehearsal
    repo = work / "repo"
    manifests = list((repo / "data" / "raw").glob("*/manifest.json"))
    assert len(manifests) >= 15
    for manifest_file in manifests:
        manifest = json.loads(manifest_file.read_text())
        assert manifest["profile"] == "full", manifest_file
        if manifest["source"].startswith("online"):
            assert manifest["source"].startswith("online: http://127.0.0.1:"), manifest_file
    params = {(lab, s["variant"]): s["parameters"] for lab, info in found["labs"].items() for s in info["train_stages"]}
    # Full-width networks (learned weights; the classifier heads are the labs' own):
    assert params[("lab10", "vgg")] > 14e6 and params[("lab10", "resnet18")] > 11e6  # VGG16, ResNet18 at width 1
    assert params[("lab12", "retinanet")] > 30e6  # RetinaNet ResNet50-FPN v2 from the COCO stand-in
    assert params[("lab17", "finetune")] > 66e6  # DistilBERT
    assert params[("lab19", "dice")] > 24e6  # UNet on ResNet34, depth 5


def test_every_train_stage_says_what_the_real_run_costs(rehearsal):
    found, work = rehearsal
    for lab, info in found["labs"].items():
        assert info["other_stages"], lab  # evaluate at least
        if reads_from(lab):
            assert not info["train_stages"], lab
            continue
        assert info["train_stages"], lab
        for stage in info["train_stages"]:
            assert stage["seconds_per_step"] > 0 and stage["peak_rss_mb"] > 0 and stage["parameters"] > 0, (lab, stage)
            # the real run takes more steps than the rehearsal (more epochs, more rows)
            assert stage["full_steps"] > stage["rehearsal_updates"] and stage["full_hours"] > 0, (lab, stage)
    table = (work / "cost.md").read_text()
    assert all(f"| {lab} |" in table for lab in LABS) and "| all |" in table
