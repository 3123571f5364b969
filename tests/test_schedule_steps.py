"""The learning rate of every step of ``fit`` and ``runner.run``, batch by batch.

Documented semantics (xbarsim.train.trainer.fit, xbarsim.nn.optim.CosineLR): before step ``i``
(0-based) of epoch ``e`` (0-based) the optimizer's rate is set to ``schedule(e + i / n)``, ``n``
the number of batches per epoch, when the batches have a length (fractional epochs: the
warm-up and the cosine move within an epoch); once per epoch (``schedule(e)``) when they have
none. ``CosineLR(lr, epochs, min_lr, warmup)``: ``lr * max(t, 1e-3) / warmup`` during the
warm-up, then ``min_lr + (lr - min_lr) (1 + cos(pi (t - warmup) / (epochs - warmup))) / 2``.

The expected rates below are written out by hand from those formulas (closed forms at
t = k / 4), not computed by the schedule under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from xbarsim import runner
from xbarsim.config import load_config
from xbarsim.data import BatchIterator, synthetic
from xbarsim.nn import SGD, CosineLR, SoftmaxCrossEntropy, StepLR, mlp
from xbarsim.train import fit

C30 = math.sqrt(3.0) / 2.0          # cos(pi / 6)

# CosineLR(0.1, epochs=2, warmup=0.5), 4 batches per epoch: t = 0, 1/4, ..., 7/4.
# warm-up: 0.1 * max(t, 1e-3) / 0.5; then span 1.5: 0.05 * (1 + cos(pi * (t - 0.5) / 1.5))
HAND_COSINE_WARMUP = [
    0.1 * 1e-3 / 0.5,               # t = 0: the first step uses a small non-zero rate
    0.05,                           # t = 0.25: half-way up the warm-up
    0.1,                            # t = 0.5: cos(0)
    0.05 * (1.0 + C30),             # t = 0.75: cos(pi/6)
    0.075,                          # t = 1.0: cos(pi/3) = 1/2
    0.05,                           # t = 1.25: cos(pi/2) = 0
    0.025,                          # t = 1.5: cos(2 pi/3) = -1/2
    0.05 * (1.0 - C30),             # t = 1.75: cos(5 pi/6)
]


class RecordingSGD(SGD):
    """SGD that records the rate each step is taken with."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.used: list[float] = []

    def step(self) -> None:
        self.used.append(self.lr)
        super().step()


@pytest.fixture(scope="module")
def data():
    return synthetic(64, 16, shape=(1, 4, 4), n_classes=4, noise=0.3, seed=2)


def _setup(data, batch_size, momentum=0.0):
    x, y = data[0], data[1]
    model = mlp([16, 8, 4], "relu", seed=0)
    return model, RecordingSGD(model.parameters(), lr=1.0, momentum=momentum), \
        BatchIterator(x, y, batch_size, rng=np.random.default_rng(0))


@pytest.mark.parametrize("momentum", [0.0, 0.9])      # native update path and apply_step path
def test_cosine_warmup_moves_every_batch(data, momentum):
    model, opt, batches = _setup(data, 16, momentum)
    assert len(batches) == 4
    hist = fit(model, SoftmaxCrossEntropy(), opt, batches, epochs=2,
               schedule=CosineLR(0.1, 2, warmup=0.5))
    assert_allclose(opt.used, HAND_COSINE_WARMUP, rtol=1e-12, atol=0)
    # the history records the rate of the last step of each epoch
    assert_allclose(hist.lr, [HAND_COSINE_WARMUP[3], HAND_COSINE_WARMUP[7]], rtol=1e-12)


def test_resumed_fit_continues_within_epoch_positions(data):
    """fit(start_epoch=1) is the second half of the same schedule, batch by batch."""
    model, opt, batches = _setup(data, 16)
    fit(model, SoftmaxCrossEntropy(), opt, batches, epochs=2, start_epoch=1,
        schedule=CosineLR(0.1, 2, warmup=0.5))
    assert_allclose(opt.used, HAND_COSINE_WARMUP[4:], rtol=1e-12, atol=0)


def test_step_schedule_drops_inside_an_epoch_at_fractional_boundaries(data):
    """StepLR(step_size=1) drops at whole epochs: constant within each, per batch."""
    model, opt, batches = _setup(data, 16)
    fit(model, SoftmaxCrossEntropy(), opt, batches, epochs=3, schedule=StepLR(0.4, 1, 0.5))
    assert_allclose(opt.used, [0.4] * 4 + [0.2] * 4 + [0.1] * 4, rtol=1e-15, atol=0)


def test_batches_without_length_use_one_rate_per_epoch(data):
    """Documented fallback: no len() -> schedule(epoch) for the whole epoch."""
    model, opt, sized = _setup(data, 16)

    class Unsized:
        def __iter__(self):
            return iter(sized)

    fit(model, SoftmaxCrossEntropy(), opt, Unsized(), epochs=2,
        schedule=CosineLR(0.1, 2, warmup=0.5))
    # t = 0 (warm-up start) for epoch 1, t = 1 for epoch 2
    assert_allclose(opt.used, [2e-4] * 4 + [0.075] * 4, rtol=1e-12, atol=0)


def test_runner_steps_follow_the_schedule_batch_by_batch(tmp_path, monkeypatch):
    """Through the run file's path (one fit call per epoch): the rate of every step."""
    used: list[float] = []
    original = SGD.step

    def recording(self):
        used.append(self.lr)
        original(self)

    monkeypatch.setattr(SGD, "step", recording)
    cfg = load_config({
        "seed": 1,
        "data": {"dataset": "synthetic", "n_train": 80, "n_test": 20,
                 "synthetic_shape": [1, 4, 4], "synthetic_classes": 4},
        "model": {"name": "mlp", "hidden": [8]},
        "train": {"mode": "software", "epochs": 2, "batch_size": 20, "lr": 0.1,
                  "schedule": "cosine", "warmup_epochs": 0.5, "lr_min": 0.0}})
    res = runner.run(cfg, out=tmp_path / "r.h5", progress=False)
    assert res.status == "completed"
    assert_allclose(used, HAND_COSINE_WARMUP, rtol=1e-12, atol=0)
    assert_allclose(res.history["lr"], [HAND_COSINE_WARMUP[3], HAND_COSINE_WARMUP[7]],
                    rtol=1e-12)
