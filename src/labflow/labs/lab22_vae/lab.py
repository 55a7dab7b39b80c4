"""Lab 22: a variational autoencoder on digits, latent 2 (a map you can draw) vs latent 16.

The course's MLP VAE: encoder 784-400-200 -> (mu, log variance), decoder latent-200-400-784,
Adam 1e-3, batch 128, loss = binary cross-entropy + KL divergence to N(0, I). Both variants
use the same widths, seed, split, batches and budget; only the latent size differs. Every
weight that does not depend on the latent size (encoder trunk, decoder after its first layer)
starts identical in both (``build_vae`` draws those first).

Fixed from the course:

- **Pixel scale.** The course normalised pixels to [-1, 1] and then scored its sigmoid output
  with binary cross-entropy. BCE is a Bernoulli log-likelihood only for targets in [0, 1]: with
  a background pixel at -1 its "loss", log p - 2 log(1 - p), falls without bound as the output
  p goes to 0, so what it minimised was no ELBO (PyTorch's CPU kernel refuses such targets
  outright). Here pixels stay in [0, 1] (``pixels.unit_pixel_splits``; ``require_unit_range``
  checks it before training), and the decoder returns logits scored with
  ``binary_cross_entropy_with_logits`` (the BCE of a sigmoid output without its log(0)).
- **What is reported.** The course printed the training loss only. Here the ELBO and its two
  parts, reconstruction (BCE summed over the 784 pixels, i.e. -E_q[log p(x|z)]) and
  KL(q(z|x) || N(0, I)), in nats per image, on validation data every epoch and on the test
  split at the end, with one reparameterised sample per image from a generator seeded with the
  data seed (the same draws for every variant and training seed). Pixels are grey levels in
  [0, 1], not binarised: the Bernoulli "likelihood" of a grey pixel is the usual convention, not
  a normalised density, so compare these ELBOs with each other, not with binarised-MNIST papers.

Figures: ELBO parts per variant, latent scatter of the test digits coloured by class (latent 2:
the posterior means themselves; latent 16: their 2-D PCA projection, labelled so), a 2-D
traversal grid (latent 2: both dimensions; latent 16: the two dimensions with the largest KL,
the other 14 held at 0, the prior's mean, labelled so), reconstructions, samples from the
prior, and KL per latent dimension (how many dimensions the model uses).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from labflow.train.callbacks import load_weights
from labflow.frame import base
from labflow.prep.pixels import training_data, unit_pixel_splits
from labflow.prep.tensors import load_processed
from labflow.train import TensorBatches

LAB_ID = "lab22"
TITLE = "Variational autoencoder: latent 2 vs latent 16"
DATASETS = ("mnist",)
EVAL_CHUNK = 2048
HEADLINE = ("test_elbo", "test_recon", "test_kl")  # what the seed bands compare (labflow.compare.seed_bands)
HEADLINE_CURVE = "val_elbo"
# A latent dimension counts as active when its posterior mean varies across test images by more
# than this (Burda et al., 2016): below it the dimension carries no information about the input.
ACTIVE_VARIANCE = 0.01


# --------------------------------------------------------------------------- data


def preprocess(ctx: base.LabContext) -> dict:
    return unit_pixel_splits(LAB_ID, "mnist", ctx.cfg.data, ctx.seed)


# --------------------------------------------------------------------------- model


def _dense(widths: Sequence[int]) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for a, b in zip(widths, widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return layers


class VAE(nn.Module):
    """MLP encoder to (mu, log variance) of a diagonal Gaussian; MLP decoder to pixel logits."""

    def __init__(self, in_features: int, hidden: Sequence[int], latent: int) -> None:
        super().__init__()
        hidden = list(hidden)
        # Latent-independent layers first, so every latent size draws the same weights for them.
        self.encoder = nn.Sequential(nn.Flatten(), *_dense([in_features, *hidden]))
        tail = _dense(hidden[::-1])
        self.decoder_tail = nn.Sequential(*tail, nn.Linear(hidden[0], in_features))
        self.to_mu = nn.Linear(hidden[-1], latent)
        self.to_logvar = nn.Linear(hidden[-1], latent)
        self.decoder_head = nn.Sequential(nn.Linear(latent, hidden[-1]), nn.ReLU())
        self.latent = latent

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel logits, ``(N, in_features)``; ``torch.sigmoid`` gives the Bernoulli means."""
        return self.decoder_tail(self.decoder_head(z))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        mu, logvar = self.encode(x)
        return self.decode(reparameterise(mu, logvar, generator)), mu, logvar


