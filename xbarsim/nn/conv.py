"""2-D convolution (NCHW) by im2col on a pluggable weight backend.

The weight is the unfolded matrix ``W`` of shape ``(c_in * kh * kw, c_out)`` with rows in
``(c, kh, kw)`` order (row ``(c * kh + p) * kw + q`` multiplies ``x[:, c, i*s - pad + p,
j*s - pad + q]``), so the whole convolution is one product ``cols @ W`` with
``cols = im2col(x)`` of shape ``(batch * h_out * w_out, c_in * kh * kw)`` -- exactly the MVM a
crossbar of ``c_in*kh*kw`` rows and ``c_out`` columns performs for every output pixel.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from xbarsim.hardware.parallel import over_batch
from xbarsim.kernels.im2col import col2im_into, im2col_into, nchw_to_rows, rows_to_nchw
from xbarsim.nn.base import (
    BackendParameter,
    Layer,
    Parameter,
    WeightBackend,
    check_input,
    weight_backend,
)

__all__ = ["Conv2d", "conv_output_size"]

_NO_BIAS = np.zeros(0)


def conv_output_size(n: int, k: int, stride: int, pad: int) -> int:
    """Output length ``(n + 2*pad - k) // stride + 1`` of a sliding window."""
    return (n + 2 * pad - k) // stride + 1


def _pair(name: str, v: int | tuple[int, int]) -> tuple[int, int]:
    t = (v, v) if isinstance(v, (int, np.integer)) else tuple(v)
    if len(t) != 2 or any(int(a) != a or a < 1 for a in t):
        raise ValueError(f"{name}: expected a positive int or a pair of them, got {v!r}")
    return int(t[0]), int(t[1])


