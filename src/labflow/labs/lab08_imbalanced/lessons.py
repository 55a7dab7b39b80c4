"""Lab 08's lessons: rebalancing raises minority recall, and the decision threshold matters as much.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, gt

CLAIMS = (
    Claim(
        'rebalancing_raises_recall',
        'Every rebalancing (class weights, weighted sampler, under-, over-sampling, SMOTE) raises minority recall at threshold 0.5',
        'lab 8: SMOTE "improves minority class recall and F1-score by reducing classifier bias"',
        (gt("class_weights.test_at05_recall", "none.test_at05_recall"), gt("weighted_sampler.test_at05_recall", "none.test_at05_recall"), gt("undersample.test_at05_recall", "none.test_at05_recall"), gt("oversample.test_at05_recall", "none.test_at05_recall"), gt("smote.test_at05_recall", "none.test_at05_recall"),),
    ),
    Claim(
        'smote_raises_f1',
        'SMOTE raises the minority F1 at threshold 0.5',
        'lab 8: SMOTE "improves minority class recall and F1-score"',
        (gt("smote.test_at05_f1", "none.test_at05_f1"),),
    ),
    Claim(
        'threshold_matters',
        'Without any rebalancing, a threshold tuned on validation data raises the minority F1',
        'LABS.md, lab 8: "the lesson: the threshold matters as much as the resampling"',
        (gt("none.test_tuned_f1", "none.test_at05_f1"),),
    ),
)
