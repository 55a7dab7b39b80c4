"""Lab 25: a transformer encoder-decoder for translation; greedy vs beam-search decoding; beside lab 16.

Data. Exactly lab 16's: the same English-Spanish verse pairs, BPE tokenisers, split and length
cut, read from ``data/processed/lab16`` (a DVC dependency; lab 25 has no preprocess stage of its
own, ``labs.DATA_FROM``). So lab 25's test BLEU and lab 16's are measured on the same test
sentences against the same references, with the same sacrebleu settings (13a tokenisation, cased).

Stages. One model, several ways to use it (``labs.SHARED_MODEL``): ``labs/lab25/dvc.yaml:train@<seed>`` trains
the transformer once per training seed; ``labs/lab25/dvc.yaml:decode@<variant>-<seed>`` loads that seed's model
and decodes the test split with one decoding strategy, without training (its only inputs are the
model file and the data; a test checks the model file is untouched and no training runs). The
variants are the decoders: greedy (``beam_width: 1``) and beam search (width and GNMT length
penalty in params.yaml; ``transformer_mt.beam_search``, batched over sentences, equal to greedy at
width 1, tested). ``labs/lab25/dvc.yaml:evaluate`` puts both beside lab 16's best model (its BLEU read from
``results/lab16/compare/metrics.json``; and, for a like-for-like pair, that model decoded by the
same beam search) and the two baselines of lab 16 (copy the source; the nearest training
sentence's translation).

Model and training. ``nn.Transformer`` (``transformer_mt.TransformerTranslator``), pre-LN
(``norm_first=True``), sinusoidal positions, causal and padding masks. What makes it learn on a
CPU budget of a few minutes (the settings tried are in params.yaml's comments): a linear warmup of
the learning rate then a cosine decay to 0 (the decay lets the last epochs settle), label
smoothing 0.1 (the usual regulariser for translation, Vaswani et al. 2017; not ablated here),
gradient clipping, tied target embedding and output projection, and lab 16's length-grouped
batches. At 6 epochs it stayed below lab 16's attention LSTM (same test cross-entropy, lower
BLEU, still improving); the quick profile's 10 epochs put it above under either decoder, at about
five times the LSTM's CPU time (README, lab 25). Validation loss and greedy validation BLEU are
logged per epoch.

MLflow. The lab's parent run "lab25 comparison" holds the table and figures. Its children: one
"transformer" run per training seed (its parameters, per-epoch training/validation loss and
validation BLEU, the model), and one run per decoding variant and seed (its decoding parameters,
test BLEU/chrF, translations, and the id of the training run it decoded). The curves live on the
training run because there is one training: the decode runs would repeat the same curves.

The course's notebook, fixed here:
- it measured BLEU on its 5 training pairs (``test_data = train_data``: "Using the same for testing
  BLEU", BLEU 0.3369): here BLEU is on lab 16's held-out test split, no test sentence in training;
- its whitespace vocabularies were built from all the data, test included; here lab 16's BPE
  tokenisers, learnt on the training split only;
- it had no padding masks on the encoder side and trained one pair at a time; here key-padding
  masks on both sides (padding never attended to) and mini-batches of similar-length pairs;
- it decoded greedily only and named beam search in passing; here beam search is implemented and
  compared on the same trained model, so the decoding is the only difference.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from labflow.train.callbacks import load_weights
from labflow.frame import paths, timing
from labflow.labs.lab25_transformer_translation import SHARED_MODEL
from labflow.frame import base
from labflow.prep import subwords
from labflow.labs.lab16_seq2seq import lab as lab16
from labflow.nets.seq2seq import LengthBatches, trim
from labflow.prep.subwords import BOS, PAD
from labflow.prep.tensors import load_processed
from labflow.nets.transformer_mt import TransformerTranslator, beam_search, greedy
from labflow.nets.common import count_parameters, evaluating, seeded

LAB_ID = "lab25"
TITLE = "Transformer translation: greedy vs beam-search decoding, beside lab 16 (held-out BLEU)"
DATASETS = ("sentence_pairs",)
HEADLINE = ("test_bleu", "test_chrf")  # what seed bands and `labflow exp` report
# The per-epoch column the seed-band figure draws: the training's greedy validation BLEU (both
# decoding variants share that training, so their bands coincide; their test BLEU is what differs).
HEADLINE_CURVE = "val_bleu"
DISTRIBUTED = False
DISTRIBUTED_WHY = (
    "its loss calls the model's own loss method, which bypasses DistributedDataParallel's "
    "forward, so gradients would not be averaged"
)
MODEL = SHARED_MODEL  # "transformer": the folder name of the one trained model per seed
SOURCE_LAB = "lab16"  # whose processed data lab 25 reads and whose best model it is compared with


# --------------------------------------------------------------------------- model and optimiser


def build_model(meta: dict, t, seed: int) -> TransformerTranslator:
    return seeded(lambda: TransformerTranslator(**model_kwargs(meta, t)), seed)


def model_kwargs(meta: dict, t) -> dict:
    return {"src_vocab": meta["src_vocab"], "tgt_vocab": meta["tgt_vocab"], "d_model": t.d_model, "heads": t.heads,
            "layers": t.layers, "ff": t.ff, "dropout": t.dropout, "max_len": 2 * meta["max_tokens"] + 64}


def warmup_cosine(step: int, warmup: int, total: int) -> float:
    """The learning-rate factor at update ``step`` (1-based): linear up to 1 over ``warmup`` updates,
    then a cosine down to 0 at update ``total``."""
    if warmup and step <= warmup:
        return step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupAdam(lab16.ClippedAdam):
    """Lab 16's clipped Adam with a warmup-then-cosine learning rate, set before every step.

    The schedule reads the update count from Adam's own state, which checkpoints save, so a
    resumed run continues the schedule where it stopped."""

    def __init__(self, params, lr: float, max_norm: float, *, warmup: int, total: int) -> None:
        super().__init__(params, lr=lr, max_norm=max_norm)
        for group in self.param_groups:
            group["betas"] = (0.9, 0.98)  # the transformer's usual beta2: faster to adapt early on
        self.peak, self.warmup, self.total = lr, warmup, total

    def updates_done(self) -> int:
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                if state and "step" in state:
                    return int(state["step"])
        return 0

    def step(self, closure=None):
        factor = warmup_cosine(self.updates_done() + 1, self.warmup, self.total)
        for group in self.param_groups:
            group["lr"] = self.peak * factor
        return super().step(closure)


# --------------------------------------------------------------------------- decoding


@torch.no_grad()
def translate(model: TransformerTranslator, src, src_len, tgt_tok, extra: int, device, *, beam: int = 1,
              alpha: float = 0.0, batch_size: int = 128) -> tuple[list[str], list[list[int]]]:
    """Translations of ``src`` (in eval mode) and their token ids: greedy at ``beam=1``, else beam search."""
    texts, rows = [], []
    with evaluating(model):
        for i in range(0, len(src), batch_size):
            lengths = src_len[i:i + batch_size]
            s = trim(src[i:i + batch_size], lengths).to(device)
            max_len = int(lengths.max()) + extra
            if beam == 1:
                out = greedy(model.scorer(s), len(s), max_len, device=device)
            else:
                out, _ = beam_search(model.scorer(s, beam), len(s), beam, max_len, alpha=alpha, device=device)
            ids = [subwords.strip_ids(r) for r in out.tolist()]
            texts += subwords.decode(tgt_tok, ids)
            rows += ids
    return texts, rows


@torch.no_grad()
def mean_loss(model: TransformerTranslator, src, src_len, tgt, device, batch_size: int = 256) -> float:
    """Cross-entropy per real target token, teacher forced, in eval mode, without label smoothing
    (lab 16's test_loss)."""
    total, tokens = 0.0, 0
    with evaluating(model):
        for i in range(0, len(src), batch_size):
            s, t = trim(src[i:i + batch_size], src_len[i:i + batch_size], tgt[i:i + batch_size])
            n = int((t[:, 1:] != PAD).sum())
            total += float(model.loss(s.to(device), t.to(device))) * n
            tokens += n
    return total / max(tokens, 1)


# --------------------------------------------------------------------------- train (once per seed)


def train(ctx: base.LabContext, variant: str = MODEL) -> base.VariantResult:
    if variant != MODEL:
        raise KeyError(f"lab25 trains one model, '{MODEL}'; its variants ({', '.join(ctx.cfg.variants)}) only "
                       f"decode it: `dvc repro labs/lab25/dvc.yaml:decode@{variant}-{ctx.seed}`")
    torch.set_flush_denormal(True)  # tiny gradients would otherwise crawl through denormals on a CPU
    base.small_model_threads(ctx)
    t, extra = ctx.cfg.train, ctx.cfg.decode.extra_decode_tokens
    data, meta = load_processed(ctx.processed_dir)
    tgt_tok = subwords.load_tokenizer(ctx.processed_dir / lab16.TGT_TOKENIZER)
    val_refs = [p.tgt for p in lab16.load_split_pairs(ctx.processed_dir, "val")]
    device = ctx.device
    model = build_model(meta, t, ctx.seed).to(device)
    batches = LengthBatches(data["src_train"], data["src_len_train"], data["tgt_train"], batch_size=t.batch_size,
                            seed=ctx.seed, device=device)
    optimizer = WarmupAdam(model.parameters(), t.lr, t.clip, warmup=t.warmup_steps, total=t.epochs * len(batches))
    val = (data["src_val"], data["src_len_val"], data["tgt_val"])

    def loss_fn(m, batch):
        src, _, tgt = batch
        return m.loss(src, tgt, t.label_smoothing)

    def evaluate(m):
        hyps, _ = translate(m, *val[:2], tgt_tok, extra, device, batch_size=ctx.cfg.decode.batch_size)
        return {"val_loss": mean_loss(m, *val, device), "val_bleu": lab16.corpus_scores(hyps, val_refs)["bleu"],
                "lr": optimizer.param_groups[0]["lr"]}

    def final_metrics(m, result):
        return ({"val_bleu": result.history[-1]["val_bleu"], "val_loss": result.history[-1]["val_loss"]}
                | _test_scores(m, data, device) | {"parameters": count_parameters(m)})

    return base.train_variant(
        ctx, MODEL, model=model, optimizer=optimizer, batches=batches, loss_fn=loss_fn, epochs=t.epochs,
        evaluate=evaluate, final_metrics=final_metrics,
        run_params={**t.model_dump(), "src_vocab": meta["src_vocab"], "tgt_vocab": meta["tgt_vocab"],
                    "train_pairs": meta["sizes"]["train"], "data": f"data/processed/{SOURCE_LAB}",
                    "languages": f"{meta['src_lang']}-{meta['tgt_lang']}", "parameters": count_parameters(model)},
        model_info={"kind": "transformer", **model_kwargs(meta, t)},
    )


def test_scores(ctx: base.LabContext, variant: str, model: torch.nn.Module) -> dict[str, float]:
    """The test metrics a variant's run logs, for any model of it (e.g. the one MLflow loads back).

    ``variant`` is the trained model's, ``MODEL``: its train run logs the test loss (the decoding
    variants' test BLEU and chrF are their decode runs', not a trained model's)."""
    if variant != MODEL:
        raise KeyError(f"lab25 trains one model, '{MODEL}'; its variants ({', '.join(ctx.cfg.variants)}) decode it")
    data, _ = load_processed(ctx.processed_dir)
    return _test_scores(model, data, next(model.parameters()).device)


def _test_scores(model, data: dict, device) -> dict[str, float]:
    return {"test_loss": mean_loss(model, data["src_test"], data["src_len_test"], data["tgt_test"], device)}


def model_file(ctx: base.LabContext, seed: int | None = None) -> Path:
    return ctx.model_dir(MODEL, seed) / "model.pt"


def load_model(path: Path, device) -> TransformerTranslator:
    saved = load_weights(path)
    info = {k: v for k, v in saved["info"].items() if k != "kind"}
    model = TransformerTranslator(**info)
    model.load_state_dict(saved["state_dict"])
    return model.to(device).eval()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------- decode (per variant and seed)


def decode(ctx: base.LabContext, variant: str) -> dict[str, float]:
    """Decode the test split with one variant's strategy on this seed's trained model; no training.

    Writes the variant's translations.csv, metrics.json (test BLEU, chrF), timings.json, run.json
    and a samples figure; logs one MLflow child run that names the training run it decoded."""
    from labflow.plots import figures as figs

    torch.set_flush_denormal(True)
    base.small_model_threads(ctx)
    v, d = ctx.variant_cfg(variant), ctx.cfg.decode
    weights = model_file(ctx)
    if not weights.exists():
        raise FileNotFoundError(f"{weights} is missing: train it first (`dvc repro labs/{LAB_ID}/dvc.yaml:train@{ctx.seed}`)")
    trained = base.dvc_files.read_metrics(ctx.results_dir(MODEL) / "run.json")
    data, _ = load_processed(ctx.processed_dir)
    tgt_tok = subwords.load_tokenizer(ctx.processed_dir / lab16.TGT_TOKENIZER)
    test_pairs = lab16.load_split_pairs(ctx.processed_dir, "test")
    model = load_model(weights, ctx.device)
    with timing.work():
        started = time.perf_counter()
        hyps, rows = translate(model, data["src_test"], data["src_len_test"], tgt_tok, d.extra_decode_tokens, ctx.device,
                               beam=v.beam_width, alpha=v.length_penalty, batch_size=d.batch_size)
        seconds = time.perf_counter() - started
    scores = lab16.corpus_scores(hyps, [p.tgt for p in test_pairs])
    reference_tokens = int((data["tgt_test"] > BOS).sum()) - len(test_pairs)  # without BOS and EOS (ids 0-3)
    metrics = {"test_bleu": scores["bleu"], "test_chrf": scores["chrf"], "beam_width": v.beam_width,
               "length_penalty": v.length_penalty, "test_pairs": len(test_pairs),
               "output_to_reference_tokens": sum(map(len, rows)) / max(reference_tokens, 1),
               "decode_seconds": round(seconds, 3)}
    out = ctx.results_dir(variant)
    base.dvc_files.write_rows(out / "translations.csv", [
        {"ref": p.ref, "source": p.src, "reference": p.tgt, "translation": h} for p, h in zip(test_pairs, hyps)])
    base.dvc_files.write_metrics_and_timings(out, metrics)
    fig = lab16.sample_figure(lab16.sample_rows(test_pairs, {variant: hyps}, ctx.cfg.evaluate.samples))
    sample_png = figs.save(fig, out / "figures" / "sample_translations.png")
    figs.close(fig)
    run_name = variant if ctx.seed == ctx.params.seed else f"{variant} seed {ctx.seed}"
    previous = out / "run.json"
    stale = base.dvc_files.read_metrics(previous).get("run_id") if previous.exists() else None
    tags = ctx.tags("decode", variant) | {"labflow.trained_run_id": str(trained.get("run_id"))}
    with base.tracked_run(ctx, run_name=run_name, tags=tags, stale_run_id=stale) as run:
        run.log_params({"profile": ctx.params.profile, "seed": ctx.seed, "variant": variant, "beam_width": v.beam_width,
                        "length_penalty": v.length_penalty, "extra_decode_tokens": d.extra_decode_tokens,
                        "trained_run_id": trained.get("run_id"), "model": str(weights.relative_to(paths.repo_root()))})
        run.log_metrics(metrics | {"work_seconds": timing.work_seconds()})
        run.log_artifact(out / "translations.csv")
        run.log_artifact(sample_png, "figures")
        base.dvc_files.write_metrics(previous, {"run_id": run.run_id, "variant": variant, "seed": ctx.seed,
                                                "trained_run_id": trained.get("run_id"),
                                                "model_sha256": file_sha256(weights)})
    return metrics


def seq2seq_scorer(model, src: torch.Tensor, src_len: torch.Tensor, copies: int = 1):
    """``next_logprobs`` for lab 16's LSTM encoder-decoder (``seq2seq.Seq2Seq``), so the same greedy and
    beam search decode it: the encoder runs once, the decoder re-reads each prefix (a test checks
    greedy through this equals lab 16's own greedy decoding)."""
    states, summary = model.encoder(src, src_len)
    mask = src != PAD
    states, summary, mask = (t.repeat_interleave(copies, 0) for t in (states, summary, mask))

    def next_logprobs(prefix: torch.Tensor) -> torch.Tensor:
        readout, _, _ = model.decoder(prefix, states, summary, mask)
        return torch.log_softmax(model.decoder.logits(readout[:, -1]), dim=-1)

    return next_logprobs


@torch.no_grad()
def translate_lab16(model, src, src_len, tgt_tok, extra: int, device, *, beam: int, alpha: float,
                    batch_size: int = 128) -> list[str]:
    """Lab 16's model decoded by this lab's beam search (greedy at ``beam=1``)."""
    model.eval()
    texts = []
    for i in range(0, len(src), batch_size):
        lengths = src_len[i:i + batch_size].to(device)
        s = trim(src[i:i + batch_size].to(device), lengths)
        max_len = int(lengths.max()) + extra
        if beam == 1:
            out = greedy(seq2seq_scorer(model, s, lengths), len(s), max_len, device=device)
        else:
            out, _ = beam_search(seq2seq_scorer(model, s, lengths, beam), len(s), beam, max_len, alpha=alpha,
                                 device=device)
        texts += subwords.decode(tgt_tok, out.tolist())
    return texts


# --------------------------------------------------------------------------- evaluate


def _training_run(ctx: base.LabContext, seed: int) -> dict:
    folder = ctx.results_dir(MODEL, seed)
    if not (folder / "metrics.json").exists():
        raise FileNotFoundError(f"{folder / 'metrics.json'} is missing: run `dvc repro labs/{LAB_ID}/dvc.yaml:train@{seed}` first")
    return {"metrics": base.dvc_files.read_metrics_and_timings(folder),
            "history": base.dvc_files.read_rows(folder / "history.csv"),
            "run_id": base.dvc_files.read_metrics(folder / "run.json").get("run_id"), "folder": folder}


def decode_results(ctx: base.LabContext) -> tuple[dict, dict]:
    """Each variant's results shaped like ``base.variant_results`` (metrics of its decode stage plus the
    decoded model's training metrics; history of that training), and the training runs by seed."""
    trainings = {seed: _training_run(ctx, seed) for seed in ctx.seeds}
    out = {}
    for variant in ctx.cfg.variants:
        runs = {}
        for seed in ctx.seeds:
            folder = ctx.results_dir(variant, seed)
            if not (folder / "metrics.json").exists():
                raise FileNotFoundError(f"{folder / 'metrics.json'} is missing: run "
                                        f"`dvc repro labs/{LAB_ID}/dvc.yaml:decode@{variant}-{seed}` first")
            trained = trainings[seed]["metrics"]
            # The training's validation BLEU is greedy decoding's: it is this variant's own only when it decodes greedily.
            copied = ("test_loss", "parameters", "epochs_run", "train_seconds")
            if ctx.cfg.variants[variant].beam_width == 1:
                copied = ("val_bleu", *copied)
            metrics = {k: trained[k] for k in copied if k in trained}
            metrics |= base.dvc_files.read_metrics_and_timings(folder)
            runs[seed] = {"metrics": metrics, "history": trainings[seed]["history"], "folder": folder,
                          "run_id": base.dvc_files.read_metrics(folder / "run.json").get("run_id")}
        out[variant] = {**runs[ctx.params.seed], "seeds": runs}
    return out, trainings


def lab16_best(root: Path | None = None) -> tuple[str, dict]:
    """Lab 16's variant with the highest *validation* BLEU (as lab 17 picks lab 15's: choosing on the
    test split would bias the comparison) and its metrics (train_seconds included), from its
    comparison's metrics.json and timings.json."""
    folder = (root or paths.repo_root()) / "results" / SOURCE_LAB / "compare"
    if not (folder / "metrics.json").exists():
        raise FileNotFoundError(f"{folder / 'metrics.json'} is missing: run `dvc repro labs/{SOURCE_LAB}/dvc.yaml:evaluate` first")
    metrics = base.dvc_files.read_metrics_and_timings(folder)
    variants = {k: m for k, m in metrics.items() if isinstance(m, dict) and "val_bleu" in m and "test_bleu" in m}
    best = max(variants, key=lambda k: variants[k]["val_bleu"])
    return best, variants[best]


def evaluate(ctx: base.LabContext) -> None:
    from labflow.plots import figures as figs

    torch.set_flush_denormal(True)
    base.small_model_threads(ctx)
    results, trainings = decode_results(ctx)
    folder = ctx.processed_dir
    _, meta = load_processed(folder)
    train_pairs, test_pairs = lab16.load_split_pairs(folder, "train"), lab16.load_split_pairs(folder, "test")
    sources, references = [p.src for p in test_pairs], [p.tgt for p in test_pairs]
    best16, best16_metrics = lab16_best()
    best16_name = f"lab16 {best16} (greedy)"  # as lab 16 decoded and scored it
    systems = {"copy source (baseline)": sources,
               "nearest training sentence (baseline)": lab16.nearest_training_targets(train_pairs, sources)}
    lab16_rows = paths.results_dir(SOURCE_LAB, best16, ctx.params.seed) / "translations.csv"
    if lab16_rows.exists():
        systems[best16_name] = [str(r["translation"] or "") for r in base.dvc_files.read_rows(lab16_rows)]
    beam_v = [v for v in results if ctx.cfg.variants[v].beam_width > 1]
    best16_beam = None
    model16 = paths.model_dir(SOURCE_LAB, best16, ctx.params.seed) / "model.pt"
    if beam_v and model16.exists():  # lab 16's model with the same beam search: the fair transformer-vs-LSTM pair
        bv = ctx.cfg.variants[beam_v[0]]
        best16_beam = f"lab16 {best16} ({_decoding_label(ctx, beam_v[0])})"
        data, _ = load_processed(folder)
        systems[best16_beam] = translate_lab16(
            lab16.load_model(base.LabContext(SOURCE_LAB, ctx.params, progress=False), best16), data["src_test"],
            data["src_len_test"], subwords.load_tokenizer(folder / lab16.TGT_TOKENIZER),
            ctx.cfg.decode.extra_decode_tokens, ctx.device, beam=bv.beam_width, alpha=bv.length_penalty,
            batch_size=ctx.cfg.decode.batch_size)
    for variant, r in results.items():
        systems[variant] = [str(row["translation"] or "") for row in base.dvc_files.read_rows(r["folder"] / "translations.csv")]
    scores = {name: lab16.corpus_scores(hyps, references) for name, hyps in systems.items()}
    # Lab 16's BLEU as lab 16 reported it (the DVC dependency); recomputed from its translations it is the same.
    scores[best16_name] = {"bleu": best16_metrics["test_bleu"], "chrf": best16_metrics["test_chrf"]}
    table = []
    for name, s in scores.items():
        row = {"system": name, "decoding": _decoding_label(ctx, name), "test_bleu": s["bleu"], "test_chrf": s["chrf"]}
        if name in results:
            m = results[name]["metrics"]
            row |= {k: m.get(k) for k in ("val_bleu", "test_loss", "parameters", "train_seconds", "decode_seconds")}
        elif name == best16_name:
            row |= {k: best16_metrics.get(k) for k in ("val_bleu", "test_loss", "parameters", "train_seconds")}
        table.append({"variant": row.pop("system"), **row})
    summary = {"copy_source_bleu": scores["copy source (baseline)"]["bleu"],
               "nearest_training_bleu": scores["nearest training sentence (baseline)"]["bleu"],
               "lab16_best_bleu": best16_metrics["test_bleu"], "lab16_best_chrf": best16_metrics["test_chrf"],
               "test_pairs": len(test_pairs), "train_pairs": len(train_pairs)}
    for variant in results:
        summary[f"{variant}_minus_lab16_bleu"] = scores[variant]["bleu"] - best16_metrics["test_bleu"]
    if best16_beam:
        summary["lab16_best_beam_bleu"] = scores[best16_beam]["bleu"]
        summary[f"{beam_v[0]}_minus_lab16_beam_bleu"] = scores[beam_v[0]]["bleu"] - scores[best16_beam]["bleu"]
    greedy_v = [v for v in results if ctx.cfg.variants[v].beam_width == 1]
    if greedy_v and beam_v:
        g, b = greedy_v[0], beam_v[0]
        test = lab16.paired_bootstrap((g, systems[g]), (b, systems[b]), references)
        summary |= {f"bootstrap_{k}": v for k, v in test.items()}
        summary["beam_minus_greedy_bleu"] = scores[b]["bleu"] - scores[g]["bleu"]
    samples = lab16.sample_rows(test_pairs, systems, ctx.cfg.evaluate.samples)
    ctx.results_dir().mkdir(parents=True, exist_ok=True)
    (ctx.results_dir() / "samples.md").write_text(lab16._samples_markdown(samples))
    primary = trainings[ctx.params.seed]["history"]
    curves = {"transformer": ([r["epoch"] for r in primary], [r["val_bleu"] for r in primary])}
    languages = f"{meta['src_lang']}->{meta['tgt_lang']}"
    figures = {
        "test_bleu": figs.bars({name: s["bleu"] for name, s in scores.items()}, ylabel="BLEU (sacrebleu, test split)",
                               title=f"held-out BLEU, {languages}, {len(test_pairs)} test pairs (lab 16's split)",
                               fmt="{:.1f}"),
        "loss_by_epoch": figs.curves({"train (label-smoothed)": ([r["epoch"] for r in primary], [r["train_loss"] for r in primary]),
                                      "validation": ([r["epoch"] for r in primary], [r["val_loss"] for r in primary])},
                                     xlabel="epoch", ylabel="cross-entropy per token",
                                     title="transformer: training and validation loss per epoch"),
        "val_bleu_by_epoch": figs.curves(curves, xlabel="epoch", ylabel="validation BLEU (greedy)",
                                         title="transformer: validation BLEU per epoch"),
        "test_bleu_by_source_length": figs.grouped_bars(
            {name: lab16.bleu_by_length(sources, hyps, references) for name, hyps in systems.items()
             if not name.startswith("copy source")},
            ylabel="BLEU", title="test BLEU by source length in words (pairs per bucket)", fmt="{:.0f}"),
        "sample_translations": lab16.sample_figure(samples),
        "cross_attention": cross_attention_figure(ctx, test_pairs, ctx.cfg.evaluate.heatmaps),
    }
    base.publish_comparison(ctx, results, table=table, figures=figures, summary=summary,
                            extra_children=[t["run_id"] for t in trainings.values()])
    print(lab16._samples_markdown(samples))


def _decoding_label(ctx: base.LabContext, name: str) -> str:
    if name in ctx.cfg.variants:
        v = ctx.cfg.variants[name]
        return "greedy" if v.beam_width == 1 else f"beam {v.beam_width}, alpha {v.length_penalty:g}"
    if name.startswith("lab16"):
        return name[name.index("(") + 1:-1]
    return "-"


def cross_attention_figure(ctx: base.LabContext, test_pairs: Sequence, n: int):
    """The trained model's cross-attention (last decoder layer, mean over heads) on the first ``n`` test
    sentences, over its own greedy translation: rows are output tokens, columns source tokens."""
    n = min(n, len(test_pairs))
    data, _ = load_processed(ctx.processed_dir)
    src_tok = subwords.load_tokenizer(ctx.processed_dir / lab16.SRC_TOKENIZER)
    tgt_tok = subwords.load_tokenizer(ctx.processed_dir / lab16.TGT_TOKENIZER)
    model = load_model(model_file(ctx, ctx.params.seed), ctx.device)
    src, src_len = data["src_test"][:n], data["src_len_test"][:n]
    _, rows = translate(model, src, src_len, tgt_tok, ctx.cfg.decode.extra_decode_tokens, ctx.device)
    maps, sources, outputs = [], [], []
    for k in range(n):
        length = int(src_len[k])
        s = src[k:k + 1, :length].to(ctx.device)
        tgt_in = torch.tensor([[BOS, *rows[k]]], dtype=torch.long, device=ctx.device)  # predicts rows[k] then </s>
        weights, _ = model.cross_attention(s, tgt_in)
        maps.append(weights[-1, 0].cpu().numpy())
        sources.append(subwords.tokens(src_tok, src[k, :length].tolist()))
        outputs.append([*subwords.tokens(tgt_tok, rows[k]), "</s>"][: maps[-1].shape[0]])
    return lab16.attention_grid(
        maps, sources, outputs, [p.ref for p in test_pairs[:n]],
        "transformer: cross-attention of the last decoder layer (mean over heads) on test sentences; "
        "rows: output tokens, each row sums to 1", suptitle_size=10)
