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

The kernels are serial: on the 2-core machines this project targets a threaded loop (Numba's
OpenMP layer) measured 3-20x slower whenever another process shared the cores (im2col of a
LeNet batch: 5 ms serial vs 16 ms threaded). Every kernel has an ``*_into`` form that writes
a batch slice of a caller-provided output, so that a caller can run disjoint slices in its own
threads (:func:`xbarsim.hardware.parallel.over_batch`); every output entry is computed by the same
operations whatever the slicing, so the results are bit-identical.

``rows_to_nchw`` and ``nchw_to_rows`` convert between the ``(batch * h_out * w_out, c)`` rows of
a product and NCHW images, the layout change on either side of a convolution's product.
"""

from __future__ import annotations

import numpy as np

from xbarsim.kernels._jit import jit


@jit
def im2col_into(x, kh, kw, stride, pad, cols):
    """Unfold NCHW images into receptive-field rows, written into ``cols``.

    x : (batch, c, h, w) float64, C-contiguous.
    cols : (batch * h_out * w_out, c * kh * kw) float64, overwritten (padding as zeros).
    """
    n_b, n_c, h, w = x.shape
    h_out = (h + 2 * pad - kh) // stride + 1
    w_out = (w + 2 * pad - kw) // stride + 1
    # every entry is written once (padding as explicit zeros): 1.7-2x faster on LeNet's layers
    # than zero-filling the whole array first
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


@jit
def im2col(x, kh, kw, stride, pad):
    """Unfold NCHW images into receptive-field rows.

    x : (batch, c, h, w) float64, C-contiguous.
    Returns cols : (batch * h_out * w_out, c * kh * kw) float64, zero-padded by ``pad``.
    """
    n_b, n_c, h, w = x.shape
    h_out = (h + 2 * pad - kh) // stride + 1
    w_out = (w + 2 * pad - kw) // stride + 1
    cols = np.empty((n_b * h_out * w_out, n_c * kh * kw), dtype=np.float64)
    im2col_into(x, kh, kw, stride, pad, cols)
    return cols


@jit
def col2im_into(cols, kh, kw, stride, pad, x):
    """Scatter-add receptive-field rows onto NCHW images (adjoint of ``im2col``), into ``x``.

    cols : (batch * h_out * w_out, c * kh * kw) float64.
    x : (batch, c, h, w) float64, overwritten; entries that fell into the padding are dropped.
    """
    n_b, n_c, h, w = x.shape
    h_out = (h + 2 * pad - kh) // stride + 1
    w_out = (w + 2 * pad - kw) // stride + 1
    x[...] = 0.0
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


@jit
def col2im(cols, shape, kh, kw, stride, pad):
    """Scatter-add receptive-field rows back onto NCHW images (adjoint of ``im2col``).

    cols : (batch * h_out * w_out, c * kh * kw) float64.
    shape : tuple (batch, c, h, w) of the image.
    Returns x : (batch, c, h, w) float64; entries that fell into the padding are dropped.
    """
    x = np.empty(shape, dtype=np.float64)
    col2im_into(cols, kh, kw, stride, pad, x)
    return x


@jit
def maxpool_forward_into(x, k, stride, y, arg):
    """Max pooling over ``k x k`` windows (no padding), into ``y`` and ``arg``.

    x : (batch, c, h, w) float64.
    y, arg : (batch, c, h_out, w_out), float64 and int64, overwritten: the maximum and the flat
    index ``yy * w + xx`` of the winning pixel (first maximum in row-major order).
    """
    n_b, n_c, h, w = x.shape
    h_out, w_out = y.shape[2], y.shape[3]
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
    maxpool_forward_into(x, k, stride, y, arg)
    return y, arg


@jit
def maxpool_backward_into(grad_out, arg, dx):
    """Route each output gradient to the pixel that won its window, into ``dx``.

    grad_out, arg : (batch, c, h_out, w_out), float64 and int64 (from ``maxpool_forward``).
    dx : (batch, c, h, w) float64, overwritten (overlapping windows accumulate).
    """
    n_b, n_c, h_out, w_out = grad_out.shape
    w = dx.shape[3]
    dx[...] = 0.0
    for n in range(n_b):
        for ch in range(n_c):
            for i in range(h_out):
                for j in range(w_out):
                    idx = arg[n, ch, i, j]
                    dx[n, ch, idx // w, idx % w] += grad_out[n, ch, i, j]


@jit
def maxpool_backward(grad_out, arg, h, w):
    """Route each output gradient to the pixel that won its window (adjoint of max pooling).

    grad_out, arg : (batch, c, h_out, w_out), float64 and int64 (from ``maxpool_forward``).
    Returns dx : (batch, c, h, w) float64 (overlapping windows accumulate).
    """
    n_b, n_c = grad_out.shape[0], grad_out.shape[1]
    dx = np.empty((n_b, n_c, h, w), dtype=np.float64)
    maxpool_backward_into(grad_out, arg, dx)
    return dx


@jit
def rows_to_nchw(y, bias, out):
    """Turn product rows into NCHW images plus a per-channel bias.

    ``out[n, c, p] = y[n*P + p, c] + bias[c]``.

    y : (batch * P, c) float64, P pixels per image in row-major ``(i, j)`` order.
    bias : (c,) float64, or shape (0,) for none (then ``out`` is a plain copy).
    out : (batch, c, P) float64, overwritten.
    """
    n_b, n_c, n_pix = out.shape
    if bias.shape[0] > 0:
        for n in range(n_b):
            for ch in range(n_c):
                b_ch = bias[ch]
                for p in range(n_pix):
                    out[n, ch, p] = y[n * n_pix + p, ch] + b_ch
    else:
        for n in range(n_b):
            for ch in range(n_c):
                for p in range(n_pix):
                    out[n, ch, p] = y[n * n_pix + p, ch]


@jit
def nchw_to_rows(g, out):
    """Turn NCHW images into product rows (the inverse layout change of ``rows_to_nchw``).

    ``out[n*P + p, c] = g[n, c, p]``.

    g : (batch, c, P) float64.
    out : (batch * P, c) float64, overwritten.
    """
    n_b, n_c, n_pix = g.shape
    for n in range(n_b):
        for p in range(n_pix):
            for ch in range(n_c):
                out[n * n_pix + p, ch] = g[n, ch, p]
