"""Lab 06: batched augmentation keeps shapes and labels; BN and plain models share their weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from labflow.labs.lab06_batchnorm_augment import lab
from labflow.nets.cnn import BatchAugment, black_fill, build_cnn


def images(n=16, c=1, side=8):
    return torch.arange(n * c * side * side, dtype=torch.float32).reshape(n, c, side, side)


def test_no_padding_no_flip_is_identity():
    x = images()
    assert torch.equal(BatchAugment(0, False)(x), x)


def test_flip_mirrors_about_half_and_keeps_the_rest():
    x = images(200)
    out = BatchAugment(0, True, seed=1)(x)
    assert out.shape == x.shape
    same = [torch.equal(o, i) for o, i in zip(out, x)]
    mirrored = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x)]
    assert all(s or m for s, m in zip(same, mirrored))
    assert 60 < sum(mirrored) < 140


def test_crop_is_a_window_of_the_padded_image():
    x, p, fill = images(32, c=3), 2, [-1.0, -2.0, -3.0]
    out = BatchAugment(p, False, fill=fill, seed=3)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    padded = torch.tensor(fill).view(1, 3, 1, 1).repeat(32, 1, 8 + 2 * p, 8 + 2 * p)
    padded[:, :, p:-p, p:-p] = x
    shifts = set()
    for k in range(32):
        hits = [(t, l) for t in range(2 * p + 1) for l in range(2 * p + 1)
                if torch.equal(out[k], padded[k, :, t:t + 8, l:l + 8])]
        assert hits, f"image {k} is not a crop of its padded original"
        shifts.add(hits[0])
    assert len(shifts) > 5  # offsets really vary per image
    assert (out == -3.0)[:, 2].any() and not (out == -3.0)[:, :2].any()  # the fill is per channel


def test_augment_is_reproducible_and_resumable():
    x = images()
    a, b = BatchAugment(2, True, seed=5), BatchAugment(2, True, seed=5)
    assert torch.equal(a(x), b(x))
    state = a.state_dict()
    first = a(x)
    a.load_state_dict(state)
    assert torch.equal(a(x), first)  # a checkpoint restores the same augmented batches


def test_black_fill_is_normalised_zero():
    meta = {"mean": [0.25, 0.5], "std": [0.5, 0.25]}
    assert black_fill(meta) == [-0.5, -2.0]


def test_batch_norm_and_plain_models_share_their_weights():
    x = torch.zeros(2, 3, 32, 32)
    plain, bn = build_cnn(x, 10, 42, batch_norm=False), build_cnn(x, 10, 42, batch_norm=True)
    weights = lambda m: [l.weight for l in m.modules() if isinstance(l, (nn.Conv2d, nn.Linear))]  # noqa: E731
    assert all(torch.equal(p, q) for p, q in zip(weights(plain), weights(bn)))
    assert sum(isinstance(l, (nn.BatchNorm2d, nn.BatchNorm1d)) for l in bn.modules()) == 3
    assert not any(isinstance(l, (nn.BatchNorm2d, nn.BatchNorm1d)) for l in plain.modules())
    bn.train()
    assert bn(torch.randn(4, 3, 32, 32)).shape == (4, 10)


def test_as_images_handles_grey_and_colour():
    grey = lab._as_images(torch.zeros(2, 1, 28, 28), {"mean": [0.5], "std": [0.25]})
    colour = lab._as_images(torch.zeros(2, 3, 32, 32), {"mean": [0.1, 0.2, 0.3], "std": [1, 1, 1]})
    assert grey.shape == (2, 28, 28) and grey.max() == 0.5
    assert colour.shape == (2, 32, 32, 3)
    assert colour[0, 0, 0].tolist() == pytest.approx([0.1, 0.2, 0.3])
