"""Lab 13's lessons: a pretrained backbone beats training from scratch on few labels, and unfreezing its top layers helps.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, gt

CLAIMS = (
    Claim(
        'fine_tuning_beats_scratch',
        'With few labels, the pretrained backbone fine-tuned (layer3-4 after a head-only warm-up, or every layer) beats training from scratch',
        'lab 13: transfer learning achieves "high accuracy (e.g., 90% vs. 70% from scratch on small datasets)"; fine-tuning is "ideal for ... similar tasks"',
        (gt("partial.test_acc", "scratch.test_acc"), gt("finetune_all.test_acc", "scratch.test_acc"),),
    ),
    Claim(
        'feature_extraction_beats_scratch',
        'With few labels, the frozen pretrained backbone with a new head (feature extraction) beats training from scratch',
        'lab 13: "Feature Extraction: Freeze [the backbone], training only [the head]. Suitable for small datasets"',
        (gt("frozen.test_acc", "scratch.test_acc"),),
        turns=("not reached in the budgets measured (seed 42, test / validation accuracy, frozen vs scratch): 50 labels x 10 "
               "epochs 0.49 / 0.38 vs 0.60 / 0.64; 50 x 30 0.53 / 0.46 vs 0.70 / 0.68; 200 x 10 0.66 / 0.66 vs 0.88 / 0.90: a "
               "linear head on the last block of a backbone trained 4 epochs on five other clothes classes; the layers that "
               "are retrained carry the transfer"),
    ),
    Claim(
        'unfreezing_helps',
        'Unfreezing layer3 and layer4 after the head-only phase raises test accuracy',
        'lab 13: fine-tuning updates the backbone "with a small learning rate for early layers"; the seed reports both phases (92.01% twice, a bug)',
        (gt("partial.test_acc", "partial.phase1_test_acc"),),
    ),
)
