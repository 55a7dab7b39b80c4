"""Lab 13: transfer learning. A ResNet18 trained on one task, moved to another.

Source and target (quick): near transfer inside Fashion-MNIST. The preprocess stage trains the
source, a ResNet18 (lab 10's quick width) on five classes (T-shirt, trouser, pullover, dress,
coat: ``backbone.pretrain``), and prepares the target, the other five (sandal, shirt, sneaker, bag,
ankle boot: ``data.classes``) with a couple of hundred labels, where a head start matters. The
source never sees a target class (the config refuses an overlap). The source plays the part the
downloaded ImageNet weights play in the full profile (torchvision's ResNet18 to the course's five
flower classes): it is trained once per data seed (``seed``), before and apart from the compared
variants, which all start from it. An earlier design moved lab 10's ResNet18 (trained on all ten
clothes classes) to handwritten digits: far transfer from a weak source, and the lesson reversed
(frozen 38%, partial 56%, scratch 75%; README).

Variants (params.yaml), all with the same architecture, seed, data, batches and epoch budget:

- ``scratch``: the same net with seeded random weights, every layer trained;
- ``frozen``: the source backbone frozen, only the new head trained (feature extraction);
- ``partial``: phase 1 trains the head only (``warmup_epochs``), phase 2 also unfreezes the
  last stages (layer3, layer4) at the backbone's lower learning rate;
- ``finetune_all``: the source weights, every layer trained from the start: scratch with only
  the initial weights changed, the cleanest measure of what the source weights are worth.

The budget is counted in epochs over the same training batches: every variant runs
``train.epochs`` epochs in one training loop, so the same number of updates; ``partial``'s
warm-up epochs are part of them. Every variant starts from the same new head (built right after
seeding; the pretrained ones then load the source backbone) and trains it at ``train.lr``; trained
backbone stages use ``train.backbone_lr`` (10x lower, as in the course), from scratch too.

The course scored "both phases" after fine-tuning, so both read 92.01%: the model it tested
as "after the frozen phase" was already fine-tuned. Here the test set is scored when each phase
ends (``phase1_test_acc``, ``phase2_test_acc``) and the validation set every epoch. Frozen means
frozen: frozen stages stay in eval mode, so their batch-norm statistics do not drift to the new
data either (the course's frozen layers kept updating them).

Frozen stages are computed once: the stages before the first one a variant ever trains run over
the images once (``feature_seconds``) and training feeds their outputs to the rest, identical to
running the whole net every step (they are fixed and in eval mode) and the reason feature
extraction trains fast. ``train_seconds`` is the training loop; the table shows both.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from labflow.train.callbacks import load_weights
from labflow.frame import paths
from labflow.frame.config import RESNET_STAGES
from labflow.frame import base
from labflow.prep.images import prepare_image_splits
from labflow.compare.metrics import classification_metrics, predict
from labflow.prep.tensors import load_processed
from labflow.nets.common import count_parameters, seeded
from labflow.train import TensorBatches, fit
from labflow.train.callbacks import Callback

LAB_ID = "lab13"
TITLE = "Transfer learning: from scratch vs frozen backbone vs partly unfrozen"
DISTRIBUTED = False
DISTRIBUTED_WHY = (
    "its loss runs a frozen backbone's cached features through the head it unfreezes in phases, "
    "not through the model DistributedDataParallel wraps"
)
HEADLINE = ("test_acc",)  # what seed bands and `labflow exp` report
DATASETS = ("fashion_mnist", "flowers", "resnet18_imagenet")
SOURCE_FILE, SOURCE_REPORT = "source_backbone.pt", "source.json"  # in the processed data folder
HEAD = "head"
PIECES = (*RESNET_STAGES, HEAD)
IMAGENET_STATS = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])  # what torchvision's ImageNet weights expect
EVAL_CHUNK = 256


# --------------------------------------------------------------------------- data


def preprocess(ctx: base.LabContext) -> dict:
    # ImageNet weights expect ImageNet's input normalisation; the pretrained source was trained on
    # standardised images, so the target is standardised with its own training statistics.
    folder = ctx.processed_dir
    if ctx.cfg.backbone.source == "pretrain":
        report = train_source(ctx)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SOURCE_REPORT).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    stats = IMAGENET_STATS if ctx.cfg.backbone.source == "imagenet" else None
    classes = list(ctx.cfg.data.classes) if ctx.cfg.data.classes is not None else None
    return prepare_image_splits(LAB_ID, ctx.cfg.data.dataset, ctx.cfg.data, ctx.seed, stats=stats, classes=classes)


def train_source(ctx: base.LabContext) -> dict:
    """The source backbone: a seeded ResNet18 trained on ``backbone.pretrain.classes`` only, saved
    in the processed data folder (``{"state_dict", "info"}``, as lab 10 saves its models).

    Returns what it is and how good it is on its own task (its classes' test images)."""
    from labflow.data import load_images
    from labflow.nets.architectures import build
    from labflow.prep.images import select_classes, stratified_take

    pt = ctx.cfg.backbone.pretrain
    data = select_classes(load_images(paths.raw_dir(ctx.cfg.data.dataset)), list(pt.classes))
    if data.x_train.ndim != 3:
        raise ValueError(f"backbone.pretrain trains on grey images; {ctx.cfg.data.dataset} has colour channels")
    pick = stratified_take(data.y_train, pt.train_size, np.random.default_rng(ctx.seed))
    x = torch.from_numpy(data.x_train[pick]).float().div_(255.0).unsqueeze(1)
    mean, std = x.mean(), x.std()
    x = (x - mean) / std
    x_test = (torch.from_numpy(data.x_test).float().div_(255.0).unsqueeze(1) - mean) / std
    y, y_test = torch.from_numpy(data.y_train[pick]).long(), torch.from_numpy(data.y_test).long()
    info = {"arch": "resnet18", "in_channels": 1, "n_classes": len(pt.classes), "width": pt.width,
            "image_size": x.shape[-1]}
    device = ctx.device
    model = seeded(lambda: build(**info), ctx.seed).to(device)
    batches = TensorBatches(x, y, batch_size=pt.batch_size, seed=ctx.seed, device=device)
    result = fit(model, torch.optim.Adam(model.parameters(), lr=pt.lr), batches,
                 lambda m, b: F.cross_entropy(m(b[0]), b[1]), epochs=pt.epochs, progress=ctx.progress,
                 desc=f"{LAB_ID}/source")
    model.cpu()
    from labflow.train.callbacks import atomic_torch_save

    atomic_torch_save({"state_dict": model.state_dict(), "info": info}, ctx.processed_dir / SOURCE_FILE)
    scores = classification_metrics(predict(model, x_test, chunk=EVAL_CHUNK), y_test, "source_test")
    return {"classes": list(data.classes), "train_images": len(pick), "epochs": pt.epochs,
            "updates": result.updates, "train_seconds": round(result.train_seconds, 3),
            "final_train_loss": result.history[-1]["train_loss"], **scores}


# --------------------------------------------------------------------------- the network


def pieces(model: nn.Module) -> dict[str, nn.Module]:
    """A torchvision ResNet's forward as named pieces, in order: stem, layer1-4, head (pool + fc).

    Running them one after the other is ``model.forward``; the pieces share the model's modules,
    so training a piece trains the model.
    """
    return {
        "stem": nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool),
        "layer1": model.layer1, "layer2": model.layer2, "layer3": model.layer3, "layer4": model.layer4,
        HEAD: nn.Sequential(model.avgpool, nn.Flatten(1), model.fc),
    }


