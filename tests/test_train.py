"""The shared training loop: learning, batching, early stopping, crash-safe resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from labflow.frame import atomic
from labflow.nets.common import mlp, seeded
from labflow.train import Checkpoint, EarlyStopping, Optimizers, TensorBatches, choose_device, fit, seed_everything
from labflow.train.callbacks import Callback, LossTrace


def toy_data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    return x, y


def make_run(seed=0, batch_size=16, dropout=0.2):
    seed_everything(seed)
    x, y = toy_data()
    model = seeded(lambda: mlp(8, [16], 2, dropout=dropout), seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    batches = TensorBatches(x, y, batch_size=batch_size, seed=seed)

    def loss_fn(m, batch):
        return F.cross_entropy(m(batch[0]), batch[1])

    def evaluate(m):
        return {"val_loss": F.cross_entropy(m(x), y).item()}

    return model, optimizer, batches, loss_fn, evaluate


def test_loss_goes_down():
    model, opt, batches, loss_fn, evaluate = make_run()
    result = fit(model, opt, batches, loss_fn, epochs=8, evaluate=evaluate, progress=False)
    losses = [row["val_loss"] for row in result.history]
    assert losses[-1] < 0.5 * losses[0]
    assert result.updates == 8 * len(batches) and result.epochs_run == 8
    assert [row["updates"] for row in result.history] == [len(batches) * (i + 1) for i in range(8)]


def test_same_seed_same_history():
    a = fit(*make_run()[:4], epochs=3, evaluate=make_run()[4], progress=False)
    b = fit(*make_run()[:4], epochs=3, evaluate=make_run()[4], progress=False)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(a.history) == strip(b.history)


def test_tensor_batches_cover_each_sample_once_per_epoch():
    x = torch.arange(10).float().unsqueeze(1)
    batches = TensorBatches(x, torch.arange(10), batch_size=4, seed=1)
    assert len(batches) == 3
    seen = torch.cat([b[1] for b in batches])
    assert sorted(seen.tolist()) == list(range(10))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    assert len(TensorBatches(x, batch_size=4, drop_last=True)) == 2
    full = list(TensorBatches(x, batch_size=0))
    assert len(full) == 1 and len(full[0][0]) == 10
    with pytest.raises(ValueError):
        TensorBatches(x, torch.arange(3), batch_size=2)


def test_early_stopping_stops_and_restores_best():
    class Scripted(Callback):
        """Overwrites val_loss with a scripted sequence: best at epoch 2."""

        values = [1.0, 0.5, 0.7, 0.8, 0.9, 0.95]

        def on_epoch_end(self, state):
            state.history[-1]["val_loss"] = self.values[state.epoch - 1]
            if state.epoch == 2:
                self.best_weights = {k: v.clone() for k, v in state.model.state_dict().items()}

    model, opt, batches, loss_fn, _ = make_run()
    scripted = Scripted()
    stopper = EarlyStopping(monitor="val_loss", patience=2)
    result = fit(model, opt, batches, loss_fn, epochs=6, evaluate=lambda m: {}, callbacks=[scripted, stopper], progress=False)
    assert result.stopped_early and result.epochs_run == 4
    assert result.extras["best_epoch"] == 2
    for key, value in model.state_dict().items():
        assert torch.equal(value, scripted.best_weights[key])


class Crash(Callback):
    def __init__(self, after_epoch):
        self.after_epoch = after_epoch

    def on_epoch_end(self, state):
        if state.epoch == self.after_epoch:
            raise RuntimeError("simulated crash")


def test_resume_after_crash_matches_uninterrupted_run(tmp_path):
    epochs = 5
    model, opt, batches, loss_fn, evaluate = make_run()
    trace = LossTrace(every=5)
    reference = fit(model, opt, batches, loss_fn, epochs=epochs, evaluate=evaluate, callbacks=[trace], progress=False)
    reference_weights = {k: v.clone() for k, v in model.state_dict().items()}

    ckpt = tmp_path / "last.pt"
    model, opt, batches, loss_fn, evaluate = make_run()
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(model, opt, batches, loss_fn, epochs=epochs, evaluate=evaluate,
            callbacks=[LossTrace(every=5), Crash(3), Checkpoint(ckpt, "fp")], progress=False)
    assert ckpt.exists()

    # A new process: fresh objects, different global RNG state, same checkpoint.
    torch.manual_seed(999)
    model, opt, batches, loss_fn, evaluate = make_run(seed=0)
    torch.rand(10)
    trace2 = LossTrace(every=5)
    resumed = fit(model, opt, batches, loss_fn, epochs=epochs, evaluate=evaluate,
                  callbacks=[trace2, Checkpoint(ckpt, "fp")], progress=False)
    # The crash hit during epoch 3's end, before its checkpoint: resume after epoch 2.
    assert resumed.resumed_from == 2
    assert resumed.epochs_run == epochs
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(reference.history)
    assert [r["train_loss"] for r in trace2.rows] == [r["train_loss"] for r in trace.rows]
    for key, value in model.state_dict().items():
        assert torch.equal(value, reference_weights[key]), key


def test_checkpoint_from_other_settings_is_ignored(tmp_path):
    ckpt = tmp_path / "last.pt"
    model, opt, batches, loss_fn, evaluate = make_run()
    with pytest.raises(RuntimeError):
        fit(model, opt, batches, loss_fn, epochs=3, evaluate=evaluate, callbacks=[Crash(1), Checkpoint(ckpt, "old")], progress=False)
    model, opt, batches, loss_fn, evaluate = make_run()
    result = fit(model, opt, batches, loss_fn, epochs=2, evaluate=evaluate, callbacks=[Checkpoint(ckpt, "new")], progress=False)
    assert result.resumed_from is None and result.epochs_run == 2


def test_finished_checkpoint_does_not_skip_a_rerun(tmp_path):
    ckpt = tmp_path / "last.pt"
    for _ in range(2):
        model, opt, batches, loss_fn, evaluate = make_run()
        result = fit(model, opt, batches, loss_fn, epochs=2, evaluate=evaluate, callbacks=[Checkpoint(ckpt, "fp")], progress=False)
        assert result.resumed_from is None and result.updates == 2 * len(batches)


def test_loss_trace_records_points_with_updates_and_seconds():
    model, opt, batches, loss_fn, evaluate = make_run()
    trace = LossTrace(every=4)
    fit(model, opt, batches, loss_fn, epochs=2, callbacks=[trace], progress=False)
    updates = [r["update"] for r in trace.rows]
    assert updates == sorted(updates) and updates[-1] == 2 * len(batches)
    assert all(r["seconds"] >= 0 for r in trace.rows)


def test_device_choice():
    assert choose_device("cpu").type == "cpu"
    assert choose_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        from labflow.frame.config import ConfigError

        with pytest.raises(ConfigError, match="no CUDA GPU"):  # one line through stages.main, no traceback
            choose_device("cuda")


def test_seeded_models_start_identical():
    a = seeded(lambda: mlp(8, [16], 2), 3)
    b = seeded(lambda: mlp(8, [16], 2), 3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert isinstance(a[0], nn.Flatten)


# --------------------------------------------------------------------------- the lab's own step (GANs)


class TinyGAN(nn.Module):
    def __init__(self):
        super().__init__()
        self.g = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
        self.d = nn.Sequential(nn.Linear(2, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))


def make_gan_run(seed=0):
    """A 2-D GAN with two Adam optimizers and an alternating step, as labs 20 and 21 train."""
    seed_everything(seed)
    x = torch.randn(128, 2, generator=torch.Generator().manual_seed(1)) * 0.3 + torch.tensor([2.0, -1.0])
    gan = seeded(TinyGAN, seed)
    opts = Optimizers(g=torch.optim.Adam(gan.g.parameters(), lr=0.01), d=torch.optim.Adam(gan.d.parameters(), lr=0.01))
    batches = TensorBatches(x, batch_size=32, seed=seed)

    def step(m, batch):
        real = batch[0]
        fake = m.g(torch.randn(len(real), 2))  # the global RNG: the checkpoint carries its state
        ones, zeros = torch.ones(len(real), 1), torch.zeros(len(real), 1)
        opts["d"].zero_grad()
        d_loss = F.binary_cross_entropy_with_logits(m.d(real), ones) + F.binary_cross_entropy_with_logits(m.d(fake.detach()), zeros)
        d_loss.backward()
        opts["d"].step()
        opts["g"].zero_grad()
        g_loss = F.binary_cross_entropy_with_logits(m.d(fake), ones)
        g_loss.backward()
        opts["g"].step()
        return {"train_loss": g_loss, "d_loss": d_loss}

    return gan, opts, batches, step


def test_own_step_updates_both_nets_and_reports_every_loss():
    gan, opts, batches, step = make_gan_run()
    before = {k: v.clone() for k, v in gan.state_dict().items()}
    result = fit(gan, opts, batches, step_fn=step, epochs=2, progress=False)
    assert list(result.history[0]) == ["epoch", "train_loss", "d_loss", "updates", "seconds"]
    assert result.updates == 2 * len(batches)
    for key, value in gan.state_dict().items():
        assert not torch.equal(value, before[key]), f"{key} did not move"
    assert all(opts[name].state for name in ("g", "d"))


def test_own_step_must_report_train_loss_and_fit_takes_exactly_one_kind_of_step():
    gan, opts, batches, step = make_gan_run()
    with pytest.raises(KeyError, match="train_loss"):
        fit(gan, opts, batches, step_fn=lambda m, b: {"d_loss": step(m, b)["d_loss"]}, epochs=1, progress=False)
    with pytest.raises(ValueError, match="exactly one"):
        fit(gan, opts, batches, lambda m, b: m.d(b[0]).mean(), step_fn=step, epochs=1, progress=False)
    with pytest.raises(ValueError, match="several optimizers"):
        fit(gan, opts, batches, lambda m, b: m.d(b[0]).mean(), epochs=1, progress=False)


def test_gan_resumed_mid_training_continues_both_optimizers(tmp_path):
    """A GAN killed after epoch 2 of 5 and resumed ends bit-identical to one never interrupted:
    the checkpoint carried G's and D's Adam moments (a fresh optimizer would end elsewhere)."""
    epochs = 5
    gan, opts, batches, step = make_gan_run()
    reference = fit(gan, opts, batches, step_fn=step, epochs=epochs, progress=False)
    ref_weights = {k: v.clone() for k, v in gan.state_dict().items()}
    ref_opts = opts.state_dict()

    ckpt = tmp_path / "last.pt"
    gan, opts, batches, step = make_gan_run()
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(gan, opts, batches, step_fn=step, epochs=epochs, callbacks=[Crash(3), Checkpoint(ckpt, "fp")], progress=False)
    saved = torch.load(ckpt, weights_only=False)["optimizer"]
    assert set(saved) == {"g", "d"} and all(s["state"] for s in saved.values())

    torch.manual_seed(999)  # a new process: another global RNG state
    gan, opts, batches, step = make_gan_run()
    resumed = fit(gan, opts, batches, step_fn=step, epochs=epochs, callbacks=[Checkpoint(ckpt, "fp")], progress=False)
    assert resumed.resumed_from == 2 and resumed.epochs_run == epochs
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(reference.history)
    for key, value in gan.state_dict().items():
        assert torch.equal(value, ref_weights[key]), key
    for name in ("g", "d"):
        for pid, moments in ref_opts[name]["state"].items():
            for k, v in moments.items():
                assert torch.equal(opts.state_dict()[name]["state"][pid][k], v), (name, pid, k)


def test_a_resumed_gan_with_fresh_optimizers_would_differ(tmp_path):
    """The test above can fail: dropping the optimizers' state from the checkpoint changes the end."""
    gan, opts, batches, step = make_gan_run()
    reference = fit(gan, opts, batches, step_fn=step, epochs=4, progress=False)
    ckpt = tmp_path / "last.pt"
    gan, opts, batches, step = make_gan_run()
    with pytest.raises(RuntimeError):
        fit(gan, opts, batches, step_fn=step, epochs=4, callbacks=[Crash(3), Checkpoint(ckpt, "fp")], progress=False)
    state = torch.load(ckpt, weights_only=False)
    fresh = make_gan_run()[1]
    state["optimizer"]["d"] = fresh.state_dict()["d"]  # D's Adam moments lost
    torch.save(state, ckpt)
    gan, opts, batches, step = make_gan_run()
    resumed = fit(gan, opts, batches, step_fn=step, epochs=4, callbacks=[Checkpoint(ckpt, "fp")], progress=False)
    assert resumed.resumed_from == 2
    assert resumed.history[-1]["d_loss"] != reference.history[-1]["d_loss"]


