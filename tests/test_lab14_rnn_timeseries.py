"""Lab 14 and the shared time-series pieces: split, scaler, windows, baselines, models, and the
full profile's Melbourne download (a fixture file through the real download code)."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO, read_params
from labflow.frame.config import OnlineSource, parse_params
from labflow.data import ChecksumError, DataError, fetch
from labflow.data import datasets as ds
from labflow.data import timeseries as ts
from labflow.labs.lab14_rnn_timeseries import lab as lab14
from labflow.prep import series
from labflow.frame.base import LabContext
from labflow.prep.tensors import load_processed
from labflow.nets.common import count_parameters

# --------------------------------------------------------------------------- split and windows


def test_windows_never_cross_splits():
    bounds = series.chronological_split(200, 0.15, 0.15, window=10)
    assert bounds == {"train": (0, 140), "val": (140, 170), "test": (170, 200)}
    rows = np.arange(200, dtype=np.float64)
    rng = np.random.default_rng(0)
    for start, stop in bounds.values():
        for share in (1.0, 0.3):
            idx = series.keep_share(series.target_indices(start, stop, 10), share, rng)
            x, y = series.make_windows(rows, rows, idx, 10)
            assert x.shape == (len(idx), 10, 1) and y.shape == (len(idx), 1)
            # Every input row and every target lies inside the split; inputs end right before the target.
            assert x.min() >= start and y.max() < stop and y.min() >= start + 10
            assert (x[:, -1, 0] == y[:, 0] - 1).all() and (x[:, 0, 0] == y[:, 0] - 10).all()
    assert series.target_indices(0, 140, 10).tolist() == list(range(10, 140))


def test_a_random_share_of_windows_covers_every_time_of_day():
    # 48 half-hours a day: every 4th window would only ever see 12 of them.
    idx = series.target_indices(0, 48 * 60, 90)
    kept = series.keep_share(idx, 0.25, np.random.default_rng(42))
    assert len(kept) == round(len(idx) * 0.25) and (np.diff(kept) > 0).all() and set(kept) <= set(idx)
    assert len(set(kept % 48)) == 48 and len(set(idx[::4] % 48)) == 12


def test_a_split_shorter_than_the_window_is_refused():
    with pytest.raises(ValueError, match="not longer than the window"):
        series.chronological_split(100, 0.05, 0.05, window=10)


def _ctx(tmp_path, monkeypatch, lab="lab14", **data):
    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    raw = read_params()
    raw[lab]["data"].update(data)
    raw["tracking"]["enabled"] = False
    return LabContext(lab, parse_params(raw), progress=False)


def test_prepare_fits_the_scaler_on_training_rows_only(tmp_path, monkeypatch):
    # Training years around 10 degrees, the later ones around 30: a scaler that saw them would shift.
    temp = np.r_[np.full(140, 10.0) + np.sin(np.arange(140)), np.full(60, 30.0)]
    df = pd.DataFrame({"date": pd.date_range("2000-01-01", periods=200), "temp": temp})
    ctx = _ctx(tmp_path, monkeypatch, window=5, seasonal_period=7, keep_windows=0.5)
    meta = series.prepare(ctx, df, {"units": {"temp": "°C"}, "description": "toy"}, inputs=["temp"], target="temp")
    data, saved = load_processed(ctx.processed_dir)
    assert saved == meta and meta["bounds"] == {"train": [0, 140], "val": [140, 170], "test": [170, 200]}
    assert meta["scaler"]["mean"] == [pytest.approx(temp[:140].mean())]
    assert meta["scaler"]["std"] == [pytest.approx(temp[:140].std())]
    assert meta["scaler"]["mean"][0] != pytest.approx(temp.mean())
    # Windows hold scaled values of their own split; keep_windows thins train and val, never test.
    assert np.allclose(series.to_units(data["y_test"], meta), temp[data["idx_test"].numpy()], atol=1e-5)
    assert len(data["idx_train"]) == round(135 * 0.5) and set(data["idx_train"].tolist()) <= set(range(5, 140))
    assert data["idx_test"].tolist() == list(range(175, 200))
    scaled = (temp - temp[:140].mean()) / temp[:140].std()
    first = int(data["idx_val"][0])
    assert first >= 145 and np.allclose(data["x_val"][0, :, 0].numpy(), scaled[first - 5:first], atol=1e-6)
    assert data["series"].dtype == torch.float64 and meta["unit"] == "°C"


# --------------------------------------------------------------------------- baselines and metrics


def test_baselines_on_a_toy_series():
    season = np.tile([1.0, 5.0, 2.0, 8.0], 10)  # period 4
    idx = np.arange(8, 40)
    assert (series.seasonal_naive(season, idx, 4) == season[idx]).all()  # exact on a purely seasonal series
    ramp = np.arange(40, dtype=np.float64) * 2.0
    assert (series.persistence(ramp, idx) == ramp[idx] - 2.0).all()  # one step behind
    m = series.regression_metrics(series.persistence(ramp, idx), ramp[idx], "test")
    assert m == {"test_mse": 4.0, "test_rmse": 2.0, "test_mae": 2.0}
    with pytest.raises(ValueError, match="needs 4 steps of history"):
        series.seasonal_naive(season, np.arange(2, 10), 4)


def test_regression_metrics_are_in_the_series_units():
    m = series.regression_metrics(np.array([1.0, 2.0, 4.0]), np.array([1.0, 4.0, 1.0]), "t")
    assert m["t_mse"] == pytest.approx((0 + 4 + 9) / 3) and m["t_mae"] == pytest.approx(5 / 3)
    assert m["t_rmse"] == pytest.approx(np.sqrt(13 / 3))


def test_the_table_says_when_a_net_does_not_beat_persistence():
    assert series.versus_persistence(8.0, 10.0) == "yes (-20% MSE)"
    assert series.versus_persistence(12.0, 10.0).startswith("NO: worse than persistence (+20%")
    assert series.metric_columns("°C") == {"mse": "test_mse (°C²)", "rmse": "test_rmse (°C)", "mae": "test_mae (°C)"}


# --------------------------------------------------------------------------- models


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_recurrent_nets_map_a_window_to_one_value(cell):
    model = series.build_model(cell, window=10, n_features=1, hidden=32, layers=1, mlp_hidden=(64,))
    assert model(torch.zeros(7, 10, 1)).shape == (7, 1)


def test_the_courses_sizes():
    rnn = series.build_model("rnn", window=10, n_features=1, hidden=32, layers=1, mlp_hidden=(64,))
    lstm = series.build_model("lstm", window=10, n_features=1, hidden=32, layers=1, mlp_hidden=(64,))
    # RNN: 32*(1+32) + 2*32 biases + head 33; LSTM: four times the gates.
    assert count_parameters(rnn) == 32 * 33 + 64 + 33 == 1153
    assert count_parameters(lstm) == 4 * (32 * 33 + 64) + 33 == 4513


def test_same_seed_same_initial_weights():
    from labflow.nets.common import seeded

    def build():
        return series.build_model("lstm", window=10, n_features=1, hidden=32, layers=1, mlp_hidden=())

    a, b, c = seeded(build, 42), seeded(build, 42), seeded(build, 7)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.state_dict()["head.weight"], c.state_dict()["head.weight"])


# --------------------------------------------------------------------------- data: quick and full


TOY_TEMPS = np.round(10 + 5 * np.sin(np.arange(3650) / 58.1), 1)


def melbourne_csv(values=TOY_TEMPS) -> bytes:
    """The daily-minimum file's layout: quoted header and dates, CRLF lines, 3,650 days."""
    dates = ts.melbourne_dates()
    lines = ['"Date","Temp"'] + [f'"{d:%Y-%m-%d}",{v}' for d, v in zip(dates, values)]
    return ("\r\n".join(lines)).encode()


