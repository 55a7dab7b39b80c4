"""Lab 13: the ResNet's pieces, loading the source backbone, the two phases (each scored when it
ends, resumable), frozen stages left untouched, the source trained apart from the target's classes,
and the stages run on smoke data.

The unit tests make stand-in backbones in the format the preprocess stage saves the source in
(``{"state_dict", "info"}`` with ``info`` = ``architectures.build``'s arguments).
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
import yaml
from torch import nn

from labflow.frame.config import ConfigError, parse_params
from labflow.labs.lab13_transfer import lab
from labflow.nets.architectures import build
from labflow.train import TensorBatches, fit

INFO = {"arch": "resnet18", "in_channels": 1, "n_classes": 10, "width": 0.0625, "image_size": 28}


def standin_backbone(path, info=INFO, seed=7) -> dict:
    """A ResNet18 saved the way lab 10 saves it; its weights differ from any seeded target net."""
    torch.manual_seed(seed)
    model = build(**info)
    with torch.no_grad():  # running statistics a fresh net would not have, so loading them shows
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.9, 1.1)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "info": dict(info)}, path)
    return model.state_dict()


def tiny_net(n_classes=3) -> nn.Module:
    torch.manual_seed(0)
    return build(**{**INFO, "n_classes": n_classes})


# --------------------------------------------------------------------------- the network


@pytest.mark.parametrize("first", lab.PIECES)
def test_pieces_and_split_are_the_forward_pass(first):
    model = tiny_net().eval()
    x = torch.randn(3, 1, 28, 28)
    prefix, rest = lab.split(model, first)
    assert torch.allclose(rest(prefix(x)), model(x), atol=1e-6)
    assert torch.allclose(nn.Sequential(*lab.pieces(model).values())(x), model(x), atol=1e-6)


def test_pieces_fit_torchvisions_imagenet_resnet18():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18(num_classes=5).eval()
    x = torch.randn(2, 3, 64, 64)
    prefix, rest = lab.split(model, "layer3")
    assert torch.allclose(rest(prefix(x)), model(x), atol=1e-5)
    owned = {id(p) for piece in lab.pieces(model).values() for p in piece.parameters()}
    assert owned == {id(p) for p in model.parameters()}  # every weight belongs to exactly one piece


def test_load_backbone_takes_everything_but_the_classifier(tmp_path):
    source = standin_backbone(tmp_path / "model.pt")
    model = tiny_net(n_classes=3)
    head = copy.deepcopy(model.fc.state_dict())
    lab.load_backbone(model, tmp_path / "model.pt")
    for key, value in model.state_dict().items():
        if key.startswith("fc."):
            assert torch.equal(value, head[key.removeprefix("fc.")])  # the new head stays
        else:
            assert torch.equal(value, source[key]), key  # conv, batch-norm weights and running statistics
    wider = build(**{**INFO, "width": 0.125})
    with pytest.raises(RuntimeError, match="size mismatch"):
        lab.load_backbone(wider, tmp_path / "model.pt")


def test_plan_per_variant(raw_params):
    variants = parse_params({**raw_params, "profile": "quick"}).lab13.variants
    assert lab.plan(variants["frozen"]) == (("head",), None)
    assert lab.plan(variants["partial"]) == (("head",), ("layer3", "layer4", "head"))
    assert lab.plan(variants["scratch"]) == ((*lab.RESNET_STAGES, "head"), None)
    assert lab.plan(variants["finetune_all"]) == lab.plan(variants["scratch"])


def test_optimizer_groups_give_the_backbone_its_own_lr():
    model = tiny_net()
    opt = lab.make_optimizer(model, ["layer3", "layer4"], 0.01, 0.001)
    head, backbone = opt.param_groups
    assert head["lr"] == 0.01 and backbone["lr"] == 0.001
    assert {id(p) for p in head["params"]} == {id(p) for p in model.fc.parameters()}
    expected = {id(p) for m in (model.layer3, model.layer4) for p in m.parameters()}
    assert {id(p) for p in backbone["params"]} == expected
    assert len(lab.make_optimizer(model, [], 0.01, 0.001).param_groups) == 1


@pytest.mark.parametrize(
    "variant, message",
    [({"pretrained": True, "warmup_epochs": 2}, "nothing to unfreeze"),
     ({"pretrained": True, "backbone_lr": 0.1}, "no backbone stage trains"),
     ({"pretrained": True, "unfreeze": ["layer9"]}, "lab13.variants.bad.unfreeze"),
     ({"pretrained": True, "unfreeze": ["layer4"], "warmup_epochs": 30}, "must be below train.epochs")],
)
def test_bad_variants_name_the_problem(raw_params, variant, message):
    params = copy.deepcopy(raw_params)
    params["lab13"]["variants"]["bad"] = variant
    with pytest.raises(ConfigError, match=message):
        parse_params(params)


# --------------------------------------------------------------------------- phases


def _two_phase_fit(epochs=3, switch_at=1):
    """A real fit of the tiny ResNet: head only for ``switch_at`` epochs, then layer4 too."""
    model = tiny_net()
    initial = copy.deepcopy(model.state_dict())
    layer4_sum = lambda m: {"test_acc": sum(p.sum().item() for p in m.layer4.parameters())}  # noqa: E731
    phases = lab.Phases(model, ("head",), ("layer4", "head"), switch_at, layer4_sum)
    opt = lab.make_optimizer(model, ["layer4"], 0.01, 0.01)
    g = torch.Generator().manual_seed(0)
    batches = TensorBatches(torch.randn(32, 1, 28, 28, generator=g), torch.randint(0, 3, (32,), generator=g),
                            batch_size=8, seed=0)
    modes = []

    def loss_fn(m, batch):
        phases.set_modes()
        modes.append((phases.phase, m.layer3.training, m.layer4.training, m.fc.training))
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    fit(model, opt, batches, loss_fn, epochs=epochs, callbacks=(phases,), progress=False)
    return model, initial, phases, modes


def test_phase_one_is_scored_when_it_ends_not_after_fine_tuning():
    model, initial, phases, modes = _two_phase_fit()
    before = sum(v.sum().item() for k, v in initial.items() if k.startswith("layer4.") and "running" not in k
                 and "num_batches" not in k)
    # Scored at the end of epoch 1, while layer4 was still frozen: its weights were the initial ones.
    assert phases.phase1["test_acc"] == pytest.approx(before)
    assert phases.phase1["epochs"] == 1 and phases.phase == 2
    now = sum(p.sum().item() for p in model.layer4.parameters())
    assert now != pytest.approx(before)  # phase 2 did train layer4: the course's both-after-fine-tuning bug is gone
    for key in ("conv1.weight", "layer1.0.conv1.weight", "layer3.1.bn2.running_mean"):
        assert torch.equal(model.state_dict()[key], initial[key])  # never unfrozen: untouched, statistics too
    assert not torch.equal(model.fc.weight, initial["fc.weight"])
    # Frozen pieces run in eval mode, trained ones in train mode, in each phase.
    assert set(modes) == {(1, False, False, True), (2, False, True, True)}


def test_a_run_resumed_in_phase_two_is_unfrozen():
    _, _, done, _ = _two_phase_fit()
    fresh = lab.Phases(tiny_net(), ("head",), ("layer4", "head"), 1, lambda m: {})
    assert not any(p.requires_grad for p in fresh.pieces["layer4"].parameters())
    fresh.load_state_dict(done.state_dict())
    assert fresh.phase == 2 and fresh.phase1 == done.phase1
    assert all(p.requires_grad for p in fresh.pieces["layer4"].parameters())
    assert not any(p.requires_grad for p in fresh.pieces["layer3"].parameters())
    assert fresh.trainable_parameters(1) == sum(p.numel() for p in fresh.pieces["head"].parameters())


def test_frozen_features_are_the_prefix_in_eval_mode():
    model = tiny_net()
    prefix, _ = lab.split(model, "layer4")
    prefix.train()
    x = torch.randn(300, 1, 28, 28)
    feats = lab.frozen_features(prefix, x, torch.device("cpu"))
    prefix.eval()
    with torch.no_grad():
        assert torch.allclose(feats, prefix(x), atol=1e-6)
    assert lab.frozen_features(nn.Sequential(), x, torch.device("cpu")) is x


# --------------------------------------------------------------------------- the stages, in process


@pytest.fixture
def lab13_repo(tmp_path, monkeypatch, raw_params):
    """A repository root with smoke params, Fashion-MNIST, and lab 13's preprocess run (it trains the source)."""
    from labflow.data import fetch
    from labflow.frame.base import LabContext

    root = tmp_path / "repo"
    root.mkdir()
    params = {**raw_params, "profile": "smoke", "tracking": {**raw_params["tracking"], "enabled": False}}
    params["lab13"]["profiles"]["smoke"]["train"]["epochs"] = 3
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.setenv("LABFLOW_ROOT", str(root))
    fetch("fashion_mnist", "smoke", None, root / "data" / "raw" / "fashion_mnist", progress=False)
    parsed = parse_params(params)
    lab.preprocess(LabContext("lab13", parsed, progress=False))
    source = torch.load(root / "data" / "processed" / "lab13" / lab.SOURCE_FILE, weights_only=True)
    return root, parsed, source


