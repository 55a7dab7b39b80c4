"""Lab 11: filters and feature maps of a network before training (its init) and after.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""

READS_FROM = "lab10"
