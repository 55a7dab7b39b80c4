"""Lab 20's lessons: the course's MLP GAN learns to draw several kinds of clothes, and a DCGAN draws them closer to the real ones.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, gt, lt

CLAIMS = (
    Claim(
        'mlp_gan_learns',
        "The course's MLP GAN draws more than 4 of the 10 classes (no single-class collapse)",
        'lab 20: "To train a GAN to generate realistic images" with the MLP GAN; mode collapse is the named risk',
        (gt("mlp_gan.classes_seen", 4),),
    ),
    Claim(
        'dcgan_beats_mlp_gan',
        "The DCGAN's samples are closer to real clothes (lower Frechet distance) than the MLP GAN's",
        'lab 20: "Variants like DCGANs ... address these issues with architectural improvements"',
        (lt("dcgan.frechet_distance", "mlp_gan.frechet_distance"),),
    ),
)
