"""Checked, atomic downloads for the `full` profile.

A file is streamed into a temporary name next to its destination, hashed while
it is written, compared with the pinned sha256 and only then renamed into
place: an interrupted or corrupt download can never be mistaken for data.
Only the standard library is used (no ``requests``), so every DVC stage
process stays light.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

CHUNK = 1 << 20
# HTTP statuses worth another try: the server or a proxy is busy, not wrong.
RETRY_STATUS = {408, 429, 500, 502, 503, 504}
# A full disk or quota: another attempt would only fill it again, so the download stops at once.
DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


class DataError(RuntimeError):
    """Data is missing, corrupt or unreachable; the message names the problem and the fix."""


class DownloadError(DataError):
    """A file could not be fetched (network, HTTP error, truncated body)."""


class ChecksumError(DataError):
    """A file arrived whole but is not the file we pinned."""


class _Retryable(Exception):
    """Internal: one attempt failed in a way another attempt may fix."""


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _fix_hint(dataset: str) -> str:
    return (
        f"Check the network connection and data.{dataset}.online.base_url in params.yaml; "
        "the quick profile (`profile: quick`) works offline."
    )


def _write_error(err: OSError, dest: Path, written: int) -> DataError:
    """The one line for a failed write (the disk, not the network: never retried)."""
    done = f"{written / 1e6:.1f} MB written"
    if err.errno in DISK_FULL:
        return DataError(f"no space left on device while writing {dest} ({done}): free space in {dest.parent} "
                         "or point LABFLOW_DOWNLOAD_CACHE elsewhere")
    return DataError(f"could not write {dest} ({done}; {err.strerror or err}): check {dest.parent} "
                     "or point LABFLOW_DOWNLOAD_CACHE elsewhere")


def _write_all(tmp, chunk: bytes) -> None:
    """Write all of ``chunk`` to the unbuffered ``tmp`` (a raw write may take only part of it)."""
    view = memoryview(chunk)
    while view:
        view = view[tmp.write(view):]


def _attempt(url: str, dest: Path, sha256: str, timeout: float, progress: bool, dataset: str) -> None:
    """One try: stream ``url`` into a temp file beside ``dest``, verify, rename."""
    from tqdm import tqdm  # only the download path pays for tqdm's import

    # Unbuffered, so a write error surfaces at its write and never later, at close.
    tmp = tempfile.NamedTemporaryFile(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part", delete=False,
                                      buffering=0)
    try:
        with tmp:
            try:
                req = urllib.request.Request(url, headers={"User-Agent": "labflow"})
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    length = resp.headers.get("Content-Length")
                    expected = int(length) if length and length.isdigit() else None
                    h, got = hashlib.sha256(), 0
                    with tqdm(total=expected, unit="B", unit_scale=True, desc=dest.name,
                              disable=None if progress else True, leave=False) as bar:
                        while chunk := resp.read(CHUNK):
                            try:  # kept apart from the reads: a disk error is not the network's
                                _write_all(tmp, chunk)
                            except OSError as err:
                                raise _write_error(err, dest, got) from None
                            h.update(chunk)
                            got += len(chunk)
                            bar.update(len(chunk))
            except urllib.error.HTTPError as err:
                if err.code in RETRY_STATUS:
                    raise _Retryable(f"HTTP {err.code} {err.reason}") from err
                raise DownloadError(
                    f"{url}: HTTP {err.code} {err.reason} (not retried: the server says the file "
                    f"is not there or not for us). {_fix_hint(dataset)}"
                ) from err
            except (urllib.error.URLError, http.client.HTTPException, OSError, socket.timeout) as err:
                reason = getattr(err, "reason", None) or err
                raise _Retryable(f"{type(err).__name__}: {reason}") from err
        if expected is not None and got != expected:
            raise _Retryable(f"truncated body: received {got} of {expected} bytes")
        actual = h.hexdigest()
        if actual != sha256:
            raise ChecksumError(
                f"{url}: checksum mismatch (expected sha256 {sha256}, got {actual}). "
                f"The mirror serves a different file; check data.{dataset}.online.base_url in params.yaml."
            )
        os.chmod(tmp.name, 0o644)  # NamedTemporaryFile is private; the data is not secret
        os.replace(tmp.name, dest)
    except BaseException:
        Path(tmp.name).unlink(missing_ok=True)
        raise


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str,
    *,
    retries: int = 3,
    timeout: float = 60.0,
    backoff: float = 0.5,
    progress: bool = True,
    dataset: str = "<name>",
) -> Path:
    """Fetch ``url`` to ``dest`` unless a file with the right sha256 is already there.

    Network errors, timeouts, HTTP 5xx and truncated bodies are retried
    ``retries`` times with exponential backoff; a 4xx is final; a checksum
    mismatch is retried once (a corrupting proxy) and then raised; a failed
    write (a full disk) is a DataError at once, never retried. ``dataset``
    only names the params.yaml key in error messages.
    """
    dest = Path(dest)
    sha256 = sha256.lower()
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    last: Exception | None = None
    bad_checksums = 0
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            _attempt(url, dest, sha256, timeout, progress, dataset)
            return dest
        except _Retryable as err:
            last = err
        except ChecksumError:
            bad_checksums += 1
            if bad_checksums > 1 or attempt >= retries:
                raise
    raise DownloadError(
        f"{url}: download failed after {retries + 1} attempt(s); last error: {last}. {_fix_hint(dataset)}"
    )
