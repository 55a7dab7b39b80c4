"""An RNN encoder-decoder for translation, with or without attention: one class, one switch.

Both variants share every layer: a bidirectional LSTM encoder whose summary and states never
include padding, an LSTM decoder started from the encoder's summary, and a read-out that
combines the decoder state with a context vector. The only difference is that context:
without attention it is the encoder's summary (the same vector at every step, Cho et al.
2014); with attention it is a weighted mean of the encoder's states, re-weighted at every
output step (Luong et al. 2015, "general" score, scaled), with padded source positions
masked out. The attention's own weights are built last, so the shared layers start from the
same numbers in both variants.

The decoder reads the whole target sequence in one LSTM call during training (teacher
forcing; Luong's attention looks at the decoder's states after the LSTM, so no step waits for
the previous step's context), several times faster on a CPU than a Python loop over time
steps. LSTM, as in the course, also because PyTorch's fused CPU kernel made it 1.2x faster
than a GRU of the same size here.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from labflow.prep.subwords import BOS, EOS, PAD


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each row's first ``lengths[b]`` steps in reverse order, padding left where it was (B, S, ...)."""
    steps = torch.arange(x.size(1), device=x.device).expand(x.size(0), -1)
    last = (lengths.to(x.device) - 1).unsqueeze(1)
    index = torch.where(steps <= last, last - steps, steps)
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


