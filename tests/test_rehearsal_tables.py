"""The rehearsal's fixtures of the tables, series and texts (labflow.rehearsal.fixtures.tables).

Each fixture is built, served by the loopback server under a base URL of its own, merged into
params.yaml's ``data.<name>`` the way the rehearsal merges it (profile ``full``), fetched by the
full profile's own code (download, sha256 and the code's other pins, archive reading, parsing,
the raw format), and then read by the preprocess of a lab whose full profile uses it, at the
full profile's sizes: every training split holds at least two batches of the full batch size.
"""

from __future__ import annotations

import copy
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import read_params
from labflow.data import datasets as ds
from labflow.data import fetch, load_table
from labflow.data import timeseries as ts
from labflow.frame.base import LabContext
from labflow.frame.config import _deep_merge, parse_params
from labflow.rehearsal.fixture import Fixture, sha256_of
from labflow.rehearsal.fixtures import tables
from labflow.rehearsal.fixtures.tables import BUILDERS

SEED = 20240601


def build(name: str, tmp_path: Path, seed: int = SEED) -> Fixture:
    out = tmp_path / "fixtures" / name
    out.mkdir(parents=True)
    return BUILDERS[name](out, np.random.default_rng(seed))


def full_params(tmp_path: Path, name: str, fixture: Fixture, server=None) -> dict:
    """params.yaml (every lab's section) for the full profile, with the fixture's params merged into
    data.<name> and, for a served set, its base_url pointing at the loopback server."""
    raw = copy.deepcopy(read_params())
    raw["profile"] = "full"
    raw["tracking"]["enabled"] = False
    raw["data"][name] = _deep_merge(raw["data"][name] or {}, fixture.params)
    if server is not None:
        for path, file in fixture.served.items():
            server.serve(f"/{name}/{path}", file.read_bytes())
        raw["data"][name]["online"] |= {"base_url": f"{server.url}/{name}/", "retries": 0, "timeout_s": 5.0}
    return raw


def fetch_full(name: str, tmp_path: Path, fixture: Fixture, server, monkeypatch) -> tuple[dict, dict]:
    """(raw params, manifest): the fixture fetched by the full profile into <tmp>/data/raw/<name>."""
    raw = full_params(tmp_path, name, fixture, server)
    params = parse_params(raw)
    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    manifest = fetch(name, "full", getattr(params.data, name).online, tmp_path / "data" / "raw" / name,
                     progress=False, cache=tmp_path / "cache" / name)
    assert manifest["profile"] == "full" and manifest["source"] == f"online: {server.url}/{name}/"
    assert {f"/{name}/{p}" for p in fixture.served} <= set(server.hits)
    return raw, manifest


def lab_ctx(raw: dict, lab: str) -> LabContext:
    return LabContext(lab, parse_params(raw), progress=False)


def test_every_builder_is_deterministic_and_registered(tmp_path):
    assert set(BUILDERS) == {"house_prices", "credit_default", "melbourne_temp", "air_quality", "imdb",
                             "sentence_pairs", "titanic", "elecdemand"}
    assert set(BUILDERS) <= set(read_params()["data"])
    for name in ("house_prices", "imdb", "sentence_pairs"):  # archives: fixed times, same bytes
        a, b = build(name, tmp_path / "a"), build(name, tmp_path / "b")
        assert [sha256_of(f) for f in a.served.values()] == [sha256_of(f) for f in b.served.values()]
        assert a.params == b.params


# --------------------------------------------------------------------------- house_prices: lab 02


