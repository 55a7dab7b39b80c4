"""Lab 21: CycleGAN, unpaired translation between two real image domains, with vs without the identity loss.

Data. Quick and smoke profiles: two Fashion-MNIST classes as the domains (A: sneakers,
B: ankle boots; params.yaml names them), each from its own images, never paired. Full
profile: the CycleGAN authors' horse2zebra (horses A, zebras B), downloaded and checked
against the sha256 pinned in params.yaml (``data.horse2zebra``).

The model is Zhu et al.'s (2017), scaled by params.yaml: two ResNet generators G_AB and G_BA
(c7s1-ngf, two stride-2 convolutions, residual blocks, two stride-2 transposed convolutions,
c7s1 to the image, instance norm, tanh) and two PatchGAN discriminators D_A and D_B, least
squares GAN losses, cycle-consistency L1 weighted 10, Adam 2e-4 (betas 0.5/0.999), one
optimizer for both generators and one per discriminator (the seed's three), the N(0, 0.02)
init. One ``step_fn`` of the shared training loop updates the generators, then D_A, then
D_B; the loop's checkpoints hold all three optimizers.

Variants: ``identity`` adds the identity loss |G_BA(a) - a| + |G_AB(b) - b| (weight 5, the
seed's and the paper's 0.5 x the cycle weight: it asks a generator to leave an image that is
already in its target domain alone); ``no_identity`` drops it (and does not compute it, so
it trains faster). Same seed, initial weights, batches and epochs.

Measured on held-out test images of both domains (the seed looked at one training image):
the share of translated images that a domain classifier assigns to the target domain (the
classifier is trained in ``labs/lab21/dvc.yaml:evaluate`` on the real training images of both domains; its
accuracy on real test images is the reference row, and "no translation" the floor), the
cycle L1 |G_BA(G_AB(a)) - a| per direction, the identity L1 and how much a translation
changes its input; after every epoch the same test images are translated (A -> B -> A grids).

What changed from the seed, and why:
- The seed's dataset paired trainA[i] with trainB[i] for every i (a shuffled index picks
  both), so every horse always met the same zebra: ``UnpairedBatches`` shuffles the two
  domains independently every epoch, which is what "unpaired" means.
- The seed ran each discriminator twice on the same fake batch in the generator step (one
  call for the loss, one for its target's shape) and let the generator step compute
  gradients for the discriminators' weights, discarded right after; here the discriminators
  are frozen during the generator step.
- A number (the seed had none), on test images, in eval mode; the device is chosen, not
  hard-coded to "cuda". The seed's batch of 1 becomes a params.yaml knob (quick: 16 images).
- Like the seed, no history buffer of generated images for the discriminators (the paper
  keeps 50); said here so nobody looks for one.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from labflow.train.callbacks import load_weights
from labflow.frame import paths
from labflow.frame import base
from labflow.nets.adversarial import EpochSnapshots, dcgan_init, displayable, from_uint8, set_requires_grad
from labflow.prep.tensors import load_processed, save_processed
from labflow.nets.common import count_parameters, seeded
from labflow.train import Optimizers

LAB_ID = "lab21"
TITLE = "CycleGAN: unpaired translation between two domains, with vs without the identity loss"
DATASETS = ("fashion_mnist", "horse2zebra")
EVAL_CHUNK = 128
# What the seed bands compare over training seeds (labflow.compare.seed_bands).
HEADLINE = ("target_share", "test_identity_l1", "test_cycle_l1_aba")
# Its step_fn steps two optimizers itself: DistributedDataParallel does not cover it (one process only).
DISTRIBUTED = False
HEADLINE_CURVE = "test_cycle_l1_aba"


# --------------------------------------------------------------------------- data


def _pick(x: np.ndarray, y: np.ndarray, label: int, n: int | None, rng: np.random.Generator) -> np.ndarray:
    idx = rng.permutation(np.flatnonzero(y == label))
    return x[idx[:n] if n is not None else idx]


def _resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None or x.shape[-1] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(-1, 1)


def preprocess(ctx: base.LabContext) -> dict:
    """Each domain's own training and test images (two classes of one data set), in [-1, 1]."""
    from labflow.data import load_images
    from labflow.data.download import DataError

    d = ctx.cfg.data
    data = load_images(paths.raw_dir(d.dataset))
    labels = {}
    for key, name in (("domain_a", d.domain_a), ("domain_b", d.domain_b)):
        if name not in data.classes:
            raise DataError(f"lab21.data.{key}: '{name}' is not a class of {d.dataset} (its classes: "
                            f"{', '.join(data.classes)})")
        labels[key] = data.classes.index(name)
    rng = np.random.default_rng(ctx.seed)
    tensors = {}
    for tag, key in (("a", "domain_a"), ("b", "domain_b")):
        for split, x, y, n in (("train", data.x_train, data.y_train, d.train_per_domain),
                               ("test", data.x_test, data.y_test, d.test_per_domain)):
            tensors[f"{tag}_{split}"] = _resize(from_uint8(_pick(x, y, labels[key], n, rng)), d.image_size)
    meta = {"dataset": d.dataset, "domains": [d.domain_a, d.domain_b], "range": [-1.0, 1.0],
            "channels": int(tensors["a_train"].shape[1]), "image_size": int(tensors["a_train"].shape[-1]),
            "sizes": {k: len(v) for k, v in tensors.items()}}
    save_processed(ctx.processed_dir, tensors, meta)
    return meta


