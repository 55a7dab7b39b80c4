"""Lab 23: a denoising autoencoder on digits at three noise levels (0.3, 0.5, 0.7).

The course's convolutional autoencoder (conv 1->16->8, 3x3 stride 2, mirrored by transposed
convolutions, sigmoid output), trained with MSE between its output for a noisy digit and the
clean digit; Adam 1e-3, batch 128. Noise: x + sigma * eps, eps ~ N(0, 1), clipped to [0, 1]
(the course's transform). One variant per noise level sigma; the same model, initial weights,
split, batches and budget for all three.

Noise:

- training noise is drawn afresh for every batch (as the course's transform did on every
  access) from torch's global generator, whose state the checkpoints keep: the three variants
  draw the very same eps, so only sigma differs between them;
- validation and test noise is fixed by the data seed (``split_noise``): the same noisy test
  images every run and every training seed, at every level the same eps scaled by sigma.

Scores (torchmetrics, computed where the model is trained, so every training seed has them):
PSNR and SSIM of the denoised test digits against the clean ones, beside the same scores of the
noisy input itself, the baseline a denoiser has to beat. PSNR is the mean over test images of
each image's PSNR (``data_range`` 1; the course averaged the PSNR of 128-image batches, near our
``test_psnr_pooled``, the PSNR of the pooled squared error). The evaluate stage also scores each
model at the other two noise levels.

The course reported 18.57 dB for sigma 0.5 with no baseline, on test noise drawn anew on every
run (a different number each time). Two baselines here: the noisy input, and an all-black image.

Changed from the course: the output layer's bias starts at the logit of the mean training pixel
(0.13; ``train.mean_pixel_output_bias``), so the untrained model outputs the mean grey instead of
0.5. With PyTorch's default init (the course's) the first updates pull the whole 0.5-grey output
down to black, the sigmoid saturates and the model sits on a plateau that outputs an all-black
image: MSE = mean(x^2) = 0.112, PSNR about 9.5 dB, no better than the noisy input at sigma 0.5
(9.4 dB). Runs left that plateau after 90 to 320 updates (seeds 1-3, sigma 0.5) or not within
870 (seed 42, sigma 0.5: 10.0 dB after 580 updates, the quick budget); with the bias at the
mean pixel every level and seed left it within 3 epochs (87 updates). The rest of the init, the
model and the loss are the course's.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from labflow.train.callbacks import load_weights
from labflow.frame import base
from labflow.prep.pixels import training_data, unit_pixel_splits
from labflow.prep.tensors import load_processed
from labflow.train import TensorBatches

LAB_ID = "lab23"
TITLE = "Denoising autoencoder: noise levels 0.3, 0.5, 0.7"
DATASETS = ("mnist",)
EVAL_CHUNK = 2048
HEADLINE = ("test_psnr", "psnr_gain_db", "test_ssim")  # what the seed bands compare (labflow.compare.seed_bands)
HEADLINE_CURVE = "val_mse"
NOISY_SPLITS = ("val", "test")  # splits whose noise is drawn once, from the seed


# --------------------------------------------------------------------------- data and noise


def preprocess(ctx: base.LabContext) -> dict:
    return unit_pixel_splits(LAB_ID, "mnist", ctx.cfg.data, ctx.seed)


def add_noise(x: torch.Tensor, std: float, eps: torch.Tensor) -> torch.Tensor:
    """x + std * eps, clipped to the pixel range [0, 1]."""
    return (x + std * eps).clamp_(0.0, 1.0)


def split_noise(x: torch.Tensor, seed: int, split: str) -> torch.Tensor:
    """Standard-normal noise shaped like ``x``, fixed by ``seed`` and the split's name (CPU generator)."""
    generator = torch.Generator().manual_seed(seed * len(NOISY_SPLITS) + NOISY_SPLITS.index(split))
    return torch.randn(x.shape, generator=generator, dtype=x.dtype)


def noisy_split(data: dict, split: str, std: float, seed: int) -> torch.Tensor:
    x = data[f"x_{split}"]
    return add_noise(x, std, split_noise(x, seed, split))


# --------------------------------------------------------------------------- model


