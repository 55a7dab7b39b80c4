"""Parallel sentences: English-Spanish Bible verses from Debian's SWORD modules, and their split.

Labs 16 and 25 translate the same pairs, so everything about them lives here (lab 24 does not use
them: its attention task is synthetic associative recall, :mod:`labflow.prep.recall`):

- :func:`export_module` runs ``diatheke`` (Debian ``diatheke`` + ``sword-text-kjv`` +
  ``sword-text-sparv``) for the whole Bible; :func:`parse_export` keeps only the lines that
  start with a verse reference of one of the 66 books (``diatheke`` also prints Psalm headings,
  stale ones repeated before later verses, blank lines and a ``(module)`` line);
- :func:`clean_verse` strips the markup (KJV ``¶`` and ``\\nd`` divine-name tags, Strong's
  numbers like ``<H3050>`` in the Spanish, the KJV's ``[added words]`` brackets) and
  :func:`truecase_openings` lowers the Spanish chapter openings ("EN el principio");
- :func:`align` pairs verses by reference and drops what cannot be aligned, with a reason
  for each (see its docstring);
- :func:`split_pairs` assigns each pair to train/val/test by a fixed hash of its reference
  (or by book), keeping every copy of a repeated sentence in one split;
- :func:`write_pairs` / :func:`read_pairs`: the ``pairs.tsv`` file a data folder holds.

The full profile's English-French pairs (Tatoeba via manythings.org, :func:`read_tatoeba`)
go through the same file format and split.
"""

from __future__ import annotations

import csv
import hashlib
import re
import shutil
import subprocess
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from labflow.data.download import DataError

# The 66 books as SWORD names them in KJV versification (the order of the export).
BOOKS = (
    "Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy", "Joshua", "Judges", "Ruth",
    "I Samuel", "II Samuel", "I Kings", "II Kings", "I Chronicles", "II Chronicles", "Ezra",
    "Nehemiah", "Esther", "Job", "Psalms", "Proverbs", "Ecclesiastes", "Song of Solomon", "Isaiah",
    "Jeremiah", "Lamentations", "Ezekiel", "Daniel", "Hosea", "Joel", "Amos", "Obadiah", "Jonah",
    "Micah", "Nahum", "Habakkuk", "Zephaniah", "Haggai", "Zechariah", "Malachi",
    "Matthew", "Mark", "Luke", "John", "Acts", "Romans", "I Corinthians", "II Corinthians",
    "Galatians", "Ephesians", "Philippians", "Colossians", "I Thessalonians", "II Thessalonians",
    "I Timothy", "II Timothy", "Titus", "Philemon", "Hebrews", "James", "I Peter", "II Peter",
    "I John", "II John", "III John", "Jude", "Revelation of John",
)
BOOK_INDEX = {name: i for i, name in enumerate(BOOKS)}
WHOLE_BIBLE = "Genesis 1:1-Revelation 22:21"

ENGLISH_MODULE = "engKJV2006eb"  # Debian sword-text-kjv: King James Version (2006 edition)
SPANISH_MODULE = "spaRV1909eb"  # Debian sword-text-sparv: Reina-Valera 1909
DEBIAN_PACKAGES = {"diatheke": "diatheke", ENGLISH_MODULE: "sword-text-kjv", SPANISH_MODULE: "sword-text-sparv"}
INSTALL_HINT = ("Install them with `sudo apt-get install diatheke sword-text-kjv sword-text-sparv` "
                "(or `make system-data`), or use the full profile's English-French pairs.")

PAIRS = "pairs.tsv"
COLUMNS = ("ref", "group", "src", "tgt")
SPLITS = ("train", "val", "test")


class Ref(NamedTuple):
    """A verse reference in KJV versification; ``str(ref)`` is diatheke's ``Book c:v``."""

    book: str
    chapter: int
    verse: int

    def __str__(self) -> str:
        return f"{self.book} {self.chapter}:{self.verse}"


@dataclass(frozen=True)
class Pair:
    """One aligned sentence pair. ``group`` is the book for verses (what a by-book split uses)."""

    ref: str
    group: str
    src: str
    tgt: str


# --------------------------------------------------------------------------- export


def installed_modules(diatheke: str = "diatheke") -> set[str]:
    """The SWORD modules diatheke can read (``diatheke -b system -k modulelist``)."""
    if shutil.which(diatheke) is None:
        raise DataError(f"`{diatheke}` is not installed, so the verse pairs cannot be exported. {INSTALL_HINT}")
    out = _run([diatheke, "-b", "system", "-k", "modulelist"])
    return {line.split(" : ")[0].strip() for line in out.splitlines() if " : " in line}


