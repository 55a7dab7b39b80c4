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
    "lab10": "labflow.labs.lab10_architectures",
    "lab11": "labflow.labs.lab11_feature_maps",
    "lab12": "labflow.labs.lab12_detection",
    "lab13": "labflow.labs.lab13_transfer",
    "lab14": "labflow.labs.lab14_rnn_timeseries",
    "lab15": "labflow.labs.lab15_rnn_sentiment",
    "lab16": "labflow.labs.lab16_seq2seq",
    "lab17": "labflow.labs.lab17_transformer_text",
    "lab18": "labflow.labs.lab18_forecasting",
    "lab19": "labflow.labs.lab19_segmentation",
    "lab20": "labflow.labs.lab20_gan",
    "lab21": "labflow.labs.lab21_cyclegan",
    "lab22": "labflow.labs.lab22_vae",
    "lab23": "labflow.labs.lab23_denoising",
    "lab24": "labflow.labs.lab24_attention",
    "lab25": "labflow.labs.lab25_transformer_translation",
}

# Labs that train nothing of their own: they look at the trained models of the lab named here,
# on that lab's processed data. They have one stage, ``<lab>_evaluate`` (no preprocess or train
# stage, no variant child runs): their variants name the other lab's variants they look at.
READS_FROM: dict[str, str] = {"lab11": "lab10"}

# Labs whose variants are ways of *using* one trained model (lab 25: greedy vs beam-search
# decoding of one transformer). ``<lab>_train`` trains the model named here once per training
# seed (a DVC matrix over seeds only; its folders are ``models/<lab>/<model>/seed<N>`` and
# ``results/<lab>/variants/<model>/seed<N>``), ``<lab>_decode`` runs each variant on that seed's
# model without training it (a matrix over variants and seeds), ``<lab>_evaluate`` compares them.
SHARED_MODEL: dict[str, str] = {"lab25": "transformer"}

# Labs that use another lab's processed data (the same pairs, tokenisers and split) instead of
# preprocessing their own: no ``<lab>_preprocess`` stage; ``LabContext.processed_dir`` is that lab's.
DATA_FROM: dict[str, str] = {"lab25": "lab16"}


def stages(lab_id: str) -> tuple[str, ...]:
    """The dvc.yaml stages of a lab: ``<lab>_<stage>`` for each name returned."""
    if lab_id in READS_FROM:
        return ("evaluate",)
    own = ("train", "decode", "evaluate") if lab_id in SHARED_MODEL else ("train", "evaluate")
    return own if lab_id in DATA_FROM else ("preprocess", *own)


def data_lab(lab_id: str) -> str:
    """The lab whose processed data (and data set) ``lab_id`` uses: its own, or the one it reads from."""
    return READS_FROM.get(lab_id) or DATA_FROM.get(lab_id, lab_id)


def lab_module(lab_id: str) -> ModuleType:
    if lab_id not in LABS:
        raise KeyError(f"unknown lab '{lab_id}'; known labs: {', '.join(LABS)}")
    return importlib.import_module(LABS[lab_id])
