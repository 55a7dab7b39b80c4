"""Lab 16: sequence-to-sequence translation without vs with attention, held-out BLEU.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""
