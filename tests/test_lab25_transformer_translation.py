"""Lab 25: the transformer's masks (causal, padding), greedy and beam search (width 1 is greedy;
beam finds what a myopic greedy misses; batching changes nothing), the cross-attention replay, a
tiny model that learns to copy, the warmup schedule, and the stages on lab 16's fixture data
(the decode stages never train or touch the model)."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from labflow.frame.config import parse_params
from labflow.frame import base
from labflow.labs.lab16_seq2seq import lab as lab16
from labflow.labs.lab25_transformer_translation import lab
from labflow.prep.subwords import BOS, EOS, PAD
from labflow.nets.transformer_mt import (TransformerTranslator, beam_search, causal_mask, greedy, length_penalty,
                                         sequence_logprob)

from conftest import REPO, read_params
from test_lab16_seq2seq import lab16_repo  # noqa: F401  (the fixture: lab 16's toy verse pairs)

V_SRC, V_TGT = 30, 40


def tiny_model(seed: int = 0, dropout: float = 0.0) -> TransformerTranslator:
    torch.manual_seed(seed)
    return TransformerTranslator(V_SRC, V_TGT, d_model=32, heads=4, layers=2, ff=64, dropout=dropout).eval()


def random_batch(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, V_SRC, (5, 9), generator=g)
    src[1, 6:] = PAD
    src[3, 3:] = PAD
    return src


# --------------------------------------------------------------------------- masks


def test_causal_mask_blocks_only_the_future():
    assert causal_mask(3).tolist() == [[False, True, True], [False, False, True], [False, False, False]]


def test_future_target_tokens_do_not_change_earlier_outputs():
    model, src = tiny_model(), random_batch()
    memory, pad = model.encode(src)
    tgt = torch.randint(4, V_TGT, (5, 8))
    tgt[:, 0] = BOS
    changed = tgt.clone()
    changed[:, 5:] = torch.randint(4, V_TGT, (5, 3))
    a, b = model.decode(tgt, memory, pad), model.decode(changed, memory, pad)
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-5)
    assert not torch.allclose(a[:, 5:], b[:, 5:], atol=1e-3)  # the later positions do see them


def test_source_padding_is_never_attended_to():
    model, src = tiny_model(), random_batch()
    tgt = torch.tensor([[BOS, 5, 6, 7]] * 5)
    longer = torch.cat([src, torch.full((5, 4), PAD)], dim=1)  # more padding changes nothing
    assert torch.allclose(model(src, tgt), model(longer, tgt), atol=1e-5)
    weights, _ = model.cross_attention(src, tgt)
    assert torch.allclose(weights.sum(-1), torch.ones_like(weights.sum(-1)), atol=1e-5)
    assert weights[:, 3, :, 3:].abs().max() == 0 and weights[:, 1, :, 6:].abs().max() == 0


def test_cross_attention_replay_gives_the_decoders_own_states():
    model, src = tiny_model(), random_batch()
    tgt = torch.tensor([[BOS, 5, 6, 7, PAD]] * 5)
    weights, states = model.cross_attention(src, tgt)
    assert weights.shape == (2, 5, 5, 9)
    assert torch.allclose(states, model.decode(tgt, *model.encode(src)), atol=1e-5)


# --------------------------------------------------------------------------- greedy and beam search


def test_beam_width_one_is_greedy_exactly():
    for seed in range(3):
        model, src = tiny_model(seed), random_batch(seed + 10)
        out_greedy = greedy(model.scorer(src), len(src), 12)
        out_beam, score = beam_search(model.scorer(src, 1), len(src), 1, 12)
        assert torch.equal(out_greedy, out_beam)
        assert torch.allclose(score, sequence_logprob(model.scorer(src), out_greedy), atol=1e-4)


def test_beam_search_is_the_same_sentence_by_sentence_as_batched():
    model, src = tiny_model(3), random_batch(4)
    batched, scores = beam_search(model.scorer(src, 4), len(src), 4, 10, alpha=0.6)
    for i in range(len(src)):
        one, score = beam_search(model.scorer(src[i:i + 1], 4), 1, 4, 10, alpha=0.6)
        width = one.size(1)
        assert batched[i, :width].tolist() == one[0].tolist() and batched[i, width:].eq(PAD).all()
        assert score.item() == pytest.approx(scores[i].item(), abs=1e-4)


def test_lab16s_lstm_decoded_by_our_greedy_matches_its_own_greedy():
    from labflow.nets.seq2seq import Seq2Seq

    torch.manual_seed(0)
    model = Seq2Seq(V_SRC, V_TGT, emb=16, hidden=16, dropout=0.0, attention=True).eval()
    src = random_batch(7)
    src_len = (src != PAD).sum(1)
    own, _ = model.greedy(src, src_len, 10)
    ours = greedy(lab.seq2seq_scorer(model, src, src_len), len(src), 10)
    assert torch.equal(own[:, : ours.size(1)], ours) and own[:, ours.size(1):].eq(PAD).all()
    out_beam, _ = beam_search(lab.seq2seq_scorer(model, src, src_len, 1), len(src), 1, 10)
    assert torch.equal(out_beam, ours)


A, B, C, D = 4, 5, 6, 7  # toy target tokens


def myopic_scorer(prefix: torch.Tensor) -> torch.Tensor:
    """A hand-built next-token distribution where the best first token leads nowhere good:
    first A 0.6 / B 0.4; after A, three tokens at 0.3/0.3/0.4 (then EOS for sure);
    after B, EOS 0.9. Greedy: A C EOS, p = 0.6 * 0.4 = 0.24. Best: B EOS, p = 0.36."""
    rows = []
    for seq in prefix.tolist():
        p = torch.full((8,), 1e-9)
        body = seq[1:]
        if not body:
            p[A], p[B] = 0.6, 0.4
        elif body == [A]:
            p[B], p[D], p[C] = 0.3, 0.3, 0.4
        elif body == [B]:
            p[EOS], p[A] = 0.9, 0.1
        else:
            p[EOS] = 1.0
        rows.append(torch.log(p / p.sum()))
    return torch.stack(rows)


def test_beam_finds_the_higher_scoring_sequence_that_myopic_greedy_misses():
    out_greedy = greedy(myopic_scorer, 1, 5)
    assert out_greedy[0, :3].tolist() == [A, C, EOS]
    out_beam, score = beam_search(myopic_scorer, 1, 2, 5)
    assert out_beam[0, :2].tolist() == [B, EOS]
    assert score.item() == pytest.approx(torch.log(torch.tensor(0.36)).item(), abs=1e-5)
    assert score.item() > sequence_logprob(myopic_scorer, out_greedy).item() + 0.3


def test_length_penalty_prefers_longer_finished_hypotheses_only_when_asked():
    assert length_penalty(torch.tensor([1, 10]), 0.0).tolist() == [1.0, 1.0]
    lp = length_penalty(torch.tensor([1, 10]), 1.0)
    assert lp[1] > lp[0] and lp[0] == pytest.approx(1.0)


# --------------------------------------------------------------------------- learning and the schedule


def test_a_tiny_transformer_learns_to_copy_a_few_pairs():
    torch.manual_seed(0)
    src = torch.tensor([[5, 9, 12, 7, EOS], [8, 8, 15, 11, EOS], [20, 6, 13, EOS, PAD], [14, 10, EOS, PAD, PAD]])
    tgt = torch.full((4, 6), PAD)
    for i, row in enumerate(src.tolist()):
        body = [t for t in row if t not in (PAD, EOS)]
        tgt[i, : len(body) + 2] = torch.tensor([BOS, *body, EOS])
    model = TransformerTranslator(V_SRC, V_SRC, d_model=32, heads=2, layers=1, ff=64, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        optimizer.zero_grad()
        model.train()
        loss = model.loss(src, tgt)
        loss.backward()
        optimizer.step()
    model.eval()
    assert loss.item() < 0.05
    assert torch.equal(greedy(model.scorer(src), 4, 6)[:, :5], tgt[:, 1:])


def test_warmup_then_cosine_schedule():
    assert lab.warmup_cosine(1, 10, 100) == pytest.approx(0.1)
    assert lab.warmup_cosine(10, 10, 100) == pytest.approx(1.0)
    assert lab.warmup_cosine(55, 10, 100) == pytest.approx(0.5)
    assert lab.warmup_cosine(100, 10, 100) == pytest.approx(0.0, abs=1e-9)


def test_the_schedule_resumes_from_adams_own_step_count():
    model = torch.nn.Linear(3, 1)
    opt = lab.WarmupAdam(model.parameters(), 0.01, 1.0, warmup=4, total=20)
    for _ in range(3):
        model(torch.ones(1, 3)).sum().backward()
        opt.step()
    again = lab.WarmupAdam(model.parameters(), 0.01, 1.0, warmup=4, total=20)
    again.load_state_dict(opt.state_dict())
    assert again.updates_done() == 3 and opt.param_groups[0]["lr"] == pytest.approx(0.0075)


# --------------------------------------------------------------------------- the stages on a fixture


def fixture_params(lab16_only: bool = False):
    raw = read_params()
    raw["profile"] = "smoke"
    raw["tracking"]["enabled"] = False
    raw["lab16"]["profiles"]["smoke"]["data"].update(train_size=None, test_size=None)
    return parse_params(raw)


def test_stages_train_once_decode_without_training_and_compare(lab16_repo, monkeypatch):  # noqa: F811
    params = fixture_params()
    lab16.preprocess(base.LabContext("lab16", params, progress=False))
    ctx = base.LabContext("lab25", params, progress=False)
    assert ctx.processed_dir == lab16_repo / "data" / "processed" / "lab16"  # lab 16's data, not a copy
    result = lab.train(ctx, lab.MODEL)
    assert {"val_bleu", "test_loss", "parameters"} <= set(result.metrics)
    weights = lab.model_file(ctx)
    # test_scores reproduces the test metrics the train stage wrote, for the saved model (left in train mode).
    written = json.loads((ctx.results_dir(lab.MODEL) / "metrics.json").read_text())
    model = lab.load_model(weights, ctx.device).train()
    assert lab.test_scores(ctx, lab.MODEL, model) == {"test_loss": written["test_loss"]}
    assert model.training
    before = (lab.file_sha256(weights), weights.stat().st_mtime_ns)

    def no_training(*args, **kwargs):
        raise AssertionError("a decode stage trained")

    monkeypatch.setattr(base, "train_variant", no_training)
    monkeypatch.setattr("labflow.train.fit", no_training)
    monkeypatch.setattr(torch.optim.Optimizer, "step", no_training)
    test_pairs = lab16.load_split_pairs(ctx.processed_dir, "test")
    for variant in ctx.cfg.variants:
        metrics = lab.decode(ctx, variant)
        assert 0 <= metrics["test_bleu"] <= 100
        rows = base.dvc_files.read_rows(ctx.results_dir(variant) / "translations.csv")
        assert [r["reference"] for r in rows] == [p.tgt for p in test_pairs]
        assert json.loads((ctx.results_dir(variant) / "run.json").read_text())["model_sha256"] == before[0]
    assert (lab.file_sha256(weights), weights.stat().st_mtime_ns) == before
    assert not (lab16_repo / "models" / "lab25" / "greedy").exists()
    # Lab 16's comparison, as its evaluate stage writes it (a DVC dependency of lab 25's evaluate).
    compare16 = lab16_repo / "results" / "lab16" / "compare"
    base.dvc_files.write_metrics_and_timings(compare16, {
        "attention": {"val_bleu": 8.0, "test_bleu": 7.5, "test_chrf": 30.0, "train_seconds": 50.0},
        "no_attention": {"val_bleu": 2.0, "test_bleu": 3.0, "test_chrf": 20.0, "train_seconds": 40.0}, "summary": {"test_pairs": 1}})
    lab.evaluate(ctx)
    table = (ctx.results_dir() / "comparison.md").read_text()
    assert "lab16 attention (greedy)" in table and "| 7.5 |" in table and "nearest training" in table
    assert "lab16 attention (beam" not in table  # lab 16's model is not there to decode
    out = json.loads((ctx.results_dir() / "metrics.json").read_text())
    assert out["summary"]["lab16_best_bleu"] == 7.5 and "beam_minus_greedy_bleu" in out["summary"]
    # The training's validation BLEU is greedy decoding's: the beam row leaves it empty.
    assert "val_bleu" in out["greedy"] and "val_bleu" not in out["beam"]
    assert out["greedy"]["test_bleu"] == pytest.approx(json.loads(
        (ctx.results_dir("greedy") / "metrics.json").read_text())["test_bleu"])
    figures = {p.stem for p in (ctx.results_dir() / "figures").glob("*.png")}
    assert {"test_bleu", "cross_attention", "loss_by_epoch", "sample_translations"} <= figures


def test_decode_names_the_missing_model(lab16_repo):  # noqa: F811
    ctx = base.LabContext("lab25", fixture_params(), progress=False)
    with pytest.raises(FileNotFoundError, match="labs/lab25/dvc.yaml:train@42"):
        lab.decode(ctx, "beam")


def test_the_train_stage_trains_only_the_shared_model(lab16_repo):  # noqa: F811
    ctx = base.LabContext("lab25", fixture_params(), progress=False)
    with pytest.raises(KeyError, match="only decode"):
        lab.train(ctx, "beam")


def test_lab16s_model_is_picked_on_validation_bleu_not_test(tmp_path):
    folder = tmp_path / "results" / "lab16" / "compare"
    base.dvc_files.write_metrics_and_timings(folder, {
        "attention": {"val_bleu": 5.0, "test_bleu": 9.0, "test_chrf": 30.0},
        "no_attention": {"val_bleu": 6.0, "test_bleu": 4.0, "test_chrf": 20.0}, "summary": {"test_pairs": 1}})
    name, metrics = lab.lab16_best(tmp_path)
    assert name == "no_attention" and metrics["test_bleu"] == 4.0
