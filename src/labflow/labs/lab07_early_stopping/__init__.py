"""Lab 07: early stopping and checkpoints.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""
