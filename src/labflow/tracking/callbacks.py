"""Training callbacks that report to MLflow."""

from __future__ import annotations

import time

from labflow.train.callbacks import Callback
from labflow.tracking.runs import Run


class MlflowEpochLogger(Callback):
    """Log every epoch's metrics at step=epoch, in one write per ``min_interval_s`` at most.

    An epoch longer than the interval is logged as soon as it ends (live curves in the
    UI); fast epochs are batched, because each write is a database commit (~10 ms with
    SQLite, a round trip with a server) and a 30-epoch tabular lab would spend longer
    logging than training. After a resume, epochs the killed process had not logged
    yet are logged first, so the run's history has every epoch once.
    """

    name = "mlflow_epoch_logger"

    def __init__(self, run: Run, min_interval_s: float = 2.0) -> None:
        self.run = run
        self.min_interval_s = min_interval_s
        self._logged_up_to: int | None = None
        self._last_write = time.monotonic()

    def on_epoch_end(self, state) -> None:
        if time.monotonic() - self._last_write >= self.min_interval_s:
            self._flush(state)

    def on_fit_end(self, state) -> None:
        self._flush(state)

    def _flush(self, state) -> None:
        from labflow.frame import timing
        if self._logged_up_to is None:  # first write: a resumed run may hold epochs already
            self._logged_up_to = self.run.last_step("train_loss") if state.resumed_from else 0
        rows = []
        for row in state.history:
            epoch = int(row["epoch"])
            if epoch > self._logged_up_to:
                rows.append((epoch, {k: v for k, v in row.items() if k != "epoch"}))
        if rows:
            with timing.not_work():
                self.run.log_metric_rows(rows)
            self._logged_up_to = rows[-1][0]
        self._last_write = time.monotonic()
