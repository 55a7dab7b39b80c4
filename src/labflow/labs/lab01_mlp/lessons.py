"""Lab 01's lesson: a plain MLP reads handwritten digits.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, gt

CLAIMS = (
    Claim(
        'learns_digits',
        'The 784-512-256-10 MLP reads handwritten digits far above chance (over 90%)',
        'lab 1 reports 97.75% test accuracy on MNIST',
        (gt("mlp.test_acc", 0.9),),
    ),
)
