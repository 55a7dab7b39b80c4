"""Lab 15's lessons: both gated RNNs learn sentiment; GRU is at least as good as LSTM.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, gt

CLAIMS = (
    Claim(
        'rnns_beat_majority',
        'LSTM and GRU beat always answering the majority class',
        'lab 15: LSTM 85.80%, GRU 86.15% on IMDB; LABS.md: report macro-F1 beside accuracy because always-fresh scores well',
        (gt("lstm.test_macro_f1", "always_positive.test_macro_f1"), gt("gru.test_macro_f1", "always_positive.test_macro_f1"),),
    ),
    Claim(
        'gru_matches_lstm',
        'GRU reaches at least LSTM\'s accuracy (the course: "comparably"; within seed noise agrees with it)',
        'lab 15: GRU 86.15% vs LSTM 85.80%; GRUs "performing comparably for shorter sequences"',
        (gt("gru.test_acc", "lstm.test_acc"),),
    ),
)
