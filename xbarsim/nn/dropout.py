"""Inverted dropout with an explicit random generator."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xbarsim.nn.base import Layer

__all__ = ["Dropout"]


class Dropout(Layer):
    """Zero each element with probability ``p`` in training and scale the rest by ``1/(1-p)``.

    Parameters
    ----------
    p : float
        Drop probability in ``[0, 1)``.
    rng : numpy.random.Generator
        Stream for the masks (e.g. ``xbarsim.rng.stream(seed, "dropout/fc1")``).

    Notes
    -----
    Evaluation (``training=False``) is the identity, so no rescaling is needed at test time.
    """

    def __init__(self, p: float, rng: np.random.Generator, *, name: str | None = None) -> None:
        super().__init__(name)
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"p: expected a drop probability in [0, 1), got {p!r}")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng: expected numpy.random.Generator, got {type(rng).__name__}")
        self.p = float(p)
        self.rng = rng
        self._mask: NDArray[np.float64] | None = None

    def forward(self, x: NDArray[np.float64], *, training: bool = True) -> NDArray[np.float64]:
        """Any shape -> same shape."""
        x = np.asarray(x, dtype=np.float64)
        if not training:
            self._mask = None
            return x
        self._mask = (self.rng.random(x.shape) >= self.p) / (1.0 - self.p)
        return x * self._mask

    def backward(self, grad_out: NDArray[np.float64]) -> NDArray[np.float64]:
        """``grad_out * mask``."""
        self._need(self._mask)
        return grad_out * self._mask
