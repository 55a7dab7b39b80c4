"""Lab 10: saved models rebuild from their info, seeded inits repeat, costs and widths are what the README says."""

from __future__ import annotations

import copy

import pytest
import torch

from labflow.frame.config import ConfigError, parse_params
from labflow.labs.lab10_architectures import lab
from labflow.nets.architectures import build
from labflow.nets.common import count_parameters


def test_model_info_is_the_build_kwargs_and_a_saved_model_rebuilds_exactly(tmp_path):
    x = torch.randn(4, 1, 28, 28)
    info = lab.model_info("resnet18", 0.25, x, 10)
    assert info == {"arch": "resnet18", "in_channels": 1, "n_classes": 10, "width": 0.25, "image_size": 28}
    model = lab.build_model(info, seed=3)
    with torch.no_grad():
        model.fc.bias.add_(1.0)  # "trained": differs from any fresh init
    torch.save({"state_dict": model.state_dict(), "info": info}, tmp_path / "model.pt")
    saved = torch.load(tmp_path / "model.pt", weights_only=True)  # as labs 11 and 13 read it
    rebuilt = build(**saved["info"])
    rebuilt.load_state_dict(saved["state_dict"])
    model.eval(), rebuilt.eval()
    assert torch.equal(model(x), rebuilt(x))


@pytest.mark.parametrize("arch,width", [("simple_cnn", 1.0), ("vgg16", 0.25), ("resnet18", 0.25)])
def test_the_same_seed_builds_the_same_init_and_another_seed_does_not(arch, width):
    info = lab.model_info(arch, width, torch.zeros(1, 1, 28, 28), 10)
    a, b, c = lab.build_model(info, 42), lab.build_model(info, 42), lab.build_model(info, 43)
    same = lambda m, n: all(torch.equal(p, q) for p, q in zip(m.state_dict().values(), n.state_dict().values()))  # noqa: E731
    assert same(a, b) and not same(a, c)


def test_forward_cost_orders_the_networks_and_scales_with_width_squared():
    x = torch.randn(1, 1, 28, 28)
    cost = {arch: lab.forward_mflops(lab.build_model(lab.model_info(arch, w, x, 10), 0), x)
            for arch, w in [("simple_cnn", 1.0), ("vgg16", 0.25), ("resnet18", 0.25)]}
    # ResNet18 keeps 28 px through its first stage (no stride-2 stem), so it costs the most at 28 px.
    assert 0 < cost["simple_cnn"] < cost["vgg16"] < cost["resnet18"]
    wide = lab.forward_mflops(lab.build_model(lab.model_info("vgg16", 0.5, x, 10), 0), x)
    assert 3.5 < wide / cost["vgg16"] < 4.5  # convolutions cost in_channels x out_channels


def test_quick_profile_narrows_vgg_and_resnet_and_full_restores_them(raw_params):
    quick, full = (parse_params({**raw_params, "profile": p}).lab10 for p in ("quick", "full"))
    assert {v.arch for v in quick.variants.values()} == {"simple_cnn", "vgg16", "resnet18"}
    assert "resnet18" in quick.variants  # lab 11 and lab 13 read models/lab10/resnet18/model.pt
    for name, v in quick.variants.items():
        assert (v.width < 1.0) == (v.arch != "simple_cnn")
        assert full.variants[name].width == 1.0
    assert full.data.dataset == "cifar10" and quick.data.dataset == "fashion_mnist"
    resnet = build("resnet18", 3, 10, width=full.variants["resnet18"].width, image_size=32)
    assert 11_000_000 < count_parameters(resnet) < 11_300_000  # the real ResNet18 (CIFAR stem)


def test_params_refuse_a_width_for_the_simple_cnn_and_an_unknown_lab11_network(raw_params):
    bad = copy.deepcopy(raw_params)
    bad["lab10"]["variants"]["simple_cnn"]["width"] = 0.5
    with pytest.raises(ConfigError, match="lab10.variants.simple_cnn"):
        parse_params(bad)
    bad = copy.deepcopy(raw_params)
    bad["lab11"]["variants"]["densenet"] = {"layers": ["conv1"]}
    with pytest.raises(ConfigError, match="lab11.variants.densenet"):
        parse_params(bad)


@pytest.mark.parametrize("variant", ["simple_cnn", "resnet18"])
def test_test_scores_are_what_the_train_stage_wrote(tmp_path, monkeypatch, raw_params, one_thread, variant):
    import json

    import yaml

    from labflow.frame.base import LabContext
    from labflow.prep.tensors import save_processed
    from labflow.train.callbacks import load_weights

    params = {**raw_params, "profile": "smoke", "tracking": {**raw_params["tracking"], "enabled": False}}
    params["lab10"]["profiles"]["smoke"]["train"]["epochs"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    g = torch.Generator().manual_seed(0)
    tensors = {f"{x}_{s}": torch.randn(n, 1, 28, 28, generator=g) if x == "x" else torch.randint(0, 3, (n,), generator=g)
               for s, n in (("train", 32), ("val", 16), ("test", 16)) for x in ("x", "y")}
    save_processed(tmp_path / "data" / "processed" / "lab10", tensors,
                   {"classes": ["a", "b", "c"], "mean": [0.0], "std": [1.0], "dataset": "toy"})
    ctx = LabContext("lab10", parse_params(params), progress=False)
    lab.train(ctx, variant)
    written = json.loads((ctx.results_dir(variant) / "metrics.json").read_text())
    saved = load_weights(ctx.model_dir(variant) / "model.pt")
    model = build(**saved["info"])  # as lab 11 rebuilds it
    model.load_state_dict(saved["state_dict"])
    scores = lab.test_scores(ctx, variant, model.train())
    assert set(scores) == {k for k in written if k.startswith("test_")} == {"test_loss", "test_acc"}
    assert scores == {k: written[k] for k in scores}
    assert model.training
