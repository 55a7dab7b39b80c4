"""Archive extraction that cannot write outside its target folder, nor fill the disk.

A tar member named ``../x`` or ``/etc/x``, or a link pointing out of the folder, would let a
hostile or broken mirror overwrite files anywhere (CVE-2007-4559); a link pointing inside can
still be a step on the way out (a link to ``.`` followed by ``../x``). None of the data sets
labflow downloads holds a link, a device or a fifo, so any of them refuses the whole archive,
tar and zip alike; so does an archive with more members or more bytes than any real data set
(a zip or tar bomb). Every check runs on the listing, before a byte is written.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from labflow.data.download import DataError

MAX_MEMBERS = 200_000
"""Most members an archive may hold. The largest real ones are far below: VOC 2007 trainval
(~17k files), Flowers (~3.7k), horse2zebra (~2.7k), IMDB (~100k), CIFAR-10 (6 files)."""

MAX_TOTAL_BYTES = 8 * 1024**3
"""Most uncompressed bytes an archive may expand to (8 GiB). The real ones expand to well under
1 GB each: CIFAR-10 ~180 MB, Flowers ~230 MB, horse2zebra ~115 MB, VOC 2007 ~900 MB both tars."""

# Python 3.11.4+ has the 'data' filter; older 3.11 releases extract with the checks above alone.
_DATA_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
_FilterError = getattr(tarfile, "FilterError", ())

_FIX = "The file is damaged or hostile: delete it and download it again from a trusted mirror."


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _refuse(archive: Path, member: str, why: str) -> DataError:
    return DataError(f"{archive}: member '{member}' {why}; refusing the archive. {_FIX}")


def _check_totals(archive: Path, count: int, total: int, max_members: int, max_bytes: int) -> None:
    """Refuse an archive past the member or size cap (called as the listing is read)."""
    if count > max_members:
        raise DataError(f"{archive}: more than {max_members:,} members; refusing the archive (no data set labflow "
                        f"uses has that many). {_FIX}")
    if total > max_bytes:
        raise DataError(f"{archive}: members expand to more than {max_bytes:,} bytes; refusing the archive (no data "
                        f"set labflow uses is that large). {_FIX}")


def _check_tar_member(archive: Path, m: tarfile.TarInfo, root: Path) -> None:
    """Refuse a link, a device or fifo, or a name that lands outside ``root``."""
    if m.issym() or m.islnk():
        kind = "symbolic" if m.issym() else "hard"
        raise _refuse(archive, m.name, f"is a {kind} link (to '{m.linkname}'), which no data set needs")
    if not (m.isfile() or m.isdir()):
        raise _refuse(archive, m.name, "is a device or fifo, which no data set needs")
    if not _inside((root / m.name).resolve(), root):
        raise _refuse(archive, m.name, f"would land outside {root}")


def _tar_members(tar: tarfile.TarFile, archive: Path, root: Path, max_members: int,
                 max_bytes: int) -> list[tarfile.TarInfo]:
    """The checked listing; stops reading headers as soon as a cap is passed."""
    members, total = [], 0
    for m in tar:
        members.append(m)
        total += m.size
        _check_totals(archive, len(members), total, max_members, max_bytes)
        _check_tar_member(archive, m, root)
    return members


def _remove_new_entries(target: Path, before: set[Path]) -> None:
    """Undo a half-done extraction: delete what it added to ``target`` (never follows links)."""
    for path in set(target.iterdir()) - before:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def safe_extract_tar(archive: str | os.PathLike, target: str | os.PathLike, *,
                     max_members: int = MAX_MEMBERS, max_bytes: int = MAX_TOTAL_BYTES) -> Path:
    """Extract ``archive`` into ``target`` after checking every member (see the module docstring).

    Python's own 'data' filter is a second line of defence; a member it refuses is named as such.
    A failed extraction leaves ``target`` as it found it.
    """
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    before = set(target.iterdir())
    try:
        with tarfile.open(archive) as tar:
            members = _tar_members(tar, archive, root, max_members, max_bytes)
            tar.extractall(root, members=members, **_DATA_FILTER)
    except _FilterError as err:
        _remove_new_entries(target, before)
        member = err.tarinfo.name if err.tarinfo is not None else "?"
        raise DataError(f"{archive}: member '{member}' refused by Python's tar 'data' filter "
                        f"({type(err).__name__}: {err}); nothing was extracted. {_FIX}") from None
    except tarfile.TarError as err:
        _remove_new_entries(target, before)
        raise DataError(f"{archive}: not a readable tar archive ({err}). Delete it and download it again.") from None
    except BaseException:
        _remove_new_entries(target, before)
        raise
    return target


def _check_zip_member(archive: Path, info: zipfile.ZipInfo) -> None:
    """Refuse a link or special file (Unix mode bits), an absolute name or one with '..'."""
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise _refuse(archive, info.filename, "is a symbolic link, which no data set needs")
    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise _refuse(archive, info.filename, "is a device or fifo, which no data set needs")
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or (name[:1].isalpha() and name[1:2] == ":") or ".." in PurePosixPath(name).parts:
        raise _refuse(archive, info.filename, "has an absolute name or a '..' step, which would land outside its folder")


def open_checked_zip(archive: str | os.PathLike, *, max_members: int = MAX_MEMBERS,
                     max_bytes: int = MAX_TOTAL_BYTES) -> zipfile.ZipFile:
    """Open ``archive`` after checking its listing with the tar policy; the caller closes it.

    labflow reads zip members straight into memory (nothing is extracted), so the size cap also
    bounds the memory a zip bomb can claim: zipfile never returns more than a member's declared size.
    Raises DataError for a refused or unreadable archive.
    """
    archive = Path(archive)
    try:
        z = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(f"{archive}: not a readable zip archive ({err}); delete it and download it again.") from None
    try:
        infos = z.infolist()
        _check_totals(archive, len(infos), sum(i.file_size for i in infos), max_members, max_bytes)
        for info in infos:
            _check_zip_member(archive, info)
    except BaseException:
        z.close()
        raise
    return z