def export_module(module: str, keys: str = WHOLE_BIBLE, diatheke: str = "diatheke") -> str:
    """The plain-text export of ``module`` for ``keys``; one clear error if it cannot be read.

    diatheke prints nothing and exits 0 for a module it does not have, so the module
    list is checked first.
    """
    have = installed_modules(diatheke)
    if module not in have:
        package = DEBIAN_PACKAGES.get(module, "the package that provides it")
        raise DataError(f"the SWORD module {module} is not installed (diatheke has: {', '.join(sorted(have)) or 'none'}); "
                        f"it comes with the Debian package {package}. {INSTALL_HINT}")
    text = _run([diatheke, "-b", module, "-f", "plain", "-k", keys])
    if not text.strip():
        raise DataError(f"`diatheke -b {module} -f plain -k \"{keys}\"` printed nothing; the module is damaged. "
                        f"Reinstall {DEBIAN_PACKAGES.get(module, 'it')}.")
    return text


SWORD_CONF_DIRS = (Path("/usr/share/sword/mods.d"), Path.home() / ".sword" / "mods.d")


def module_version(module: str) -> str | None:
    """The module's ``Version=`` from its SWORD .conf file (recorded in the data manifest), if found."""
    for folder in SWORD_CONF_DIRS:
        for conf in (folder / f"{module}.conf", folder / f"{module.lower()}.conf"):
            if conf.is_file():
                for line in conf.read_text(encoding="utf-8", errors="replace").splitlines():
                    if line.startswith("Version="):
                        return line.split("=", 1)[1].strip()
    return None


def _run(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise DataError(f"`{' '.join(cmd)}` failed ({err}). {INSTALL_HINT}") from None
    if proc.returncode != 0:
        raise DataError(f"`{' '.join(cmd)}` exited with {proc.returncode}: "
                        f"{proc.stderr.decode('utf-8', 'replace').strip()[:300]}")
    return proc.stdout.decode("utf-8", "replace")


# --------------------------------------------------------------------------- parsing and cleaning


VERSE_LINE = re.compile(r"^\s*(?P<book>\S.*?) (?P<chapter>\d+):(?P<verse>\d+):(?P<text>.*)$")
_STRONGS = re.compile(r"<[^<>]*>")  # <H3050>, <G5547>: Strong's numbers (and any other leftover tag)
_USFM = re.compile(r"\\[a-z]+\d*\*?\s?")  # \nd LORD ... \nd*: the divine-name tag
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?)\]])")
_REPLACE = (("’", "'"), ("‘", "'"), ("“", '"'), ("”", '"'), ("¶", " "), ("[", ""), ("]", ""))


def parse_export(text: str) -> dict[Ref, str]:
    """``{ref: raw verse text}`` of the lines of a diatheke plain export that are verses.

    A line is a verse when it starts (after spaces) with ``Book chapter:verse:`` and the book
    is one of :data:`BOOKS`; headings, blank lines and the ``(module)`` line are skipped.
    """
    verses: dict[Ref, str] = {}
    for line in text.splitlines():
        m = VERSE_LINE.match(line)
        if m is None or m["book"] not in BOOK_INDEX:
            continue
        verses.setdefault(Ref(m["book"], int(m["chapter"]), int(m["verse"])), m["text"])
    return verses


def clean_verse(text: str) -> str:
    """One verse without markup: Strong's tags, ``\\nd``, ``¶`` and brackets gone, quotes straight."""
    text = unicodedata.normalize("NFC", text)
    if "<" in text:
        text = _STRONGS.sub(" ", text)
    if "\\" in text:
        text = _USFM.sub("", text)
    for old, new in _REPLACE:
        if old in text:
            text = text.replace(old, new)
    text = " ".join(text.split())
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text)


_WORD = re.compile(r"[^\W\d_]+")


