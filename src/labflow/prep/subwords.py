"""Subword tokenisers for the translation labs (16, 24, 25), with Hugging Face ``tokenizers``.

One byte-pair-encoding tokeniser per language, trained on the training split only (a
tokeniser that has seen the test sentences has learnt part of the test set). SentencePiece's
metaspace marks word starts with ``▁``, so decoding gives back the text with its spaces.
Ids 0-3 are the same in every tokeniser: padding, unknown, start and end of sentence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "<s>", "</s>")


def train_tokenizer(texts: Iterable[str], vocab_size: int, *, min_frequency: int = 2):
    """A BPE tokeniser of at most ``vocab_size`` tokens learnt from ``texts``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=SPECIALS[UNK]))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIALS), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    assert [tok.token_to_id(s) for s in SPECIALS] == [PAD, UNK, BOS, EOS]
    return tok


def save_tokenizer(tok, path: str | Path) -> None:
    Path(path).write_text(tok.to_str(pretty=False) + "\n", encoding="utf-8")


def load_tokenizer(path: str | Path):
    from tokenizers import Tokenizer

    return Tokenizer.from_str(Path(path).read_text(encoding="utf-8"))


def encode(tok, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text (no start or end marks)."""
    return [e.ids for e in tok.encode_batch(list(texts), add_special_tokens=False)]


def pad_ids(ids: Sequence[Sequence[int]], *, bos: bool = False, eos: bool = True, length: int | None = None) -> torch.Tensor:
    """(N, L) int64 ids padded with PAD; ``bos``/``eos`` add the start and end marks."""
    rows = [[BOS] * bos + list(seq) + [EOS] * eos for seq in ids]
    width = length or max((len(r) for r in rows), default=1)
    out = torch.full((len(rows), width), PAD, dtype=torch.long)
    for i, row in enumerate(rows):
        row = row[:width]
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def strip_ids(ids: Sequence[int]) -> list[int]:
    """The ids before the first end mark, without start marks or padding."""
    out = []
    for i in ids:
        i = int(i)
        if i == EOS:
            break
        if i not in (PAD, BOS):
            out.append(i)
    return out


def decode(tok, rows: Iterable[Sequence[int]]) -> list[str]:
    """Texts of id rows cut at their end mark."""
    return tok.decode_batch([strip_ids(r) for r in rows], skip_special_tokens=True)


def tokens(tok, ids: Sequence[int]) -> list[str]:
    """Readable token strings for heatmap labels: a word's first piece as is, later pieces as ``-piece``."""
    out = []
    for i in ids:
        piece = tok.id_to_token(int(i))
        if piece in SPECIALS:
            out.append(piece)
        else:
            out.append(piece[1:] or piece if piece.startswith("\u2581") else f"-{piece}")
    return out