def split(model: nn.Module, first_trained: str) -> tuple[nn.Sequential, nn.Sequential]:
    """(frozen prefix, rest): the pieces before ``first_trained`` and the pieces from it on."""
    named = list(pieces(model).items())
    cut = [name for name, _ in named].index(first_trained)
    return nn.Sequential(*[m for _, m in named[:cut]]), nn.Sequential(*[m for _, m in named[cut:]])


def source_info(ctx: base.LabContext) -> dict:
    """What the backbone is: ``{"source", "path", "build"}`` (build: architectures.build's arguments)."""
    if ctx.cfg.backbone.source == "imagenet":
        from labflow.data.datasets import load_weights as fetched_weights_file

        return {"source": "imagenet", "path": str(fetched_weights_file(paths.raw_dir("resnet18_imagenet"))),
                "build": {"arch": "resnet18_imagenet", "in_channels": 3}}
    path = ctx.processed_dir / SOURCE_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: lab 13's preprocess stage trains the source backbone; "
                                f"run `dvc repro labs/{LAB_ID}/dvc.yaml:preprocess` first")
    info = load_weights(path)["info"]
    if info.get("arch") != "resnet18":
        raise ValueError(f"{path} holds a {info.get('arch')}, not the resnet18 lab 13 transfers")
    return {"source": "pretrain", "path": str(path), "build": dict(info)}


