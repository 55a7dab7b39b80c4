"""Lab 21's parameters (``labs/lab21/params.yaml``, section ``lab21:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from labflow.frame.config import Strict


class Lab21Data(Strict):
    """Two unpaired image domains: two Fashion-MNIST classes (quick/smoke) or horse2zebra (full)."""

    dataset: Literal["fashion_mnist", "horse2zebra"] = "fashion_mnist"
    domain_a: str = "Sneaker"  # a class name of the data set (horse2zebra: horse)
    domain_b: str = "Ankle boot"  # (horse2zebra: zebra)
    train_per_domain: int | None = Field(None, gt=0)  # null: all
    test_per_domain: int | None = Field(None, gt=1)
    image_size: int | None = Field(None, ge=16, le=512)  # resize to this square (null: keep the data set's size)

    @model_validator(mode="after")
    def _two_domains(self):
        if self.domain_a == self.domain_b:
            raise ValueError(f"domain_a and domain_b are both '{self.domain_a}': a translation needs two domains")
        return self


class Lab21Model(Strict):
    """CycleGAN's networks (Zhu et al. 2017), scaled: ResNet generators, PatchGAN discriminators."""

    generator_channels: int = Field(64, gt=0)  # ngf: c7s1-ngf, d2ngf, d4ngf, R4ngf x blocks, u2ngf, ungf
    residual_blocks: int = Field(9, ge=0)
    discriminator_channels: int = Field(64, gt=0)  # ndf: C ndf - C 2ndf - ... (PatchGAN)
    discriminator_layers: int = Field(3, ge=1, le=5)  # stride-2 convolutions (3: the 70x70 PatchGAN)


class Lab21Judge(Strict):
    """The domain classifier trained in labs/lab21/dvc.yaml:evaluate on the real training images of both domains."""

    epochs: int = Field(3, gt=0)
    batch_size: int = Field(64, gt=0)
    lr: float = Field(1e-3, gt=0)
    channels: int = Field(16, gt=0)  # first conv's channels, doubled at each stride-2 block


class Lab21Train(Strict):
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    cycle_weight: float = Field(10.0, ge=0)  # lambda of the cycle-consistency L1 loss
    show: int = Field(8, ge=1, le=32)  # fixed test images per domain rendered after every epoch


class Lab21Variant(Strict):
    identity_weight: float = Field(ge=0)  # weight of the identity L1 loss (the seed's 5 = 0.5 x cycle_weight; 0: none)


class Lab21Config(Strict):
    data: Lab21Data
    model: Lab21Model
    judge: Lab21Judge = Lab21Judge()
    train: Lab21Train
    variants: dict[str, Lab21Variant] = Field(min_length=1)
