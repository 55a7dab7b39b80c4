"""Lab 03: full-batch vs mini-batch vs stochastic gradient descent.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""
