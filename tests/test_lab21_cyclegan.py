"""Lab 21: the networks' shapes, unpaired batches, the CycleGAN step (all four nets move, the identity
loss only where asked), resume with three optimizers, the domain classifier's score on a toy case,
and horse2zebra's archive read from a small fixture."""

from __future__ import annotations

import copy
import hashlib
import io
import zipfile

import numpy as np
import pytest
import torch

from labflow.frame.config import PinnedOnlineSource, parse_params
from labflow.data import DataError, fetch, load_images
from labflow.labs.lab21_cyclegan import lab
from labflow.nets.common import seeded
from labflow.train import Checkpoint, fit
from labflow.train.callbacks import Callback

from canvas_fixture import fake_repo, params  # noqa: F401  (fake_repo: a fixture)

INFO = {"channels": 1, "ngf": 4, "blocks": 1, "ndf": 4, "d_layers": 2, "image_size": 28}


# Tiny networks: one thread, as the labs' stages run them (conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("channels,side,d_layers,patches", [(1, 28, 2, 5), (3, 32, 2, 6), (3, 64, 3, 6)])
def test_generator_keeps_the_image_shape_and_the_patchgan_scores_patches(channels, side, d_layers, patches):
    model = lab.build_cyclegan(channels, ngf=4, blocks=2, ndf=4, d_layers=d_layers, image_size=side)
    x = torch.rand(2, channels, side, side) * 2 - 1
    for g in (model.g_ab, model.g_ba):
        out = g(x)
        assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1
    assert model.d_a(x).shape == (2, 1, patches, patches)


def test_image_side_must_be_a_multiple_of_four():
    with pytest.raises(ValueError, match="multiple of 4"):
        lab.build_cyclegan(1, 4, 1, 4, 2, image_size=30)


def test_unpaired_batches_shuffle_each_domain_on_its_own():
    a, b = torch.arange(12.0).view(12, 1), torch.arange(100.0, 118.0).view(18, 1)
    batches = lab.UnpairedBatches(a, b, batch_size=4, seed=1)
    assert len(batches) == 3
    epochs = [list(batches) for _ in range(3)]
    for epoch in epochs:
        seen_a = torch.cat([x for x, _ in epoch]).flatten().tolist()
        assert sorted(seen_a) == list(range(12))  # the smaller domain: every image once per epoch
        assert all(len(x) == len(y) == 4 for x, y in epoch)
    pairs = [{(int(x), int(y)) for xs, ys in epoch for x, y in zip(xs.flatten(), ys.flatten())} for epoch in epochs]
    assert pairs[0] != pairs[1] != pairs[2]  # the seed's bug: the same a always met the same b
    state = batches.state_dict()
    first = [torch.cat(p) for p in batches]
    batches.load_state_dict(state)
    assert all(torch.equal(torch.cat(p), q) for p, q in zip(batches, first))


def tiny_run(identity_weight=5.0, seed=0):
    g = torch.Generator().manual_seed(3)
    a = torch.rand(32, 1, 28, 28, generator=g) * 0.5 - 1  # dark images
    b = torch.rand(32, 1, 28, 28, generator=g) * 0.5 + 0.5  # bright images
    model = seeded(lambda: lab.build_cyclegan(**INFO), seed)
    opts = lab.make_optimizers(model, 2e-3, 0.5)
    batches = lab.UnpairedBatches(a, b, batch_size=8, seed=seed)
    return model, opts, batches, lab.cycle_step(opts, 10.0, identity_weight)


@pytest.mark.parametrize("identity_weight", [5.0, 0.0])
def test_cycle_step_updates_all_four_networks(identity_weight):
    model, opts, batches, step = tiny_run(identity_weight)
    before = copy.deepcopy(model.state_dict())
    losses = step(model, next(iter(batches)))
    assert {"train_loss", "adversarial_loss", "cycle_loss", "d_a_loss", "d_b_loss"} <= set(losses)
    assert ("identity_loss" in losses) == (identity_weight > 0)
    for net in ("g_ab", "g_ba", "d_a", "d_b"):
        params = [k for k, _ in getattr(model, net).named_parameters() if k.endswith("weight")]
        moved = [k for k in params if not torch.equal(getattr(model, net).state_dict()[k], before[f"{net}.{k}"])]
        assert moved == params, f"{net}: {set(params) - set(moved)} did not move"
    assert all(p.requires_grad for p in model.parameters())
    expected = losses["adversarial_loss"] + 10 * losses["cycle_loss"] + identity_weight * losses.get("identity_loss", 0)
    assert losses["train_loss"].item() == pytest.approx(float(expected), rel=1e-5)


