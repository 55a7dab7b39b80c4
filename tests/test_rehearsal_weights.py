"""The full-profile rehearsal's pretrained-weights stand-ins (labflow.rehearsal.fixtures.weights):
each is read by the full profile's own loading code, with the fixture's params and environment,
and the model it builds holds the stand-in's weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from labflow.rehearsal.fixture import sha256_of
from labflow.rehearsal.fixtures import weights as w

ROOT = Path(__file__).resolve().parents[1]


def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def learned(state: dict) -> int:
    """Learned weights in a state dict (BatchNorm's running statistics and counters left out)."""
    return sum(v.numel() for k, v in state.items() if "running_" not in k and "num_batches_tracked" not in k)


def test_builders_are_named_for_params_data_or_the_pretrained_model():
    assert set(w.BUILDERS) == {"resnet18_imagenet", "coco_detectors", "distilbert_base_uncased",
                               "smp_resnet34_imagenet"}


def test_resnet18_imagenet_is_fetched_by_the_downloader_and_loaded_by_lab13(server, tmp_path):
    """Served over loopback HTTP under base_url, pinned by the fixture's params merged into
    params.yaml's data.resnet18_imagenet, fetched by labflow's downloader (full profile), then
    loaded by lab 13's load_backbone."""
    import yaml
    from torchvision.models import resnet18

    from labflow.data import datasets as ds
    from labflow.frame.config import PinnedSources
    from labflow.labs.lab13_transfer.lab import build_net, load_backbone

    fx = w.build_resnet18_imagenet(tmp_path / "fx", rng())
    assert list(fx.served) == ["resnet18-f37072fd.pth"] and not fx.env
    path = fx.served["resnet18-f37072fd.pth"]
    state = torch.load(path, weights_only=True)
    # torchvision's layout, without the BatchNorm counters its 2017 weights predate
    assert list(state) == [k for k in resnet18().state_dict() if not k.endswith("num_batches_tracked")]
    assert not sha256_of(path).startswith(ds.RESNET18_IMAGENET_PREFIX)  # not torchvision's file: pinned in pins
    for url_path, file in fx.served.items():
        server.serve(f"/models/{url_path}", file.read_bytes())

    data = yaml.safe_load((ROOT / "params.yaml").read_text())["data"]["resnet18_imagenet"]
    online = {**data["online"], "base_url": server.url + "/models/", **fx.params["online"]}
    source = PinnedSources.model_validate({**data, "online": online}).online
    dest = tmp_path / "raw" / "resnet18_imagenet"
    manifest = ds.fetch("resnet18_imagenet", "full", source, dest, progress=False, cache=tmp_path / "cache")
    assert manifest["kind"] == "weights" and manifest["sha256"] == sha256_of(path)
    assert server.hits == {"/models/resnet18-f37072fd.pth": 1}

    model = build_net({"arch": "resnet18_imagenet", "in_channels": 3}, 5)
    load_backbone(model, ds.load_weights(dest))
    assert torch.equal(model.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    assert torch.equal(model.bn1.running_var, state["bn1.running_var"])
    assert learned(state) == 11_689_512  # torchvision's num_params for ResNet18_Weights.IMAGENET1K_V1


def test_coco_detectors_load_through_torch_hubs_cache(tmp_path, monkeypatch):
    """Lab 12's build_detector(weights="coco") runs torchvision's own loading (torch.hub's cache under
    TORCH_HOME): the stand-ins' file names are those the Weights enums' URLs end with, their sha256
    is not the one those names promise, and torch.hub loads them as they are (it checks the hash
    only when it downloads)."""
    from labflow.nets.detectors import build_detector

    fx = w.build_coco_detectors(tmp_path / "fx", rng())
    assert set(fx.env) == {"TORCH_HOME"} and not fx.served and not fx.params
    monkeypatch.setenv("TORCH_HOME", fx.env["TORCH_HOME"])
    names = {"ssdlite320_mobilenet_v3_large": "ssdlite320_mobilenet_v3_large_coco-a79551df.pth",
             "retinanet_resnet50_fpn_v2": "retinanet_resnet50_fpn_v2_coco-5905b1c5.pth"}
    checkpoints = Path(fx.env["TORCH_HOME"]) / "hub" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == sorted(names.values())
    probes = {"ssdlite320_mobilenet_v3_large": "head.regression_head.module_list.5.1.weight",
              "retinanet_resnet50_fpn_v2": "backbone.body.layer4.2.conv3.weight"}
    for arch, enum in w.coco_weights_enums().items():
        path = checkpoints / names[arch]
        assert w.hub_checkpoint(Path(fx.env["TORCH_HOME"]), enum) == path
        assert not sha256_of(path).startswith(names[arch].split("-")[-1][:8])
        state = torch.load(path, weights_only=True)
        assert learned(state) == enum.meta["num_params"]  # the same architecture as torchvision's checkpoint
        model = build_detector(arch, 21, 320, weights="coco")
        assert torch.equal(model.state_dict()[probes[arch]], state[probes[arch]])
        assert model.head.classification_head is not None  # lab 12's new 21-class head replaced COCO's


def test_smp_resnet34_stand_in_sits_where_smp_looks(tmp_path):
    """smp 0.6 asks the Hugging Face Hub for smp-hub/resnet34.imagenet at a pinned revision; the
    stand-in is that revision's config.json and model.safetensors in huggingface_hub's cache layout."""
    from huggingface_hub import try_to_load_from_cache
    from safetensors.torch import load_file

    fx = w.build_smp_resnet34_imagenet(tmp_path / "fx", rng())
    assert fx.env == {"HF_HOME": str((tmp_path / "fx" / "hf_home").resolve()), "HF_HUB_OFFLINE": "1"}
    repo_id, revision = w.smp_weights_source()
    assert repo_id == "smp-hub/resnet34.imagenet"
    cache = Path(fx.env["HF_HOME"]) / "hub"
    found = {name: try_to_load_from_cache(repo_id, name, cache_dir=cache, revision=revision)
             for name in ("config.json", "model.safetensors")}
    assert all(isinstance(p, str) for p in found.values())
    state = load_file(found["model.safetensors"])
    assert set(state) == set(w.smp_encoder().state_dict())
    assert json.loads(Path(found["config.json"]).read_text())["mean"] == [0.485, 0.456, 0.406]


LOAD_HF_STAND_INS = r"""
import json, sys
from pathlib import Path
from types import SimpleNamespace

import torch
from safetensors.torch import load_file

from labflow.labs.lab17_transformer_text.lab import freeze_lower, load_pretrained, load_tokenizer
from labflow.labs.lab19_segmentation.lab import build_unet

hub = Path(sys.argv[1]) / "hub"
out = {}
# lab 17's full profile: pretrained: {source: hub, name: distilbert-base-uncased, max_length: 512}
cfg = SimpleNamespace(source="hub", name="distilbert-base-uncased", max_length=512)
tok = load_tokenizer(cfg)
out["tokenizer"] = [type(tok).__name__, tok.vocab_size, tok.pad_token_id,
                    tok(["Hello, World! An unbelievable film."], truncation=True, max_length=512)["input_ids"][0]]
net = load_pretrained(cfg, 2, 0).net
saved = load_file(next(hub.glob("models--distilbert-base-uncased/snapshots/*/model.safetensors")))
out["distilbert"] = [type(net).__name__, freeze_lower(net, 0),
                     all(torch.equal(net.state_dict()[k], v) for k, v in saved.items() if k.startswith("distilbert."))]
# lab 19's full profile: encoder resnet34, encoder_weights imagenet, depth 5
unet = build_unet("resnet34", 5, [256, 128, 64, 32, 16], 3, "imagenet")
saved = load_file(next(hub.glob("models--smp-hub--resnet34.imagenet/snapshots/*/model.safetensors")))
out["smp"] = [len(saved), all(torch.equal(unet.encoder.state_dict()[k], v) for k, v in saved.items())]
print(json.dumps(out))
"""


@pytest.mark.slow
def test_hugging_face_stand_ins_load_offline_in_labs_17_and_19(tmp_path):
    """Both Hugging Face stand-ins built into one folder (one HF_HOME, so their env merge), then lab
    17's load_tokenizer/load_pretrained and lab 19's build_unet run in a process started with that
    env, as a stage would be (huggingface_hub reads HF_HOME and HF_HUB_OFFLINE at import)."""
    out = tmp_path / "fx"
    fx17 = w.build_distilbert_base_uncased(out, rng())
    fx19 = w.build_smp_resnet34_imagenet(out, rng())
    assert fx17.env == fx19.env == {"HF_HOME": str((out / "hf_home").resolve()), "HF_HUB_OFFLINE": "1"}
    repo = out / "hf_home" / "hub" / "models--distilbert-base-uncased"
    revision = (repo / "refs" / "main").read_text()
    assert sorted(p.name for p in (repo / "snapshots" / revision).iterdir()) == \
        ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt"]

    env = {**os.environ, **fx17.env, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", LOAD_HF_STAND_INS, fx17.env["HF_HOME"]], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    name, vocab_size, pad_id, ids = got["tokenizer"]
    assert vocab_size == 30522 and pad_id == 0
    assert ids == [101, 7592, 1010, 2088, 999, 2019, 23653, 2143, 1012, 102]  # BERT uncased WordPiece ids
    assert got["distilbert"] == ["DistilBertForSequenceClassification", 66_955_010, True]
    assert got["smp"] == [len(w.smp_encoder().state_dict()), True]


def test_hf_snapshot_layout(tmp_path):
    """blobs named by etag, snapshot symlinks into them, refs/main naming the snapshot."""
    from huggingface_hub import try_to_load_from_cache

    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"x" * 10)
    snapshot = w.write_hf_snapshot(tmp_path / "hf", "org/name", {"a.json": tmp_path / "a.json",
                                                               "model.safetensors": tmp_path / "model.safetensors"})
    repo = tmp_path / "hf" / "hub" / "models--org--name"
    assert (repo / "refs" / "main").read_text() == snapshot.name
    assert os.readlink(snapshot / "model.safetensors") == "../../blobs/" + sha256_of(snapshot / "model.safetensors")
    assert os.readlink(snapshot / "a.json") == "../../blobs/9e26dfeeb6e641a33dae4961196235bdb965b21b"  # git hash-object
    assert (snapshot / "a.json").read_text() == "{}"
    assert try_to_load_from_cache("org/name", "a.json", cache_dir=tmp_path / "hf" / "hub") == str(snapshot / "a.json")
