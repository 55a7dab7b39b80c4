"""One plain PyTorch training loop for every lab (see :func:`fit`)."""

from labflow.train import distributed
from labflow.train.batches import StepBatches, TensorBatches, WeightedBatches
from labflow.train.callbacks import BestCheckpoint, Callback, Checkpoint, EarlyStopping
from labflow.train.loop import EpochResult, FitResult, Optimizers, fit
from labflow.train.setup import choose_device, seed_everything, setup_torch

__all__ = [
    "BestCheckpoint",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "EpochResult",
    "FitResult",
    "Optimizers",
    "StepBatches",
    "TensorBatches",
    "WeightedBatches",
    "choose_device",
    "distributed",
    "fit",
    "seed_everything",
    "setup_torch",
]
