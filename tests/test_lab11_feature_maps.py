"""Lab 11: the statistics see dead channels and moved kernels; the twin is lab 10's seeded init."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labflow.labs.lab10_architectures import lab as lab10
from labflow.labs.lab11_feature_maps import lab
from labflow.nets.architectures import ARCHITECTURES


def info(arch, width=0.25):
    return lab10.model_info(arch, 1.0 if arch == "simple_cnn" else width, torch.zeros(1, 1, 28, 28), 10)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_network_has_post_relu_stat_points_with_sane_statistics(arch):
    model = lab10.build_model(info(arch), 0).eval()
    rows = lab.activation_stats(model, arch, torch.randn(20, 1, 28, 28))
    assert len(rows) >= 3
    for r in rows:
        assert r["mean_activation"] > 0 and 0 < r["zero_share"] < 1  # post-ReLU: non-negative, some zeros
        assert 0 <= r["dead_channels"] <= 1 and r["kernel_norm"] > 0


def test_a_channel_that_never_fires_counts_as_dead():
    model = lab10.build_model(info("simple_cnn"), 0).eval()
    with torch.no_grad():
        model[0].bias[5] = -1e6  # conv1's channel 5: negative everywhere, so its ReLU is always 0
    rows = {r["layer"]: r for r in lab.activation_stats(model, "simple_cnn", torch.randn(20, 1, 28, 28))}
    assert rows["conv1"]["dead_channels"] == pytest.approx(1 / 32)
    assert rows["conv1"]["channels"] == 32


def test_kernel_change_measures_how_far_weights_moved():
    a = lab10.build_model(info("resnet18"), 0)
    b = lab10.build_model(info("resnet18"), 0)
    layers = lambda m: lab.stat_points(m, "resnet18")["layer2"][1]  # noqa: E731
    assert lab.kernel_change(layers(a), layers(b)) == 0
    with torch.no_grad():
        for conv in layers(b):
            conv.weight.mul_(3.0)
    assert lab.kernel_change(layers(a), layers(b)) == pytest.approx(2.0, rel=1e-5)


def test_the_twin_is_lab10s_init_and_the_trained_net_is_the_saved_one(tmp_path, monkeypatch):
    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    i = info("resnet18")
    trained = lab10.build_model(i, 42)  # what lab 10's train stage starts from
    with torch.no_grad():
        trained.conv1.weight.add_(0.1)
    folder = tmp_path / "models" / "lab10" / "resnet18" / "seed42"
    folder.mkdir(parents=True)
    torch.save({"state_dict": trained.state_dict(), "info": i}, folder / "model.pt")
    loaded, init, loaded_info = lab.trained_and_init("resnet18", 42)
    assert loaded_info == i and not loaded.training and not init.training
    assert torch.equal(loaded.conv1.weight, trained.conv1.weight)
    assert torch.equal(init.conv1.weight + 0.1, trained.conv1.weight)
    assert torch.equal(init.layer3[0].conv1.weight, trained.layer3[0].conv1.weight)


def test_feature_maps_of_named_layers_and_a_clear_error_for_others():
    model = lab10.build_model(info("resnet18"), 0).eval()
    maps = lab.feature_maps(model, "resnet18", ("conv1", "layer2"), torch.randn(3, 1, 28, 28))
    assert maps["conv1"].shape == (3, 16, 28, 28) and maps["layer2"].shape == (3, 32, 14, 14)
    with pytest.raises(KeyError, match="choose from conv1, layer1, layer2"):
        lab.feature_maps(model, "resnet18", ("layer9",), torch.randn(1, 1, 28, 28))


def test_shown_images_are_of_different_classes():
    y = torch.tensor([3, 3, 1, 3, 1, 7, 0])
    picked = lab.show_images(torch.zeros(7, 1, 2, 2), y, 3)
    assert picked.tolist() == [0, 2, 5]


def test_kernel_images_grey_and_colour():
    grey = lab._kernel_images(torch.randn(4, 1, 3, 3))
    colour = lab._kernel_images(torch.randn(4, 3, 3, 3))
    assert grey.shape == (4, 3, 3, 3) and colour.shape == (4, 3, 3, 3)
    assert colour.min() >= 0 and colour.max() <= 1
    assert np.allclose(colour.reshape(4, -1).min(1), 0) and np.allclose(colour.reshape(4, -1).max(1), 1)


def test_mosaic_places_resized_tiles_on_white_padding():
    black, grey = np.zeros((2, 2, 3)), np.full((4, 4, 3), 0.5)
    sheet = lab.mosaic([[black, grey], [grey]], size=4, pad=1)
    assert sheet.shape == (2 * 5 + 1, 2 * 5 + 1, 3)
    assert (sheet[1:5, 1:5] == 0).all() and (sheet[1:5, 6:10] == 0.5).all() and (sheet[6:10, 1:5] == 0.5).all()
    assert (sheet[0] == 1).all() and (sheet[:, 5] == 1).all() and (sheet[6:10, 6:10] == 1).all()  # padding, empty cell


def test_with_several_seeds_a_lab_that_trains_nothing_publishes_without_curves(tmp_path, monkeypatch):
    """Lab 11's results have no training history; three seeds used to stop its evaluate with a
    KeyError ('history') while drawing the seed-band curve it cannot have."""
    from labflow.frame import base
    from labflow.frame.config import parse_params, sections_for

    from conftest import read_params

    from labflow.data.manifest import write_manifest

    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    (tmp_path / "data" / "processed" / "lab10").mkdir(parents=True)
    write_manifest(tmp_path / "data" / "processed" / "lab10")
    raw = read_params()
    raw.update(seeds=[42, 43, 44], tracking={**raw["tracking"], "enabled": False})
    ctx = lab._ReadsSourceLab("lab11", parse_params(raw, labs=sections_for("lab11")), progress=False)
    results = {v: {"metrics": {"test_acc": 0.5 + i / 10, "init_test_acc": 0.1}, "run_id": None}
               for i, v in enumerate(ctx.cfg.variants)}
    base.publish_comparison(ctx, results, table=[{"variant": v} for v in results], figures={})
    out = tmp_path / "results" / "lab11" / "compare"
    assert (out / "comparison.md").exists() and (out / "seeds.md").exists()
    assert not (out / "figures" / "seed_bands.png").exists()
