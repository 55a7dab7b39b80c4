"""What the adversarial labs (20 GAN, 21 CycleGAN) share: images in [-1, 1], fixed inputs
rendered every epoch, a classifier that judges generated images, and the Fréchet distance.

A GAN cannot be judged by its losses (the generator's loss goes up when the discriminator
gets better, not when the images get worse), so both labs judge their images with a
classifier trained in this pipeline on real images:

- lab 20: the Fréchet distance between real and generated images in the feature space of
  a Fashion-MNIST classifier (the FID's formula; Inception weights are not available
  offline, and an ImageNet net is a poor judge of 28 px clothes anyway), plus the
  classifier's confidence and its class histogram of the samples (mode collapse shows there);
- lab 21: the share of translated images a domain classifier assigns to the target domain.

The distance is torchmetrics' ``FrechetInceptionDistance`` with the classifier as its
feature extractor (:class:`FeatureJudge`), imported only in the evaluate stages.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from labflow.train.callbacks import Callback

EVAL_CHUNK = 256


# --------------------------------------------------------------------------- images


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] (a tanh generator's range) to [0, 1], for figures and judges."""
    return ((x + 1) / 2).clamp(0, 1)


def from_uint8(x: np.ndarray) -> torch.Tensor:
    """uint8 N x H x W (grey) or N x H x W x 3 images to float N x C x H x W in [-1, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(x)).float().div_(127.5).sub_(1.0)
    return (t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)).contiguous()


def displayable(x: torch.Tensor) -> np.ndarray:
    """N x C x H x W in [-1, 1] to what ``figures.image_grid`` draws (N x H x W grey, N x H x W x 3 colour)."""
    img = to_unit(x.detach().float().cpu())
    return img[:, 0].numpy() if img.shape[1] == 1 else img.permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def in_chunks(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, device, chunk: int = EVAL_CHUNK) -> torch.Tensor:
    """``fn`` over ``x`` chunk by chunk on ``device``; the results concatenated on the CPU."""
    return torch.cat([fn(x[i:i + chunk].to(device)).cpu() for i in range(0, len(x), chunk)])


def dcgan_init(model: nn.Module) -> nn.Module:
    """The DCGAN paper's init (Radford et al. 2016), also CycleGAN's: conv/linear weights N(0, 0.02),
    batch-norm scales N(1, 0.02), biases 0."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return model


def set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
    """Freeze the discriminators while the generators step: their weight gradients would be thrown away."""
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


# --------------------------------------------------------------------------- per-epoch inputs


class LatentNoise(Callback):
    """The generator's noise, from its own seeded generator: every variant draws the same noise
    batches, and the state travels in checkpoints so a resumed run draws what it would have."""

    name = "latent_noise"

    def __init__(self, dim: int, seed: int) -> None:
        self.dim = dim
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self, n: int, device=None) -> torch.Tensor:
        z = torch.randn(n, self.dim, generator=self.generator)
        return z.to(device) if device is not None else z

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class EpochSnapshots(Callback):
    """``render(model)`` (images in [-1, 1]) after every epoch, kept as uint8: the fixed inputs'
    outputs epoch by epoch (a fixed noise batch, fixed test images). Part of checkpoints."""

    name = "epoch_snapshots"

    def __init__(self, render: Callable[[nn.Module], torch.Tensor]) -> None:
        self.render = render
        self.snapshots: list[tuple[int, torch.Tensor]] = []

    def on_epoch_end(self, state) -> None:
        was_training = state.model.training
        state.model.eval()
        with torch.no_grad():
            images = self.render(state.model).detach().cpu()
        state.model.train(was_training)
        self.snapshots.append((state.epoch, to_unit(images).mul(255).round().to(torch.uint8)))

    def images(self) -> list[tuple[int, torch.Tensor]]:
        """(epoch, images in [-1, 1]) for each epoch."""
        return [(epoch, x.float().div(127.5).sub(1.0)) for epoch, x in self.snapshots]

    def state_dict(self) -> dict:
        return {"snapshots": self.snapshots}

    def load_state_dict(self, state: dict) -> None:
        self.snapshots = list(state["snapshots"])


def spread_epochs(epochs: list[int], at_most: int) -> list[int]:
    """At most ``at_most`` epochs spread evenly from the first to the last (both kept)."""
    if len(epochs) <= at_most:
        return list(epochs)
    picks = np.linspace(0, len(epochs) - 1, at_most).round().astype(int)
    return [epochs[i] for i in dict.fromkeys(picks.tolist())]


def snapshots_figure(snapshots: list[tuple[int, torch.Tensor]], *, per_row: int, max_rows: int, title: str):
    """One row per epoch (evenly spread when there are many), the same fixed inputs in every row."""
    from labflow.plots import figures as figs

    keep = set(spread_epochs([e for e, _ in snapshots], max_rows))
    rows = [(e, x[:per_row]) for e, x in snapshots if e in keep]
    images = np.concatenate([displayable(x) for _, x in rows])
    titles = [f"epoch {e}" if k == 0 else "" for e, x in rows for k in range(len(x))]
    return figs.image_grid(images, titles, value_range=(0, 1), cols=per_row, title=title)


