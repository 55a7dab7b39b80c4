"""Lab 22: the ELBO's two parts, pixels in [0, 1], the reparameterisation gradient, fair inits, the figures' helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from labflow.labs.lab22_vae import lab
from labflow.prep.pixels import require_unit_range, unit_pixel_splits


def test_kl_of_a_standard_normal_posterior_is_zero():
    mu, logvar = torch.zeros(4, 3), torch.zeros(4, 3)
    assert torch.equal(lab.kl_per_dimension(mu, logvar), torch.zeros(4, 3))


def test_kl_matches_the_closed_form_by_hand():
    # KL(N(m, s^2) || N(0, 1)) = (m^2 + s^2 - 1 - ln s^2) / 2
    mu, logvar = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.0, math.log(4.0)]])
    expected = [0.5 * (1 + 1 - 1 - 0), 0.5 * (4 + 4 - 1 - math.log(4.0))]
    assert lab.kl_per_dimension(mu, logvar)[0].tolist() == pytest.approx(expected)


def test_reconstruction_term_is_the_bce_summed_over_pixels_by_hand():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 4, 4, generator=gen)  # grey levels in [0, 1]
    logits = torch.randn(3, 16, generator=gen) * 3
    recon, kl = lab.elbo_parts(logits, x, torch.zeros(3, 2), torch.zeros(3, 2))
    p = 1 / (1 + np.exp(-logits.double().numpy()))
    t = x.double().numpy().reshape(3, 16)
    by_hand = -(t * np.log(p) + (1 - t) * np.log(1 - p)).sum(1)
    assert recon.double().numpy() == pytest.approx(by_hand, rel=1e-5)
    assert torch.equal(kl, torch.zeros(3))


def test_vae_loss_is_the_negative_elbo_per_image():
    model = lab.build_vae((8,), 2, seed=0, in_features=16)
    x = torch.rand(5, 1, 4, 4)
    torch.manual_seed(3)
    loss = lab.vae_loss(model, (x,))
    torch.manual_seed(3)  # the same eps
    logits, mu, logvar = model(x)
    recon, kl = lab.elbo_parts(logits, x, mu, logvar)
    assert loss.item() == pytest.approx((recon + kl).mean().item())


def test_pixels_are_kept_in_unit_range_and_minus_one_to_one_is_refused(tmp_path, monkeypatch):
    from labflow.frame.config import SplitConfig
    from labflow.data.datasets import ImageData
    from labflow.prep.tensors import load_processed

    rng = np.random.default_rng(0)
    fake = ImageData(rng.integers(0, 256, (60, 28, 28), dtype=np.uint8), np.arange(60) % 10,
                     rng.integers(0, 256, (20, 28, 28), dtype=np.uint8), np.arange(20) % 10, [str(i) for i in range(10)])
    fake.x_train[0, 0, 0] = 255
    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    monkeypatch.setattr("labflow.data.load_images", lambda _dest: fake)
    meta = unit_pixel_splits("lab22", "mnist", SplitConfig(val_fraction=0.2), seed=1)
    data, _ = load_processed(tmp_path / "data" / "processed" / "lab22")
    assert meta["mean"] == [0.0] and meta["std"] == [1.0]
    pixels = torch.cat([data[k].flatten() for k in ("x_train", "x_val", "x_test")])
    assert pixels.min() == 0 and pixels.max() == 1
    require_unit_range(data)  # passes
    course = {"x_train": data["x_train"] * 2 - 1}  # the course's Normalize((0.5,), (0.5,))
    with pytest.raises(ValueError, match=r"x_train has pixels in \[-1"):
        require_unit_range(course)


def test_reparameterisation_passes_the_gradient_to_mu_and_log_variance():
    mu = torch.tensor([[0.5, -1.0]], requires_grad=True)
    logvar = torch.tensor([[0.0, 1.0]], requires_grad=True)
    z = lab.reparameterise(mu, logvar, torch.Generator().manual_seed(0))
    z.sum().backward()
    eps = torch.randn(1, 2, generator=torch.Generator().manual_seed(0))
    assert mu.grad.tolist() == [[1.0, 1.0]]  # dz/dmu = 1
    # dz/dlogvar = eps * exp(logvar / 2) / 2
    assert logvar.grad[0].tolist() == pytest.approx((eps * torch.exp(logvar.detach() / 2) / 2)[0].tolist())


def test_reparameterised_samples_have_the_posteriors_moments():
    mu, logvar = torch.full((20000, 1), 2.0), torch.full((20000, 1), math.log(9.0))
    z = lab.reparameterise(mu, logvar, torch.Generator().manual_seed(1))
    assert z.mean().item() == pytest.approx(2.0, abs=0.1)
    assert z.std().item() == pytest.approx(3.0, abs=0.1)


def test_every_weight_not_tied_to_the_latent_size_starts_the_same():
    small, large = lab.build_vae((32, 16), 2, seed=42, in_features=64), lab.build_vae((32, 16), 16, seed=42, in_features=64)
    for name in ("encoder", "decoder_tail"):
        a, b = getattr(small, name).state_dict(), getattr(large, name).state_dict()
        assert a and all(torch.equal(a[k], b[k]) for k in a), name
    assert small.to_mu.weight.shape == (2, 16) and large.to_mu.weight.shape == (16, 16)
    assert small(torch.rand(3, 1, 8, 8))[0].shape == (3, 64)


def test_evaluation_elbo_is_repeatable_and_adds_up():
    model = lab.build_vae((8,), 3, seed=0, in_features=16)
    x = torch.rand(10, 1, 4, 4)
    a, b = lab.elbo_metrics(model, x, "test", seed=5), lab.elbo_metrics(model, x, "test", seed=5)
    assert a == b
    assert a["test_elbo"] == pytest.approx(-(a["test_recon"] + a["test_kl"]))
    assert a["test_kl"] > 0 and a["test_recon"] > 0


def test_active_dimensions_count_only_dimensions_that_vary():
    mu = torch.zeros(100, 4)
    mu[:, 1] = torch.linspace(-1, 1, 100)
    assert lab.active_dimensions(mu) == 1


def test_map_is_the_latent_itself_in_2d_and_a_pca_projection_above():
    mu2 = torch.randn(50, 2)
    xy, how = lab.map_coordinates(mu2)
    assert np.array_equal(xy, mu2.numpy()) and "posterior means" in how
    xy16, how16 = lab.map_coordinates(torch.randn(50, 16))
    assert xy16.shape == (50, 2) and how16.startswith("PCA of the 16-D")


def test_traversal_varies_the_two_highest_kl_dimensions_over_prior_quantiles():
    assert lab.traversal_dimensions(torch.tensor([0.1, 5.0, 0.0, 3.0])) == (1, 3)
    model = lab.build_vae((8,), 4, seed=0, in_features=16)
    images, values = lab.traversal(model, (1, 3), steps=5, quantile=0.05)
    assert images.shape == (5, 5, 4, 4) and images.min() >= 0 and images.max() <= 1
    assert values[0] == pytest.approx(-1.6449, abs=1e-3) and values[-1] == pytest.approx(1.6449, abs=1e-3)
    # Columns move z at dims[0] left to right; rows move dims[1] from the top (large) down.
    z_corner = torch.zeros(1, 4)
    z_corner[0, 1], z_corner[0, 3] = float(values[0]), float(values[-1])
    top_left = torch.sigmoid(model.decode(z_corner)).view(4, 4).detach().numpy()
    assert images[0, 0] == pytest.approx(top_left, abs=1e-6)


def test_test_scores_reproduce_the_test_metrics_the_train_stage_wrote(tmp_path, monkeypatch):
    """A tiny smoke run on fake digits: ``test_scores`` of its saved model (left in train mode) gives
    the test ELBO and its parts the train stage wrote (the same seeded draws of z), and keeps the mode."""
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
        raw["lab22"]["data"] |= {"train_size": None, "test_size": None}
        raw["lab22"]["train"] |= {"hidden": [32, 16], "batch_size": 32}
        raw["lab22"]["variants"] = {"latent2": raw["lab22"]["variants"]["latent2"]}

    ctx = base.LabContext("lab22", params(edit=edit), progress=False)
    lab.preprocess(ctx)
    lab.train(ctx, "latent2")
    written = json.loads((ctx.results_dir("latent2") / "metrics.json").read_text())
    model = lab.load_model(ctx.model_dir("latent2") / "model.pt").train()
    scores = lab.test_scores(ctx, "latent2", model)
    assert set(scores) == {"test_elbo", "test_recon", "test_kl"}
    assert scores == pytest.approx({k: written[k] for k in scores}, rel=1e-6)
    assert model.training
