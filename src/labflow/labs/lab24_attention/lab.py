"""Lab 24: scaled dot-product attention vs an RNN summary, on a task where the weights mean something.

Task: associative recall (:mod:`labflow.prep.recall`), a synthetic task, not the verse pairs of
labs 16 and 25. A memory of 4-12 (key, value) pairs, then four keys of it to look up; the answer
is the value stored under each. Read it as the course frames attention in translation: the memory
is a source sentence of (key, value) "words", each query is a target step that must attend to the
one source word it needs, and the RNN reader is the vanilla seq2seq encoder that squeezes the
sentence into its last hidden state (drawn as a heatmap beside the attention maps, as the course
draws it). The slot that
holds the answer is known, so an attention heatmap can be checked against it, and a reader
that must squeeze the whole memory into one vector meets a real capacity problem.

Readers (:mod:`labflow.nets.attention`): both embed the same inputs with the same tables
(built first, from the same seed: identical initial embeddings), end in the same head, train
on the same batches with the same optimizer, learning rate and epochs. ``attention`` scores
every slot against the query with ``softmax(Q K^T / sqrt(d)) V`` (written out, padding
masked; a test checks it against torch's ``scaled_dot_product_attention``); ``rnn`` reads the
slots in order with a GRU, packed so padding never enters, and answers from its last hidden
state.

Metrics on held-out examples: accuracy per query and per example (all queries right), the
share of attention mass on the right slot and how often the largest weight is on it, each
beside its chance level (a guess: 1 / values; uniform attention: 1 / pairs); the same for
the untrained attention model (same seeded weights), which is what the course drew.

The course's bugs fixed: it drew the attention weights of an untrained model (random
numbers with a colour bar); its vocabulary came from a Python set (word ids change from run
to run) and padded with id 0, which was also a real word, and nothing masked the padding; its
"RNN comparison" showed a hidden state of another untrained model, with no task for either to
be right or wrong about.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from labflow.train.callbacks import load_weights
from labflow.frame import base
from labflow.nets.attention import AttentionReader, RnnSummaryReader
from labflow.prep.recall import FIELDS, RecallSpec, generate, key_label, value_label
from labflow.prep.tensors import load_processed, save_processed
from labflow.nets.common import count_parameters, evaluating, seeded
from labflow.train import TensorBatches
from labflow.train.callbacks import LossTrace

LAB_ID = "lab24"
TITLE = "Attention: scaled dot-product attention vs an RNN summary (associative recall)"
DATASETS = ()  # synthetic: drawn from params.yaml's seed in preprocess, nothing to download
EVAL_CHUNK = 1024
TRACE_POINTS_PER_EPOCH = 10  # training-loss points per epoch for the per-update curve


def describe_data(cfg) -> str:
    """For ``labflow list``: this lab's data is generated, not downloaded."""
    d = cfg.data
    return (f"synthetic associative recall ({d.min_pairs}-{d.max_pairs} pairs of {d.keys} keys x {d.values} values, "
            f"{d.queries} queries; {d.train_size}/{d.val_size}/{d.test_size} examples), drawn from the seed")


def task_spec(cfg) -> RecallSpec:
    d = cfg.data
    return RecallSpec(keys=d.keys, values=d.values, min_pairs=d.min_pairs, max_pairs=d.max_pairs, queries=d.queries)


def preprocess(ctx: base.LabContext) -> dict:
    d = ctx.cfg.data
    sizes = {"train": d.train_size, "val": d.val_size, "test": d.test_size}
    splits = generate(task_spec(ctx.cfg), sizes, ctx.seed)
    tensors = {f"{split}_{field}": t for split, fields in splits.items() for field, t in fields.items()}
    meta = {
        "task": "associative_recall",
        "seed": ctx.seed,
        "keys": [key_label(i) for i in range(d.keys)],
        "values": [value_label(i) for i in range(d.values)],
        "min_pairs": d.min_pairs, "max_pairs": d.max_pairs, "queries": d.queries,
        "sizes": sizes,
    }
    save_processed(ctx.processed_dir, tensors, meta)
    return meta


def split(data: dict[str, torch.Tensor], name: str) -> tuple[torch.Tensor, ...]:
    """``(keys, values, lengths, queries, targets, slots)`` of one split."""
    return tuple(data[f"{name}_{field}"] for field in FIELDS)


def build_reader(cfg, variant_cfg, meta: dict, seed: int):
    """The variant's reader, seeded: the embedding tables are built first, so both readers start from the same ones."""
    t, n_keys, n_values = cfg.train, len(meta["keys"]), len(meta["values"])
    if variant_cfg.reader == "attention":
        return seeded(lambda: AttentionReader(n_keys, n_values, t.embed_dim, t.hidden), seed)
    return seeded(lambda: RnnSummaryReader(n_keys, n_values, t.embed_dim, t.hidden,
                                           rnn_hidden=t.rnn_hidden, cell=variant_cfg.cell), seed)


