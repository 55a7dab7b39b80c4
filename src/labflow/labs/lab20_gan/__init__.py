"""Lab 20: the seed's MLP GAN vs a DCGAN on Fashion-MNIST, judged by a Fréchet distance.

The lab's stages are in :mod:`.lab`, its params schema in :mod:`.config`."""

# Its judge may be lab 10's simple CNN (params: lab20.judge.source): it reads lab 10's params section.
USES_LABS = ("lab10",)
