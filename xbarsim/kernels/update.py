"""Non-linear, noisy conductance updates of resistive devices (docs/physics.md, 'Device updates').

Pure Numba kernels: arrays and scalars in, new arrays out, no RNG (standard-normal noise
arrays come from the caller). Every kernel works element-wise on 1-D (flattened) float64 arrays
of equal length ``n``; the Python side (:mod:`xbarsim.hardware.device`) validates, broadcasts and
reshapes.

Notation (docs/physics.md, 'Device updates'): ``R = g_max - g_min``, ``delta = dg / R``,
non-linearity ``v >= 0``, ``g0 = R / (1 - exp(-v))``, upper asymptote ``g_hi = g_min + g0`` and
lower asymptote ``g_lo = g_max - g0``. ``1 - exp(-x)`` is evaluated as ``-expm1(-x)`` so that
``v -> 0`` is accurate, and ``v == 0`` is the linear device exactly.

Update models (integer codes, the registry lives in ``hardware/device.py``):

``MODEL_LINEAR``
    ``dg_nl = dg``.
``MODEL_TXSIM``
    Corrected TxSim eq. (1) (exponential saturating, path independent)::

        dg > 0:  dg_nl =  (g_hi - g) * (1 - exp(-v * delta))
        dg < 0:  dg_nl = -(g - g_lo) * (1 - exp(-v * |delta|))

``MODEL_TXSIM_PRINTED``
    TxSim eq. (1) exactly as printed (Roy et al., TVLSI 2021; case 2 keeps the un-flipped
    exponent)::

        dg > 0:  dg_nl = (g0 + g_min - g) * (1 - exp(-v * delta))
        dg < 0:  dg_nl = (g0 - g_max + g) * (1 - exp(-v * delta))       (delta < 0)

``MODEL_SOFT_BOUNDS``
    Soft bounds (aihwkit ``SoftBoundsDevice``, step proportional to the distance to the bound the
    device moves towards) in its continuous-pulse limit, which is path independent::

        dg > 0:  dg_nl =  (g_max - g) * (1 - exp(-delta))
        dg < 0:  dg_nl = -(g - g_min) * (1 - exp(-|delta|))

The NeuroSim model (Chen, Peng, Yu, IEEE TCAD 2018) is ``MODEL_TXSIM`` with
``v = P_max / A``; the conversion of the NL label to ``v`` is done once in Python.

Pulse quantisation: with a pulse size ``dg_pulse > 0`` the request becomes
``n = floor(|dg| / dg_pulse + 1/2)`` pulses (NeuroSim's 0.5 threshold), applied in closed form.
For every model except the printed one this is the model evaluated at ``n * dg_pulse`` (path
independence); for the printed one the n-fold composition of the one-pulse map is used
(case 2: ``g_n - g_lo = (g - g_lo) * (2 - exp(v * dg_pulse / R))**n``).

Noise: :func:`apply_update` takes its standard normals as an array. The training kernels
:func:`apply_update_keyed` and :func:`signed_split_update_keyed` draw them themselves from the
counter-based generator of :mod:`xbarsim.kernels.philox` (the one kind of randomness allowed in
kernels: a pure function of an explicit key and counter), keyed on (key, update step, array
index, device index). They are parallel over devices (``prange``) and give the same bits for
any number of threads, and equal :func:`apply_update` fed with
:func:`xbarsim.kernels.philox.keyed_normals` bit for bit. A device whose request is zero is
neither drawn for nor updated (it keeps its conductance, which is what the full computation
gives), so only the active devices pay for ``expm1`` and a normal.
"""

from __future__ import annotations

import math
import types

import numpy as np
from numba import prange

