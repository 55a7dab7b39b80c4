"""Lab 24's lessons: attention over the source beats squeezing it into one RNN state, and its trained weights point where they should.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, gt

CLAIMS = (
    Claim(
        'attention_beats_rnn_summary',
        "Attention over every source position beats the RNN's last hidden state",
        'lab 24: RNNs "encode entire sequences into a single context vector, losing fine-grained information"',
        (gt("attention.test_acc", "rnn_summary.test_acc"),),
    ),
    Claim(
        'weights_mean_something',
        'After training, the attention weights fall on the right source position far more often than before',
        'lab 24: "Attention weights reveal token importance"; LABS.md: the seed visualises an untrained model',
        (gt("attention.test_attn_hit", "attention.initial_test_attn_hit"),),
    ),
)
