"""Lab 01: an MLP on handwritten digits, and what it learned, made visible.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""
