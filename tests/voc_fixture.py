"""Tiny archives laid out like Pascal VOC 2007's (VOCdevkit/VOC2007/...), with real JPEGs."""

from __future__ import annotations

import io
import tarfile

import numpy as np

# image id -> (width, height, [(class, xmin, ymin, xmax, ymax, difficult)]) in VOC's 1-based pixels
TRAINVAL = {
    "000005": (50, 40, [("chair", 11, 6, 30, 35, 0)]),
    "000007": (60, 30, [("car", 1, 1, 60, 30, 0), ("person", 20, 5, 29, 25, 1)]),
    "000009": (40, 40, [("dog", 5, 5, 20, 20, 0)]),
}
TEST = {"000001": (64, 48, [("dog", 10, 12, 40, 40, 0), ("person", 33, 1, 64, 48, 0)])}
SPLITS = {"train": ["000005", "000007"], "val": ["000009"], "test": ["000001"]}


def _xml(width: int, height: int, objects) -> bytes:
    objs = "".join(
        f"<object><name>{c}</name><pose>Left</pose><truncated>0</truncated><difficult>{d}</difficult>"
        f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for c, x0, y0, x1, y1, d in objects)
    return (f"<annotation><folder>VOC2007</folder><size><width>{width}</width><height>{height}</height>"
            f"<depth>3</depth></size>{objs}</annotation>").encode()


def _jpeg(width: int, height: int, seed: int) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG")
    return buf.getvalue()


def voc_tar(images: dict, splits: dict[str, list[str]]) -> bytes:
    members = {}
    root = "VOCdevkit/VOC2007"
    for split, ids in splits.items():
        members[f"{root}/ImageSets/Main/{split}.txt"] = ("\n".join(ids) + "\n").encode()
    for k, (image_id, (w, h, objects)) in enumerate(images.items()):
        members[f"{root}/Annotations/{image_id}.xml"] = _xml(w, h, objects)
        members[f"{root}/JPEGImages/{image_id}.jpg"] = _jpeg(w, h, k)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def voc_archives() -> dict[str, bytes]:
    from labflow.data import datasets as ds

    return {ds.VOC_TRAINVAL.name: voc_tar(TRAINVAL, {k: SPLITS[k] for k in ("train", "val")}),
            ds.VOC_TEST.name: voc_tar(TEST, {"test": SPLITS["test"]})}