def test_house_prices_is_statlibs_archive_and_feeds_lab02(server, tmp_path, monkeypatch):
    fixture = build("house_prices", tmp_path)
    assert list(fixture.served) == [ds.CAL_HOUSING.path]  # figshare's file id under base_url
    with tarfile.open(fixture.served["5976036"]) as tar:
        assert tar.getnames() == ["CaliforniaHousing", "CaliforniaHousing/cal_housing.data",
                                  "CaliforniaHousing/cal_housing.domain"]
        first = tar.extractfile("CaliforniaHousing/cal_housing.data").readline().decode()
    assert len(first.split(",")) == 9 and first.split(",")[0].startswith("-1") and first.endswith("000000\n")
    raw, manifest = fetch_full("house_prices", tmp_path, fixture, server, monkeypatch)
    df, target = load_table(tmp_path / "data" / "raw" / "house_prices")
    assert manifest["target"] == target == "MedHouseVal" and list(df.columns) == ds.CAL_FEATURES + [target]
    assert len(df) == tables.CAL_ROWS and df.notna().all().all()
    assert df[target].between(14_999, 500_001).all() and df["MedInc"].between(0.4999, 15.0001).all()
    assert df["Latitude"].between(32.54, 41.95).all() and df["HouseAge"].between(1, 52).all()
    assert (df["AveBedrms"] < df["AveRooms"]).all() and (df["AveOccup"] > 1).all()

    from labflow.labs.lab02_house_prices import lab as lab02

    ctx = lab_ctx(raw, "lab02")
    meta = lab02.preprocess(ctx)
    assert meta["sizes"]["train"] >= 2 * ctx.cfg.train.batch_size == 128 and meta["dropped_outliers"] == 0
    assert min(meta["sizes"].values()) >= 20 and len(meta["feature_names"]) == 8


# --------------------------------------------------------------------------- credit_default: lab 08


def test_credit_default_is_openmls_arff_and_feeds_lab08(server, tmp_path, monkeypatch):
    fixture = build("credit_default", tmp_path)
    assert list(fixture.served) == [ds.CREDITCARD.path]  # <file id>/creditcard.arff
    text = fixture.served[ds.CREDITCARD.path].read_text()
    assert text.startswith("@RELATION creditcard\n") and "@ATTRIBUTE Class {'0','1'}\n\n@DATA\n" in text
    # Its MD5 is not OpenML's: the pin in data.credit_default.online.pins replaces that one too.
    assert "sha256" not in fixture.params["online"] and list(fixture.params["online"]["pins"]) == ["creditcard.arff"]
    raw, manifest = fetch_full("credit_default", tmp_path, fixture, server, monkeypatch)
    df, target = load_table(tmp_path / "data" / "raw" / "credit_default")
    assert list(df.columns) == ["Time", *(f"V{i}" for i in range(1, 29)), "Amount", "Class"] and target == "Class"
    assert manifest["class_counts"] == [tables.CREDIT_ROWS - tables.CREDIT_FRAUDS, tables.CREDIT_FRAUDS]
    assert df["Time"].is_monotonic_increasing and df["Time"].between(0, 172_792).all() and (df["Amount"] >= 0).all()

    from labflow.labs.lab08_imbalanced import lab as lab08

    ctx = lab_ctx(raw, "lab08")
    meta = lab08.preprocess(ctx)
    counts, batch = meta["class_counts"], ctx.cfg.train.batch_size
    assert meta["sizes"]["train"] >= 2 * batch == 128
    assert counts["train"][1] > ctx.cfg.train.smote_k == 5  # SMOTE's neighbours, without shrinking k
    assert counts["val"][1] >= 3 and counts["test"][1] >= 3  # a tuned threshold and a test ROC worth the name
    assert lab08._categorical_columns(meta) == []  # all numeric: plain SMOTE
    from labflow.prep.tensors import load_processed

    data, _ = load_processed(ctx.processed_dir)
    x, y = lab08.resample("smote", data["x_train"].numpy(), data["y_train"].numpy(), ctx.seed,
                          k_neighbors=ctx.cfg.train.smote_k)
    assert np.bincount(y).tolist() == [counts["train"][0]] * 2


# --------------------------------------------------------------------------- melbourne_temp: lab 14


def test_melbourne_temp_is_the_real_calendar_and_feeds_lab14(server, tmp_path, monkeypatch):
    fixture = build("melbourne_temp", tmp_path)
    data = fixture.served[ts.MELBOURNE_MIN_FILE].read_bytes()
    assert data.startswith(b'"Date","Temp"\r\n"1981-01-01",') and data.endswith(b'"1990-12-31",' + data[-6:-2] + b"\r\n")
    assert data.count(b"\r\n") == ts.MELBOURNE_DAYS + 1 and abs(len(data) - 67_921) < 1_500  # the real file's size
    raw, manifest = fetch_full("melbourne_temp", tmp_path, fixture, server, monkeypatch)
    df, _ = ts.load_series(tmp_path / "data" / "raw" / "melbourne_temp")
    assert manifest["n_rows"] == ts.MELBOURNE_DAYS and manifest["target"] == "temp"
    assert df["temp"].between(0, 26.3).all() and 10 < df["temp"].mean() < 12.5
    january, july = (df.loc[df["date"].dt.month == m, "temp"].mean() for m in (1, 7))
    assert january > july + 5  # southern summer

    from labflow.labs.lab14_rnn_timeseries import lab as lab14

    ctx = lab_ctx(raw, "lab14")
    meta = lab14.preprocess(ctx)
    assert meta["sizes"]["train"] >= 2 * ctx.cfg.train.batch_size and meta["unit"] == "°C"


