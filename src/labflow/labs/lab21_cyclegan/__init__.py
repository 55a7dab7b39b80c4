"""Lab 21: CycleGAN, unpaired translation between two real image domains, with vs without the identity loss.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""
