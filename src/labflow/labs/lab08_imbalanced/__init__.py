"""Lab 08: imbalanced data: none, class weights, weighted sampler, random under-/over-sampling, SMOTE.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""
