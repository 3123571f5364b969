"""Fused conversion and shift-and-add of crossbar bit-plane currents.

The analog products themselves are BLAS matrix products with ``g_eff`` (one per physical
array, all bit-planes stacked into one GEMM); this kernel does what follows in one pass over
the currents: per-conversion ADC (clip, transfer curve, quantisation, ideal inverse, optional
input-referred noise), the shift-and-add over bit-planes and the signed accumulation over
arrays (polarities and slices)::

    out[b, n] += coef * sum_p plane_weight[p] * ADC(i[p, b, n] + sense_noise * xi[p, b, n])

Shapes: ``i`` and ``xi`` (n_planes * batch, n); ``plane_weight`` (n_planes,); ``out``
(batch, n). Currents in A; ``out`` in A (weighted).
"""

from __future__ import annotations

import numpy as np

from xbarsim.kernels._jit import jit
from xbarsim.kernels.quantize import KIND_NONE, quantize_scalar, transfer_scalar

MODE_UNSIGNED = 0
MODE_TWO_PASS = 1
MODE_TWOS_COMPLEMENT = 2


@jit
def abs_max_min(x):
    """``(max |x|, min x)`` of a 2-D array in one pass, without temporaries; NaN if any is NaN.

    The input scale of a product (its largest magnitude) and whether it has negative entries.
    """
    top = 0.0
    low = np.inf
    bad = False
    for b in range(x.shape[0]):
        for k in range(x.shape[1]):
            v = x[b, k]
            bad |= v != v
            top = max(top, abs(v))
            low = min(low, v)
    if bad:
        return np.nan, np.nan
    return top, low


@jit
def dac_planes(x, in_scale, input_bits, dac_bits, mode, kind, param, table_x, table_y, v_max):
    """Bit-plane row voltages of inputs, fused normalisation + streaming + DAC transfer.

    Same decomposition as :func:`xbarsim.hardware.converters.stream_inputs` (LSB first):

    * unsigned: ``q = rint(clip(u, 0, 1) (2**b - 1))``, ``ceil(b / d)`` planes of its
      base-``2**d`` digits;
    * two-pass: ``q = rint(clip(u, -1, 1) (2**(b-1) - 1))``, digits of ``max(q, 0)`` then of
      ``max(-q, 0)`` (``ceil((b-1) / d)`` planes each);
    * two's complement: the low ``b - 1`` bits of ``q mod 2**b`` in ``d``-bit planes, then the
      sign bit as one plane.

    ``dac_bits == 0`` is an ideal DAC: no quantisation, one plane (two for two-pass).

    Parameters
    ----------
    x : (batch, n) — inputs; in_scale : float — their full scale, ``u = x / in_scale`` (> 0).
    input_bits, dac_bits : int — ``b`` and ``d`` (``d = 0``: ideal DAC).
    mode : int — MODE_UNSIGNED, MODE_TWO_PASS or MODE_TWOS_COMPLEMENT.
    kind, param, table_x, table_y — DAC transfer curve (``kernels.quantize``).
    v_max : float — full-scale voltage [V].

    Returns
    -------
    volts : (n_planes, batch, n) [V]
    """
    batch, n = x.shape
    if dac_bits == 0:
        n_planes = 2 if mode == MODE_TWO_PASS else 1
        out = np.zeros((n_planes, batch, n))
        for b in range(batch):
            for k in range(n):
                u = x[b, k] / in_scale
                if mode == MODE_UNSIGNED:
                    out[0, b, k] = v_max * min(max(u, 0.0), 1.0)
                else:
                    u = min(max(u, -1.0), 1.0)
                    if u >= 0.0:
                        out[0, b, k] = v_max * u
                    else:
                        out[1, b, k] = -v_max * u
        return out
    code_max = (1 << dac_bits) - 1
    mag_bits = input_bits if mode == MODE_UNSIGNED else input_bits - 1
    per_pass = (mag_bits + dac_bits - 1) // dac_bits
    if mode == MODE_UNSIGNED:
        n_planes = per_pass
    elif mode == MODE_TWO_PASS:
        n_planes = 2 * per_pass
    else:
        n_planes = per_pass + 1
    # DAC output of each code value (the transfer curve acts on the normalised code)
    level = np.empty(code_max + 1)
    for c in range(code_max + 1):
        level[c] = v_max * transfer_scalar(c / code_max, kind, param, table_x, table_y)
    out = np.empty((n_planes, batch, n))
    mask = code_max
    if mode == MODE_UNSIGNED:
        scale = float((1 << input_bits) - 1)
    else:
        scale = float((1 << (input_bits - 1)) - 1)
    # integer codes once, then plane by plane with contiguous writes
    q = np.empty((batch, n), dtype=np.int64)
    for b in range(batch):
        for k in range(n):
            if mode == MODE_UNSIGNED:
                q[b, k] = np.int64(np.rint(min(max(x[b, k] / in_scale, 0.0), 1.0) * scale))
            else:
                q[b, k] = np.int64(np.rint(min(max(x[b, k] / in_scale, -1.0), 1.0) * scale))
    for s in range(per_pass):
        shift = dac_bits * s
        for b in range(batch):
            for k in range(n):
                qk = q[b, k]
                if mode == MODE_UNSIGNED:
                    out[s, b, k] = level[(qk >> shift) & mask]
                elif mode == MODE_TWO_PASS:
                    out[s, b, k] = level[((qk if qk > 0 else 0) >> shift) & mask]
                    out[per_pass + s, b, k] = level[((-qk if qk < 0 else 0) >> shift) & mask]
                else:
                    low = (qk & ((np.int64(1) << input_bits) - 1)) & \
                        ((np.int64(1) << (input_bits - 1)) - 1)
                    out[s, b, k] = level[(low >> shift) & mask]
    if mode == MODE_TWOS_COMPLEMENT:
        for b in range(batch):
            for k in range(n):
                r = q[b, k] & ((np.int64(1) << input_bits) - 1)
                out[per_pass, b, k] = level[(r >> (input_bits - 1)) & 1]   # code 0 or 1
    return out


