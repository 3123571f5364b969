"""Element-wise activations (digital): ReLU, Sigmoid, Tanh, and the ``ACTIVATIONS`` registry."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit

from xbarsim.nn.base import Layer

__all__ = ["ReLU", "Sigmoid", "Tanh", "Identity", "ACTIVATIONS", "get_activation"]


class _Elementwise(Layer):
    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name)
        self._cache: NDArray[np.float64] | None = None


class ReLU(_Elementwise):
    """``max(x, 0)``; the derivative at 0 is taken as 0."""

    def forward(self, x: NDArray[np.float64], *, training: bool = True) -> NDArray[np.float64]:
        """Any shape -> same shape."""
        x = np.asarray(x, dtype=np.float64)
        y = np.maximum(x, 0.0)
        self._cache = y if training else None
        return y

    def backward(self, grad_out: NDArray[np.float64]) -> NDArray[np.float64]:
        """``grad_out * (y > 0)``."""
        self._need(self._cache)
        # a product with the mask, not np.where(mask, grad_out, 0.0): 8x faster on LeNet's
        # first activation (0.26 against 2.2 ms, 128 x 6 x 28 x 28)
        return np.multiply(grad_out, self._cache > 0.0)


class Sigmoid(_Elementwise):
    """Logistic ``1 / (1 + exp(-x))`` (overflow-free ``scipy.special.expit``)."""

    def forward(self, x: NDArray[np.float64], *, training: bool = True) -> NDArray[np.float64]:
        """Any shape -> same shape."""
        y = expit(np.asarray(x, dtype=np.float64))
        self._cache = y if training else None
        return y

    def backward(self, grad_out: NDArray[np.float64]) -> NDArray[np.float64]:
        """``grad_out * y * (1 - y)``."""
        self._need(self._cache)
        y = self._cache
        return grad_out * y * (1.0 - y)


class Tanh(_Elementwise):
    """Hyperbolic tangent."""

    def forward(self, x: NDArray[np.float64], *, training: bool = True) -> NDArray[np.float64]:
        """Any shape -> same shape."""
        y = np.tanh(np.asarray(x, dtype=np.float64))
        self._cache = y if training else None
        return y

    def backward(self, grad_out: NDArray[np.float64]) -> NDArray[np.float64]:
        """``grad_out * (1 - y**2)``."""
        self._need(self._cache)
        y = self._cache
        return grad_out * (1.0 - y * y)


class Identity(_Elementwise):
    """``y = x`` (a linear output layer)."""

    def forward(self, x: NDArray[np.float64], *, training: bool = True) -> NDArray[np.float64]:
        """Any shape -> same shape."""
        x = np.asarray(x, dtype=np.float64)
        self._cache = x if training else None
        return x

    def backward(self, grad_out: NDArray[np.float64]) -> NDArray[np.float64]:
        """``grad_out``."""
        self._need(self._cache)
        return np.asarray(grad_out, dtype=np.float64)


ACTIVATIONS: dict[str, type[Layer]] = {
    "relu": ReLU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "identity": Identity,
}


def get_activation(name: str, *, layer_name: str | None = None) -> Layer:
    """Create an activation layer by name.

    Raises
    ------
    ValueError
        Unknown name; the message lists :data:`ACTIVATIONS`.
    """
    try:
        cls = ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"activation: unknown {name!r}; choose one of "
                         f"{sorted(ACTIVATIONS)}") from None
    return cls(name=layer_name)