# --------------------------------------------------------------------------- air_quality: lab 18


def test_air_quality_is_a_city_day_csv_and_feeds_lab18(tmp_path, monkeypatch):
    fixture = build("air_quality", tmp_path)
    assert fixture.served == {} and Path(fixture.params["folder"]) == tmp_path / "fixtures" / "air_quality"
    csv = pd.read_csv(Path(fixture.params["folder"]) / "city_day.csv", dtype=str, keep_default_na=False)
    assert list(csv.columns) == tables.CITY_COLUMNS and csv["City"].nunique() == 5
    assert csv["City"].is_monotonic_increasing and (csv["PM2.5"] == "").any() and (csv["Xylene"] == "").any()
    assert set(csv["AQI_Bucket"]) - {""} <= {b for _, b in tables.AQI_BUCKETS}
    raw = full_params(tmp_path, "air_quality", fixture)
    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    source = parse_params(raw).data.air_quality
    manifest = ts.fetch_user_csv("air_quality", "full", source, tmp_path / "data" / "raw" / "air_quality")
    assert manifest["n_rows"] == tables.DELHI_DAYS and manifest["source_rows"] == tables.DELHI_DAYS - 2
    delhi = csv[csv["City"] == "Delhi"]
    blanks = int((delhi["PM2.5"] == "").sum())
    assert blanks >= 5 and delhi["PM2.5"].iloc[[0, -1]].ne("").all()
    # Blank cells and the two missing days are interpolated (the lab's windows never span a hole).
    assert manifest["filled_by_interpolation"] == {"PM2.5": blanks + 2} and manifest["units"] == {"PM2.5": "µg/m³"}

    from labflow.labs.lab18_forecasting import lab as lab18

    ctx = lab_ctx(raw, "lab18")
    meta = lab18.preprocess(ctx)
    window = ctx.cfg.data.window
    assert meta["sizes"]["train"] >= 2 * ctx.cfg.train.batch_size and min(meta["sizes"].values()) >= 10
    assert meta["bounds"]["val"][0] + window >= ctx.cfg.data.seasonal_period == 365


# --------------------------------------------------------------------------- imdb: labs 15 and 17


def test_imdb_is_the_stanford_archive_and_feeds_lab15(server, tmp_path, monkeypatch):
    fixture = build("imdb", tmp_path)
    with tarfile.open(fixture.served["aclImdb_v1.tar.gz"]) as tar:
        names = tar.getnames()
        review = tar.extractfile("aclImdb/train/pos/0_" + next(
            n for n in names if n.startswith("aclImdb/train/pos/0_")).split("_")[-1]).read().decode()
    for member in ("aclImdb", "aclImdb/README", "aclImdb/imdb.vocab", "aclImdb/imdbEr.txt",
                   "aclImdb/train/labeledBow.feat", "aclImdb/test/urls_neg.txt", "aclImdb/train/unsupBow.feat",
                   "aclImdb/train/urls_unsup.txt"):
        assert member in names
    assert sum(n.startswith("aclImdb/train/unsup/") and n.endswith("_0.txt") for n in names) == tables.IMDB_UNSUP
    ratings = [int(n.rsplit("_", 1)[1][:-4]) for n in names if n.count("/") == 3 and "/unsup/" not in n and n.endswith(".txt")]
    assert len(ratings) == 200 and set(ratings) <= {1, 2, 3, 4, 7, 8, 9, 10}
    assert "\n" not in review
    raw, manifest = fetch_full("imdb", tmp_path, fixture, server, monkeypatch)
    assert manifest["n_texts"] == 200 and manifest["class_counts"] == [100, 100] and manifest["n_groups"] == 40
    texts = pd.read_csv(tmp_path / "data" / "raw" / "imdb" / "texts.csv", keep_default_na=False)
    assert not texts["text"].str.contains("<br").any() and texts["group"].str.fullmatch(r"tt\d{7}").all()
    assert texts["text"].str.contains("é|ï").any()

    from labflow.labs.lab15_rnn_sentiment import lab as lab15

    ctx = lab_ctx(raw, "lab15")
    meta = lab15.preprocess(ctx)
    assert meta["dataset"] == "imdb" and meta["max_tokens"] == 200
    # Lab 17 trains on this split (copied): its scratch transformer's batches of 64 are the largest.
    lab17 = parse_params(raw).lab17
    largest = max([ctx.cfg.train.batch_size, lab17.train.batch_size, *(v.batch_size or 0 for v in lab17.variants.values())])
    assert largest == 64 and meta["sizes"]["train"] >= 2 * largest
    assert all(min(counts) >= 5 for counts in meta["class_counts"].values())
    assert 200 < meta["vocab_size"] <= 10_000 and max(meta["unk_share"].values()) < 0.1
    assert meta["truncated"]["train"] >= 1  # some reviews pass lab 15's 200 tokens (and DistilBERT's 512)


