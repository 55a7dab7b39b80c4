"""Lab 19's lesson: a UNet segments better than thresholding the image. The course trains with dice + cross-entropy without comparing it to dice alone, so that pair is shown, not judged.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, gt

CLAIMS = (
    Claim(
        'unet_beats_threshold',
        'The UNet (with either loss) segments held-out images better than the best brightness threshold',
        'lab 19: "U-Net excels in segmentation with limited data"; LABS.md: put the threshold baseline\'s IoU in the table',
        (gt("dice.test_iou", "summary.threshold_test_iou"), gt("dice_bce.test_iou", "summary.threshold_test_iou"),),
    ),
)