from xbarsim.kernels._jit import jit, jit_parallel
from xbarsim.kernels.philox import (
    CENTRAL_HALF_WIDTH,
    as241_central,
    as241_tail,
    counter_words,
    device_uniform,
    finish_normal,
)

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
        # dg > 0: (g_max - g) (1 - e^{-delta});  dg < 0: -(g - g_min) (1 - e^{-|delta|})
        shape = -math.expm1(-abs(delta))
        return (g_max - g) * shape if dg > 0.0 else -(g - g_min) * shape
    if v == 0.0:
        return dg
    # one_m_ev = 1 - exp(-v) and the normalised shape factor; R * ratio -> dg as v -> 0.
    # The sign of dg selects operands instead of branches (a training step's signs are
    # random, and mispredicted branches cost more than the arithmetic); the operations, and
    # so the results, are those of the two cases written out in the module docstring.
    pos = dg > 0.0
    if model == MODEL_TXSIM:
        # dg > 0: (g_hi - g) * (1 - e^{-v delta}) with g_hi - g = g0 + (g_min - g)
        # dg < 0: -(g - g_lo) * (1 - e^{-v |delta|}) with g - g_lo = g0 + (g - g_max)
        shape = -math.expm1(-v * abs(delta))
        val = r * shape / one_m_ev + ((g_min - g) if pos else (g - g_max)) * shape
        return val if pos else -val
    # MODEL_TXSIM_PRINTED: the same factor (1 - e^{-v delta}) in both cases, as printed
    shape = -math.expm1(-v * delta)
    return r * shape / one_m_ev + ((g_min - g) if pos else (g - g_max)) * shape


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
        dg_nl, sigma, moved = response_and_sigma(model, g[k], dg_request[k], v[k], one_m_ev[k],
                                                 g_min, g_max, dg_pulse, c_sqrt, c_lin, c2c)
        out[k] = noisy_step(g[k], dg_nl, sigma, noise[k], g_min, g_max) if moved else g[k]
    return out


@jit(inline="always")
def response_and_sigma(model, g, dg, v, one_m_ev, g_min, g_max, dg_pulse, c_sqrt, c_lin, c2c):
    """Deterministic change and noise amplitude of one device's update.

    Returns ``(dg_nl, sigma, moved)``: ``dg_nl`` [S] as in :func:`pulsed_response_scalar`,
    ``sigma`` [S] with ``sigma**2 = noise_sqrt**2 |dg_applied| + (noise_linear dg_applied)**2
    + (sigma_c2c dg_nl)**2`` (independent zero-mean Gaussians add in variance, so one normal
    per device suffices), and ``moved`` False when the (pulse-rounded) request is zero: then
    the device keeps its conductance and needs no normal.
    """
    dg_applied, dg_nl = pulsed_response_scalar(model, g, dg, v, one_m_ev, g_min, g_max,
                                               dg_pulse)
    if dg_applied == 0.0:
        return 0.0, 0.0, False
    var = (c_sqrt * c_sqrt * abs(dg_applied) + (c_lin * dg_applied) ** 2
           + (c2c * dg_nl) ** 2)
    return dg_nl, math.sqrt(var), True


@jit(inline="always")
def noisy_step(g, dg_nl, sigma, z, g_min, g_max):
    """``clip(g + dg_nl + sigma * z, g_min, g_max)`` [S] for the standard normal ``z``."""
    return min(max(g + dg_nl + sigma * z, g_min), g_max)


#: Devices per task of the parallel update kernels (about 10 us of work).
TASK_DEVICES = 1024

# rows of the per-task scratch of :func:`update_moving`
_S_DG = 0      # pulse-rounded request dg_applied [S]
_S_SHAPE = 1   # argument, then value, of the model's 1 - exp(-x) factor
_S_U = 2       # the device's uniform
_S_Z = 3       # its normal (AS 241 central value)
_S_NL = 4      # deterministic change dg_nl [S]
_S_SIGMA = 5   # noise amplitude [S]
_S_NEW = 6     # new conductance [S]
_S_REDO = 7    # indices of the entries redone by the scalar path
_S_G = 8       # present conductance [S]
_S_V = 9       # non-linearity v (per-device v only)
_S_OME = 10    # its 1 - exp(-v) (per-device v only)
N_SCRATCH = 11


@jit
def update_tasks(arrays, task_devices):
    """Split flat arrays into ``prange`` tasks of about ``task_devices`` devices.

    Parameters
    ----------
    arrays : ndarray of int64, shape (n_arrays, 3)
        Per array: offset in the flat buffer, number of devices, counter index.
    task_devices : int
        Devices per task (the last task of an array may be shorter).

    Returns
    -------
    ndarray of int64, shape (n_tasks, 3)
        Per task: array row, first and one-past-last device of that array.
    """
    n_tasks = 0
    for a in range(arrays.shape[0]):
        n_tasks += (arrays[a, 1] + task_devices - 1) // task_devices
    tasks = np.empty((n_tasks, 3), dtype=np.int64)
    t = 0
    for a in range(arrays.shape[0]):
        for k0 in range(0, arrays[a, 1], task_devices):
            tasks[t, 0] = a
            tasks[t, 1] = k0
            tasks[t, 2] = min(k0 + task_devices, arrays[a, 1])
            t += 1
    return tasks


