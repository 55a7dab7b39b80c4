"""Lab 20: the Fréchet distance (zero for a sample against itself, growing with a shift, the textbook
formula), the networks' shapes, the alternating step, resume, the judge's class report."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy import linalg

from labflow.frame.config import ConfigError, parse_params
from labflow.labs.lab20_gan import lab
from labflow.nets.adversarial import (
    EpochSnapshots, LatentNoise, class_report, frechet_distance, from_uint8, judge_from_sequential, to_unit,
)
from labflow.nets.cnn import course_cnn
from labflow.nets.common import seeded
from labflow.train import Checkpoint, TensorBatches, fit
from labflow.train.callbacks import Callback

from canvas_fixture import fake_repo, params  # noqa: F401  (fake_repo: a fixture)


# Tiny networks: one thread, as the labs' stages run them (conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


def judge(seed=0):
    """An untrained course CNN is still a fixed feature map: enough to test the distance."""
    return judge_from_sequential(seeded(lambda: course_cnn(1, 28, 10), seed), [0.5], [0.25])


def images(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    blobs = torch.rand(n, 1, 7, 7, generator=g)
    return torch.nn.functional.interpolate(blobs, size=28, mode="bilinear").mul(2).sub(1)


def test_frechet_distance_of_a_sample_with_itself_is_zero_and_grows_with_a_shift():
    j, x = judge(), images()
    assert abs(frechet_distance(j, x, x)) < 1e-3
    shifted = [frechet_distance(j, x, (x + s).clamp(-1, 1)) for s in (0.1, 0.3, 0.6)]
    assert 0.01 < shifted[0] < shifted[1] < shifted[2]
    # Another sample of the same distribution is close, far closer than a shifted one.
    assert frechet_distance(j, x, images(seed=1)) < shifted[1]


@pytest.mark.filterwarnings("ignore:Matrix is singular")  # an untrained judge has dead features
def test_frechet_distance_is_the_textbook_formula_in_the_judges_features():
    j, x, y = judge(), images(seed=2), images(seed=3) * 0.7
    with torch.no_grad():
        fx, fy = j(x).double().numpy(), j(y).double().numpy()
    mu_x, mu_y = fx.mean(0), fy.mean(0)
    s_x, s_y = np.cov(fx, rowvar=False), np.cov(fy, rowvar=False)
    expected = ((mu_x - mu_y) ** 2).sum() + np.trace(s_x + s_y - 2 * linalg.sqrtm(s_x @ s_y).real)
    assert frechet_distance(j, x, y) == pytest.approx(expected, rel=1e-3)


def test_the_scorer_keeps_the_real_statistics_between_samples():
    """Real features are extracted once; each sample is scored against them as if alone."""
    j, real = judge(), images(seed=4)
    scorer = lab.Scorer(j, real, 10)
    first, second = images(seed=5), (images(seed=6) + 0.3).clamp(-1, 1)
    assert scorer(first)["frechet_distance"] == pytest.approx(frechet_distance(j, real, first), rel=1e-6)
    assert scorer(second)["frechet_distance"] == pytest.approx(frechet_distance(j, real, second), rel=1e-6)
    assert scorer(first)["frechet_distance"] == pytest.approx(frechet_distance(j, real, first), rel=1e-6)


def test_judge_normalises_gan_images_like_its_training_data():
    net = seeded(lambda: course_cnn(1, 28, 10), 0)
    j = judge_from_sequential(net, [0.3], [0.2])
    x = images(8)
    with torch.no_grad():
        assert torch.allclose(j.logits(x), net((to_unit(x) - 0.3) / 0.2), atol=1e-6)
    assert j.num_features == 128
    j.train()
    assert not j.training  # a judge never switches to training mode


def test_from_uint8_maps_pixels_to_minus_one_one():
    x = from_uint8(np.array([[[0, 255], [128, 64]]], dtype=np.uint8))
    assert x.shape == (1, 1, 2, 2)
    assert x.min() == -1 and x.max() == 1


@pytest.mark.parametrize("arch,knob", [("mlp", {"hidden": 128}), ("dcgan", {"width": 0.25})])
def test_generator_and_discriminator_shapes(arch, knob):
    gan = lab.build_gan(arch, latent_dim=100, **knob)
    z = torch.randn(5, 100)
    fake = gan(z)
    assert fake.shape == (5, 1, 28, 28)
    assert fake.min() >= -1 and fake.max() <= 1
    assert gan.discriminator(fake).shape == (5, 1)


def test_the_seeds_mlp_sizes_and_the_dcgan_width():
    mlp = lab.build_gan("mlp", 100, hidden=128)
    assert [m.out_features for m in mlp.generator if isinstance(m, torch.nn.Linear)] == [128, 256, 512, 784]
    assert [m.out_features for m in mlp.discriminator if isinstance(m, torch.nn.Linear)] == [512, 256, 128, 1]
    narrow, full = lab.build_gan("dcgan", 100, width=0.25), lab.build_gan("dcgan", 100, width=1.0)
    assert narrow.discriminator[0].out_channels == 16 and full.discriminator[0].out_channels == 64


def test_saved_model_rebuilds_from_its_info(tmp_path):
    class V:
        arch, hidden, width = "dcgan", 128, 0.25

    info = lab.model_info(V, 100, torch.zeros(1, 1, 28, 28))
    gan = seeded(lambda: lab.build_gan(**info), 3)
    torch.save({"state_dict": gan.state_dict(), "info": info}, tmp_path / "model.pt")
    again = lab.load_gan(tmp_path / "model.pt")
    z = torch.randn(4, 100)
    assert torch.equal(gan.eval()(z), again(z))


def tiny_run(arch="dcgan", seed=0):
    x = images(96, seed=5)
    gan = seeded(lambda: lab.build_gan(arch, 16, width=0.125), seed)
    opts = lab.make_optimizers(gan, 2e-3, 0.5)
    noise = LatentNoise(16, seed)
    z_fixed = lab.fixed_noise(seed, 8, 16)
    snaps = EpochSnapshots(lambda m: m.generator(z_fixed))
    return gan, opts, TensorBatches(x, batch_size=32, seed=seed), noise, snaps


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_the_alternating_step_updates_both_nets_and_unfreezes_d(arch):
    gan, opts, batches, noise, _ = tiny_run(arch)
    before = copy.deepcopy(gan.state_dict())
    losses = lab.gan_step(opts, noise)(gan, next(iter(batches)))
    assert set(losses) == {"train_loss", "g_loss", "d_loss", "d_real", "d_fake"}
    assert losses["train_loss"] == losses["g_loss"]
    for name, net in (("generator", gan.generator), ("discriminator", gan.discriminator)):
        moved = [k for k, v in net.state_dict().items() if not torch.equal(v, before[f"{name}.{k}"])]
        weights = [k for k, _ in net.named_parameters()]
        assert set(weights) <= set(moved), f"{name}: {set(weights) - set(moved)} did not move"
    assert all(p.requires_grad for p in gan.parameters())


def test_g_step_sees_the_updated_discriminator():
    """D first, then G against the updated D: G's loss equals BCE(D_new(fake), 1) on the step's fake batch."""
    gan, opts, batches, noise, _ = tiny_run("mlp")
    state = noise.state_dict()
    z = noise.sample(32)
    noise.load_state_dict(state)
    g_before = copy.deepcopy(gan.generator)
    losses = lab.gan_step(opts, noise)(gan, next(iter(batches)))
    with torch.no_grad():
        expected = torch.nn.functional.binary_cross_entropy_with_logits(
            gan.discriminator(g_before(z)), torch.ones(32, 1))
    assert losses["g_loss"].item() == pytest.approx(expected.item(), rel=1e-5)


class Crash(Callback):
    def on_epoch_end(self, state):
        if state.epoch == 2:
            raise RuntimeError("simulated crash")


def test_a_gan_resumes_mid_training_exactly(tmp_path):
    """Killed after epoch 1 of 3 and resumed: the same weights, optimizer moments, noise and snapshots."""
    gan, opts, batches, noise, snaps = tiny_run()
    fit(gan, opts, batches, step_fn=lab.gan_step(opts, noise), epochs=3, callbacks=[noise, snaps], progress=False)
    reference, ref_shots = copy.deepcopy(gan.state_dict()), snaps.snapshots

    ckpt = tmp_path / "last.pt"
    gan, opts, batches, noise, snaps = tiny_run()
    with pytest.raises(RuntimeError):
        fit(gan, opts, batches, step_fn=lab.gan_step(opts, noise), epochs=3,
            callbacks=[noise, snaps, Crash(), Checkpoint(ckpt, "fp")], progress=False)
    torch.manual_seed(123)
    gan, opts, batches, noise, snaps = tiny_run()
    result = fit(gan, opts, batches, step_fn=lab.gan_step(opts, noise), epochs=3,
                 callbacks=[noise, snaps, Checkpoint(ckpt, "fp")], progress=False)
    assert result.resumed_from == 1
    for key, value in gan.state_dict().items():
        assert torch.equal(value, reference[key]), key
    assert [e for e, _ in snaps.snapshots] == [1, 2, 3]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(snaps.snapshots, ref_shots))


def test_class_report_shows_mode_collapse():
    uniform = torch.eye(10).repeat(20, 1)
    collapsed = torch.zeros(200, 10)
    collapsed[:, 3] = 1
    r, c = class_report(uniform, 10), class_report(collapsed, 10)
    assert r["class_entropy"] == pytest.approx(1.0) and r["classes_seen"] == 10
    assert c["class_entropy"] == pytest.approx(0.0) and c["classes_seen"] == 1 and c["class_share"][3] == 1.0
    assert r["confidence"] == pytest.approx(1.0)


def test_a_generator_that_copies_one_image_scores_badly():
    """Total collapse: zero pixel spread, one class, a large distance; the real sample scores near 0."""
    j, real = judge(), images(300, seed=7)
    copies = real[:1].repeat(300, 1, 1, 1)
    same = lab.score(j, real, images(300, seed=8), 10)
    collapsed = lab.score(j, real, copies, 10)
    assert collapsed["pixel_std"] == 0 and collapsed["classes_seen"] == 1
    assert collapsed["frechet_distance"] > 10 * same["frechet_distance"]


def test_params_judge_and_profiles(raw_params):
    quick, full = (parse_params({**raw_params, "profile": p}) for p in ("quick", "full"))
    assert quick.lab20.judge.source == "lab10" and full.lab20.judge.source == "own"
    assert {v.arch for v in quick.lab20.variants.values()} == {"mlp", "dcgan"}
    assert full.lab20.variants["dcgan"].width == 1.0 and full.lab20.data.train_size is None
    bad = copy.deepcopy(raw_params)
    bad["lab20"]["profiles"]["full"]["judge"]["source"] = "lab10"  # lab 10 full is CIFAR-10
    with pytest.raises(ConfigError, match="lab20.judge.source"):
        parse_params({**bad, "profile": "full"})
    bad = copy.deepcopy(raw_params)
    bad["lab20"]["variants"]["mlp_gan"]["width"] = 0.5
    with pytest.raises(ConfigError, match="lab20.variants.mlp_gan"):
        parse_params(bad)


def test_own_judge_learns_the_classes_and_uses_its_training_statistics():
    """The full profile's judge (lab 10 trains on CIFAR-10 there): the course CNN trained here."""

    class Ctx:
        seed, progress = 0, False

        class cfg:
            class judge:
                source, epochs, batch_size, lr = "own", 3, 32, 3e-3

    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 2
    x = torch.where(y.view(-1, 1, 1, 1) == 1, 0.5, -0.5) + 0.3 * torch.randn(200, 1, 28, 28, generator=g)
    judge, source = lab.load_judge(Ctx, {"x_train": x.clamp(-1, 1), "y_train": y}, "cpu")
    assert "trained here" in source and judge.num_features == 128
    assert judge.mean.item() == pytest.approx(to_unit(x.clamp(-1, 1)).mean().item(), rel=1e-5)
    with torch.no_grad():
        assert (judge.logits(x.clamp(-1, 1)).argmax(1) == y).float().mean() > 0.95