def test_the_identity_loss_changes_the_generators_update():
    with_id, _, batches, step_id = tiny_run(5.0)
    without, _, _, step_no = tiny_run(0.0)
    batch = next(iter(batches))
    step_id(with_id, batch)
    step_no(without, batch)
    assert not torch.equal(with_id.g_ab[1].weight, without.g_ab[1].weight)


class Crash(Callback):
    def on_epoch_end(self, state):
        if state.epoch == 2:  # before epoch 2's checkpoint: the run resumes after epoch 1
            raise RuntimeError("simulated crash")


def test_resume_continues_the_three_optimizers(tmp_path):
    model, opts, batches, step = tiny_run()
    fit(model, opts, batches, step_fn=step, epochs=3, progress=False)
    reference = copy.deepcopy(model.state_dict())
    ckpt = tmp_path / "last.pt"
    model, opts, batches, step = tiny_run()
    with pytest.raises(RuntimeError):
        fit(model, opts, batches, step_fn=step, epochs=3, callbacks=[Crash(), Checkpoint(ckpt, "fp")], progress=False)
    assert set(torch.load(ckpt, weights_only=False)["optimizer"]) == {"g", "d_a", "d_b"}
    model, opts, batches, step = tiny_run()
    result = fit(model, opts, batches, step_fn=step, epochs=3, callbacks=[Checkpoint(ckpt, "fp")], progress=False)
    assert result.resumed_from == 1
    for key, value in model.state_dict().items():
        assert torch.equal(value, reference[key]), key


