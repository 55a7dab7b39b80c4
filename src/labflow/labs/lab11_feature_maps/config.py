"""Lab 11's parameters (``labs/lab11/params.yaml``, section ``lab11:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from pydantic import Field

from labflow.frame.config import Strict


class Lab11Show(Strict):
    """How much of each network the figures and statistics look at (lab 11 trains nothing)."""

    images: int = Field(gt=0, le=16)  # test images whose feature maps are drawn
    channels: int = Field(gt=0, le=32)  # feature maps drawn per layer and image
    kernels: int = Field(gt=0, le=256)  # first-layer kernels drawn (at most the layer's filters)
    stats_images: int = Field(gt=0)  # test images the activation statistics are taken over


class Lab11Variant(Strict):
    """A lab 10 network (the variant's name is lab 10's) and the layers whose feature maps are drawn."""

    layers: tuple[str, ...] = Field(min_length=1, max_length=4)


class Lab11Config(Strict):
    show: Lab11Show
    variants: dict[str, Lab11Variant] = Field(min_length=1)


def check_params(params) -> None:
    """Checked against the other sections: lab 11 looks at lab 10's trained networks: each of its variants must be one of lab 10's."""
    missing = [v for v in params.lab11.variants if v not in params.lab10.variants]
    if missing:
        raise ValueError(
            f"lab11.variants.{missing[0]}: lab 11 looks at lab 10's trained networks, and lab10.variants "
            f"has no '{missing[0]}' (it has: {', '.join(params.lab10.variants)})"
        )