def build_net(build: dict, n_classes: int) -> nn.Module:
    """The source architecture with a ``n_classes`` head (random weights)."""
    if build["arch"] == "resnet18_imagenet":
        from torchvision.models import resnet18

        return resnet18(weights=None, num_classes=n_classes)
    from labflow.nets.architectures import build as build_arch

    return build_arch(**{**build, "n_classes": n_classes})


def load_backbone(model: nn.Module, path: str | Path) -> None:
    """Every weight of the source model except its classifier (the target has its own head)."""
    state = load_weights(path)
    state = state.get("state_dict", state)
    backbone = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = model.load_state_dict(backbone, strict=False)
    if unexpected or set(missing) != {"fc.weight", "fc.bias"}:
        raise ValueError(f"{path} does not fit the target net: missing {missing}, unexpected {unexpected}")


def make_model(ctx: base.LabContext, info: dict, n_classes: int, in_channels: int, pretrained: bool) -> nn.Module:
    """The same seeded net for every variant (so the same head); pretrained ones load the backbone."""
    wanted = info["build"].get("in_channels")
    if wanted != in_channels:
        raise ValueError(f"the {info['source']} backbone takes {wanted}-channel images but lab13.data.dataset "
                         f"has {in_channels}; choose a data set with {wanted} channel(s)")
    model = seeded(lambda: build_net(info["build"], n_classes), ctx.seed)
    if pretrained:
        load_backbone(model, info["path"])
    return model


# --------------------------------------------------------------------------- phases


class Phases(Callback):
    """Which pieces train, phase by phase; scores the test set when phase 1 ends.

    Phase 1 trains ``phase1``; after epoch ``switch_at`` (None: never) phase 2 trains
    ``phase2``. Pieces not trained are frozen: no gradients, and eval mode (``set_modes``,
    called before every forward, since the loop puts the whole model in train mode each
    epoch). The phase and phase 1's scores travel in checkpoints, so a run resumed in
    phase 2 resumes unfrozen.
    """

    name = "phases"

    def __init__(self, model: nn.Module, phase1: Sequence[str], phase2: Sequence[str] | None,
                 switch_at: int | None, score) -> None:
        self.pieces = pieces(model)
        self.plan = {1: tuple(phase1), 2: tuple(phase2 or ())}
        self.switch_at, self.score = switch_at, score
        self.phase = 1
        self.phase1: dict[str, float] = {}
        self._apply()

    @property
    def trained(self) -> tuple[str, ...]:
        return self.plan[self.phase]

    def _apply(self) -> None:
        for name, piece in self.pieces.items():
            for p in piece.parameters():
                p.requires_grad_(name in self.trained)

    def set_modes(self) -> None:
        for name, piece in self.pieces.items():
            piece.train(name in self.trained)

    def trainable_parameters(self, phase: int) -> int:
        return sum(count_parameters(self.pieces[name]) for name in self.plan[phase])

    def on_epoch_end(self, state) -> None:
        if state.epoch == self.switch_at and self.phase == 1:
            self.phase1 = {**self.score(state.model), "epochs": state.epoch, "seconds": state.seconds}
            self.phase = 2
            self._apply()

    def state_dict(self) -> dict:
        return {"phase": self.phase, "phase1": self.phase1}

    def load_state_dict(self, state: dict) -> None:
        self.phase, self.phase1 = state["phase"], dict(state["phase1"])
        self._apply()


def plan(v) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    """(pieces trained in phase 1, in phase 2 or None) for a variant's config."""
    unfrozen = tuple(s for s in RESNET_STAGES if s in v.unfreeze)
    if v.warmup_epochs:
        return (HEAD,), (*unfrozen, HEAD)
    return (*unfrozen, HEAD), None


def make_optimizer(model: nn.Module, unfrozen: Sequence[str], lr: float, backbone_lr: float):
    """Adam over everything a variant ever trains: the head at ``lr``, unfrozen stages at ``backbone_lr``.

    One optimizer for both phases (its state is checkpointed with the run): parameters
    frozen in phase 1 have no gradient yet, and Adam skips them until phase 2.
    """
    named = pieces(model)
    groups = [{"params": list(named[HEAD].parameters()), "lr": lr}]
    backbone = [p for s in unfrozen for p in named[s].parameters()]
    if backbone:
        groups.append({"params": backbone, "lr": backbone_lr})
    return torch.optim.Adam(groups)


