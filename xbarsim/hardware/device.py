r"""Resistive devices: conductance range, precision, non-linear noisy updates, variations.

A :class:`Device` describes one device type *and* the per-device random parameters of one array
of such devices (device-to-device variation, drawn once at construction; process variation,
drawn once per chip from a named seed). Its maths is pure: every method returns new arrays and
takes its cycle-to-cycle randomness as arrays of standard normals (:meth:`Device.draw_noise`).

Update pipeline of :meth:`Device.apply_update` (docs/physics.md, 'Device updates'), per device::

    dg_request --(x step gain, d2d)--> [pulse rounding] --> update model --> + noise --> clip

* update models (:data:`UPDATE_MODELS`): corrected TxSim eq. (1) (default), TxSim eq. (1) as
  printed (ablation only: not path independent, overshoots), linear, NeuroSim (NL label), soft
  bounds. Formulas in :mod:`xbarsim.kernels.update`.
* write noise, zero when the applied change is zero:

  - ``"sqrt"`` (default, [P]): ``sigma_w = (gamma/100) * sqrt((G_max - G_min) * |dg|)``. The
    model is stated in conductances normalised by ``G_max``; since both factors under the root
    scale with ``G_max`` the same formula holds in siemens, so it is applied in S directly.
  - ``"txsim_literal"``: ``sigma_w = gamma * sqrt(G_max - G_min) * |dg|`` in ``G_max``-normalised
    units, i.e. ``gamma * sqrt(1 - G_min/G_max) * |dg|`` in S.
* cycle-to-cycle variation ``sigma_c2c``: the applied change is ``dg_nl * (1 + sigma_c2c * xi)``
  (relative, per update, not per pulse). It is independent of the write noise, so both are
  folded into one normal per device: ``sigma**2 = sigma_w**2 + (sigma_c2c * dg_nl)**2``.

The standard normals ``xi`` come either from the caller (:meth:`Device.apply_update`, drawn with
:meth:`Device.draw_noise`) or from a counter-based generator keyed explicitly
(:meth:`Device.apply_update_keyed`, :meth:`Device.keyed_noise`; Philox4x32-10, see
:mod:`xbarsim.kernels.philox`): the normal of device ``k`` of array ``a`` in update step ``s`` is a
pure function of ``(key, s, a, k)``, so it does not depend on the order or the threads in which
devices are updated, and devices whose request is zero are skipped without changing any
other device's noise. The crossbar tiles use the keyed form.

Units: conductances in S, everything else dimensionless.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq

from xbarsim import rng as rng_streams
from xbarsim.checks import as_float_array, nonneg_scalar, positive_int
from xbarsim.kernels import philox
from xbarsim.kernels import update as kernels

FloatArray = NDArray[np.float64]

__all__ = [
    "DEVICES",
    "KEY_BITS",
    "PV_DISTRIBUTIONS",
    "UPDATE_MODELS",
    "WRITE_NOISE_MODELS",
    "Device",
    "UpdateModel",
    "neurosim_nl_from_v",
    "neurosim_v_from_nl",
    "philox_key_words",
]


@dataclass(frozen=True)
class UpdateModel:
    """One entry of :data:`UPDATE_MODELS`.

    Attributes
    ----------
    code : int
        Kernel code (``xbarsim.kernels.update.MODEL_*``).
    nl_meaning : str
        The device argument holding this model's non-linearity: ``"nl"`` (TxSim ``v``),
        ``"nl_label"`` (NeuroSim NL) or ``""`` (none).
    description : str
        One line with the source.
    """

    code: int
    nl_meaning: str
    description: str


UPDATE_MODELS: dict[str, UpdateModel] = {
    "txsim": UpdateModel(kernels.MODEL_TXSIM, "nl",
                         "corrected TxSim eq. (1) (default)"),
    "txsim_printed": UpdateModel(kernels.MODEL_TXSIM_PRINTED, "nl",
                                 "TxSim eq. (1) as printed (ablation only)"),
    "linear": UpdateModel(kernels.MODEL_LINEAR, "", "ideal linear device"),
    "neurosim": UpdateModel(kernels.MODEL_TXSIM, "nl_label",
                            "NeuroSim exponential LTP/LTD (v from NL by root finding)"),
    "soft_bounds": UpdateModel(kernels.MODEL_SOFT_BOUNDS, "",
                               "soft bounds (aihwkit SoftBoundsDevice), continuous-pulse limit"),
}
"""Update models by name; ``Device(update_model=...)`` accepts exactly these keys."""

WRITE_NOISE_MODELS: tuple[str, ...] = ("sqrt", "txsim_literal")
"""Write-noise models (docs/physics.md, 'Device updates')."""

PV_DISTRIBUTIONS: tuple[str, ...] = ("normal", "lognormal")
"""Distributions of the process (chip-to-chip) variation factor."""

# NeuroSim: max_x (g(x) - x) = 0.07 * sqrt(2) * NL  (perpendicular distance 0.07 * NL)
_NEUROSIM_DIAG = 0.07 * math.sqrt(2.0)
_V_SMALL = 1e-6  # below this, D(v) = v/8 + O(v^3) (series) is used instead of root finding
_V_LARGE = 700.0
_MAX_BITS = 52  # device precision: 2**bits - 1 level steps exact in float64


KEY_BITS = 64
"""Width of the key of the keyed update noise (Philox4x32's two 32-bit key words)."""

_MAX_ARRAY_INDEX = 1 << 32   # counter word 1
_MAX_DEVICES = 1 << 33       # counter word 0 holds the device pair index
_MAX_STEP = 1 << 64          # counter words 2 and 3


def philox_key_words(key: int) -> tuple[int, int]:
    """Split a 64-bit noise key into Philox's two 32-bit key words ``(low, high)``.

    Raises
    ------
    ValueError
        ``key`` is not an integer in ``[0, 2**64)``.
    """
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)) \
            or not 0 <= int(key) < 1 << KEY_BITS:
        raise ValueError(f"key: expected an integer in [0, 2**64), got {key!r}")
    key = int(key)
    return key & 0xFFFFFFFF, key >> 32


