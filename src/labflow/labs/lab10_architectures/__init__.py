"""Lab 10: a simple CNN vs VGG vs ResNet18, each trained from scratch on the same data.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""
