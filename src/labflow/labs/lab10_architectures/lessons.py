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
        turns=("not reached at the quick budgets measured (seed 42; test / validation accuracy, simple CNN, VGG, "
               "ResNet18): 3,000 images x 3 epochs 0.843 / 0.812 / 0.791; 10,000 x 5 0.876 / 0.845 / 0.877 "
               "(val 0.862 / 0.842 / 0.866); 10,000 x 8 0.903 / - / 0.884. On 28 px Fashion-MNIST the 2-conv CNN "
               "matches quarter-width deep nets at CPU budgets; the course measured its order on CIFAR-10 (the full profile)"),
    ),
    Claim(
        'resnet_beats_vgg',
        'ResNet18 beats VGG16',
        'lab 10: 64.74% vs 63.73%; "ResNet supports deeper networks with better accuracy and faster convergence"',
        (gt("resnet18.test_acc", "vgg.test_acc"),),
    ),
)