@torch.no_grad()
def frozen_features(prefix: nn.Module, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The frozen prefix's outputs for ``x`` (eval mode), computed once; the images if it is empty."""
    if len(prefix) == 0:
        return x
    prefix.eval()
    return torch.cat([prefix(x[i:i + EVAL_CHUNK].to(device)).cpu() for i in range(0, len(x), EVAL_CHUNK)])


# --------------------------------------------------------------------------- one variant


def _settings(ctx: base.LabContext, variant: str) -> dict:
    t, v = ctx.cfg.train, ctx.variant_cfg(variant)
    phase1, phase2 = plan(v)
    return {
        "source": ctx.cfg.backbone.source, "dataset": ctx.cfg.data.dataset, "pretrained": v.pretrained,
        "epochs": t.epochs, "batch_size": t.batch_size, "lr": t.lr,
        "backbone_lr": (v.backbone_lr or t.backbone_lr) if v.unfreeze else None,
        "warmup_epochs": v.warmup_epochs, "phase1_trains": "+".join(phase1),
        "phase2_trains": "+".join(phase2) if phase2 else "",
    }


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    t, v = ctx.cfg.train, ctx.variant_cfg(variant)
    s = _settings(ctx, variant)
    data, meta = load_processed(ctx.processed_dir)
    device = ctx.device
    # 28 px images, 16-128 channels, batches of 16: too little work per op for a second thread.
    # With another process on the other core, one thread ran the smoke variants 20x faster
    # (2.5 s vs 50 s); params.yaml `threads` still wins.
    base.small_model_threads(ctx)
    info = source_info(ctx)
    n_classes = len(meta["classes"])
    model = make_model(ctx, info, n_classes, data["x_train"].shape[1], v.pretrained).to(device)
    phase1, phase2 = plan(v)
    first = next(p for p in PIECES if p in set(phase1) | set(phase2 or ()))
    prefix, rest = split(model, first)
    started = time.perf_counter()
    feats = {k: frozen_features(prefix, data[f"x_{k}"], device) for k in ("train", "val", "test")}
    feature_seconds = time.perf_counter() - started

    def score(split_name: str):
        # The trained pieces on the frozen prefix's features: the whole model's outputs on the images.
        return lambda _m: _scores(rest, feats[split_name], data[f"y_{split_name}"], split_name)

    phases = Phases(model, phase1, phase2, v.warmup_epochs or None, score("test"))
    optimizer = make_optimizer(model, [p for p in (phase2 or phase1) if p != HEAD], t.lr, s["backbone_lr"])
    # Same n, batch size and seed as every other variant: the same batches, of images or of features.
    batches = TensorBatches(feats["train"], data["y_train"], batch_size=t.batch_size, seed=ctx.seed, device=device)

    def loss_fn(_m, batch):
        phases.set_modes()
        return F.cross_entropy(rest(batch[0]), batch[1])

    def evaluate(m):
        return score("val")(m) | {"phase": phases.phase}

    def final_metrics(m, result):
        final = score("test")(m) | score("val")(m)
        last = {**final, "epochs": result.epochs_run, "seconds": result.train_seconds}
        metrics = {**final, "phases": 2 if phase2 else 1, "feature_seconds": round(feature_seconds, 3),
                   "total_parameters": count_parameters(model)}
        by_phase = {1: phases.phase1 or last, 2: last} if phase2 else {1: last}
        for k, scores in by_phase.items():
            epochs = scores["epochs"] - (by_phase[1]["epochs"] if k == 2 else 0)
            seconds = scores["seconds"] - (by_phase[1]["seconds"] if k == 2 else 0)
            metrics |= {f"phase{k}_test_acc": scores["test_acc"], f"phase{k}_test_loss": scores["test_loss"],
                        f"phase{k}_epochs": epochs, f"phase{k}_seconds": round(seconds, 3),
                        f"phase{k}_trainable_parameters": phases.trainable_parameters(k)}
        return metrics

    return base.train_variant(
        ctx, variant, model=model, optimizer=optimizer, batches=batches, loss_fn=loss_fn,
        epochs=t.epochs, evaluate=evaluate, final_metrics=final_metrics, callbacks=(phases,),
        input_example=data["x_train"][:2],  # the batches hold the frozen prefix's features; the model takes images
        run_params=s | {"source_model": info["path"], "parameters": count_parameters(model)},
        # architectures.build's arguments, as lab 10 saves them (build_net rebuilds either source's net).
        model_info={**info["build"], "n_classes": n_classes},
    )


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back).

    The whole model on the test images; the train stage scores its trained pieces on the frozen
    prefix's features of the same images (the prefix in eval mode), through the same code."""
    data, _ = load_processed(ctx.processed_dir)
    return _scores(model, data["x_test"], data["y_test"], "test")


