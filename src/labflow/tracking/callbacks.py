"""Training callbacks that report to MLflow."""

from __future__ import annotations

from labflow.train.callbacks import Callback
from labflow.tracking.runs import Run


class MlflowEpochLogger(Callback):
    """Log each finished epoch's metrics at step=epoch (once per epoch: cheap)."""

    name = "mlflow_epoch_logger"

    def __init__(self, run: Run) -> None:
        self.run = run

    def on_epoch_end(self, state) -> None:
        row = dict(state.history[-1])
        epoch = int(row.pop("epoch"))
        self.run.log_metrics(row, step=epoch)
