"""The course's small CNN and batched image augmentation, shared by the CNN labs (04, 06).

The CNN is the course's: conv 32 -> pool -> conv 64 -> pool -> fc 128 -> logits, 3x3
convolutions with padding 1. It adapts to the data set: input channels (1 for
Fashion-MNIST, 3 for CIFAR-10) and image size (28 or 32 px) come from the data, so
one definition serves both profiles. ``batch_norm=True`` adds BatchNorm after each
convolution and after the hidden fully connected layer, as the course's lab 6 does.
BatchNorm layers draw no random numbers, so a model with and without them built under
the same seed (``models.seeded``) gets the same convolution and linear weights.

Augmentation works on whole batches already in memory (``TensorBatches``), on the
batch's device: a per-sample torchvision transform would cost far more than the
small CNN itself on a CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from labflow.train.callbacks import Callback


def course_cnn(in_channels: int, image_size: int, n_classes: int, *, batch_norm: bool = False,
               channels: tuple[int, int] = (32, 64), hidden: int = 128) -> nn.Sequential:
    """[conv 3x3 -> (BN) -> ReLU -> maxpool 2] x 2 -> flatten -> fc hidden -> (BN) -> ReLU -> fc n_classes."""
    c1, c2 = channels

    def block(c_in: int, c_out: int) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(c_out))
        return layers + [nn.ReLU(), nn.MaxPool2d(2)]

    side = image_size // 4  # two 2x2 poolings
    head: list[nn.Module] = [nn.Flatten(), nn.Linear(c2 * side * side, hidden)]
    if batch_norm:
        head.append(nn.BatchNorm1d(hidden))
    head += [nn.ReLU(), nn.Linear(hidden, n_classes)]
    return nn.Sequential(*block(in_channels, c1), *block(c1, c2), *head)


class BatchAugment(Callback):
    """Random crop with padding and random horizontal flip, applied to a whole (N, C, H, W) batch.

    Each image is padded by ``padding`` pixels of ``fill`` (per channel: pass the
    normalised value of a black pixel so padding looks like the border of a photo)
    and a random H x W window is cut out of it; with ``flip`` half the images are
    mirrored left-right. Labels are untouched. The random generator is its own and
    its state travels in checkpoints (it is a callback), so a resumed run sees the
    same augmented batches as an uninterrupted one.
    """

    name = "augment"

    def __init__(self, padding: int, flip: bool, fill: Sequence[float] | float = 0.0, seed: int = 0) -> None:
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        self.padding, self.flip = padding, flip
        self.fill = torch.as_tensor(fill, dtype=torch.float32).flatten()
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g, p, device = self.generator, self.padding, x.device
        if p:
            padded = self.fill.to(device, x.dtype).expand(c).reshape(1, c, 1, 1).repeat(n, 1, h + 2 * p, w + 2 * p)
            padded[:, :, p:p + h, p:p + w] = x
            top = torch.randint(0, 2 * p + 1, (n,), generator=g).to(device)
            left = torch.randint(0, 2 * p + 1, (n,), generator=g).to(device)
            rows = (top[:, None] + torch.arange(h, device=device))[:, :, None]  # n, h, 1
            cols = (left[:, None] + torch.arange(w, device=device))[:, None, :]  # n, 1, w
            batch = torch.arange(n, device=device)[:, None, None]
            # Advanced indices around a slice put their dims first: (n, h, w, c).
            x = padded[batch, :, rows, cols].permute(0, 3, 1, 2).contiguous()
        if self.flip:
            mirror = (torch.rand(n, generator=g) < 0.5).to(device).view(n, 1, 1, 1)
            x = torch.where(mirror, x.flip(3), x)
        return x

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def black_fill(meta: dict) -> list[float]:
    """The normalised value of a black (0) pixel per channel, from the preprocess statistics."""
    return [-m / s for m, s in zip(meta["mean"], meta["std"])]


def image_shape(x: torch.Tensor) -> tuple[int, int]:
    """(channels, side) of an N x C x H x W tensor of square images."""
    _, c, h, w = x.shape
    if h != w:
        raise ValueError(f"the course CNN expects square images, got {h}x{w}")
    return c, h


# Small evaluation chunks: on a CPU, 128 images at a time run the CNN ~2x faster than 4,096.
EVAL_CHUNK = 128


def build_cnn(x: torch.Tensor, n_classes: int, seed: int, *, batch_norm: bool = False) -> nn.Module:
    """The course CNN sized for ``x`` (N, C, H, W), built right after seeding: same weights per seed."""
    from labflow.nets.common import seeded

    channels, side = image_shape(x)
    return seeded(lambda: course_cnn(channels, side, n_classes, batch_norm=batch_norm), seed)
