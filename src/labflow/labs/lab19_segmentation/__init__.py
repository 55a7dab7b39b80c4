"""Lab 19: UNet segmentation (segmentation-models-pytorch), Dice loss vs Dice + BCE.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""
