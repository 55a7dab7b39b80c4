"""torchvision's detectors, set up for small fixed-size images and for training on a CPU.

- A fixed-size transform: SSDlite's own resizes every image to 320 px whatever it is given
  (about 7x the work for a 96 px canvas); here the images already have the model's size
  (preprocess made them so), and the transform only normalises and batches them.
- ``channels_last`` memory format: PyTorch's CPU backward pass of a depthwise convolution
  (most of MobileNetV3) is ~50x slower in the default layout (3.4 s vs 63 ms for one
  72-channel 5x5 layer on a batch of 32 here).
- ``detections_per_img=100``, as COCO's mAP counts at most 100 detections per image.

Architectures (labels 1..K, 0 is the background, so ``num_classes = K + 1``):
- ``ssdlite320_mobilenet_v3_large``: torchvision's SSDlite; its default boxes are fractions
  of the image (0.2-0.95), so 20-40 px objects on 96 px canvases fit the first levels.
- ``retinanet_mobilenet_v3_fpn``: RetinaNet (FPN + focal loss) on the same MobileNetV3-Large
  backbone, with trainable BatchNorm (torchvision's default, frozen BatchNorm, only suits a
  pretrained backbone) and anchors scaled to the image size.
- ``retinanet_resnet50_fpn_v2``: torchvision's RetinaNet with COCO weights (full profile).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from labflow.data.download import DataError

ARCHS = ("ssdlite320_mobilenet_v3_large", "retinanet_mobilenet_v3_fpn", "retinanet_resnet50_fpn_v2")
DETECTIONS_PER_IMAGE = 100
# RetinaNet on MobileNetV3: the smallest anchor side per FPN level (strides 8, 16, 32, 64) as a
# fraction of the image side, each at 3 scales and 3 aspect ratios (RetinaNet's 9 anchors).
RETINA_ANCHOR_FRACTIONS = (0.125, 0.25, 0.5, 1.0)
RETINA_FPN_CHANNELS = 64
RETINA_STRIDES = (8, 16, 32)  # backbone outputs the FPN reads (a max-pooled stride-64 level is added)


class WeightsUnavailable(DataError):
    """Pretrained weights could not be downloaded (no internet) or do not exist for an architecture."""


def fixed_transform(image_size: int):
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    return GeneralizedRCNNTransform(image_size, image_size, [0.5] * 3, [0.5] * 3, size_divisible=1,
                                    fixed_size=(image_size, image_size))


def _coco_weights(enum) -> None:
    """Download torchvision's COCO weights into torch's hub cache once; a clear error offline.

    The builders then load them from the cache (``weights=enum``), so the pretrained network
    has exactly torchvision's structure (e.g. frozen BatchNorm in RetinaNet's ResNet50).
    """
    try:
        enum.get_state_dict(progress=False, check_hash=True)
    except OSError as err:  # URLError, socket errors, a bad hash
        raise WeightsUnavailable(
            f"could not get torchvision's COCO weights {enum} from {enum.url}: {err}. The full profile needs "
            "internet once (they are cached under ~/.cache/torch/hub/checkpoints), or set "
            "lab12.train.weights: none to train from scratch."
        ) from None


def _ssdlite(num_classes: int, weights: str, width: float) -> nn.Module:
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large
    from torchvision.models.detection.ssdlite import SSDLite320_MobileNet_V3_Large_Weights, SSDLiteClassificationHead

    opts = {"detections_per_img": DETECTIONS_PER_IMAGE, "score_thresh": 0.01, "topk_candidates": 100}
    if weights == "none":
        return ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes,
                                             width_mult=width, **opts)
    enum = SSDLite320_MobileNet_V3_Large_Weights.COCO_V1
    _coco_weights(enum)
    model = ssdlite320_mobilenet_v3_large(weights=enum, progress=False, **opts)
    # A new classification head for our classes; the box regression head keeps its COCO weights.
    cls = model.head.classification_head
    in_channels = [m[0][0].in_channels for m in cls.module_list]
    anchors = model.anchor_generator.num_anchors_per_location()
    norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
    model.head.classification_head = SSDLiteClassificationHead(in_channels, anchors, num_classes, norm)
    return model


def _retinanet_mobilenet(num_classes: int, image_size: int, width: float) -> nn.Module:
    """RetinaNet on MobileNetV3-Large with an FPN over its stride 8, 16 and 32 outputs (+ a pooled level).

    torchvision's MobileNetV3 FPN (the Faster R-CNN one) returns two stride-32 maps: 3x3 on a
    96 px canvas, too coarse for 20-40 px objects (mAP@0.5 stayed at 0.002 after 150 steps).
    The FPN and head are 64 channels wide instead of 256: the head runs 8 convolutions on
    every level, and at 256 channels they would cost ~20x the backbone on these images.
    """
    from torchvision.models import mobilenet_v3_large
    from torchvision.models.detection import RetinaNet
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN
    from torchvision.models.detection.retinanet import RetinaNetHead
    from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

    features = mobilenet_v3_large(weights=None, width_mult=width, norm_layer=nn.BatchNorm2d).features
    # The last block at each stride: 6 (stride 8), 12 (stride 16), 16 (stride 32, the final 1x1 conv).
    last_block = {8: 6, 16: 12, 32: len(features) - 1}
    returned = [last_block[s] for s in RETINA_STRIDES]
    backbone = BackboneWithFPN(features, {str(k): str(i) for i, k in enumerate(returned)},
                               [_out_channels(features[k]) for k in returned], RETINA_FPN_CHANNELS,
                               extra_blocks=LastLevelMaxPool())
    scales = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))
    fractions = RETINA_ANCHOR_FRACTIONS[-len(RETINA_STRIDES) - 1:]
    sizes = tuple(tuple(max(4, round(f * s * image_size)) for s in scales) for f in fractions)
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    head = RetinaNetHead(RETINA_FPN_CHANNELS, anchors.num_anchors_per_location()[0], num_classes,
                         norm_layer=partial(nn.GroupNorm, 16))
    return RetinaNet(backbone, num_classes, anchor_generator=anchors, head=head,
                     detections_per_img=DETECTIONS_PER_IMAGE, score_thresh=0.01, topk_candidates=100)


def _out_channels(block: nn.Module) -> int:
    if hasattr(block, "out_channels"):
        return block.out_channels
    return [m for m in block.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


def _retinanet_resnet50(num_classes: int, weights: str) -> nn.Module:
    from torchvision.models.detection import RetinaNet_ResNet50_FPN_V2_Weights, retinanet_resnet50_fpn_v2
    from torchvision.models.detection.retinanet import RetinaNetClassificationHead

    opts = {"detections_per_img": DETECTIONS_PER_IMAGE, "score_thresh": 0.01}
    if weights == "none":
        return retinanet_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=num_classes, **opts)
    enum = RetinaNet_ResNet50_FPN_V2_Weights.COCO_V1
    _coco_weights(enum)
    model = retinanet_resnet50_fpn_v2(weights=enum, progress=False, **opts)
    anchors = model.anchor_generator.num_anchors_per_location()[0]
    model.head.classification_head = RetinaNetClassificationHead(256, anchors, num_classes,
                                                                 norm_layer=partial(nn.GroupNorm, 32))
    return model


def build_detector(arch: str, num_classes: int, image_size: int, *, weights: str = "none",
                   width: float = 1.0) -> nn.Module:
    """The named detector for ``image_size`` square images and ``num_classes`` (background included)."""
    if arch == "ssdlite320_mobilenet_v3_large":
        model = _ssdlite(num_classes, weights, width)
    elif arch == "retinanet_mobilenet_v3_fpn":
        if weights != "none":
            raise WeightsUnavailable("torchvision has no COCO weights for retinanet_mobilenet_v3_fpn")
        model = _retinanet_mobilenet(num_classes, image_size, width)
    elif arch == "retinanet_resnet50_fpn_v2":
        model = _retinanet_resnet50(num_classes, weights)
    else:
        raise ValueError(f"unknown detector '{arch}'; choose one of {', '.join(ARCHS)}")
    model.transform = fixed_transform(image_size)
    return model.to(memory_format=torch.channels_last)


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, image_batches) -> int:
    """Replace every BatchNorm's running statistics by their plain average over ``image_batches``.

    torchvision's SSDlite uses BatchNorm momentum 0.03: the running statistics trail the
    weights by ~30 updates, so after a few hundred steps of training from scratch the
    eval-mode network normalises with statistics of a network that no longer exists and
    its mAP reads near 0. Running the backbone and head (no loss, no post-processing) in
    training mode over a few fixed training batches, with ``momentum=None`` (a cumulative
    average), gives statistics of the current weights. Returns the number of images used.
    """
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    momenta = [bn.momentum for bn in layers]
    was_training = model.training
    for bn in layers:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    seen = 0
    try:
        for images in image_batches:
            batch, _ = model.transform(list(images))
            features = model.backbone(batch.tensors.contiguous(memory_format=torch.channels_last))
            features = [features] if isinstance(features, torch.Tensor) else list(features.values())
            model.head(features)
            seen += len(images)
    finally:
        for bn, momentum in zip(layers, momenta):
            bn.momentum = momentum
        model.train(was_training)
    return seen
