"""The shared training loop: learning, batching, early stopping, crash-safe resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from labflow.models import mlp, seeded
from labflow.train import Checkpoint, EarlyStopping, TensorBatches, choose_device, fit, seed_everything
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
        with pytest.raises(RuntimeError, match="no CUDA GPU"):
            choose_device("cuda")


def test_seeded_models_start_identical():
    a = seeded(lambda: mlp(8, [16], 2), 3)
    b = seeded(lambda: mlp(8, [16], 2), 3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert isinstance(a[0], nn.Flatten)
