"""Lab 02's lesson: a non-linear network prices houses better than a linear model. The course compares the MSE and MAE losses without saying which wins, so that pair is shown, not judged.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, lt

CLAIMS = (
    Claim(
        'mlp_beats_linear',
        'An MLP (128-64, ReLU) prices houses better than a linear model, under either loss',
        'lab 2: two hidden layers of 128 and 64 ReLU units "to model non-linear relationships"',
        (lt("mlp_mse.test_rmse_usd", "linear_mse.test_rmse_usd"), lt("mlp_mae.test_mae_usd", "linear_mae.test_mae_usd"),),
    ),
)