def _counter_args(step: int, array_index: int, size: int) -> tuple[int, int]:
    """Check the counter parts of a keyed draw; returns ``(step, array_index)`` as ints."""
    for name, value, limit in (("step", step, _MAX_STEP),
                               ("array_index", array_index, _MAX_ARRAY_INDEX)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                or not 0 <= int(value) < limit:
            raise ValueError(f"{name}: expected an integer in [0, {limit}), got {value!r}")
    if size >= _MAX_DEVICES:
        raise ValueError(f"g: at most 2**33 - 1 devices per array have distinct noise, "
                         f"got {size}")
    return int(step), int(array_index)


def _neurosim_max_deviation(v: float) -> float:
    """``max_{x in [0,1]} (g(x) - x)`` of ``g(x) = (1 - e^{-v x}) / (1 - e^{-v})``, v > 0.

    The maximum is where ``g'(x) = 1``: ``x* = ln(v / (1 - e^{-v})) / v``.
    """
    one_m_ev = -math.expm1(-v)
    x_star = math.log(v / one_m_ev) / v
    return -math.expm1(-v * x_star) / one_m_ev - x_star


def neurosim_nl_from_v(v: float) -> float:
    """NeuroSim non-linearity label NL of the exponential device with TxSim non-linearity ``v``.

    Parameters
    ----------
    v : float
        TxSim / CrossSim non-linearity (``v = P_max / A`` in NeuroSim's notation), >= 0.

    Returns
    -------
    float
        ``NL`` such that the normalised update curve's largest perpendicular distance from the
        diagonal is ``0.07 * NL`` (docs/physics.md, 'Device updates').
    """
    v = nonneg_scalar("v", v)
    if v == 0.0:
        return 0.0
    if v < _V_SMALL:
        return v / 8.0 / _NEUROSIM_DIAG
    return _neurosim_max_deviation(v) / _NEUROSIM_DIAG


def neurosim_v_from_nl(nl: float) -> float:
    """TxSim non-linearity ``v = P_max / A`` for a NeuroSim non-linearity label ``nl``.

    Solves ``max_x (g(x) - x) = 0.07 * sqrt(2) * nl`` for ``v`` with :func:`scipy.optimize.brentq`
    (docs/physics.md, 'Device updates'), instead of NeuroSim's table.
    ``A_norm = A / P_max = 1 / v``. NeuroSim's negative NL for depression describes the same
    curve shape and is given here as ``|NL|``.

    Parameters
    ----------
    nl : float
        Non-linearity label, ``0 <= nl < 1 / (0.07 * sqrt(2)) ~ 10.1``.

    Returns
    -------
    float
        ``v >= 0`` (0 for ``nl == 0``: the linear device).

    Raises
    ------
    ValueError
        ``nl`` outside the range above.
    """
    nl = nonneg_scalar("nl", nl)
    target = _NEUROSIM_DIAG * nl
    nl_max = neurosim_nl_from_v(_V_LARGE)
    if nl >= nl_max:
        raise ValueError(f"nl: NeuroSim non-linearity label must be in [0, {nl_max:.4f}) "
                         f"(curve deviation 0.07*NL below the square's corner), got {nl}")
    if nl == 0.0:
        return 0.0
    if target < _neurosim_max_deviation(_V_SMALL):
        return 8.0 * target
    return float(brentq(lambda v: _neurosim_max_deviation(v) - target, _V_SMALL, _V_LARGE,
                        xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=200))


def _check_choice(name: str, value: Any, allowed: tuple[str, ...] | list[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(repr(a) for a in allowed)}, "
                         f"got {value!r}")
    return str(value)


class Device:
    """A resistive device type and the per-device parameters of one array of it.

    All arguments are keyword-only. Conductances are in S; variations are relative
    (dimensionless) unless stated.

    Parameters
    ----------
    g_min, g_max : float
        Conductance range [S], ``0 < g_min < g_max`` (``g_min = 1/r_max``, ``g_max = 1/r_min``;
        see :meth:`from_resistance`).
    levels, bits : int, optional
        Device precision used by :meth:`program`: programmed conductances are rounded to
        ``levels`` (>= 2) or ``2**bits`` (``bits >= 1``) evenly spaced levels in
        ``[g_min, g_max]``. At most one of the two; neither = analog.
    update_model : str
        Key of :data:`UPDATE_MODELS` (default ``"txsim"``, the corrected TxSim eq. (1)).
    nl : float
        TxSim non-linearity ``v`` >= 0 of ``"txsim"`` / ``"txsim_printed"`` (first-to-last step
        ratio ``e**v`` over the full range); ignored by the other models (so that one
        configuration can switch models).
    nl_label : float, optional
        NeuroSim non-linearity label NL, ``0 < NL < 10.1``; required by ``"neurosim"`` (converted
        to ``v`` by :func:`neurosim_v_from_nl`) and rejected by the other models.
    gamma : float
        Write-noise factor, >= 0 (TxSim's gamma; 5 in the TxSim preset).
    write_noise : {"sqrt", "txsim_literal"}
        Write-noise model (module docstring).
    sigma_c2c : float
        Cycle-to-cycle variation of each applied change, relative to it, >= 0.
    sigma_d2d : float
        Device-to-device variation of the update step gain, relative, >= 0: each device scales
        its requests by ``max(0, 1 + sigma_d2d * xi)``, drawn once from ``rng``.
    sigma_nl_d2d : float
        Device-to-device variation of the non-linearity ``v``, relative, >= 0:
        ``v_ij = v * max(0, 1 + sigma_nl_d2d * xi)``, drawn once from ``rng``.
    sigma_program : float
        Programming error of :meth:`program`, standard deviation relative to
        ``g_max - g_min``, >= 0 (uses the ``noise`` argument).
    sigma_pv : float
        Process (chip-to-chip) variation of programmed conductances, relative, >= 0
        (docs/physics.md, 'From weights to conductances'): ``g * (1 + sigma_pv * xi)`` (normal) or
        ``g * exp(sigma_pv * xi - sigma_pv**2 / 2)`` (log-normal), clipped to
        ``[g_min * (1 - 3 sigma_pv), g_max * (1 + 3 sigma_pv)]``. ``xi`` is drawn once from the
        named stream ``xbarsim.rng.stream(pv_seed, pv_stream)``.
    pv_distribution : {"normal", "lognormal"}
        Distribution of the process-variation factor.
    pv_seed : int, optional
        Chip seed; required when ``sigma_pv > 0``.
    pv_stream : str
        Name of the process-variation stream (use one name per physical array of the chip).
    dg_min : float, optional
        Conductance change of one pulse [S], > 0: requests are rounded to whole pulses.
    n_pulses_max : int, optional
        Alternative to ``dg_min``: pulses to cross the full range, ``dg_min = (g_max - g_min) /
        n_pulses_max``. At most one of the two; neither = no pulse quantisation.
    shape : tuple of int, optional
        Shape of the array of devices (e.g. ``(n_rows, n_cols)``); required when any per-device
        variation (``sigma_d2d``, ``sigma_nl_d2d``, ``sigma_pv``) is on. ``None``: the device
        applies to arrays of any shape.
    rng : numpy.random.Generator, optional
        Source of the device-to-device draws; required when ``sigma_d2d`` or ``sigma_nl_d2d``
        is > 0.

    Raises
    ------
    ValueError
        Any argument out of range; the message names it and the allowed range.
    """

    __slots__ = ("g_min", "g_max", "n_levels", "update_model", "nl", "nl_label", "v", "gamma", "write_noise",
                 "sigma_c2c", "sigma_d2d", "sigma_nl_d2d", "sigma_program", "sigma_pv",
                 "pv_distribution", "dg_min", "shape", "step_gain", "v_device", "pv_factor",
                 "_params", "_code", "_frozen", "_sat_cache")

    def __init__(self, *, g_min: float, g_max: float, levels: int | None = None,
                 bits: int | None = None, update_model: str = "txsim", nl: float = 0.0,
                 nl_label: float | None = None, gamma: float = 0.0, write_noise: str = "sqrt", sigma_c2c: float = 0.0,
                 sigma_d2d: float = 0.0, sigma_nl_d2d: float = 0.0, sigma_program: float = 0.0,
                 sigma_pv: float = 0.0, pv_distribution: str = "normal",
                 pv_seed: int | None = None, pv_stream: str = "process_variation",
                 dg_min: float | None = None, n_pulses_max: int | None = None,
                 shape: tuple[int, ...] | None = None,
                 rng: np.random.Generator | None = None) -> None:
        g_min_f = float(as_float_array("g_min", g_min, ndim=0, positive=True))
        g_max_f = float(as_float_array("g_max", g_max, ndim=0, positive=True))
        if not g_min_f < g_max_f:
            raise ValueError(f"g_min: must be < g_max, got g_min={g_min_f:g} S >= "
                             f"g_max={g_max_f:g} S")
        g_range = g_max_f - g_min_f

        if levels is not None and bits is not None:
            raise ValueError(f"levels, bits: give at most one device precision, got "
                             f"levels={levels!r} and bits={bits!r}")
        n_levels: int | None = None
        if levels is not None:
            n_levels = positive_int("levels", levels, minimum=2)
            if n_levels > 2**_MAX_BITS:
                raise ValueError(f"levels: expected at most 2**{_MAX_BITS}, got {n_levels}: the "
                                 f"level steps are rounded in float64, exact only up to its "
                                 f"52-bit mantissa; use levels=None for an analog device")
        if bits is not None:
            b = positive_int("bits", bits, minimum=1)
            if b > _MAX_BITS:  # refuse before 2**bits is computed (2**(2**70) never ends)
                raise ValueError(f"bits: expected at most {_MAX_BITS}, got {b}: the 2**bits "
                                 f"levels are rounded in float64, exact only up to its 52-bit "
                                 f"mantissa; use bits=None for an analog device")
            n_levels = 2**b

        entry = UPDATE_MODELS.get(update_model)
        if entry is None:
            _check_choice("update_model", update_model, list(UPDATE_MODELS))
        assert entry is not None
        nl_f = nonneg_scalar("nl", nl)
        label: float | None = None
        if entry.nl_meaning == "nl_label":
            if nl_label is None:
                raise ValueError("nl_label: required by update_model='neurosim' (NeuroSim "
                                 "non-linearity label NL, e.g. 1.0)")
            label = float(as_float_array("nl_label", nl_label, ndim=0, positive=True))
            v = neurosim_v_from_nl(label)
        elif nl_label is not None:
            raise ValueError(f"nl_label: only used by update_model='neurosim', got "
                             f"update_model={update_model!r}")
        else:
            v = nl_f if entry.nl_meaning == "nl" else 0.0

        write_noise = _check_choice("write_noise", write_noise, WRITE_NOISE_MODELS)
        gamma_f = nonneg_scalar("gamma", gamma)
        c2c = nonneg_scalar("sigma_c2c", sigma_c2c)
        d2d = nonneg_scalar("sigma_d2d", sigma_d2d)
        nl_d2d = nonneg_scalar("sigma_nl_d2d", sigma_nl_d2d)
        prog = nonneg_scalar("sigma_program", sigma_program)
        pv = nonneg_scalar("sigma_pv", sigma_pv)
        pv_distribution = _check_choice("pv_distribution", pv_distribution, PV_DISTRIBUTIONS)
        if pv >= 1.0 / 3.0 and pv_distribution == "normal":
            raise ValueError(f"sigma_pv: must be < 1/3 for the normal model (the clip range "
                             f"g_min*(1 - 3 sigma_pv) must stay positive), got {pv:g}")

        if dg_min is not None and n_pulses_max is not None:
            raise ValueError(f"dg_min, n_pulses_max: give at most one pulse size, got "
                             f"dg_min={dg_min!r} and n_pulses_max={n_pulses_max!r}")
        dg_pulse = 0.0
        if dg_min is not None:
            dg_pulse = float(as_float_array("dg_min", dg_min, ndim=0, positive=True))
        if n_pulses_max is not None:
            dg_pulse = g_range / positive_int("n_pulses_max", n_pulses_max)

        needs_shape = d2d > 0 or nl_d2d > 0 or pv > 0
        if shape is not None:
            try:
                shape = tuple(positive_int("shape", s) for s in shape)
            except TypeError:
                raise ValueError(f"shape: expected a tuple of positive ints, got {shape!r}") \
                    from None
        elif needs_shape:
            raise ValueError("shape: required when sigma_d2d, sigma_nl_d2d or sigma_pv is > 0 "
                             "(per-device parameters are drawn at construction)")
        if (d2d > 0 or nl_d2d > 0) and not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng: a numpy.random.Generator is required when sigma_d2d or "
                             f"sigma_nl_d2d is > 0, got {type(rng).__name__}")
        if pv > 0 and (isinstance(pv_seed, bool) or not isinstance(pv_seed, (int, np.integer))):
            raise ValueError(f"pv_seed: an integer chip seed is required when sigma_pv > 0, "
                             f"got {pv_seed!r}")

        # per-device parameters, drawn once (the order of the draws is part of reproducibility)
        step_gain: FloatArray | None = None
        v_device: FloatArray | None = None
        if d2d > 0:
            assert rng is not None and shape is not None
            step_gain = np.maximum(0.0, 1.0 + d2d * rng.standard_normal(shape))
        if nl_d2d > 0:
            assert rng is not None and shape is not None
            v_device = v * np.maximum(0.0, 1.0 + nl_d2d * rng.standard_normal(shape))
        pv_factor: FloatArray | None = None
        if pv > 0:
            assert shape is not None and pv_seed is not None
            xi = rng_streams.stream(int(pv_seed), str(pv_stream)).standard_normal(shape)
            if pv_distribution == "normal":
                pv_factor = 1.0 + pv * xi
            else:
                pv_factor = np.exp(pv * xi - 0.5 * pv * pv)

        if write_noise == "sqrt":
            c_sqrt, c_lin = gamma_f / 100.0 * math.sqrt(g_range), 0.0
        else:
            c_sqrt, c_lin = 0.0, gamma_f * math.sqrt(g_range / g_max_f)
        params = np.zeros(kernels.N_PARAMS)
        params[kernels.P_G_MIN] = g_min_f
        params[kernels.P_G_MAX] = g_max_f
        params[kernels.P_DG_PULSE] = dg_pulse
        params[kernels.P_NOISE_SQRT] = c_sqrt
        params[kernels.P_NOISE_LINEAR] = c_lin
        params[kernels.P_SIGMA_C2C] = c2c

        for name, value in (("g_min", g_min_f), ("g_max", g_max_f), ("n_levels", n_levels),
                            ("update_model", update_model), ("nl", nl_f),
                            ("nl_label", label), ("v", v),
                            ("gamma", gamma_f), ("write_noise", write_noise),
                            ("sigma_c2c", c2c), ("sigma_d2d", d2d), ("sigma_nl_d2d", nl_d2d),
                            ("sigma_program", prog), ("sigma_pv", pv),
                            ("pv_distribution", pv_distribution),
                            ("dg_min", dg_pulse if dg_pulse > 0 else None), ("shape", shape),
                            ("step_gain", step_gain), ("v_device", v_device),
                            ("pv_factor", pv_factor), ("_params", params),
                            ("_code", entry.code), ("_frozen", True), ("_sat_cache", {})):
            object.__setattr__(self, name, value)
        for arr in (step_gain, v_device, pv_factor, params):
            if arr is not None:
                arr.flags.writeable = False

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Device is immutable; cannot set {name!r}")

    @classmethod
    def from_resistance(cls, *, r_min: float, r_max: float, **kwargs: Any) -> Device:
        """Build a device from its resistance range: ``g_min = 1/r_max``, ``g_max = 1/r_min``.

        Parameters
        ----------
        r_min, r_max : float
            Low- and high-resistance states [Ohm], ``0 < r_min < r_max``.
        **kwargs
            Other :class:`Device` arguments.
        """
        r_lo = float(as_float_array("r_min", r_min, ndim=0, positive=True))
        r_hi = float(as_float_array("r_max", r_max, ndim=0, positive=True))
        if not r_lo < r_hi:
            raise ValueError(f"r_min: must be < r_max, got r_min={r_lo:g} Ohm >= "
                             f"r_max={r_hi:g} Ohm")
        return cls(g_min=1.0 / r_hi, g_max=1.0 / r_lo, **kwargs)

    # ------------------------------------------------------------------ properties
    @property
    def g_range(self) -> float:
        """``g_max - g_min`` [S]."""
        return self.g_max - self.g_min

    @property
    def level_step(self) -> float | None:
        """Spacing of the programmable levels [S], or ``None`` for an analog device."""
        return None if self.n_levels is None else self.g_range / (self.n_levels - 1)

    @property
    def params(self) -> FloatArray:
        """Read-only kernel parameter vector (``xbarsim.kernels.update.P_*``)."""
        return self._params

    @property
    def model_code(self) -> int:
        """Kernel code of the update model."""
        return self._code

    def __repr__(self) -> str:
        return (f"Device(g_min={self.g_min:g}, g_max={self.g_max:g}, "
                f"update_model={self.update_model!r}, v={self.v:g}, gamma={self.gamma:g}, "
                f"write_noise={self.write_noise!r}, n_levels={self.n_levels}, "
                f"shape={self.shape})")

    # ------------------------------------------------------------------ helpers
    def _as_state(self, name: str, x: ArrayLike) -> FloatArray:
        arr = as_float_array(name, x)
        if self.shape is not None and arr.shape != self.shape:
            raise ValueError(f"{name}: expected shape {self.shape} (the device array), "
                             f"got {arr.shape}")
        return arr

    def _v_and_saturation(self, shape: tuple[int, ...]) -> tuple[FloatArray, FloatArray]:
        """Flat per-device ``v`` and its saturation ``1 - exp(-v)`` (kept: v never changes)."""
        key = None if self.v_device is not None else tuple(shape)
        hit = self._sat_cache.get(key)
        if hit is None:
            if self.v_device is not None:
                v = np.ascontiguousarray(self.v_device, dtype=np.float64).reshape(-1)
            else:
                v = np.full(math.prod(shape), self.v)
            hit = (v, kernels.saturation(v))
            for arr in hit:
                arr.flags.writeable = False
            self._sat_cache[key] = hit
        return hit

    def _request(self, g: FloatArray, dg_request: ArrayLike) -> FloatArray:
        dg = as_float_array("dg_request", dg_request)
        if dg.shape != g.shape:
            raise ValueError(f"dg_request: expected shape {g.shape} (same as g), got {dg.shape}")
        if self.step_gain is not None:
            dg = dg * self.step_gain
        return dg

    def _noise(self, noise: ArrayLike | None, shape: tuple[int, ...], needed: bool,
               why: str) -> FloatArray:
        if noise is None:
            if needed:
                raise ValueError(f"noise: standard normals of shape {shape} are required when "
                                 f"{why} (draw them with Device.draw_noise)")
            return np.zeros(shape)
        arr = as_float_array("noise", noise)
        if arr.shape != shape:
            raise ValueError(f"noise: expected shape {shape}, got {arr.shape}")
        return arr

    # ------------------------------------------------------------------ physics
    @staticmethod
    def draw_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> FloatArray:
        """Standard normals for one call of :meth:`apply_update` / :meth:`program`.

        Parameters
        ----------
        rng : numpy.random.Generator
            The caller's (per-tile) stream.
        shape : tuple of int
            Shape of the conductance array.
        """
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
        return rng.standard_normal(shape)

    @staticmethod
    def keyed_noise(shape: tuple[int, ...], *, key: int, step: int,
                    array_index: int = 0) -> FloatArray:
        """Return the standard normals :meth:`apply_update_keyed` uses (one per device).

        Parameters
        ----------
        shape : tuple of int
            Shape of the conductance array.
        key : int
            64-bit noise key (a tile draws its own once, from its stream).
        step : int
            Update step, ``0 <= step < 2**64``.
        array_index : int
            Index of the array under this key, ``0 <= array_index < 2**32``.

        Returns
        -------
        ndarray of shape ``shape``
            Entry ``k`` (flat C order) is Philox4x32-10 output ``k % 2`` of the counter
            ``(k // 2, array_index, step mod 2**32, step // 2**32)`` under ``key``, turned into a
            normal by inversion (:mod:`xbarsim.kernels.philox`).
        """
        k0, k1 = philox_key_words(key)
        size = math.prod(shape)
        s, a = _counter_args(step, array_index, size)
        return philox.keyed_normals(k0, k1, s, a, size).reshape(shape)

    def update_arrays(self, shape: tuple[int, ...]) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Per-device inputs of the keyed update kernels, flat and read-only.

        Returns
        -------
        v, one_m_ev : ndarray of shape (n,) or (1,)
            Non-linearity and ``1 - exp(-v)`` per device, or one value when all devices share it.
        step_gain : ndarray of shape (n,) or (0,)
            Device-to-device gain of the requests, or empty without it.
        """
        if self.v_device is not None:
            v, sat = self._v_and_saturation(shape)
        else:
            v, sat = self._v_and_saturation((1,))
        gain = (np.ascontiguousarray(self.step_gain).reshape(-1) if self.step_gain is not None
                else np.empty(0))
        return v, sat, gain

    def nonlinear_response(self, g: ArrayLike, dg_request: ArrayLike) -> FloatArray:
        """Deterministic conductance change of each device (no pulses, noise or clipping).

        Parameters
        ----------
        g : array_like
            Present conductances [S].
        dg_request : array_like, same shape
            Requested signed changes [S].

        Returns
        -------
        ndarray, same shape
            ``dg_nl`` [S] of the update model (after the device-to-device step gain).
        """
        g_arr = self._as_state("g", g)
        dg = self._request(g_arr, dg_request)
        v, sat = self._v_and_saturation(g_arr.shape)
        out = kernels.nonlinear_response(self._code, g_arr.reshape(-1), dg.reshape(-1), v, sat,
                                         self.g_min, self.g_max)
        return out.reshape(g_arr.shape)

    def write_noise_std(self, dg_applied: ArrayLike, dg_nl: ArrayLike | None = None) -> FloatArray:
        """Standard deviation [S] of the stochastic part of an update.

        Parameters
        ----------
        dg_applied : array_like
            Ideal (linear) change actually requested from the device [S] (after the
            device-to-device gain and pulse rounding).
        dg_nl : array_like, optional
            Deterministic non-linear change [S]; needed only for ``sigma_c2c``.

        Returns
        -------
        ndarray
            ``sqrt(sigma_w**2 + (sigma_c2c * dg_nl)**2)``, 0 where ``dg_applied == 0``.
        """
        dg = as_float_array("dg_applied", dg_applied)
        p = self._params
        var = (p[kernels.P_NOISE_SQRT] ** 2 * np.abs(dg)
               + (p[kernels.P_NOISE_LINEAR] * dg) ** 2)
        if self.sigma_c2c > 0:
            if dg_nl is None:
                raise ValueError("dg_nl: required when sigma_c2c > 0")
            var = var + (self.sigma_c2c * as_float_array("dg_nl", dg_nl)) ** 2
        return np.where(dg == 0.0, 0.0, np.sqrt(var))

    def apply_update(self, g: ArrayLike, dg_request: ArrayLike,
                     noise: ArrayLike | None = None) -> FloatArray:
        """New conductances after one requested update (pure: ``g`` is not modified).

        Parameters
        ----------
        g : array_like
            Present conductances [S] (shape ``self.shape`` when the device has one).
        dg_request : array_like, same shape
            Requested signed changes [S] (learning rate already applied; sign = physical
            direction).
        noise : array_like, same shape, optional
            Standard normals (:meth:`draw_noise`); required when ``gamma`` or ``sigma_c2c`` is
            > 0, ignored otherwise.

        Returns
        -------
        ndarray, same shape
            ``clip(g + dg_nl + sigma * noise, g_min, g_max)`` [S]; devices whose (pulse-rounded)
            request is zero are returned unchanged.
        """
        g_arr = self._as_state("g", g)
        dg = self._request(g_arr, dg_request)
        xi = self._noise(noise, g_arr.shape, self.noisy, "gamma or sigma_c2c is > 0")
        return self._apply(g_arr, dg, xi)

    @property
    def noisy(self) -> bool:
        """True when updates have a random part (``gamma`` or ``sigma_c2c`` > 0)."""
        return self.gamma > 0 or self.sigma_c2c > 0

    def apply_update_trusted(self, g: FloatArray, dg_request: FloatArray,
                             noise: FloatArray | None) -> FloatArray:
        """:meth:`apply_update` without argument checks, for the tile's hot path.

        ``g`` and ``dg_request`` must be finite C-contiguous float64 arrays of the device's
        shape, and ``noise`` standard normals of that shape whenever :attr:`noisy`.
        """
        dg = dg_request * self.step_gain if self.step_gain is not None else dg_request
        return self._apply(g, dg, noise)

    def _apply(self, g: FloatArray, dg: FloatArray, xi: FloatArray | None) -> FloatArray:
        """Kernel call shared by the checked and trusted update paths (``dg`` after the gain)."""
        if xi is None or not self.noisy:
            xi = np.zeros(g.shape)
        out = kernels.apply_update(self._code, g.reshape(-1), dg.reshape(-1),
                                   *self._v_and_saturation(g.shape), xi.reshape(-1), self._params)
        return out.reshape(g.shape)

    def apply_update_keyed(self, g: ArrayLike, dg_request: ArrayLike, *, key: int, step: int,
                           array_index: int = 0) -> FloatArray:
        """:meth:`apply_update` with the noise drawn inside the kernel from keyed Philox.

        Equal bit for bit to ``apply_update(g, dg_request, keyed_noise(g.shape, key=key,
        step=step, array_index=array_index))``, but devices whose request is zero draw
        nothing, and the kernel runs on Numba's threads (same result for any number).

        Parameters
        ----------
        g : array_like
            Present conductances [S].
        dg_request : array_like, same shape
            Requested signed changes [S].
        key : int
            64-bit noise key.
        step : int
            Update step (use a new one for every update of the same array).
        array_index : int
            Index of this array among those sharing ``key``.

        Returns
        -------
        ndarray, same shape
            New conductances [S].
        """
        g_arr = np.ascontiguousarray(self._as_state("g", g))
        dg = np.ascontiguousarray(as_float_array("dg_request", dg_request))
        if dg.shape != g_arr.shape:
            raise ValueError(f"dg_request: expected shape {g_arr.shape} (same as g), "
                             f"got {dg.shape}")
        k0, k1 = philox_key_words(key)
        s, a = _counter_args(step, array_index, g_arr.size)
        v, sat, gain = self.update_arrays(g_arr.shape)
        arrays = np.array([[0, g_arr.size, a]], dtype=np.int64)
        kernel = (kernels.apply_update_keyed if g_arr.size >= kernels.PARALLEL_MIN_DEVICES
                  else kernels.apply_update_keyed_serial)
        out = kernel(self._code, g_arr.reshape(-1), dg.reshape(-1), v, sat, gain, self._params,
                     k0, k1, s, arrays, kernels.update_tasks(arrays, kernels.TASK_DEVICES),
                     self.noisy)
        return out.reshape(g_arr.shape)

    def step(self, g: ArrayLike, n_pulses: ArrayLike, noise: ArrayLike | None = None) -> FloatArray:
        """New conductances after signed integer pulse counts (needs ``dg_min``/``n_pulses_max``).

        Equivalent to ``apply_update(g, n_pulses * dg_min, noise)``.

        Parameters
        ----------
        g : array_like
            Present conductances [S].
        n_pulses : array_like of int, same shape
            Signed pulse counts (positive = potentiation).
        noise : array_like, optional
            As in :meth:`apply_update`.
        """
        if self.dg_min is None:
            raise ValueError("dg_min: step() needs a pulse size; construct the device with "
                             "dg_min or n_pulses_max")
        pulses = as_float_array("n_pulses", n_pulses)
        if np.any(pulses != np.round(pulses)):
            raise ValueError("n_pulses: expected integer pulse counts")
        return self.apply_update(g, pulses * self.dg_min, noise)

    def quantize(self, g: ArrayLike) -> FloatArray:
        """Conductances clipped to the range and rounded to the device levels [S].

        Analog devices (no ``levels``/``bits``) are only clipped.
        """
        g_arr = as_float_array("g", g)
        if self.n_levels is None:
            return np.clip(g_arr, self.g_min, self.g_max)
        out = kernels.quantize_levels(g_arr.reshape(-1), self.g_min, self.g_max, self.n_levels)
        return out.reshape(g_arr.shape)

    def apply_process_variation(self, g: ArrayLike) -> FloatArray:
        """Multiply by this chip's fixed process-variation factors and clip.

        Returns ``g`` unchanged (as a new array) when ``sigma_pv == 0``.
        """
        g_arr = self._as_state("g", g)
        if self.pv_factor is None:
            return g_arr.copy()
        lo = self.g_min * (1.0 - 3.0 * self.sigma_pv)
        hi = self.g_max * (1.0 + 3.0 * self.sigma_pv)
        return np.clip(g_arr * self.pv_factor, lo, hi)

    def program(self, g_target: ArrayLike, noise: ArrayLike | None = None) -> FloatArray:
        """Conductances obtained by programming ``g_target`` (pure).

        Steps: clip to ``[g_min, g_max]``, round to the device levels, add the programming error
        ``sigma_program * (g_max - g_min) * noise`` and clip again, then apply the chip's
        process variation.

        Parameters
        ----------
        g_target : array_like
            Target conductances [S].
        noise : array_like, same shape, optional
            Standard normals; required when ``sigma_program > 0``.

        Returns
        -------
        ndarray, same shape
            Programmed conductances [S].
        """
        g_arr = self._as_state("g_target", g_target)
        g_prog = self.quantize(g_arr)
        if self.sigma_program > 0:
            xi = self._noise(noise, g_arr.shape, True, "sigma_program > 0")
            g_prog = np.clip(g_prog + self.sigma_program * self.g_range * xi,
                             self.g_min, self.g_max)
        return self.apply_process_variation(g_prog)


DEVICES: dict[str, type[Device]] = {"device": Device}
"""Device classes by name (one general class; presets configure it)."""