def test_the_source_is_trained_on_the_source_classes_only(lab13_repo):
    root, params, source = lab13_repo
    folder = root / "data" / "processed" / "lab13"
    report = json.loads((folder / lab.SOURCE_REPORT).read_text())
    meta = json.loads((folder / "meta.json").read_text())
    assert report["classes"] == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"]
    assert meta["classes"] == ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]  # the target: the other five
    assert source["info"]["n_classes"] == 5 and report["train_images"] == 300 and 0 <= report["source_test_acc"] <= 1
    from labflow.prep.tensors import load_processed

    data, _ = load_processed(folder)  # the manifest covers the source file too
    assert set(data["y_train"].tolist()) <= set(range(5))


def test_source_and_target_classes_must_not_overlap(raw_params):
    params = copy.deepcopy(raw_params)
    params["lab13"]["backbone"]["pretrain"]["classes"] = [0, 1, 5]
    with pytest.raises(ConfigError, match=r"classes \[5\] are both source"):
        parse_params(params)
    params = copy.deepcopy(raw_params)
    params["lab13"]["data"]["classes"] = None
    with pytest.raises(ConfigError, match="needs data.classes"):
        parse_params(params)


def test_stages_run_on_a_standin_backbone(lab13_repo):
    from labflow.frame.base import LabContext
    from labflow.tracking.dvc_files import read_rows

    root, params, saved_source = lab13_repo
    source, source_info = saved_source["state_dict"], saved_source["info"]
    ctx = LabContext("lab13", params, progress=False)
    results = {v: lab.train(ctx, v) for v in ("frozen", "partial", "scratch")}
    saved = {v: torch.load(root / "models" / "lab13" / v / "seed42" / "model.pt", weights_only=True) for v in results}
    backbone = [k for k in source if not k.startswith("fc.")]
    # Frozen: every backbone tensor, batch-norm statistics included, is the source's.
    assert all(torch.equal(saved["frozen"]["state_dict"][k], source[k]) for k in backbone)
    # Partial: layers 1-2 are the source's, layer4 was fine-tuned in phase 2.
    part = saved["partial"]["state_dict"]
    assert torch.equal(part["layer1.0.conv1.weight"], source["layer1.0.conv1.weight"])
    assert not torch.equal(part["layer4.0.conv1.weight"], source["layer4.0.conv1.weight"])
    assert saved["partial"]["info"] == {**source_info, "n_classes": 5}  # rebuildable: architectures.build(**info)
    # Every variant starts from the same new head; scratch's backbone is not the source's.
    assert not torch.equal(saved["scratch"]["state_dict"]["conv1.weight"], source["conv1.weight"])
    m = {v: r.metrics for v, r in results.items()}
    # test_scores: the whole net on the test images gives what the stage scored on the frozen
    # prefix's features (the net rebuilt from its saved info, left in train mode).
    for v, r in results.items():
        net = build(**saved[v]["info"])
        net.load_state_dict(saved[v]["state_dict"])
        written = json.loads((root / "results" / "lab13" / "variants" / v / "seed42" / "metrics.json").read_text())
        scores = lab.test_scores(ctx, v, net.train())
        assert set(scores) == {k for k in written if k.startswith("test_")} == {"test_loss", "test_acc"}
        assert scores == pytest.approx({k: written[k] for k in scores}, rel=1e-6) and net.training
    assert m["partial"]["phases"] == 2 and (m["partial"]["phase1_epochs"], m["partial"]["phase2_epochs"]) == (1, 2)
    assert m["partial"]["phase2_test_acc"] == m["partial"]["test_acc"]
    assert m["partial"]["phase1_trainable_parameters"] == m["frozen"]["phase1_trainable_parameters"]
    assert m["partial"]["phase2_trainable_parameters"] > m["partial"]["phase1_trainable_parameters"]
    assert m["scratch"]["phase1_trainable_parameters"] == m["scratch"]["total_parameters"]
    assert "phase2_test_acc" not in m["frozen"] and m["scratch"]["feature_seconds"] == 0
    history = read_rows(root / "results" / "lab13" / "variants" / "partial" / "seed42" / "history.csv")
    assert [r["phase"] for r in history] == [1, 2, 2]
    # Same batches for all: the first epoch of partial (head only) is the frozen variant's first epoch.
    frozen_history = read_rows(root / "results" / "lab13" / "variants" / "frozen" / "seed42" / "history.csv")
    assert history[0]["train_loss"] == pytest.approx(frozen_history[0]["train_loss"], rel=1e-5)
    assert history[0]["val_acc"] == pytest.approx(frozen_history[0]["val_acc"])

    ctx = LabContext("lab13", params.model_copy(update={"lab13": params.lab13.model_copy(
        update={"variants": {k: params.lab13.variants[k] for k in results}})}), progress=False)
    lab.evaluate(ctx)
    compare = json.loads((root / "results" / "lab13" / "compare" / "metrics.json").read_text())
    assert set(compare) == {"frozen", "partial", "scratch", "summary", "lessons"}
    table = (root / "results" / "lab13" / "compare" / "comparison.md").read_text()
    assert "| partial | pretrain | head | 1 |" in table
    assert compare["summary"]["source_classes"] == "T-shirt/top, Trouser, Pullover, Dress, Coat"
    assert (root / "results" / "lab13" / "compare" / "figures" / "test_accuracy_by_phase.png").exists()


