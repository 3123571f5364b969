"""Sliding-window unfolding for convolution and pooling: ``im2col`` and its adjoint ``col2im``.

Layout (documented once, used by ``nn.conv`` and ``nn.pooling``):

* images are NCHW, ``x`` of shape ``(batch, c, h, w)``;
* the output grid has ``h_out = (h + 2*pad - kh) // stride + 1`` (same for ``w_out``);
* ``cols`` has shape ``(batch * h_out * w_out, c * kh * kw)``; row ``(n * h_out + i) * w_out + j``
  is the receptive field of output pixel ``(n, i, j)``, and column ``(ch * kh + p) * kw + q``
  holds ``x[n, ch, i*stride - pad + p, j*stride - pad + q]`` (zero outside the image). This is
  the ``(c, kh, kw)`` order of the unfolded convolution weight ``(c*kh*kw, c_out)``.

``col2im`` is the exact adjoint (transpose) of ``im2col``: it scatter-adds every column entry
back onto the pixel it was read from, which is the backward pass of the unfolding.

The kernels are serial: they are memory-bound, and on the 2-core machines this project targets
a threaded loop (Numba's OpenMP layer) measured 3-20x slower whenever another process shared
the cores (im2col of a LeNet batch: 5 ms serial vs 16 ms threaded).
"""

from __future__ import annotations

import numpy as np

from xbarsim.kernels._jit import jit


@jit
def im2col(x, kh, kw, stride, pad):
    """Unfold NCHW images into receptive-field rows.

    x : (batch, c, h, w) float64, C-contiguous.
    Returns cols : (batch * h_out * w_out, c * kh * kw) float64, zero-padded by ``pad``.
    """
    n_b, n_c, h, w = x.shape
    h_out = (h + 2 * pad - kh) // stride + 1
    w_out = (w + 2 * pad - kw) // stride + 1
    # every entry is written once (padding as explicit zeros): 1.7-2x faster on LeNet's layers
    # than zero-filling the whole array first
    cols = np.empty((n_b * h_out * w_out, n_c * kh * kw), dtype=np.float64)
    for n in range(n_b):
        for i in range(h_out):
            for j in range(w_out):
                row = (n * h_out + i) * w_out + j
                for ch in range(n_c):
                    for p in range(kh):
                        yy = i * stride - pad + p
                        base = (ch * kh + p) * kw
                        if yy < 0 or yy >= h:
                            for q in range(kw):
                                cols[row, base + q] = 0.0
                            continue
                        for q in range(kw):
                            xx = j * stride - pad + q
                            cols[row, base + q] = x[n, ch, yy, xx] if 0 <= xx < w else 0.0
    return cols


@jit
def col2im(cols, shape, kh, kw, stride, pad):
    """Scatter-add receptive-field rows back onto NCHW images (adjoint of ``im2col``).

    cols : (batch * h_out * w_out, c * kh * kw) float64.
    shape : tuple (batch, c, h, w) of the image.
    Returns x : (batch, c, h, w) float64; entries that fell into the padding are dropped.
    """
    n_b, n_c, h, w = shape
    h_out = (h + 2 * pad - kh) // stride + 1
    w_out = (w + 2 * pad - kw) // stride + 1
    x = np.zeros((n_b, n_c, h, w), dtype=np.float64)
    for n in range(n_b):
        for i in range(h_out):
            for j in range(w_out):
                row = (n * h_out + i) * w_out + j
                x0 = j * stride - pad
                inside = x0 >= 0 and x0 + kw <= w     # no column of the window is padding
                for ch in range(n_c):
                    for p in range(kh):
                        yy = i * stride - pad + p
                        if yy < 0 or yy >= h:
                            continue
                        base = (ch * kh + p) * kw
                        if inside:
                            for q in range(kw):
                                x[n, ch, yy, x0 + q] += cols[row, base + q]
                        else:
                            for q in range(kw):
                                xx = x0 + q
                                if 0 <= xx < w:
                                    x[n, ch, yy, xx] += cols[row, base + q]
    return x


@jit
def maxpool_forward(x, k, stride):
    """Max pooling over ``k x k`` windows (no padding) with the flat argmax of each window.

    x : (batch, c, h, w) float64.
    Returns ``(y, arg)``: y (batch, c, h_out, w_out) float64 and arg of the same shape, int64,
    the flat index ``yy * w + xx`` of the winning pixel (first maximum in row-major order).
    """
    n_b, n_c, h, w = x.shape
    h_out = (h - k) // stride + 1
    w_out = (w - k) // stride + 1
    y = np.empty((n_b, n_c, h_out, w_out), dtype=np.float64)
    arg = np.empty((n_b, n_c, h_out, w_out), dtype=np.int64)
    for n in range(n_b):
        for ch in range(n_c):
            for i in range(h_out):
                for j in range(w_out):
                    best = x[n, ch, i * stride, j * stride]
                    best_idx = (i * stride) * w + j * stride
                    for p in range(k):
                        for q in range(k):
                            v = x[n, ch, i * stride + p, j * stride + q]
                            if v > best:
                                best = v
                                best_idx = (i * stride + p) * w + j * stride + q
                    y[n, ch, i, j] = best
                    arg[n, ch, i, j] = best_idx
    return y, arg


@jit
def maxpool_backward(grad_out, arg, h, w):
    """Route each output gradient to the pixel that won its window (adjoint of max pooling).

    grad_out, arg : (batch, c, h_out, w_out), float64 and int64 (from ``maxpool_forward``).
    Returns dx : (batch, c, h, w) float64 (overlapping windows accumulate).
    """
    n_b, n_c, h_out, w_out = grad_out.shape
    dx = np.zeros((n_b, n_c, h, w), dtype=np.float64)
    for n in range(n_b):
        for ch in range(n_c):
            for i in range(h_out):
                for j in range(w_out):
                    idx = arg[n, ch, i, j]
                    dx[n, ch, idx // w, idx % w] += grad_out[n, ch, i, j]
    return dx
