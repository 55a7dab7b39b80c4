"""Lab 17: a pretrained transformer fine-tuned vs a small transformer trained from scratch.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""

# Lab 17 sets lab 15's best model beside its own (results/lab15/compare): it reads lab 15's params section.
USES_LABS = ("lab15",)
