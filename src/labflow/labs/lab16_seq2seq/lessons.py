"""Lab 16's lesson: attention lifts the seq2seq model's translations.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, gt

CLAIMS = (
    Claim(
        'attention_beats_none',
        'The seq2seq model with attention reaches a higher held-out BLEU than without',
        'lab 16: "Attention improves Seq2Seq performance by addressing the bottleneck of fixed-length context vectors"',
        (gt("attention.test_bleu", "no_attention.test_bleu"),),
    ),
)
