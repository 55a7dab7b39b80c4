"""What the full profile downloads, in bytes, for ``labflow list --profile full``: each data set's
canonical files, and the pretrained weights a lab's full profile loads.

Exact where the publisher's file is fixed (MNIST, CIFAR-10, VOC, ...); ``approx`` where it is
rebuilt now and then or was measured on a same-architecture file (weights: the tensors fix the
size). A user folder or file is yours: nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Download:
    bytes: int
    approx: bool = False

    def human(self) -> str:
        mb = self.bytes / 1e6
        text = f"{mb:,.0f} MB" if mb >= 10 else f"{mb:.1f} MB"
        return ("~" if self.approx else "") + text


DATA_SETS = {
    "mnist": Download(9_912_422 + 28_881 + 1_648_877 + 4_542),
    "fashion_mnist": Download(26_421_880 + 29_515 + 4_422_102 + 5_148),
    "house_prices": Download(441_000, approx=True),
    "credit_default": Download(151_000_000, approx=True),
    "cifar10": Download(170_498_071),
    "flowers": Download(228_813_984),
    "voc2007": Download(460_032_000 + 451_020_800),
    "melbourne_temp": Download(67_921, approx=True),
    "segmentation": Download(791_918_971 + 19_173_078),  # the Oxford-IIIT Pet archives
    "imdb": Download(84_125_825),
    "horse2zebra": Download(116_000_000, approx=True),
    "sentence_pairs": Download(7_000_000, approx=True),
}

# Weights a library fetches into its own cache (torch hub, Hugging Face), by the lab that loads them
# under the full profile.
PRETRAINED = {
    "lab13": ("torchvision ImageNet ResNet18 (data.resnet18_imagenet)", Download(46_830_571)),
    "lab12": ("torchvision COCO weights: SSDlite320 MobileNetV3 + RetinaNet ResNet50-FPN v2",
              Download(14_083_471 + 153_144_107, approx=True)),
    "lab17": ("Hugging Face distilbert-base-uncased", Download(268_900_000, approx=True)),
    "lab19": ("segmentation-models-pytorch ResNet34 ImageNet encoder (Hugging Face smp-hub)",
              Download(85_226_519, approx=True)),
}