def test_melbourne_calendar_drops_the_leap_years_31_december():
    dates = ts.melbourne_dates()
    assert len(dates) == 3650 and dates[0] == pd.Timestamp("1981-01-01") and dates[-1] == pd.Timestamp("1990-12-31")
    assert pd.Timestamp("1984-12-31") not in dates and pd.Timestamp("1984-02-29") in dates


def test_parse_melbourne_csv(tmp_path):
    (tmp_path / "ok.csv").write_bytes(b'"Date","Temp"\r\n"1981-01-01",20.7\r\n"1981-01-02",17.9\r\n"1981-01-03",18.8')
    df = ts.parse_melbourne_csv(tmp_path / "ok.csv")
    assert df["temp"].tolist() == [20.7, 17.9, 18.8] and df["date"].iloc[2] == pd.Timestamp("1981-01-03")
    # The course's Kaggle copy has values such as "?0.2": refused, never replaced by a mean.
    (tmp_path / "bad.csv").write_bytes(b'"Date","Temp"\r\n"1981-01-01",20.7\r\n"1981-01-02",?0.2\r\n')
    with pytest.raises(DataError, match=r"row 3 has an unreadable temperature"):
        ts.parse_melbourne_csv(tmp_path / "bad.csv")
    (tmp_path / "cols.csv").write_text("when,temp,extra\n1981-01-01,1,2\n")
    with pytest.raises(DataError, match="expected two columns 'Date'"):
        ts.parse_melbourne_csv(tmp_path / "cols.csv")