def test_optimizers_refuse_a_checkpoint_of_other_optimizers():
    gan, opts, _, _ = make_gan_run()
    with pytest.raises(ValueError, match="holds optimizers"):
        opts.load_state_dict({"g": opts["g"].state_dict()})


# --------------------------------------------------------------------------- safe checkpoints (issue 16)


class _Payload:
    """A pickle that runs a shell command when unpickled: what a planted checkpoint could hold."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_holding_a_pickle_payload_is_refused_and_training_starts_fresh(tmp_path, capsys):
    marker = tmp_path / "payload_ran"
    ckpt = tmp_path / "last.pt"
    torch.save({"fingerprint": "fp", "complete": False, "model": _Payload(marker)}, ckpt)
    model, opt, batches, loss_fn, evaluate = make_run()
    result = fit(model, opt, batches, loss_fn, epochs=1, evaluate=evaluate, callbacks=[Checkpoint(ckpt, "fp")], progress=False)
    assert not marker.exists()
    assert result.resumed_from is None and result.epochs_run == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if "[labflow]" in line]
    assert len(lines) == 1 and "posix.system" in lines[0] and "starting fresh" in lines[0], lines


def test_a_checkpoint_loads_weights_only_and_resumes_bit_identical(tmp_path):
    """numpy values in the history (an sklearn metric), early-stopping memory and every RNG
    (numpy's state is a tuple with an array) are saved as tensors and plain values."""
    import numpy as np

    def numpy_evaluate(evaluate):
        return lambda m: {k: np.float64(v) for k, v in evaluate(m).items()}

    epochs = 4
    model, opt, batches, loss_fn, evaluate = make_run()
    reference = fit(model, opt, batches, loss_fn, epochs=epochs, evaluate=numpy_evaluate(evaluate),
                    callbacks=[EarlyStopping(patience=10)], progress=False)
    reference_weights = {k: v.clone() for k, v in model.state_dict().items()}
    ckpt = tmp_path / "last.pt"
    model, opt, batches, loss_fn, evaluate = make_run()
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(model, opt, batches, loss_fn, epochs=epochs, evaluate=numpy_evaluate(evaluate),
            callbacks=[EarlyStopping(patience=10), Crash(3), Checkpoint(ckpt, "fp")], progress=False)
    saved = torch.load(ckpt, weights_only=True)
    assert saved["epoch"] == 2 and saved["callbacks"]["early_stopping"]["best_weights"]

    torch.manual_seed(999)
    np.random.seed(7)
    model, opt, batches, loss_fn, evaluate = make_run()
    resumed = fit(model, opt, batches, loss_fn, epochs=epochs, evaluate=numpy_evaluate(evaluate),
                  callbacks=[EarlyStopping(patience=10), Checkpoint(ckpt, "fp")], progress=False)
    assert resumed.resumed_from == 2
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(reference.history)
    for key, value in model.state_dict().items():
        assert torch.equal(value, reference_weights[key]), key


def test_every_rng_comes_back_from_a_checkpoint(tmp_path):
    import random

    import numpy as np

    from labflow.train.callbacks import _get_rng_state, _set_rng_state, atomic_torch_save

    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.standard_normal()  # numpy now holds a cached gaussian
    atomic_torch_save(_get_rng_state(), tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.standard_normal(3), [random.random() for _ in range(3)])
    _set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.standard_normal(3), expected[1])
    assert [random.random() for _ in range(3)] == expected[2]


