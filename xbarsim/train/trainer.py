"""Training loop: ``fit`` (per-epoch history, divergence detection) and ``evaluate``.

No printing: progress goes to ``logging`` (logger ``xbarsim.train.trainer``) and to optional
callbacks (the CLI hangs tqdm and checkpointing on them).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import numpy as np
from numpy.typing import NDArray

from xbarsim.errors import XbarsimError
from xbarsim.nn.base import Layer
from xbarsim.nn.losses import Loss
from xbarsim.nn.optim import SGD

__all__ = ["History", "TrainingDiverged", "evaluate", "fit"]

logger = logging.getLogger(__name__)


@dataclass
class History:
    """Per-epoch metrics; every list has one entry per completed epoch.

    Attributes
    ----------
    epoch : list of int
        1-based epoch numbers.
    train_loss, train_acc : list of float
        Mean loss and accuracy over the training batches of the epoch (training-mode forward,
        weights changing during the epoch).
    test_acc : list of float
        Accuracy on ``eval_data`` after the epoch (NaN when no evaluation data were given).
    lr : list of float
        Learning rate of the last step of the epoch.
    seconds : list of float
        Wall time of the epoch (training and evaluation).
    collapsed_fraction : list of float
        Fraction of the epoch's training batches (of at least two samples) in which every
        sample got the same predicted class. About 0 for a network that learns; 1 when the
        prediction never depended on the input (a collapsed network, e.g. behind stuck
        converters, which can only train at chance). NaN when no batch had two samples.
    """

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    collapsed_fraction: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[float]]:
        """Plain dict of lists (for HDF5 writers)."""
        return asdict(self)

    def __len__(self) -> int:
        return len(self.epoch)


class TrainingDiverged(XbarsimError, FloatingPointError):
    """The loss became non-finite or exceeded ``max_loss``.

    Attributes
    ----------
    epoch : int
        1-based epoch in which it happened.
    batch : int
        0-based batch index within that epoch.
    loss : float
        The offending loss value.
    history : History
        The completed epochs, so the caller can save what was done.
    """

    def __init__(self, message: str, *, epoch: int, batch: int, loss: float,
                 history: History) -> None:
        self.epoch, self.batch, self.loss, self.history = epoch, batch, loss, history
        super().__init__(message)


def evaluate(model: Layer, x: NDArray[np.float64], y: NDArray[np.int64],
             batch_size: int = 1000,
             on_batch_end: Callable[[int, int], None] | None = None) -> float:
    """Classification accuracy of ``model`` (evaluation mode) on ``(x, y)``.

    Parameters
    ----------
    model : Layer
        Outputs scores (batch, n_classes).
    x : ndarray of shape (n, ...)
        Inputs.
    y : ndarray of shape (n,), int
        Class labels.
    batch_size : int
        Evaluation batch size. Exact in software mode; on crossbars the per-batch input scale
        of the DACs (block floating point) makes quantised results depend on it slightly.
        Evaluation passes never change ADC ranges (only training passes calibrate).
    on_batch_end : callable, optional
        ``on_batch_end(batch, n_batches)`` after every batch (progress bars).

    Returns
    -------
    float
        Fraction of correct arg-max predictions in [0, 1].
    """
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"evaluate: x has {x.shape[0]} samples and y {y.shape[0]}; "
                         "expected the same non-zero number")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    correct = 0
    n_batches = -(-x.shape[0] // batch_size)
    for k, i in enumerate(range(0, x.shape[0], batch_size)):
        out = model.forward(x[i:i + batch_size], training=False)
        correct += int(np.count_nonzero(out.argmax(axis=1) == y[i:i + batch_size]))
        if on_batch_end is not None:
            on_batch_end(k, n_batches)
    return correct / x.shape[0]


def fit(model: Layer, loss: Loss, optimizer: SGD,
        train_batches: Iterable[tuple[NDArray[np.float64], NDArray[np.int64]]], *,
        epochs: int, schedule: Callable[[float], float] | None = None,
        eval_data: tuple[NDArray[np.float64], NDArray[np.int64]] | None = None,
        eval_batch_size: int = 1000, max_loss: float | None = None,
        start_epoch: int = 0, history: History | None = None,
        on_batch_end: Callable[[int, int, float], None] | None = None,
        on_epoch_end: Callable[[int, History], None] | None = None,
        on_eval_batch_end: Callable[[int, int], None] | None = None) -> History:
    """Train ``model`` with ``loss`` and ``optimizer`` for ``epochs`` epochs.

    Parameters
    ----------
    model : Layer
        Usually a :class:`~xbarsim.nn.models.Sequential`.
    loss : Loss
        E.g. :class:`~xbarsim.nn.losses.SoftmaxCrossEntropy`.
    optimizer : SGD
        Holds the model's parameters; its ``lr`` is set by ``schedule`` before every step.
    train_batches : iterable of (x, y)
        Re-iterable once per epoch (e.g. :class:`xbarsim.data.BatchIterator`, which reshuffles
        on every pass). If it has ``len()``, the schedule is evaluated at fractional epochs
        ``epoch + i / len``; otherwise once per epoch.
    epochs : int
        Last epoch to run (total, including ``start_epoch`` already done).
    schedule : callable, optional
        ``lr = schedule(epoch)`` with a 0-based, possibly fractional epoch; default constant.
    eval_data : (x, y), optional
        Test set evaluated after every epoch.
    eval_batch_size : int
        Batch size of the evaluation.
    max_loss : float, optional
        A batch loss above this counts as divergence (non-finite losses always do).
    start_epoch : int
        Epochs already done (resume); training continues with epoch ``start_epoch + 1``.
    history : History, optional
        History to append to (resume).
    on_batch_end : callable, optional
        ``on_batch_end(epoch, batch, loss)`` after every step (progress bars).
    on_epoch_end : callable, optional
        ``on_epoch_end(epoch, history)`` after every epoch (checkpoints, logging).
    on_eval_batch_end : callable, optional
        ``on_eval_batch_end(batch, n_batches)`` after every batch of the evaluation of
        ``eval_data`` (progress bars).

    Returns
    -------
    History

    Raises
    ------
    TrainingDiverged
        The loss became NaN/inf (or exceeded ``max_loss``); carries the epoch, batch, loss and
        the history of the completed epochs. The failing step's update is not applied.
    """
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs: expected an int >= 0, got {epochs!r}")
    history = History() if history is None else history
    n_batches = len(train_batches) if hasattr(train_batches, "__len__") else None  # type: ignore[arg-type]
    for epoch in range(start_epoch, epochs):
        t0 = time.perf_counter()
        total_loss, total_correct, total_n = 0.0, 0, 0
        n_single, n_counted = 0, 0
        lr = optimizer.lr
        for i, (xb, yb) in enumerate(train_batches):
            if schedule is not None:
                frac = epoch + (i / n_batches if n_batches else 0.0)
                lr = optimizer.lr = float(schedule(frac))
            # overflow warnings are expected on the way to a divergence, which is detected
            # explicitly below (non-finite loss or parameters) and raised with context
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                out = model.forward(xb, training=True)
                value = loss.forward(out, yb)
            if not math.isfinite(value) or (max_loss is not None and value > max_loss):
                msg = (f"training diverged in epoch {epoch + 1}, batch {i}: loss = {value!r}"
                       + (f" > max_loss = {max_loss}" if math.isfinite(value) else "")
                       + f" at lr = {lr:.3g}; lower the learning rate or check the data/hardware "
                       "configuration")
                logger.debug(msg)  # raised below; the caller reports it once
                raise TrainingDiverged(msg, epoch=epoch + 1, batch=i, loss=value,
                                       history=history)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                model.backward(loss.backward(), input_grad=False)
                optimizer.step()
            nb = xb.shape[0]
            total_loss += value * nb
            total_n += nb
            predicted = out.argmax(axis=1)
            labels = yb if np.ndim(yb) == 1 else yb.argmax(axis=1)
            total_correct += int(np.count_nonzero(predicted == labels))
            if nb > 1:
                n_counted += 1
                n_single += bool(np.all(predicted == predicted[0]))
            if on_batch_end is not None:
                on_batch_end(epoch + 1, i, value)
        if total_n == 0:
            raise ValueError("train_batches: yielded no batches in epoch "
                             f"{epoch + 1}; check the dataset size and batch size")
        bad = [n for n, p in model.named_parameters() if not np.all(np.isfinite(p.data()))]
        if bad:
            msg = (f"training diverged in epoch {epoch + 1}: non-finite parameters {bad} after "
                   f"the last step (lr = {lr:.3g}); lower the learning rate")
            logger.debug(msg)  # raised below; the caller reports it once
            raise TrainingDiverged(msg, epoch=epoch + 1, batch=i, loss=float("nan"),
                                   history=history)
        test_acc = (evaluate(model, eval_data[0], eval_data[1], eval_batch_size,
                             on_batch_end=on_eval_batch_end)
                    if eval_data is not None else float("nan"))
        history.epoch.append(epoch + 1)
        history.train_loss.append(total_loss / total_n)
        history.train_acc.append(total_correct / total_n)
        history.test_acc.append(test_acc)
        history.lr.append(lr)
        history.seconds.append(time.perf_counter() - t0)
        history.collapsed_fraction.append(n_single / n_counted if n_counted else math.nan)
        logger.info("epoch %d/%d: train loss %.4f, train acc %.4f, test acc %.4f, lr %.3g, %.1f s",
                    epoch + 1, epochs, history.train_loss[-1], history.train_acc[-1], test_acc,
                    lr, history.seconds[-1])
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, history)
    return history
