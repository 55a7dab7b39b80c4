"""Lab 02: house prices: MSE vs MAE loss, linear model vs MLP (128-64).

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""