def truecase_openings(verses: Mapping[Ref, str], words: int = 2) -> dict[Ref, str]:
    """Chapter openings set in capitals ("EN el principio", "Y DESPUÉS") in their usual case.

    An all-capitals word of two or more letters among a verse's first ``words`` words takes
    the casing the word has most often elsewhere in the text ("JEHOVÁ" -> "Jehová",
    "DESPUÉS" -> "después"), else lower case; the verse's first letter stays a capital.
    """
    openings = {ref: [m for m in _WORD.finditer(text[:80])][:words] for ref, text in verses.items()}
    wanted = {m.group().lower() for ms in openings.values() for m in ms if len(m.group()) > 1 and m.group().isupper()}
    usual: dict[str, Counter] = {w: Counter() for w in wanted}
    for text in verses.values():
        for k, m in enumerate(_WORD.finditer(text)):
            w = m.group()
            if k >= words and w.lower() in usual and not w.isupper():  # past the opening: its usual case
                usual[w.lower()][w] += 1
    out = dict(verses)
    for ref, matches in openings.items():
        text = verses[ref]
        for k, m in reversed(list(enumerate(matches))):  # right to left: earlier offsets stay valid
            w = m.group()
            if len(w) > 1 and w.isupper():
                seen = usual[w.lower()]
                new = seen.most_common(1)[0][0] if seen else w.lower()
                if k == 0:
                    new = new[0].upper() + new[1:]
                text = text[: m.start()] + new + text[m.end():]
        out[ref] = text
    return out


def load_bible(module: str, *, truecase: bool = False, export: str | None = None) -> dict[Ref, str]:
    """Every verse of ``module`` cleaned (``export``: a diatheke output already in hand)."""
    raw = parse_export(export if export is not None else export_module(module))
    verses = {ref: clean_verse(text) for ref, text in raw.items()}
    return truecase_openings(verses) if truecase else verses


# --------------------------------------------------------------------------- alignment


# Outside this ratio of characters (Spanish / English) a pair is treated as misaligned. Measured
# on the KJV/RV1909 pairs: median 0.92, 0.63-1.35 for 99% of them; (0.55, 1.6) drops 69 pairs, most
# of them real misalignments (verses split differently in I Kings 22 or I Chronicles 21, Psalm
# titles without a capital opening, epistle subscriptions the Spanish appends to a last verse).
LENGTH_RATIO = (0.55, 1.6)


def align(src: Mapping[Ref, str], tgt: Mapping[Ref, str], *, raw_tgt: Mapping[Ref, str] | None = None,
          length_ratio: tuple[float, float] = LENGTH_RATIO) -> tuple[list[Pair], Counter]:
    """Pairs of the verses both sides have, in Bible order, and how many were dropped per reason.

    Dropped: ``missing`` (the reference is on one side only); ``empty`` (one side is empty:
    about 18 Spanish verses, where the RV1909 numbers its verses differently); ``shifted``
    (every verse of a chapter that has an empty verse, and of the chapter after it: the
    translation moved verses across the chapter break, so the references name different
    sentences there); ``psalm_title`` (a Psalm's verse 1 whose Spanish starts with the
    Psalm's title, which the KJV prints as a heading; detected on ``raw_tgt``, the text
    before truecasing, by a first word not in capitals); ``length_ratio`` (character
    ratio outside ``length_ratio``: a misalignment the rules above missed).
    """
    dropped: Counter = Counter()
    refs = sorted(set(src) | set(tgt), key=lambda r: (BOOK_INDEX[r.book], r.chapter, r.verse))
    broken = {(r.book, r.chapter) for r in refs if not src.get(r, "x").strip() or not tgt.get(r, "x").strip()}
    shifted = broken | {(book, chapter + 1) for book, chapter in broken}
    pairs = []
    for r in refs:
        s, t = src.get(r), tgt.get(r)
        if s is None or t is None:
            dropped["missing"] += 1
        elif not s.strip() or not t.strip():
            dropped["empty"] += 1
        elif (r.book, r.chapter) in shifted:
            dropped["shifted"] += 1
        elif r.book == "Psalms" and r.verse == 1 and _starts_lowercase((raw_tgt or tgt).get(r, "")):
            dropped["psalm_title"] += 1
        elif not length_ratio[0] <= len(t) / len(s) <= length_ratio[1]:
            dropped["length_ratio"] += 1
        else:
            pairs.append(Pair(str(r), r.book, s, t))
    return pairs, dropped


def _starts_lowercase(text: str) -> bool:
    """True when the first word is not in capitals: a chapter opening that is not the verse's start."""
    first = _WORD.search(text)
    return first is not None and not first.group().isupper()


# Psalm 119's stanzas open with the Hebrew letter's name in the Spanish only ("ALEPH. BIENAVENTURADOS").
_ACROSTIC = re.compile(r"^(?:ALEPH|BETH|GIMEL|DALETH|HE|VAU|ZAIN|CHETH|TETH|JOD|CAPH|LAMED|MEM|NUN|SAMECH|AIN|PE|"
                       r"TZADDI|KOPH|COPH|RESH|SCHIN|SIN|TAU)\.?\s+")