class UnpairedBatches:
    """(a, b) batches with the two domains shuffled independently every epoch: no fixed pairs.

    An epoch is ``min(len(a), len(b)) // batch_size`` steps (at least one), so every image of
    the smaller domain is used once per epoch and the larger domain's images are drawn afresh
    each epoch. The generator's state is part of checkpoints, like ``TensorBatches``'.
    """

    def __init__(self, a: torch.Tensor, b: torch.Tensor, *, batch_size: int, seed: int = 0, device=None) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        self.a, self.b = (a.to(device), b.to(device)) if device is not None else (a, b)
        self.batch_size = min(batch_size, len(a), len(b))
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return min(len(self.a), len(self.b)) // self.batch_size

    def __iter__(self):
        order_a = torch.randperm(len(self.a), generator=self.generator).to(self.a.device)
        order_b = torch.randperm(len(self.b), generator=self.generator).to(self.b.device)
        for k in range(len(self)):
            part = slice(k * self.batch_size, (k + 1) * self.batch_size)
            yield self.a.index_select(0, order_a[part]), self.b.index_select(0, order_b[part])

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


# --------------------------------------------------------------------------- the networks


class ResnetBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def resnet_generator(channels: int, ngf: int, blocks: int) -> nn.Sequential:
    """CycleGAN's generator: c7s1-ngf, d2ngf, d4ngf, ``blocks`` x R4ngf, u2ngf, ungf, c7s1-channels, tanh.

    Two stride-2 steps down and up: the image side must be a multiple of 4.
    """
    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
    width = ngf
    for _ in range(2):
        layers += [nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * width), nn.ReLU(True)]
        width *= 2
    layers += [ResnetBlock(width) for _ in range(blocks)]
    for _ in range(2):
        layers += [nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1),
                   nn.InstanceNorm2d(width // 2), nn.ReLU(True)]
        width //= 2
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, channels, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def patch_discriminator(channels: int, ndf: int, n_layers: int) -> nn.Sequential:
    """pix2pix/CycleGAN's PatchGAN: C ndf (stride 2, no norm), then stride-2 convolutions doubling
    the channels (at most 8 ndf), one stride-1 convolution and a 1-channel map of real/fake scores.
    ``n_layers`` 3 is the 70x70 PatchGAN; a 28 px image takes 2 (5x5 patches of 22 px)."""
    layers: list[nn.Module] = [nn.Conv2d(channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
    width = ndf
    for k in range(1, n_layers + 1):
        out = ndf * min(2 ** k, 8)
        stride = 2 if k < n_layers else 1
        layers += [nn.Conv2d(width, out, 4, stride=stride, padding=1), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2, True)]
        width = out
    layers.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
    return nn.Sequential(*layers)


class CycleGAN(nn.Module):
    """The four networks as one module (one state dict and ``model.pt``); ``forward`` translates A to B."""

    def __init__(self, channels: int, ngf: int, blocks: int, ndf: int, d_layers: int) -> None:
        super().__init__()
        self.g_ab, self.g_ba = resnet_generator(channels, ngf, blocks), resnet_generator(channels, ngf, blocks)
        self.d_a, self.d_b = patch_discriminator(channels, ndf, d_layers), patch_discriminator(channels, ndf, d_layers)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.g_ab(a)


def build_cyclegan(channels: int, ngf: int, blocks: int, ndf: int, d_layers: int, image_size: int = 28) -> CycleGAN:
    """What a ``model.pt``'s ``info`` describes (``build_cyclegan(**info)``), with the N(0, 0.02) init."""
    if image_size % 4:
        raise ValueError(f"image_size {image_size}: the generator halves it twice, so it must be a multiple of 4")
    return dcgan_init(CycleGAN(channels, ngf, blocks, ndf, d_layers))


def model_info(ctx: base.LabContext, meta: dict) -> dict:
    m = ctx.cfg.model
    return {"channels": meta["channels"], "ngf": m.generator_channels, "blocks": m.residual_blocks,
            "ndf": m.discriminator_channels, "d_layers": m.discriminator_layers, "image_size": meta["image_size"]}


def load_cyclegan(path) -> CycleGAN:
    saved = load_weights(path)
    model = build_cyclegan(**saved["info"])
    model.load_state_dict(saved["state_dict"])
    return model.eval()


# --------------------------------------------------------------------------- one step


def lsgan(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """The least-squares GAN loss the seed and the paper use: (D(x) - 1)^2 for real, D(x)^2 for fake."""
    return F.mse_loss(scores, torch.ones_like(scores) if real else torch.zeros_like(scores))


def cycle_step(opts: Optimizers, cycle_weight: float, identity_weight: float):
    """Generators first (adversarial + cycle (+ identity)), then D_A and D_B on real vs the step's fakes."""

    def step(m: CycleGAN, batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        a, b = batch
        discriminators = [m.d_a, m.d_b]
        set_requires_grad(discriminators, False)
        opts["g"].zero_grad(set_to_none=True)
        fake_b, fake_a = m.g_ab(a), m.g_ba(b)
        adv = lsgan(m.d_b(fake_b), True) + lsgan(m.d_a(fake_a), True)
        cycle = F.l1_loss(m.g_ba(fake_b), a) + F.l1_loss(m.g_ab(fake_a), b)
        g_total = adv + cycle_weight * cycle
        losses = {}
        if identity_weight > 0:
            identity = F.l1_loss(m.g_ba(a), a) + F.l1_loss(m.g_ab(b), b)
            g_total = g_total + identity_weight * identity
            losses["identity_loss"] = identity.detach()
        g_total.backward()
        opts["g"].step()
        set_requires_grad(discriminators, True)

        d_losses = {}
        for name, d, real, fake in (("d_a", m.d_a, a, fake_a), ("d_b", m.d_b, b, fake_b)):
            opts[name].zero_grad(set_to_none=True)
            loss = (lsgan(d(real), True) + lsgan(d(fake.detach()), False)) / 2
            loss.backward()
            opts[name].step()
            d_losses[f"{name}_loss"] = loss.detach()
        return {"train_loss": g_total.detach(), "adversarial_loss": adv.detach(), "cycle_loss": cycle.detach(),
                **losses, **d_losses}

    return step


def make_optimizers(m: CycleGAN, lr: float, beta1: float) -> Optimizers:
    betas = (beta1, 0.999)
    return Optimizers(
        g=torch.optim.Adam([*m.g_ab.parameters(), *m.g_ba.parameters()], lr=lr, betas=betas),
        d_a=torch.optim.Adam(m.d_a.parameters(), lr=lr, betas=betas),
        d_b=torch.optim.Adam(m.d_b.parameters(), lr=lr, betas=betas),
    )


# --------------------------------------------------------------------------- held-out measures


@torch.no_grad()
def translate(g: nn.Module, x: torch.Tensor, device, chunk: int = EVAL_CHUNK) -> torch.Tensor:
    from labflow.nets.adversarial import in_chunks

    return in_chunks(g, x, device, chunk)


def l1(x: torch.Tensor, y: torch.Tensor) -> float:
    return float((x - y).abs().mean())


def held_out_measures(m: CycleGAN, a: torch.Tensor, b: torch.Tensor, device) -> dict[str, float]:
    """Cycle, identity and change L1 on test images of both domains (pixels in [-1, 1]), in eval mode."""
    from labflow.nets.common import evaluating

    with evaluating(m):
        fake_b, fake_a = translate(m.g_ab, a, device), translate(m.g_ba, b, device)
        return {
            "test_cycle_l1_aba": l1(translate(m.g_ba, fake_b, device), a),
            "test_cycle_l1_bab": l1(translate(m.g_ab, fake_a, device), b),
            "test_identity_l1": (l1(translate(m.g_ba, a, device), a) + l1(translate(m.g_ab, b, device), b)) / 2,
            "test_change_l1": (l1(fake_b, a) + l1(fake_a, b)) / 2,
        }


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back).

    The held-out L1 measures the train stage logs (``held_out_measures``, on the model's device);
    the domain classifier's target shares are the evaluate stage's, not a run's."""
    data, _ = load_processed(ctx.processed_dir)
    return held_out_measures(model, data["a_test"], data["b_test"], next(model.parameters()).device)


# --------------------------------------------------------------------------- train


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    t, v = ctx.cfg.train, ctx.variant_cfg(variant)
    base.small_model_threads(ctx)  # 28 px maps: one thread is faster on a busy CPU
    data, meta = load_processed(ctx.processed_dir)
    device = ctx.device
    info = model_info(ctx, meta)
    model = seeded(lambda: build_cyclegan(**info), ctx.seed).to(device)
    opts = make_optimizers(model, t.lr, t.beta1)
    batches = UnpairedBatches(data["a_train"], data["b_train"], batch_size=t.batch_size, seed=ctx.seed, device=device)
    shown_a, shown_b = data["a_test"][:t.show].to(device), data["b_test"][:t.show].to(device)

    snapshots = EpochSnapshots(lambda m: render_cycles(m, shown_a, shown_b))

    def evaluate(m):
        return held_out_measures(m, data["a_test"], data["b_test"], device)

    def final_metrics(m, result):
        last = result.history[-1]
        return evaluate(m) | {k: last[k] for k in last if k.endswith("_loss")} | {
            "parameters_g": count_parameters(m.g_ab) + count_parameters(m.g_ba),
            "parameters_d": count_parameters(m.d_a) + count_parameters(m.d_b)}

    def figures(m, _result):
        epochs = snapshots.images()
        last_epoch, last = epochs[-1]
        fake_b, back_a, fake_a, back_b = split_rendering(last, len(shown_a), len(shown_b))
        return {
            "translations_by_epoch": _by_epoch(epochs, len(shown_a), meta["domains"], variant),
            "a_to_b_to_a": _cycle_grid(shown_a.cpu(), fake_b, back_a, meta["domains"],
                                       f"{variant}, epoch {last_epoch}: test {meta['domains'][0]} -> "
                                       f"{meta['domains'][1]} -> back"),
            "b_to_a_to_b": _cycle_grid(shown_b.cpu(), fake_a, back_b, meta["domains"][::-1],
                                       f"{variant}, epoch {last_epoch}: test {meta['domains'][1]} -> "
                                       f"{meta['domains'][0]} -> back"),
        }

    return base.train_variant(
        ctx, variant, model=model, optimizer=opts, batches=batches,
        step_fn=cycle_step(opts, t.cycle_weight, v.identity_weight),
        epochs=t.epochs, evaluate=evaluate, final_metrics=final_metrics, figures=figures, callbacks=(snapshots,),
        run_params={"identity_weight": v.identity_weight, "cycle_weight": t.cycle_weight, "lr": t.lr,
                    "beta1": t.beta1, "batch_size": t.batch_size, "epochs": t.epochs, "dataset": meta["dataset"],
                    "domains": " -> ".join(meta["domains"]), **{k: v for k, v in info.items()},
                    "parameters_g": count_parameters(model.g_ab) + count_parameters(model.g_ba)},
        model_info=info,
    )


def render_cycles(m, shown_a: torch.Tensor, shown_b: torch.Tensor) -> torch.Tensor:
    """One epoch's snapshot: A->B, A->B->A, B->A, B->A->B of the shown test images, in one tensor."""
    fake_b, fake_a = m.g_ab(shown_a), m.g_ba(shown_b)
    return torch.cat([fake_b, m.g_ba(fake_b), fake_a, m.g_ab(fake_a)])


def split_rendering(images: torch.Tensor, n_a: int, n_b: int):
    """The four parts of ``render_cycles``' tensor: A->B, A->B->A, B->A, B->A->B.
    ``n_a`` and ``n_b`` are the shown test images per domain: ``show`` or fewer where a test split is smaller."""
    return torch.split(images, [n_a, n_a, n_b, n_b])


def _cycle_grid(real: torch.Tensor, fake: torch.Tensor, back: torch.Tensor, domains, title: str):
    """Three rows: real images of one domain, their translations, and the translations translated back."""
    from labflow.plots import figures as figs

    images = np.concatenate([displayable(real), displayable(fake), displayable(back)])
    k = len(real)
    titles = [f"real {domains[0]}" if i == 0 else "" for i in range(k)] + \
             [f"-> {domains[1]}" if i == 0 else "" for i in range(k)] + ["-> back" if i == 0 else "" for i in range(k)]
    return figs.image_grid(images, titles, value_range=(0, 1), cols=k, title=title)


def _by_epoch(epochs: list[tuple[int, torch.Tensor]], k: int, domains, variant: str):
    """Each epoch's translation of the same test images of domain A (row per epoch)."""
    from labflow.nets.adversarial import snapshots_figure

    return snapshots_figure([(e, x[:k]) for e, x in epochs], per_row=k, max_rows=10,
                            title=f"{variant}: the same test {domains[0]} images translated to {domains[1]}, per epoch")


# --------------------------------------------------------------------------- evaluate


def domain_classifier(channels: int, image_size: int, width: int) -> nn.Sequential:
    """A small all-convolutional classifier of the two domains: stride-2 3x3 convolutions (batch norm,
    ReLU; channels doubling up to 16 x ``width``) until the map is 4 px or less, global average pool, linear."""
    layers: list[nn.Module] = []
    c_in, c_out, side = channels, width, image_size
    while side > 4:
        layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
        c_in, c_out, side = c_out, min(2 * c_out, 16 * width), (side + 1) // 2
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, 2))


def train_domain_judge(ctx: base.LabContext, data: dict, device) -> nn.Module:
    from labflow.nets.adversarial import train_classifier

    j = ctx.cfg.judge
    x = torch.cat([data["a_train"], data["b_train"]])
    y = torch.cat([torch.zeros(len(data["a_train"])), torch.ones(len(data["b_train"]))]).long()
    net = seeded(lambda: domain_classifier(x.shape[1], x.shape[-1], j.channels), ctx.seed)
    return train_classifier(net, x, y, epochs=j.epochs, batch_size=j.batch_size, lr=j.lr, seed=ctx.seed,
                            device=device, desc="lab21/domain judge", progress=ctx.progress)


def share_in_domain(judge: nn.Module, x: torch.Tensor, domain: int, device) -> float:
    """The share of images ``judge`` assigns to ``domain`` (0: A, 1: B)."""
    with torch.no_grad():
        predicted = translate(judge, x, device).argmax(1)
    return float((predicted == domain).float().mean())


def evaluate(ctx: base.LabContext) -> None:
    from labflow.plots import figures as figs

    results = base.variant_results(ctx)
    data, meta = load_processed(ctx.processed_dir)
    device = ctx.device
    base.small_model_threads(ctx)
    dom_a, dom_b = meta["domains"]
    a, b = data["a_test"], data["b_test"]
    judge = train_domain_judge(ctx, data, device).eval()
    own = {"a": share_in_domain(judge, a, 0, device), "b": share_in_domain(judge, b, 1, device)}
    rows = [
        {"variant": "real test images (the judge's accuracy)", "identity_weight": "-",
         "a_to_b_target_share": own["b"], "b_to_a_target_share": own["a"], "target_share": (own["a"] + own["b"]) / 2},
        {"variant": "no translation (input as is)", "identity_weight": "-",
         "a_to_b_target_share": 1 - own["a"], "b_to_a_target_share": 1 - own["b"],
         "target_share": (2 - own["a"] - own["b"]) / 2},
    ]
    translated = {}
    for variant, r in results.items():
        for seed, run in r["seeds"].items():  # every training seed's generators, for the seed bands
            model = load_cyclegan(ctx.model_dir(variant, seed) / "model.pt").to(device)
            fake_b, fake_a = translate(model.g_ab, a, device), translate(model.g_ba, b, device)
            shares = {"a_to_b_target_share": share_in_domain(judge, fake_b, 1, device),
                      "b_to_a_target_share": share_in_domain(judge, fake_a, 0, device)}
            shares["target_share"] = (shares["a_to_b_target_share"] + shares["b_to_a_target_share"]) / 2
            run["metrics"].update(shares)
            if seed == ctx.params.seed:
                translated[variant] = (fake_b, translate(model.g_ba, fake_b, device))
        m = r["metrics"] = r["seeds"][ctx.params.seed]["metrics"]
        rows.append({"variant": variant, "identity_weight": ctx.cfg.variants[variant].identity_weight,
                     **{k: m[k] for k in ("a_to_b_target_share", "b_to_a_target_share", "target_share")},
                     "test_cycle_l1_aba": m["test_cycle_l1_aba"], "test_cycle_l1_bab": m["test_cycle_l1_bab"],
                     "test_identity_l1": m["test_identity_l1"], "test_change_l1": m["test_change_l1"],
                     "train_seconds": m["train_seconds"]})
    summary = {"judge_test_acc": (own["a"] * len(a) + own["b"] * len(b)) / (len(a) + len(b)),
               "test_images": {dom_a: len(a), dom_b: len(b)}}
    figures = {
        "target_share": figs.grouped_bars(
            {f"{dom_a} -> {dom_b}": {r["variant"]: r["a_to_b_target_share"] for r in rows},
             f"{dom_b} -> {dom_a}": {r["variant"]: r["b_to_a_target_share"] for r in rows}},
            ylabel="share the domain classifier puts in the target domain", fmt="{:.2f}",
            title="translated test images judged by a domain classifier"),
        "cycle_and_identity_l1": figs.panels(
            {"epoch (cycle A->B->A)": base.series(results, "epoch", "test_cycle_l1_aba"),
             "epoch (identity)": base.series(results, "epoch", "test_identity_l1"),
             "epoch (change by translation)": base.series(results, "epoch", "test_change_l1")},
            xlabel="epoch", ylabel="mean |difference| on test images (pixels in [-1, 1])",
            title="held-out L1: cycle reconstruction, identity, and how much a translation changes its input"),
        "training_losses": figs.panels(
            {"epoch (cycle loss)": base.series(results, "epoch", "cycle_loss"),
             "epoch (generators' adversarial loss)": base.series(results, "epoch", "adversarial_loss"),
             "epoch (D_B loss)": base.series(results, "epoch", "d_b_loss")},
            xlabel="epoch", ylabel="mean loss of the epoch", title="training losses per epoch"),
        "a_to_b_to_a": _variants_grid(a[:8], translated, dom_a, dom_b),
    }
    base.publish_comparison(ctx, results, table=rows, figures=figures, summary=summary)


def _variants_grid(real: torch.Tensor, translated: dict, dom_a: str, dom_b: str):
    """The same test images through every variant: real, translated, translated back."""
    from labflow.plots import figures as figs

    k = len(real)
    rows = [(f"real {dom_a}", real)]
    for variant, (fake, back) in translated.items():
        rows += [(f"{variant}: -> {dom_b}", fake[:k]), (f"{variant}: -> back", back[:k])]
    images = np.concatenate([displayable(x) for _, x in rows])
    titles = [name if i == 0 else "" for name, x in rows for i in range(len(x))]
    return figs.image_grid(images, titles, value_range=(0, 1), cols=k, title=f"{dom_a} -> {dom_b} -> {dom_a} on test images, per variant")
