"""Lab 03's lessons: mini-batches balance speed and stability; full batches make few updates.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, gt

CLAIMS = (
    Claim(
        'mini_batch_beats_full_batch',
        'In the same epochs, mini-batch GD reaches a higher test accuracy than full-batch GD',
        'lab 3: "Full-batch: slow but stable, with fewer updates per epoch"; "Mini-batch: balances speed and stability"',
        (gt("mini_batch.test_acc", "full_batch.test_acc"),),
    ),
    Claim(
        'mini_batch_beats_stochastic',
        'In the same epochs, mini-batch GD beats noisy batch-1 SGD',
        'lab 3: "SGD: fast updates but noisy, requiring more epochs for convergence"',
        (gt("mini_batch.test_acc", "stochastic.test_acc"),),
    ),
)
