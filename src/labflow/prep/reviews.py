"""The review snippets of labs 15 and 17: the split, the word tokeniser, length-grouped batches,
the TF-IDF baseline and the metrics, shared so both labs see the same data the same way.

- **Split** (:func:`group_split`): every review of a movie, and every copy of a repeated text,
  lands in one split. The rotten-tomatoes snippets cover only 508 movies (~25 snippets each,
  a movie's share of fresh ones anywhere from 0 to 100%), so a split by snippet lets a model
  score by recognising the movie (its title, its actors): TF-IDF + logistic regression gains
  1.5-2 points that way here. The 56 repeated texts (same label) would otherwise sit in train
  and test at once.
- **Tokeniser** (Hugging Face ``tokenizers``): a word-level vocabulary trained on the training
  split only (NFKC, lower case, BERT's split at white space and punctuation; words seen fewer
  than ``min_frequency`` times become ``[UNK]``). ``[PAD]`` is id 0, ``[UNK]`` id 1.
- **Batches** (:class:`LengthBatches`): each epoch shuffles, sorts chunks of 50 batches by
  length and shuffles the batches, so a batch holds texts of similar length and is trimmed to
  its longest one: fewer padded steps for the RNNs, less attention for the transformers.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from labflow.nets.common import evaluating

if TYPE_CHECKING:
    import pandas as pd

SPLITS = ("train", "val", "test")
PAD, UNK = "[PAD]", "[UNK]"
TEXTS, TOKENIZER = "texts.csv", "tokenizer.json"
BUCKET_BATCHES = 50  # batches whose texts are sorted by length together


# --------------------------------------------------------------------------- the split


def normalise(text: str) -> str:
    """The form under which two texts count as the same (case and spacing ignored)."""
    return " ".join(str(text).lower().split())


def connected_groups(*keys: Sequence) -> np.ndarray:
    """One component id per row: rows sharing a value in any key column are connected (union-find)."""
    n = len(keys[0])
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for key in keys:
        first: dict = {}
        for i, value in enumerate(key):
            j = first.setdefault(value, i)
            if j != i:
                a, b = find(i), find(j)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    roots = np.array([find(i) for i in range(n)])
    return np.unique(roots, return_inverse=True)[1]


def group_split(texts: Sequence[str], groups: Sequence[str], val_fraction: float, test_fraction: float,
                seed: int, labels: Sequence[int] | None = None, tries: int = 64) -> np.ndarray:
    """``"train"``/``"val"``/``"test"`` per row; connected rows (same group or same normalised text)
    never straddle two splits.

    Components are taken in a seeded random order and handed to test until it holds
    ``test_fraction`` of the rows, then to validation, the rest to training. With ``labels``,
    the best of ``tries`` seeded orders is kept: the one whose splits' positive shares stay
    closest to the whole data's (whole movies, ~25 snippets each, make a plain draw uneven).
    """
    component = connected_groups([normalise(t) for t in texts], list(groups))
    sizes = np.bincount(component)
    positives = np.bincount(component, weights=np.asarray(labels, dtype=float)) if labels is not None else None
    n, rng = len(texts), np.random.default_rng(seed)
    best, best_gap = None, np.inf
    for _ in range(tries if labels is not None else 1):
        order = rng.permutation(len(sizes))
        cumulative = np.cumsum(sizes[order])
        test_end = int(np.searchsorted(cumulative, test_fraction * n)) + 1
        val_end = int(np.searchsorted(cumulative, (test_fraction + val_fraction) * n)) + 1
        split_of = np.empty(len(sizes), dtype=object)
        split_of[order[:test_end]], split_of[order[test_end:val_end]], split_of[order[val_end:]] = "test", "val", "train"
        gap = 0.0 if positives is None else _class_gap(split_of, sizes, positives)
        if gap < best_gap:
            best, best_gap = split_of, gap
    return best[component].astype(str)


def _class_gap(split_of: np.ndarray, sizes: np.ndarray, positives: np.ndarray) -> float:
    """The largest difference between a split's positive share and the whole data's."""
    overall = positives.sum() / sizes.sum()
    return max(abs(positives[split_of == s].sum() / max(sizes[split_of == s].sum(), 1) - overall) for s in SPLITS)


def split_digest(texts: "pd.DataFrame") -> str:
    """One id of a split (which text went where): lab 17 checks it equals lab 15's."""
    import hashlib

    rows = "\n".join(f"{s}\t{int(y)}\t{t}" for s, y, t in zip(texts["split"], texts["label"], texts["text"]))
    return hashlib.sha256(rows.encode()).hexdigest()