def stripes(n, vertical, seed):
    """Toy domains: images of horizontal or vertical stripes at random phases, with noise."""
    g = torch.Generator().manual_seed(seed)
    phase = torch.randint(0, 4, (n, 1, 1, 1), generator=g)
    idx = torch.arange(28).view(1, 1, 1, 28) if vertical else torch.arange(28).view(1, 1, 28, 1)
    x = (((idx + phase) // 2) % 2).float().expand(n, 1, 28, 28) * 2 - 1
    return (x + 0.2 * torch.randn(n, 1, 28, 28, generator=g)).clamp(-1, 1)


def test_domain_classifier_scores_a_toy_translation():
    """Trained on horizontal (A) vs vertical (B) stripes: real images sit in their own domain, a
    'translator' that transposes A into B scores ~1 on the target domain, doing nothing scores ~0."""

    class Ctx:
        seed, progress = 0, False

        class cfg:
            class judge:
                epochs, batch_size, lr, channels = 2, 32, 3e-3, 8

    data = {"a_train": stripes(256, False, 0), "b_train": stripes(256, True, 1)}
    judge = lab.train_domain_judge(Ctx, data, "cpu")
    a_test, b_test = stripes(100, False, 2), stripes(100, True, 3)
    assert lab.share_in_domain(judge, a_test, 0, "cpu") > 0.95
    assert lab.share_in_domain(judge, b_test, 1, "cpu") > 0.95
    assert lab.share_in_domain(judge, a_test.transpose(2, 3), 1, "cpu") > 0.95  # translated A -> B
    assert lab.share_in_domain(judge, a_test, 1, "cpu") < 0.05  # "no translation"


def test_domain_classifier_shrinks_any_image_to_a_few_pixels():
    for channels, side in ((1, 28), (3, 256)):
        net = lab.domain_classifier(channels, side, 8)
        assert net(torch.zeros(2, channels, side, side)).shape == (2, 2)


def test_snapshot_parts_follow_each_domains_own_count_of_shown_images():
    """A test split smaller than ``train.show`` (or two of unequal size) shows what it has: the four
    parts of a snapshot are cut by each domain's count, not by ``show`` (the rehearsal's 3-image
    test folders put B's translations in A's rows before)."""
    from types import SimpleNamespace

    m = SimpleNamespace(g_ab=lambda x: x + 100, g_ba=lambda x: x - 100)
    shown_a, shown_b = torch.arange(3.0).view(3, 1, 1, 1), torch.arange(10.0, 15.0).view(5, 1, 1, 1)
    fake_b, back_a, fake_a, back_b = lab.split_rendering(lab.render_cycles(m, shown_a, shown_b), 3, 5)
    assert torch.equal(fake_b, shown_a + 100) and torch.equal(back_a, shown_a)
    assert torch.equal(fake_a, shown_b - 100) and torch.equal(back_b, shown_b)


def test_params_profiles(raw_params):
    quick, full = (parse_params({**raw_params, "profile": p}).lab21 for p in ("quick", "full"))
    assert (quick.data.domain_a, quick.data.domain_b) == ("Sneaker", "Ankle boot")
    assert full.data.dataset == "horse2zebra" and (full.data.domain_a, full.data.domain_b) == ("horse", "zebra")
    assert full.model.residual_blocks == 9 and full.model.generator_channels == 64 and full.train.batch_size == 1
    assert {v.identity_weight > 0 for v in quick.variants.values()} == {True, False}


# --------------------------------------------------------------------------- horse2zebra (full profile)


def jpeg(color, size=(20, 16)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "JPEG")
    return out.getvalue()


def horse2zebra_zip(path, skip=()) -> bytes:
    counts = {"trainA": 3, "trainB": 4, "testA": 1, "testB": 2}
    with zipfile.ZipFile(path, "w") as z:
        for folder, n in counts.items():
            if folder in skip:
                continue
            z.writestr(f"horse2zebra/{folder}/", b"")
            for k in range(n):
                color = (200, 120, 60) if folder.endswith("A") else (250, 250, 250)
                z.writestr(f"horse2zebra/{folder}/n0{k}.jpg", jpeg(color))
        z.writestr("__MACOSX/horse2zebra/trainA/._n00.jpg", b"junk")
        z.writestr("horse2zebra/trainA/._n00.jpg", b"junk")
        z.writestr("horse2zebra/README.txt", b"not an image")
    return path.read_bytes()


def test_horse2zebra_downloads_checks_and_unpacks(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    body = horse2zebra_zip(served / "horse2zebra.zip")
    online = PinnedOnlineSource(base_url=served.as_uri() + "/", sha256=hashlib.sha256(body).hexdigest(), retries=0)
    manifest = fetch("horse2zebra", "full", online, tmp_path / "raw", progress=False, cache=tmp_path / "cache")
    assert manifest["per_folder"] == {"testA": 1, "testB": 2, "trainA": 3, "trainB": 4}
    assert manifest["skipped_unreadable"] == []
    data = load_images(tmp_path / "raw")
    assert data.classes == ["horse", "zebra"]
    assert data.x_train.shape == (7, 256, 256, 3) and data.x_test.shape == (3, 256, 256, 3)
    assert data.y_train.tolist() == [0, 0, 0, 1, 1, 1, 1] and data.y_test.tolist() == [0, 1, 1]
    assert np.abs(data.x_train[-1].astype(int) - 250).max() <= 3  # a zebra image, resized, still white


def test_horse2zebra_needs_a_pinned_sha256_and_the_four_folders(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    body = horse2zebra_zip(served / "horse2zebra.zip", skip=("testB",))
    with pytest.raises(DataError, match="data.horse2zebra.online.sha256"):
        fetch("horse2zebra", "full", PinnedOnlineSource(base_url=served.as_uri() + "/"), tmp_path / "raw",
              progress=False, cache=tmp_path / "cache")
    pinned = PinnedOnlineSource(base_url=served.as_uri() + "/", sha256=hashlib.sha256(body).hexdigest(), retries=0)
    with pytest.raises(DataError, match="testB"):
        fetch("horse2zebra", "full", pinned, tmp_path / "raw", progress=False, cache=tmp_path / "cache")
    assert not (tmp_path / "raw").exists()


def test_horse2zebra_quick_profile_has_no_offline_copy(tmp_path):
    with pytest.raises(DataError, match="Fashion-MNIST"):
        fetch("horse2zebra", "quick", None, tmp_path / "raw")


# --------------------------------------------------------------------------- test_scores


def test_test_scores_reproduce_the_test_metrics_the_train_stage_wrote(fake_repo):
    """A tiny smoke run on two classes of the fake Fashion-MNIST: ``test_scores`` of its saved
    model (left in train mode) gives the test_* numbers its train stage wrote, and keeps the mode."""
    import json

    from labflow.frame import base

    def edit(raw):
        raw["lab21"]["data"] |= {"domain_a": "c0", "domain_b": "c1"}
        raw["lab21"]["variants"] = {"identity": raw["lab21"]["variants"]["identity"]}

    ctx = base.LabContext("lab21", params(edit=edit), progress=False)
    lab.preprocess(ctx)
    lab.train(ctx, "identity")
    written = json.loads((ctx.results_dir("identity") / "metrics.json").read_text())
    model = lab.load_cyclegan(ctx.model_dir("identity") / "model.pt").train()
    scores = lab.test_scores(ctx, "identity", model)
    assert set(scores) == {"test_cycle_l1_aba", "test_cycle_l1_bab", "test_identity_l1", "test_change_l1"}
    assert scores == pytest.approx({k: written[k] for k in scores}, rel=1e-6)
    assert model.training
