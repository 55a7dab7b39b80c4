"""Lab 23: seeded, clipped noise; PSNR/SSIM (torchmetrics) against hand computations; the course's model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from labflow.labs.lab23_denoising import lab
from labflow.nets.common import seeded


def digits(n=6, side=28, seed=0):
    """Digit-like images: mostly black, a few bright strokes, in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, 1, side, side)
    x[:, :, 8:20, 12:16] = torch.rand(n, 1, 12, 4, generator=gen) * 0.5 + 0.5
    return x


def test_split_noise_is_fixed_by_the_seed_and_differs_between_splits():
    x = torch.zeros(4, 1, 8, 8)
    a, b = lab.split_noise(x, 42, "test"), lab.split_noise(x, 42, "test")
    assert torch.equal(a, b)  # the same noisy test images every run
    assert not torch.equal(a, lab.split_noise(x, 42, "val"))
    assert not torch.equal(a, lab.split_noise(x, 43, "test"))
    assert a.std().item() == pytest.approx(1.0, abs=0.15)


def test_noise_is_clipped_to_the_pixel_range():
    x = digits()
    eps = lab.split_noise(x, 42, "test")
    noisy = lab.add_noise(x, 0.7, eps)
    assert noisy.min() == 0 and noisy.max() == 1  # both ends really clip
    assert torch.equal(noisy, torch.clamp(x + 0.7 * eps, 0, 1))
    assert torch.equal(x, digits())  # add_noise leaves its input alone


def test_every_noise_level_sees_the_same_test_noise_scaled():
    data = {"x_test": torch.full((2, 1, 4, 4), 0.5)}
    low, high = lab.noisy_split(data, "test", 0.1, 7), lab.noisy_split(data, "test", 0.2, 7)
    assert torch.allclose(high - 0.5, 2 * (low - 0.5), atol=1e-6)  # 0.5 +- 0.2 * eps never clips here


def test_psnr_of_a_perfect_reconstruction_is_infinite_and_ssim_one():
    x = digits()
    scores = lab.image_scores(x, x)
    assert math.isinf(scores["psnr"]) and scores["psnr"] > 0
    assert scores["ssim"] == pytest.approx(1.0)


def test_psnr_of_the_noisy_input_matches_the_definition_by_hand():
    x = digits()
    noisy = lab.add_noise(x, 0.5, lab.split_noise(x, 42, "test"))
    scores = lab.image_scores(noisy, x)
    err = ((noisy - x) ** 2).double().numpy().reshape(len(x), -1).mean(1)
    assert scores["psnr"] == pytest.approx(np.mean(10 * np.log10(1 / err)), abs=1e-4)  # mean over images
    assert scores["psnr_pooled"] == pytest.approx(10 * np.log10(1 / err.mean()), abs=1e-4)
    assert scores["psnr"] >= scores["psnr_pooled"]  # the mean of logs is at least the log of the mean (Jensen)
    assert 0 < scores["ssim"] < 1


def test_the_course_autoencoder_keeps_the_shape_and_outputs_pixels():
    model = lab.conv_autoencoder((16, 8))
    out = model(torch.rand(3, 1, 28, 28))
    assert out.shape == (3, 1, 28, 28) and out.min() >= 0 and out.max() <= 1
    # conv 1->16 (160) + conv 16->8 (1,160) + convT 8->16 (1,168) + convT 16->1 (145)
    assert sum(p.numel() for p in model.parameters()) == 2_633


def test_every_noise_level_starts_from_the_same_weights():
    a, b = seeded(lambda: lab.conv_autoencoder(), 42), seeded(lambda: lab.conv_autoencoder(), 42)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_denoise_runs_in_chunks_and_restores_training_mode():
    model = lab.conv_autoencoder().train()
    x = torch.rand(5, 1, 28, 28)
    out = lab.denoise(model, x)
    assert out.shape == x.shape and model.training
    with torch.no_grad():
        assert torch.allclose(out, model.eval()(x), atol=1e-6)


def test_the_output_bias_starts_at_the_mean_pixel_and_nothing_else_changes():
    course = seeded(lambda: lab.conv_autoencoder((16, 8)), 42)
    ours = seeded(lambda: lab.conv_autoencoder((16, 8), mean_pixel=0.13), 42)
    assert torch.sigmoid(ours[-2].bias).item() == pytest.approx(0.13)
    a, b = course.state_dict(), ours.state_dict()
    changed = [k for k in a if not torch.equal(a[k], b[k])]
    assert changed == ["6.bias"]  # the last transposed convolution's bias, nothing else


def test_test_scores_reproduce_the_test_metrics_the_train_stage_wrote(tmp_path, monkeypatch):
    """A tiny smoke run on fake digits: ``test_scores`` of its saved model (left in train mode) gives
    the test_* scores the train stage wrote (the same seeded test noise), and keeps the mode."""
    import json

    from canvas_fixture import params
    from labflow.data.datasets import ImageData
    from labflow.frame import base

    rng = np.random.default_rng(0)
    fake = ImageData(rng.integers(0, 256, (120, 28, 28), dtype=np.uint8), np.arange(120) % 10,
                     rng.integers(0, 256, (40, 28, 28), dtype=np.uint8), np.arange(40) % 10, [str(i) for i in range(10)])
    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    monkeypatch.setattr("labflow.data.load_images", lambda _dest: fake)

    def edit(raw):
        raw["lab23"]["data"] |= {"train_size": None, "test_size": None}
        raw["lab23"]["train"] |= {"batch_size": 32}
        raw["lab23"]["variants"] = {"sigma05": raw["lab23"]["variants"]["sigma05"]}

    ctx = base.LabContext("lab23", params(edit=edit), progress=False)
    lab.preprocess(ctx)
    lab.train(ctx, "sigma05")
    written = json.loads((ctx.results_dir("sigma05") / "metrics.json").read_text())
    model = lab.load_model(ctx.model_dir("sigma05") / "model.pt")[0].train()
    scores = lab.test_scores(ctx, "sigma05", model)
    assert set(scores) == {"test_psnr", "test_psnr_pooled", "test_ssim", "test_mse"}
    assert scores == pytest.approx({k: written[k] for k in scores}, rel=1e-6)
    assert model.training