def test_test_scores_reproduce_the_sample_scores_the_evaluate_stage_wrote(fake_repo):
    """A tiny smoke run on the fake Fashion-MNIST, judged by its own CNN: ``test_scores`` of the saved
    generator (left in train mode) gives the sample scores the evaluate stage wrote (the same
    evaluation noise, the same judge), and keeps the mode."""
    import json

    from labflow.frame import base

    def edit(raw):
        raw["lab20"]["data"] |= {"train_size": 200, "test_size": 100}
        raw["lab20"]["judge"] = {"source": "own", "epochs": 1, "batch_size": 50}
        raw["lab20"]["train"] |= {"epochs": 1, "fixed_noise": 16}
        raw["lab20"]["variants"] = {"mlp_gan": {"arch": "mlp", "hidden": 16}}
        for profile in raw["lab20"].get("profiles", {}).values():
            profile.pop("variants", None)

    ctx = base.LabContext("lab20", params(edit=edit), progress=False)
    lab.preprocess(ctx)
    lab.train(ctx, "mlp_gan")
    lab.evaluate(ctx)
    compared = json.loads((ctx.results_dir() / "metrics.json").read_text())["mlp_gan"]
    gan = lab.load_gan(ctx.model_dir("mlp_gan") / "model.pt").train()
    scores = lab.test_scores(ctx, "mlp_gan", gan)
    assert set(scores) == {"frechet_distance", "pixel_std", "confidence", "class_entropy", "classes_seen"}
    assert scores == pytest.approx({k: compared[k] for k in scores}, rel=1e-6)
    assert gan.training