@jit(inline="always")
def update_moving(model, g, out, dg, active, n_active, off, k_base, array_index, v, one_m_ev,
                  params, key0, key1, step, noisy, scratch):
    """Update the devices of one array that have non-zero requests (the kernels' inner part).

    Device ``k_base + j`` of the array (flat index ``off + j`` of ``g``/``out``) for each
    ``j`` in ``active[:n_active]``, with request ``dg[j]`` (after the device-to-device gain)
    and the normal of that device under ``(key0, key1, step, array_index)``. ``out`` holds
    ``g`` on entry.

    The result of each device is that of :func:`response_and_sigma`, :func:`finish_normal`
    and :func:`noisy_step`, but computed in stages over all the moving devices -- the
    normals, the requests and the arguments of the model's ``expm1``; the ``expm1`` calls; the
    new conductances -- so that the stages vectorise or overlap instead of waiting on one
    device's chain of divisions and calls. Draws in the tails of AS 241 (15 %) and the one
    case without a staged form (the printed model's pulse composition) are redone with the
    scalar functions. ``scratch`` is (N_SCRATCH, >= n_active) float64.
    """
    g_min = params[P_G_MIN]
    g_max = params[P_G_MAX]
    dg_pulse = params[P_DG_PULSE]
    c_sqrt = params[P_NOISE_SQRT]
    c_lin = params[P_NOISE_LINEAR]
    c2c = params[P_SIGMA_C2C]
    r = g_max - g_min
    per_device_v = v.shape[0] > 1
    d_app = scratch[_S_DG]
    shape = scratch[_S_SHAPE]
    u = scratch[_S_U]
    zc = scratch[_S_Z]
    dg_nl = scratch[_S_NL]
    sigma = scratch[_S_SIGMA]
    g_new = scratch[_S_NEW]
    redo = scratch[_S_REDO]
    g_old = scratch[_S_G]
    v_q = scratch[_S_V]
    ome_q = scratch[_S_OME]
    # stage 0: gather the moving devices' inputs (the later stages run on contiguous rows)
    for q in range(n_active):
        g_old[q] = g[off + active[q]]
        d_app[q] = dg[active[q]]
    if per_device_v:
        for q in range(n_active):
            v_q[q] = v[off + active[q]]
            ome_q[q] = one_m_ev[off + active[q]]
    else:
        for q in range(n_active):
            v_q[q] = v[0]
            ome_q[q] = one_m_ev[0]
    # stage 1: normals (Philox, central AS 241) of the moving devices
    if noisy:
        k0 = np.uint64(key0)
        k1 = np.uint64(key1)
        c1, c2, c3 = counter_words(array_index, step)
        for q in range(n_active):
            u[q] = device_uniform(k0, k1, c1, c2, c3, k_base + active[q])
        for q in range(n_active):
            zc[q] = as241_central(u[q])
    else:
        for q in range(n_active):
            zc[q] = 0.0
    # stage 2: pulse rounding (pulsed_response_scalar) and the argument of the model's
    # expm1 (response_scalar)
    if dg_pulse > 0.0:
        for q in range(n_active):
            d = d_app[q]
            d_app[q] = math.copysign(math.floor(abs(d) / dg_pulse + 0.5) * dg_pulse, d)
    if model == MODEL_TXSIM:
        for q in range(n_active):
            shape[q] = -v_q[q] * abs(d_app[q] / r)
    elif model == MODEL_TXSIM_PRINTED:
        for q in range(n_active):
            shape[q] = -v_q[q] * (d_app[q] / r)
    elif model == MODEL_SOFT_BOUNDS:
        for q in range(n_active):
            shape[q] = -abs(d_app[q] / r)
    # stage 3: the expm1 calls, back to back
    if model != MODEL_LINEAR:
        for q in range(n_active):
            shape[q] = -math.expm1(shape[q])
    # stage 4: response (the cases of response_scalar as selects), noise amplitude, new value
    if model == MODEL_LINEAR:
        for q in range(n_active):
            dg_nl[q] = d_app[q]
    elif model == MODEL_SOFT_BOUNDS:
        for q in range(n_active):
            sh = shape[q]
            dg_nl[q] = (g_max - g_old[q]) * sh if d_app[q] > 0.0 else -(g_old[q] - g_min) * sh
    else:
        sign_flip = model == MODEL_TXSIM
        for q in range(n_active):
            g0 = g_old[q]
            sh = shape[q]
            d = d_app[q]
            pos = d > 0.0
            val = r * sh / ome_q[q] + ((g_min - g0) if pos else (g0 - g_max)) * sh
            val = -val if sign_flip and not pos else val
            dg_nl[q] = d if v_q[q] == 0.0 else val
    for q in range(n_active):
        d = d_app[q]
        cd = c_lin * d
        cn = c2c * dg_nl[q]
        sigma[q] = math.sqrt(c_sqrt * c_sqrt * abs(d) + cd * cd + cn * cn)
    for q in range(n_active):
        g0 = g_old[q]
        g_new[q] = noisy_step(g0, dg_nl[q], sigma[q], zc[q], g_min, g_max) \
            if d_app[q] != 0.0 else g0
    for q in range(n_active):
        out[off + active[q]] = g_new[q]
    # stage 5: draws in the tails of AS 241 (a compacted list: the branch would mispredict
    # 15 % of the time), and the printed model's pulse composition by the scalar path
    if noisy:
        n_redo = 0
        for q in range(n_active):
            redo[n_redo] = q
            n_redo += abs(u[q] - 0.5) > CENTRAL_HALF_WIDTH
        for p in range(n_redo):
            q = int(redo[p])
            if d_app[q] != 0.0:
                out[off + active[q]] = noisy_step(g_old[q], dg_nl[q], sigma[q],
                                                  as241_tail(u[q]), g_min, g_max)
    if model == MODEL_TXSIM_PRINTED and dg_pulse > 0.0:
        for q in range(n_active):
            if d_app[q] < 0.0:
                i = off + active[q]
                nl, sg, moved = response_and_sigma(model, g[i], dg[active[q]], v_q[q],
                                                   ome_q[q], g_min, g_max, dg_pulse,
                                                   c_sqrt, c_lin, c2c)
                z = finish_normal(u[q], zc[q]) if noisy else 0.0
                out[i] = noisy_step(g[i], nl, sg, z, g_min, g_max)


