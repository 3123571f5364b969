"""Non-linear, noisy conductance updates of resistive devices (MODELS.md §7).

Pure Numba kernels: arrays and scalars in, new arrays out, no RNG (standard-normal noise
arrays come from the caller). Every kernel works element-wise on 1-D (flattened) float64 arrays
of equal length ``n``; the Python side (:mod:`xbarsim.hardware.device`) validates, broadcasts and
reshapes.

Notation (MODELS.md §7.3): ``R = g_max - g_min``, ``delta = dg / R``, non-linearity ``v >= 0``,
``g0 = R / (1 - exp(-v))``, upper asymptote ``g_hi = g_min + g0`` and lower asymptote
``g_lo = g_max - g0``. ``1 - exp(-x)`` is evaluated as ``-expm1(-x)`` so that ``v -> 0`` is
accurate, and ``v == 0`` is the linear device exactly.

Update models (integer codes, the registry lives in ``hardware/device.py``):

``MODEL_LINEAR``
    ``dg_nl = dg``.
``MODEL_TXSIM``
    Corrected TxSim eq. (1) (MODELS.md §7.3, exponential saturating, path independent)::

        dg > 0:  dg_nl =  (g_hi - g) * (1 - exp(-v * delta))
        dg < 0:  dg_nl = -(g - g_lo) * (1 - exp(-v * |delta|))

``MODEL_TXSIM_PRINTED``
    TxSim eq. (1) exactly as printed (MODELS.md §7.1; case 2 keeps the un-flipped exponent)::

        dg > 0:  dg_nl = (g0 + g_min - g) * (1 - exp(-v * delta))
        dg < 0:  dg_nl = (g0 - g_max + g) * (1 - exp(-v * delta))       (delta < 0)

``MODEL_SOFT_BOUNDS``
    Soft bounds (aihwkit ``SoftBoundsDevice``, step proportional to the distance to the bound the
    device moves towards) in its continuous-pulse limit, which is path independent::

        dg > 0:  dg_nl =  (g_max - g) * (1 - exp(-delta))
        dg < 0:  dg_nl = -(g - g_min) * (1 - exp(-|delta|))

The NeuroSim model (MODELS.md §7.4) is ``MODEL_TXSIM`` with ``v = P_max / A``; the conversion of
the NL label to ``v`` is done once in Python.

Pulse quantisation: with a pulse size ``dg_pulse > 0`` the request becomes
``n = floor(|dg| / dg_pulse + 1/2)`` pulses (NeuroSim's 0.5 threshold), applied in closed form.
For every model except the printed one this is the model evaluated at ``n * dg_pulse`` (path
independence); for the printed one the n-fold composition of the one-pulse map is used
(case 2: ``g_n - g_lo = (g - g_lo) * (2 - exp(v * dg_pulse / R))**n``).
"""

from __future__ import annotations

import math

import numpy as np

from xbarsim.kernels._jit import jit

MODEL_LINEAR = 0
MODEL_TXSIM = 1
MODEL_TXSIM_PRINTED = 2
MODEL_SOFT_BOUNDS = 3

# indices into the float64 parameter vector of ``apply_update``
P_G_MIN = 0
"""Lower conductance bound [S]."""
P_G_MAX = 1
"""Upper conductance bound [S]."""
P_DG_PULSE = 2
"""Conductance change of one pulse [S]; 0 disables pulse quantisation."""
P_NOISE_SQRT = 3
"""Coefficient c of the square-root write noise ``c * sqrt(|dg_applied|)`` [sqrt(S)]."""
P_NOISE_LINEAR = 4
"""Coefficient c of the linear (TxSim literal) write noise ``c * |dg_applied|`` [1]."""
P_SIGMA_C2C = 5
"""Cycle-to-cycle variation of the applied change, relative to ``|dg_nl|`` [1]."""
N_PARAMS = 6


@jit
def saturation(v):
    """``1 - exp(-v)`` per device, as ``-expm1(-v)``: the factor the kernels take precomputed.

    ``v`` (n,) non-linearities (dimensionless, >= 0); returns (n,). Computed once per device
    array and kept (:class:`xbarsim.hardware.device.Device`), it saves one ``expm1`` (about
    10 ns) per device and update.
    """
    out = np.empty(v.shape[0])
    for k in range(v.shape[0]):
        out[k] = -math.expm1(-v[k])
    return out


@jit
def response_scalar(model, g, dg, v, one_m_ev, g_min, g_max):
    """Deterministic conductance change of one device for a requested change ``dg``.

    ``g``, ``dg``, ``g_min``, ``g_max`` in [S], ``v`` dimensionless, ``one_m_ev`` its
    :func:`saturation` ``1 - exp(-v)``, ``model`` an integer code.
    Returns ``dg_nl`` [S] (not clipped). ``dg == 0`` returns exactly 0.
    """
    if dg == 0.0:
        return 0.0
    if model == MODEL_LINEAR:
        return dg
    r = g_max - g_min
    delta = dg / r
    if model == MODEL_SOFT_BOUNDS:
        if dg > 0.0:
            return (g_max - g) * (-math.expm1(-delta))
        return -(g - g_min) * (-math.expm1(delta))
    if v == 0.0:
        return dg
    # one_m_ev = 1 - exp(-v) and the normalised shape factor; R * ratio -> dg as v -> 0
    if model == MODEL_TXSIM:
        if dg > 0.0:
            # (g_hi - g) * (1 - e^{-v delta}) with g_hi - g = g0 + (g_min - g)
            shape = -math.expm1(-v * delta)
            return r * shape / one_m_ev + (g_min - g) * shape
        # -(g - g_lo) * (1 - e^{-v |delta|}) with g - g_lo = g0 + (g - g_max)
        shape = -math.expm1(v * delta)
        return -(r * shape / one_m_ev + (g - g_max) * shape)
    # MODEL_TXSIM_PRINTED: the same factor (1 - e^{-v delta}) in both cases, as printed
    shape = -math.expm1(-v * delta)
    if dg > 0.0:
        return r * shape / one_m_ev + (g_min - g) * shape
    return r * shape / one_m_ev + (g - g_max) * shape


