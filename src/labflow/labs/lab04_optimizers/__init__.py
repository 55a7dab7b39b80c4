"""Lab 04: SGD vs SGD with momentum vs Adam vs RMSprop on the course's CNN.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""