# --------------------------------------------------------------------------- the word tokeniser


def train_word_tokenizer(texts: Sequence[str], *, vocab_size: int, min_frequency: int, max_tokens: int):
    """A word-level ``tokenizers.Tokenizer`` fitted on ``texts`` (the training split only)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=[PAD, UNK],
                                        show_progress=False)
    tokenizer.train_from_iterator(list(texts), trainer)
    tokenizer.enable_truncation(max_length=max_tokens)
    return tokenizer


def load_word_tokenizer(folder: Path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(Path(folder) / TOKENIZER))


def pad_ids(sequences: Sequence[Sequence[int]], pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids N x longest, lengths N): sequences right-padded with ``pad_id``; every length >= 1."""
    lengths = torch.tensor([max(1, len(s)) for s in sequences], dtype=torch.long)
    ids = torch.full((len(sequences), int(lengths.max()) if len(sequences) else 1), pad_id, dtype=torch.long)
    for i, s in enumerate(sequences):
        if len(s):
            ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
    return ids, lengths


def encode_words(tokenizer, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (padded with 0) and lengths; an empty encoding becomes one ``[UNK]``."""
    unk = tokenizer.token_to_id(UNK)
    encoded = [e.ids or [unk] for e in tokenizer.encode_batch(list(texts))]
    return pad_ids(encoded)


def prepare_reviews(lab_id: str, dataset: str, cfg, seed: int) -> dict:
    """Split the texts, fit the word tokeniser on training texts, save ids, lengths and labels.

    Writes ``tensors.pt`` (``ids_<split>``, ``lengths_<split>``, ``y_<split>``), ``texts.csv``
    (split, text, label, group: for the baselines, the pretrained tokeniser and the tables of
    mistakes), ``tokenizer.json`` and ``meta.json`` into ``data/processed/<lab_id>``.
    """
    from labflow.frame import paths
    from labflow.data.manifest import write_manifest
    from labflow.data.reviews import load_texts
    from labflow.prep.tensors import save_processed

    folder = paths.processed_dir(lab_id)
    if folder.exists():
        shutil.rmtree(folder)  # the manifest lists every file in it: nothing stale
    df, classes = load_texts(paths.raw_dir(dataset))
    if cfg.subset is not None and cfg.subset < len(df):
        df = df.iloc[np.sort(np.random.default_rng(seed).permutation(len(df))[: cfg.subset])].reset_index(drop=True)
    df = df.assign(split=group_split(df["text"].tolist(), df["group"].tolist(), cfg.val_fraction, cfg.test_fraction, seed,
                                     labels=df["label"].tolist()))
    train_texts = df.loc[df["split"] == "train", "text"].tolist()
    tokenizer = train_word_tokenizer(train_texts, vocab_size=cfg.vocab_size, min_frequency=cfg.min_frequency,
                                     max_tokens=cfg.max_tokens)
    tensors, counts, unk_share = {}, {}, {}
    for split in SPLITS:
        part = df[df["split"] == split]
        ids, lengths = encode_words(tokenizer, part["text"].tolist())
        tensors |= {f"ids_{split}": ids, f"lengths_{split}": lengths,
                    f"y_{split}": torch.as_tensor(part["label"].to_numpy(), dtype=torch.long)}
        counts[split] = np.bincount(part["label"], minlength=len(classes)).tolist()
        real = ids[ids != 0]
        unk_share[split] = float((real == 1).float().mean()) if len(real) else 0.0
    texts = df[["split", "text", "label", "group"]]
    meta = {
        "lab": lab_id, "dataset": dataset, "classes": classes, "positive_class": classes[1],
        "sizes": {k: int(sum(v)) for k, v in counts.items()}, "class_counts": counts,
        "groups": {s: int(df.loc[df["split"] == s, "group"].nunique()) for s in SPLITS},
        "vocab_size": tokenizer.get_vocab_size(), "max_tokens": cfg.max_tokens, "unk_share": unk_share,
        "truncated": {s: int((tensors[f"lengths_{s}"] >= cfg.max_tokens).sum()) for s in SPLITS},
        "split_digest": split_digest(texts),
    }
    save_processed(folder, tensors, meta)
    texts.to_csv(folder / TEXTS, index=False)
    tokenizer.save(str(folder / TOKENIZER))
    write_manifest(folder)  # again: the texts and the tokeniser are part of the processed data
    return meta


def load_texts_split(folder: Path) -> "pd.DataFrame":
    import pandas as pd

    return pd.read_csv(Path(folder) / TEXTS, keep_default_na=False, dtype={"text": str, "group": str, "split": str})


# --------------------------------------------------------------------------- batches


class LengthBatches:
    """Batches ``(ids, lengths, y)`` of texts of similar length, ids trimmed to the batch's longest.

    Each epoch draws a permutation from its own seeded generator, sorts every run of
    ``bucket`` x ``batch_size`` texts by length and shuffles the resulting batches; the
    generator's state is part of :meth:`state_dict`, so a resumed run draws the same batches.
    """

    def __init__(self, ids: torch.Tensor, lengths: torch.Tensor, y: torch.Tensor, *, batch_size: int, seed: int,
                 bucket: int = BUCKET_BATCHES, device: torch.device | str | None = None) -> None:
        if not len(ids) == len(lengths) == len(y) or len(y) == 0:
            raise ValueError(f"ids, lengths and labels must have the same non-zero length, got "
                             f"{len(ids)}, {len(lengths)}, {len(y)}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        self.ids, self.lengths, self.y = ids, lengths, y
        self.n, self.batch_size, self.bucket = len(y), batch_size, max(1, bucket)
        self.device = device
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        chunk = self.batch_size * self.bucket
        full, rest = divmod(self.n, chunk)
        return full * self.bucket + math.ceil(rest / self.batch_size)

    def batch_indices(self) -> list[torch.Tensor]:
        """This epoch's batches as row indices (advances the generator)."""
        order = torch.randperm(self.n, generator=self.generator)
        chunk = self.batch_size * self.bucket
        batches = []
        for start in range(0, self.n, chunk):
            part = order[start : start + chunk]
            part = part[torch.argsort(self.lengths[part], stable=True)]
            batches += list(part.split(self.batch_size))
        shuffle = torch.randperm(len(batches), generator=self.generator)
        return [batches[i] for i in shuffle]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        for idx in self.batch_indices():
            lengths = self.lengths[idx]
            ids = self.ids[idx, : int(lengths.max())]
            batch = (ids, lengths, self.y[idx])
            yield tuple(t.to(self.device) for t in batch) if self.device is not None else batch

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def subset_rows(n: int, size: int | None, seed: int) -> torch.Tensor:
    """The first ``size`` rows of a seeded permutation (all rows, in order, for None)."""
    if size is None or size >= n:
        return torch.arange(n)
    return torch.sort(torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size]).values


