"""Lab 06: batch normalisation and data augmentation, the 2x2 ablation.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""
