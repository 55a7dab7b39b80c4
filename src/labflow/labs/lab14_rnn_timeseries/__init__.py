"""Lab 14: a plain RNN vs an LSTM forecasting tomorrow's temperature at Melbourne.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""