@torch.no_grad()
def predict_logits(model: nn.Module, ids: torch.Tensor, lengths: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
    """``model(ids, lengths)`` over all rows in eval mode, in length-sorted chunks (little padding),
    returned in the original order on the CPU."""
    device = next(model.parameters()).device
    order = torch.argsort(lengths, stable=True)
    parts = []
    with evaluating(model):
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            longest = int(lengths[idx].max())
            parts.append(model(ids[idx, :longest].to(device), lengths[idx].to(device)).float().cpu())
    logits = torch.cat(parts)
    out = torch.empty_like(logits)
    out[order] = logits  # back to the input order
    return out


def split_metrics(logits: torch.Tensor, y: torch.Tensor, prefix: str) -> dict[str, float]:
    """Loss and accuracy (torch only: train stages do not import scikit-learn)."""
    return {f"{prefix}_loss": nn.functional.cross_entropy(logits, y).item(),
            f"{prefix}_acc": (logits.argmax(1) == y).float().mean().item()}


def write_scores(path: Path, logits: torch.Tensor, y: torch.Tensor) -> None:
    """Per test text: true label and P(positive), for the evaluate stage's metrics and mistakes."""
    from labflow.tracking import dvc_files

    p = torch.softmax(logits.float(), dim=1)[:, 1]
    dvc_files.write_rows(path, [{"row": i, "y": int(a), "p": round(float(b), 6)} for i, (a, b) in enumerate(zip(y, p))])


def read_scores(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    from labflow.tracking import dvc_files

    rows = dvc_files.read_rows(Path(folder) / "scores.csv")
    return np.array([r["y"] for r in rows], dtype=int), np.array([r["p"] for r in rows], dtype=float)


# --------------------------------------------------------------------------- evaluation (scikit-learn)


def classification_report(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Accuracy, F1 of the positive class, macro-F1 and ROC-AUC of P(positive) at threshold 0.5."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    pred = (p >= 0.5).astype(int)
    return {"test_acc": float(accuracy_score(y, pred)), "test_f1": float(f1_score(y, pred, zero_division=0)),
            "test_macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
            "test_roc_auc": float(roc_auc_score(y, p)) if len(set(y)) == 2 else float("nan")}


def majority_baseline(y_train: np.ndarray, y_test: np.ndarray) -> dict[str, float]:
    """Always predict the training split's majority class ("always fresh")."""
    majority = int(np.bincount(y_train).argmax())
    return classification_report(y_test, np.full(len(y_test), float(majority)))


def tfidf_logreg(train_texts, y_train, val_texts, y_val, test_texts, *, cs: Sequence[float] = (0.25, 1.0, 4.0, 16.0)):
    """TF-IDF of words and word pairs + logistic regression, C chosen on the validation split.

    Returns (test P(positive), the chosen C, validation accuracy per C). Seconds to fit: the
    baseline every neural row must beat to mean anything.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, strip_accents="unicode")
    x_train = vectorizer.fit_transform(train_texts)
    x_val, x_test = vectorizer.transform(val_texts), vectorizer.transform(test_texts)
    val_acc, models = {}, {}
    for c in cs:
        models[c] = LogisticRegression(C=c, solver="liblinear").fit(x_train, y_train)
        val_acc[c] = float((models[c].predict(x_val) == np.asarray(y_val)).mean())
    best = max(cs, key=lambda c: (val_acc[c], -c))
    return models[best].predict_proba(x_test)[:, 1], best, val_acc


def most_wrong(texts: Sequence[str], y: np.ndarray, p: np.ndarray, classes: Sequence[str], k: int = 10) -> list[dict]:
    """The ``k`` test texts with the highest loss: confidently wrong predictions first."""
    p_true = np.where(y == 1, p, 1 - p)
    order = np.argsort(p_true, kind="stable")[:k]
    return [{"rank": r + 1, "true": classes[int(y[i])], "p_true": round(float(p_true[i]), 4), "text": str(texts[i])}
            for r, i in enumerate(order) if p_true[i] < 0.5]


def mistakes_markdown(tables: dict[str, list[dict]]) -> str:
    """One section per model: its most confident mistakes on the test split."""
    lines = ["# The test snippets each model gets most wrong", "",
             "`p_true` is the probability the model gave the true label (lowest first).", ""]
    for model, rows in tables.items():
        lines += [f"## {model}", "", "| rank | true | p_true | text |", "|---|---|---|---|"]
        lines += [f"| {r['rank']} | {r['true']} | {r['p_true']:.3f} | {r['text'].replace('|', '/')} |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def read_meta(folder: Path) -> dict:
    return json.loads((Path(folder) / "meta.json").read_text())


def one_cpu_thread(ctx) -> None:
    """One CPU thread for every model of labs 15 and 17, unless params.yaml sets ``threads``.

    Their steps are many small kernels (recurrent steps of 128 units; attention over ~25 tokens),
    and every kernel on two threads waits for the slower one: with other work on the machine a
    thread is often descheduled, and measured here, an LSTM epoch took 5 CPU-seconds on one
    thread and 99 (418 s of wall time) on two; two MiniLM fine-tuning steps took 41 s.
    """
    from labflow.frame.base import small_model_threads

    small_model_threads(ctx)


def keep_best_callbacks(keep_best: bool) -> tuple:
    """Keep the weights of the epoch with the best validation accuracy (every epoch still trains)."""
    from labflow.train import EarlyStopping

    if not keep_best:
        return ()
    return (EarlyStopping(monitor="val_acc", mode="max", patience=10**9, restore_best=True),)


def kept_val_metrics(result) -> dict:
    """The validation metrics of the epoch whose weights the model ends with (no second pass over val)."""
    best = result.extras.get("best_epoch") or result.epochs_run
    return {k: result.history[best - 1][k] for k in ("val_loss", "val_acc")} | {"best_epoch": best}


def classifier_hooks(ctx, variant: str, data: dict, logits, extra) -> dict:
    """``base.train_variant``'s ``loss_fn``, ``evaluate`` and ``final_metrics`` for a review classifier
    called as ``model(ids, lengths)`` (labs 15 and 17).

    ``logits(model, split)`` predicts a split; ``extra(model)`` adds the lab's own final metrics.
    Per epoch: validation loss and accuracy; at the end, the kept epoch's validation metrics, the
    test metrics, and the test scores written for the evaluate stage (``scores.csv``).
    """

    def loss_fn(m, batch):
        ids, lengths, y = batch
        return nn.functional.cross_entropy(m(ids, lengths), y)

    def evaluate(m):
        return split_metrics(logits(m, "val"), data["y_val"], "val")

    def final_metrics(m, result):
        scores, test = scored_test(logits, m, data)
        write_scores(ctx.results_dir(variant) / "scores.csv", test, data["y_test"])
        return kept_val_metrics(result) | scores | extra(m)

    return {"loss_fn": loss_fn, "evaluate": evaluate, "final_metrics": final_metrics}


def scored_test(logits, model: nn.Module, data: dict) -> tuple[dict[str, float], torch.Tensor]:
    """A review classifier's test metrics (loss, accuracy) and its test logits: what the train stages
    of labs 15 and 17 log as ``final_test_*`` (:func:`classifier_hooks`), and what their
    ``test_scores`` return for any model. ``logits(model, split)`` as for :func:`classifier_hooks`."""
    test = logits(model, "test")
    return split_metrics(test, data["y_test"], "test"), test


def metric_row(m: dict) -> dict:
    return {k: m[k] for k in ("test_acc", "test_f1", "test_macro_f1", "test_roc_auc")}


def roc_figure(scores: dict):
    """Test ROC curves of several models, ``scores`` mapping a name to (y, P(positive))."""
    from sklearn.metrics import roc_curve

    from labflow.plots import figures as figs

    curves = {}
    for name, (y, p) in scores.items():
        fpr, tpr, _ = roc_curve(y, p)
        curves[name] = (fpr, tpr)
    fig = figs.curves(curves, xlabel="false positive rate", ylabel="true positive rate", title="test ROC curves")
    fig.axes[0].plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    return fig
