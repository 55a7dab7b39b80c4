"""Lab 23's lessons: the autoencoder removes noise at every level, and more noise is harder.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, gt

CLAIMS = (
    Claim(
        'denoises_every_level',
        'At every noise level the denoised test images have a higher PSNR than the noisy ones',
        'lab 23: denoising autoencoders are "effective for denoising"; the seed reports 18.57 dB',
        (gt("sigma03.test_psnr", "sigma03.noisy_test_psnr"), gt("sigma05.test_psnr", "sigma05.noisy_test_psnr"), gt("sigma07.test_psnr", "sigma07.noisy_test_psnr"),),
    ),
    Claim(
        'more_noise_harder',
        'The more noise, the lower the denoised PSNR',
        'lab 23: "excessive noise can degrade performance"',
        (gt("sigma03.test_psnr", "sigma05.test_psnr"), gt("sigma05.test_psnr", "sigma07.test_psnr"),),
    ),
)
