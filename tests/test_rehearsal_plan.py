"""The rehearsal's params: the full profile's own, with fixtures as sources and every epoch count cut."""

from __future__ import annotations

from labflow.frame.config import apply_profile, parse_params, read_raw_params
from labflow.labs import LABS
from labflow.rehearsal.fixture import Fixture
from labflow.rehearsal.plan import EPOCHS_CAP, GENERATED_DATA, epoch_counts, rehearsal_params
from conftest import REPO


def _section_without(section: dict, paths: set[tuple]) -> dict:
    """``section`` with the given leaf paths dropped (what the rehearsal may change)."""
    out = {}
    for key, value in section.items():
        if isinstance(value, dict):
            out[key] = _section_without(value, {p[1:] for p in paths if p[0] == key})
        elif (key,) not in paths:
            out[key] = value
    return out


def test_the_rehearsal_changes_data_sources_and_epoch_counts_only():
    raw = read_raw_params(REPO / "params.yaml")
    fixtures = {"mnist": Fixture(served={"a.gz": REPO / "x"}, params={"online": {"pins": {"a.gz": "0" * 64}}}),
                "cats_vs_dogs": Fixture(params={"folder": "/tmp/pets"}),
                "coco_detectors": Fixture(env={"TORCH_HOME": "/tmp/t"})}
    params, cuts = rehearsal_params(raw, fixtures, "http://127.0.0.1:1", list(LABS))
    parse_params(params)  # still valid params, under the full profile
    assert params["profile"] == "full"
    assert params["data"]["mnist"]["online"] == {**raw["data"]["mnist"]["online"],
                                                 "base_url": "http://127.0.0.1:1/mnist/", "pins": {"a.gz": "0" * 64}}
    assert params["data"]["cats_vs_dogs"]["folder"] == "/tmp/pets" and "coco_detectors" not in params["data"]
    full, rehearsed = apply_profile({**raw, "profile": "full"}, "full"), apply_profile(params, "full")
    assert cuts["lab10"]["train.epochs"] == (10, EPOCHS_CAP)
    for lab in LABS:
        counts = dict(epoch_counts(rehearsed[lab]))
        assert max(counts.values(), default=0) <= EPOCHS_CAP, lab
        assert all(v < EPOCHS_CAP for path, v in counts.items() if path[-1] != "epochs"), lab
        changed = {path for path, value in epoch_counts(full[lab]) if value > EPOCHS_CAP}
        assert {".".join(p) for p in changed} == set(cuts[lab]), lab
        generated = {("data", key) for key in GENERATED_DATA.get(lab, {}).get("data", {})}
        assert _section_without(rehearsed[lab], changed | generated) == _section_without(full[lab], changed | generated), lab
    shared = {k for k in raw if k not in LABS and k not in ("data", "profile")}
    assert {k: params[k] for k in shared} == {k: raw[k] for k in shared}
