"""Pooling layers (digital): MaxPool2d, AvgPool2d and GlobalAvgPool2d, NCHW, no padding."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xbarsim.hardware.parallel import over_batch
from xbarsim.kernels.im2col import col2im, im2col, maxpool_backward_into, maxpool_forward_into
from xbarsim.nn.base import Layer, check_input

__all__ = ["MaxPool2d", "AvgPool2d", "GlobalAvgPool2d"]


def _check_window(kernel_size: int, stride: int | None) -> tuple[int, int]:
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, (int, np.integer)) \
            or kernel_size < 1:
        raise ValueError(f"kernel_size: expected an int >= 1, got {kernel_size!r}")
    s = kernel_size if stride is None else stride
    if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1:
        raise ValueError(f"stride: expected an int >= 1, got {stride!r}")
    return int(kernel_size), int(s)


class _Pool(Layer):
    def __init__(self, kernel_size: int, stride: int | None = None, *,
                 name: str | None = None) -> None:
        super().__init__(name)
        self.k, self.stride = _check_window(kernel_size, stride)

    def _check(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        x = check_input(self, x, 4, "(batch, c, h, w)")
        if x.shape[2] < self.k or x.shape[3] < self.k:
            raise ValueError(f"{type(self).__name__}({self.name or ''}): input {x.shape} is "
                             f"smaller than the {self.k}x{self.k} window")
        return x


class MaxPool2d(_Pool):
    """Max pooling over ``k x k`` windows with stride (default ``k``), no padding.

    The gradient goes to the first maximum of each window (row-major), as in PyTorch.
    """

    def __init__(self, kernel_size: int, stride: int | None = None, *,
                 name: str | None = None) -> None:
        super().__init__(kernel_size, stride, name=name)
        self._arg: NDArray[np.int64] | None = None
        self._hw: tuple[int, int] = (0, 0)

    def forward(self, x: NDArray[np.float64], *, training: bool = True) -> NDArray[np.float64]:
        """(batch, c, h, w) -> (batch, c, h_out, w_out)."""
        x = self._check(x)
        b, c, h, w = x.shape
        k, stride = self.k, self.stride
        shape_out = (b, c, (h - k) // stride + 1, (w - k) // stride + 1)
        y, arg = np.empty(shape_out), np.empty(shape_out, dtype=np.int64)
        over_batch(lambda i0, i1: maxpool_forward_into(x[i0:i1], k, stride, y[i0:i1],
                                                       arg[i0:i1]), b, x.size)
        self._arg = arg if training else None
        self._hw = x.shape[2:]
        return y

    def backward(self, grad_out: NDArray[np.float64]) -> NDArray[np.float64]:
        """(batch, c, h_out, w_out) -> (batch, c, h, w)."""
        self._need(self._arg)
        assert self._arg is not None
        g = np.ascontiguousarray(grad_out, dtype=np.float64)
        if g.shape != self._arg.shape:
            raise ValueError(f"MaxPool2d: grad_out shape {g.shape} != output shape "
                             f"{self._arg.shape}")
        arg = self._arg
        dx = np.empty(g.shape[:2] + tuple(self._hw))
        over_batch(lambda i0, i1: maxpool_backward_into(g[i0:i1], arg[i0:i1], dx[i0:i1]),
                   g.shape[0], dx.size)
        return dx


class AvgPool2d(_Pool):
    """Average pooling over ``k x k`` windows with stride (default ``k``), no padding."""

    def __init__(self, kernel_size: int, stride: int | None = None, *,
                 name: str | None = None) -> None:
        super().__init__(kernel_size, stride, name=name)
        self._shape: tuple[int, int, int, int] | None = None

    def forward(self, x: NDArray[np.float64], *, training: bool = True) -> NDArray[np.float64]:
        """(batch, c, h, w) -> (batch, c, h_out, w_out)."""
        x = self._check(x)
        b, c, h, w = x.shape
        h_out = (h - self.k) // self.stride + 1
        w_out = (w - self.k) // self.stride + 1
        # each channel as its own image: (b*c, 1, h, w) -> cols (b*c*h_out*w_out, k*k)
        cols = im2col(x.reshape(b * c, 1, h, w), self.k, self.k, self.stride, 0)
        self._shape = (b, c, h, w) if training else None
        return cols.mean(axis=1).reshape(b, c, h_out, w_out)

    def backward(self, grad_out: NDArray[np.float64]) -> NDArray[np.float64]:
        """(batch, c, h_out, w_out) -> (batch, c, h, w)."""
        self._need(self._shape)
        assert self._shape is not None
        b, c, h, w = self._shape
        g = np.asarray(grad_out, dtype=np.float64).reshape(-1, 1)  # (b*c*h_out*w_out, 1)
        dcols = np.repeat(g / (self.k * self.k), self.k * self.k, axis=1)
        return col2im(dcols, (b * c, 1, h, w), self.k, self.k, self.stride, 0).reshape(b, c, h, w)


class GlobalAvgPool2d(Layer):
    """Mean over the spatial axes: (batch, c, h, w) -> (batch, c)."""

    def __init__(self, *, name: str | None = None) -> None:
        super().__init__(name)
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: NDArray[np.float64], *, training: bool = True) -> NDArray[np.float64]:
        """(batch, c, h, w) -> (batch, c)."""
        x = check_input(self, x, 4, "(batch, c, h, w)")
        self._shape = x.shape if training else None
        return x.mean(axis=(2, 3))

    def backward(self, grad_out: NDArray[np.float64]) -> NDArray[np.float64]:
        """(batch, c) -> (batch, c, h, w)."""
        self._need(self._shape)
        assert self._shape is not None
        b, c, h, w = self._shape
        g = np.asarray(grad_out, dtype=np.float64).reshape(b, c, 1, 1) / (h * w)
        return np.ascontiguousarray(np.broadcast_to(g, self._shape))
