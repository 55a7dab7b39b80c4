"""torchvision's networks adapted to small images: shapes, widths, rebuild from a model's info."""

import pytest
import torch

from labflow.nets.architectures import ARCHITECTURES, build, feature_layers
from labflow.nets.common import count_parameters, seeded


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32)])
def test_every_network_maps_small_images_to_class_logits(arch, channels, size):
    model = build(arch, channels, 10, width=0.25, image_size=size)
    assert model(torch.randn(2, channels, size, size)).shape == (2, 10)
    assert set(feature_layers(model, arch))


def test_width_narrows_vgg_and_resnet_and_same_seed_gives_same_weights():
    for arch in ("vgg11", "resnet18"):
        assert count_parameters(build(arch, 1, 10, width=0.25)) < count_parameters(build(arch, 1, 10, width=0.5)) / 3
        a, b = (seeded(lambda: build(arch, 1, 10, width=0.25), 7) for _ in range(2))
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_resnet_keeps_torchvisions_layout():
    from torchvision.models.resnet import BasicBlock, ResNet

    model = build("resnet18", 1, 10, width=0.25)
    assert isinstance(model, ResNet) and isinstance(model.layer4[1], BasicBlock)
    assert model.conv1.stride == (1, 1) and isinstance(model.maxpool, torch.nn.Identity)
    assert [model.layer1[0].conv1.out_channels, model.layer4[0].conv1.out_channels] == [16, 128]
