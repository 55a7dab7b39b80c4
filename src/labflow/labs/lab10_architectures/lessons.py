"""Lab 10's lessons: deeper and residual networks beat a shallow CNN.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, gt

CLAIMS = (
    Claim(
        'deep_nets_beat_shallow',
        'VGG16 and ResNet18 beat the simple CNN',
        'lab 10: simple CNN 52.01%, VGG16 63.73%, ResNet18 64.74%; "Both outperform shallow CNNs"',
        (gt("vgg.test_acc", "simple_cnn.test_acc"), gt("resnet18.test_acc", "simple_cnn.test_acc"),),
    ),
    Claim(
        'resnet_beats_vgg',
        'ResNet18 beats VGG16',
        'lab 10: 64.74% vs 63.73%; "ResNet supports deeper networks with better accuracy and faster convergence"',
        (gt("resnet18.test_acc", "vgg.test_acc"),),
    ),
)
