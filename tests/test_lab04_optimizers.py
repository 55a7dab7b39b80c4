"""Lab 04: the shared course CNN adapts to the data; every optimizer starts from the same weights."""

from __future__ import annotations

import pytest
import torch
import yaml

from conftest import REPO, read_params
from labflow.frame.config import parse_params
from labflow.labs.lab04_optimizers import lab
from labflow.nets.cnn import build_cnn, course_cnn
from labflow.nets.common import count_parameters


@pytest.mark.parametrize("channels,side", [(1, 28), (3, 32)])
def test_course_cnn_adapts_to_channels_and_size(channels, side):
    model = course_cnn(channels, side, 10)
    assert model(torch.zeros(5, channels, side, side)).shape == (5, 10)
    first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert first.in_channels == channels


def test_course_cnn_on_cifar_is_the_courses():
    # conv 3->32 (896) + conv 32->64 (18,496) + fc 64*8*8->128 (524,416) + fc 128->10 (1,290)
    assert count_parameters(course_cnn(3, 32, 10)) == 545_098


def test_every_variant_starts_from_the_same_weights():
    # The course saved the initial weights and never reused them; here each variant rebuilds them from the seed.
    x = torch.zeros(2, 1, 28, 28)
    a, b, other = build_cnn(x, 10, seed=42), build_cnn(x, 10, seed=42), build_cnn(x, 10, seed=7)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), other.state_dict().values()))


def test_make_optimizer():
    params = [torch.nn.Parameter(torch.zeros(3))]
    sgd = lab.make_optimizer("sgd", params, 0.01, 0.9)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9 and sgd.defaults["lr"] == 0.01
    assert isinstance(lab.make_optimizer("adam", params, 1e-3), torch.optim.Adam)
    assert isinstance(lab.make_optimizer("rmsprop", params, 1e-3), torch.optim.RMSprop)
    with pytest.raises(ValueError, match="unknown optimizer"):
        lab.make_optimizer("lbfgs", params, 1.0)


@pytest.mark.parametrize("lab_id", ["lab04", "lab06"])
def test_data_set_is_chosen_by_profile(lab_id):
    raw = read_params()
    expected = {"smoke": "fashion_mnist", "quick": "fashion_mnist", "full": "cifar10"}
    for profile, dataset in expected.items():
        cfg = parse_params(raw | {"profile": profile}).lab(lab_id)
        assert cfg.data.dataset == dataset
        assert (cfg.data.train_size is None) == (profile == "full")