def test_a_checkpoint_of_other_shapes_starts_fresh_with_one_line(tmp_path, capsys):
    ckpt = tmp_path / "last.pt"
    model, opt, batches, loss_fn, evaluate = make_run()
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(model, opt, batches, loss_fn, epochs=3, evaluate=evaluate, callbacks=[Crash(2), Checkpoint(ckpt, "fp")], progress=False)
    capsys.readouterr()
    seed_everything(0)
    model = seeded(lambda: mlp(8, [32], 2, dropout=0.2), 0)  # the model code changed: 32 hidden units
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    checkpoint = Checkpoint(ckpt, "fp")
    assert not checkpoint.resumable(model, opt)  # what train_variant asks before resuming the MLflow run
    result = fit(model, opt, batches, loss_fn, epochs=1, evaluate=evaluate, callbacks=[checkpoint], progress=False)
    assert result.resumed_from is None and result.epochs_run == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if "[labflow]" in line]
    assert len(lines) == 1 and "does not fit the model" in lines[0] and "starting fresh" in lines[0], lines
    assert "(16, 8) there, (32, 8) here" in lines[0]
    assert any(not torch.equal(v, fresh[k]) for k, v in model.state_dict().items())  # it trained


def test_a_resume_that_fails_half_way_is_undone(tmp_path, capsys):
    """A checkpoint that passes the key/shape checks but still fails to load (here: a callback's
    state) leaves the model as it was, and training starts fresh."""

    class Picky(Callback):
        name = "picky"

        def state_dict(self):
            return {"ok": True}

        def load_state_dict(self, state):
            if "ok" not in state:
                raise KeyError("ok")

    ckpt = tmp_path / "last.pt"
    model, opt, batches, loss_fn, evaluate = make_run()
    with pytest.raises(RuntimeError):
        fit(model, opt, batches, loss_fn, epochs=3, evaluate=evaluate, callbacks=[Crash(2), Checkpoint(ckpt, "fp")], progress=False)
    saved = torch.load(ckpt, weights_only=True)
    saved["callbacks"]["picky"] = {}
    torch.save(saved, ckpt)
    model, opt, batches, loss_fn, evaluate = make_run()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    checkpoint = Checkpoint(ckpt, "fp")
    state = type("S", (), {})()
    state.model, state.optimizer, state.batches, state.callbacks = model, opt, batches, [Picky(), checkpoint]
    state.epoch = 0
    checkpoint.on_fit_start(state)
    assert state.epoch == 0
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert "does not fit the model" in capsys.readouterr().out


