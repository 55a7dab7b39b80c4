"""Lab 11: filters and feature maps of a network before training (its init) and after.

The course drew the kernels and feature maps of a CNN it never trained (loading the
weights was commented out), so what it showed was random initialisation. Here the trained
networks are lab 10's (params.yaml: ResNet18 and the simple CNN; DVC dependencies
``models/lab10/<variant>/model.pt``), and each one's untrained twin is rebuilt from the same
``info`` and the same seed, which gives exactly the weights lab 10 started from
(``lab10_architectures.build_model``). Nothing is trained here.

Both networks are looked at in eval mode on lab 10's test split (the twin's batch-norm layers
hold their initial statistics, mean 0 and variance 1). Figures: the first layer's kernels,
init above trained; the feature maps of two layers (params.yaml) for a few test images; and,
per layer, the mean activation, the share of dead channels (a ReLU channel that is zero on
every position of every image looked at), the mean L2 norm of the kernels feeding it and how
far training moved them (||W_trained - W_init|| / ||W_init||). The trained net's test accuracy
is recomputed (and shown beside the one lab 10 reported).

Lab 11 has one stage, ``labs/lab11/dvc.yaml:evaluate``: its variants name the lab 10 variants it looks at
(see ``labflow.labs.READS_FROM``), and its MLflow parent run has no child runs.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from labflow.train.callbacks import load_weights
from labflow.frame import paths
from labflow.frame import base
from labflow.labs.lab10_architectures import lab as lab10_architectures
from labflow.nets.cnn import EVAL_CHUNK
from labflow.prep.images import denormalise
from labflow.compare.metrics import classification_metrics, predict
from labflow.prep.tensors import load_processed
from labflow.tracking import dvc_files

LAB_ID = "lab11"
TITLE = "Filters and feature maps, before vs after training (lab 10's networks)"
DATASETS = ("fashion_mnist", "cifar10")
SOURCE_LAB = "lab10"


class _ReadsSourceLab(base.LabContext):
    """Lab 11's context, on lab 10's processed data (its runs are tagged with that data's hash)."""

    @property
    def processed_dir(self):
        return paths.processed_dir(SOURCE_LAB)


def trained_and_init(variant: str, seed: int) -> tuple[nn.Module, nn.Module, dict]:
    """Lab 10's trained network and its untrained twin (same info, same seed: lab 10's init), in eval mode."""
    from labflow.nets.architectures import build

    saved = load_weights(paths.model_dir(SOURCE_LAB, variant, seed) / "model.pt")
    info = saved["info"]
    trained = build(**info)
    trained.load_state_dict(saved["state_dict"])
    init = lab10_architectures.build_model(info, seed)
    return trained.eval(), init.eval(), info


# --------------------------------------------------------------------------- what is measured


def stat_points(model: nn.Module, arch: str) -> dict[str, tuple[nn.Module, list[nn.Module]]]:
    """Layer name -> (the module whose output is a post-ReLU activation, the layers whose kernels feed it)."""
    if arch == "resnet18":
        points = {"stem": (model.relu, [model.conv1])}  # model.relu runs once: after conv1 + bn1
        for k in range(1, 5):
            block = getattr(model, f"layer{k}")
            points[f"layer{k}"] = (block, [m for m in block.modules() if isinstance(m, nn.Conv2d)])
        return points
    if arch == "simple_cnn":
        points, feeding, convs, fcs = {}, [], 0, 0
        for m in model:
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                feeding = [m]
                kind = "conv" if isinstance(m, nn.Conv2d) else "fc"
                convs, fcs = convs + (kind == "conv"), fcs + (kind == "fc")
                name = f"conv{convs}" if kind == "conv" else f"fc{fcs}"
            elif isinstance(m, nn.ReLU):
                points[name] = (m, feeding)
        return points
    # VGG: the last ReLU before each max-pool closes a block; its convolutions feed it.
    points, group, last_relu = {}, [], None
    for m in model[1].features:
        if isinstance(m, nn.Conv2d):
            group.append(m)
        elif isinstance(m, nn.ReLU):
            last_relu = m
        elif isinstance(m, nn.MaxPool2d):
            points[f"block{len(points) + 1}"] = (last_relu, group)
            group = []
    return points


def kernel_norm(layers: list[nn.Module]) -> float:
    """Mean L2 norm of one output filter's weights, over every filter of ``layers``."""
    norms = torch.cat([m.weight.detach().flatten(1).norm(dim=1) for m in layers])
    return norms.mean().item()


def kernel_change(init_layers: list[nn.Module], trained_layers: list[nn.Module]) -> float:
    """How far training moved a layer's kernels: ||W_trained - W_init|| / ||W_init|| (Frobenius, all kernels)."""
    moved = sum((t.weight.detach() - i.weight.detach()).pow(2).sum() for i, t in zip(init_layers, trained_layers))
    start = sum(i.weight.detach().pow(2).sum() for i in init_layers)
    return (moved / start).sqrt().item()


@torch.no_grad()
def activation_stats(model: nn.Module, arch: str, x: torch.Tensor) -> list[dict]:
    """Per layer: mean activation, share of zeros, share of dead channels, kernel norm, over images ``x``.

    Statistics are reduced inside the hooks (in-place ReLUs may overwrite a kept tensor later).
    """
    points = stat_points(model, arch)
    acc = {name: {"sum": 0.0, "zeros": 0, "count": 0, "max": None} for name in points}
    handles = []

    def hook_for(name):
        def hook(_module, _inputs, out):
            a, s = out.detach(), acc[name]
            s["sum"] += a.sum().item()
            s["zeros"] += (a == 0).sum().item()
            s["count"] += a.numel()
            channel_max = a.transpose(0, 1).flatten(1).amax(dim=1)
            s["max"] = channel_max if s["max"] is None else torch.maximum(s["max"], channel_max)
        return hook

    for name, (module, _) in points.items():
        handles.append(module.register_forward_hook(hook_for(name)))
    try:
        predict(model, x, chunk=EVAL_CHUNK)
    finally:
        for h in handles:
            h.remove()
    rows = []
    for name, (_, feeding) in points.items():
        s = acc[name]
        rows.append({
            "layer": name,
            "mean_activation": s["sum"] / s["count"],
            "zero_share": s["zeros"] / s["count"],
            "dead_channels": (s["max"] <= 0).float().mean().item(),
            "channels": int(s["max"].numel()),
            "kernel_norm": kernel_norm(feeding),
        })
    return rows


@torch.no_grad()
def feature_maps(model: nn.Module, arch: str, layers: tuple[str, ...], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The outputs of the named layers (``architectures.feature_layers``) for images ``x``."""
    from labflow.nets.architectures import feature_layers

    named = feature_layers(model, arch)
    unknown = [name for name in layers if name not in named]
    if unknown:
        raise KeyError(f"lab11: '{unknown[0]}' is not a layer of {arch}; choose from {', '.join(named)} "
                       f"(params.yaml lab11.variants.<variant>.layers)")
    maps, handles = {}, []
    for name in layers:
        handles.append(named[name].register_forward_hook(
            lambda _m, _i, out, name=name: maps.__setitem__(name, out.detach().cpu().clone())))
    try:
        model(x.to(next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
    return maps


def first_kernels(model: nn.Module, arch: str) -> torch.Tensor:
    from labflow.nets.architectures import feature_layers

    return feature_layers(model, arch)["conv1"].weight.detach().cpu().clone()


def show_images(x: torch.Tensor, y: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of ``n`` test images of different classes (the first of each class, in order): lab 09's choice."""
    from labflow.labs.lab09_cnn_basics.lab import feature_map_samples

    return torch.tensor(feature_map_samples(y, n))


# --------------------------------------------------------------------------- figures


def _kernel_images(kernels: torch.Tensor) -> np.ndarray:
    """(O, C, k, k) kernels as RGB tiles (O, k, k, 3), each to its own scale: one input channel in a
    diverging map (red > 0 > blue, white = 0), three channels as colours scaled to [0, 1] (the course's way)."""
    from matplotlib import colormaps

    if kernels.shape[1] == 1:
        k = kernels[:, 0]
        lim = k.flatten(1).abs().amax(1).clamp_min(1e-12).view(-1, 1, 1)
        return colormaps["RdBu_r"](((k / lim + 1) / 2).numpy())[..., :3]
    k = kernels[:, :3]
    lo = k.flatten(1).amin(1).view(-1, 1, 1, 1)
    hi = k.flatten(1).amax(1).view(-1, 1, 1, 1)
    return ((k - lo) / (hi - lo).clamp_min(1e-12)).permute(0, 2, 3, 1).numpy()


def _map_tile(a: np.ndarray) -> np.ndarray:
    """A 2-D feature map as an RGB tile in viridis, scaled to its own range (as the course drew them)."""
    from matplotlib import colormaps

    span = a.max() - a.min()
    return colormaps["viridis"]((a - a.min()) / span if span > 0 else np.zeros_like(a))[..., :3]


def _image_tile(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, axis=-1) if img.ndim == 2 else img


def mosaic(grid: list[list[np.ndarray]], size: int, pad: int = 2) -> np.ndarray:
    """RGB tiles (h, w, 3) laid out row by row on a white sheet, each resized to ``size`` px (nearest)."""
    rows, cols = len(grid), max(len(r) for r in grid)
    sheet = np.ones((rows * (size + pad) + pad, cols * (size + pad) + pad, 3))
    for i, row in enumerate(grid):
        for j, tile in enumerate(row):
            h, w = tile.shape[:2]
            resized = tile[np.arange(size) * h // size][:, np.arange(size) * w // size]
            top, left = pad + i * (size + pad), pad + j * (size + pad)
            sheet[top:top + size, left:left + size] = resized
    return sheet


def _mosaic_figure(sheet: np.ndarray, size: int, pad: int, col_labels, row_labels, title: str, inches: float):
    """One image (fast to draw, unlike one axes per tile) with a label per tile row and column."""
    import matplotlib.pyplot as plt

    height, width = sheet.shape[:2]
    fig, ax = plt.subplots(figsize=(inches * width / size / 1.1 + 1.2, inches * height / size / 1.1 + 0.8))
    ax.imshow(sheet, interpolation="nearest")
    centre = lambda k: pad + k * (size + pad) + size / 2  # noqa: E731
    ax.set_xticks([centre(k) for k in range(len(col_labels))], col_labels, fontsize=8)
    ax.set_yticks([centre(k) for k in range(len(row_labels))], row_labels, fontsize=8)
    ax.tick_params(length=0, labeltop=True, labelbottom=False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def kernels_figure(init: torch.Tensor, trained: torch.Tensor, n: int, variant: str):
    """The first ``n`` first-layer kernels: init, trained, and what training added (trained - init).

    Each tile is drawn to its own scale, so a kernel that moved 10% looks the same before and
    after; the third row shows the change itself, which is what training learned."""
    n, size, pad = min(n, len(init)), 30, 3
    change = trained[:n] - init[:n]
    sheet = mosaic([list(_kernel_images(init[:n])), list(_kernel_images(trained[:n])), list(_kernel_images(change))],
                   size, pad)
    colours = "red > 0 > blue" if init.shape[1] == 1 else "RGB"
    moved = float(change.flatten().norm() / init[:n].flatten().norm().clamp_min(1e-12))
    return _mosaic_figure(sheet, size, pad, [str(k) for k in range(n)], ["init", "trained", "trained - init"],
                          f"{variant}: first-layer kernels ({colours}, each to its own scale); "
                          f"training moved them {moved:.0%}", inches=0.7)


def feature_maps_figure(inputs: np.ndarray, init_maps: torch.Tensor, trained_maps: torch.Tensor,
                        channels: int, variant: str, layer: str):
    """Rows: each image, init then trained; columns: the input, then the first ``channels`` maps."""
    channels = min(channels, init_maps.shape[1])
    size = max(inputs.shape[1], init_maps.shape[-1])
    grid, labels = [], []
    for i in range(len(inputs)):
        for kind, maps in (("init", init_maps), ("trained", trained_maps)):
            grid.append([_image_tile(inputs[i])] + [_map_tile(maps[i, c].numpy()) for c in range(channels)])
            labels.append(f"image {i}: {kind}")
    side = init_maps.shape[-1]
    return _mosaic_figure(mosaic(grid, size, 2), size, 2, ["input"] + [f"ch {c}" for c in range(channels)], labels,
                          f"{variant}: feature maps of {layer} ({side}x{side} px), init vs trained (each to its own scale)",
                          inches=1.0)


def layer_stats_figure(rows: list[dict], variant: str):
    """Mean activation, dead-channel share and kernel norm per layer, init beside trained; how far kernels moved."""
    import matplotlib.pyplot as plt

    mine = [r for r in rows if r["variant"] == variant]
    layers = [r["layer"] for r in mine]
    x = np.arange(len(layers))
    fig, axes = plt.subplots(1, 4, figsize=(19, 3.8))
    for ax, (key, label) in zip(axes, (("mean_activation", "mean activation"), ("dead_channels", "share of dead channels"),
                                       ("kernel_norm", "mean kernel L2 norm"))):
        values = [r[f"{key}_init"] for r in mine] + [r[f"{key}_trained"] for r in mine]
        ax.bar(x - 0.2, values[:len(mine)], 0.4, label="init")
        ax.bar(x + 0.2, values[len(mine):], 0.4, label="trained")
        ax.set_ylim(0, max(max(values) * 1.15, 0.05))  # all non-negative; an all-zero panel still reads as 0
        ax.set_xticks(x, layers)
        ax.set(ylabel=label, title=label)
        ax.grid(axis="y", alpha=0.3)
        ax.legend()
    axes[3].bar(x, [r["kernel_change"] for r in mine], 0.5, color="grey")
    axes[3].set_xticks(x, layers)
    axes[3].set(ylabel="||W_trained - W_init|| / ||W_init||", title="how far training moved the kernels")
    axes[3].grid(axis="y", alpha=0.3)
    fig.suptitle(f"{variant}: per layer, on the test images, init vs trained")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- the stage


def look_at(ctx: base.LabContext, variant: str, data: dict, meta: dict) -> tuple[dict, list[dict], dict]:
    """One lab 10 network: its metrics, per-layer rows and figures."""
    show, layers = ctx.cfg.show, ctx.cfg.variants[variant].layers
    trained, init, info = trained_and_init(variant, ctx.seed)
    trained, init = trained.to(ctx.device), init.to(ctx.device)  # the full profile's networks are large
    arch, x_test, y_test = info["arch"], data["x_test"], data["y_test"]
    metrics = (classification_metrics(predict(trained, x_test, chunk=EVAL_CHUNK), y_test, "test")
               | classification_metrics(predict(init, x_test, chunk=EVAL_CHUNK), y_test, "init_test"))
    reported = dvc_files.read_metrics(paths.results_dir(SOURCE_LAB, variant, ctx.seed) / "metrics.json")
    metrics["lab10_test_acc"] = reported["test_acc"]

    x_stats = x_test[: show.stats_images]
    before, after = activation_stats(init, arch, x_stats), activation_stats(trained, arch, x_stats)
    feeding_init, feeding_trained = stat_points(init, arch), stat_points(trained, arch)
    rows = []
    for b, a in zip(before, after):
        row = {"variant": variant, "layer": b["layer"], "channels": b["channels"]}
        for key in ("mean_activation", "zero_share", "dead_channels", "kernel_norm"):
            row[f"{key}_init"], row[f"{key}_trained"] = b[key], a[key]
        row["kernel_change"] = kernel_change(feeding_init[b["layer"]][1], feeding_trained[b["layer"]][1])
        rows.append(row)
    for phase, stats in (("init", before), ("trained", after)):
        dead = sum(s["dead_channels"] * s["channels"] for s in stats) / sum(s["channels"] for s in stats)
        metrics[f"dead_channel_share_{phase}"] = dead

    picked = show_images(x_test, y_test, show.images)
    inputs = denormalise(x_test[picked], meta).clamp(0, 1)
    inputs = inputs[:, 0].numpy() if inputs.shape[1] == 1 else inputs.permute(0, 2, 3, 1).numpy()
    maps_init, maps_trained = feature_maps(init, arch, layers, x_test[picked]), feature_maps(trained, arch, layers, x_test[picked])
    figures = {f"{variant}_kernels": kernels_figure(first_kernels(init, arch), first_kernels(trained, arch), show.kernels, variant)}
    for layer in layers:
        figures[f"{variant}_feature_maps_{layer}"] = feature_maps_figure(
            inputs, maps_init[layer], maps_trained[layer], show.channels, variant, layer)
    figures[f"{variant}_layer_stats"] = layer_stats_figure(rows, variant)
    return metrics, rows, figures


def evaluate(ctx: base.LabContext) -> None:
    from labflow.plots import figures as figs

    ctx = _ReadsSourceLab(ctx.lab_id, ctx.params, ctx.progress)
    data, meta = load_processed(ctx.processed_dir)
    results, table, figures = {}, [], {}
    for variant in ctx.cfg.variants:
        metrics, rows, variant_figures = look_at(ctx, variant, data, meta)
        results[variant] = {"metrics": metrics, "run_id": None}
        table += rows
        figures.update(variant_figures)
    figures["test_accuracy"] = figs.grouped_bars(
        {"init (lab 10's seed)": {v: r["metrics"]["init_test_acc"] for v, r in results.items()},
         "trained (recomputed)": {v: r["metrics"]["test_acc"] for v, r in results.items()},
         "trained (lab 10 reported)": {v: r["metrics"]["lab10_test_acc"] for v, r in results.items()}},
        ylabel="test accuracy", title=f"test accuracy on lab 10's test split ({meta['dataset']})", fmt="{:.3f}")
    base.publish_comparison(ctx, results, table=table, figures=figures)
