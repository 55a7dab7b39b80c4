"""Seeding, device choice and torch settings shared by every stage."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a rerun repeats itself."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def choose_device(preference: str = "auto") -> torch.device:
    """cuda > mps > cpu for ``auto``; an explicit choice that is unavailable is an error."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda was asked for but no CUDA GPU is visible; set device: auto or cpu in params.yaml")
    if preference == "mps" and not has_mps:
        raise RuntimeError("device: mps was asked for but MPS is not available; set device: auto or cpu in params.yaml")
    return torch.device(preference)


def setup_torch(*, seed: int, device: str = "auto", threads: int = 0, deterministic: bool = True) -> torch.device:
    """Apply the shared torch settings of params.yaml and return the device to train on."""
    if threads:
        torch.set_num_threads(threads)
    # Denormal gradients make small recurrent/MLP nets many times slower on CPUs.
    torch.set_flush_denormal(True)
    chosen = choose_device(device)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        if chosen.type == "cuda":
            # The CPU kernels we use are deterministic already, and this call costs every
            # stage 1.5-3.5 s of imports (torch._inductor), so pay it only where it matters.
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
    seed_everything(seed)
    return chosen
