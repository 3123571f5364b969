"""Flatten: (batch, ...) -> (batch, prod(...))."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xbarsim.nn.base import Layer

__all__ = ["Flatten"]


class Flatten(Layer):
    """Collapse all but the batch axis (C order, so NCHW flattens as (c, h, w))."""

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name)
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: NDArray[np.float64], *, training: bool = True) -> NDArray[np.float64]:
        """(batch, d1, d2, ...) -> (batch, d1*d2*...)."""
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim < 1:
            raise ValueError(f"Flatten: expected an input with a batch axis, got shape {x.shape}")
        self._shape = x.shape if training else None
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_out: NDArray[np.float64]) -> NDArray[np.float64]:
        """(batch, d) -> the cached input shape."""
        self._need(self._shape)
        assert self._shape is not None
        return np.asarray(grad_out, dtype=np.float64).reshape(self._shape)
