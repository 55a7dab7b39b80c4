"""Lab 17: the small transformer, the pretrained model's freezing and masking, lab 15's results read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from labflow.frame.config import parse_params
from labflow.data.download import DataError
from labflow.frame import base
from labflow.labs.lab17_transformer_text import lab
from labflow.prep import reviews
from labflow.nets.common import count_parameters


@pytest.fixture
def params(raw_params):
    return parse_params(raw_params | {"profile": "quick"})


def small(**kw):
    cfg = {"vocab_size": 60, "max_len": 20, "d_model": 32, "heads": 4, "layers": 2, "ff": 64, "dropout": 0.1} | kw
    torch.manual_seed(0)
    return lab.SmallTransformer(**cfg)


def test_small_transformer_shapes_and_size(params):
    cfg = params.lab17.scratch
    meta = {"vocab_size": 1000, "max_tokens": 64, "classes": ["rotten", "fresh"]}
    model = lab.scratch_from_info(lab.scratch_info(meta, cfg))
    ids, lengths = torch.randint(2, 1000, (5, 17)), torch.tensor([17, 3, 1, 9, 12])
    assert model(ids, lengths).shape == (5, 2)
    d, ff = cfg.d_model, cfg.ff
    block = 4 * d * d + 4 * d + 2 * d * ff + ff + d + 4 * d  # attention, feed-forward, two layer norms
    assert count_parameters(model) == 1000 * d + 64 * d + cfg.layers * block + 2 * d + d * 2 + 2


def test_padding_mask_is_respected():
    """A text's logits do not depend on how far its batch is padded, nor on what the pads hold."""
    model = small().eval()
    sentence = torch.tensor([[5, 9, 2, 7]])
    alone = model(sentence, torch.tensor([4]))
    batch = torch.zeros(2, 15, dtype=torch.long)
    batch[0, :4], batch[1] = sentence[0], torch.arange(3, 18)
    assert torch.allclose(model(batch, torch.tensor([4, 15]))[0], alone[0], atol=1e-5)
    batch[0, 4:] = 11  # garbage after the end: still masked
    assert torch.allclose(model(batch, torch.tensor([4, 15]))[0], alone[0], atol=1e-5)
    # Told the pads are tokens, the model's answer changes: the mask is what keeps it out.
    assert not torch.allclose(model(batch, torch.tensor([15, 15]))[0], alone[0], atol=1e-3)


def test_scratch_variants_start_from_the_same_weights(params):
    meta = {"vocab_size": 200, "max_tokens": 32, "classes": ["a", "b"]}
    info = lab.scratch_info(meta, params.lab17.scratch)
    a, b = (lab.seeded(lambda: lab.scratch_from_info(info), 42) for _ in range(2))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def tiny_bert():
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32,
                        max_position_embeddings=32, num_labels=2)
    torch.manual_seed(0)
    return BertForSequenceClassification(config)


def test_freezing_keeps_embeddings_and_lower_layers_fixed():
    net = tiny_bert()
    total = sum(p.numel() for p in net.parameters())
    trainable = lab.freeze_lower(net, 2)
    frozen = [n for n, p in net.named_parameters() if not p.requires_grad]
    assert all(n.startswith(("bert.embeddings", "bert.encoder.layer.0.", "bert.encoder.layer.1.")) for n in frozen)
    assert any(n.startswith("bert.encoder.layer.1.") for n in frozen)
    assert all(p.requires_grad for n, p in net.named_parameters() if n.startswith(("bert.encoder.layer.2.", "classifier")))
    assert trainable == sum(p.numel() for p in net.parameters() if p.requires_grad) < total
    with pytest.raises(ValueError, match="only 3 layers"):
        lab.freeze_lower(tiny_bert(), 4)


def test_pretrained_wrapper_builds_the_attention_mask_from_lengths():
    model = lab.PretrainedClassifier(tiny_bert()).eval()
    sentence = torch.tensor([[2, 7, 9, 3]])
    alone = model(sentence, torch.tensor([4]))
    padded = torch.zeros(2, 12, dtype=torch.long)
    padded[0, :4], padded[1] = sentence[0], torch.arange(4, 16)
    assert torch.allclose(model(padded, torch.tensor([4, 12]))[0], alone[0], atol=1e-5)


def test_the_package_model_path_is_offline(params):
    path = lab.pretrained_path(params.lab17.pretrained)
    assert (Path(path) / "model.safetensors").is_file() and (Path(path) / "tokenizer.json").is_file()
    with pytest.raises(DataError, match="not installed"):
        lab.pretrained_path(params.lab17.pretrained.model_copy(update={"name": "no_such_minilm_package"}))