@jit
def segment_max(i, seg_start):
    """Largest positive current of each column segment: ``(n_seg,)`` from ``i`` (rows, width).

    Segment ``s`` covers columns ``seg_start[s] : seg_start[s + 1]`` (ADC range calibration).
    """
    n_seg = seg_start.shape[0] - 1
    out = np.zeros(n_seg)
    rows = i.shape[0]
    for s in range(n_seg):
        m = 0.0
        for r in range(rows):
            for c in range(seg_start[s], seg_start[s + 1]):
                if i[r, c] > m:
                    m = i[r, c]
        out[s] = m
    return out


@jit
def adc_shift_add_segments(i, n_planes, seg_start, seg_dst, seg_coef, seg_imax, plane_weight,
                           n_steps, kind, param, table_x, table_y, out):
    """ADC, shift-and-add and signed accumulation for one stacked product of several arrays.

    ``i`` has shape (n_planes * batch, width): the planes of one block of rows driven against
    the concatenated ``g_eff`` of several arrays. Segment ``s`` (columns
    ``seg_start[s]:seg_start[s+1]``) is one array, digitised with full scale ``seg_imax[s]``
    and added with ``seg_coef[s]`` into ``out[:, seg_dst[s] : seg_dst[s] + width_s]``.
    Inner loops run over 1-D row views, which the compiler vectorises.
    """
    rows = i.shape[0]
    batch = rows // n_planes
    n_seg = seg_start.shape[0] - 1
    top = float(n_steps)
    for s in range(n_seg):
        c0 = seg_start[s]
        width = seg_start[s + 1] - c0
        d0 = seg_dst[s]
        i_max = seg_imax[s]
        for p in range(n_planes):
            w = seg_coef[s] * plane_weight[p]
            if w == 0.0 or (n_steps != 0 and i_max <= 0.0):
                continue
            if n_steps == 0:                           # ideal ADC
                for b in range(batch):
                    src = i[p * batch + b, c0:c0 + width]
                    dst = out[b, d0:d0 + width]
                    for c in range(width):
                        dst[c] += w * src[c]
            elif kind == KIND_NONE:                    # linear ADC: rint(n clip(i / i_max))
                # u = i * (1 / i_max) exactly as kernels.quantize.adc_convert_into, so exact
                # rounding ties (frequent with calibrated ranges and few DAC levels) give the
                # same code in every path
                inv = 1.0 / i_max
                lsb = w * i_max / n_steps
                for b in range(batch):
                    src = i[p * batch + b, c0:c0 + width]
                    dst = out[b, d0:d0 + width]
                    for c in range(width):
                        dst[c] += lsb * np.rint(min(max(src[c] * inv, 0.0), 1.0) * top)
            else:
                inv = 1.0 / i_max
                scale = w * i_max
                for b in range(batch):
                    src = i[p * batch + b, c0:c0 + width]
                    dst = out[b, d0:d0 + width]
                    for c in range(width):
                        u = min(max(src[c] * inv, 0.0), 1.0)
                        dst[c] += scale * quantize_scalar(
                            transfer_scalar(u, kind, param, table_x, table_y), n_steps)


