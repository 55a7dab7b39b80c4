"""Lab 25's parameters (``labs/lab25/params.yaml``, section ``lab25:``); labflow.frame.config assembles the labs."""

from __future__ import annotations

from pydantic import Field, model_validator

from labflow.frame.config import Strict


class Lab25Train(Strict):
    """The one transformer each seed trains (lab 25's variants only decode it)."""

    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    lr: float = Field(gt=0)  # Adam's peak learning rate, reached after the warmup
    warmup_steps: int = Field(0, ge=0)  # linear warmup from 0, then cosine decay to 0 at the last step
    d_model: int = Field(128, gt=0)
    heads: int = Field(4, gt=0)
    layers: int = Field(2, gt=0)  # encoder layers, and as many decoder layers
    ff: int = Field(256, gt=0)  # feed-forward width
    dropout: float = Field(0.1, ge=0, lt=1)
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    clip: float = Field(1.0, ge=0)  # gradient-norm clipping before each step (0: none)

    @model_validator(mode="after")
    def _heads_divide_d_model(self):
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of heads {self.heads}")
        return self


class Lab25Variant(Strict):
    """A way of decoding the trained model: beam_width 1 is greedy decoding."""

    beam_width: int = Field(1, ge=1, le=50)
    length_penalty: float = Field(0.0, ge=0, le=3)  # GNMT alpha: score / ((5 + length) / 6) ** alpha


class Lab25Decode(Strict):
    # Decoding (test, and the greedy validation BLEU per epoch) stops at </s> or the source length + this.
    extra_decode_tokens: int = Field(5, ge=0)
    batch_size: int = Field(128, gt=0)  # test sentences decoded at once (beam search: times the beam width)


class Lab25Evaluate(Strict):
    heatmaps: int = Field(4, ge=1, le=12)  # test sentences whose cross-attention is drawn
    samples: int = Field(8, ge=1, le=50)  # test sentences shown with every system's translation


class Lab25Config(Strict):
    train: Lab25Train
    decode: Lab25Decode = Lab25Decode()
    evaluate: Lab25Evaluate = Lab25Evaluate()
    variants: dict[str, Lab25Variant] = Field(min_length=1)
