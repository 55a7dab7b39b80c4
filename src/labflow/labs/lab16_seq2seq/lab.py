"""Lab 16: sequence-to-sequence translation without vs with attention, held-out BLEU.

Data. Quick and smoke profiles: English-Spanish Bible verses (KJV / Reina-Valera 1909) from
Debian's diatheke, aligned by verse reference (``labflow.data.verses``); full profile:
Tatoeba's English-French pairs (manythings.org, sha256 pinned by the user). The pairs are
split train/val/test by a fixed hash of the reference, and a sentence that repeats word for
word (verses are formulaic) is kept in one split. One BPE tokeniser per language (Hugging
Face ``tokenizers``) is learnt on the training split only; pairs longer than
``data.max_tokens`` subword tokens on either side are then dropped from every split (short
pairs let a CPU learn something in a minute).

Variants. The same encoder-decoder (``seq2seq.py``: bidirectional LSTM encoder, LSTM
decoder, read-out from [decoder state; context]) built from the same seed, the same
tokenisers, batches, optimizer, epochs: the only difference is the context vector, the
encoder's summary (no attention) or an attention-weighted mean of its states. Training runs on
one CPU thread unless params.yaml sets ``threads``: two threads were 11x slower per step with
other processes on the machine (a batch of 64 took 1.0 s on one, 11.5 s on two).

Evaluation. Greedy decoding (lab 25 adds beam search); corpus BLEU and chrF with
``sacrebleu`` on the held-out test split (validation BLEU per epoch), a paired bootstrap
test between the variants, BLEU by source length, attention heatmaps for a few test
sentences, sample translations. Two baselines share the table: copying the English source,
and the Spanish side of the nearest training sentence (TF-IDF cosine over the English):
verses are formulaic, so a lookup scores surprisingly well.

The course's notebook, fixed here:
- it had no test set (500 pairs, trained and shown on the same sentences): BLEU here is on
  held-out pairs, with no sentence of the test split in the training split;
- it built the two models with separate random initialisations and trained them one after
  the other with an unseeded ``np.random`` teacher-forcing coin: here both start from the
  same weights (``models.seeded``) and train on the same batches with full teacher forcing;
- its attention (``nn.MultiheadAttention`` without a key-padding mask) attended to padding,
  and its encoder read the padded tail of every sentence into its final state: here padded
  positions get zero attention and the summary is taken after the last real token;
- it mapped unknown words to the padding id, which the loss then ignores: subword
  tokenisation leaves no unknown words in practice, and ``<unk>`` is its own id;
- it padded every sentence to the longest of the whole set and trained full-batch: here
  mini-batches of sentences of similar length (``seq2seq.LengthBatches``), cut to their longest
  sentence, with the vocabulary projection computed on real tokens only.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import torch

from labflow.train.callbacks import load_weights
from labflow.frame import paths
from labflow.data.verses import SPLITS, Pair, read_pairs, split_pairs, write_pairs
from labflow.frame import base
from labflow.prep import subwords
from labflow.nets.seq2seq import LengthBatches, Seq2Seq, trim
from labflow.prep.subwords import PAD
from labflow.prep.tensors import load_processed, save_processed
from labflow.nets.common import count_parameters, evaluating, seeded

LAB_ID = "lab16"
TITLE = "Seq2seq translation without vs with attention (held-out BLEU)"
DATASETS = ("sentence_pairs",)
HEADLINE = ("test_bleu", "test_chrf")  # what seed bands and `labflow exp` report
HEADLINE_CURVE = "val_bleu"  # the per-epoch column the seed-band figure draws
DISTRIBUTED = False
DISTRIBUTED_WHY = (
    "its loss calls the model's own loss method, which bypasses DistributedDataParallel's "
    "forward, so gradients would not be averaged"
)
SRC_TOKENIZER, TGT_TOKENIZER = "src_tokenizer.json", "tgt_tokenizer.json"
DECODE_BATCH = 256
LENGTH_BUCKETS = ((1, 8), (9, 12), (13, 16), (17, 20), (21, 10_000))  # source words, for BLEU by length


def pairs_file(split: str) -> str:
    return f"pairs_{split}.tsv"


# --------------------------------------------------------------------------- data


def preprocess(ctx: base.LabContext) -> dict:
    from labflow.data.datasets import load_pairs

    d = ctx.cfg.data
    pairs, manifest = load_pairs(paths.raw_dir("sentence_pairs"))
    splits = split_pairs(pairs, val_fraction=d.val_fraction, test_fraction=d.test_fraction, by=d.split)
    # A word is at least one token (the tokeniser never merges across spaces), so pairs with
    # more words than max_tokens cannot pass the cut: skip them before tokenising.
    short = {s: [p for p in ps if max(len(p.src.split()), len(p.tgt.split())) <= d.max_tokens] for s, ps in splits.items()}
    src_tok = subwords.train_tokenizer((p.src for p in short["train"]), d.vocab_size)
    tgt_tok = subwords.train_tokenizer((p.tgt for p in short["train"]), d.vocab_size)
    folder = ctx.processed_dir
    folder.mkdir(parents=True, exist_ok=True)
    tensors, kept = {}, {}
    for split in SPLITS:
        chosen, src_ids, tgt_ids = cut_by_tokens(short[split], src_tok, tgt_tok, d.max_tokens)
        cap = {"train": d.train_size, "test": d.test_size}.get(split)
        order = random.Random(f"{ctx.seed}-{split}").sample(range(len(chosen)), len(chosen))[:cap]
        kept[split] = [chosen[i] for i in order]
        src_ids, tgt_ids = [src_ids[i] for i in order], [tgt_ids[i] for i in order]
        tensors[f"src_{split}"] = subwords.pad_ids(src_ids, length=d.max_tokens + 1)  # + end mark
        tensors[f"src_len_{split}"] = torch.tensor([len(s) + 1 for s in src_ids], dtype=torch.long)
        tensors[f"tgt_{split}"] = subwords.pad_ids(tgt_ids, bos=True, length=d.max_tokens + 2)
        write_pairs(folder / pairs_file(split), kept[split])
    if not kept["train"] or not kept["test"]:
        raise ValueError(f"no {'training' if not kept['train'] else 'test'} pairs of at most {d.max_tokens} tokens; "
                         "raise lab16.data.max_tokens")
    subwords.save_tokenizer(src_tok, folder / SRC_TOKENIZER)
    subwords.save_tokenizer(tgt_tok, folder / TGT_TOKENIZER)
    meta = {
        "sizes": {s: len(kept[s]) for s in SPLITS},
        "before_length_cut": {s: len(splits[s]) for s in SPLITS},
        "src_lang": manifest["src_lang"], "tgt_lang": manifest["tgt_lang"], "source": manifest.get("source", ""),
        "src_vocab": src_tok.get_vocab_size(), "tgt_vocab": tgt_tok.get_vocab_size(),
        "max_tokens": d.max_tokens, "split": d.split, "aligned_pairs": len(pairs),
        "dropped_in_alignment": manifest.get("dropped", {}),
    }
    save_processed(folder, tensors, meta)  # the manifest covers the tokenisers and pair files too
    return meta


def cut_by_tokens(pairs: Sequence[Pair], src_tok, tgt_tok, max_tokens: int):
    """The pairs with at most ``max_tokens`` tokens on both sides, with their token ids."""
    src_ids = subwords.encode(src_tok, [p.src for p in pairs])
    tgt_ids = subwords.encode(tgt_tok, [p.tgt for p in pairs])
    keep = [i for i in range(len(pairs)) if len(src_ids[i]) <= max_tokens and len(tgt_ids[i]) <= max_tokens]
    return [pairs[i] for i in keep], [src_ids[i] for i in keep], [tgt_ids[i] for i in keep]


def load_split_pairs(folder: Path, split: str) -> list[Pair]:
    return read_pairs(Path(folder) / pairs_file(split))


# --------------------------------------------------------------------------- model and decoding


def build_model(meta: dict, t, attention: bool, seed: int) -> Seq2Seq:
    return seeded(lambda: Seq2Seq(meta["src_vocab"], meta["tgt_vocab"], emb=t.emb, hidden=t.hidden,
                                  dropout=t.dropout, attention=attention), seed)


class ClippedAdam(torch.optim.Adam):
    """Adam that clips the gradient norm first: the shared loop calls ``step()`` right after ``backward()``."""

    def __init__(self, params, lr: float, max_norm: float) -> None:
        super().__init__(params, lr=lr)
        self.max_norm = max_norm

    def step(self, closure=None):
        if self.max_norm > 0:
            torch.nn.utils.clip_grad_norm_([p for g in self.param_groups for p in g["params"]], self.max_norm)
        return super().step(closure)


def sequence_loss(model: Seq2Seq, src, src_len, tgt) -> torch.Tensor:
    """Mean cross-entropy per real target token, teacher forced (batches cut to their longest sentence)."""
    src, tgt = trim(src, src_len, tgt)
    return model.loss(src, src_len, tgt)


@torch.no_grad()
def mean_loss(model: Seq2Seq, src, src_len, tgt, device) -> float:
    """Cross-entropy per real target token, teacher forced, in eval mode."""
    total, tokens = 0.0, 0
    with evaluating(model):
        for i in range(0, len(src), DECODE_BATCH):
            s, l, y = (t[i:i + DECODE_BATCH].to(device) for t in (src, src_len, tgt))
            n = int((y[:, 1:] != PAD).sum())
            total += float(sequence_loss(model, s, l, y)) * n
            tokens += n
    return total / max(tokens, 1)


@torch.no_grad()
def translate(model: Seq2Seq, src, src_len, tgt_tok, extra: int, device) -> tuple[list[str], list[list[int]], list]:
    """Greedy translations (in eval mode), their token ids and (with attention) weights (steps x source
    tokens) per sentence."""
    texts, rows, weights = [], [], []
    with evaluating(model):
        for i in range(0, len(src), DECODE_BATCH):
            l = src_len[i:i + DECODE_BATCH].to(device)
            s = trim(src[i:i + DECODE_BATCH].to(device), l)
            out, w = model.greedy(s, l, int(l.max()) + extra)
            ids = [subwords.strip_ids(r) for r in out.tolist()]
            texts += subwords.decode(tgt_tok, ids)
            rows += ids
            weights += [None if w is None else w[k, : len(ids[k]) + 1, : int(l[k])].cpu() for k in range(len(ids))]
    return texts, rows, weights


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU and chrF (sacrebleu defaults: 13a tokenisation, cased)."""
    import sacrebleu

    refs = [list(references)]
    return {"bleu": sacrebleu.corpus_bleu(list(hypotheses), refs).score,
            "chrf": sacrebleu.corpus_chrf(list(hypotheses), refs).score}


