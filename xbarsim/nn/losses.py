"""Losses with an explicit backward: softmax cross-entropy and mean squared error.

``forward(y, labels) -> float`` returns the batch-mean loss and caches what ``backward()``
needs; ``backward() -> dL/dy`` of the same shape as ``y`` (it includes the ``1/batch``).
Labels are either integer classes ``(batch,)`` or targets ``(batch, k)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import log_softmax

__all__ = ["Loss", "SoftmaxCrossEntropy", "MSELoss", "LOSSES", "one_hot"]


def one_hot(labels: NDArray[np.int64], k: int) -> NDArray[np.float64]:
    """Integer labels (batch,) -> one-hot targets (batch, k).

    Raises
    ------
    ValueError
        A label outside ``[0, k)``.
    """
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise ValueError(f"labels: expected integers in [0, {k}), got range "
                         f"[{labels.min()}, {labels.max()}]")
    out = np.zeros((labels.shape[0], k))
    out[np.arange(labels.shape[0]), labels] = 1.0
    return out


class Loss:
    """Base class: ``forward(y, labels) -> float`` and ``backward() -> dL/dy``."""

    def __init__(self) -> None:
        self._y: NDArray[np.float64] | None = None
        self._t: NDArray[np.float64] | None = None

    def _targets(self, y: NDArray[np.float64], labels: NDArray) -> tuple[NDArray, NDArray]:
        y = np.asarray(y, dtype=np.float64)
        if y.ndim != 2:
            raise ValueError(f"{type(self).__name__}: expected outputs of shape (batch, k), "
                             f"got {y.shape}")
        labels = np.asarray(labels)
        if labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer):
            if labels.shape[0] != y.shape[0]:
                raise ValueError(f"labels: expected shape ({y.shape[0]},), got {labels.shape}")
            t = one_hot(labels, y.shape[1])
        elif labels.shape == y.shape:
            t = labels.astype(np.float64)
        else:
            raise ValueError(f"labels: expected integer classes ({y.shape[0]},) or targets "
                             f"{y.shape}, got {labels.dtype} array of shape {labels.shape}")
        return y, t

    def __call__(self, y: NDArray[np.float64], labels: NDArray) -> float:
        """Alias of :meth:`forward`."""
        return self.forward(y, labels)

    def forward(self, y: NDArray[np.float64], labels: NDArray) -> float:  # pragma: no cover
        """Batch-mean loss."""
        raise NotImplementedError

    def backward(self) -> NDArray[np.float64]:  # pragma: no cover
        """``dL/dy`` for the last forward."""
        raise NotImplementedError

    def _need(self) -> None:
        if self._y is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")


class SoftmaxCrossEntropy(Loss):
    """``L = -(1/B) sum_b sum_k t_bk log softmax(z_b)_k``; ``dL/dz = (softmax(z) - t) / B``."""

    def forward(self, y: NDArray[np.float64], labels: NDArray) -> float:
        """Y : logits (batch, k); labels (batch,) int or (batch, k) probabilities."""
        z, t = self._targets(y, labels)
        logp = log_softmax(z, axis=1)
        self._y, self._t = np.exp(logp), t
        return float(-(t * logp).sum() / z.shape[0])

    def backward(self) -> NDArray[np.float64]:
        """(batch, k)."""
        self._need()
        assert self._y is not None and self._t is not None
        return (self._y - self._t) / self._y.shape[0]


class MSELoss(Loss):
    """``L = mean over all elements of (y - t)^2`` (PyTorch ``MSELoss``).

    ``dL/dy = 2 (y - t) / (B k)``.
    """

    def forward(self, y: NDArray[np.float64], labels: NDArray) -> float:
        """Y : (batch, k); labels (batch,) int (one-hot targets) or (batch, k)."""
        y, t = self._targets(y, labels)
        self._y, self._t = y, t
        return float(np.mean((y - t) ** 2))

    def backward(self) -> NDArray[np.float64]:
        """(batch, k)."""
        self._need()
        assert self._y is not None and self._t is not None
        return 2.0 * (self._y - self._t) / self._y.size


LOSSES: dict[str, type[Loss]] = {"cross_entropy": SoftmaxCrossEntropy, "mse": MSELoss}
