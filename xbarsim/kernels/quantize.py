"""DAC / ADC transfer curves and uniform quantisation (docs/physics.md, 'Converters').

Pure Numba kernels; scalar helpers (``*_scalar``) are meant to be inlined into fused kernels
(e.g. the tile MVM), array kernels work element-wise on 1-D float64 arrays.

A converter works on the normalised magnitude ``u = clip(x / full_scale, 0, 1)``:

* transfer curve ``f(u)`` with ``f(0) = 0``, ``f(1) = 1``, non-decreasing:

  - ``KIND_NONE``: ``f(u) = u``;
  - ``KIND_BOW``: ``f(u) = u + a u (1 - u)`` (bow / INL, monotone for ``|a| <= 1``);
  - ``KIND_TANH``: ``f(u) = tanh(beta u) / tanh(beta)`` (compression, ``beta > 0``);
  - ``KIND_TABLE``: piecewise-linear through the points ``(table_x, table_y)``.
* uniform quantisation to ``n_steps = 2**bits - 1`` steps: ``round(n_steps * y) / n_steps``
  (round half to even, ``numpy.rint``); ``n_steps == 0`` disables it.

The order differs between the two converters: a DAC quantises the digital input first and its
analog output follows the curve, ``V / V_max = f(q(u))``; an ADC's analog front end follows the
curve and the code is quantised, ``code / n_steps = q(f(u))``, reconstructed with the ideal
(linear) inverse ``I_max * code / n_steps``.

Bipolar converters use the odd extension ``F(x) = sign(x) F(|x|)``.
"""

from __future__ import annotations

import math

import numpy as np

from xbarsim.kernels._jit import jit

KIND_NONE = 0
KIND_BOW = 1
KIND_TANH = 2
KIND_TABLE = 3


@jit
def interp_scalar(u, table_x, table_y):
    """Piecewise-linear interpolation of ``(table_x, table_y)`` at ``u`` (clamped to the ends).

    ``table_x`` strictly increasing, shape (m,) with m >= 2.
    """
    m = table_x.shape[0]
    if u <= table_x[0]:
        return table_y[0]
    if u >= table_x[m - 1]:
        return table_y[m - 1]
    k = np.searchsorted(table_x, u, side="right") - 1
    t = (u - table_x[k]) / (table_x[k + 1] - table_x[k])
    return table_y[k] + t * (table_y[k + 1] - table_y[k])


@jit
def transfer_scalar(u, kind, param, table_x, table_y):
    """Transfer curve ``f(u)`` of a normalised magnitude ``u`` in [0, 1] (see module docstring).

    ``param`` is the bow coefficient ``a`` or the tanh ``beta``; the table is used for
    ``KIND_TABLE`` only.
    """
    if kind == KIND_NONE:
        return u
    if kind == KIND_BOW:
        return u + param * u * (1.0 - u)
    if kind == KIND_TANH:
        return math.tanh(param * u) / math.tanh(param)
    return interp_scalar(u, table_x, table_y)


@jit
def quantize_scalar(y, n_steps):
    """Round ``y`` to the grid ``k / n_steps`` (half to even); ``n_steps == 0``: unchanged."""
    if n_steps == 0:
        return y
    return np.rint(y * n_steps) / n_steps


@jit
def adc_convert(x, full_scale, n_steps, bipolar, kind, param, table_x, table_y):
    """ADC: clip, transfer curve, then quantise (``q(f(u))``), element-wise.

    Parameters as :func:`adc_convert_into`; returns the ``(n,)`` result in units of the full
    scale.
    """
    out = np.empty(x.shape[0], dtype=np.float64)
    adc_convert_into(x, full_scale, n_steps, bipolar, kind, param, table_x, table_y, out)
    return out


@jit
def peak(x, bipolar):
    """Largest magnitude an ADC range must cover: ``max |x|`` (bipolar) or ``max(max x, 0)``.

    x : ndarray of shape (n,). NaN if any entry is NaN (as ``np.max``), else exact.
    """
    top = 0.0
    bad = False
    for k in range(x.shape[0]):
        v = x[k]
        bad |= v != v
        if bipolar:
            v = abs(v)
        top = max(top, v)
    return np.nan if bad else top


@jit
def adc_convert_into(x, full_scale, n_steps, bipolar, kind, param, table_x, table_y, out):
    """ADC: clip, transfer curve, then quantise (``q(f(u))``), element-wise, into ``out``.

    Parameters
    ----------
    x : ndarray of shape (n,)
        Input currents [A].
    full_scale : float
        Full-scale input magnitude ``i_max`` [A], > 0; ``<= 0`` returns zeros.
    n_steps : int
        ``2**bits - 1``, or 0 for no quantisation.
    bipolar : bool
        Clip to ``[-1, 1]`` with the odd extension instead of ``[0, 1]``.
    kind, param, table_x, table_y
        Transfer curve (module docstring).
    out : ndarray of shape (n,)
        Overwritten with ``sign * q(f(|u|))``, ``u = clip(x / full_scale)``, in units of the
        full scale (multiply by ``i_max`` for amperes).
    """
    n = x.shape[0]
    if full_scale <= 0.0:
        out[:] = 0.0
        return
    # every ADC path of the package normalises with the same product, u = x * (1 / i_max), so a
    # current on an exact rounding tie gets the same code in the layer and the tile paths
    inv = 1.0 / full_scale
    if kind == KIND_NONE:
        # the linear curve written out: the same operations as the general loop below, which
        # the compiler does not inline (4x slower bipolar, 16x unipolar on 2.8M currents)
        for k in range(n):
            u = x[k] * inv
            sign = 1.0
            if u < 0.0:
                if bipolar:
                    sign = -1.0
                    u = -u
                else:
                    u = 0.0
            if u > 1.0:
                u = 1.0
            if n_steps != 0:
                u = np.rint(u * n_steps) / n_steps
            out[k] = sign * u
        return
    for k in range(n):
        u = x[k] * inv
        sign = 1.0
        if u < 0.0:
            if bipolar:
                sign = -1.0
                u = -u
            else:
                u = 0.0
        if u > 1.0:
            u = 1.0
        out[k] = sign * quantize_scalar(transfer_scalar(u, kind, param, table_x, table_y),
                                        n_steps)


@jit
def dac_convert(x, n_steps, bipolar, kind, param, table_x, table_y):
    """DAC: clip, quantise the digital input, then transfer curve (``f(q(u))``), element-wise.

    Parameters
    ----------
    x : ndarray of shape (n,)
        Normalised digital inputs (1 = full scale).
    n_steps, bipolar, kind, param, table_x, table_y
        As in :func:`adc_convert`.

    Returns
    -------
    ndarray of shape (n,)
        Output in units of the full-scale voltage (multiply by ``v_max`` for volts).
    """
    n = x.shape[0]
    out = np.empty(n, dtype=np.float64)
    for k in range(n):
        u = x[k]
        sign = 1.0
        if u < 0.0:
            if bipolar:
                sign = -1.0
                u = -u
            else:
                u = 0.0
        if u > 1.0:
            u = 1.0
        out[k] = sign * transfer_scalar(quantize_scalar(u, n_steps), kind, param, table_x,
                                        table_y)
    return out
