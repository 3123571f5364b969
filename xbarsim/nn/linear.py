"""Fully connected layer ``y = x @ W + b`` on a pluggable weight backend."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xbarsim.nn.base import (
    BackendParameter,
    Layer,
    Parameter,
    WeightBackend,
    check_input,
    weight_backend,
)

__all__ = ["Linear"]


class Linear(Layer):
    """Fully connected layer.

    Parameters
    ----------
    n_in, n_out : int
        Input and output features; the weight has shape ``(n_in, n_out)``.
    backend : WeightBackend, optional
        Holder of ``W``. Default: :class:`DigitalWeights` initialised with ``init`` from ``rng``.
    bias : bool
        Add a digital bias ``b`` of shape ``(n_out,)`` (initialised to 0).
    rng : numpy.random.Generator, optional
        Stream for the default initialisation (required when ``backend`` is None).
    init : str
        Name in :data:`xbarsim.nn.init.INITS` for the default initialisation.
    name : str, optional
        Layer name used in state dicts and error messages.

    Notes
    -----
    Forward ``y = x @ W + b``; backward ``dx = delta @ W.T`` (through the backend),
    ``grad_W = x.T @ delta`` and ``grad_b = sum_batch delta`` (digital).
    """

    def __init__(self, n_in: int, n_out: int, *, backend: WeightBackend | None = None,
                 bias: bool = True, rng: np.random.Generator | None = None,
                 init: str = "he_normal", name: str | None = None) -> None:
        super().__init__(name)
        backend = weight_backend(backend, n_in, n_out, rng=rng, init=init,
                                 where=f"Linear({name})", shape_name="(n_in, n_out)")
        self.n_in, self.n_out = n_in, n_out
        self.backend = backend
        self.weight = BackendParameter("weight", backend)
        self._params["weight"] = self.weight
        self.bias: Parameter | None = None
        if bias:
            self.bias = Parameter("bias", np.zeros(n_out))
            self._params["bias"] = self.bias
        self._x: NDArray[np.float64] | None = None

    def forward(self, x: NDArray[np.float64], *, training: bool = True) -> NDArray[np.float64]:
        """(batch, n_in) -> (batch, n_out)."""
        x = check_input(self, x, 2, f"(batch, {self.n_in})")
        if x.shape[1] != self.n_in:
            raise ValueError(f"Linear({self.name or ''}): expected input of shape "
                             f"(batch, {self.n_in}), got {x.shape}")
        self._x = x if training else None
        y = self.backend.forward(x, calibrate=training)
        if self.bias is not None:
            y = y + self.bias.value
        return y

    def backward(self, grad_out: NDArray[np.float64], *, input_grad: bool = True
                 ) -> NDArray[np.float64] | None:
        """(batch, n_out) -> (batch, n_in); fills ``weight.grad`` and ``bias.grad``.

        ``input_grad=False`` skips ``dL/dx`` (the backward product) and returns None: the
        first layer of a network needs only its parameter gradients.
        """
        self._need(self._x)
        assert self._x is not None
        delta = np.ascontiguousarray(grad_out, dtype=np.float64)
        self.weight.set_gradient(self._x, delta)
        if self.bias is not None:
            self.bias.grad = delta.sum(axis=0)
        return self.backend.backward(delta) if input_grad else None

    def __repr__(self) -> str:
        return f"Linear({self.n_in}, {self.n_out}, name={self.name!r}, backend={self.backend!r})"
