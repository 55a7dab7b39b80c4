"""Archive extraction that cannot write outside its target folder.

A tar member named ``../x`` or ``/etc/x``, or a link pointing out of the
folder, would let a hostile or broken mirror overwrite files anywhere
(CVE-2007-4559); we refuse the whole archive instead.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from labflow.data.download import DataError


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def safe_extract_tar(archive: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Extract ``archive`` into ``target`` after checking every member stays inside it."""
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:
                dest = (root / m.name).resolve()
                bad = not _inside(dest, root)
                if m.issym():
                    bad = bad or not _inside((dest.parent / m.linkname).resolve(), root)
                elif m.islnk():
                    bad = bad or not _inside((root / m.linkname).resolve(), root)
                elif not (m.isfile() or m.isdir()):
                    bad = True  # devices and fifos have no place in a data archive
                if bad:
                    raise DataError(
                        f"{archive}: member '{m.name}' would land outside {target}; refusing the archive. "
                        "The file is damaged or hostile: delete it and download it again from a trusted mirror."
                    )
            # Python's own 'data' filter is a second line of defence where available.
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(root, members=members, **kwargs)
    except tarfile.TarError as err:
        raise DataError(f"{archive}: not a readable tar archive ({err}). Delete it and download it again.") from None
    return target