def verse_pairs(export_src: str | None = None, export_tgt: str | None = None) -> tuple[list[Pair], Counter]:
    """English-Spanish verse pairs from the installed modules (or from exports already in hand)."""
    english = load_bible(ENGLISH_MODULE, export=export_src)
    raw_spanish = load_bible(SPANISH_MODULE, export=export_tgt)
    raw_spanish = {ref: _ACROSTIC.sub("", text) if (ref.book, ref.chapter) == ("Psalms", 119) else text
                   for ref, text in raw_spanish.items()}
    return align(english, truecase_openings(raw_spanish), raw_tgt=raw_spanish)


# --------------------------------------------------------------------------- Tatoeba (full profile)


def read_tatoeba(lines: Iterable[str]) -> list[Pair]:
    """Pairs from a manythings.org/Tatoeba file: ``English<TAB>Other[<TAB>attribution]`` per line."""
    pairs = []
    for k, line in enumerate(lines, start=1):
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 2:
            if line.strip():
                raise DataError(f"line {k} of the sentence-pairs file has no tab: {line.strip()[:80]!r}; "
                                "not a manythings.org/Tatoeba file.")
            continue
        src, tgt = " ".join(parts[0].split()), " ".join(parts[1].split())
        if src and tgt:
            pairs.append(Pair(f"line {k}", "", src, tgt))
    return pairs


# --------------------------------------------------------------------------- file


def write_pairs(path: str | Path, pairs: Iterable[Pair]) -> int:
    path, n = Path(path), 0
    with open(path, "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, delimiter="\t", lineterminator="\n")
        out.writerow(COLUMNS)
        for p in pairs:
            out.writerow((p.ref, p.group, p.src, p.tgt))
            n += 1
    return n


def read_pairs(path: str | Path) -> list[Pair]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f, delimiter="\t")
        header = next(rows, None)
        if tuple(header or ()) != COLUMNS:
            raise DataError(f"{path}: expected the columns {', '.join(COLUMNS)}, got {header}; rebuild the data folder.")
        return [Pair(*row) for row in rows]


# --------------------------------------------------------------------------- split


def _fraction(key: str, salt: str) -> float:
    """A number in [0, 1) fixed by ``key`` alone: the same reference lands in the same split everywhere."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _norm(text: str) -> str:
    """A sentence without case and punctuation: what "the same sentence" means for the split."""
    return " ".join(re.findall(r"[^\W_]+", text.lower()))


def split_pairs(pairs: Sequence[Pair], *, val_fraction: float, test_fraction: float, by: str = "hash",
                salt: str = "labflow-pairs") -> dict[str, list[Pair]]:
    """``{train, val, test: [pairs]}``, fixed by the references (not by a random seed).

    ``by="hash"``: each pair's split comes from a hash of its reference; ``by="book"``: from a
    hash of its group (whole books move together). Pairs that share a reference, a source or a
    target sentence (case and punctuation aside) are one group and follow its earliest member, so
    no verse and no sentence is in two splits: a repeated verse ("And the LORD spake unto Moses, saying,") is
    learnt or tested, never both.
    """
    if by not in ("hash", "book"):
        raise ValueError(f"unknown split '{by}'; choose hash or book")
    if not (0 <= val_fraction and 0 < test_fraction and val_fraction + test_fraction < 1):
        raise ValueError(f"need 0 <= val_fraction, 0 < test_fraction and a sum below 1, got {val_fraction}, {test_fraction}")
    if by == "book" and any(not p.group for p in pairs):
        raise DataError("split: book needs each pair's book, and these pairs have none (the English-French "
                        "Tatoeba pairs are single sentences, not books): set lab16.data.split to hash in params.yaml.")
    parent = list(range(len(pairs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    for i, p in enumerate(pairs):
        for key in (("ref", p.ref), ("src", _norm(p.src)), ("tgt", _norm(p.tgt))):
            j = first.setdefault(key, i)
            a, b = find(i), find(j)
            if a != b:
                parent[max(a, b)] = min(a, b)  # the group's root is its earliest pair
    out: dict[str, list[Pair]] = {s: [] for s in SPLITS}
    for i, p in enumerate(pairs):
        root = pairs[find(i)]
        u = _fraction(root.group if by == "book" else root.ref, salt)
        split = "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"
        out[split].append(p)
    return out