def build_vae(hidden: Sequence[int], latent: int, seed: int, in_features: int = 28 * 28) -> VAE:
    from labflow.nets.common import seeded

    return seeded(lambda: VAE(in_features, hidden, latent), seed)


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I): a sample whose gradient reaches mu and log variance.

    ``generator`` (a CPU generator) fixes eps for evaluation; training draws from torch's global
    generator, whose state the checkpoints keep, so a resumed run draws what it would have.
    """
    if generator is None:
        eps = torch.randn_like(mu)
    else:
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype).to(mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


def elbo_parts(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor):
    """Per image: reconstruction term (BCE summed over pixels = -log p(x|z)) and KL(q(z|x) || N(0, I)).

    ELBO = -(reconstruction + KL). ``x`` must be in [0, 1].
    """
    recon = F.binary_cross_entropy_with_logits(logits, x.flatten(1), reduction="none").sum(1)
    return recon, kl_per_dimension(mu, logvar).sum(1)


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) for each image and latent dimension, in nats."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def vae_loss(model: VAE, batch) -> torch.Tensor:
    """The negative ELBO, averaged over the batch's images (nats per image)."""
    x = batch[0]
    logits, mu, logvar = model(x)
    recon, kl = elbo_parts(logits, x, mu, logvar)
    return (recon + kl).mean()


@torch.no_grad()
def elbo_metrics(model: VAE, x: torch.Tensor, prefix: str, seed: int) -> dict[str, float]:
    """ELBO, reconstruction and KL in nats per image, one seeded sample of z per image."""
    from labflow.nets.common import evaluating

    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    recon_sum = kl_sum = 0.0
    with evaluating(model):
        for i in range(0, len(x), EVAL_CHUNK):
            xc = x[i: i + EVAL_CHUNK].to(device)
            logits, mu, logvar = model(xc, generator)
            recon, kl = elbo_parts(logits, xc, mu, logvar)
            recon_sum += recon.sum().item()
            kl_sum += kl.sum().item()
    n = len(x)
    return {f"{prefix}_elbo": -(recon_sum + kl_sum) / n, f"{prefix}_recon": recon_sum / n, f"{prefix}_kl": kl_sum / n}


@torch.no_grad()
def posterior_means(model: VAE, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """mu and log variance of q(z|x) for every image, on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    parts = [model.encode(x[i: i + EVAL_CHUNK].to(device)) for i in range(0, len(x), EVAL_CHUNK)]
    return torch.cat([p[0] for p in parts]).cpu(), torch.cat([p[1] for p in parts]).cpu()


def active_dimensions(mu: torch.Tensor) -> int:
    """Latent dimensions whose posterior mean varies across images (the rest collapsed to the prior)."""
    return int((mu.var(0) > ACTIVE_VARIANCE).sum())


# --------------------------------------------------------------------------- train


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    from labflow.nets.common import count_parameters

    t, v = ctx.cfg.train, ctx.variant_cfg(variant)
    data, meta = training_data(ctx)
    device = ctx.device
    in_features = data["x_train"][0].numel()
    model = build_vae(t.hidden, v.latent, ctx.seed, in_features).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=t.lr)
    batches = TensorBatches(data["x_train"], batch_size=t.batch_size, seed=ctx.seed, device=device)
    parameters = count_parameters(model)

    def evaluate(m):
        return elbo_metrics(m, data["x_val"], "val", ctx.params.seed)

    def final_metrics(m, _result):
        mu, _ = posterior_means(m, data["x_test"])
        return (_test_scores(m, data, ctx.params.seed) | evaluate(m)
                | {"active_dims": active_dimensions(mu), "parameters": parameters})

    return base.train_variant(
        ctx, variant, model=model, optimizer=optimizer, batches=batches, loss_fn=vae_loss,
        epochs=t.epochs, evaluate=evaluate, final_metrics=final_metrics,
        run_params={"latent": v.latent, "hidden": list(t.hidden), "lr": t.lr, "batch_size": t.batch_size,
                    "epochs": t.epochs, "dataset": meta["dataset"], "parameters": parameters},
        model_info={"kind": "vae", "in_features": in_features, "hidden": list(t.hidden), "latent": v.latent},
    )


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back)."""
    data, _ = load_processed(ctx.processed_dir)
    return _test_scores(model, data, ctx.params.seed)


def _test_scores(model, data, seed: int) -> dict[str, float]:
    """Test ELBO and its parts, z sampled from a generator seeded with the data seed (``seed``)."""
    return elbo_metrics(model, data["x_test"], "test", seed)


def load_model(path) -> VAE:
    saved = load_weights(path)
    info = saved["info"]
    model = VAE(info["in_features"], info["hidden"], info["latent"])
    model.load_state_dict(saved["state_dict"])
    return model.eval()


# --------------------------------------------------------------------------- evaluate


def map_coordinates(mu: torch.Tensor) -> tuple[np.ndarray, str]:
    """2-D coordinates of the posterior means: themselves for a 2-D latent, else their PCA projection."""
    if mu.shape[1] == 2:
        return mu.numpy(), "z1 and z2 (posterior means)"
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=0).fit(mu.numpy())
    share = pca.explained_variance_ratio_.sum()
    return pca.transform(mu.numpy()), f"PCA of the {mu.shape[1]}-D posterior means ({share:.0%} of their variance)"


