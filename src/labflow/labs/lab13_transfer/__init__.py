"""Lab 13: transfer learning. A ResNet18 trained on one task, moved to another.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""
