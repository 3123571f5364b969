"""Trainer: fit/evaluate on synthetic data, divergence detection, callbacks, resume."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from xbarsim.data import BatchIterator, synthetic
from xbarsim.nn import SGD, CosineLR, Layer, SoftmaxCrossEntropy, mlp
from xbarsim.train import History, TrainingDiverged, evaluate, fit


@pytest.fixture(scope="module")
def data():
    return synthetic(300, 200, shape=(1, 6, 6), noise=0.25, seed=1)


def make(seed=0, lr=0.1):
    model = mlp([36, 32, 10], "relu", seed=seed)
    return model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=lr, momentum=0.9)


def test_fit_learns_and_records_history(data, caplog, capsys):
    x_tr, y_tr, x_te, y_te = data
    model, loss, opt = make()
    batches = BatchIterator(x_tr, y_tr, 32, rng=np.random.default_rng(0))
    epochs_seen, steps = [], []
    with caplog.at_level(logging.INFO, logger="xbarsim.train.trainer"):
        h = fit(model, loss, opt, batches, epochs=4, schedule=CosineLR(0.1, 4),
                eval_data=(x_te, y_te), on_epoch_end=lambda e, hist: epochs_seen.append(e),
                on_batch_end=lambda e, i, v: steps.append((e, i)))
    assert h.epoch == [1, 2, 3, 4] and epochs_seen == [1, 2, 3, 4]
    assert len(steps) == 4 * len(batches)
    assert h.train_loss[-1] < 0.5 * h.train_loss[0]
    assert h.test_acc[-1] > 0.9
    assert h.test_acc[-1] == evaluate(model, x_te, y_te)
    assert h.lr[0] > h.lr[-1] and all(s > 0 for s in h.seconds)
    assert set(h.as_dict()) == {"epoch", "train_loss", "train_acc", "test_acc", "lr", "seconds",
                                "collapsed_fraction"}
    assert h.collapsed_fraction == [0.0] * 4     # predictions depend on the input
    assert "epoch 4/4" in caplog.text
    assert capsys.readouterr().out == ""  # the library never prints


def test_same_seed_same_numbers(data):
    x_tr, y_tr, _, _ = data
    runs = []
    for _ in range(2):
        model, loss, opt = make(seed=5)
        h = fit(model, loss, opt, BatchIterator(x_tr, y_tr, 50, rng=np.random.default_rng(9)),
                epochs=2)
        runs.append(h.train_loss)
    assert runs[0] == runs[1]


def test_divergence_raises_with_epoch_and_history(data):
    x_tr, y_tr, _, _ = data
    model, loss, opt = make(lr=0.5)
    batches = BatchIterator(x_tr, y_tr, 50, rng=np.random.default_rng(0))

    def explode(epoch):  # an infinite learning rate from the third epoch: weights -> inf/NaN
        return 0.05 if epoch < 2 else np.inf

    with pytest.raises(TrainingDiverged, match="epoch 3") as err:
        fit(model, loss, opt, batches, epochs=5, schedule=explode)
    exc = err.value
    assert exc.epoch == 3 and len(exc.history) == 2
    assert not np.isfinite(exc.loss)
    # a divergence in the very last step is caught by the parameter check
    model, loss, opt = make()
    small = BatchIterator(x_tr[:50], y_tr[:50], 50, shuffle=False)
    with pytest.raises(TrainingDiverged, match="non-finite parameters"):
        fit(model, loss, opt, small, epochs=1, schedule=lambda e: np.inf)
    # max_loss turns a large finite loss into a divergence too
    model, loss, opt = make()
    with pytest.raises(TrainingDiverged, match="max_loss") as err:
        fit(model, loss, opt, batches, epochs=1, max_loss=1e-3)
    assert err.value.epoch == 1 and err.value.batch == 0


def test_resume_appends_to_history(data):
    x_tr, y_tr, _, _ = data
    model, loss, opt = make()
    batches = BatchIterator(x_tr, y_tr, 50, rng=np.random.default_rng(0))
    h = fit(model, loss, opt, batches, epochs=1)
    h = fit(model, loss, opt, batches, epochs=3, start_epoch=1, history=h)
    assert h.epoch == [1, 2, 3]


class Fixed(Layer):
    """Predicts the class stored in the first feature."""

    def forward(self, x, *, training=True):
        return np.eye(3)[x[:, 0].astype(int)]

    def backward(self, grad_out):
        raise AssertionError("not used")


def test_evaluate_counts_correct_predictions_independent_of_batch_size():
    x = np.array([[0], [1], [2], [1], [0]], dtype=float)
    y = np.array([0, 1, 1, 1, 2])
    for bs in (1, 2, 10):
        assert evaluate(Fixed(), x, y, batch_size=bs) == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="same"):
        evaluate(Fixed(), x, y[:3])
    assert isinstance(History(), History)


def test_collapsed_fraction_flags_an_output_that_ignores_the_input(data):
    class Constant(Layer):
        """Scores from a bias only: the same for every input."""

        def __init__(self):
            super().__init__()
            inner = mlp([36, 10], "relu", seed=0)
            self.inner = inner

        def forward(self, x, training=False):
            return self.inner.forward(0.0 * x, training=training)

        def backward(self, g, input_grad=True):
            return self.inner.backward(g, input_grad=input_grad)

        def parameters(self):
            return self.inner.parameters()

        def named_parameters(self):
            return self.inner.named_parameters()

    x_tr, y_tr, x_te, y_te = data
    model = Constant()
    batches = BatchIterator(x_tr, y_tr, 32, rng=np.random.default_rng(0))
    h = fit(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), batches, epochs=2)
    assert h.collapsed_fraction == [1.0, 1.0]
    # batches of one sample say nothing
    single = BatchIterator(x_tr[:5], y_tr[:5], 1, rng=np.random.default_rng(0))
    h = fit(model, SoftmaxCrossEntropy(), SGD(model.parameters(), lr=0.1), single, epochs=1)
    assert np.isnan(h.collapsed_fraction[0])


def test_evaluate_reports_progress_per_batch(data):
    x_tr, y_tr, x_te, y_te = data
    model, _, _ = make()
    seen = []
    acc = evaluate(model, x_te, y_te, batch_size=64, on_batch_end=lambda k, n: seen.append((k, n)))
    assert seen == [(0, 4), (1, 4), (2, 4), (3, 4)] and acc == evaluate(model, x_te, y_te)


def test_restore_refuses_a_checkpoint_without_optimizer_state(data):
    from xbarsim.train import checkpoint

    model, _, opt = make()
    x_tr, y_tr, _, _ = data
    fit(model, SoftmaxCrossEntropy(), opt, BatchIterator(x_tr, y_tr, 50,
                                                         rng=np.random.default_rng(0)), epochs=1)
    state = checkpoint.capture(model, opt, epoch=1, history=History(), rngs={})
    fresh, _, fresh_opt = make(seed=1)
    for broken in ({}, {"velocity": state["optimizer"]["velocity"]},
                   {"lr": 0.1, "velocity": {"0": state["optimizer"]["velocity"]["0"]}}):
        bad = {**state, "optimizer": broken}
        with pytest.raises(ValueError, match="optimizer state|momentum buffers"):
            checkpoint.restore(bad, fresh, fresh_opt, rngs={})
    checkpoint.restore(state, fresh, fresh_opt, rngs={})
    assert len(fresh_opt.state_dict()["velocity"]) == len(fresh_opt.params)
    # a history without a later metric (older files) reads back padded with NaN
    h, _ = checkpoint.history_from_arrays({"epoch": np.array([1.0, 2.0]),
                                           "train_loss": np.array([0.5, 0.4])})
    assert h.epoch == [1, 2] and np.isnan(h.collapsed_fraction).all() \
        and len(h.collapsed_fraction) == 2