# --------------------------------------------------------------------------- atomic writes (issue 16)


def test_atomic_torch_save_fsyncs_before_the_rename(tmp_path, monkeypatch):
    import os

    from labflow.train import callbacks

    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (calls.append(("fsync", os.path.isdir(f"/proc/self/fd/{fd}"))), real_fsync(fd))[1])
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (calls.append(("replace", None)), real_replace(a, b))[1])
    callbacks.atomic_torch_save({"w": torch.ones(2)}, tmp_path / "m.pt")
    assert calls[:2] == [("fsync", False), ("replace", None)]  # the file's data, then the rename
    assert calls[2:] == [("fsync", True)]  # then the folder entry
    assert torch.equal(torch.load(tmp_path / "m.pt", weights_only=True)["w"], torch.ones(2))


@pytest.mark.parametrize("failing", ["save", "replace"])
def test_a_failed_atomic_torch_save_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch, failing):
    from labflow.train import callbacks

    path = tmp_path / "m.pt"
    callbacks.atomic_torch_save({"w": torch.zeros(2)}, path)

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    if failing == "save":
        monkeypatch.setattr(callbacks.torch, "save", boom)
    else:
        monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(OSError, match="No space"):
        callbacks.atomic_torch_save({"w": torch.ones(2)}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.zeros(2))
