"""Lab 06's lessons: batch norm plus augmentation generalises better and overfits less.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, gt, lt

CLAIMS = (
    Claim(
        'bn_augment_beats_plain',
        'Batch norm with augmentation reaches a higher test accuracy than the plain CNN',
        'lab 6: 72.87% plain vs 76.92% with batch norm and augmentation',
        (gt("batch_norm_augment.test_acc", "plain.test_acc"),),
    ),
    Claim(
        'bn_augment_smaller_gap',
        'Batch norm with augmentation overfits less: a smaller train-test accuracy gap',
        'lab 6: "The improved model has lower training accuracy ... This results in a higher test accuracy"',
        (lt("batch_norm_augment.gap", "plain.gap"),),
    ),
    Claim(
        'augment_smaller_gap',
        'Augmentation alone narrows the train-test gap',
        'lab 6: "Data Augmentation: Reduces overfitting by increasing effective dataset size"',
        (lt("augment.gap", "plain.gap"),),
    ),
)
