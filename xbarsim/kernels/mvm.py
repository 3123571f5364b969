"""Fused conversion and shift-and-add of crossbar bit-plane currents.

The analog products themselves are BLAS matrix products with ``g_eff`` (one per physical
array, all bit-planes stacked into one GEMM); this kernel does what follows in one pass over
the currents: per-conversion ADC (clip, transfer curve, quantisation, ideal inverse, optional
input-referred noise), the shift-and-add over bit-planes and the signed accumulation over
arrays (polarities and slices)::

    out[b, n] += coef * sum_p plane_weight[p] * ADC(i[p, b, n] + sense_noise * xi[p, b, n])

Shapes: ``i`` and ``xi`` (n_planes, batch, n); ``plane_weight`` (n_planes,); ``out`` (batch, n).
Currents in A; ``out`` in A (weighted).
"""

from __future__ import annotations

import numpy as np

from xbarsim.kernels._jit import jit
from xbarsim.kernels.quantize import quantize_scalar, transfer_scalar


@jit
def adc_shift_add(i, plane_weight, coef, i_max, n_steps, kind, param, table_x, table_y,
                  out):
    """``out += coef * sum_p plane_weight[p] * ADC(i[p])`` (unipolar ADC, in place).

    Parameters
    ----------
    i : (n_planes, batch, n) — currents [A] (noise already added).
    plane_weight : (n_planes,) — shift-and-add weights.
    coef : float — sign / slice weight of this array.
    i_max : float — ADC full scale [A]; ``n_steps == 0`` means an ideal ADC (identity).
    n_steps : int — ``2**bits - 1`` or 0.
    kind, param, table_x, table_y — ADC transfer curve (see ``kernels.quantize``).
    out : (batch, n) — accumulator.
    """
    n_planes, batch, n = i.shape
    for p in range(n_planes):
        w = coef * plane_weight[p]
        if w == 0.0:
            continue
        if n_steps == 0:
            for b in range(batch):
                for k in range(n):
                    out[b, k] += w * i[p, b, k]
            continue
        if i_max <= 0.0:
            continue
        scale = w * i_max
        inv = 1.0 / i_max
        for b in range(batch):
            for k in range(n):
                u = i[p, b, k] * inv
                if u < 0.0:
                    u = 0.0
                elif u > 1.0:
                    u = 1.0
                out[b, k] += scale * quantize_scalar(
                    transfer_scalar(u, kind, param, table_x, table_y), n_steps)


@jit
def max_positive(i):
    """Largest value of ``i`` clipped below at 0 (ADC range calibration statistic)."""
    m = 0.0
    flat = i.reshape(-1)
    for k in range(flat.shape[0]):
        if flat[k] > m:
            m = flat[k]
    return m
