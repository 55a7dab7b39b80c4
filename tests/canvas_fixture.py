"""What labs 12 and 19's tests share: fake 28 px source objects, the smoke params, and a
repository root holding a tiny fake Fashion-MNIST raw folder to build canvases from."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from labflow.frame.config import parse_params
from labflow.data.datasets import _save_images
from labflow.data.manifest import write_manifest

from conftest import REPO, read_params


def sources(n=60, seed=0):
    """Fake 28 px 'objects': a bright filled rectangle of random extent on black, 10 classes."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        top, left = rng.integers(2, 8, 2)
        bottom, right = rng.integers(18, 26, 2)
        x[i, top:bottom, left:right] = rng.integers(150, 256)
    return x, np.arange(n) % 10


def params(profile="smoke", edit=None):
    raw = read_params()
    raw["profile"] = profile
    raw["tracking"]["enabled"] = False
    if edit:
        edit(raw)
    return parse_params(raw)


@pytest.fixture
def fake_repo(tmp_path, monkeypatch):
    """A repository root with a tiny fake Fashion-MNIST raw folder (distinct pixels per source image)."""
    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    folder = tmp_path / "data" / "raw" / "fashion_mnist"
    folder.mkdir(parents=True)
    x, y = sources(400, seed=1)
    xt, yt = sources(100, seed=2)
    extra = _save_images(folder, x, y, xt, yt, [f"c{i}" for i in range(10)])
    write_manifest(folder, extra | {"dataset": "fashion_mnist"})
    return tmp_path
