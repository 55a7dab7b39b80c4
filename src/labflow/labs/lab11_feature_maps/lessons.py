"""Lab 11's lesson: training is what makes filters detect patterns.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, gt

CLAIMS = (
    Claim(
        'trained_filters_work',
        'The trained networks classify far better than the same networks at their initial weights',
        'lab 11: "Filters detect specific patterns (e.g., edges, corners) by learning weights during training"',
        (gt("simple_cnn.test_acc", "simple_cnn.init_test_acc"), gt("resnet18.test_acc", "resnet18.init_test_acc"),),
    ),
)
