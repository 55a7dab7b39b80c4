"""Lab 07's lessons: early stopping keeps the best model and saves epochs.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, lt

CLAIMS = (
    Claim(
        'best_checkpoint_generalises',
        'Stopping early and restoring the best checkpoint gives a lower test loss than training to the end',
        'lab 7: "Early Stopping prevents overfitting by selecting the model parameters at the epoch with the best validation performance"',
        (lt("early_stopping.test_loss", "no_early_stopping.test_loss"),),
    ),
    Claim(
        'restore_matters',
        'Restoring the best checkpoint beats keeping the weights of the stopping epoch',
        'lab 7: checkpointing saves the parameters "when a validation metric improves"',
        (lt("early_stopping.test_loss", "early_stopping_no_restore.test_loss"),),
    ),
    Claim(
        'saves_epochs',
        'Early stopping trains fewer epochs',
        'lab 7: early stopping selects the best epoch, "avoiding unnecessary computation"',
        (lt("early_stopping.epochs_run", "no_early_stopping.epochs_run"),),
    ),
)
