"""Lab 18: the LSTM and the dense net on the same windows, residuals, the elecdemand series, and
the full profile's user CSV: a good one becomes a regular series, a missing or malformed one
stops with one error naming the file and the columns it must have."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from conftest import REPO, read_params
from labflow.frame.config import ConfigError, SeriesCsvSource, parse_params
from labflow.data import DataError, fetch
from labflow.data import timeseries as ts
from labflow.labs.lab18_forecasting import lab as lab18
from labflow.prep import series
from labflow.nets.common import count_parameters

# --------------------------------------------------------------------------- models


def test_lstm_and_mlp_read_the_same_window():
    x = torch.randn(6, 90, 2)
    lstm = series.build_model("lstm", window=90, n_features=2, hidden=128, layers=2, mlp_hidden=(64,))
    mlp = series.build_model("mlp", window=90, n_features=2, hidden=128, layers=2, mlp_hidden=(64,))
    assert lstm(x).shape == mlp(x).shape == (6, 1)
    # LSTM 128 x 2: layer 1 4*128*(2+128) + 2*4*128 biases, layer 2 4*128*(128+128) + biases, head 129.
    assert count_parameters(lstm) == 4 * 128 * 130 + 1024 + 4 * 128 * 256 + 1024 + 129
    assert count_parameters(mlp) == 180 * 64 + 64 + 65  # the course's dense net on the flattened window


def test_residuals_are_actual_minus_predicted():
    r = lab18.residuals(np.array([3.0, 5.0]), {"lstm": np.array([2.5, 6.0])})
    assert r["lstm"].tolist() == [0.5, -1.0]


def test_the_target_must_be_an_input(raw_params):
    params = copy.deepcopy(raw_params)
    params["lab18"]["data"]["inputs"] = ["Temperature"]
    with pytest.raises(ConfigError, match="must include the target 'Demand'"):
        parse_params(params)


def test_profiles(raw_params):
    quick, smoke, full = (parse_params(raw_params | {"profile": p}).lab18 for p in ("quick", "smoke", "full"))
    assert (quick.data.window, quick.train.hidden, quick.train.layers) == (90, 128, 2)  # the course's
    assert {v.model for v in quick.variants.values()} == {"lstm", "mlp"}
    assert (quick.data.dataset, full.data.dataset) == ("elecdemand", "air_quality")
    assert full.data.keep_windows == 1.0 and full.data.target == "PM2.5" and full.train.epochs == 50
    assert smoke.train.epochs < quick.train.epochs


def test_elecdemand_is_half_hourly_2014(tmp_path):
    m = fetch("elecdemand", "quick", None, tmp_path / "raw", progress=False)
    df, _ = ts.load_series(tmp_path / "raw")
    assert m["n_rows"] == 17_520 and m["units"]["Demand"] == "GW" and m["frequency"] == "30min"
    assert df["date"].iloc[1] - df["date"].iloc[0] == pd.Timedelta("30min") and df["date"].iloc[-1].year == 2014


# --------------------------------------------------------------------------- the user CSV


def city_day(path, rows=None):
    """A few rows in the layout of Kaggle's city_day.csv (two cities, a gap, an empty value)."""
    rows = rows or [
        ("Delhi", "2015-01-03", "150.5"), ("Mumbai", "2015-01-01", "40"), ("Delhi", "2015-01-01", "120.0"),
        ("Delhi", "2015-01-02", ""), ("Delhi", "2015-01-05", "90.0"), ("Mumbai", "2015-01-02", "45"),
    ]
    lines = ["City,Date,PM2.5,PM10"] + [f"{c},{d},{v},1" for c, d, v in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def source(folder, **kw) -> SeriesCsvSource:
    return SeriesCsvSource(folder=str(folder), **kw)


def test_a_good_csv_becomes_a_regular_series(tmp_path):
    city_day(tmp_path / "city_day.csv")
    m = ts.fetch_user_csv("air_quality", "full", source(tmp_path), tmp_path / "raw")
    df, _ = ts.load_series(tmp_path / "raw")
    assert df["date"].dt.strftime("%m-%d").tolist() == ["01-01", "01-02", "01-03", "01-04", "01-05"]
    # Mumbai filtered out, sorted by date, the empty 2 January and the missing 4 January interpolated.
    assert df["PM2.5"].tolist() == pytest.approx([120.0, 135.25, 150.5, 120.25, 90.0])
    assert m["filled_by_interpolation"] == {"PM2.5": 2} and m["units"] == {"PM2.5": "µg/m³"}
    assert m["target"] == "PM2.5" and m["source"].startswith("user CSV: ")


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "city_day.csv: no such file"),
    (lambda d: (d / "city_day.csv").write_text("City,Day,PM25\nDelhi,2015-01-01,3\n"), "no column(s) Date, PM2.5"),
    (lambda d: (d / "city_day.csv").write_bytes(b"\x00\xff\xfe garbage"), "city_day.csv"),
    (lambda d: city_day(d / "city_day.csv", [("Delhi", "2015-01-01", "12"), ("Delhi", "yesterday", "3")]),
     "column Date holds 'yesterday', not a date"),
    (lambda d: city_day(d / "city_day.csv", [("Delhi", "2015-01-01", "12"), ("Delhi", "2015-01-02", "lots")]),
     "column PM2.5 holds 'lots', not a number"),
    (lambda d: city_day(d / "city_day.csv", [("Delhi", "2015-01-01", "12"), ("Delhi", "2015-01-01", "13")]),
     "appears more than once"),
    (lambda d: city_day(d / "city_day.csv", [("Mumbai", "2015-01-01", "12")]), "no rows where City = 'Delhi'"),
])
def test_a_missing_or_malformed_csv_names_the_file_and_the_columns(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(DataError) as err:
        ts.fetch_user_csv("air_quality", "full", source(tmp_path), tmp_path / "raw")
    text = str(err.value)
    assert message in text and str(tmp_path / "city_day.csv") in text
    if "no such file" in message or "no column" in message:
        assert "Date, City, PM2.5" in text  # the columns the file must have
    assert not (tmp_path / "raw").exists()


def test_no_folder_under_full_names_the_params_key(tmp_path):
    with pytest.raises(DataError, match=r"data.air_quality.folder is not set.*columns Date, City, PM2.5"):
        ts.fetch_user_csv("air_quality", "full", SeriesCsvSource(), tmp_path / "raw")


@pytest.mark.parametrize("profile", ["smoke", "quick"])
def test_offline_profiles_write_a_marker(tmp_path, profile):
    m = ts.fetch_user_csv("air_quality", profile, SeriesCsvSource(), tmp_path / "raw")
    assert m["kind"] == "unavailable"
    with pytest.raises(DataError, match="holds no data"):
        ts.load_series(tmp_path / "raw")


def test_the_download_stage_prints_one_clear_error(tmp_path, monkeypatch, capsys):
    """What a user sees: `dvc repro` under full with a CSV lacking the PM2.5 column."""
    from labflow.frame import stages
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "city_day.csv").write_text("City,Date,PM10\nDelhi,2015-01-01,3\n")
    raw = read_params()
    raw["profile"] = "full"
    raw["data"]["air_quality"]["folder"] = str(tmp_path / "csv")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    assert stages.main(stages.download, ["air_quality"], "usage") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("labflow: error: ")
    assert str(tmp_path / "csv" / "city_day.csv") in err[0] and "no column(s) PM2.5" in err[0]
    assert "Date, City, PM2.5" in err[0]


