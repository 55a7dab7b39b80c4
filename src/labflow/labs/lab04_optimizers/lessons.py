"""Lab 04's lesson: momentum and adaptive optimizers beat plain SGD.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, gt

CLAIMS = (
    Claim(
        'better_than_plain_sgd',
        'Adam, RMSprop and SGD with momentum all beat plain SGD',
        'lab 4: SGD 48.65%, Adam 70.15%, RMSprop 68.68%; "Momentum variants ... accelerate convergence"',
        (gt("adam.test_acc", "sgd.test_acc"), gt("rmsprop.test_acc", "sgd.test_acc"), gt("sgd_momentum.test_acc", "sgd.test_acc"),),
    ),
)
