"""Lab 22's lesson: a 2-D latent space is for the map; a larger one models the digits better.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, gt

CLAIMS = (
    Claim(
        'larger_latent_better_elbo',
        'A 16-D latent space reaches a better (higher) test ELBO than a 2-D one',
        'lab 22: "architectural choices (e.g., latent dimension m) impact performance"; LABS.md: "latent 2 (for the map) vs larger latent"',
        (gt("latent16.test_elbo", "latent2.test_elbo"),),
    ),
)
