"""Lab 05's lessons: what each regulariser does to the weights, and that they prevent overfitting.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, gt, lt

CLAIMS = (
    Claim(
        'l1_sparsifies',
        'L1 drives more weights to zero than no regularisation',
        'lab 5: "L1 promotes sparsity, driving some weights to exactly zero"',
        (gt("l1.near_zero_share", "none.near_zero_share"),),
    ),
    Claim(
        'l2_shrinks_weights',
        'L2 (weight decay) makes the weights smaller',
        'lab 5: "L2 penalizes large weights, encouraging smaller, distributed weights"',
        (lt("l2.weight_l2", "none.weight_l2"),),
    ),
    Claim(
        'regularised_generalise',
        'Each regulariser (L1, L2, dropout) reaches a higher test accuracy than none',
        'lab 5: regularisation is "employed ... to prevent overfitting, ensuring models generalize well to unseen data"',
        (gt("l1.test_acc", "none.test_acc"), gt("l2.test_acc", "none.test_acc"), gt("dropout.test_acc", "none.test_acc"),),
        turns=("not for dropout 0.3 at the budgets measured (outside the pipeline; two 256-unit layers, mean test "
               "accuracy of seeds 42-44, dropout vs none): 60 epochs 0.819 vs 0.814, 100 epochs 0.813 vs 0.814, "
               "200 epochs 0.808 vs 0.810, while L1 and L2 win at each (0.831 / 0.830, 0.831 / 0.824, "
               "0.833 / 0.828). At the course's 64-unit layer x 30 epochs the MLP does not overfit Titanic and "
               "no regulariser wins: L1 0.821, L2 0.818, dropout 0.819 vs none 0.826"),
    ),
)