def _apply_update_keyed(model, g, dg_request, v, one_m_ev, step_gain, params, key0, key1, step,
                       arrays, tasks, noisy):
    """:func:`apply_update` of many arrays at once, drawing the noise from keyed Philox.

    Parameters
    ----------
    model : int
        Update-model code (``MODEL_*``).
    g, dg_request : ndarray of shape (n,)
        Present conductances and requested changes [S] of every device, the arrays one
        after the other (flat C order each).
    v, one_m_ev : ndarray of shape (n,) or (1,)
        Non-linearity and its :func:`saturation` per device, or one value for all.
    step_gain : ndarray of shape (n,) or (0,)
        Device-to-device gain multiplying the request, or none.
    params : ndarray of shape (N_PARAMS,)
        As in :func:`apply_update`.
    key0, key1 : int
        Key words (< 2**32).
    step : int
        Update step (counter words 2 and 3).
    arrays : ndarray of int64, shape (n_arrays, 3)
        Per array: offset into the flat vectors, number of devices, counter index.
    tasks : ndarray of int64, shape (n_tasks, 3)
        :func:`update_tasks` of ``arrays``.
    noisy : bool
        False when ``params`` make every ``sigma`` zero (no normals are drawn).

    Returns
    -------
    ndarray of shape (n,)
        New conductances [S]: :func:`apply_update` of each array with the normals
        :func:`xbarsim.kernels.philox.keyed_normals` ``(key0, key1, step, index, size)``,
        bit for bit, whatever the number of threads. Devices with a zero request draw
        nothing and keep their conductance.
    """
    out = np.empty_like(g)
    has_gain = step_gain.shape[0] > 0
    for t in prange(tasks.shape[0]):
        a = tasks[t, 0]
        lo = tasks[t, 1]
        n = tasks[t, 2] - lo
        off = arrays[a, 0] + lo
        out[off:off + n] = g[off:off + n]      # devices without a request keep theirs
        dgb = np.empty(n)
        if has_gain:
            for j in range(n):
                dgb[j] = dg_request[off + j] * step_gain[off + j]
        else:
            for j in range(n):
                dgb[j] = dg_request[off + j]
        active = np.empty(n, dtype=np.int64)
        n_active = 0
        for j in range(n):
            active[n_active] = j
            n_active += dgb[j] != 0.0
        if n_active > 0:
            update_moving(model, g, out, dgb, active, n_active, off, lo, arrays[a, 2], v,
                          one_m_ev, params, key0, key1, step, noisy,
                          np.empty((N_SCRATCH, n_active)))
    return out