def traversal_dimensions(kl_by_dim: torch.Tensor) -> tuple[int, int]:
    """The two latent dimensions the traversal varies: the two with the largest mean KL (0, 1 for 2-D)."""
    top = torch.argsort(kl_by_dim, descending=True)[:2].tolist()
    return tuple(sorted(top))


@torch.no_grad()
def traversal(model: VAE, dims: tuple[int, int], steps: int, quantile: float) -> tuple[np.ndarray, np.ndarray]:
    """Decoded images on a steps x steps grid over two latent dimensions (others at 0).

    The grid spans the prior's quantiles [q, 1 - q] (Kingma & Welling's figure): equal
    probability mass between neighbours. Returns (images (steps, steps, 28, 28), values);
    row i holds the i-th value from the top (largest first), column j the j-th from the left.
    """
    values = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(quantile, 1 - quantile, steps))
    device = next(model.parameters()).device
    z = torch.zeros(steps, steps, model.latent)
    z[:, :, dims[0]] = values.view(1, -1)  # x: left to right
    z[:, :, dims[1]] = values.flip(0).view(-1, 1)  # y: top (large) to bottom (small)
    images = torch.sigmoid(model.decode(z.view(-1, model.latent).to(device))).cpu()
    side = int(round(images.shape[1] ** 0.5))
    return images.view(steps, steps, side, side).numpy(), values.numpy()


@torch.no_grad()
def reconstruct(model: VAE, x: torch.Tensor) -> np.ndarray:
    """Decoder means at the posterior means (no sampling): what the model keeps of each image."""
    mu, _ = model.encode(x.to(next(model.parameters()).device))
    return torch.sigmoid(model.decode(mu)).cpu().view(x.shape[0], *x.shape[-2:]).numpy()


@torch.no_grad()
def prior_samples(model: VAE, n: int, seed: int) -> np.ndarray:
    z = torch.randn(n, model.latent, generator=torch.Generator().manual_seed(seed))
    images = torch.sigmoid(model.decode(z.to(next(model.parameters()).device))).cpu()
    side = int(round(images.shape[1] ** 0.5))
    return images.view(n, side, side).numpy()


def evaluate(ctx: base.LabContext) -> None:
    results = base.variant_results(ctx)
    base.small_model_threads(ctx)
    data, meta = load_processed(ctx.processed_dir)
    x_test, y_test = data["x_test"], data["y_test"]
    models = {v: load_model(ctx.model_dir(v) / "model.pt") for v in results}
    table, looked = [], {}
    for variant, model in models.items():
        mu, logvar = posterior_means(model, x_test)
        kl_by_dim = kl_per_dimension(mu, logvar).mean(0)
        looked[variant] = {"mu": mu, "kl_by_dim": kl_by_dim}
        m = results[variant]["metrics"]
        table.append({"variant": variant, "latent": model.latent, "test_elbo": m["test_elbo"],
                      "test_recon_bce": m["test_recon"], "test_kl": m["test_kl"], "val_elbo": m["val_elbo"],
                      "active_dims": m["active_dims"], "parameters": m["parameters"],
                      "epochs": m["epochs_run"], "train_seconds": m["train_seconds"]})
    figures = _figures(ctx, results, models, looked, x_test, y_test, meta)
    best = max(results, key=lambda v: results[v]["metrics"]["test_elbo"])
    base.publish_comparison(ctx, results, table=table, figures=figures,
                            summary={"test_images": len(x_test), "best_test_elbo": best})


