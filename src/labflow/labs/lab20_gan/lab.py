"""Lab 20: the seed's MLP GAN vs a DCGAN on Fashion-MNIST, judged by a Fréchet distance.

Variants (params.yaml), trained the same way: the seed's non-saturating GAN loss, Adam
(lr 2e-4, betas 0.5/0.999) for both networks, batch 128 (the quick profile: 64, twice the
updates for its small budget), 100-d Gaussian noise, the same
images in the same batch order, the same noise batches (``LatentNoise``, its own seeded
generator) and the same epochs; each network built right after seeding.

- ``mlp_gan``: the seed's networks. G: z-128-256-512-784 (ReLU, tanh); D: 784-512-256-128-1
  (LeakyReLU 0.2), both with PyTorch's default init.
- ``dcgan``: Radford et al. (2016) for 28 px: G projects z to 2c x 7 x 7, then two stride-2
  transposed convolutions (2c -> c -> 1, batch norm + ReLU, tanh out); D mirrors it with
  stride-2 convolutions (1 -> c -> 2c, LeakyReLU 0.2, batch norm on the second) and one
  linear output; N(0, 0.02) init. ``c = 64 x width``: the quick profile narrows it to fit
  two CPU cores (full: 1.0).

Every step updates D once (real images against a fresh fake batch) and then G once against
the updated D, as the seed does; both through one ``step_fn`` of the shared training loop,
whose checkpoints hold both optimizers (``train.Optimizers``).

Measured (``evaluate``): the Fréchet distance between as many generated samples as there
are real test images and those test images, in the feature space of a Fashion-MNIST
classifier trained in this pipeline (lab 10's simple CNN, its run with the primary seed, a DVC
dependency; the full profile,
where lab 10 trains on CIFAR-10, trains the same CNN here), with that classifier's mean
confidence and class histogram of the samples (a generator that collapses onto a few kinds of
clothes shows a lopsided histogram and a low ``class_entropy``). The reference row puts as
many real training images in place of the samples: the distance a perfect generator would
get with this many images. Every training seed's generators are scored (``params.yaml: seeds``), so
the seed bands compare the distance across seeds.

What changed from the seed, and why:
- D ends in a logit and the loss is ``binary_cross_entropy_with_logits``: the seed's
  sigmoid + ``BCELoss`` is the same loss computed less stably (BCELoss clamps log at -100).
- The images rendered per epoch come from one fixed noise batch (the seed drew new noise
  every time, so its grids could not show what training changed), and are rescaled once
  (the seed mapped [-1, 1] to [0, 1] and then let ``save_image(normalize=True)`` stretch
  again). Rendering happens in eval mode (the seed left batch norm nothing to do there; the
  DCGAN's G has batch norm, so eval mode uses its running statistics).
- A quantitative score (the seed had none) and a held-out reference; the device is chosen,
  not hard-coded to "mps".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from labflow.train.callbacks import load_weights
from labflow.frame import paths
from labflow.frame import base
from labflow.nets.adversarial import (
    EpochSnapshots, LatentNoise, dcgan_init, displayable, from_uint8, snapshots_figure,
)
from labflow.prep.tensors import load_processed, save_processed
from labflow.nets.common import count_parameters, seeded
from labflow.train import Optimizers, TensorBatches

LAB_ID = "lab20"
TITLE = "GAN: the seed's MLP GAN vs DCGAN (Fréchet distance in a Fashion-MNIST classifier's features)"
DATASETS = ("fashion_mnist",)
JUDGE_LAB, JUDGE_VARIANT = "lab10", "simple_cnn"  # its run with the primary seed (params.yaml: seed)
# What the seed bands compare over training seeds (labflow.compare.seed_bands).
HEADLINE = ("frechet_distance", "class_entropy")
# Its step_fn steps two optimizers itself: DistributedDataParallel does not cover it (one process only).
DISTRIBUTED = False
HEADLINE_CURVE = "d_loss"
EVAL_NOISE_SEED_OFFSET = 20_000  # the evaluation samples' noise: another stream than training's
SNAPSHOT_ROWS = 10


# --------------------------------------------------------------------------- data


def preprocess(ctx: base.LabContext) -> dict:
    """A class-balanced subset of the training images and of the test images, scaled to [-1, 1]."""
    from labflow.data import load_images
    from labflow.prep.images import stratified_take

    d = ctx.cfg.data
    data = load_images(paths.raw_dir(d.dataset))
    rng = np.random.default_rng(ctx.seed)
    test_idx = stratified_take(data.y_test, d.test_size, rng)
    train_idx = stratified_take(data.y_train, d.train_size, rng)
    tensors = {
        "x_train": from_uint8(data.x_train[train_idx]), "y_train": torch.from_numpy(data.y_train[train_idx]).long(),
        "x_test": from_uint8(data.x_test[test_idx]), "y_test": torch.from_numpy(data.y_test[test_idx]).long(),
    }
    meta = {"dataset": d.dataset, "classes": list(data.classes), "range": [-1.0, 1.0],
            "sizes": {"train": len(train_idx), "test": len(test_idx)}}
    save_processed(ctx.processed_dir, tensors, meta)
    return meta


# --------------------------------------------------------------------------- the networks


class GAN(nn.Module):
    """A generator and its discriminator in one module: one state dict, one ``model.pt``, one
    ``train()``/``eval()`` switch for the shared training loop. ``forward(z)`` generates."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, latent_dim: int) -> None:
        super().__init__()
        self.generator, self.discriminator = generator, discriminator
        self.latent_dim = latent_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)


