"""Lab 18's lessons: an LSTM forecasts better than a dense network and than persistence.

The claims come from the course (``../shared/seed/lab-file.txt``) and ``LABS.md``, never from
our results; the evaluate stage scores them (:mod:`labflow.compare.lessons`)."""

from labflow.compare.lessons import Claim, lt

CLAIMS = (
    Claim(
        'lstm_beats_mlp',
        'The LSTM forecasts with a lower RMSE than the dense MLP on the same windows',
        'lab 18: "LSTMs excel at capturing long-term dependencies, outperforming standard RNNs and simpler models"',
        (lt("lstm.test_rmse", "mlp.test_rmse"),),
    ),
    Claim(
        'lstm_beats_persistence',
        'The LSTM beats persistence (the next value = the last one)',
        'lab 18: LSTMs outperform "simpler models (e.g., ARIMA) for non-linear time series"',
        (lt("lstm.test_rmse", "summary.persistence_test_rmse"),),
    ),
)
