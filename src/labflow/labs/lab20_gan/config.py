"""Lab 20's parameters (``labs/lab20/params.yaml``, section ``lab20:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from labflow.frame.config import Strict


class Lab20Data(Strict):
    """Fashion-MNIST in every profile (the quick profile takes a class-balanced subset)."""

    dataset: Literal["fashion_mnist"] = "fashion_mnist"
    train_size: int | None = Field(None, gt=0)  # images the GANs learn from (null: all)
    # Real test images, and as many generated samples per variant, for the Fréchet distance (null: all).
    test_size: int | None = Field(None, gt=1)


class Lab20Judge(Strict):
    """The classifier whose features the Fréchet distance is measured in (and whose predictions
    give the samples' confidence and class histogram)."""

    # lab10: lab 10's trained simple CNN (models/lab10/simple_cnn/model.pt, a DVC dependency; lab 10
    # must train on fashion_mnist); own: the same course CNN trained in labs/lab20/dvc.yaml:evaluate on lab 20's
    # training images (the full profile, where lab 10 trains on CIFAR-10).
    source: Literal["lab10", "own"] = "lab10"
    epochs: int = Field(3, gt=0)  # own only
    batch_size: int = Field(64, gt=0)  # own only
    lr: float = Field(1e-3, gt=0)  # own only (Adam)


class Lab20Train(Strict):
    """The seed's optimisation for both GANs: Adam(lr, betas=(beta1, 0.999)) for G and D, batch 128."""

    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    latent_dim: int = Field(100, gt=0)
    fixed_noise: int = Field(64, ge=8, le=256)  # the fixed noise batch rendered after every epoch


class Lab20Variant(Strict):
    arch: Literal["mlp", "dcgan"]
    hidden: int = Field(128, gt=0)  # mlp: G z-h-2h-4h-784, D 784-4h-2h-h-1 (the seed's 128)
    width: float = Field(1.0, gt=0, le=4)  # dcgan: channels 64*width (D 1-c-2c, G 2c-c-1)

    @model_validator(mode="after")
    def _knob_of_its_arch(self):
        if self.arch == "mlp" and self.width != 1.0:
            raise ValueError(f"width {self.width}: the MLP GAN has no width; set hidden instead")
        if self.arch == "dcgan" and self.hidden != 128:
            raise ValueError(f"hidden {self.hidden}: the DCGAN has no hidden layer size; set width instead")
        return self


class Lab20Config(Strict):
    data: Lab20Data
    judge: Lab20Judge = Lab20Judge()
    train: Lab20Train
    variants: dict[str, Lab20Variant] = Field(min_length=1)

    @model_validator(mode="after")
    def _reference_sample_fits(self):
        d = self.data
        if d.train_size is not None and d.test_size is not None and d.train_size < d.test_size:
            raise ValueError(f"data.train_size ({d.train_size}) must be at least data.test_size ({d.test_size}): "
                             "the real-vs-real reference row compares that many training images with the test images")
        return self


def check_params(params) -> None:
    """Checked against the other sections: lab 20 judges its GANs with lab 10's simple CNN when judge.source is 'lab10': that net must be trained on lab 20's data set."""
    if params.lab20.judge.source != "lab10":
        return
    if "simple_cnn" not in params.lab10.variants or params.lab10.data.dataset != params.lab20.data.dataset:
        raise ValueError(
            f"lab20.judge.source: 'lab10' judges the GANs with lab 10's simple_cnn, which must be trained on "
            f"lab 20's data set ({params.lab20.data.dataset}); lab 10 has variants {', '.join(params.lab10.variants)} "
            f"on {params.lab10.data.dataset}. Set lab20.judge.source: own (lab 20 trains its own judge)"
        )