def _figures(ctx, results, models, looked, x_test, y_test, meta) -> dict:
    from labflow.plots import figures as figs
    from labflow.plots import mosaic

    show = ctx.cfg.show
    names = {v: f"{v} (latent {m.latent})" for v, m in models.items()}
    out = {
        "elbo_parts": figs.grouped_bars(
            {names[v]: {"-ELBO": -r["metrics"]["test_elbo"], "reconstruction (BCE)": r["metrics"]["test_recon"],
                        "KL": r["metrics"]["test_kl"]} for v, r in results.items()},
            ylabel="nats per image (lower is better)", fmt="{:.1f}",
            title=f"test -ELBO = reconstruction + KL ({len(x_test)} test digits)"),
        "val_elbo": figs.curves(base.series(results, "epoch", "val_elbo"), xlabel="epoch",
                                ylabel="validation ELBO (nats per image)", title="validation ELBO per epoch (higher is better)"),
        "latent_map": _latent_maps(looked, y_test, meta["classes"], names, show.map_points),
        "kl_per_dimension": figs.grouped_bars(
            {names[v]: {f"z{d + 1}": float(k) for d, k in enumerate(looked[v]["kl_by_dim"])} for v in models},
            ylabel="mean KL on test digits (nats)", fmt="{:.1f}",
            title="KL per latent dimension (near 0: the dimension is unused, collapsed to the prior)"),
    }
    n = min(show.reconstructions, len(x_test))
    rows = {"test digit": x_test[:n, 0].numpy()}
    rows.update({names[v]: reconstruct(m, x_test[:n]) for v, m in models.items()})
    out["reconstructions"] = mosaic.labelled_rows(
        rows, title="test digits and their reconstructions (decoder mean at the posterior mean)")
    out["prior_samples"] = mosaic.labelled_rows(
        {names[v]: prior_samples(m, 12, ctx.seed) for v, m in models.items()},
        title="decoded samples from the prior N(0, I) (the same seed for each model)")
    for variant, model in models.items():
        dims = traversal_dimensions(looked[variant]["kl_by_dim"])
        images, values = traversal(model, dims, show.traversal_steps, show.traversal_quantile)
        held = "" if model.latent == 2 else f"; the other {model.latent - 2} dimensions held at 0"
        out[f"traversal_{variant}"] = mosaic.value_grid(
            images, values, values[::-1], xlabel=f"z{dims[0] + 1}", ylabel=f"z{dims[1] + 1}",
            title=f"{names[variant]}: decoded grid over z{dims[0] + 1}, z{dims[1] + 1}"
                  + (" (the two with the largest KL)" if model.latent > 2 else "")
                  + f"{held}\nprior quantiles {show.traversal_quantile:g}..{1 - show.traversal_quantile:g}")
    return out


def _latent_maps(looked, y_test, classes, names, points: int):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(looked), figsize=(5.6 * len(looked), 5.4), squeeze=False, layout="constrained")
    n = min(points, len(y_test))
    labels = y_test[:n].numpy()
    for ax, (variant, seen) in zip(axes[0], looked.items()):
        xy, how = map_coordinates(seen["mu"])
        xy = xy[:n]
        sc = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", vmin=-0.5, vmax=9.5, s=5, alpha=0.7)
        ax.set(title=f"{names[variant]}\n{how}", xlabel="axis 1", ylabel="axis 2")
        ax.grid(alpha=0.3)
    cbar = fig.colorbar(sc, ax=axes[0].tolist(), ticks=range(len(classes)))
    cbar.ax.set_yticklabels(classes)
    fig.suptitle(f"test digits in the latent space, coloured by class ({n} digits)")
    return fig
