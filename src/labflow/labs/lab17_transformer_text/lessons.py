"""Lab 17's lessons: fine-tuning a pretrained transformer beats training one from scratch, and beats the RNN.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, gt

CLAIMS = (
    Claim(
        'finetune_beats_scratch',
        'The fine-tuned pretrained transformer beats the same-size transformer trained from scratch',
        'lab 17: "Fine-tuning pre-trained Transformers is more effective than training from scratch for small datasets"',
        (gt("finetune.test_acc", "scratch.test_acc"),),
    ),
    Claim(
        'transformer_beats_rnn',
        "The fine-tuned transformer beats lab 15's best RNN on the same split",
        'lab 17: transformers excel, "outperforming RNNs in text classification"; 92.15% (DistilBERT) vs lab 15\'s 86.15%',
        (gt("finetune.test_acc", "lab15_gru.test_acc"),),
    ),
)
