"""The labs, one folder each: ``labNN_<topic>/`` holds the lab's stages (``lab.py``), its params
schema (``config.py``), what the course says it shows (``lessons.py``) and, in ``__init__.py``,
how it relates to other labs. This registry finds
them by folder name, so adding a lab adds a folder and touches nothing here.

A lab's ``__init__.py`` may say:
- ``READS_FROM = "lab10"``: it trains nothing of its own and looks at that lab's trained models,
  on that lab's processed data (one stage, ``evaluate``; its variants name that lab's variants);
- ``SHARED_MODEL = "transformer"``: its variants are ways of *using* one trained model: ``train``
  trains that model once per seed, ``decode`` runs each variant on it, ``evaluate`` compares;
- ``DATA_FROM = "lab16"``: it uses that lab's processed data instead of preprocessing its own.

A lab that trains models has ``test_scores(ctx, variant, model) -> {"test_<metric>": value}`` in
``lab.py``: the test metrics its stages record for that variant (a GAN, which has no test split:
its evaluate stage's sample scores, under their own names), computed for *any* model of it,
by the same code the stages use. The model may be the one just trained or the one MLflow loads
back (``pt2``: an exported graph in eval mode, forward only; ``pickle``: the module), so a test
can check that every logged model reproduces its logged numbers.

Stages read these for their own lab only (``reads_from``, ``shared_model``, ``data_from``), so a
stage imports no other lab's folder; ``READS_FROM``, ``SHARED_MODEL`` and ``DATA_FROM`` are the
whole-registry views for the CLI, the report and the tests.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType

_FOLDER = re.compile(r"^(lab\d\d)_[a-z0-9_]+$")


def _discover() -> dict[str, str]:
    here = Path(__file__).parent
    found = {}
    for folder in sorted(here.iterdir()):
        match = _FOLDER.match(folder.name)
        if match and (folder / "lab.py").is_file():
            if match.group(1) in found:
                raise RuntimeError(f"two folders for {match.group(1)} in {here}: {found[match.group(1)]} and {folder.name}")
            found[match.group(1)] = f"labflow.labs.{folder.name}"
    return found


# lab id -> its package, e.g. "lab01" -> "labflow.labs.lab01_mlp"
LABS: dict[str, str] = _discover()


def _known(lab_id: str) -> str:
    if lab_id not in LABS:
        raise KeyError(f"unknown lab '{lab_id}'; known labs: {', '.join(LABS)}")
    return LABS[lab_id]


def lab_package(lab_id: str) -> ModuleType:
    """The lab's ``__init__``: its docstring and how it relates to other labs (imports nothing)."""
    return importlib.import_module(_known(lab_id))


def lab_module(lab_id: str) -> ModuleType:
    """The lab's stages (``labNN_<topic>/lab.py``)."""
    return importlib.import_module(f"{_known(lab_id)}.lab")


def lab_lessons(lab_id: str) -> ModuleType | None:
    """The lab's lessons (``labNN_<topic>/lessons.py``: ``CLAIMS`` or ``NO_CLAIM``); None without one."""
    try:
        return importlib.import_module(f"{_known(lab_id)}.lessons")
    except ModuleNotFoundError as err:
        if err.name != f"{_known(lab_id)}.lessons":
            raise
        return None


def reads_from(lab_id: str) -> str | None:
    return getattr(lab_package(lab_id), "READS_FROM", None)


def shared_model(lab_id: str) -> str | None:
    return getattr(lab_package(lab_id), "SHARED_MODEL", None)


def data_from(lab_id: str) -> str | None:
    return getattr(lab_package(lab_id), "DATA_FROM", None)


def stages(lab_id: str) -> tuple[str, ...]:
    """The lab's stages in its ``labs/<lab>/dvc.yaml``."""
    if reads_from(lab_id):
        return ("evaluate",)
    own = ("train", "decode", "evaluate") if shared_model(lab_id) else ("train", "evaluate")
    return own if data_from(lab_id) else ("preprocess", *own)


def data_lab(lab_id: str) -> str:
    """The lab whose processed data (and data set) ``lab_id`` uses: its own, or the one it reads from."""
    return reads_from(lab_id) or data_from(lab_id) or lab_id


def data_set(lab_id: str, params) -> str | None:
    """The data set ``lab_id`` reads under ``params``' profile: ``<lab>.data.dataset`` where the lab
    switches by profile, else its module's first; that of the lab whose data or split it uses; None
    for a lab that draws its own data (lab 24)."""
    module = lab_module(lab_id)
    if not module.DATASETS:
        return None
    data = params.lab(data_lab(lab_id)).data
    if getattr(data, "same_split_as", None):  # a lab on another lab's split (09, 17) uses its data set
        data = params.lab(data.same_split_as).data
    return getattr(data, "dataset", None) or module.DATASETS[0]


def __getattr__(name: str) -> dict[str, str]:
    """``READS_FROM``, ``SHARED_MODEL``, ``DATA_FROM``: lab id -> value, for the labs that set it."""
    getter = {"READS_FROM": reads_from, "SHARED_MODEL": shared_model, "DATA_FROM": data_from}.get(name)
    if getter is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return {lab: value for lab in LABS if (value := getter(lab))}