def loss_of(model, batch) -> torch.Tensor:
    keys, values, lengths, queries, targets, _slots = batch
    logits = model(keys, values, lengths, queries)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


@torch.no_grad()
def read_split(model, tensors: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
    """Logits ``(N, queries, values)`` and, for attention, weights ``(N, queries, slots)``, on the CPU (eval mode)."""
    device = next(model.parameters()).device
    logits, weights = [], []
    with evaluating(model):
        for start in range(0, len(tensors[0]), EVAL_CHUNK):
            keys, values, lengths, queries = (t[start : start + EVAL_CHUNK].to(device) for t in tensors[:4])
            if isinstance(model, AttentionReader):
                out, w = model.read(keys, values, lengths, queries)
                weights.append(w.cpu())
            else:
                out = model(keys, values, lengths, queries)
            logits.append(out.cpu())
    return {"logits": torch.cat(logits), **({"weights": torch.cat(weights)} if weights else {})}


def recall_metrics(read: dict[str, torch.Tensor], tensors: tuple[torch.Tensor, ...], prefix: str) -> dict[str, float]:
    """Loss, accuracy per query and per example, and where the attention looked (attention only)."""
    _keys, _values, _lengths, _queries, targets, slots = tensors
    logits = read["logits"]
    right = logits.argmax(-1) == targets
    out = {
        f"{prefix}_loss": F.cross_entropy(logits.flatten(0, 1), targets.flatten()).item(),
        f"{prefix}_acc": right.float().mean().item(),
        f"{prefix}_seq_acc": right.all(dim=1).float().mean().item(),
    }
    if "weights" in read:
        out.update(attention_metrics(read["weights"], slots, prefix))
    return out


def attention_metrics(weights: torch.Tensor, slots: torch.Tensor, prefix: str) -> dict[str, float]:
    """Mean attention weight on the slot that holds the answer, and how often it is the largest weight."""
    on_target = weights.gather(-1, slots.unsqueeze(-1)).squeeze(-1)
    return {
        f"{prefix}_attn_mass": on_target.mean().item(),
        f"{prefix}_attn_hit": (weights.argmax(-1) == slots).float().mean().item(),
    }


def chance_levels(tensors: tuple[torch.Tensor, ...], n_values: int) -> dict[str, float]:
    """What guessing scores: a uniform value per query, uniform attention over the real slots."""
    lengths, queries = tensors[2], tensors[3]
    return {
        "chance_acc": 1.0 / n_values,
        "chance_seq_acc": (1.0 / n_values) ** queries.size(1),
        "chance_attn_mass": (1.0 / lengths.double()).mean().item(),
    }


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    t, v = ctx.cfg.train, ctx.variant_cfg(variant)
    data, meta = load_processed(ctx.processed_dir)
    device = ctx.device
    torch.set_flush_denormal(True)  # a recurrent net's tiny gradients would otherwise crawl through denormals
    base.small_model_threads(ctx)
    model = build_reader(ctx.cfg, v, meta, ctx.seed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=t.lr)
    batches = TensorBatches(*split(data, "train"), batch_size=t.batch_size, seed=ctx.seed, device=device)
    val, test = split(data, "val"), split(data, "test")
    trace = LossTrace(every=max(1, len(batches) // TRACE_POINTS_PER_EPOCH))
    # Before any update: what the course drew (an untrained model's attention); also epoch 0 of the curves.
    initial = (recall_metrics(read_split(model, test), test, "initial_test")
               | recall_metrics(read_split(model, val), val, "initial_val"))

    def evaluate(m):
        return recall_metrics(read_split(m, val), val, "val")

    def final_metrics(m, _result):
        return (_test_scores(m, test) | evaluate(m) | initial
                | chance_levels(test, len(meta["values"])))

    return base.train_variant(
        ctx, variant, model=model, optimizer=optimizer, batches=batches, loss_fn=loss_of,
        epochs=t.epochs, evaluate=evaluate, final_metrics=final_metrics, callbacks=(trace,),
        run_params={"reader": v.reader, "cell": v.cell if v.reader == "rnn" else "", "embed_dim": t.embed_dim,
                    "hidden": t.hidden, "rnn_hidden": t.rnn_hidden if v.reader == "rnn" else "", "lr": t.lr,
                    "batch_size": t.batch_size, "epochs": t.epochs, "parameters": count_parameters(model),
                    "task": meta["task"]},
        model_info={"kind": f"{v.reader}_reader", "cell": v.cell, "embed_dim": t.embed_dim, "hidden": t.hidden,
                    "rnn_hidden": t.rnn_hidden, "keys": len(meta["keys"]), "values": len(meta["values"])},
        history_extra={"trace": trace.rows},
    )


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back)."""
    data, _ = load_processed(ctx.processed_dir)
    return _test_scores(model, split(data, "test"))


def _test_scores(model, test: tuple[torch.Tensor, ...]) -> dict[str, float]:
    """Loss, accuracy per query and per example; for the attention reader, where its attention looked."""
    return recall_metrics(read_split(model, test), test, "test")


# --------------------------------------------------------------------------- the comparison


def load_reader(ctx: base.LabContext, variant: str, meta: dict):
    model = build_reader(ctx.cfg, ctx.variant_cfg(variant), meta, ctx.seed)
    saved = load_weights(ctx.model_dir(variant) / "model.pt")
    model.load_state_dict(saved["state_dict"])
    return model.eval()


def accuracy_by(right: torch.Tensor, groups: torch.Tensor, levels) -> list[float]:
    """Mean of ``right`` within each level of ``groups`` (NaN where a level is empty)."""
    return [right[groups == g].float().mean().item() if (groups == g).any() else float("nan") for g in levels]


def _attention_heatmaps(examples: list[dict], meta: dict, *, title: str):
    """One panel per example and model: queries x memory slots, the right slot boxed in red."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    rows = sorted({e["row"] for e in examples}, key=[e["row"] for e in examples].index)
    cols = max(sum(e["row"] == r for e in examples) for r in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(3.6 * cols, 2.6 * len(rows) + 0.8), squeeze=False,
                             layout="constrained")
    image = None
    for ax in axes.flat:
        ax.axis("off")
    for r, row in enumerate(rows):
        for c, e in enumerate(x for x in examples if x["row"] == row):
            ax = axes[r][c]
            ax.axis("on")
            n = e["length"]
            image = ax.imshow(e["weights"][:, :n], vmin=0, vmax=1, cmap="Blues", aspect="auto")
            ax.set_xticks(range(n), [f"{meta['keys'][k]}{meta['values'][v]}" for k, v in zip(e["keys"][:n], e["values"][:n])],
                          fontsize=7, rotation=90)
            ax.set_yticks(range(len(e["queries"])), [
                f"{meta['keys'][q]}? {meta['values'][p]}" + ("" if p == t else f" (not {meta['values'][t]})")
                for q, p, t in zip(e["queries"], e["predicted"], e["targets"])], fontsize=7)
            for qi, s in enumerate(e["slots"]):
                ax.add_patch(Rectangle((s - 0.5, qi - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.5))
            ax.set_title(f"{row}: example {e['index']}", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, label="attention weight")
    fig.suptitle(title, fontsize=9)
    return fig


def _heatmap_examples(model, tensors, indices, label: str) -> list[dict]:
    picked = tuple(t[indices] for t in tensors)
    read = read_split(model, picked)
    keys, values, lengths, queries, targets, slots = (t.tolist() for t in picked)
    predicted = read["logits"].argmax(-1).tolist()
    return [{"row": label, "index": int(i), "weights": read["weights"][j].numpy(), "length": lengths[j],
             "keys": keys[j], "values": values[j], "queries": queries[j], "targets": targets[j],
             "predicted": predicted[j], "slots": slots[j]} for j, i in enumerate(indices.tolist())]


def _hidden_state_heatmap(states: dict[str, torch.Tensor], indices: torch.Tensor, *, title: str):
    """The course's RNN picture: each example's last hidden state (rows) over the hidden units
    (columns), untrained beside trained: all the RNN reader keeps of the whole source."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(states), figsize=(5.2 * len(states), 0.35 * len(indices) + 2.0), squeeze=False,
                             layout="constrained")
    limit = max(float(h.abs().max()) for h in states.values()) or 1.0
    image = None
    for ax, (label, h) in zip(axes[0], states.items()):
        image = ax.imshow(h.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
        ax.set_yticks(range(len(indices)), [f"example {int(i)}" for i in indices], fontsize=7)
        ax.set_xlabel("hidden unit")
        ax.set_title(label, fontsize=8)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="activation")
    fig.suptitle(title, fontsize=9)
    return fig


def evaluate(ctx: base.LabContext) -> None:
    from labflow.plots import figures as figs

    results = base.variant_results(ctx)
    data, meta = load_processed(ctx.processed_dir)
    test = split(data, "test")
    _keys, _values, lengths, _queries, targets, slots = test
    chance = chance_levels(test, len(meta["values"]))
    pairs = list(range(meta["min_pairs"], meta["max_pairs"] + 1))
    from_end = (lengths.unsqueeze(1) - 1 - slots)  # 0: the last pair read
    distances = list(range(meta["max_pairs"]))
    by_pairs, by_distance, table, figures = {}, {}, [], {}
    # The same held-out examples for every heatmap: evenly spread over the test split.
    shown = torch.linspace(0, len(targets) - 1, ctx.cfg.evaluate.heatmaps).round().long()
    for variant, r in results.items():
        v, m = ctx.cfg.variants[variant], r["metrics"]
        model = load_reader(ctx, variant, meta)
        right = read_split(model, test)["logits"].argmax(-1) == targets
        by_pairs[variant] = (pairs, accuracy_by(right, lengths.unsqueeze(1).expand_as(right), pairs))
        by_distance[variant] = (distances, accuracy_by(right, from_end, distances))
        attention = v.reader == "attention"
        table.append({
            "variant": variant, "reader": v.reader if attention else f"rnn ({v.cell})",
            "parameters": count_parameters(model), "test_acc": m["test_acc"], "test_seq_acc": m["test_seq_acc"],
            "attn_mass_on_answer": m["test_attn_mass"] if attention else "",
            "attn_argmax_on_answer": m["test_attn_hit"] if attention else "",
            "untrained_attn_mass": m["initial_test_attn_mass"] if attention else "",
            "test_loss": m["test_loss"], "train_seconds": m["train_seconds"],
        })
        if attention:
            untrained = build_reader(ctx.cfg, v, meta, ctx.seed).eval()
            examples = (_heatmap_examples(untrained, test, shown, "untrained (same seed)")
                        + _heatmap_examples(model, test, shown, "trained"))
            figures[f"attention_heatmaps_{variant}"] = _attention_heatmaps(
                examples, meta,
                title=f"{variant}: attention weights of each query over the memory, on held-out examples\n"
                      "rows: 'key? predicted value (not the right one)'; columns: the pairs as key+value; "
                      "red box: the slot that holds the answer")
        else:  # the RNN reader: its last hidden state is the whole summary, as the course draws it
            picked = tuple(t[shown] for t in test)
            untrained = build_reader(ctx.cfg, v, meta, ctx.seed).eval()
            with torch.no_grad():
                states = {"untrained (same seed)": untrained.summary(picked[0], picked[1], picked[2]),
                          "trained": model.summary(picked[0], picked[1], picked[2])}
            figures[f"hidden_state_{variant}"] = _hidden_state_heatmap(
                {k: h.cpu() for k, h in states.items()}, shown,
                title=f"{variant}: the RNN's last hidden state for the same held-out examples as the attention maps\n"
                      "one vector per source: every answer must be read back out of it")
    table.append({"variant": "chance", "reader": "guess / uniform attention", "test_acc": chance["chance_acc"],
                  "test_seq_acc": chance["chance_seq_acc"], "attn_mass_on_answer": chance["chance_attn_mass"]})

    def with_chance(series: dict, level: float) -> dict:
        xs = next(iter(series.values()))[0]
        return {**series, "chance": (xs, [level] * len(xs))}

    figures["accuracy_by_memory_size"] = figs.curves(
        with_chance(by_pairs, chance["chance_acc"]), xlabel="pairs in the memory", ylabel="test accuracy per query",
        title="held-out accuracy by memory size: a summary vector fills up, a lookup does not")
    figures["accuracy_by_recency"] = figs.curves(
        with_chance(by_distance, chance["chance_acc"]), xlabel="pairs read after the one asked about",
        ylabel="test accuracy per query", title="held-out accuracy by how long ago the answer was read")
    def from_start(y: str) -> dict:
        # Epoch 0: the untrained model (same seeded weights as the training started from).
        return {v: ([0, *xs], [results[v]["metrics"][f"initial_{y}"], *ys])
                for v, (xs, ys) in base.series(results, "epoch", y).items() if xs}

    figures["val_accuracy"] = figs.curves(
        with_chance(from_start("val_acc"), chance["chance_acc"]), xlabel="epoch (0: untrained)",
        ylabel="validation accuracy per query", title="validation accuracy per epoch")
    for r in results.values():
        r["trace"] = base.dvc_files.read_rows(r["folder"] / "trace.csv")
    figures["loss_by_update"] = figs.curves(base.series(results, "update", "train_loss", "trace"), xlabel="update",
                                            ylabel="mean batch loss", title="training loss against updates", logy=True)
    attn = from_start("val_attn_mass")
    if attn:
        figures["attention_on_answer"] = figs.curves(
            with_chance(attn, chance_levels(split(data, "val"), len(meta["values"]))["chance_attn_mass"]),
            xlabel="epoch (0: untrained)",
            ylabel="mean attention weight on the right slot",
            title="validation: attention weight on the slot holding the answer, per epoch")
    figures["test_accuracy"] = figs.grouped_bars(
        {"per query": {r["variant"]: r["test_acc"] for r in table},
         "per example (all queries)": {r["variant"]: r["test_seq_acc"] for r in table}},
        ylabel="test accuracy", title="held-out accuracy (chance: a uniform guess)", fmt="{:.3f}")
    base.publish_comparison(ctx, results, table=table, figures=figures, summary=chance)
