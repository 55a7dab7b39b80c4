"""Lab 14's lesson: recurrent networks forecast temperature better than yesterday's value. The seed's RNN and LSTM tie (0.0282 scaled MSE each), so the course claims no winner between them.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, lt

CLAIMS = (
    Claim(
        'rnns_beat_persistence',
        'RNN and LSTM forecasts beat persistence (tomorrow = today)',
        'lab 14: RNNs for time-series forecasting, both at 0.0282 scaled MSE; LABS.md: "persistence baseline"',
        (lt("rnn.test_mae", "summary.persistence_test_mae"), lt("lstm.test_mae", "summary.persistence_test_mae"),),
    ),
)
