"""Seeding, device choice and torch settings shared by every stage."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from labflow.frame.config import ConfigError


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a rerun repeats itself."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def choose_device(preference: str = "auto") -> torch.device:
    """cuda > mps > cpu for ``auto``; an explicit choice that is unavailable is a ConfigError."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _has_mps() else torch.device("cpu")
    problem = device_problem(preference)
    if problem:
        raise ConfigError(problem)
    return torch.device(preference)


def device_problem(preference: str) -> str | None:
    """Why params.yaml's ``device`` cannot be used here (one line with the fix), or None."""
    if preference == "cuda" and not torch.cuda.is_available():
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        shown = f", CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
        return (f"params.yaml device: cuda, but no CUDA GPU is visible (torch {torch.__version__}, {build}{shown}): "
                "set device: auto or cpu")
    if preference == "mps" and not _has_mps():
        return f"params.yaml device: mps, but MPS is not available (torch {torch.__version__}): set device: auto or cpu"
    return None


def _has_mps() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


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