def test_missing_source_model_or_wrong_channels_say_what_to_do(lab13_repo):
    from labflow.frame.base import LabContext

    root, params, _ = lab13_repo
    ctx = LabContext("lab13", params, progress=False)
    info = lab.source_info(ctx)
    with pytest.raises(ValueError, match="takes 1-channel images but lab13.data.dataset has 3"):
        lab.make_model(ctx, info, 5, 3, pretrained=True)
    (root / "data" / "processed" / "lab13" / lab.SOURCE_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="dvc repro labs/lab13/dvc.yaml:preprocess"):
        lab.source_info(ctx)


def test_imagenet_source_needs_the_full_profiles_weights(lab13_repo, monkeypatch):
    from labflow.data import DataError
    from labflow.data.datasets import mark_unavailable
    from labflow.frame.base import LabContext

    root, params, _ = lab13_repo
    mark_unavailable("resnet18_imagenet", "smoke", root / "data" / "raw" / "resnet18_imagenet")
    section = params.lab13.model_copy(update={"backbone": params.lab13.backbone.model_copy(update={"source": "imagenet"})})
    ctx = LabContext("lab13", params.model_copy(update={"lab13": section}), progress=False)
    with pytest.raises(DataError, match="no ImageNet-pretrained weights are available offline"):
        lab.source_info(ctx)


