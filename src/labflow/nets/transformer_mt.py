"""An ``nn.Transformer`` encoder-decoder for translation, and the two ways lab 25 decodes it.

The model: token embeddings scaled by sqrt(d) plus fixed sinusoidal positions, PyTorch's
``nn.Transformer`` in its pre-LN form (``norm_first=True``: layer norm before each block,
which trains without the post-LN's fragile start on a small budget), a causal mask on the
decoder's self-attention and key-padding masks on both sides, so no position ever attends to
padding or to a later target token.

Decoding, both batched over sentences: ``greedy`` takes the most likely token at each step;
``beam_search`` keeps the ``beam`` best prefixes of every sentence (by summed log-probability)
and picks among the finished ones by score / GNMT length penalty ((5 + n) / 6) ** alpha. Both
take a ``next_logprobs(prefix) -> (rows, vocab)`` function, so they run on any scorer, and the
tests can hand them a small hand-built one where greedy is myopic. With ``beam=1`` the beam
search makes exactly greedy's choices (tested).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from labflow.prep.subwords import BOS, EOS, PAD

NextLogprobs = Callable[[torch.Tensor], torch.Tensor]  # prefixes (rows, t) -> log-probs (rows, vocab)


def sinusoids(length: int, dim: int) -> torch.Tensor:
    """The fixed positional encodings of "Attention is all you need" (length, dim)."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    rate = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10_000.0) / dim))
    out = torch.zeros(length, dim)
    out[:, 0::2] = torch.sin(position * rate)
    out[:, 1::2] = torch.cos(position * rate[: dim // 2])
    return out


def causal_mask(length: int, device=None) -> torch.Tensor:
    """True above the diagonal: position t may not attend to positions after t."""
    return torch.triu(torch.ones(length, length, dtype=torch.bool, device=device), diagonal=1)


class TransformerTranslator(nn.Module):
    def __init__(self, src_vocab: int, tgt_vocab: int, *, d_model: int, heads: int, layers: int, ff: int,
                 dropout: float, max_len: int = 256) -> None:
        super().__init__()
        self.d_model = d_model
        self.src_embed = nn.Embedding(src_vocab, d_model, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(tgt_vocab, d_model, padding_idx=PAD)
        self.register_buffer("positions", sinusoids(max_len, d_model), persistent=False)
        self.drop = nn.Dropout(dropout)

        def encoder_layer():
            return nn.TransformerEncoderLayer(d_model, heads, ff, dropout, batch_first=True, norm_first=True)

        # Built by hand only to turn off the nested-tensor fast path, which pre-LN layers cannot use.
        encoder = nn.TransformerEncoder(encoder_layer(), layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False)
        self.transformer = nn.Transformer(d_model, heads, layers, layers, ff, dropout, batch_first=True,
                                          norm_first=True, custom_encoder=encoder)
        self.out = nn.Linear(d_model, tgt_vocab)
        # Embeddings drawn with std 1/sqrt(d) (they are scaled by sqrt(d) on the way in), and the
        # output projection shares the target embedding (Vaswani et al. 2017, sec. 3.4): a third fewer
        # weights to learn from a few thousand pairs, and logits of unit scale at the start.
        for table in (self.src_embed, self.tgt_embed):
            nn.init.normal_(table.weight, std=d_model ** -0.5)
            with torch.no_grad():
                table.weight[PAD].zero_()
        self.out.weight = self.tgt_embed.weight

    def _embed(self, table: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
        return self.drop(table(ids) * math.sqrt(self.d_model) + self.positions[: ids.size(1)])

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder states (B, S, d) and the source padding mask (B, S; True at padding)."""
        pad = src == PAD
        return self.transformer.encoder(self._embed(self.src_embed, src), src_key_padding_mask=pad), pad

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, src_pad: torch.Tensor) -> torch.Tensor:
        """Decoder states (B, T, d) for ``tgt_in`` (BOS + target so far), each seeing only earlier tokens."""
        return self.transformer.decoder(
            self._embed(self.tgt_embed, tgt_in), memory, tgt_mask=causal_mask(tgt_in.size(1), tgt_in.device),
            tgt_key_padding_mask=tgt_in == PAD, memory_key_padding_mask=src_pad)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, T, V)."""
        memory, pad = self.encode(src)
        return self.out(self.decode(tgt_in, memory, pad))

    def loss(self, src: torch.Tensor, tgt: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
        """Mean cross-entropy per real target token (``tgt`` is BOS + sentence + EOS), teacher forced.

        The vocabulary projection runs on the real tokens only."""
        memory, pad = self.encode(src)
        states = self.decode(tgt[:, :-1], memory, pad)
        gold = tgt[:, 1:]
        real = gold != PAD
        return F.cross_entropy(self.out(states[real]), gold[real], label_smoothing=label_smoothing)

    def scorer(self, src: torch.Tensor, copies: int = 1) -> NextLogprobs:
        """``next_logprobs`` for the decoders: each source sentence encoded once, repeated ``copies`` times
        (row ``b * copies + k`` is copy ``k`` of sentence ``b``, the beam search's layout)."""
        memory, pad = self.encode(src)
        memory, pad = memory.repeat_interleave(copies, 0), pad.repeat_interleave(copies, 0)

        def next_logprobs(prefix: torch.Tensor) -> torch.Tensor:
            return torch.log_softmax(self.out(self.decode(prefix, memory, pad)[:, -1]), dim=-1)

        return next_logprobs

    @torch.no_grad()
    def cross_attention(self, src: torch.Tensor, tgt_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-attention weights (layers, B, T, S), averaged over heads, and the decoder's output states.

        ``nn.TransformerDecoderLayer`` never returns its weights, so this replays each pre-LN layer's
        three blocks, asking the cross-attention for its weights on the way (a test checks the replay's
        states equal ``decode``'s)."""
        memory, pad = self.encode(src)
        x = self._embed(self.tgt_embed, tgt_in)
        mask, tgt_pad = causal_mask(tgt_in.size(1), tgt_in.device), tgt_in == PAD
        weights = []
        for layer in self.transformer.decoder.layers:
            x = x + layer._sa_block(layer.norm1(x), mask, tgt_pad)
            query = layer.norm2(x)
            _, w = layer.multihead_attn(query, memory, memory, key_padding_mask=pad, need_weights=True,
                                        average_attn_weights=True)
            weights.append(w)
            x = x + layer._mha_block(query, memory, None, pad)
            x = x + layer._ff_block(layer.norm3(x))
        return torch.stack(weights), self.transformer.decoder.norm(x)


# --------------------------------------------------------------------------- decoding


def _start(rows: int, device) -> torch.Tensor:
    return torch.full((rows, 1), BOS, dtype=torch.long, device=device)


@torch.no_grad()
def greedy(next_logprobs: NextLogprobs, batch: int, max_len: int, device=None) -> torch.Tensor:
    """The most likely token at every step (B, <= max_len): EOS ends a sentence, PAD after it."""
    prefix = _start(batch, device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    for _ in range(max_len):
        token = next_logprobs(prefix).argmax(-1).masked_fill(done, PAD)
        prefix = torch.cat([prefix, token.unsqueeze(1)], dim=1)
        done |= token == EOS
        if done.all():
            break
    return prefix[:, 1:]


def length_penalty(lengths: torch.Tensor, alpha: float) -> torch.Tensor:
    """GNMT's ((5 + n) / 6) ** alpha (Wu et al. 2016); alpha 0 compares raw log-probabilities."""
    return ((5.0 + lengths.float()) / 6.0) ** alpha


@torch.no_grad()
def beam_search(next_logprobs: NextLogprobs, batch: int, beam: int, max_len: int, *, alpha: float = 0.0,
                device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Beam search for ``batch`` sentences at once: the best sequence of each (B, <= max_len) and its
    summed log-probability (B,).

    ``next_logprobs`` sees ``batch * beam`` prefixes, sentence ``b``'s beams in rows ``b*beam ...``.
    A finished hypothesis (it produced EOS) stays in the beam, extended by PAD at no cost, and
    competes with the open ones on its score; the search stops when every kept hypothesis has
    finished or at ``max_len``, and each sentence's answer is its kept hypothesis with the best
    score / length penalty. Each step first keeps the ``beam`` best tokens of every hypothesis and
    then the ``beam`` best of those ``beam * beam`` candidates, so ``beam=1`` is greedy exactly.
    """
    rows = batch * beam
    prefix = _start(rows, device)
    scores = torch.zeros(batch, beam, device=device)
    scores[:, 1:] = float("-inf")  # all beams start as the same BOS: expand only the first
    done = torch.zeros(rows, dtype=torch.bool, device=device)
    lengths = torch.zeros(rows, dtype=torch.long, device=device)  # tokens up to and including EOS
    offsets = (torch.arange(batch, device=device) * beam).unsqueeze(1)
    for _ in range(max_len):
        logp = next_logprobs(prefix)
        vocab = logp.size(-1)
        finished = torch.full_like(logp[0], float("-inf"))
        finished[PAD] = 0.0
        logp = torch.where(done.unsqueeze(1), finished, logp)
        top_logp, top_tok = logp.topk(min(beam, vocab), dim=-1)  # (rows, k)
        k = top_logp.size(1)
        candidates = (scores.view(rows, 1) + top_logp).view(batch, beam * k)
        scores, pick = candidates.topk(beam, dim=-1)  # (batch, beam)
        parent = (offsets + pick // k).view(-1)
        token = top_tok.view(batch, beam * k).gather(1, pick).view(-1)
        was_done = done[parent]
        prefix = torch.cat([prefix[parent], token.unsqueeze(1)], dim=1)
        lengths = lengths[parent] + (~was_done).long()
        done = was_done | (token == EOS)
        if done.all():
            break
    ranked = scores / length_penalty(lengths.view(batch, beam), alpha)
    best = (offsets.squeeze(1) + ranked.argmax(-1))
    return prefix[best, 1:], scores.view(-1)[best]


def sequence_logprob(next_logprobs: NextLogprobs, tokens: torch.Tensor) -> torch.Tensor:
    """Summed log-probability of each row of ``tokens`` (without BOS; up to and including EOS)."""
    prefix = _start(tokens.size(0), tokens.device)
    total = torch.zeros(tokens.size(0), device=tokens.device)
    alive = torch.ones(tokens.size(0), dtype=torch.bool, device=tokens.device)
    for t in range(tokens.size(1)):
        token = tokens[:, t]
        lp = next_logprobs(prefix).gather(1, token.unsqueeze(1)).squeeze(1)
        total += torch.where(alive & (token != PAD), lp, torch.zeros_like(lp))
        alive &= token != EOS
        prefix = torch.cat([prefix, token.unsqueeze(1)], dim=1)
    return total
