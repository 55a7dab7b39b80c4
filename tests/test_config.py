"""params.yaml validation: one clear message naming the key, before any work starts."""

from __future__ import annotations

import copy

import pytest
import yaml

from labflow.frame.config import PROFILES, ConfigError, apply_profile, load_params, parse_params
from labflow.labs import DATA_FROM, LABS, READS_FROM, SHARED_MODEL
from labflow.labs import stages as lab_stages
from conftest import REPO, all_plots, all_stages


def test_repository_params_are_valid_for_every_profile(raw_params):
    for profile in PROFILES:
        params = parse_params({**raw_params, "profile": profile})
        assert params.profile == profile
        for lab in LABS:
            assert params.lab(lab).variants


def test_profile_overrides_are_applied(raw_params):
    quick = parse_params({**raw_params, "profile": "quick"})
    smoke = parse_params({**raw_params, "profile": "smoke"})
    assert smoke.lab01.train.epochs < quick.lab01.train.epochs
    assert smoke.lab01.data.train_size == raw_params["lab01"]["profiles"]["smoke"]["data"]["train_size"]
    # Keys the override does not name keep the section's value.
    assert smoke.lab01.train.lr == quick.lab01.train.lr


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda p: p["lab01"]["train"].update(epohcs=3), "lab01.train.epohcs: unknown key"),
        (lambda p: p["lab01"]["train"].update(epochs="ten"), "lab01.train.epochs"),
        (lambda p: p["lab03"]["variants"]["stochastic"].update(lr=-0.1), "lab03.variants.stochastic.lr"),
        (lambda p: p["lab03"]["variants"]["stochastic"].update(batch_size=-1), "lab03.variants.stochastic.batch_size"),
        (lambda p: p["lab01"]["data"].update(val_fraction=1.5), "lab01.data.val_fraction"),
        (lambda p: p["lab02"]["variants"]["mlp_mse"].update(loss="huber"), "lab02.variants.mlp_mse.loss"),
        (lambda p: p["lab01"]["profiles"]["smoke"]["train"].update(epohcs=3), "lab01.profiles.smoke.train.epohcs"),
        (lambda p: p["lab01"]["profiles"].update(fast={}), "lab01.profiles.fast: unknown profile"),
        (lambda p: p.update(profile="fast"), "profile: 'fast' is not a profile"),
        (lambda p: p.update(sede=1), "sede: unknown key"),
        (lambda p: p["tracking"].update(enabled="maybe"), "tracking.enabled"),
        (lambda p: p["data"]["mnist"].pop("online"), "data.mnist.online: required key is missing"),
    ],
)
def test_bad_params_name_the_key(raw_params, mutate, expected):
    params = copy.deepcopy(raw_params)
    mutate(params)
    with pytest.raises(ConfigError) as info:
        parse_params(params)
    assert expected in str(info.value)


def test_one_message_lists_every_problem(raw_params):
    params = copy.deepcopy(raw_params)
    params["lab01"]["train"]["epochs"] = 0
    params["lab03"]["train"]["hidden"] = []
    message = str(pytest.raises(ConfigError, parse_params, params).value)
    assert "lab01.train.epochs" in message and "lab03.train.hidden" in message


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "params.yaml")
    (tmp_path / "params.yaml").write_text("lab01: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(tmp_path / "params.yaml")


def test_apply_profile_does_not_mutate_input(raw_params):
    before = copy.deepcopy(raw_params)
    apply_profile(raw_params, "smoke")
    assert raw_params == before


def test_dvc_yaml_matches_params_and_registry(raw_params):
    """Every lab has its stages (and no others), and the top-level plots name every variant in
    params.yaml; a lab that trains nothing depends on every model and the data it reads."""
    stages = all_stages()
    plot_files = {f for plot in all_plots() if isinstance(plot, dict) for spec in plot.values() for f in spec["y"]}
    for lab in LABS:
        own = lab_stages(lab)
        for stage in ("preprocess", "train", "decode", "evaluate"):
            assert (f"labs/{lab}/dvc.yaml:{stage}" in stages) == (stage in own), (lab, stage)
        if lab in DATA_FROM:  # it reads another lab's processed data, and says so to DVC
            source = DATA_FROM[lab]
            assert all(f"data/processed/{source}" in stages[f"labs/{lab}/dvc.yaml:{s}"]["deps"] for s in own), lab
        if lab in SHARED_MODEL:
            # one model per training seed, decoded by each variant (a matrix over variants and seeds)
            model, train, decode = SHARED_MODEL[lab], stages[f"labs/{lab}/dvc.yaml:train"], stages[f"labs/{lab}/dvc.yaml:decode"]
            assert train["matrix"] == {"seed": "${seeds}"}, lab
            assert decode["matrix"] == {"variant": "${%s.variants}" % lab, "seed": "${seeds}"}, lab
            assert "seeds" not in train["params"] and "seeds" in stages[f"labs/{lab}/dvc.yaml:evaluate"]["params"], lab
            assert f"models/{lab}/{model}/seed${{item.seed}}/model.pt" in decode["deps"], lab
            assert not any("models/" in (next(iter(o)) if isinstance(o, dict) else o) for o in decode["outs"]), lab
            assert any(f"results/{lab}/variants/{model}/seed${{seed}}/" in f for f in plot_files), lab
        elif "train" in own:
            train = stages[f"labs/{lab}/dvc.yaml:train"]
            # one stage per variant and training seed; adding a seed must not rerun the others
            assert train["matrix"] == {"variant": "${%s.variants}" % lab, "seed": "${seeds}"}, lab
            assert "seeds" not in train["params"] and "seeds" in stages[f"labs/{lab}/dvc.yaml:evaluate"]["params"], lab
            assert all("${item.variant}/seed${item.seed}/" in next(iter(o)) if isinstance(o, dict) else
                       "${item.variant}/seed${item.seed}/" in o for o in train["outs"]), lab
            for variant in raw_params[lab]["variants"]:
                assert any(f"results/{lab}/variants/{variant}/seed${{seed}}/" in f for f in plot_files), (lab, variant)
        else:
            source, deps = READS_FROM[lab], stages[f"labs/{lab}/dvc.yaml:evaluate"]["deps"]
            assert f"data/processed/{source}" in deps
            for variant in raw_params[lab]["variants"]:
                assert f"models/{source}/{variant}/seed${{seed}}/model.pt" in deps, (lab, variant)
                assert variant in raw_params[source]["variants"], (lab, variant)
