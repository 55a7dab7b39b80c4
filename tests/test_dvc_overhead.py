"""benchmarks/dvc_overhead.py's params.yaml editing: the values change, every comment and other line stays."""

import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("dvc_overhead", ROOT / "benchmarks" / "dvc_overhead.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_set_top_level_value_sets_profile_and_seeds_and_keeps_every_other_line():
    bench = _bench()
    before = (ROOT / "params.yaml").read_text()
    after = bench.set_top_level_value(before, "profile", "smoke")
    after = bench.set_top_level_value(after, "seeds", "[42, 43, 44]")

    params = yaml.safe_load(after)
    assert params["profile"] == "smoke" and params["seeds"] == [42, 43, 44]
    changed = [(old, new) for old, new in zip(before.splitlines(), after.splitlines()) if old != new]
    assert len(before.splitlines()) == len(after.splitlines())
    assert [new.split(":")[0] for _, new in changed] == ["profile", "seeds"]
    old_seeds, new_seeds = changed[1]
    assert new_seeds.index("#") == old_seeds.index("#")  # the comment kept, in its column
    assert new_seeds[new_seeds.index("#"):] == old_seeds[old_seeds.index("#"):]


def test_set_top_level_value_only_touches_the_top_level_key():
    bench = _bench()
    text = "seed: 1\nseeds: [1]  # training seeds\nlab:\n  seeds: [7]\n  profile: x\nprofile: quick\n"
    after = bench.set_top_level_value(bench.set_top_level_value(text, "seeds", "[2, 3]"), "profile", "full")
    assert after == "seed: 1\nseeds: [2, 3] # training seeds\nlab:\n  seeds: [7]\n  profile: x\nprofile: full\n"
    with pytest.raises(ValueError, match="'threads:'"):
        bench.set_top_level_value(text, "threads", "1")


def test_parse_seeds_reads_a_comma_list_and_names_the_fix_otherwise():
    bench = _bench()
    assert bench.parse_seeds("42,43, 44") == [42, 43, 44]
    with pytest.raises(SystemExit, match="--seeds 42,43,44"):
        bench.parse_seeds("42;43")