def _signed_split_update_keyed(model, g, dw, alpha, blocks, tasks, v, one_m_ev, step_gain,
                              params, key0, key1, step, noisy):
    """Weight step of a signed-split tile, realised by its devices, in one parallel kernel.

    Per weight: the requests of :func:`xbarsim.kernels.mapping.signed_split_requests` (the
    same operations), then :func:`apply_update_keyed` of the positive and the negative device
    (the idle device of a pair usually has a zero request and is skipped).

    Parameters
    ----------
    model : int
        Update-model code (``MODEL_*``).
    g : ndarray of shape (n,)
        Master conductances [S]: per block, its positive then its negative array (flat C order).
    dw : ndarray of shape (n_in, n_out)
        Requested weight step of the whole layer.
    alpha : float
        Conductance per weight unit [S].
    blocks : ndarray of int64, shape (n_blocks, 5)
        Per block: first layer row and column, rows, columns, offset of its positive array in
        ``g`` (the negative one follows). Block ``b``'s arrays have counter indices ``2 b`` and
        ``2 b + 1``.
    tasks : ndarray of int64, shape (n_tasks, 3)
        Per task: block, first and one-past-last row of the block.
    v, one_m_ev, step_gain, params, key0, key1, step, noisy
        As in :func:`apply_update_keyed` (``params`` bounds are the mapping's too).

    Returns
    -------
    ndarray of shape (n,)
        New master conductances [S], equal bit for bit to the requests of
        ``signed_split_requests`` followed by :func:`apply_update_keyed`, for any number of
        threads.
    """
    out = np.empty_like(g)
    g_min = params[P_G_MIN]
    g_max = params[P_G_MAX]
    has_gain = step_gain.shape[0] > 0
    for t in prange(tasks.shape[0]):
        b = tasks[t, 0]
        row0 = blocks[b, 0]
        col0 = blocks[b, 1]
        n_cols = blocks[b, 3]
        off_pos = blocks[b, 4]
        off_neg = off_pos + blocks[b, 2] * n_cols
        lo = tasks[t, 1] * n_cols
        n = tasks[t, 2] * n_cols - lo
        # devices without a request keep their conductance
        out[off_pos + lo:off_pos + lo + n] = g[off_pos + lo:off_pos + lo + n]
        out[off_neg + lo:off_neg + lo + n] = g[off_neg + lo:off_neg + lo + n]
        # the pair's requests (row 0: positive array, row 1: negative)
        dgb = np.empty((2, n))
        for row in range(tasks[t, 1], tasks[t, 2]):
            for col in range(n_cols):
                k = row * n_cols + col
                g_pos = g[off_pos + k]
                g_neg = g[off_neg + k]
                w_new = (g_pos - g_neg) / alpha + dw[row0 + row, col0 + col]
                t_pos = min(max(g_min + alpha * max(w_new, 0.0), g_min), g_max)
                t_neg = min(max(g_min + alpha * max(-w_new, 0.0), g_min), g_max)
                dgb[0, k - lo] = t_pos - g_pos
                dgb[1, k - lo] = t_neg - g_neg
        if has_gain:
            for j in range(n):
                dgb[0, j] = dgb[0, j] * step_gain[off_pos + lo + j]
                dgb[1, j] = dgb[1, j] * step_gain[off_neg + lo + j]
        active = np.empty(n, dtype=np.int64)
        scratch = np.empty((N_SCRATCH, n))
        for a in range(2):
            n_active = 0
            for j in range(n):
                active[n_active] = j
                n_active += dgb[a, j] != 0.0
            if n_active > 0:
                update_moving(model, g, out, dgb[a], active, n_active,
                              (off_neg if a else off_pos) + lo, lo, 2 * b + a, v, one_m_ev,
                              params, key0, key1, step, noisy, scratch)
    return out


def _named(func, suffix):
    """Copy of ``func`` named ``<name>_<suffix>``.

    Numba's disk cache keys a compiled function by its qualified name, first line and bytecode,
    not by its options: the parallel and the serial compilation of one Python function would
    share cache entries, and a parallel kernel could load the serial machine code. Each
    variant is therefore compiled from its own copy.
    """
    twin = types.FunctionType(func.__code__, func.__globals__, f"{func.__name__}_{suffix}",
                              func.__defaults__, func.__closure__)
    twin.__qualname__ = f"{func.__qualname__}_{suffix}"
    twin.__doc__ = func.__doc__
    return twin


apply_update_keyed = jit_parallel(_named(_apply_update_keyed, "parallel"))
signed_split_update_keyed = jit_parallel(_named(_signed_split_update_keyed, "parallel"))
# the same kernels on the calling thread only (``prange`` runs as ``range``): for small tiles,
# where starting the threads costs more than the work, and identical to them bit for bit
apply_update_keyed_serial = jit(_named(_apply_update_keyed, "serial"))
signed_split_update_keyed_serial = jit(_named(_signed_split_update_keyed, "serial"))

#: Devices of one update below which the callers use the ``*_serial`` kernels (about 200 us
#: of work: a parallel region costs tens of microseconds to start, and far more when another
#: process holds one of the cores).
PARALLEL_MIN_DEVICES = 1 << 15


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
