"""Counting ADC conversions that lose their signal: clipped at full scale or rounded to zero.

A diagnostic, not part of the conversion itself: it reads the analog currents that an ADC
converts and classifies each conversion, so that a stuck or saturated converter (a range far
too small, or far too large for the currents it sees) can be reported instead of training
silently at chance. The counts use the linear input scale ``u = |i| / i_max`` (the transfer
curve is ignored; it maps 0 to 0 and 1 to 1).

``counts`` is an int64 array of four running totals, updated in place:

0. conversions counted;
1. ``sensed``: conversions of a non-zero current (a unipolar ADC senses ``i > 0`` only);
2. ``clipped``: ``|i| > i_max``, beyond full scale (the output saturates);
3. ``lost``: sensed, yet below half a code step, ``|i| <= i_max / (2 n_steps)`` (code 0).
"""

from __future__ import annotations

import numpy as np

from xbarsim.kernels._jit import jit

N_COUNTS = 4
"""Length of the ``counts`` array."""


@jit
def count_conversions(i, seg_start, seg_imax, n_steps, bipolar, counts):
    """Classify the conversions of currents ``i`` and add them to ``counts``.

    Parameters
    ----------
    i : ndarray of shape (rows, width), float64
        Currents [A] as the ADCs see them; rows are conversions in time (batch and bit-plane).
    seg_start : ndarray of shape (n_seg + 1,), int64
        Segment ``s`` covers columns ``seg_start[s]:seg_start[s + 1]`` and is converted with
        full scale ``seg_imax[s]`` (one segment per physical array).
    seg_imax : ndarray of shape (n_seg,), float64
        Full-scale current of each segment [A]; ``<= 0`` (no range) counts every sensed
        conversion as clipped.
    n_steps : int
        ``2**bits - 1`` (>= 1).
    bipolar : bool
        Range ``[-i_max, i_max]``; otherwise ``[0, i_max]`` and negative currents give code 0
        without counting as sensed.
    counts : ndarray of shape (4,), int64
        Running totals, updated in place (module docstring).
    """
    rows = i.shape[0]
    n_seg = seg_start.shape[0] - 1
    half = 0.5 / n_steps
    for s in range(n_seg):
        top = seg_imax[s]
        floor = half * top
        c0 = seg_start[s]
        c1 = seg_start[s + 1]
        sensed = 0
        clipped = 0
        lost = 0
        for r in range(rows):
            for c in range(c0, c1):
                v = i[r, c]
                if bipolar:
                    v = abs(v)
                if v > 0.0:
                    sensed += 1
                    if v > top:
                        clipped += 1
                    elif v <= floor:
                        lost += 1
        counts[0] += rows * (c1 - c0)
        counts[1] += sensed
        counts[2] += clipped
        counts[3] += lost


@jit
def count_products(v, g, seg_start, seg_imax, n_steps, bipolar, counts):
    """:func:`count_conversions` of the currents ``v @ g``, computed here without BLAS.

    For a few rows (a sample of a fused product, whose currents are never stored): a plain
    loop costs less than a BLAS call that starts its threads for a handful of rows.

    Parameters
    ----------
    v : ndarray of shape (rows, n_src), float64
        Drive voltages [V].
    g : ndarray of shape (n_src, width), float64, C-contiguous
        Conductances [S] (concatenated ``g_eff`` of the arrays, segments as below).
    seg_start, seg_imax, n_steps, bipolar, counts
        As :func:`count_conversions`.
    """
    width = g.shape[1]
    row = np.empty((1, width))
    for r in range(v.shape[0]):
        row[0, :] = 0.0
        for k in range(v.shape[1]):
            vk = v[r, k]
            if vk != 0.0:
                for c in range(width):
                    row[0, c] += vk * g[k, c]
        count_conversions(row, seg_start, seg_imax, n_steps, bipolar, counts)