# --------------------------------------------------------------------------- train


def train(ctx: base.LabContext, variant: str) -> base.VariantResult:
    torch.set_flush_denormal(True)  # the LSTMs' small gradients would otherwise crawl through denormals
    base.small_model_threads(ctx)
    t, v = ctx.cfg.train, ctx.variant_cfg(variant)
    data, meta = load_processed(ctx.processed_dir)
    tgt_tok = subwords.load_tokenizer(ctx.processed_dir / TGT_TOKENIZER)
    val_refs = [p.tgt for p in load_split_pairs(ctx.processed_dir, "val")]
    test_pairs = load_split_pairs(ctx.processed_dir, "test")
    test_refs = [p.tgt for p in test_pairs]
    device = ctx.device
    model = build_model(meta, t, v.attention, ctx.seed).to(device)
    optimizer = ClippedAdam(model.parameters(), t.lr, t.clip)
    batches = LengthBatches(data["src_train"], data["src_len_train"], data["tgt_train"], batch_size=t.batch_size,
                            seed=ctx.seed, device=device)
    val = (data["src_val"], data["src_len_val"], data["tgt_val"])
    translations_csv = ctx.results_dir(variant) / "translations.csv"

    def loss_fn(m, batch):
        return sequence_loss(m, *batch)

    def evaluate(m):
        hyps, _, _ = translate(m, *val[:2], tgt_tok, t.extra_decode_tokens, device)
        return {"val_loss": mean_loss(m, *val, device), "val_bleu": corpus_scores(hyps, val_refs)["bleu"]}

    def final_metrics(m, result):
        scores, hyps = _test_scored(m, data, tgt_tok, test_refs, t.extra_decode_tokens, device)
        base.dvc_files.write_rows(translations_csv, [
            {"ref": p.ref, "source": p.src, "reference": p.tgt, "translation": h} for p, h in zip(test_pairs, hyps)])
        return scores | {"val_bleu": result.history[-1]["val_bleu"], "parameters": count_parameters(m)}

    return base.train_variant(
        ctx, variant, model=model, optimizer=optimizer, batches=batches, loss_fn=loss_fn, epochs=t.epochs,
        evaluate=evaluate, final_metrics=final_metrics,
        run_params={"attention": v.attention, "epochs": t.epochs, "batch_size": t.batch_size, "lr": t.lr, "emb": t.emb,
                    "hidden": t.hidden, "dropout": t.dropout, "clip": t.clip, "src_vocab": meta["src_vocab"],
                    "tgt_vocab": meta["tgt_vocab"], "train_pairs": meta["sizes"]["train"],
                    "languages": f"{meta['src_lang']}-{meta['tgt_lang']}", "parameters": count_parameters(model)},
        model_info={"kind": "seq2seq", "attention": v.attention, "src_vocab": meta["src_vocab"],
                    "tgt_vocab": meta["tgt_vocab"], "emb": t.emb, "hidden": t.hidden, "dropout": t.dropout},
        artifacts={"translations": translations_csv},
    )


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back).

    Test BLEU and chrF of greedy translations (``train.extra_decode_tokens``) and the test loss."""
    data, _ = load_processed(ctx.processed_dir)
    tgt_tok = subwords.load_tokenizer(ctx.processed_dir / TGT_TOKENIZER)
    test_refs = [p.tgt for p in load_split_pairs(ctx.processed_dir, "test")]
    device = next(model.parameters()).device
    return _test_scored(model, data, tgt_tok, test_refs, ctx.cfg.train.extra_decode_tokens, device)[0]


def _test_scored(model, data: dict, tgt_tok, test_refs: Sequence[str], extra: int,
                 device) -> tuple[dict[str, float], list[str]]:
    """The test metrics (BLEU and chrF of greedy translations, loss) and the translations."""
    hyps, _, _ = translate(model, data["src_test"], data["src_len_test"], tgt_tok, extra, device)
    scores = corpus_scores(hyps, test_refs)
    loss = mean_loss(model, data["src_test"], data["src_len_test"], data["tgt_test"], device)
    return {"test_bleu": scores["bleu"], "test_chrf": scores["chrf"], "test_loss": loss}, hyps


def load_model(ctx: base.LabContext, variant: str) -> Seq2Seq:
    saved = load_weights(ctx.model_dir(variant) / "model.pt")
    info = saved["info"]
    model = Seq2Seq(info["src_vocab"], info["tgt_vocab"], emb=info["emb"], hidden=info["hidden"],
                    dropout=info["dropout"], attention=info["attention"])
    model.load_state_dict(saved["state_dict"])
    return model.to(ctx.device).eval()


# --------------------------------------------------------------------------- baselines


def nearest_training_targets(train_pairs: Sequence[Pair], sources: Sequence[str]) -> list[str]:
    """For each source, the target side of the training pair whose source is closest (TF-IDF cosine of words)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    train_x = vectorizer.fit_transform([p.src for p in train_pairs])
    best = (vectorizer.transform(list(sources)) @ train_x.T).toarray().argmax(axis=1)
    return [train_pairs[i].tgt for i in best]