# --------------------------------------------------------------------------- sentence_pairs: labs 16 and 25


def test_sentence_pairs_is_manythings_zip_and_feeds_lab16(server, tmp_path, monkeypatch):
    fixture = build("sentence_pairs", tmp_path)
    with zipfile.ZipFile(fixture.served["fra-eng.zip"]) as z:
        assert z.namelist() == ["_about.txt", "fra.txt"]
        lines = z.read("fra.txt").decode("utf-8").splitlines()
    assert len(lines) == tables.PAIRS and all(len(line.split("\t")) == 3 for line in lines)
    assert lines[0].startswith("Go.\tVa\u202f!\tCC-BY 2.0 (France) Attribution: tatoeba.org #")
    english = [line.split("\t")[0] for line in lines]
    assert [len(e) for e in english] == sorted(len(e) for e in english) and len(set(english)) < len(english)
    assert any(c in "".join(lines) for c in "éèêàçœ")
    raw, manifest = fetch_full("sentence_pairs", tmp_path, fixture, server, monkeypatch)
    assert manifest["n_pairs"] == tables.PAIRS and (manifest["src_lang"], manifest["tgt_lang"]) == ("en", "fr")

    from labflow.labs.lab16_seq2seq import lab as lab16

    ctx = lab_ctx(raw, "lab16")
    meta = lab16.preprocess(ctx)
    lab25 = parse_params(raw).lab25  # reads lab 16's processed pairs
    largest = max(ctx.cfg.train.batch_size, lab25.train.batch_size)
    assert largest == 128 and meta["sizes"]["train"] >= 2 * largest
    assert meta["sizes"]["val"] >= 4 and meta["sizes"]["test"] >= max(ctx.cfg.evaluate.samples, ctx.cfg.evaluate.heatmaps)
    assert meta["before_length_cut"] == meta["sizes"]  # nothing passes 30 tokens
    assert meta["src_vocab"] > 100 and meta["tgt_vocab"] > 100


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sentence_pairs_split_holds_for_any_seed(tmp_path, seed):
    """The rehearsal draws its own rng: the split's sizes must not hang on one seed's sentences."""
    from labflow.data import verses

    fixture = build("sentence_pairs", tmp_path, seed)
    with zipfile.ZipFile(fixture.served["fra-eng.zip"]) as z:
        pairs = verses.read_tatoeba(z.read("fra.txt").decode("utf-8").splitlines(keepends=True))
    full = parse_params(read_params() | {"profile": "full"}).lab16.data
    sizes = {s: len(p) for s, p in verses.split_pairs(pairs, val_fraction=full.val_fraction,
                                                       test_fraction=full.test_fraction).items()}
    assert sizes["train"] >= 256 and sizes["val"] >= 4 and sizes["test"] >= 8, sizes


# --------------------------------------------------------------------------- offline for every profile


@pytest.mark.parametrize("name", ["titanic", "elecdemand"])
def test_offline_sets_need_nothing_under_the_full_profile(tmp_path, name):
    fixture = build(name, tmp_path)
    assert fixture == Fixture()
    assert ds.get_spec(name).online_files == () and read_params()["data"][name]["online"] is None
    manifest = fetch(name, "full", None, tmp_path / "raw", progress=False)
    assert "no separate online source" in manifest["source"]
