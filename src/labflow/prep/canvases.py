"""Detection and segmentation data from real images: small objects pasted on larger, cluttered canvases.

No detection or segmentation data set installs offline, so the quick profile builds one
from real Fashion-MNIST (or MNIST) images: each canvas holds 1-4 objects, each a source
image resized to 20-40 px and pasted where it overlaps no other object much, with its true
box (the tight box around the object's own pixels, not its 28 px frame), its class (lab 12)
and its true mask (lab 19: the object's own pixels, the same pixels its box is drawn around).

A blank canvas would make detection a thresholding exercise, so the background is
cluttered: noise, a random grey level, and fragments of *other* images of the same split
(pieces of clothes that are no whole object, which the detector must learn to ignore).

Everything is drawn from one ``numpy`` generator seeded per split, so the canvases are
the same on every run; each split draws from its own pool of source images (the caller
passes disjoint pools), so no test object was ever seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPLITS = ("train", "val", "test")
# Where each split's source images come from: the source's own train or test part.
SOURCE_PARTS = {"train": "train", "val": "train", "test": "test"}


@dataclass(frozen=True)
class CanvasSpec:
    size: int = 96  # canvas side in pixels
    min_objects: int = 1
    max_objects: int = 4
    min_object_px: int = 20  # side of the pasted (square) source image
    max_object_px: int = 40
    max_iou: float = 0.1  # a new object is placed where its box overlaps no earlier box more than this
    fragments: tuple[int, int] = (3, 7)  # clutter: how many fragments of other images, min..max
    fragment_px: tuple[int, int] = (8, 16)
    noise_std: float = 12.0  # grey-level noise of the background (0-255 scale)
    object_threshold: int = 40  # pixels above this (0-255) belong to the object: its true box


@dataclass
class Canvases:
    """``images`` uint8 (N, S, S); ``boxes`` float32 (N, M, 4) xyxy pixels; ``labels`` int64 (N, M), 0 = no object."""

    images: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    sources: np.ndarray  # (N, M) index of each object's source image in the pool, -1 = none
    # (N, S, S) bool: the pixels of the pasted objects (above ``object_threshold`` in the
    # resized source image), never the clutter; the union of a canvas's objects.
    masks: np.ndarray | None = None

    def targets(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        keep = self.labels[i] > 0
        return self.boxes[i][keep], self.labels[i][keep]


def source_pools(n_train: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint sorted indices (train pool, val pool) into a source's ``n_train`` training images."""
    order = np.random.default_rng(seed).permutation(n_train)
    n_val = max(1, int(round(len(order) * val_fraction)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def canvas_splits(d, seed: int) -> tuple[dict[str, tuple[Canvases, np.ndarray]], tuple[str, ...]]:
    """Labs 12 and 19's canvases per split from the raw ``d.dataset``, and the source's class names.

    ``d`` is a lab's data section (``canvas``, ``val_source_fraction``, ``*_images``). Each
    split maps to its canvases and, per object, the index of its source image in the source's
    train part (train, val) or test part (test), -1 where there is no object. Training and
    validation canvases draw from disjoint pools of the training part; split ``i`` of
    ``SPLITS`` is generated from the seed ``[seed, i]``.
    """
    from labflow.frame import paths
    from labflow.data import load_images

    data = load_images(paths.raw_dir(d.dataset))
    train_pool, val_pool = source_pools(len(data.y_train), d.val_source_fraction, seed)
    c = d.canvas
    spec = CanvasSpec(size=c.size, min_objects=c.min_objects, max_objects=c.max_objects, min_object_px=c.min_object_px,
                      max_object_px=c.max_object_px, max_iou=c.max_iou, fragments=tuple(c.fragments))
    pools = {"train": (data.x_train, data.y_train, train_pool), "val": (data.x_train, data.y_train, val_pool),
             "test": (data.x_test, data.y_test, np.arange(len(data.y_test)))}
    counts = {"train": d.train_images, "val": d.val_images, "test": d.test_images}
    out = {}
    for i, split in enumerate(SPLITS):
        x, y, pool = pools[split]
        canv = make_canvases(x[pool], y[pool], counts[split], spec, seed=[seed, i])
        out[split] = canv, np.where(canv.sources >= 0, pool[canv.sources], -1)
    return out, tuple(data.classes)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (n, 4) with every box in ``b`` (m, 4), xyxy."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def resize(image: np.ndarray, side: int) -> np.ndarray:
    """A uint8 image resized to ``side`` x ``side`` (bilinear, antialiased when shrinking)."""
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((side, side), Image.BILINEAR))


def tight_box(patch: np.ndarray, threshold: int) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) around the pixels above ``threshold``, x1/y1 exclusive; None if there are none."""
    rows, cols = np.flatnonzero((patch > threshold).any(1)), np.flatnonzero((patch > threshold).any(0))
    if len(rows) == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


class _Pool:
    """Source images drawn without replacement in a shuffled order, reshuffled when used up."""

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        self.n, self.rng = n, rng
        self.order, self.pos = rng.permutation(n), 0

    def next(self) -> int:
        if self.pos == self.n:
            self.order, self.pos = self.rng.permutation(self.n), 0
        self.pos += 1
        return int(self.order[self.pos - 1])


def _background(spec: CanvasSpec, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    s = spec.size
    canvas = rng.uniform(0, 50) + rng.normal(0, spec.noise_std, (s, s))
    for _ in range(rng.integers(spec.fragments[0], spec.fragments[1] + 1)):
        side = int(rng.integers(spec.fragment_px[0], spec.fragment_px[1] + 1))
        src = images[rng.integers(len(images))]
        y, x = rng.integers(0, src.shape[0] - side // 2, 2)  # a piece of the image, maybe its edge
        piece = src[y:y + side // 2 + 1, x:x + side // 2 + 1]
        piece = resize(piece, side).astype(np.float64) * rng.uniform(0.3, 0.8)
        top, left = rng.integers(0, s - side + 1, 2)
        region = canvas[top:top + side, left:left + side]
        np.maximum(region, piece, out=region)
    return canvas


def make_canvases(images: np.ndarray, labels: np.ndarray, n: int, spec: CanvasSpec, seed: int) -> Canvases:
    """``n`` canvases built from the source ``images`` (uint8, K x 28 x 28) and their 0-based ``labels``.

    Object labels on the canvases are ``label + 1``: detection models keep 0 for the background.
    """
    if len(images) == 0 or len(images) != len(labels):
        raise ValueError(f"need as many labels as images, and some images; got {len(images)} and {len(labels)}")
    if not 0 < spec.min_objects <= spec.max_objects or not 0 < spec.min_object_px <= spec.max_object_px <= spec.size:
        raise ValueError(f"impossible canvas spec: {spec}")
    rng = np.random.default_rng(seed)
    pool = _Pool(len(images), rng)
    m = spec.max_objects
    out = Canvases(np.zeros((n, spec.size, spec.size), np.uint8), np.zeros((n, m, 4), np.float32),
                   np.zeros((n, m), np.int64), np.full((n, m), -1, np.int64),
                   np.zeros((n, spec.size, spec.size), bool))
    for i in range(n):
        canvas = _background(spec, images, rng)
        placed: list[tuple[int, int, int, int]] = []
        want = int(rng.integers(spec.min_objects, spec.max_objects + 1))
        tries = 0
        while len(placed) < want and tries < 50 * want:
            tries += 1
            k = pool.next()
            side = int(rng.integers(spec.min_object_px, spec.max_object_px + 1))
            patch = resize(images[k], side)
            box = tight_box(patch, spec.object_threshold)
            if box is None:
                continue
            top, left = (int(v) for v in rng.integers(0, spec.size - side + 1, 2))
            x0, y0, x1, y1 = box[0] + left, box[1] + top, box[2] + left, box[3] + top
            if placed and box_iou(np.array([[x0, y0, x1, y1]], float), np.array(placed, float)).max() > spec.max_iou:
                continue
            region = canvas[top:top + side, left:left + side]
            np.maximum(region, patch, out=region)
            out.masks[i, top:top + side, left:left + side] |= patch > spec.object_threshold
            j = len(placed)
            placed.append((x0, y0, x1, y1))
            out.boxes[i, j], out.labels[i, j], out.sources[i, j] = (x0, y0, x1, y1), labels[k] + 1, k
        out.images[i] = np.clip(canvas, 0, 255).round().astype(np.uint8)
    return out
