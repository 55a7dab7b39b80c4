"""Files replaced whole or not at all: written beside their target, flushed to disk, renamed over it.

A kill or a power cut leaves the old file or the new one, never half of one: the fsync before
the rename makes sure the new name never points at data the disk has not got yet, and the
fsync of the folder after it keeps the rename itself. The temporary file is created 0600
(``mkstemp``) and keeps that mode, so a secret is never readable by others, not even for a
moment; on any error it is removed and the old file is left as it was. Standard library only:
metrics files, checkpoints and the team server's secrets all go through here.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def replacing(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO]:
    """An open temporary file beside ``path`` (``open_kwargs``: newline=, ...); when the block ends
    without error it becomes ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **open_kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_text(path: str | os.PathLike, text: str) -> None:
    with replacing(path) as fh:
        fh.write(text)


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename just made in it) to disk, where the platform allows."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