def _scores(model, x: torch.Tensor, y: torch.Tensor, prefix: str) -> dict[str, float]:
    return classification_metrics(predict(model, x, chunk=EVAL_CHUNK), y, prefix)


# --------------------------------------------------------------------------- the comparison


def _val_curves(results: dict, switches: dict[str, int]):
    """Validation accuracy per epoch per variant; a dashed line where a variant unfreezes."""
    from labflow.plots import figures as figs

    fig = figs.curves(base.series(results, "epoch", "val_acc"), xlabel="epoch", ylabel="validation accuracy",
                      title="validation accuracy per epoch (dashed: phase 2 starts)")
    ax = fig.axes[0]
    colours = {line.get_label(): line.get_color() for line in ax.get_lines()}
    for variant, epoch in switches.items():
        ax.axvline(epoch + 0.5, color=colours.get(variant, "grey"), linestyle="--", alpha=0.7)
    return fig


def evaluate(ctx: base.LabContext) -> None:
    from labflow.plots import figures as figs

    results = base.variant_results(ctx)
    table, switches = [], {}
    for variant, r in results.items():
        v, m = ctx.cfg.variants[variant], r["metrics"]
        s = _settings(ctx, variant)
        two = m["phases"] == 2
        if two:
            switches[variant] = int(m["phase1_epochs"])
        table.append({
            "variant": variant, "init": ctx.cfg.backbone.source if v.pretrained else "random",
            "phase1_trains": s["phase1_trains"], "phase1_epochs": m["phase1_epochs"],
            "phase1_trainable": m["phase1_trainable_parameters"], "phase1_test_acc": m["phase1_test_acc"],
            "phase2_trains": s["phase2_trains"] or "-", "phase2_epochs": m.get("phase2_epochs", "-"),
            "phase2_trainable": m.get("phase2_trainable_parameters", "-"),
            "phase2_test_acc": m.get("phase2_test_acc", "-"), "test_acc": m["test_acc"],
            "train_seconds": m["train_seconds"], "feature_seconds": m["feature_seconds"],
        })
    by_phase = {
        "phase 1, or the only phase": {r["variant"]: r["phase1_test_acc"] for r in table},
        "phase 2": {r["variant"]: r["phase2_test_acc"] for r in table if r["phase2_test_acc"] != "-"},
    }
    figures = {
        "val_accuracy": _val_curves(results, switches),
        "train_loss": figs.curves(base.series(results, "epoch", "train_loss"), xlabel="epoch",
                                  ylabel="training loss", title="training loss per epoch"),
        "test_accuracy_by_phase": figs.grouped_bars(by_phase, ylabel="test accuracy", fmt="{:.3f}",
                                                    title="test accuracy at the end of each phase"),
        "train_seconds": figs.bars({r["variant"]: r["train_seconds"] + r["feature_seconds"] for r in table},
                                   ylabel="seconds", fmt="{:.1f}",
                                   title="training time (loop + one-off frozen-feature pass)"),
    }
    best = max(table, key=lambda r: r["test_acc"])
    summary = {"best_variant": best["variant"], "best_test_acc": best["test_acc"],
               "source": ctx.cfg.backbone.source, "dataset": ctx.cfg.data.dataset}
    report = ctx.processed_dir / SOURCE_REPORT
    if report.exists():  # the pretrained source: its own task and how well it learned it
        source = json.loads(report.read_text())
        summary |= {"source_classes": ", ".join(source["classes"]), "source_test_acc": source["source_test_acc"],
                    "source_train_images": source["train_images"], "source_epochs": source["epochs"],
                    "source_train_seconds": source["train_seconds"]}
    base.publish_comparison(ctx, results, table=table, figures=figures, summary=summary)
