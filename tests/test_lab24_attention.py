"""Lab 24: our attention is torch's (masks included), the recall task is seeded and its splits
disjoint, both readers have the right shapes and start from the same embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from labflow.labs.lab24_attention import lab
from labflow.nets.attention import (
    AttentionReader,
    RnnSummaryReader,
    causal_mask,
    masked_softmax,
    padding_mask,
    scaled_dot_product_attention,
)
from labflow.prep.recall import FIELDS, RecallSpec, generate, memory_signature
from labflow.nets.common import seeded

SPEC = RecallSpec(keys=12, values=6, min_pairs=3, max_pairs=7, queries=2)


def qkv(batch=(3, 2), length=5, source=7, dim=8, dv=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*batch, length, dim, generator=g), torch.randn(*batch, source, dim, generator=g),
            torch.randn(*batch, source, dv, generator=g))


def random_bool_mask(shape, seed=1):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(shape, generator=g) > 0.4
    mask[..., 0] = True  # every query sees something (fully masked rows are tested apart)
    return mask


# --------------------------------------------------------------------------- attention = torch's


@pytest.mark.parametrize("mask_kind", ["none", "bool", "additive", "bool_broadcast", "causal", "causal_wide", "padding"])
def test_matches_torch_scaled_dot_product_attention(mask_kind):
    q, k, v = qkv(source=9 if mask_kind == "causal_wide" else 7, length=5)
    lengths = torch.tensor([7, 3, 5])
    kwargs = {
        "none": {},
        "bool": {"attn_mask": random_bool_mask((3, 2, 5, 7))},
        "additive": {"attn_mask": torch.randn(3, 2, 5, 7, generator=torch.Generator().manual_seed(2))},
        "bool_broadcast": {"attn_mask": random_bool_mask((5, 7))},
        "causal": {"is_causal": True},
        "causal_wide": {"is_causal": True},  # more keys than queries: torch's top-left alignment
        "padding": {"attn_mask": padding_mask(lengths, 7)[:, None, None, :]},
    }[mask_kind]
    ours, weights = scaled_dot_product_attention(q, k, v, **kwargs)
    theirs = F.scaled_dot_product_attention(q, k, v, **kwargs)
    assert ours.shape == theirs.shape == (3, 2, 5, 6)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    assert weights.shape == (3, 2, 5, k.size(-2))


def test_additive_minus_infinity_equals_the_boolean_mask_and_scale_is_honoured():
    q, k, v = qkv()
    keep = random_bool_mask((3, 2, 5, 7), seed=4)
    additive = torch.zeros(keep.shape).masked_fill(~keep, float("-inf"))
    by_bool, _ = scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=0.3)
    by_add, _ = scaled_dot_product_attention(q, k, v, attn_mask=additive, scale=0.3)
    torch.testing.assert_close(by_bool, by_add)
    torch.testing.assert_close(by_bool, F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=0.3),
                               rtol=1e-5, atol=1e-5)


def test_fully_masked_queries_read_zeros_like_torch():
    q, k, v = qkv()
    keep = random_bool_mask((3, 2, 5, 7))
    keep[1, 0, 2] = False
    ours, weights = scaled_dot_product_attention(q, k, v, attn_mask=keep)
    assert torch.equal(weights[1, 0, 2], torch.zeros(7)) and torch.equal(ours[1, 0, 2], torch.zeros(6))
    assert not torch.isnan(ours).any()
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=keep), rtol=1e-5, atol=1e-5)


def test_weights_sum_to_one_and_are_zero_where_masked():
    q, k, v = qkv()
    keep = random_bool_mask((3, 2, 5, 7), seed=7)
    _, weights = scaled_dot_product_attention(q, k, v, attn_mask=keep)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 2, 5))
    assert torch.all(weights[~keep] == 0) and torch.all(weights[keep] > 0)
    _, causal = scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.all(causal[..., ~causal_mask(5, 7)] == 0)
    torch.testing.assert_close(causal.sum(-1), torch.ones(3, 2, 5))


def test_mask_and_causal_together_are_refused():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="not both"):
        scaled_dot_product_attention(q, k, v, attn_mask=random_bool_mask((5, 7)), is_causal=True)


def test_masked_softmax_gradient_is_finite_for_blocked_rows():
    scores = torch.tensor([[1.0, float("-inf")], [float("-inf"), float("-inf")]], requires_grad=True)
    masked_softmax(scores).sum().backward()
    assert torch.isfinite(scores.grad).all()


# --------------------------------------------------------------------------- the recall task


def test_task_is_seeded_and_answers_are_the_stored_values():
    sizes = {"train": 300, "val": 50, "test": 80}
    a, b, c = generate(SPEC, sizes, 3), generate(SPEC, sizes, 3), generate(SPEC, sizes, 4)
    for split, n in sizes.items():
        for f in FIELDS:
            assert torch.equal(a[split][f], b[split][f])
            assert a[split][f].shape[0] == n
    assert not torch.equal(a["train"]["keys"], c["train"]["keys"])
    d = a["train"]
    rows = torch.arange(300).unsqueeze(1)
    assert torch.equal(d["keys"][rows, d["slots"]], d["queries"])
    assert torch.equal(d["values"][rows, d["slots"]], d["targets"])
    assert d["lengths"].min() >= SPEC.min_pairs and d["lengths"].max() <= SPEC.max_pairs
    assert set(d["lengths"].tolist()) == set(range(SPEC.min_pairs, SPEC.max_pairs + 1))
    real = padding_mask(d["lengths"], SPEC.max_pairs)
    assert (d["slots"] < d["lengths"].unsqueeze(1)).all()  # only real slots are asked about
    assert (d["keys"][~real] == SPEC.pad_key).all() and (d["values"][~real] == SPEC.pad_value).all()
    assert (d["keys"][real] < SPEC.keys).all() and (d["values"][real] < SPEC.values).all()
    for keys, n, slots in zip(d["keys"].tolist(), d["lengths"].tolist(), d["slots"].tolist()):
        assert len(set(keys[:n])) == n  # a key names one slot
        assert len(set(slots)) == len(slots)  # distinct queries


def test_splits_are_disjoint_even_when_memories_collide():
    # A tiny task where random draws repeat memories all the time: 4 keys, 2 values, 2 pairs
    # -> 4 * 3 * 2 * 2 = 48 distinct memories in all.
    tiny = RecallSpec(keys=4, values=2, min_pairs=2, max_pairs=2, queries=1)
    splits = generate(tiny, {"train": 30, "val": 8, "test": 10}, 0)
    sigs = {s: [x.tobytes() for x in memory_signature(d["keys"].numpy(), d["values"].numpy())] for s, d in splits.items()}
    everything = [x for v in sigs.values() for x in v]
    assert len(set(everything)) == len(everything) == 48
    with pytest.raises(ValueError, match="distinct memories"):
        generate(tiny, {"train": 40, "val": 8, "test": 10}, 0)


def test_signature_tells_memories_apart():
    keys = np.array([[0, 1, 9], [0, 1, 9], [1, 0, 9]])
    values = np.array([[2, 3, 6], [2, 4, 6], [3, 2, 6]])
    sigs = memory_signature(keys, values)
    assert len({s.tobytes() for s in sigs}) == 3
    assert memory_signature(keys[:1], values[:1])[0] == sigs[0]


def test_spec_refuses_impossible_tasks():
    with pytest.raises(ValueError):
        RecallSpec(keys=5, values=4, min_pairs=3, max_pairs=6, queries=1)  # more pairs than keys
    with pytest.raises(ValueError):
        RecallSpec(keys=5, values=4, min_pairs=2, max_pairs=3, queries=3)  # more queries than pairs


# --------------------------------------------------------------------------- the readers


def batch(n=5, seed=0):
    d = generate(SPEC, {"train": n}, seed)["train"]
    return tuple(d[f] for f in FIELDS)


def test_reader_shapes_and_attention_respects_padding():
    keys, values, lengths, queries, targets, slots = batch()
    attn = AttentionReader(SPEC.keys, SPEC.values, dim=16, hidden=24)
    logits, weights = attn.read(keys, values, lengths, queries)
    assert logits.shape == (5, SPEC.queries, SPEC.values) and weights.shape == (5, SPEC.queries, SPEC.max_pairs)
    torch.testing.assert_close(weights.sum(-1), torch.ones(5, SPEC.queries))
    assert torch.all(weights[~padding_mask(lengths, SPEC.max_pairs).unsqueeze(1).expand_as(weights)] == 0)
    for cell in ("gru", "lstm"):
        rnn = RnnSummaryReader(SPEC.keys, SPEC.values, dim=16, hidden=24, rnn_hidden=20, cell=cell)
        assert rnn(keys, values, lengths, queries).shape == (5, SPEC.queries, SPEC.values)
        assert rnn.summary(keys, values, lengths).shape == (5, 20)


def test_rnn_summary_ignores_the_padding():
    """Packed: what sits in the padded slots cannot change the summary (the course's padding was read)."""
    keys, values, lengths, queries, *_ = batch()
    rnn = RnnSummaryReader(SPEC.keys, SPEC.values, dim=8, hidden=8, rnn_hidden=8).eval()
    other_keys, other_values = keys.clone(), values.clone()
    pad = ~padding_mask(lengths, SPEC.max_pairs)
    assert pad.any()
    other_keys[pad], other_values[pad] = 0, 1
    with torch.no_grad():
        torch.testing.assert_close(rnn.summary(keys, values, lengths), rnn.summary(other_keys, other_values, lengths))


def test_both_readers_start_from_the_same_embeddings():
    class Cfg:
        class train:
            embed_dim, hidden, rnn_hidden = 8, 12, 10

    class Attn:
        reader, cell = "attention", "gru"

    class Rnn:
        reader, cell = "rnn", "gru"

    meta = {"keys": list("ABCDEFGHIJKL"), "values": list("012345")}
    a, r = lab.build_reader(Cfg, Attn, meta, 42), lab.build_reader(Cfg, Rnn, meta, 42)
    assert torch.equal(a.embed.keys.weight, r.embed.keys.weight)
    assert torch.equal(a.embed.values.weight, r.embed.values.weight)
    again = lab.build_reader(Cfg, Attn, meta, 42)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), again.parameters()))