def test_full_profile_downloads_the_daily_minimum_with_its_checksum(server, tmp_path, monkeypatch):
    body = melbourne_csv()
    server.serve(f"/Datasets/master/{ts.MELBOURNE_MIN_FILE}", body)
    spec = ds.DATASETS["melbourne_temp"]
    fixture = (ds.RemoteFile(ts.MELBOURNE_MIN_FILE, hashlib.sha256(body).hexdigest()),)
    monkeypatch.setitem(ds.DATASETS, "melbourne_temp", dataclasses.replace(spec, online_files=fixture))
    online = OnlineSource(base_url=server.url + "/Datasets/master/", retries=1, timeout_s=2.0)
    m = fetch("melbourne_temp", "full", online, tmp_path / "raw", progress=False, cache=tmp_path / "cache")
    assert m["kind"] == "series" and m["units"] == {"temp": "°C"} and m["n_rows"] == 3650
    assert "minimum" in m["description"] and m["source"].startswith("online: http://127.0.0.1")
    df, _ = ts.load_series(tmp_path / "raw")
    assert np.array_equal(df["temp"].to_numpy(), TOY_TEMPS) and df["date"].iloc[-1] == pd.Timestamp("1990-12-31")
    # A different file at the URL: the checksum stops it and the data already there stays.
    server.serve(f"/Datasets/master/{ts.MELBOURNE_MIN_FILE}", melbourne_csv(np.zeros(3650)))
    with pytest.raises(ChecksumError, match="data.melbourne_temp.online.base_url"):
        fetch("melbourne_temp", "full", online, tmp_path / "raw", progress=False, cache=tmp_path / "other")
    assert ts.load_series(tmp_path / "raw")[1] == m


def test_the_real_source_is_pinned(raw_params):
    remote = ds.DATASETS["melbourne_temp"].online_files[0]
    assert remote.url(raw_params["data"]["melbourne_temp"]["online"]["base_url"]) == \
        "https://raw.githubusercontent.com/jbrownlee/Datasets/master/daily-min-temperatures.csv"
    assert remote.sha256 == ts.MELBOURNE_MIN_SHA256 and len(remote.sha256) == 64


def test_quick_profile_reads_the_daily_maximum_offline(tmp_path):
    m = fetch("melbourne_temp", "quick", None, tmp_path / "raw", progress=False)
    df, _ = ts.load_series(tmp_path / "raw")
    assert m["n_rows"] == 3650 and "maximum" in m["description"]
    assert df["temp"].iloc[:3].tolist() == [38.1, 32.4, 34.5]  # 1-3 January 1981, as the Bureau recorded them
    assert df["date"].iloc[365] == pd.Timestamp("1982-01-01")


def test_profiles(raw_params):
    quick, smoke, full = (parse_params(raw_params | {"profile": p}).lab14 for p in ("quick", "smoke", "full"))
    assert (quick.data.window, quick.train.hidden, quick.train.layers) == (10, 32, 1)  # the course's
    assert {v.model for v in quick.variants.values()} == {"rnn", "lstm"}
    assert smoke.train.epochs < quick.train.epochs < full.train.epochs == 100
    assert lab14.DATASETS == ("melbourne_temp",)


# --------------------------------------------------------------------------- test_scores


@pytest.mark.parametrize("variant", ["rnn", "lstm"])
def test_test_scores_are_what_the_train_stage_wrote(tmp_path, monkeypatch, one_thread, variant):
    import json

    from labflow.train.callbacks import load_weights

    raw = read_params()
    raw["profile"] = "smoke"
    raw["tracking"]["enabled"] = False
    raw["lab14"]["data"].update(window=5, seasonal_period=7)
    raw["lab14"]["profiles"]["smoke"]["train"]["epochs"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    ctx = LabContext("lab14", parse_params(raw), progress=False)
    temp = 10 + 5 * np.sin(np.arange(200) / 9.0)
    df = pd.DataFrame({"date": pd.date_range("2000-01-01", periods=200), "temp": temp})
    series.prepare(ctx, df, {"units": {"temp": "°C"}, "description": "toy"}, inputs=["temp"], target="temp")
    lab14.train(ctx, variant)
    written = json.loads((ctx.results_dir(variant) / "metrics.json").read_text())
    saved = load_weights(ctx.model_dir(variant) / "model.pt")
    info = dict(saved["info"])
    model = series.build_model(info.pop("kind"), **info)
    model.load_state_dict(saved["state_dict"])
    scores = lab14.test_scores(ctx, variant, model.train())
    assert set(scores) == {k for k in written if k.startswith("test_")} == {"test_loss", "test_mse", "test_rmse", "test_mae"}
    assert scores == {k: written[k] for k in scores}
    assert model.training
