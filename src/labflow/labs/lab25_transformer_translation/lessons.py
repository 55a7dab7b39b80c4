"""Lab 25's lessons: the transformer translates better than lab 16's RNN, and beam search beats greedy decoding.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, gt

CLAIMS = (
    Claim(
        'transformer_beats_rnn',
        "The transformer (greedy) reaches a higher held-out BLEU than lab 16's best seq2seq model",
        'lab 25: the Transformer outperforms "RNN-based Seq2Seq models in speed and accuracy (e.g., higher BLEU scores)"',
        (gt("greedy.test_bleu", "summary.lab16_best_bleu"),),
    ),
    Claim(
        'beam_beats_greedy',
        'Beam search reaches a higher BLEU than greedy decoding of the same model',
        'lab 16: "beam search decoding enhance[s] generalization and output quality"',
        (gt("beam.test_bleu", "greedy.test_bleu"),),
    ),
)