def paired_bootstrap(baseline: tuple[str, Sequence[str]], system: tuple[str, Sequence[str]],
                     references: Sequence[str], samples: int = 1000) -> dict[str, float]:
    """sacrebleu's paired bootstrap test of BLEU: the system's 95% interval and p-value against the baseline.

    The resampling is seeded (sacrebleu's 12345, or ``$SACREBLEU_SEED``), so the numbers repeat.
    """
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest

    test = PairedTest([(baseline[0], list(baseline[1])), (system[0], list(system[1]))], {"BLEU": BLEU()},
                      [list(references)], test_type="bs", n_samples=samples)
    _, scores = test()
    base_result, sys_result = scores["BLEU"]
    return {"baseline_mean": base_result.mean, "baseline_ci95": base_result.ci, "system_mean": sys_result.mean,
            "system_ci95": sys_result.ci, "p_value": sys_result.p_value}


def bleu_by_length(sources: Sequence[str], hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Corpus BLEU per bucket of source length in words (empty buckets left out)."""
    out = {}
    for lo, hi in LENGTH_BUCKETS:
        idx = [i for i, s in enumerate(sources) if lo <= len(s.split()) <= hi]
        if idx:
            label = f"{lo}-{hi}" if hi < 10_000 else f"{lo}+"
            out[f"{label} ({len(idx)})"] = corpus_scores([hypotheses[i] for i in idx], [references[i] for i in idx])["bleu"]
    return out


# --------------------------------------------------------------------------- evaluate


def evaluate(ctx: base.LabContext) -> None:
    from labflow.plots import figures as figs

    torch.set_flush_denormal(True)
    base.small_model_threads(ctx)
    results = base.variant_results(ctx)
    folder = ctx.processed_dir
    _, meta = load_processed(folder)
    train_pairs, test_pairs = load_split_pairs(folder, "train"), load_split_pairs(folder, "test")
    sources, references = [p.src for p in test_pairs], [p.tgt for p in test_pairs]
    systems = {"copy source (baseline)": sources,
               "nearest training sentence (baseline)": nearest_training_targets(train_pairs, sources)}
    for variant, r in results.items():
        rows = base.dvc_files.read_rows(r["folder"] / "translations.csv")
        systems[variant] = [str(row["translation"] or "") for row in rows]
    scores = {name: corpus_scores(hyps, references) for name, hyps in systems.items()}
    table = []
    for name, s in scores.items():
        row = {"variant": name, "attention": _attention_label(ctx, name), "test_bleu": s["bleu"], "test_chrf": s["chrf"]}
        if name in results:  # a trained variant (the baselines have no loss, parameters or training time)
            m = results[name]["metrics"]
            row |= {k: m[k] for k in ("val_bleu", "test_loss", "parameters", "train_seconds")}
        table.append(row)
    summary = {"copy_source_bleu": scores["copy source (baseline)"]["bleu"],
               "nearest_training_bleu": scores["nearest training sentence (baseline)"]["bleu"],
               "copy_source_chrf": scores["copy source (baseline)"]["chrf"],
               "nearest_training_chrf": scores["nearest training sentence (baseline)"]["chrf"],
               "test_pairs": len(test_pairs), "train_pairs": len(train_pairs)}
    plain = [v for v in results if not ctx.cfg.variants[v].attention]
    attended = [v for v in results if ctx.cfg.variants[v].attention]
    if plain and attended:
        test = paired_bootstrap((plain[0], systems[plain[0]]), (attended[0], systems[attended[0]]), references)
        summary |= {f"bootstrap_{k}": v for k, v in test.items()}
        summary["attention_minus_no_attention_bleu"] = scores[attended[0]]["bleu"] - scores[plain[0]]["bleu"]
    samples = sample_rows(test_pairs, systems, ctx.cfg.evaluate.samples)
    (ctx.results_dir() / "samples.md").parent.mkdir(parents=True, exist_ok=True)
    (ctx.results_dir() / "samples.md").write_text(_samples_markdown(samples))
    languages = f"{meta['src_lang']}->{meta['tgt_lang']}"
    figures = {
        "test_bleu": figs.bars({name: s["bleu"] for name, s in scores.items()}, ylabel="BLEU (sacrebleu, test split)",
                               title=f"held-out BLEU, {languages}, {len(test_pairs)} test pairs", fmt="{:.1f}"),
        "val_bleu_by_epoch": figs.curves(base.series(results, "epoch", "val_bleu"), xlabel="epoch",
                                         ylabel="validation BLEU (greedy)", title="validation BLEU per epoch"),
        "loss_by_epoch": figs.panels({"epoch": base.series(results, "epoch", "train_loss"),
                                      "epoch ": base.series(results, "epoch", "val_loss")}, xlabel="epoch",
                                     ylabel="cross-entropy per token", title="training (left) and validation (right) loss"),
        "test_bleu_by_source_length": figs.grouped_bars(
            {name: bleu_by_length(sources, hyps, references) for name, hyps in systems.items()},
            ylabel="BLEU", title="test BLEU by source length in words (pairs per bucket)", fmt="{:.0f}"),
        "sample_translations": sample_figure(samples),
    }
    for variant in attended:
        figures[f"attention_{variant}"] = attention_figure(ctx, variant, test_pairs, ctx.cfg.evaluate.heatmaps)
    base.publish_comparison(ctx, results, table=table, figures=figures, summary=summary)
    print(_samples_markdown(samples))


def _attention_label(ctx: base.LabContext, name: str) -> str:
    return ("yes" if ctx.cfg.variants[name].attention else "no") if name in ctx.cfg.variants else "-"


def sample_rows(test_pairs: Sequence[Pair], systems: dict[str, Sequence[str]], n: int) -> list[dict[str, str]]:
    """The first ``n`` test pairs (in their fixed shuffled order) with every system's translation."""
    return [{"ref": p.ref, "source": p.src, "reference": p.tgt,
             **{name: hyps[i] for name, hyps in systems.items() if not name.startswith("copy source")}}
            for i, p in enumerate(test_pairs[:n])]


def _samples_markdown(rows: list[dict[str, str]]) -> str:
    lines = []
    for row in rows:
        lines.append(f"**{row['ref']}**\n")
        lines += [f"- {k}: {v}" for k, v in row.items() if k != "ref"]
        lines.append("")
    return "\n".join(lines)


def sample_figure(rows: list[dict[str, str]]):
    """The sample translations as a picture (MLflow shows images inline; a table is a download)."""
    import textwrap

    from labflow.plots import figures as figs

    lines = []
    for row in rows:
        lines.append(row["ref"])
        lines += [textwrap.shorten(f"   {k}: {v}", 150, placeholder=" ...") for k, v in row.items() if k != "ref"]
        lines.append("")
    fig = figs.plt.figure(figsize=(13, 0.21 * len(lines) + 0.5))
    fig.text(0.01, 0.99, "\n".join(lines), va="top", ha="left", family="monospace", fontsize=8)
    return fig


def attention_figure(ctx: base.LabContext, variant: str, test_pairs: Sequence[Pair], n: int):
    """Attention weights (output tokens x source tokens) of the first ``n`` test sentences."""
    n = min(n, len(test_pairs))
    data, _ = load_processed(ctx.processed_dir)
    src_tok = subwords.load_tokenizer(ctx.processed_dir / SRC_TOKENIZER)
    tgt_tok = subwords.load_tokenizer(ctx.processed_dir / TGT_TOKENIZER)
    src, src_len = data["src_test"][:n], data["src_len_test"][:n]
    _, rows, weights = translate(load_model(ctx, variant), src, src_len, tgt_tok, ctx.cfg.train.extra_decode_tokens,
                                 ctx.device)
    maps = [weights[k].numpy() for k in range(n)]
    return attention_grid(
        maps, [subwords.tokens(src_tok, src[k, : maps[k].shape[1]].tolist()) for k in range(n)],
        [[*subwords.tokens(tgt_tok, rows[k]), "</s>"][: maps[k].shape[0]] for k in range(n)],
        [p.ref for p in test_pairs[:n]],
        f"{variant}: attention weights on test sentences (rows: output tokens, each row sums to 1)")


def attention_grid(maps: Sequence, sources: Sequence[list[str]], outputs: Sequence[list[str]],
                   titles: Sequence[str], suptitle: str, suptitle_size: float | None = None):
    """Heatmaps of attention weights (output tokens x source tokens), two per row; also lab 25's."""
    from labflow.plots import figures as figs

    n = len(maps)
    cols = min(2, n)
    rows = (n + cols - 1) // cols
    fig, axes = figs.plt.subplots(rows, cols, figsize=(7.5 * cols, 5.2 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, w, xs, ys, title in zip(axes.flat, maps, sources, outputs, titles):
        ax.imshow(w, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(xs)), xs, rotation=70, fontsize=7)
        ax.set_yticks(range(len(ys)), ys, fontsize=7)
        ax.set_title(title, fontsize=9)
    fig.suptitle(suptitle, fontsize=suptitle_size)
    fig.tight_layout()
    return fig
