"""The rehearsal's params: the full profile's own, with the fixtures as its sources and fewer steps.

Nothing else changes: the stages run the full profile's code on full-size models. What differs is
data (small fixtures, served on loopback; a lab that draws its own data draws less) and steps
(every run's epochs cut to ``epochs_cap``, a phase within a run to one epoch fewer).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping

from labflow.frame.config import apply_profile
from labflow.rehearsal.fixture import Fixture

EPOCHS_CAP = 2
# Labs that draw their data themselves: the sizes they draw (data sizes, not code).
GENERATED_DATA = {"lab24": {"data": {"train_size": 256, "val_size": 64, "test_size": 64}}}


def epoch_counts(section: Mapping, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], int]]:
    """(path, value) of every epoch count in a lab's section: keys ``epochs`` or ``*_epochs``."""
    for key, value in section.items():
        if isinstance(value, Mapping):
            yield from epoch_counts(value, (*path, key))
        elif (key == "epochs" or str(key).endswith("_epochs")) and isinstance(value, int) and not isinstance(value, bool):
            yield (*path, key), value


def _merge(base: dict, override: Mapping) -> dict:
    out = dict(base)
    for key, value in override.items():
        out[key] = _merge(out.get(key) or {}, value) if isinstance(value, Mapping) else value
    return out


def _nested(path: tuple[str, ...], value) -> dict:
    out: dict = value
    for key in reversed(path):
        out = {key: out}
    return out


def rehearsal_params(raw: dict, fixtures: Mapping[str, Fixture], base_url: str, labs: list[str],
                     epochs_cap: int = EPOCHS_CAP) -> tuple[dict, dict[str, dict]]:
    """(params for the rehearsal, per lab: each epoch count's path -> (full value, rehearsed value))."""
    raw = copy.deepcopy(raw)
    raw["profile"] = "full"
    data = raw.setdefault("data", {})
    for name, fixture in fixtures.items():
        if name not in data:  # a pretrained model a library loads from its cache: env only
            continue
        section = data[name] or {}
        if fixture.served:
            section = _merge(section, {"online": {"base_url": f"{base_url}/{name}/"}})
        data[name] = _merge(section, fixture.params)
    resolved = apply_profile(raw, "full")
    cuts: dict[str, dict] = {}
    for lab in labs:
        if lab not in raw:
            continue
        override: dict = copy.deepcopy(GENERATED_DATA.get(lab, {}))
        cuts[lab] = {}
        for path, value in epoch_counts(resolved[lab]):
            # A run's epochs to the cap; a phase within it (``warmup_epochs``) to one epoch fewer,
            # so every phase still runs.
            cap = epochs_cap if path[-1] == "epochs" else max(1, epochs_cap - 1)
            if value > cap:
                override = _merge(override, _nested(path, cap))
                cuts[lab][".".join(path)] = (value, cap)
        profiles = raw[lab].setdefault("profiles", {}) or {}
        profiles["full"] = _merge(profiles.get("full") or {}, override)
        raw[lab]["profiles"] = profiles
    return raw, cuts