class Encoder(nn.Module):
    """A bidirectional LSTM that never reads padding into the states it hands on.

    The backward direction is a second LSTM run on each sentence reversed (padding stays at the
    end), rather than ``bidirectional=True`` on packed sequences: packed LSTMs fall back to a
    slow kernel on CPUs (1.7x slower here), and an unpacked backward pass would start on padding.
    """

    def __init__(self, vocab: int, emb: int, hidden: int, dropout: float) -> None:
        super().__init__()
        if hidden % 2:
            raise ValueError(f"hidden must be even (two directions of hidden/2), got {hidden}")
        self.embed = nn.Embedding(vocab, emb, padding_idx=PAD)
        self.forward_rnn = nn.LSTM(emb, hidden // 2, batch_first=True)
        self.backward_rnn = nn.LSTM(emb, hidden // 2, batch_first=True)
        self.drop = nn.Dropout(dropout)

    def forward(self, src: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """States (B, S, H), zero at padding, and a summary (B, H) of each source sentence."""
        x = self.drop(self.embed(src))
        fwd, _ = self.forward_rnn(x)
        bwd, _ = self.backward_rnn(reverse_padded(x, lengths))
        rows, last = torch.arange(src.size(0), device=src.device), lengths.to(src.device) - 1
        # Forward direction's state after the last real token, backward's after the first.
        summary = torch.cat([fwd[rows, last], bwd[rows, last]], dim=-1)
        states = torch.cat([fwd, reverse_padded(bwd, lengths)], dim=-1)
        return states * (src != PAD).unsqueeze(-1), summary


class Attention(nn.Module):
    """score(s_t, h_i) = s_t . W h_i / sqrt(H); softmax over the real source tokens only."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.key = nn.Linear(hidden, hidden, bias=False)
        self.scale = 1.0 / math.sqrt(hidden)

    def forward(self, queries: torch.Tensor, states: torch.Tensor, src_mask: torch.Tensor):
        """Context (B, T, H) and weights (B, T, S) for decoder states ``queries`` (B, T, H)."""
        scores = torch.bmm(queries, self.key(states).transpose(1, 2)) * self.scale
        scores = scores.masked_fill(~src_mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.bmm(weights, states), weights


class Decoder(nn.Module):
    def __init__(self, vocab: int, emb: int, hidden: int, dropout: float, attention: bool) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, emb, padding_idx=PAD)
        self.bridge = nn.Linear(hidden, hidden)  # encoder summary -> first decoder state
        self.rnn = nn.LSTM(emb, hidden, batch_first=True)
        self.combine = nn.Linear(2 * hidden, hidden)  # [decoder state; context] -> read-out state
        self.out = nn.Linear(hidden, vocab)
        self.drop = nn.Dropout(dropout)
        # Last, so every layer above draws the same initial weights with or without it.
        self.attention = Attention(hidden) if attention else None

    def forward(self, tgt_in, states, summary, src_mask, hidden=None):
        """Read-out states (B, T, H), the LSTM state to continue from, and attention weights (B, T, S) or None."""
        if hidden is None:
            h0 = torch.tanh(self.bridge(summary)).unsqueeze(0)
            hidden = (h0, torch.zeros_like(h0))
        s, hidden = self.rnn(self.drop(self.embed(tgt_in)), hidden)
        if self.attention is not None:
            context, weights = self.attention(s, states, src_mask)
        else:
            context, weights = summary.unsqueeze(1).expand_as(s), None
        return torch.tanh(self.combine(torch.cat([s, context], dim=-1))), hidden, weights

    def logits(self, readout: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(readout))


class Seq2Seq(nn.Module):
    def __init__(self, src_vocab: int, tgt_vocab: int, *, emb: int, hidden: int, dropout: float, attention: bool) -> None:
        super().__init__()
        self.encoder = Encoder(src_vocab, emb, hidden, dropout)
        self.decoder = Decoder(tgt_vocab, emb, hidden, dropout, attention)

    @property
    def uses_attention(self) -> bool:
        return self.decoder.attention is not None

    def forward(self, src, src_len, tgt_in):
        """Teacher-forced logits (B, T, V) for ``tgt_in`` (the target shifted right, starting with BOS)."""
        states, summary = self.encoder(src, src_len)
        readout, _, _ = self.decoder(tgt_in, states, summary, src != PAD)
        return self.decoder.logits(readout)

    def loss(self, src, src_len, tgt) -> torch.Tensor:
        """Mean cross-entropy per real target token, teacher forced; ``tgt`` is BOS + sentence + EOS.

        The vocabulary projection, most of the cost on a CPU, runs on the real tokens only.
        """
        states, summary = self.encoder(src, src_len)
        readout, _, _ = self.decoder(tgt[:, :-1], states, summary, src != PAD)
        gold = tgt[:, 1:]
        real = gold != PAD
        return F.cross_entropy(self.decoder.logits(readout[real]), gold[real])

    @torch.no_grad()
    def greedy(self, src, src_len, max_len: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Greedy translations (B, <= max_len) ending in EOS or cut at ``max_len``, and the
        attention weights (B, steps, S) of each output step (None without attention)."""
        states, summary = self.encoder(src, src_len)
        mask = src != PAD
        token = torch.full((src.size(0), 1), BOS, dtype=torch.long, device=src.device)
        done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
        hidden, out, weights = None, [], []
        for _ in range(max_len):
            readout, hidden, w = self.decoder(token, states, summary, mask, hidden)
            token = self.decoder.logits(readout[:, -1]).argmax(-1, keepdim=True).masked_fill(done.unsqueeze(1), PAD)
            out.append(token)
            if w is not None:
                weights.append(w)
            done |= token.squeeze(1) == EOS
            if done.all():
                break
        return torch.cat(out, dim=1), (torch.cat(weights, dim=1) if weights else None)


def trim(src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor | None = None):
    """Cut a batch's padding columns beyond its longest sentence (the tensors are padded to the set's)."""
    src = src[:, : int(src_len.max())]
    if tgt is None:
        return src
    return src, tgt[:, : int((tgt != PAD).sum(1).max())]


class LengthBatches:
    """Shuffled mini-batches of sentences of similar length: less padding to compute through.

    Each epoch shuffles the rows with its own seeded generator, sorts each pool of ``pool``
    batches' worth of rows by length, cuts the pools into batches and shuffles the order of
    the batches; every row is seen once per epoch. Batches are cut to their longest sentence
    (``trim``). The generator's state is in :meth:`state_dict`, so a resumed run draws the
    same batches as an uninterrupted one. Measured here: 15% less time per epoch than
    uniformly shuffled batches on the verse pairs.
    """

    def __init__(self, src, src_len, tgt, *, batch_size: int, pool: int = 32, seed: int = 0, device=None) -> None:
        if batch_size <= 0 or pool <= 0:
            raise ValueError(f"batch_size and pool must be > 0, got {batch_size} and {pool}")
        self.tensors = tuple(t.to(device) if device is not None else t for t in (src, src_len, tgt))
        self.lengths = torch.maximum(src_len, (tgt != PAD).sum(1))
        self.batch_size, self.pool = batch_size, pool
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self):
        order = torch.randperm(len(self.lengths), generator=self.generator)
        span = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), span):
            chunk = order[start:start + span]
            chunk = chunk[torch.argsort(self.lengths[chunk], stable=True)]
            batches += list(chunk.split(self.batch_size))
        device = self.tensors[0].device
        for k in torch.randperm(len(batches), generator=self.generator).tolist():
            idx = batches[k].to(device)
            src, src_len, tgt = (t.index_select(0, idx) for t in self.tensors)
            src, tgt = trim(src, src_len, tgt)
            yield src, src_len, tgt

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