def test_full_profile_path_imagenet_weights_to_flower_images(tmp_path, monkeypatch, raw_params):
    """The full profile's code path on fixture files: ImageNet-layout ResNet18 weights, RGB 'flowers'."""
    import numpy as np
    from torchvision.models import resnet18

    from labflow.data.datasets import FLOWERS_CLASSES, WEIGHTS, _save_images
    from labflow.data.manifest import write_manifest
    from labflow.frame.base import LabContext
    from labflow.prep.tensors import load_processed

    root = tmp_path / "repo"
    params = copy.deepcopy({**raw_params, "profile": "full", "tracking": {**raw_params["tracking"], "enabled": False}})
    params["lab13"]["profiles"]["full"]["train"] |= {"epochs": 2, "batch_size": 8}
    params["lab13"]["profiles"]["full"]["variants"] = {"partial": {"warmup_epochs": 1}}
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.setenv("LABFLOW_ROOT", str(root))
    rng = np.random.default_rng(0)
    flowers = root / "data" / "raw" / "flowers"
    flowers.mkdir(parents=True)
    extra = _save_images(flowers, rng.integers(0, 255, (20, 32, 32, 3)), np.arange(20) % 5,
                         rng.integers(0, 255, (10, 32, 32, 3)), np.arange(10) % 5, list(FLOWERS_CLASSES),
                         shape=(32, 32, 3))
    write_manifest(flowers, extra | {"dataset": "flowers"})
    weights = root / "data" / "raw" / "resnet18_imagenet"
    weights.mkdir(parents=True)
    torch.manual_seed(3)
    imagenet = resnet18().state_dict()
    torch.save(imagenet, weights / WEIGHTS)
    write_manifest(weights, {"kind": "weights", "file": WEIGHTS})

    ctx = LabContext("lab13", parse_params(params), progress=False)
    lab.preprocess(ctx)
    _, meta = load_processed(ctx.processed_dir)
    assert meta["mean"] == pytest.approx(lab.IMAGENET_STATS[0]) and meta["dataset"] == "flowers"
    result = lab.train(ctx, "partial")
    assert result.metrics["phases"] == 2 and result.metrics["phase1_trainable_parameters"] == 512 * 5 + 5
    saved = torch.load(root / "models" / "lab13" / "partial" / "seed42" / "model.pt", weights_only=True)
    assert saved["info"]["arch"] == "resnet18_imagenet" and saved["info"]["n_classes"] == 5
    assert torch.equal(saved["state_dict"]["layer1.0.conv1.weight"], imagenet["layer1.0.conv1.weight"])
    assert not torch.equal(saved["state_dict"]["layer4.0.conv1.weight"], imagenet["layer4.0.conv1.weight"])
