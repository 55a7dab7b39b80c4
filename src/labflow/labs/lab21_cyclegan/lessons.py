"""Lab 21's lessons: CycleGAN translates between unpaired domains and back, and the identity loss keeps what is already right.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, gt, lt

CLAIMS = (
    Claim(
        'translates',
        'Translated images are judged to be of the target domain more often than not, with or without the identity loss',
        'lab 21: "producing images from X in Y and vice versa"',
        (gt("identity.target_share", 0.5), gt("no_identity.target_share", 0.5),),
    ),
    Claim(
        'cycle_returns',
        'A-to-B-to-A returns closer to the input than the translation moved it',
        'lab 21: cycle consistency, "F(G(X)) ≈ X and G(F(Y)) ≈ Y"',
        (lt("identity.test_cycle_l1_aba", "identity.test_change_l1"),),
    ),
    Claim(
        'identity_loss_preserves',
        'With the identity loss, a generator changes an image already in its target domain less',
        'lab 21: "An optional identity loss ||Y - G(Y)||_1 stabilizes training"',
        (lt("identity.test_identity_l1", "no_identity.test_identity_l1"),),
    ),
)
