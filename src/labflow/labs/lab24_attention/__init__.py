"""Lab 24: scaled dot-product attention vs an RNN summary, on a task where the weights mean something.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""