def mlp_generator(latent_dim: int, hidden: int, channels: int, side: int) -> nn.Sequential:
    """The seed's G: z -> h -> 2h -> 4h -> C*H*W, ReLU between, tanh out, reshaped to an image."""
    h = hidden
    return nn.Sequential(
        nn.Linear(latent_dim, h), nn.ReLU(), nn.Linear(h, 2 * h), nn.ReLU(), nn.Linear(2 * h, 4 * h), nn.ReLU(),
        nn.Linear(4 * h, channels * side * side), nn.Tanh(), nn.Unflatten(1, (channels, side, side)),
    )


def mlp_discriminator(hidden: int, channels: int, side: int) -> nn.Sequential:
    """The seed's D: C*H*W -> 4h -> 2h -> h -> 1 logit, LeakyReLU 0.2 between."""
    h = hidden
    return nn.Sequential(
        nn.Flatten(), nn.Linear(channels * side * side, 4 * h), nn.LeakyReLU(0.2), nn.Linear(4 * h, 2 * h),
        nn.LeakyReLU(0.2), nn.Linear(2 * h, h), nn.LeakyReLU(0.2), nn.Linear(h, 1),
    )


def dcgan_channels(width: float) -> int:
    return max(4, int(round(64 * width)))


def dcgan_generator(latent_dim: int, width: float, channels: int, side: int) -> nn.Sequential:
    """z -> 2c x s/4 x s/4 (linear, BN, ReLU) -> c x s/2 (transposed conv, BN, ReLU) -> C x s (tanh)."""
    c, quarter = dcgan_channels(width), side // 4
    return nn.Sequential(
        nn.Linear(latent_dim, 2 * c * quarter * quarter, bias=False), nn.Unflatten(1, (2 * c, quarter, quarter)),
        nn.BatchNorm2d(2 * c), nn.ReLU(),
        nn.ConvTranspose2d(2 * c, c, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
        nn.ConvTranspose2d(c, channels, 4, stride=2, padding=1), nn.Tanh(),
    )


def dcgan_discriminator(width: float, channels: int, side: int) -> nn.Sequential:
    """C x s -> c x s/2 (conv, LeakyReLU) -> 2c x s/4 (conv, BN, LeakyReLU) -> 1 logit (linear)."""
    c, quarter = dcgan_channels(width), side // 4
    return nn.Sequential(
        nn.Conv2d(channels, c, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(c, 2 * c, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * c), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(2 * c * quarter * quarter, 1),
    )


def build_gan(arch: str, latent_dim: int, channels: int = 1, image_size: int = 28, hidden: int = 128,
              width: float = 1.0) -> GAN:
    """The GAN a ``model.pt``'s ``info`` describes (``build_gan(**info)``), with random weights."""
    if image_size % 4:
        raise ValueError(f"image_size {image_size}: the DCGAN halves it twice, so it must be a multiple of 4")
    if arch == "mlp":
        return GAN(mlp_generator(latent_dim, hidden, channels, image_size), mlp_discriminator(hidden, channels, image_size),
                   latent_dim)
    if arch == "dcgan":
        gan = GAN(dcgan_generator(latent_dim, width, channels, image_size), dcgan_discriminator(width, channels, image_size),
                  latent_dim)
        return dcgan_init(gan)
    raise ValueError(f"unknown GAN architecture '{arch}'; choose mlp or dcgan")


def model_info(variant_cfg, latent_dim: int, x: torch.Tensor) -> dict:
    info = {"arch": variant_cfg.arch, "latent_dim": int(latent_dim), "channels": int(x.shape[1]),
            "image_size": int(x.shape[-1])}
    return info | ({"hidden": variant_cfg.hidden} if variant_cfg.arch == "mlp" else {"width": float(variant_cfg.width)})


def load_gan(path: Path) -> GAN:
    saved = load_weights(path)
    gan = build_gan(**saved["info"])
    gan.load_state_dict(saved["state_dict"])
    return gan.eval()


# --------------------------------------------------------------------------- one step


def gan_step(opts: Optimizers, noise: LatentNoise):
    """The alternating update: D on real vs fake, then G (non-saturating) against the updated D.

    Returns the step's losses for the loop: ``train_loss`` (= ``g_loss``, the generator's
    objective, which the loop reports and logs as every lab's training loss), ``d_loss``
    (mean of D's real and fake BCE, the seed's), and D's mean probability on real and fake.
    """

    def step(gan: GAN, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        real = batch[0]
        n = len(real)
        ones, zeros = real.new_ones(n, 1), real.new_zeros(n, 1)
        fake = gan.generator(noise.sample(n, real.device))

        opts["d"].zero_grad(set_to_none=True)
        real_logits, fake_logits = gan.discriminator(real), gan.discriminator(fake.detach())
        d_loss = (F.binary_cross_entropy_with_logits(real_logits, ones)
                  + F.binary_cross_entropy_with_logits(fake_logits, zeros)) / 2
        d_loss.backward()
        opts["d"].step()

        opts["g"].zero_grad(set_to_none=True)
        for p in gan.discriminator.parameters():
            p.requires_grad_(False)  # G's step needs D's input gradient only
        g_loss = F.binary_cross_entropy_with_logits(gan.discriminator(fake), ones)
        g_loss.backward()
        for p in gan.discriminator.parameters():
            p.requires_grad_(True)
        opts["g"].step()
        g = g_loss.detach()
        return {"train_loss": g, "g_loss": g, "d_loss": d_loss.detach(),
                "d_real": torch.sigmoid(real_logits.detach()).mean(), "d_fake": torch.sigmoid(fake_logits.detach()).mean()}

    return step


def make_optimizers(gan: GAN, lr: float, beta1: float) -> Optimizers:
    return Optimizers(
        g=torch.optim.Adam(gan.generator.parameters(), lr=lr, betas=(beta1, 0.999)),
        d=torch.optim.Adam(gan.discriminator.parameters(), lr=lr, betas=(beta1, 0.999)),
    )


def fixed_noise(seed: int, n: int, latent_dim: int) -> torch.Tensor:
    """The noise batch rendered after every epoch: the same for every variant."""
    return torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- train


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    from labflow.plots import figures as figs

    t, v = ctx.cfg.train, ctx.variant_cfg(variant)
    base.small_model_threads(ctx)  # small convolutions and matrices: one thread is faster on a busy CPU
    data, meta = load_processed(ctx.processed_dir)
    device = ctx.device
    info = model_info(v, t.latent_dim, data["x_train"])
    gan = seeded(lambda: build_gan(**info), ctx.seed).to(device)
    opts = make_optimizers(gan, t.lr, t.beta1)
    batches = TensorBatches(data["x_train"], batch_size=t.batch_size, seed=ctx.seed, device=device)
    noise = LatentNoise(t.latent_dim, ctx.seed)
    z_fixed = fixed_noise(ctx.seed, t.fixed_noise, t.latent_dim).to(device)
    snapshots = EpochSnapshots(lambda m: m.generator(z_fixed))

    def final_metrics(m, result):
        last = result.history[-1]
        return {"g_loss": last["g_loss"], "d_loss": last["d_loss"], "d_real": last["d_real"], "d_fake": last["d_fake"],
                "parameters_g": count_parameters(m.generator), "parameters_d": count_parameters(m.discriminator)}

    def figures(m, _result):
        shots = snapshots.images()
        return {
            "fixed_noise_by_epoch": snapshots_figure(shots, per_row=16, max_rows=SNAPSHOT_ROWS,
                                                     title=f"{variant}: the same 16 noise vectors after each epoch"),
            "samples": figs.image_grid(displayable(shots[-1][1]), value_range=(0, 1), cols=8,
                                       title=f"{variant}: the fixed noise batch after epoch {shots[-1][0]}"),
        }

    return base.train_variant(
        ctx, variant, model=gan, optimizer=opts, batches=batches, step_fn=gan_step(opts, noise),
        epochs=t.epochs, evaluate=None, final_metrics=final_metrics, figures=figures, callbacks=(noise, snapshots),
        run_params={"arch": v.arch, **({"hidden": v.hidden} if v.arch == "mlp" else {"width": v.width}),
                    "lr": t.lr, "beta1": t.beta1, "batch_size": t.batch_size, "epochs": t.epochs,
                    "latent_dim": t.latent_dim, "dataset": meta["dataset"], "train_images": len(data["x_train"]),
                    "parameters_g": count_parameters(gan.generator), "parameters_d": count_parameters(gan.discriminator)},
        model_info=info,
    )


# --------------------------------------------------------------------------- evaluate


def load_judge(ctx: base.LabContext, data: dict, device):
    """The Fashion-MNIST classifier the samples are judged by, as a ``FeatureJudge``, and where it came from."""
    from labflow.nets.adversarial import judge_from_sequential, train_classifier
    from labflow.nets.cnn import course_cnn

    j = ctx.cfg.judge
    if j.source == "lab10":
        seed = ctx.params.seed
        path = paths.model_dir(JUDGE_LAB, JUDGE_VARIANT, seed) / "model.pt"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: lab 20 judges its GANs with lab 10's simple CNN; "
                                    f"run `dvc repro labs/{JUDGE_LAB}/dvc.yaml:train@{JUDGE_VARIANT}-{seed}` first")
        saved = load_weights(path)
        from labflow.nets.architectures import build

        net = build(**saved["info"])
        net.load_state_dict(saved["state_dict"])
        _, lab10_meta = load_processed(paths.processed_dir(JUDGE_LAB))
        mean, std = lab10_meta["mean"], lab10_meta["std"]
        source = f"lab 10's {JUDGE_VARIANT} ({path.relative_to(paths.repo_root())})"
    else:
        from labflow.nets.adversarial import to_unit

        x01 = to_unit(data["x_train"])
        mean, std = x01.mean(dim=(0, 2, 3)).tolist(), x01.std(dim=(0, 2, 3)).tolist()
        x = (x01 - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
        n_classes = int(data["y_train"].max()) + 1
        net = seeded(lambda: course_cnn(x.shape[1], x.shape[-1], n_classes), ctx.seed)
        net = train_classifier(net, x, data["y_train"], epochs=j.epochs, batch_size=j.batch_size, lr=j.lr,
                               seed=ctx.seed, device=device, desc="lab20/judge", progress=ctx.progress)
        source = f"the course CNN trained here on lab 20's {len(x)} training images ({j.epochs} epochs)"
    return judge_from_sequential(net.cpu(), mean, std).to(device), source


def sample(gan: GAN, n: int, seed: int, device, chunk: int = 500) -> torch.Tensor:
    """``n`` images from noise seeded by ``seed``: every variant gets the same noise vectors."""
    from labflow.nets.common import evaluating

    z = fixed_noise(seed, n, gan.latent_dim)
    gan = gan.to(device)
    with torch.no_grad(), evaluating(gan):
        return torch.cat([gan(z[i:i + chunk].to(device)).cpu() for i in range(0, n, chunk)])


class Scorer:
    """Scores samples against the real test images: the Fréchet distance (the real images' features
    are extracted once), the judge's class report and the samples' pixel spread."""

    def __init__(self, judge, real_test: torch.Tensor, n_classes: int) -> None:
        from labflow.nets.adversarial import frechet_metric

        self.judge, self.n_classes = judge, n_classes
        self.metric = frechet_metric(judge, real_test)

    def __call__(self, images: torch.Tensor) -> dict:
        """``pixel_std``: each pixel's standard deviation over the sample, averaged (0 when every
        sample is the same image, a total collapse that class histograms cannot show within one class)."""
        from labflow.nets.adversarial import class_report, frechet_to_real, judge_predictions

        return {"frechet_distance": frechet_to_real(self.metric, images),
                "pixel_std": float(images.std(0).mean())} | class_report(judge_predictions(self.judge, images), self.n_classes)


def score(judge, real_test: torch.Tensor, images: torch.Tensor, n_classes: int) -> dict:
    """One sample's scores (see :class:`Scorer`)."""
    return Scorer(judge, real_test, n_classes)(images)


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back).

    Scored in the evaluate stage (``labs/lab20/dvc.yaml:evaluate``), whose keys these are: as many
    samples as real test images, from the evaluation noise (seeded by params' seed), judged against
    the test images by the same judge (lab 10's CNN, or one trained here), on the model's device."""
    data, meta = load_processed(ctx.processed_dir)
    device = next(model.parameters()).device
    judge, _ = load_judge(ctx, data, device)
    scorer = Scorer(judge, data["x_test"], len(meta["classes"]))
    scores, _ = _scored_sample(model, scorer, ctx, len(data["x_test"]), device)
    return _logged(scores)


def _scored_sample(gan: GAN, scorer: Scorer, ctx: base.LabContext, n: int, device) -> tuple[dict, torch.Tensor]:
    """(scores, images) of ``n`` samples of ``gan`` from the evaluation noise: the same noise for every
    variant and training seed (params' seed, not the training seed)."""
    images = sample(gan, n, ctx.params.seed + EVAL_NOISE_SEED_OFFSET, device)
    return scorer(images), images


def _logged(scores: dict) -> dict[str, float]:
    """The numbers of a sample's scores (not its class histogram): what a variant's metrics record."""
    return {k: v for k, v in scores.items() if not isinstance(v, list)}


def evaluate(ctx: base.LabContext) -> None:
    from labflow.plots import figures as figs

    base.small_model_threads(ctx)
    results = base.variant_results(ctx)
    data, meta = load_processed(ctx.processed_dir)
    device = ctx.device
    classes = meta["classes"]
    judge, judge_source = load_judge(ctx, data, device)
    from labflow.nets.adversarial import judge_predictions

    x_test, n = data["x_test"], len(data["x_test"])
    judge_acc = float((judge_predictions(judge, x_test).argmax(1) == data["y_test"]).float().mean())
    scorer = Scorer(judge, x_test, len(classes))
    reference = scorer(data["x_train"][:n])
    scores = {"real training images (reference)": reference}
    samples = {}
    for variant, r in results.items():
        for seed, run in r["seeds"].items():  # every training seed's generator, for the seed bands
            s, images = _scored_sample(load_gan(ctx.model_dir(variant, seed) / "model.pt"), scorer, ctx, n, device)
            run["metrics"].update(_logged(s))
            if seed == ctx.params.seed:
                samples[variant], scores[variant] = images, s
        r["metrics"] = r["seeds"][ctx.params.seed]["metrics"]

    table = []
    for name, s in scores.items():
        m = results[name]["metrics"] if name in results else {}
        v = ctx.cfg.variants[name] if name in results else None
        table.append({
            "variant": name, "arch": v.arch if v else "-",
            "frechet_distance": s["frechet_distance"], "confidence": s["confidence"],
            "class_entropy": s["class_entropy"], "classes_seen": s["classes_seen"], "pixel_std": s["pixel_std"],
            "g_loss": m.get("g_loss", "-"), "d_loss": m.get("d_loss", "-"),
            "parameters_g": int(m["parameters_g"]) if m else "-", "train_seconds": m.get("train_seconds", "-"),
        })
    summary = {"samples_per_score": n, "judge_test_acc": judge_acc, "judge": judge_source,
               "reference_frechet_distance": reference["frechet_distance"],
               "reference_confidence": reference["confidence"], "reference_pixel_std": reference["pixel_std"]}
    figures = {
        "frechet_distance": figs.bars({k: s["frechet_distance"] for k, s in scores.items()}, fmt="{:.2f}",
                                      ylabel="Fréchet distance to the real test images (lower is better)",
                                      title=f"{n} samples each, in the judge's features"),
        "class_histogram": figs.grouped_bars(
            {k: dict(zip(classes, s["class_share"])) for k, s in scores.items()}, fmt="{:.2f}",
            ylabel="share of the sample", title="class the judge assigns (real test images: 10% each)"),
        "losses": figs.panels(
            {"epoch (discriminator)": base.series(results, "epoch", "d_loss"),
             "epoch (generator)": base.series(results, "epoch", "g_loss")},
            xlabel="epoch", ylabel="mean loss of the epoch", title="D loss (left) and G loss (right) per epoch"),
        "discriminator_outputs": figs.panels(
            {"epoch (real images)": base.series(results, "epoch", "d_real"),
             "epoch (generated images)": base.series(results, "epoch", "d_fake")},
            xlabel="epoch", ylabel="mean D(x)", title="what the discriminator says during training (0.5: cannot tell)"),
        "samples_side_by_side": _side_by_side(samples, x_test, per_row=12),
    }
    base.publish_comparison(ctx, results, table=table, figures=figures, summary=summary)


def _side_by_side(samples: dict[str, torch.Tensor], real: torch.Tensor, per_row: int):
    """The same noise vectors through every generator, one row per variant, real test images below."""
    from labflow.plots import figures as figs

    rows = [(name, x[:per_row]) for name, x in samples.items()] + [("real test images", real[:per_row])]
    images = np.concatenate([displayable(x) for _, x in rows])
    titles = [name if k == 0 else "" for name, x in rows for k in range(len(x))]
    return figs.image_grid(images, titles, value_range=(0, 1), cols=per_row, title="the same noise through each generator; real images last")
