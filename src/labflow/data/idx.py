"""Read the IDX format of MNIST-style data sets (optionally gzip-compressed).

Layout: two zero bytes, a type code (0x08 = uint8), the number of dimensions,
then one big-endian uint32 per dimension, then the data. We check all of it
so a damaged file fails here, not as a shape error deep in training.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from labflow.data.download import DataError


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Return the array in an IDX file (uint8 only: images N×28×28, labels N)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
        opener = gzip.open if gzipped else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: cannot read ({err}); delete it and fetch the data again.") from None
    fix = "The file is damaged or not an IDX file; delete it and fetch the data again."
    if len(raw) < 4 or raw[0:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataError(f"{path}: bad IDX magic number {raw[:4].hex() or '(empty)'} (want 0000 08 0N, uint8). {fix}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: truncated IDX header. {fix}")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise DataError(f"{path}: IDX header says shape {shape} ({size} bytes) but {len(raw) - header} bytes follow. {fix}")
    return np.frombuffer(raw, np.uint8, size, header).reshape(shape).copy()
