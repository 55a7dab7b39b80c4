"""Scaled dot-product attention written out, and two readers of a key-value memory built on it.

The lesson of lab 24 is the formula, so it is spelled out here rather than called from
torch: ``softmax(Q K^T / sqrt(d)) V``, with the mask conventions of
``torch.nn.functional.scaled_dot_product_attention`` (a boolean mask keeps the positions that
are True, a float mask is added to the scores, ``is_causal`` keeps key ``j <= i`` for query
``i``). ``tests/test_lab24_attention.py`` checks it against torch's on random inputs.

The readers answer queries about a memory of (key, value) pairs
(:mod:`labflow.prep.recall`). Both embed the same inputs with the same tables (built first,
from the same seed) and end in the same kind of head; only how they read the memory differs:

- :class:`AttentionReader` scores every pair against the query and reads the values
  through the softmax weights: it can look the answer up, and its weights say where it looked.
- :class:`RnnSummaryReader` reads the pairs in order with a GRU (or LSTM) and keeps only the
  last hidden state: every query must be answered from that one summary vector.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(softmax(Q K^T * scale + mask) V, the softmax weights)`` over the last two dimensions.

    query ``(..., L, d)``, key ``(..., S, d)``, value ``(..., S, dv)``; ``attn_mask``
    broadcasts to ``(..., L, S)``. ``scale`` defaults to ``1 / sqrt(d)``: without it the
    scores grow with ``d`` and the softmax saturates. A query whose every key is masked
    gets all-zero weights (and a zero output), as torch's own function gives.
    """
    length, source = query.size(-2), key.size(-2)
    scale = 1.0 / math.sqrt(query.size(-1)) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * scale
    if is_causal:
        if attn_mask is not None:
            raise ValueError("give either attn_mask or is_causal=True, not both (torch's rule too)")
        attn_mask = causal_mask(length, source, device=query.device)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    weights = masked_softmax(scores)
    return weights @ value, weights


def masked_softmax(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension where rows that are all ``-inf`` become all zeros (not NaN)."""
    blocked = torch.isneginf(scores).all(dim=-1, keepdim=True)
    return torch.softmax(scores.masked_fill(blocked, 0.0), dim=-1).masked_fill(blocked, 0.0)


def causal_mask(length: int, source: int, *, device=None) -> torch.Tensor:
    """Boolean ``(length, source)``: query ``i`` may see keys ``0..i`` (top-left aligned, as torch's)."""
    return torch.ones(length, source, dtype=torch.bool, device=device).tril()


def padding_mask(lengths: torch.Tensor, size: int) -> torch.Tensor:
    """Boolean ``(batch, size)``: True at the first ``lengths[b]`` positions, the real ones."""
    return torch.arange(size, device=lengths.device) < lengths.unsqueeze(-1)


# --------------------------------------------------------------------------- the two readers


class PairEmbedding(nn.Module):
    """One vector per memory slot (key embedding + value embedding) and per query (key embedding).

    Index ``n_keys`` / ``n_values`` is padding (embedded as zeros).
    """

    def __init__(self, n_keys: int, n_values: int, dim: int) -> None:
        super().__init__()
        self.keys = nn.Embedding(n_keys + 1, dim, padding_idx=n_keys)
        self.values = nn.Embedding(n_values + 1, dim, padding_idx=n_values)

    def forward(self, keys, values, queries):
        return self.keys(keys) + self.values(values), self.keys(queries)


def _head(in_features: int, hidden: int, n_values: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, n_values))


class AttentionReader(nn.Module):
    """Each query attends over the memory slots (padding masked) and classifies what it read."""

    def __init__(self, n_keys: int, n_values: int, dim: int, hidden: int) -> None:
        super().__init__()
        self.embed = PairEmbedding(n_keys, n_values, dim)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.head = _head(dim, hidden, n_values)

    def read(self, keys, values, lengths, queries) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, queries, n_values)`` and attention weights ``(B, queries, slots)``."""
        slots, asked = self.embed(keys, values, queries)
        mask = padding_mask(lengths, keys.size(1)).unsqueeze(1)  # (B, 1, slots): every query alike
        read, weights = scaled_dot_product_attention(self.q(asked), self.k(slots), self.v(slots), attn_mask=mask)
        return self.head(read), weights

    def forward(self, keys, values, lengths, queries):
        return self.read(keys, values, lengths, queries)[0]


class RnnSummaryReader(nn.Module):
    """A GRU/LSTM reads the real slots in order (packed: padding never enters); its last hidden
    state, beside each query's embedding, is all the head sees."""

    def __init__(self, n_keys: int, n_values: int, dim: int, hidden: int, *, rnn_hidden: int, cell: str = "gru") -> None:
        super().__init__()
        self.embed = PairEmbedding(n_keys, n_values, dim)
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.rnn = rnn(dim, rnn_hidden, batch_first=True)
        self.head = _head(rnn_hidden + dim, hidden, n_values)

    def summary(self, keys, values, lengths) -> torch.Tensor:
        """The last real step's hidden state, ``(B, rnn_hidden)``."""
        from torch.nn.utils.rnn import pack_padded_sequence

        slots, _ = self.embed(keys, values, keys[:, :0])
        packed = pack_padded_sequence(slots, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        h = state[0] if isinstance(state, tuple) else state  # LSTM: (h, c)
        return h[-1]

    def forward(self, keys, values, lengths, queries):
        h = self.summary(keys, values, lengths)
        asked = self.embed.keys(queries)
        return self.head(torch.cat([h.unsqueeze(1).expand(-1, queries.size(1), -1), asked], dim=-1))
