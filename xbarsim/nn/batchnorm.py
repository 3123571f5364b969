"""Batch normalisation (digital) with running statistics: BatchNorm1d and BatchNorm2d."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xbarsim.nn.base import Layer, Parameter, check_input

__all__ = ["BatchNorm1d", "BatchNorm2d"]


class _BatchNorm(Layer):
    _axes: tuple[int, ...] = (0,)
    _ndim = 2
    _layout = "(batch, n)"

    def __init__(self, n: int, *, momentum: float = 0.1, eps: float = 1e-5,
                 name: str | None = None) -> None:
        super().__init__(name)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum: expected a value in [0, 1], got {momentum!r}")
        if not eps > 0:
            raise ValueError(f"eps: expected a value > 0, got {eps!r}")
        self.n, self.momentum, self.eps = n, float(momentum), float(eps)
        self.gamma = Parameter("gamma", np.ones(n))
        self.beta = Parameter("beta", np.zeros(n))
        self._params.update(gamma=self.gamma, beta=self.beta)
        self.running_mean = np.zeros(n)
        self.running_var = np.ones(n)
        self._buffers = ("running_mean", "running_var")
        self._xhat: NDArray[np.float64] | None = None
        self._inv_std: NDArray[np.float64] | None = None

    def _bshape(self, ndim: int) -> tuple[int, ...]:
        return (1, self.n) + (1,) * (ndim - 2)

    def forward(self, x: NDArray[np.float64], *, training: bool = True) -> NDArray[np.float64]:
        """Normalise per feature/channel; training uses batch statistics, eval the running ones."""
        x = check_input(self, x, self._ndim, self._layout)
        if x.shape[1] != self.n:
            raise ValueError(f"{type(self).__name__}({self.name or ''}): expected {self.n} "
                             f"features/channels on axis 1, got shape {x.shape}")
        bs = self._bshape(x.ndim)
        if training:
            m = x.size // self.n
            if m < 2:
                raise ValueError(f"{type(self).__name__}: training needs more than one value per "
                                 f"channel to estimate a variance, got input shape {x.shape}")
            mean = x.mean(axis=self._axes)
            var = x.var(axis=self._axes)  # biased: the normalisation itself
            inv_std = 1.0 / np.sqrt(var + self.eps)
            xhat = (x - mean.reshape(bs)) * inv_std.reshape(bs)
            # running variance is the unbiased estimate (PyTorch convention)
            self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * mean
            self.running_var = ((1 - self.momentum) * self.running_var
                                + self.momentum * var * m / (m - 1))
            self._xhat, self._inv_std = xhat, inv_std
        else:
            std = np.sqrt(self.running_var + self.eps)
            xhat = (x - self.running_mean.reshape(bs)) / std.reshape(bs)
            self._xhat, self._inv_std = None, None
        return self.gamma.value.reshape(bs) * xhat + self.beta.value.reshape(bs)

    def backward(self, grad_out: NDArray[np.float64]) -> NDArray[np.float64]:
        """Back-propagate through the batch statistics (training-mode forward)."""
        self._need(self._xhat)
        assert self._xhat is not None and self._inv_std is not None
        g = np.asarray(grad_out, dtype=np.float64)
        xhat = self._xhat
        bs = self._bshape(g.ndim)
        m = g.size // self.n
        self.beta.grad = g.sum(axis=self._axes)
        self.gamma.grad = (g * xhat).sum(axis=self._axes)
        dxhat = g * self.gamma.value.reshape(bs)
        # dx = inv_std/m * (m*dxhat - sum(dxhat) - xhat*sum(dxhat*xhat))
        s1 = dxhat.sum(axis=self._axes).reshape(bs)
        s2 = (dxhat * xhat).sum(axis=self._axes).reshape(bs)
        return (self._inv_std.reshape(bs) / m) * (m * dxhat - s1 - xhat * s2)


class BatchNorm1d(_BatchNorm):
    """Batch norm over the batch axis of ``(batch, n)`` features.

    Parameters
    ----------
    n : int
        Number of features.
    momentum : float
        Weight of the new batch in the running averages.
    eps : float
        Added to the variance.
    """

    _axes = (0,)
    _ndim = 2
    _layout = "(batch, n)"


class BatchNorm2d(_BatchNorm):
    """Batch norm per channel of ``(batch, c, h, w)`` over batch and spatial axes.

    Parameters are as for :class:`BatchNorm1d` with ``n`` the number of channels.
    """

    _axes = (0, 2, 3)
    _ndim = 4
    _layout = "(batch, c, h, w)"