def test_preprocess_names_a_column_the_series_lacks(tmp_path, monkeypatch):
    from labflow.frame.base import LabContext

    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    raw = read_params()
    raw["lab18"]["data"].update(target="PM2.5", inputs=["PM2.5"])
    ctx = LabContext("lab18", parse_params(raw), progress=False)
    df = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=500), "Demand": np.arange(500.0)})
    with pytest.raises(KeyError, match=r"lab18.data: column\(s\) PM2.5 are not in data set elecdemand"):
        series.prepare(ctx, df, {}, inputs=["PM2.5"], target="PM2.5")


def test_two_inputs_are_scaled_separately_on_training_rows(tmp_path, monkeypatch):
    from labflow.frame.base import LabContext
    from labflow.prep.tensors import load_processed

    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    raw = read_params()
    raw["lab18"]["data"].update(window=12, seasonal_period=24, keep_windows=1.0)
    ctx = LabContext("lab18", parse_params(raw), progress=False)
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"date": pd.date_range("2014-01-01", periods=400, freq="30min"),
                       "Demand": 4 + rng.normal(size=400), "Temperature": 20 + 5 * rng.normal(size=400)})
    meta = series.prepare(ctx, df, {"units": {"Demand": "GW"}}, inputs=["Demand", "Temperature"], target="Demand")
    data, _ = load_processed(ctx.processed_dir)
    train = df[["Demand", "Temperature"]].to_numpy()[:280]
    assert meta["scaler"]["mean"] == pytest.approx(train.mean(0).tolist())
    assert data["x_train"].shape == (268, 12, 2) and meta["target_column"] == 0
    # The target is the next step of the first input, scaled like it.
    assert torch.allclose(data["y_train"][:-1, 0], data["x_train"][1:, -1, 0])


@pytest.mark.parametrize("variant", ["mlp", "lstm"])
def test_test_scores_are_what_the_train_stage_wrote(tmp_path, monkeypatch, one_thread, variant):
    import json

    from labflow.frame.base import LabContext
    from labflow.train.callbacks import load_weights

    raw = read_params()
    raw["profile"] = "smoke"
    raw["tracking"]["enabled"] = False
    raw["lab18"]["data"].update(window=12, seasonal_period=24)
    raw["lab18"]["train"].update(hidden=8)
    raw["lab18"]["profiles"]["smoke"]["train"]["epochs"] = 1
    raw["lab18"]["profiles"]["smoke"]["data"]["keep_windows"] = 0.5
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    ctx = LabContext("lab18", parse_params(raw), progress=False)
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"date": pd.date_range("2014-01-01", periods=300, freq="30min"),
                       "Demand": 4 + np.sin(np.arange(300) / 8) + 0.1 * rng.normal(size=300)})
    series.prepare(ctx, df, {"units": {"Demand": "GW"}}, inputs=["Demand"], target="Demand")
    lab18.train(ctx, variant)
    written = json.loads((ctx.results_dir(variant) / "metrics.json").read_text())
    saved = load_weights(ctx.model_dir(variant) / "model.pt")
    info = dict(saved["info"])
    model = series.build_model(info.pop("kind"), **info)
    model.load_state_dict(saved["state_dict"])
    scores = lab18.test_scores(ctx, variant, model.train())
    assert set(scores) == {k for k in written if k.startswith("test_")} == {"test_loss", "test_mse", "test_rmse", "test_mae"}
    assert scores == {k: written[k] for k in scores}
    assert model.training