@jit
def pulsed_response_scalar(model, g, dg, v, one_m_ev, g_min, g_max, dg_pulse):
    """Deterministic change [S] of one device when ``dg`` is rounded to whole pulses.

    Returns ``(dg_applied, dg_nl)``: the quantised ideal request ``n * dg_pulse * sign(dg)`` and
    the device's response to ``n`` pulses. ``dg_pulse <= 0`` means no quantisation.
    """
    if dg_pulse <= 0.0:
        return dg, response_scalar(model, g, dg, v, one_m_ev, g_min, g_max)
    n_pulses = math.floor(abs(dg) / dg_pulse + 0.5)
    if n_pulses == 0.0:
        return 0.0, 0.0
    dg_applied = math.copysign(n_pulses * dg_pulse, dg)
    if model != MODEL_TXSIM_PRINTED or dg > 0.0 or v == 0.0:
        # path-independent models: n pulses == one request of n * dg_pulse
        return dg_applied, response_scalar(model, g, dg_applied, v, one_m_ev, g_min, g_max)
    # printed case 2, one pulse maps (g - g_lo) -> (g - g_lo) * (2 - e^{v d}); compose n times
    r = g_max - g_min
    g_lo = g_max - r / one_m_ev
    factor = (1.0 - math.expm1(v * dg_pulse / r)) ** n_pulses
    return dg_applied, (g - g_lo) * (factor - 1.0)


@jit
def nonlinear_response(model, g, dg_request, v, one_m_ev, g_min, g_max):
    """Deterministic non-linear response of many devices (no pulses, no noise, no clipping).

    Parameters: ``g``, ``dg_request`` (n,) [S]; ``v`` (n,) non-linearity per device and
    ``one_m_ev`` (n,) its :func:`saturation`; ``g_min``,
    ``g_max`` [S] scalars; ``model`` integer code. Returns ``dg_nl`` of shape (n,) [S].
    """
    n = g.shape[0]
    out = np.empty(n, dtype=np.float64)
    for k in range(n):
        out[k] = response_scalar(model, g[k], dg_request[k], v[k], one_m_ev[k], g_min, g_max)
    return out


@jit
def apply_update(model, g, dg_request, v, one_m_ev, noise, params):
    """New conductances after one update: pulses -> non-linear response -> noise -> clip.

    Parameters
    ----------
    model : int
        Update-model code (``MODEL_*``).
    g : ndarray of shape (n,)
        Present conductances [S].
    dg_request : ndarray of shape (n,)
        Requested signed changes [S] (already scaled by the learning rate and by the per-device
        step gain).
    v : ndarray of shape (n,)
        Non-linearity per device (dimensionless, >= 0).
    one_m_ev : ndarray of shape (n,)
        ``1 - exp(-v)`` per device (:func:`saturation`).
    noise : ndarray of shape (n,)
        Standard-normal draws, one per device.
    params : ndarray of shape (N_PARAMS,)
        ``g_min, g_max, dg_pulse, noise_sqrt, noise_linear, sigma_c2c`` (see ``P_*``).

    Returns
    -------
    ndarray of shape (n,)
        ``clip(g + dg_nl + sigma * noise, g_min, g_max)`` [S], where
        ``sigma**2 = (noise_sqrt**2 * |dg_applied| + (noise_linear * dg_applied)**2
        + (sigma_c2c * dg_nl)**2)``. Devices with ``dg_applied == 0`` are returned unchanged
        (no noise, no clipping).
    """
    g_min = params[P_G_MIN]
    g_max = params[P_G_MAX]
    dg_pulse = params[P_DG_PULSE]
    c_sqrt = params[P_NOISE_SQRT]
    c_lin = params[P_NOISE_LINEAR]
    c2c = params[P_SIGMA_C2C]
    n = g.shape[0]
    out = np.empty(n, dtype=np.float64)
    for k in range(n):
        dg_applied, dg_nl = pulsed_response_scalar(model, g[k], dg_request[k], v[k],
                                                   one_m_ev[k], g_min, g_max, dg_pulse)
        if dg_applied == 0.0:
            out[k] = g[k]
            continue
        # independent zero-mean Gaussians add in variance, so one normal per device suffices
        var = (c_sqrt * c_sqrt * abs(dg_applied) + (c_lin * dg_applied) ** 2
               + (c2c * dg_nl) ** 2)
        g_new = g[k] + dg_nl + math.sqrt(var) * noise[k]
        out[k] = min(max(g_new, g_min), g_max)
    return out


@jit
def quantize_levels(g, g_min, g_max, n_levels):
    """Round conductances to ``n_levels`` evenly spaced levels in [g_min, g_max] (after clipping).

    ``g`` (n,) [S]; returns (n,) [S]. ``n_levels >= 2``.
    """
    step = (g_max - g_min) / (n_levels - 1)
    n = g.shape[0]
    out = np.empty(n, dtype=np.float64)
    for k in range(n):
        x = min(max(g[k], g_min), g_max)
        level = math.floor((x - g_min) / step + 0.5)
        out[k] = min(g_min + level * step, g_max)
    return out
