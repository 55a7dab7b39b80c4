"""What a rehearsal fixture is: small files in a data set's canonical format and layout.

A builder makes one data set's (or one pretrained model's) fixture in a folder; the rehearsal
serves ``served`` over loopback HTTP under the data set's ``base_url``, merges ``params`` into
``data.<name>`` of params.yaml, and runs the stages with ``env`` (for weights that a library
reads from its own cache). Everything else is the full profile's own code.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Fixture:
    served: dict[str, Path] = field(default_factory=dict)  # URL path under base_url -> file
    params: dict = field(default_factory=dict)  # merged into params.yaml's data.<name>
    env: dict[str, str] = field(default_factory=dict)  # for the stages (TORCH_HOME, HF_HOME, ...)


Builder = Callable[[Path, np.random.Generator], Fixture]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_tar_gz(path: Path, members: list[tuple[str, bytes | None]], *, mtime: int, gzip_name: str = "") -> Path:
    """A gzipped tar of ``(name, bytes)`` members in the order given (``None``: a folder), with fixed
    times and owners so a fixture's bytes (and its pinned sha256) repeat; ``gzip_name``: the original
    file name in the gzip header, as ``gzip`` writes it (empty: none)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 1000, 1000, "", ""
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    with open(path, "wb") as f, gzip.GzipFile(filename=gzip_name, mode="wb", fileobj=f, mtime=mtime) as gz:
        gz.write(raw.getvalue())
    return path
