"""Lab 23's parameters (``labs/lab23/params.yaml``, section ``lab23:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from pydantic import Field, PositiveInt

from labflow.frame.config import SplitConfig, Strict


class Lab23Train(Strict):
    """The course's convolutional autoencoder, the same for every noise level."""

    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    channels: tuple[PositiveInt, PositiveInt] = (16, 8)  # the two stride-2 convolutions (the decoder mirrors them)
    # Start the output layer's bias at the logit of the mean training pixel (false: PyTorch's default
    # init, the course's, whose all-black plateau held seed 42 at sigma 0.5; see the lab's docstring).
    mean_pixel_output_bias: bool = True


class Lab23Variant(Strict):
    # Standard deviation of the Gaussian noise added to pixels in [0, 1] (then clipped to [0, 1]).
    noise_std: float = Field(gt=0, le=2)


class Lab23Show(Strict):
    images: int = Field(8, ge=1, le=32)  # test digits in the noisy / denoised / clean grids


class Lab23Config(Strict):
    data: SplitConfig
    train: Lab23Train
    show: Lab23Show = Lab23Show()
    variants: dict[str, Lab23Variant] = Field(min_length=1)
