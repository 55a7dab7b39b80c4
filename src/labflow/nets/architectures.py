"""torchvision's VGG and ResNet18 adapted to small images, beside the course's simple CNN.

Labs 10 (the comparison), 11 (filters and feature maps of lab 10's trained net) and 13
(transfer learning from lab 10's ResNet18) build their networks here, so a saved
``model.pt`` (``{"state_dict", "info"}``, see ``base._save_model``) can always be rebuilt
from its ``info``: ``build(**info)``.

Adaptations to 28-32 px inputs, on torchvision's own builders (not hand-copied layers):
- ResNet18: the 7x7 stride-2 stem and its max-pool shrink a 28 px image to 7 px before the
  first block; a 3x3 stride-1 first conv without the max-pool keeps 28 px (the usual
  CIFAR variant), taking ``in_channels`` channels; the classifier has ``n_classes`` outputs.
- VGG: ``torchvision.models.vgg.make_layers`` on the VGG11/VGG16 configuration with every
  width multiplied by ``width`` (params.yaml; the quick profile narrows it to fit a CPU),
  batch norm on; the 7x7 adaptive pool and 4096-wide classifier become a global average pool
  and one linear layer (five 2x2 pools leave 1 px of a 32 px image anyway, 0 of 28: inputs
  are padded to 32 px).
"""

from __future__ import annotations

import torch
from torch import nn

ARCHITECTURES = ("simple_cnn", "vgg11", "vgg16", "resnet18")


def build(arch: str, in_channels: int, n_classes: int, width: float = 1.0, image_size: int = 28) -> nn.Module:
    """The named network for ``in_channels`` x ``image_size`` images and ``n_classes`` classes."""
    if arch == "simple_cnn":
        from labflow.nets.cnn import course_cnn

        return course_cnn(in_channels, image_size, n_classes)
    if arch in ("vgg11", "vgg16"):
        return _vgg(arch, in_channels, n_classes, width)
    if arch == "resnet18":
        return _resnet18(in_channels, n_classes, width)
    raise ValueError(f"unknown architecture '{arch}'; choose one of {', '.join(ARCHITECTURES)}")


def _resnet18(in_channels: int, n_classes: int, width: float) -> nn.Module:
    from torchvision.models import resnet18

    model = resnet18(weights=None, num_classes=n_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    if width != 1.0:
        _narrow(model, width, in_channels)
    return model


def _narrow(model: nn.Module, width: float, in_channels: int) -> None:
    """Scale every channel count of a torchvision ResNet by ``width``, keeping its layout.

    Each Conv2d/BatchNorm2d is rebuilt with the same kernel, stride and padding and scaled
    channels (the image's channels and the class count stay), then re-initialised the way
    torchvision's ResNet does (Kaiming normal for convolutions, ones/zeros for batch norm).
    """

    def scale(c: int) -> int:
        return max(4, int(round(c * width)))

    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.Conv2d):
                new = nn.Conv2d(scale(child.in_channels) if child is not model.conv1 else in_channels,
                                scale(child.out_channels), child.kernel_size, child.stride, child.padding,
                                bias=child.bias is not None)
                nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
                setattr(module, child_name, new)
            elif isinstance(child, nn.BatchNorm2d):
                setattr(module, child_name, nn.BatchNorm2d(scale(child.num_features)))
    model.fc = nn.Linear(scale(model.fc.in_features), model.fc.out_features)


class _PadTo32(nn.Module):
    """Zero-pad 28 px images to 32 px so VGG's five 2x2 pools leave a 1x1 map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = max(0, 32 - x.shape[-1])
        if pad == 0:
            return x
        return nn.functional.pad(x, (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2))


def _vgg(arch: str, in_channels: int, n_classes: int, width: float) -> nn.Module:
    from torchvision.models.vgg import VGG, cfgs, make_layers

    cfg = {"vgg11": "A", "vgg16": "D"}[arch]
    scaled = [v if v == "M" else max(4, int(round(v * width))) for v in cfgs[cfg]]
    features = make_layers(scaled, batch_norm=True)
    first = features[0]
    features[0] = nn.Conv2d(in_channels, first.out_channels, kernel_size=3, padding=1)
    model = VGG(features, num_classes=n_classes, init_weights=True)
    last = [v for v in scaled if v != "M"][-1]
    model.avgpool = nn.AdaptiveAvgPool2d(1)
    model.classifier = nn.Linear(last, n_classes)
    nn.init.normal_(model.classifier.weight, 0, 0.01)
    nn.init.zeros_(model.classifier.bias)
    return nn.Sequential(_PadTo32(), model)


def feature_layers(model: nn.Module, arch: str) -> dict[str, nn.Module]:
    """Named layers whose outputs are worth looking at (first conv, a middle block), for lab 11."""
    if arch == "resnet18":
        return {"conv1": model.conv1, "layer1": model.layer1, "layer2": model.layer2}
    if arch == "simple_cnn":
        convs = [m for m in model if isinstance(m, nn.Conv2d)]
        return {"conv1": convs[0], "conv2": convs[1]}
    features = model[1].features
    convs = [m for m in features if isinstance(m, nn.Conv2d)]
    return {"conv1": convs[0], "conv_mid": convs[len(convs) // 2]}
