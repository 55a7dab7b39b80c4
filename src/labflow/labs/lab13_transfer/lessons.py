"""Lab 13's lessons: a pretrained backbone beats training from scratch on few labels, and unfreezing its top layers helps.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, gt

CLAIMS = (
    Claim(
        'transfer_beats_scratch',
        'With few labels, the frozen and the partly unfrozen pretrained backbone beat training from scratch',
        'lab 13: transfer learning achieves "high accuracy (e.g., 90% vs. 70% from scratch on small datasets)"',
        (gt("frozen.test_acc", "scratch.test_acc"), gt("partial.test_acc", "scratch.test_acc"),),
    ),
    Claim(
        'unfreezing_helps',
        'Unfreezing layer3 and layer4 after the head-only phase raises test accuracy',
        'lab 13: fine-tuning updates the backbone "with a small learning rate for early layers"; the seed reports both phases (92.01% twice, a bug)',
        (gt("partial.test_acc", "partial.phase1_test_acc"),),
    ),
)