@jit
def planes_product_convert(v_src, g_cat, seg_start, seg_dst, seg_coef, seg_imax, plane_weight,
                           adc, table_x, table_y, out):
    """Bit-plane products and their conversion, fused (BLAS product, then ADC per plane).

    For each plane ``p`` with any drive, ``i = v_src[p] @ g_cat`` then
    :func:`adc_shift_add_segments` on it.

    Parameters
    ----------
    v_src : (n_planes, batch, n_src) — drive voltages of the driven block [V], C-contiguous.
    g_cat : (n_src, width) — concatenated ``g_eff`` (or ``g_eff.T``) of the block's arrays [S].
    seg_start, seg_dst, seg_coef, seg_imax, plane_weight — as :func:`adc_shift_add_segments`.
    adc : (3,) float64 — ``n_steps``, transfer ``kind``, transfer ``param``.
    table_x, table_y — transfer lookup table (``kind`` = table only).
    out : (batch, n_out) — accumulator.

    The (batch, width) product buffer is reused for every plane and stays in cache until it is
    converted; planes whose drives are all 0 V are skipped.
    """
    n_planes, batch, n_src = v_src.shape
    buf = np.empty((batch, g_cat.shape[1]))
    n_steps = int(adc[0])
    kind = int(adc[1])
    for p in range(n_planes):
        if plane_weight[p] == 0.0:
            continue
        plane = v_src[p]
        if not np.any(plane != 0.0):
            continue
        np.dot(plane, g_cat, buf)
        adc_shift_add_segments(buf, 1, seg_start, seg_dst, seg_coef, seg_imax,
                               plane_weight[p:p + 1], n_steps, kind, adc[2], table_x, table_y,
                               out)


@jit
def dac_effective(x, in_scale, input_bits, dac_bits, mode, kind, param, table_x, table_y, v_max,
                  plane_weight):
    """``sum_p plane_weight[p] * dac_planes(...)[p]`` without storing the planes: (batch, n) [V].

    What a linear array sees of a streamed input when no ADC sits between the planes (ADC on
    the stitched layer output). Same decomposition and transfer curve as :func:`dac_planes`.
    """
    out = np.empty(x.shape)
    dac_effective_into(x, in_scale, input_bits, dac_bits, mode, kind, param, table_x, table_y,
                       v_max, plane_weight, out)
    return out


@jit
def dac_effective_into(x, in_scale, input_bits, dac_bits, mode, kind, param, table_x, table_y,
                       v_max, plane_weight, out):
    """:func:`dac_effective` into ``out`` (batch, n), overwritten; rows are independent."""
    batch, n = x.shape
    if kind == KIND_NONE and dac_bits != 0:
        # linear DAC: the weighted planes add up to the quantised input itself,
        # v_max * q / scale with q = rint(clip(u) * scale) (exact in integers)
        unsigned = mode == MODE_UNSIGNED
        scale = float((1 << input_bits) - 1) if unsigned else float((1 << (input_bits - 1)) - 1)
        lo = 0.0 if unsigned else -1.0
        for b in range(batch):
            for k in range(n):
                u = x[b, k] / in_scale
                out[b, k] = v_max * (np.rint(min(max(u, lo), 1.0) * scale) / scale)
        return
    for b0 in range(0, batch, 16):
        b1 = min(batch, b0 + 16)
        planes = dac_planes(x[b0:b1], in_scale, input_bits, dac_bits, mode, kind, param, table_x,
                            table_y, v_max)                       # (P, <=16, n), cache-sized
        for b in range(b1 - b0):
            for k in range(n):
                acc = 0.0
                for p in range(planes.shape[0]):
                    acc += plane_weight[p] * planes[p, b, k]
                out[b0 + b, k] = acc