# --------------------------------------------------------------------------- judges


class FeatureJudge(nn.Module):
    """A trained classifier seen as a feature extractor for the Fréchet distance.

    Takes images in [-1, 1], maps them to the input normalisation the classifier was
    trained with (``mean``/``std`` of pixels in [0, 1]) and returns its penultimate
    activations (``features``), or its logits (``logits``). ``num_features`` is what
    torchmetrics reads to size its statistics.
    """

    def __init__(self, body: nn.Module, head: nn.Module, num_features: int, mean, std) -> None:
        super().__init__()
        self.body, self.head = body, head
        self.num_features = int(num_features)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)  # a judge never changes (no batch-norm drift)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (to_unit(x) - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self._normalise(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward(x))


def judge_from_sequential(model: nn.Sequential, mean, std) -> FeatureJudge:
    """A classifier ending in a Linear layer (the course CNN): everything before it gives the features."""
    head = model[-1]
    if not isinstance(head, nn.Linear):
        raise TypeError(f"the judge's last layer must be Linear, got {type(head).__name__}")
    return FeatureJudge(model[:-1], head, head.in_features, mean, std)


def frechet_metric(judge: FeatureJudge, real: torch.Tensor, *, chunk: int = EVAL_CHUNK):
    """torchmetrics' FrechetInceptionDistance with ``judge`` as its feature extractor, holding the
    statistics of ``real`` (images in [-1, 1]); :func:`frechet_to_real` scores samples against them."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    metric = FrechetInceptionDistance(feature=judge, normalize=True, reset_real_features=False).to(judge.mean.device)
    with torch.no_grad():
        for i in range(0, len(real), chunk):
            metric.update(real[i:i + chunk].to(judge.mean.device), real=True)
    return metric


def frechet_to_real(metric, fake: torch.Tensor, *, chunk: int = EVAL_CHUNK) -> float:
    """The distance of ``fake`` to the real images ``metric`` holds (its fake statistics start afresh)."""
    metric.reset()  # keeps the real statistics (reset_real_features=False)
    device = metric.inception.mean.device
    with torch.no_grad():
        for i in range(0, len(fake), chunk):
            metric.update(fake[i:i + chunk].to(device), real=False)
        return float(metric.compute())


def frechet_distance(judge: FeatureJudge, real: torch.Tensor, fake: torch.Tensor, *, chunk: int = EVAL_CHUNK) -> float:
    """The FID formula, ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^1/2), in the judge's feature space.

    torchmetrics' FrechetInceptionDistance with ``judge`` as its feature extractor (float64
    statistics); ``real`` and ``fake`` are images in [-1, 1]. Lower is better; two samples of
    the same images give ~0.
    """
    return frechet_to_real(frechet_metric(judge, real, chunk=chunk), fake, chunk=chunk)


@torch.no_grad()
def judge_predictions(judge: FeatureJudge, x: torch.Tensor, *, chunk: int = EVAL_CHUNK) -> torch.Tensor:
    """Class probabilities of images in [-1, 1] (N x classes, on the CPU)."""
    device = judge.mean.device
    return in_chunks(lambda b: F.softmax(judge.logits(b), dim=1), x, device, chunk)


def class_report(probs: torch.Tensor, n_classes: int) -> dict[str, float | list[float]]:
    """What a judge says about a sample: its mean confidence and its class histogram.

    ``class_entropy`` is the histogram's entropy over log(n_classes): 1.0 when the judge sees
    every class equally often (as in Fashion-MNIST's balanced test set), lower when a
    generator collapses onto a few classes. ``classes_seen`` counts classes with at least
    half of a uniform share (5% of the sample for ten classes).
    """
    predicted = probs.argmax(1)
    share = torch.bincount(predicted, minlength=n_classes).double() / max(len(predicted), 1)
    nonzero = share[share > 0]
    entropy = max(0.0, float(-(nonzero * nonzero.log()).sum() / np.log(n_classes)))  # never "-0"
    return {
        "confidence": float(probs.max(1).values.mean()),
        "class_entropy": entropy,
        "classes_seen": int((share >= 0.5 / n_classes).sum()),
        "class_share": [round(float(s), 4) for s in share],
    }


def train_classifier(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int, lr: float,
                     seed: int, device, desc: str = "judge", progress: bool = False) -> nn.Module:
    """Fit a classifier (Adam, cross-entropy) with the shared training loop; returns it in eval mode.

    For the judges trained inside an evaluate stage (lab 21's domain classifier, lab 20's own
    judge in the full profile): seeded batches, no checkpoints (seconds of work).
    """
    from labflow.train import TensorBatches, fit

    model = model.to(device)
    batches = TensorBatches(x, y, batch_size=batch_size, seed=seed, device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    fit(model, optimizer, batches, lambda m, b: F.cross_entropy(m(b[0]), b[1]), epochs=epochs, progress=progress, desc=desc)
    return model.eval()
