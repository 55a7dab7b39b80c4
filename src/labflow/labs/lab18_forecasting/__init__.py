"""Lab 18: LSTM forecasting vs a dense MLP on the same windows.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""
