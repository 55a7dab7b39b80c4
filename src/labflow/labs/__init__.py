"""The labs. ``LABS`` maps a lab id to its module so dvc.yaml, the CLI and the tests list the same labs."""

from __future__ import annotations

import importlib
from types import ModuleType

LABS: dict[str, str] = {
    "lab01": "labflow.labs.lab01_mlp",
    "lab02": "labflow.labs.lab02_house_prices",
    "lab03": "labflow.labs.lab03_gd_variants",
    "lab04": "labflow.labs.lab04_optimizers",
    "lab05": "labflow.labs.lab05_regularisation",
    "lab06": "labflow.labs.lab06_batchnorm_augment",
    "lab07": "labflow.labs.lab07_early_stopping",
    "lab08": "labflow.labs.lab08_imbalanced",
    "lab09": "labflow.labs.lab09_cnn_basics",
    "lab13": "labflow.labs.lab13_transfer",
}


def lab_module(lab_id: str) -> ModuleType:
    if lab_id not in LABS:
        raise KeyError(f"unknown lab '{lab_id}'; known labs: {', '.join(LABS)}")
    return importlib.import_module(LABS[lab_id])
