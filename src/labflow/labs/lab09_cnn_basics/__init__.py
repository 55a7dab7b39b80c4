"""Lab 09: the course's small CNN on digits, beside lab 01's MLP on the same split.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""