class Conv2d(Layer):
    """2-D convolution (cross-correlation, as in every DL framework) with stride and padding.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    kernel_size : int or (int, int)
        ``(kh, kw)``.
    stride, padding : int
        Same in both directions; padding is with zeros.
    backend : WeightBackend, optional
        Holder of the unfolded weight ``(c_in*kh*kw, c_out)``; default :class:`DigitalWeights`
        initialised with ``init`` (fan-in ``c_in*kh*kw``) from ``rng``.
    bias : bool
        Per-output-channel digital bias ``(c_out,)``.
    rng, init, name
        As for :class:`xbarsim.nn.Linear`.

    Notes
    -----
    Input ``(batch, c_in, h, w)``, output ``(batch, c_out, h_out, w_out)`` with
    ``h_out = (h + 2*padding - kh) // stride + 1``.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int | tuple[int, int], *,
                 stride: int = 1, padding: int = 0, backend: WeightBackend | None = None,
                 bias: bool = True, rng: np.random.Generator | None = None,
                 init: str = "he_normal", name: str | None = None) -> None:
        super().__init__(name)
        self.kh, self.kw = _pair("kernel_size", kernel_size)
        if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
            raise ValueError(f"stride: expected an int >= 1, got {stride!r}")
        if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
            raise ValueError(f"padding: expected an int >= 0, got {padding!r}")
        self.c_in, self.c_out = c_in, c_out
        self.stride, self.padding = int(stride), int(padding)
        n_in = c_in * self.kh * self.kw
        self.backend = backend = weight_backend(backend, n_in, c_out, rng=rng, init=init,
                                                where=f"Conv2d({name})",
                                                shape_name="(c_in*kh*kw, c_out)")
        self.weight = BackendParameter("weight", backend)
        self._params["weight"] = self.weight
        self.bias: Parameter | None = None
        if bias:
            self.bias = Parameter("bias", np.zeros(c_out))
            self._params["bias"] = self.bias
        self._cols: NDArray[np.float64] | None = None
        self._x_shape: tuple[int, int, int, int] | None = None

    def output_shape(self, h: int, w: int) -> tuple[int, int]:
        """``(h_out, w_out)`` for an input of spatial size ``(h, w)``."""
        return (conv_output_size(h, self.kh, self.stride, self.padding),
                conv_output_size(w, self.kw, self.stride, self.padding))

    def forward(self, x: NDArray[np.float64], *, training: bool = True) -> NDArray[np.float64]:
        """(batch, c_in, h, w) -> (batch, c_out, h_out, w_out)."""
        x = check_input(self, x, 4, f"(batch, {self.c_in}, h, w)")
        b, c, h, w = x.shape
        if c != self.c_in:
            raise ValueError(f"Conv2d({self.name or ''}): expected {self.c_in} input channels, "
                             f"got input of shape {x.shape}")
        h_out, w_out = self.output_shape(h, w)
        if h_out < 1 or w_out < 1:
            raise ValueError(f"Conv2d({self.name or ''}): input {h}x{w} is smaller than the "
                             f"{self.kh}x{self.kw} kernel with padding {self.padding}")
        n_pix = h_out * w_out
        kh, kw, stride, pad = self.kh, self.kw, self.stride, self.padding
        cols = np.empty((b * n_pix, c * kh * kw))   # im2col rows, (b*h_out*w_out, c*kh*kw)
        over_batch(lambda i0, i1: im2col_into(x[i0:i1], kh, kw, stride, pad,
                                              cols[i0 * n_pix:i1 * n_pix]), b, cols.size)
        y = self.backend.forward(cols, calibrate=training)  # (b*h_out*w_out, c_out)
        if training:
            self._cols, self._x_shape = cols, (b, c, h, w)
        else:
            self._cols, self._x_shape = None, None
        # (b*h_out*w_out, c_out) rows -> NCHW in one pass, adding the bias on the way
        out = np.empty((b, self.c_out, n_pix))
        bias = self.bias.value if self.bias is not None else _NO_BIAS
        over_batch(lambda i0, i1: rows_to_nchw(y[i0 * n_pix:i1 * n_pix], bias, out[i0:i1]),
                   b, out.size)
        return out.reshape(b, self.c_out, h_out, w_out)

    def backward(self, grad_out: NDArray[np.float64], *, input_grad: bool = True
                 ) -> NDArray[np.float64] | None:
        """(batch, c_out, h_out, w_out) -> (batch, c_in, h, w); fills the parameters' grads.

        ``input_grad=False`` skips ``dL/dx`` (backward product and col2im) and returns None.
        """
        self._need(self._cols)
        assert self._cols is not None and self._x_shape is not None
        b, c, h, w = self._x_shape
        g = np.ascontiguousarray(grad_out, dtype=np.float64)
        n_rows = self._cols.shape[0]
        if g.ndim != 4 or g.shape[0] != b or g.shape[1] != self.c_out \
                or b * g.shape[2] * g.shape[3] != n_rows:
            raise ValueError(f"Conv2d({self.name or ''}): grad_out shape {g.shape} does not "
                             "match the cached forward")
        n_pix = n_rows // b if b else 0
        g_pix = g.reshape(b, self.c_out, n_pix)
        # NCHW -> (b*h_out*w_out, c_out), rows in the same order as the im2col rows
        delta = np.empty((n_rows, self.c_out))
        over_batch(lambda i0, i1: nchw_to_rows(g_pix[i0:i1], delta[i0 * n_pix:i1 * n_pix]),
                   b, delta.size)
        self.weight.set_gradient(self._cols, delta)
        if self.bias is not None:
            # summed over the NCHW gradient: 10x faster than delta.sum(axis=0) on a tall
            # (b*h_out*w_out, c_out) matrix
            self.bias.grad = g.sum(axis=(0, 2, 3))
        if not input_grad:
            return None
        dcols = np.ascontiguousarray(self.backend.backward(delta))  # (b*h_out*w_out, c*kh*kw)
        kh, kw, stride, pad = self.kh, self.kw, self.stride, self.padding
        dx = np.empty((b, c, h, w))
        over_batch(lambda i0, i1: col2im_into(dcols[i0 * n_pix:i1 * n_pix], kh, kw, stride, pad,
                                              dx[i0:i1]), b, dcols.size)
        return dx

    def __repr__(self) -> str:
        return (f"Conv2d({self.c_in}, {self.c_out}, ({self.kh}, {self.kw}), stride={self.stride}, "
                f"padding={self.padding}, name={self.name!r})")
