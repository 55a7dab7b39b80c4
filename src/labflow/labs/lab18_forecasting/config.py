"""Lab 18's parameters (``labs/lab18/params.yaml``, section ``lab18:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from labflow.frame.config import SeriesData, SeriesTrain, SeriesVariant, Strict


class Lab18Data(SeriesData):
    # quick/smoke: elecdemand (offline); full: air_quality, the user's CSV (data.air_quality).
    dataset: Literal["elecdemand", "air_quality"] = "elecdemand"
    target: str = Field(min_length=1)  # the column forecast one step ahead
    inputs: tuple[str, ...] = Field(min_length=1)  # the columns a window holds (the target among them)

    @model_validator(mode="after")
    def _target_is_an_input(self):
        if self.target not in self.inputs:
            raise ValueError(f"inputs {list(self.inputs)} must include the target '{self.target}': the models, "
                             "like the persistence baseline, read the series' own past")
        return self


class Lab18Config(Strict):
    data: Lab18Data
    train: SeriesTrain
    variants: dict[str, SeriesVariant] = Field(min_length=1)
