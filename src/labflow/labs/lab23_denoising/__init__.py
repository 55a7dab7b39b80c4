"""Lab 23: a denoising autoencoder on digits at three noise levels (0.3, 0.5, 0.7).

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""
