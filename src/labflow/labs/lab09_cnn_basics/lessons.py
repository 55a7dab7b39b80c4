"""Lab 09's lessons: a small CNN reads digits, better than the MLP of lab 01.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, gt

CLAIMS = (
    Claim(
        'cnn_learns_digits',
        'The small CNN (16-32 conv, fc 128) reads digits far above chance (over 90%)',
        'lab 9 reports 98.02% test accuracy on MNIST',
        (gt("cnn.test_acc", 0.9),),
    ),
    Claim(
        'cnn_beats_mlp',
        "The CNN beats lab 01's MLP on the same digits",
        'lab 9: CNNs learn hierarchical features, "outperforming traditional methods in vision tasks"; 98.02% vs lab 1\'s 97.75%',
        (gt("cnn.test_acc", "summary.lab01_mlp.test_acc"),),
    ),
)
