"""Lab 05: regularisation on the Titanic MLP: none vs L1 vs L2 (weight decay) vs dropout.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""
