"""Lab 22: a variational autoencoder on digits, latent 2 (a map you can draw) vs latent 16.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""
