"""Image splits with pixels kept in [0, 1], for labs whose models output pixels (autoencoders).

Classification labs standardise their inputs; a model that reconstructs images is scored
against pixels in [0, 1] (binary cross-entropy needs its targets there, a sigmoid output lives
there, PSNR's peak is 1), so these labs keep the raw scale.
"""

from __future__ import annotations

import torch

from labflow.frame.config import SplitConfig


def unit_pixel_splits(lab_id: str, dataset: str, split: SplitConfig, seed: int) -> dict:
    """The data set's usual split (``prepare_image_splits``) without standardisation: mean 0, std 1."""
    from labflow.prep.images import prepare_image_splits

    return prepare_image_splits(lab_id, dataset, split, seed, stats=([0.0], [1.0]))


def require_unit_range(tensors: dict[str, torch.Tensor]) -> None:
    """Refuse image tensors (``x_*``) with pixels outside [0, 1] before any training."""
    for name, x in tensors.items():
        if name.startswith("x_") and (x.min() < 0 or x.max() > 1):
            raise ValueError(f"{name} has pixels in [{x.min():.3g}, {x.max():.3g}], expected [0, 1]: "
                             "rerun the lab's preprocess stage (it must not standardise)")


def training_data(ctx) -> tuple[dict[str, torch.Tensor], dict]:
    """A pixel lab's processed splits for its train stage, refused unless in [0, 1]; a small
    model on one CPU thread (``base.small_model_threads``: two ran 13x slower per step on the busy 2-core machine)."""
    from labflow.frame.base import small_model_threads
    from labflow.prep.tensors import load_processed

    data, meta = load_processed(ctx.processed_dir)
    require_unit_range(data)
    small_model_threads(ctx)
    return data, meta
