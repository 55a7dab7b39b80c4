"""Lab 25: a transformer encoder-decoder for translation; greedy vs beam-search decoding; beside lab 16.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""

SHARED_MODEL = "transformer"
DATA_FROM = "lab16"