def test_a_perfect_attention_scores_one_and_uniform_scores_chance():
    tensors = batch(50, seed=1)
    lengths, slots = tensors[2], tensors[5]
    perfect = F.one_hot(slots, SPEC.max_pairs).float()
    m = lab.attention_metrics(perfect, slots, "x")
    assert m == {"x_attn_mass": 1.0, "x_attn_hit": 1.0}
    uniform = padding_mask(lengths, SPEC.max_pairs).float().unsqueeze(1).expand(-1, SPEC.queries, -1)
    uniform = uniform / lengths.view(-1, 1, 1)
    chance = lab.chance_levels(tensors, SPEC.values)
    assert lab.attention_metrics(uniform, slots, "x")["x_attn_mass"] == pytest.approx(chance["chance_attn_mass"], rel=1e-5)
    assert chance["chance_acc"] == pytest.approx(1 / SPEC.values)


def test_recall_metrics_count_queries_and_whole_examples():
    tensors = batch(4, seed=2)
    targets = tensors[4]
    logits = F.one_hot(targets, SPEC.values).float() * 10
    logits[0, 0] = -logits[0, 0]  # one query of example 0 wrong
    m = lab.recall_metrics({"logits": logits}, tensors, "t")
    assert m["t_acc"] == pytest.approx(1 - 1 / (4 * SPEC.queries))
    assert m["t_seq_acc"] == pytest.approx(3 / 4)
    assert "t_attn_mass" not in m