def conv_autoencoder(channels: tuple[int, int] = (16, 8), in_channels: int = 1,
                     mean_pixel: float | None = None) -> nn.Sequential:
    """The course's autoencoder: 28 -> 14 -> 7 px and back, sigmoid output in [0, 1].

    ``mean_pixel`` (the training images' mean) sets the output layer's bias to its logit, so
    the untrained model outputs the mean grey instead of 0.5 (see the module docstring).
    """
    c1, c2 = channels
    model = nn.Sequential(
        nn.Conv2d(in_channels, c1, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),
        nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
        nn.ConvTranspose2d(c1, in_channels, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid(),
    )
    if mean_pixel is not None:
        with torch.no_grad():
            model[-2].bias.fill_(math.log(mean_pixel / (1 - mean_pixel)))
    return model


@torch.no_grad()
def denoise(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    from labflow.nets.common import evaluating

    device = next(model.parameters()).device
    with evaluating(model):
        return torch.cat([model(x[i: i + EVAL_CHUNK].to(device)).cpu() for i in range(0, len(x), EVAL_CHUNK)])


def mse(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.mse_loss(a, b).item()


# --------------------------------------------------------------------------- train


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    from labflow.nets.common import count_parameters, seeded

    t, v = ctx.cfg.train, ctx.variant_cfg(variant)
    data, meta = training_data(ctx)
    device = ctx.device
    mean_pixel = data["x_train"].mean().item() if t.mean_pixel_output_bias else None
    model = seeded(lambda: conv_autoencoder(t.channels, data["x_train"].shape[1], mean_pixel), ctx.seed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=t.lr)
    batches = TensorBatches(data["x_train"], batch_size=t.batch_size, seed=ctx.seed, device=device)
    # Data, not training: the data seed fixes it, so every training seed is scored on the same noisy images.
    noisy = {split: noisy_split(data, split, v.noise_std, ctx.params.seed) for split in NOISY_SPLITS}
    parameters = count_parameters(model)

    def loss_fn(m, batch):
        clean = batch[0]
        return F.mse_loss(m(add_noise(clean, v.noise_std, torch.randn_like(clean))), clean)

    def evaluate(m):
        return {"val_mse": mse(denoise(m, noisy["val"]), data["x_val"])}

    def final_metrics(m, _result):
        own = _test_scores(m, data, noisy["test"])
        baseline = image_scores(noisy["test"], data["x_test"])  # doing nothing scores this
        return (evaluate(m) | own | {f"noisy_test_{k}": x for k, x in baseline.items()}
                | {"psnr_gain_db": own["test_psnr"] - baseline["psnr"], "parameters": parameters})

    return base.train_variant(
        ctx, variant, model=model, optimizer=optimizer, batches=batches, loss_fn=loss_fn,
        epochs=t.epochs, evaluate=evaluate, final_metrics=final_metrics,
        run_params={"noise_std": v.noise_std, "channels": list(t.channels),
                    "mean_pixel_output_bias": t.mean_pixel_output_bias, "lr": t.lr, "batch_size": t.batch_size,
                    "epochs": t.epochs, "dataset": meta["dataset"], "parameters": parameters},
        model_info={"kind": "conv_autoencoder", "channels": list(t.channels), "in_channels": data["x_train"].shape[1],
                    "noise_std": v.noise_std, "mean_pixel": mean_pixel},
    )


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back)."""
    data, _ = load_processed(ctx.processed_dir)
    return _test_scores(model, data, noisy_split(data, "test", ctx.variant_cfg(variant).noise_std, ctx.params.seed))


def _test_scores(model, data, noisy_test: torch.Tensor) -> dict[str, float]:
    """The denoised test digits (noise fixed by the data seed) scored against the clean ones."""
    denoised = denoise(model, noisy_test)
    own = image_scores(denoised, data["x_test"])
    return {f"test_{k}": x for k, x in own.items()} | {"test_mse": mse(denoised, data["x_test"])}


def load_model(path) -> tuple[nn.Module, dict]:
    saved = load_weights(path)
    info = saved["info"]
    model = conv_autoencoder(tuple(info["channels"]), info["in_channels"])
    model.load_state_dict(saved["state_dict"])
    return model.eval(), info


# --------------------------------------------------------------------------- evaluate


def psnr(pred: torch.Tensor, clean: torch.Tensor) -> float:
    """PSNR in dB against the clean images (torchmetrics, peak 1): the mean of each image's PSNR."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    return peak_signal_noise_ratio(pred, clean, data_range=1.0, dim=(1, 2, 3)).item()


def image_scores(pred: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
    """PSNR (mean over images, and of the pooled error) and SSIM against the clean images (torchmetrics).

    SSIM (an 11 x 11 Gaussian window) costs 100x PSNR's time: only the table's scores use it.
    """
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    return {
        "psnr": psnr(pred, clean),
        "psnr_pooled": peak_signal_noise_ratio(pred, clean, data_range=1.0).item(),
        "ssim": structural_similarity_index_measure(pred, clean, data_range=1.0).item(),
    }


def evaluate(ctx: base.LabContext) -> None:
    results = base.variant_results(ctx)
    base.small_model_threads(ctx)
    data, _meta = load_processed(ctx.processed_dir)
    clean = data["x_test"]
    models = {v: load_model(ctx.model_dir(v) / "model.pt")[0] for v in results}
    levels = {v: ctx.variant_cfg(v).noise_std for v in results}
    noisy = {v: noisy_split(data, "test", std, ctx.params.seed) for v, std in levels.items()}
    # An all-black image: what the course's model outputs on its plateau; a denoiser must beat it too.
    black_psnr = psnr(torch.zeros_like(clean), clean)
    table, denoised, cross = [], {}, {}
    for variant, model in models.items():
        denoised[variant] = denoise(model, noisy[variant])
        m = results[variant]["metrics"]  # the train stage scored the primary seed's model on its own noise level
        on_other = {w: psnr(denoise(model, noisy[w]), clean) for w in models}
        m |= {f"test_psnr_on_{w}": value for w, value in on_other.items()}  # the test noise of variant w
        cross[variant] = {f"test noise {levels[w]:g}": value for w, value in on_other.items()}
        table.append({"variant": variant, "noise_std": levels[variant], "noisy_psnr": m["noisy_test_psnr"],
                      "test_psnr": m["test_psnr"], "psnr_gain_db": m["psnr_gain_db"], "noisy_ssim": m["noisy_test_ssim"],
                      "test_ssim": m["test_ssim"], "test_psnr_pooled": m["test_psnr_pooled"], "all_black_psnr": black_psnr,
                      "beats_noisy_input": m["test_psnr"] > m["noisy_test_psnr"], "epochs": m["epochs_run"],
                      "train_seconds": m["train_seconds"]})
    figures = _figures(ctx, results, levels, noisy, denoised, clean, cross)
    base.publish_comparison(ctx, results, table=table, figures=figures,
                            summary={"test_images": len(clean), "all_black_psnr": black_psnr,
                                     "every_level_beats_noisy_input": all(r["beats_noisy_input"] for r in table)})


def _figures(ctx, results, levels, noisy, denoised, clean, cross) -> dict:
    from labflow.plots import figures as figs
    from labflow.plots import mosaic

    n = min(ctx.cfg.show.images, len(clean))
    rows = {}
    for variant, std in levels.items():
        rows[f"noisy, sigma {std:g}"] = noisy[variant][:n, 0].numpy()
        rows[f"denoised ({variant})"] = denoised[variant][:n, 0].numpy()
    rows["clean"] = clean[:n, 0].numpy()
    baseline = {f"test noise {levels[v]:g}": results[v]["metrics"]["noisy_test_psnr"] for v in levels}
    across = figs.grouped_bars(
        {"noisy input": baseline} | {f"trained at sigma {levels[v]:g}": scores for v, scores in cross.items()},
        ylabel="test PSNR (dB)", fmt="{:.1f}", title="each model on every test noise level (trained at one level)")
    across.axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    return {
        "noisy_denoised_clean": mosaic.labelled_rows(
            rows, title="test digits: noisy input, denoised output, clean original"),
        "psnr": figs.grouped_bars(
            {"noisy input": {f"sigma {levels[v]:g}": r["metrics"]["noisy_test_psnr"] for v, r in results.items()},
             "denoised": {f"sigma {levels[v]:g}": r["metrics"]["test_psnr"] for v, r in results.items()}},
            ylabel="test PSNR (dB, mean over images)", fmt="{:.1f}",
            title="PSNR of the denoised digits vs the noisy input (the baseline)"),
        "ssim": figs.grouped_bars(
            {"noisy input": {f"sigma {levels[v]:g}": r["metrics"]["noisy_test_ssim"] for v, r in results.items()},
             "denoised": {f"sigma {levels[v]:g}": r["metrics"]["test_ssim"] for v, r in results.items()}},
            ylabel="test SSIM", fmt="{:.2f}", title="SSIM of the denoised digits vs the noisy input"),
        "psnr_across_noise_levels": across,
        "val_mse": figs.curves(base.series(results, "epoch", "val_mse"), xlabel="epoch",
                               ylabel="validation MSE (denoised vs clean)", title="validation MSE per epoch", logy=True),
    }