def test_the_package_model_loads_offline_without_changing_the_environment(params, monkeypatch):
    """``local_files_only`` keeps the package's model off the Hub (a Hub address that refuses every
    connection here) and loading sets nothing in ``os.environ``: it once left HF_HUB_OFFLINE=1 behind,
    which later code in the same process (the stage runner's fingerprint, other labs) then saw."""
    import os

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    before = dict(os.environ)
    cfg = params.lab17.pretrained
    assert lab.load_tokenizer(cfg)("a fine film")["input_ids"]
    assert lab.count_parameters(lab.load_pretrained(cfg, 2, seed=0)) > 1e6
    assert dict(os.environ) == before


def write_lab15_results(root, digest: str, variants=("lstm", "gru")):
    folder = root / "results" / "lab15" / "compare"
    folder.mkdir(parents=True)
    m = lambda acc: {"test_acc": acc, "test_f1": 0.8, "test_macro_f1": 0.75, "test_roc_auc": 0.82,  # noqa: E731
                     "epochs_run": 6, "train_seconds": 30.0}
    metrics = {"lstm": m(0.72) | {"val_acc": 0.73}, "gru": m(0.74) | {"val_acc": 0.75},
               "tfidf_logreg": m(0.76), "always_positive": m(0.578),
               "summary": {"best_variant_by_val_acc": "gru", "split_digest": digest},
               # what lab 15's evaluate adds with several seeds and its claims: not baselines
               "seed_bands": {"gru": {"test_acc_mean": 0.74}}, "lessons": {"rnns_beat_majority": 1}}
    (folder / "metrics.json").write_text(json.dumps(metrics))


def test_lab15s_best_model_and_baselines_are_read_on_the_same_split(tmp_path, monkeypatch, params):
    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    ctx = base.LabContext("lab17", params)
    ctx.processed_dir.mkdir(parents=True)
    (ctx.processed_dir / "meta.json").write_text(json.dumps({"split_digest": "abc"}))
    with pytest.raises(FileNotFoundError, match="labs/lab15/dvc.yaml:evaluate"):
        lab.lab15_results(ctx)
    write_lab15_results(tmp_path, "abc")
    got = lab.lab15_results(ctx)
    assert got["best"] == "gru" and got["best_metrics"]["test_acc"] == 0.74
    assert set(got["baselines"]) == {"tfidf_logreg", "always_positive"}
    (ctx.processed_dir / "meta.json").write_text(json.dumps({"split_digest": "other"}))
    with pytest.raises(DataError, match="another split"):
        lab.lab15_results(ctx)


def test_budget_cuts_are_in_the_quick_profile_only(raw_params):
    quick = parse_params(raw_params | {"profile": "quick"}).lab17
    ft = quick.variants["finetune"]
    assert ft.model == "pretrained" and ft.train_size and ft.freeze_layers and ft.epochs == 1
    assert quick.pretrained.source == "package" and quick.pretrained.max_length == 64
    smoke = parse_params(raw_params | {"profile": "smoke"}).lab17
    assert smoke.variants["finetune"].train_size <= 64  # a few steps on a handful of texts
    full = parse_params(raw_params | {"profile": "full"}).lab17
    assert full.pretrained.name == "distilbert-base-uncased" and full.variants["finetune"].train_size is None
    assert full.variants["finetune"].freeze_layers == 0


def test_the_split_digest_names_which_text_went_where():
    import pandas as pd

    a = pd.DataFrame({"split": ["train", "test"], "label": [1, 0], "text": ["x", "y"]})
    b = a.assign(split=["test", "train"])
    assert reviews.split_digest(a) == reviews.split_digest(a.copy()) != reviews.split_digest(b)


@pytest.mark.parametrize("variant", ["scratch", "finetune"])
def test_test_scores_reproduce_what_the_train_stage_wrote(tmp_path, monkeypatch, raw_params, variant):
    """One epoch on lab 15's toy snippets (the fine-tune on 64 of them): for the saved model (left in
    train mode), ``test_scores`` returns the test metrics the train stage wrote, exactly."""
    from labflow.labs.lab15_rnn_sentiment import lab as lab15
    from labflow.train.callbacks import load_weights

    from test_lab15_rnn_sentiment import write_toy_reviews

    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    write_toy_reviews(tmp_path)
    raw_params["profile"] = "smoke"
    raw_params["tracking"]["enabled"] = False
    raw_params["lab17"]["profiles"]["smoke"]["train"]["epochs"] = 1
    params = parse_params(raw_params)
    lab15.preprocess(base.LabContext("lab15", params, progress=False))
    ctx = base.LabContext("lab17", params, progress=False)
    lab.preprocess(ctx)
    lab.train(ctx, variant)
    written = json.loads((ctx.results_dir(variant) / "metrics.json").read_text())
    saved = load_weights(ctx.model_dir(variant) / "model.pt")
    model = (lab.scratch_from_info(saved["info"]) if variant == "scratch"
             else lab.load_pretrained(ctx.cfg.pretrained, saved["info"]["n_classes"], 0))
    model.load_state_dict(saved["state_dict"])
    scores = lab.test_scores(ctx, variant, model.train())
    assert set(scores) == {"test_loss", "test_acc"} and scores == {k: written[k] for k in scores}
    assert model.training