def test_attention_learns_the_lookup_quickly(one_thread):  # tiny matrices: one thread is ~30x faster on a busy CPU
    """90 updates on a small task: attention finds the right slot (a broken mask or scale would
    not), far above the 1 / pairs of uniform attention."""
    torch.manual_seed(0)
    data = generate(SPEC, {"train": 1500, "test": 300}, 0)
    train, test = (tuple(data[s][f] for f in FIELDS) for s in ("train", "test"))
    model = AttentionReader(SPEC.keys, SPEC.values, dim=16, hidden=32)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _epoch in range(3):
        for start in range(0, 1500, 50):
            opt.zero_grad()
            lab.loss_of(model, tuple(t[start : start + 50] for t in train)).backward()
            opt.step()
    m = lab.recall_metrics(lab.read_split(model, test), test, "test")
    chance = lab.chance_levels(test, SPEC.values)
    assert m["test_acc"] > 0.9
    assert m["test_attn_mass"] > max(0.6, 2.5 * chance["chance_attn_mass"])


def test_test_scores_reproduce_what_the_train_stage_wrote(tmp_path, monkeypatch, raw_params):
    """The smoke profile's stages on a temporary root: for each variant's saved model (left in train
    mode), ``test_scores`` returns the test metrics its train stage wrote, exactly."""
    import json

    from labflow.frame import base
    from labflow.frame.config import parse_params

    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    raw_params["profile"] = "smoke"
    raw_params["tracking"]["enabled"] = False
    raw_params["lab24"]["profiles"]["smoke"]["train"]["epochs"] = 1
    ctx = base.LabContext("lab24", parse_params(raw_params), progress=False)
    meta = lab.preprocess(ctx)
    for variant in ctx.cfg.variants:
        lab.train(ctx, variant)
        written = json.loads((ctx.results_dir(variant) / "metrics.json").read_text())
        model = lab.load_reader(ctx, variant, meta).train()
        scores = lab.test_scores(ctx, variant, model)
        expected = {"test_loss", "test_acc", "test_seq_acc"} | (
            {"test_attn_mass", "test_attn_hit"} if ctx.cfg.variants[variant].reader == "attention" else set())
        assert set(scores) == expected
        assert scores == {k: written[k] for k in scores}
        assert model.training
