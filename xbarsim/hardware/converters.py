r"""Digital-to-analog and analog-to-digital converters around a crossbar.

The models are described in docs/physics.md, 'Converters'.

DAC (per row)::

    x (digital, normalised) --clip--> q(x) = round(x * n_dac) / n_dac --> V = v_max * f_dac(q)

ADC (per column and conversion)::

    I [A] + sense_noise * xi --clip to [0, i_max] (bipolar: [-i_max, i_max])--> u = I / i_max
        --> code = round(n_adc * f_adc(u)) --> I_hat = i_max * code / n_adc   (ideal inverse)

with ``n = 2**bits - 1`` and transfer curves ``f`` from :mod:`xbarsim.kernels.quantize`
(``"none"``, ``"bow"``, ``"tanh"`` or ``"lut"``, a lookup table from CSV / YAML). ``bits=None`` is the ideal
converter (identity; a DAC still scales by ``v_max``).

Bit streaming (:func:`stream_inputs`): a ``b``-bit input is cut into ``d``-bit DAC planes, LSB
first, each with an integer shift weight; ``sum_s shift_s * code_s`` equals the quantised input
exactly (integer arithmetic), and because the crossbar is linear, recombining the plane outputs
with :meth:`BitStream.recombine` reproduces ``x_q @ g_eff`` without an ADC.
Signed inputs (backward errors) use two passes (positive and negative parts, negative shift
weights for the second) or two's complement (the sign bit is its own plane with weight
``-2**(b-1)``, PUMA's scheme).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xbarsim.checks import as_float_array, nonneg_scalar, positive_int
from xbarsim.hardware.parallel import over_batch
from xbarsim.kernels import quantize as kernels

FloatArray = NDArray[np.float64]
TableSpec = Union[str, Path, tuple[ArrayLike, ArrayLike], None]

__all__ = [
    "CONVERTERS",
    "NONLINEARITIES",
    "SIGNED_MODES",
    "ADC",
    "DAC",
    "BitStream",
    "Converter",
    "load_transfer_table",
    "stream_inputs",
]

NONLINEARITIES: dict[str, int] = {"none": kernels.KIND_NONE, "bow": kernels.KIND_BOW,
                                  "tanh": kernels.KIND_TANH, "lut": kernels.KIND_TABLE}
"""Transfer-curve kinds accepted by ``DAC`` and ``ADC`` (``nonlinearity=``)."""

SIGNED_MODES: tuple[str, ...] = ("two_pass", "twos_complement")
"""How a DAC handles signed inputs."""

CALIBRATIONS: tuple[str, ...] = ("max", "percentile")
"""ADC range-calibration statistics."""

_MAX_INPUT_BITS = 52  # integer codes stay exact in float64
_MAX_BITS = 52  # the 2**bits - 1 steps of a converter are rounded exactly in float64


def _converter_bits(bits: int) -> int:
    """Check a converter resolution: an integer in [1, 52] (refused clearly, not overflowed)."""
    b = positive_int("bits", bits)
    if b > _MAX_BITS:
        raise ValueError(f"bits: expected at most {_MAX_BITS}, got {b}: the 2**bits - 1 steps "
                         f"are rounded in float64, exact only up to its 52-bit mantissa (and "
                         f"do not fit the int64 kernels from 64 bits on); use bits=None for an "
                         f"ideal converter")
    return b


# ---------------------------------------------------------------------- transfer curves
def _check_table(source: str, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    if x.ndim != 1 or y.ndim != 1 or x.shape != y.shape or x.size < 2:
        raise ValueError(f"lut: {source}: expected two columns of equal length >= 2, got "
                         f"shapes {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError(f"lut: {source}: values must be finite")
    if np.any(np.diff(x) <= 0):
        k = int(np.argmax(np.diff(x) <= 0))
        raise ValueError(f"lut: {source}: input column must be strictly increasing, got "
                         f"{x[k]:g} then {x[k + 1]:g} (rows {k}, {k + 1})")
    if x[0] != 0.0 or x[-1] != 1.0:
        raise ValueError(f"lut: {source}: input column must span [0, 1] (normalised code), "
                         f"got [{x[0]:g}, {x[-1]:g}]")
    if np.any(np.diff(y) < 0):
        k = int(np.argmax(np.diff(y) < 0))
        raise ValueError(f"lut: {source}: transfer curve is not monotone: output decreases "
                         f"from {y[k]:g} to {y[k + 1]:g} (rows {k}, {k + 1})")
    if y[0] < 0.0 or y[-1] > 1.0:
        raise ValueError(f"lut: {source}: output column must lie in [0, 1] (fraction of full "
                         f"scale), got [{y[0]:g}, {y[-1]:g}]")
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def load_transfer_table(path: str | Path) -> tuple[FloatArray, FloatArray]:
    """Read a converter transfer curve from a CSV or YAML file.

    The curve maps the normalised input ``u`` in [0, 1] (digital code / full scale for a DAC,
    current / ``i_max`` for an ADC) to the normalised output ``f`` in [0, 1]; it is linearly
    interpolated in between.

    * CSV (``.csv``): two comma-separated columns ``u, f``; ``#`` comments and one header line
      are allowed.
    * YAML (``.yaml``/``.yml``): a mapping ``{u: [...], f: [...]}``.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    u, f : ndarray of shape (m,)
        Strictly increasing ``u`` from 0 to 1 and non-decreasing ``f`` in [0, 1].

    Raises
    ------
    ValueError
        Unreadable, badly shaped or non-monotone table; the message names the file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"lut: cannot read {path}: {exc.strerror}") from None
    if suffix == ".csv":
        rows: list[list[float]] = []
        header_allowed = True
        for line_no, line in enumerate(text.splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            cells = [c.strip() for c in line.split(",")]
            try:
                values = [float(c) for c in cells]
            except ValueError:
                if header_allowed:
                    header_allowed = False
                    continue  # one header line before the data
                raise ValueError(f"lut: {path}: line {line_no}: expected two numbers, got "
                                 f"{line!r}") from None
            header_allowed = False
            if len(values) != 2:
                raise ValueError(f"lut: {path}: line {line_no}: expected two columns u, f, "
                                 f"got {len(values)}")
            rows.append(values)
        arr = np.array(rows, dtype=np.float64).reshape(-1, 2)
        u, f = arr[:, 0].copy(), arr[:, 1].copy()
    elif suffix in (".yaml", ".yml"):
        from xbarsim.config.loader import parse_yaml
        from xbarsim.errors import ConfigError

        try:  # strict: a key written twice ('u' and 'u') is an error, not the last one kept
            data = parse_yaml(text)
        except ConfigError as exc:
            raise ValueError(f"lut: {path}: invalid YAML: {exc.errors[0]}") from None
        if not isinstance(data, dict) or set(data) != {"u", "f"}:
            raise ValueError(f"lut: {path}: expected a mapping with exactly the keys 'u' and "
                             f"'f', got {data!r:.80}")
        for key in ("u", "f"):
            col = data[key]
            if not isinstance(col, list) or not all(
                    isinstance(c, (int, float)) and not isinstance(c, bool) for c in col):
                raise ValueError(f"lut: {path}: '{key}' must be a list of numbers, got "
                                 f"{col!r:.80} (PyYAML reads 1e-3 as a string: write 1.0e-3)")
        u = np.array(data["u"], dtype=np.float64)
        f = np.array(data["f"], dtype=np.float64)
    else:
        raise ValueError(f"lut: {path}: unknown table format {suffix!r}; expected .csv, "
                         f".yaml or .yml")
    return _check_table(str(path), u, f)


@dataclass(frozen=True)
class _Transfer:
    kind: int
    param: float
    table_x: FloatArray
    table_y: FloatArray


_NO_TABLE = np.array([0.0, 1.0])


def _make_transfer(nonlinearity: str, bow: float, tanh_beta: float,
                   lut: TableSpec) -> _Transfer:
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity: expected one of {', '.join(map(repr, NONLINEARITIES))}, "
                         f"got {nonlinearity!r}")
    kind = NONLINEARITIES[nonlinearity]
    bow_f = float(as_float_array("bow", bow, ndim=0))
    if abs(bow_f) > 1.0:
        raise ValueError(f"bow: coefficient must be in [-1, 1] for a monotone curve "
                         f"u + bow u (1 - u), got {bow_f:g}")
    beta = float(as_float_array("tanh_beta", tanh_beta, ndim=0, positive=True))
    if kind != kernels.KIND_TABLE and lut is not None:
        raise ValueError(f"lut: only used with nonlinearity='lut', got "
                         f"nonlinearity={nonlinearity!r}")
    tx, ty, param = _NO_TABLE, _NO_TABLE, 0.0
    if kind == kernels.KIND_BOW:
        param = bow_f
    elif kind == kernels.KIND_TANH:
        param = beta
    elif kind == kernels.KIND_TABLE:
        if lut is None:
            raise ValueError("lut: nonlinearity='lut' needs a CSV/YAML path or (u, f) arrays")
        if isinstance(lut, (str, Path)):
            tx, ty = load_transfer_table(lut)
        else:
            try:
                u, f = lut
            except (TypeError, ValueError):
                raise ValueError("lut: expected a path or a pair (u, f) of arrays") from None
            tx, ty = _check_table("(u, f) arrays", np.array(u, dtype=np.float64),
                                  np.array(f, dtype=np.float64))
    for arr in (tx, ty):
        arr.flags.writeable = False
    return _Transfer(kind, param, tx, ty)


def _n_steps(bits: int | None) -> int:
    return 0 if bits is None else 2**bits - 1


# ---------------------------------------------------------------------- converters
class Converter(ABC):
    """A converter: ``__call__`` maps an array to an array of the same shape (pure)."""

    bits: int | None

    @abstractmethod
    def __call__(self, x: ArrayLike) -> FloatArray:
        """Convert ``x`` (DAC: digital -> V; ADC: A -> digital reconstruction in A)."""

    @property
    def n_steps(self) -> int:
        """``2**bits - 1`` quantisation steps over the full scale (0 = ideal)."""
        return _n_steps(self.bits)

    @property
    def transfer(self) -> tuple[int, float, FloatArray, FloatArray]:
        """Transfer curve as kernel arguments ``(kind, param, table_x, table_y)``."""
        t = self._transfer  # type: ignore[attr-defined]
        return t.kind, t.param, t.table_x, t.table_y


class DAC(Converter):
    """Digital-to-analog converter driving crossbar rows.

    Parameters
    ----------
    bits : int or None
        Resolution, >= 1; ``None`` = ideal (``V = v_max * x``).
    v_max : float
        Full-scale output voltage [V], > 0 (TxSim: 1 V).
    nonlinearity : {"none", "bow", "tanh", "lut"}
        Transfer curve ``f`` of the analog output vs the normalised code.
    bow : float
        Bow (INL) coefficient ``a`` of ``"bow"``, ``|a| <= 1`` (monotone).
    tanh_beta : float
        Compression ``beta > 0`` of ``"tanh"``.
    lut : path or (u, f) arrays, optional
        Lookup table of ``"lut"`` (:func:`load_transfer_table`); only allowed with ``"lut"``.
    signed : {None, "two_pass", "twos_complement"}
        ``None``: unsigned inputs in [0, 1] (negative values clip to 0). Otherwise inputs in
        [-1, 1] and the mode used by :meth:`stream`; ``__call__`` then returns the net signed
        drive ``sign(x) * v_max * f(q(|x|))``, which equals the difference of the two passes
        (exactly what the linear crossbar sees when no ADC sits in between).

    Raises
    ------
    ValueError
        Invalid argument; the message names it.
    """

    def __init__(self, bits: int | None = 1, v_max: float = 1.0, *, nonlinearity: str = "none",
                 bow: float = 0.0, tanh_beta: float = 1.0, lut: TableSpec = None,
                 signed: str | None = None) -> None:
        self.bits = None if bits is None else _converter_bits(bits)
        self.v_max = float(as_float_array("v_max", v_max, ndim=0, positive=True))
        if signed is not None and signed not in SIGNED_MODES:
            raise ValueError(f"signed: expected None, 'two_pass' or 'twos_complement', got "
                             f"{signed!r}")
        if signed == "twos_complement" and self.bits is None:
            raise ValueError("signed: 'twos_complement' needs integer DAC bits, got bits=None")
        if self.bits is None and nonlinearity != "none":
            raise ValueError(f"nonlinearity: an ideal DAC (bits=None) has no transfer curve, "
                             f"got {nonlinearity!r}")
        self.signed = signed
        self.nonlinearity = nonlinearity
        self._transfer = _make_transfer(nonlinearity, bow, tanh_beta, lut)

    def __repr__(self) -> str:
        return (f"DAC(bits={self.bits}, v_max={self.v_max:g}, "
                f"nonlinearity={self.nonlinearity!r}, signed={self.signed!r})")

    def normalized(self, x: ArrayLike) -> FloatArray:
        """Output in units of ``v_max``: ``f(q(clip(x)))`` (odd extension when signed)."""
        arr = as_float_array("x", x)
        t = self._transfer
        out = kernels.dac_convert(arr.reshape(-1), self.n_steps, self.signed is not None,
                                  t.kind, t.param, t.table_x, t.table_y)
        return out.reshape(arr.shape)

    def __call__(self, x: ArrayLike) -> FloatArray:
        """Row voltages [V] for digital inputs ``x`` (any shape; [0, 1], or [-1, 1] if signed)."""
        return self.v_max * self.normalized(x)

    def stream(self, x: ArrayLike, input_bits: int) -> BitStream:
        """Decompose ``input_bits``-bit inputs into planes for this DAC (:func:`stream_inputs`)."""
        return stream_inputs(x, input_bits, self.bits, self.signed)

    def drive(self, planes: BitStream) -> FloatArray:
        """Row voltages [V] of every plane, shape ``(n_planes, *x.shape)``.

        The codes are already on the DAC grid, so only the transfer curve acts here.
        """
        t = self._transfer
        u = planes.dac_inputs
        out = kernels.dac_convert(u.reshape(-1), self.n_steps, False, t.kind, t.param,
                                  t.table_x, t.table_y)
        return self.v_max * out.reshape(u.shape)


class ADC(Converter):
    """Analog-to-digital converter of crossbar column currents, with range calibration.

    Parameters
    ----------
    bits : int or None
        Resolution, >= 1; ``None`` = ideal (identity; no range needed).
    i_max : float, optional
        Full-scale current [A], > 0. ``None`` starts in the calibrating state.
    nonlinearity : {"none", "bow", "tanh", "lut"}
        Transfer curve of the analog front end; reconstruction uses the ideal
        linear inverse, so a non-linear ADC is not idempotent.
    bow : float
        Bow coefficient ``a`` of ``"bow"``, ``|a| <= 1``.
    tanh_beta : float
        Compression ``beta > 0`` of ``"tanh"``.
    lut : path or (u, f) arrays, optional
        Lookup table of ``"lut"``.
    sense_noise : float
        Input-referred Gaussian current noise sigma [A], >= 0, added before conversion.
    bipolar : bool
        Range ``[-i_max, i_max]`` (odd transfer curve) instead of ``[0, i_max]``.
    calibration : {"max", "percentile"}
        Range statistic while calibrating: the running maximum of ``|I|``, or the running maximum
        over calls of the ``percentile``-th percentile of ``|I|`` within each call.
    percentile : float
        Percentile in (0, 100] for ``calibration="percentile"`` (default 99.99).
    calibration_window : int, optional
        Number of :meth:`calibrate` calls after which the range freezes by itself; ``None`` =
        until :meth:`freeze` is called.

    Attributes
    ----------
    calibrating : bool
        True while the range is still being learnt.
    i_max : float or None
        Present full-scale current [A].
    n_calibration_calls : int
        Calls of :meth:`calibrate` so far.
    """

    def __init__(self, bits: int | None = 8, i_max: float | None = None, *,
                 nonlinearity: str = "none", bow: float = 0.0, tanh_beta: float = 1.0,
                 lut: TableSpec = None, sense_noise: float = 0.0, bipolar: bool = False,
                 calibration: str = "max", percentile: float = 99.99,
                 calibration_window: int | None = None) -> None:
        self.bits = None if bits is None else _converter_bits(bits)
        if self.bits is None and nonlinearity != "none":
            raise ValueError(f"nonlinearity: an ideal ADC (bits=None) has no transfer curve, "
                             f"got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        self._transfer = _make_transfer(nonlinearity, bow, tanh_beta, lut)
        self.sense_noise = nonneg_scalar("sense_noise", sense_noise)
        if not isinstance(bipolar, (bool, np.bool_)):
            raise ValueError(f"bipolar: expected a bool, got {bipolar!r}")
        self.bipolar = bool(bipolar)
        if calibration not in CALIBRATIONS:
            raise ValueError(f"calibration: expected 'max' or 'percentile', got {calibration!r}")
        self.calibration = calibration
        self.percentile = float(as_float_array("percentile", percentile, ndim=0, positive=True))
        if self.percentile > 100.0:
            raise ValueError(f"percentile: must be in (0, 100], got {self.percentile:g}")
        self.calibration_window = (None if calibration_window is None
                                   else positive_int("calibration_window", calibration_window))
        self.n_calibration_calls = 0
        if i_max is None:
            self.i_max: float | None = None
            self.calibrating = self.bits is not None
        else:
            self.i_max = float(as_float_array("i_max", i_max, ndim=0, positive=True))
            self.calibrating = False

    def __repr__(self) -> str:
        return (f"ADC(bits={self.bits}, i_max={self.i_max}, nonlinearity={self.nonlinearity!r}, "
                f"bipolar={self.bipolar}, calibrating={self.calibrating})")

    @property
    def lsb(self) -> float | None:
        """Current of one code step [A] (``i_max / (2**bits - 1)``), ``None`` if unknown/ideal."""
        if self.bits is None or self.i_max is None:
            return None
        return self.i_max / self.n_steps

    def calibrate(self, i: ArrayLike) -> float:
        """Update the range from currents ``i`` [A] (any shape); returns the new ``i_max``.

        A no-op returning the frozen ``i_max`` once calibration has ended. Freezes by itself
        after ``calibration_window`` calls.
        """
        arr = as_float_array("i", i)
        if not self.calibrating:
            assert self.i_max is not None or self.bits is None
            return self.i_max if self.i_max is not None else math.nan
        if self.calibration == "max" and arr.size:
            # max |i| (bipolar) or max(max i, 0) over slices in threads: exact, NaN as np.max
            flat, bipolar = arr.reshape(-1), self.bipolar
            peaks = over_batch(lambda k0, k1: kernels.peak(flat[k0:k1], bipolar), flat.shape[0],
                               flat.shape[0])
            stat = math.nan if any(math.isnan(v) for v in peaks) else max(peaks)
        elif self.calibration == "max":
            stat = float(np.max(arr))      # no currents: NumPy's error, as before
        else:
            mag = np.abs(arr) if self.bipolar else np.maximum(arr, 0.0)
            stat = float(np.percentile(mag, self.percentile))
        return self._record(stat)

    def _record(self, stat: float) -> float:
        """Widen the range to ``stat`` [A], count the call, freeze after the window."""
        self.i_max = stat if self.i_max is None else max(self.i_max, stat)
        self.n_calibration_calls += 1
        if self.calibration_window is not None and \
                self.n_calibration_calls >= self.calibration_window:
            self.calibrating = False
        return self.i_max

    def observe_max(self, stat: float) -> float:
        """Calibrate from the largest current of one call [A], computed by the caller.

        Equivalent to :meth:`calibrate` for ``calibration="max"`` (the fused tile kernels
        compute the statistic without a copy); returns the present ``i_max``.

        Raises
        ------
        ValueError
            The ADC calibrates from a percentile, which needs the currents themselves.
        """
        if self.calibration != "max":
            raise ValueError("calibration: observe_max needs calibration='max'; call "
                             "calibrate(i) for percentile calibration")
        if not self.calibrating:
            return self.i_max if self.i_max is not None else math.nan
        return self._record(max(float(stat), 0.0))

    def freeze(self) -> None:
        """End calibration; later inputs no longer change ``i_max``.

        Raises
        ------
        RuntimeError
            No calibration data yet (``i_max`` unknown).
        """
        if self.bits is not None and self.i_max is None:
            raise RuntimeError("ADC.freeze: no calibration data; call calibrate() (or the ADC) "
                               "at least once, or give i_max")
        self.calibrating = False

    def __call__(self, i: ArrayLike, noise: ArrayLike | None = None, *,
                 calibrate: bool = True) -> FloatArray:
        """Digital reconstruction [A] of column currents ``i`` [A] (any shape).

        Adds ``sense_noise * noise``, updates the range while calibrating (and ``calibrate``),
        then clips, applies the transfer curve, quantises and reconstructs with the ideal
        inverse.

        Parameters
        ----------
        i : array_like
            Analog currents [A].
        noise : array_like, same shape, optional
            Standard normals; required when ``sense_noise > 0``.
        calibrate : bool
            Let these currents update the range while the ADC is calibrating (training).
            ``False`` (evaluation) converts with the present range and changes no state.

        Raises
        ------
        RuntimeError
            ``calibrate=False`` and the ADC has no range yet (never calibrated, no ``i_max``).
        """
        arr = as_float_array("i", i)
        if self.sense_noise > 0:
            if noise is None:
                raise ValueError(f"noise: standard normals of shape {arr.shape} are required "
                                 f"when sense_noise > 0")
            xi = as_float_array("noise", noise)
            if xi.shape != arr.shape:
                raise ValueError(f"noise: expected shape {arr.shape}, got {xi.shape}")
            arr = arr + self.sense_noise * xi
        if self.bits is None:
            return arr.copy() if arr is i else arr
        if self.i_max is None and not calibrate:
            raise RuntimeError("ADC: no range yet (i_max unknown) and calibrate=False; "
                               "calibrate it on training data first or give i_max")
        if self.calibrating and calibrate:
            self.calibrate(arr)
        assert self.i_max is not None
        t = self._transfer
        flat = arr.reshape(-1)
        out = np.empty(flat.shape[0])
        i_max, n_steps, bipolar = self.i_max, self.n_steps, self.bipolar
        over_batch(lambda k0, k1: kernels.adc_convert_into(
            flat[k0:k1], i_max, n_steps, bipolar, t.kind, t.param, t.table_x, t.table_y,
            out[k0:k1]), flat.shape[0], flat.shape[0])
        return self.i_max * out.reshape(arr.shape)


CONVERTERS: dict[str, type[Converter]] = {"dac": DAC, "adc": ADC}
"""Converter classes by name."""


# ---------------------------------------------------------------------- bit streaming
@dataclass(frozen=True)
class BitStream:
    """Inputs decomposed into DAC planes (LSB first).

    Attributes
    ----------
    codes : ndarray of shape (n_planes, *x.shape)
        DAC codes per plane, integer-valued float64 in ``[0, code_max]`` (for an ideal DAC the
        continuous values themselves).
    shifts : ndarray of shape (n_planes,)
        Signed integer shift weight of each plane (``2**(d s)``; negative for the second pass or
        for the two's-complement sign plane).
    scale : float
        ``x_q = (shifts @ codes) / scale`` (``2**b - 1`` unsigned, ``2**(b-1) - 1`` signed).
    code_max : int
        Full-scale DAC code ``2**d - 1`` (1 for an ideal DAC).
    """

    codes: FloatArray
    shifts: FloatArray
    scale: float
    code_max: int

    @property
    def n_planes(self) -> int:
        """Number of planes (DAC conversions per input vector)."""
        return int(self.shifts.shape[0])

    @property
    def dac_inputs(self) -> FloatArray:
        """Normalised DAC inputs ``codes / code_max`` in [0, 1], shape of ``codes``."""
        return self.codes / self.code_max

    @property
    def plane_weights(self) -> FloatArray:
        """Weight of each plane's normalised output: ``shifts * code_max / scale``, (n_planes,)."""
        return self.shifts * self.code_max / self.scale

    def integer_value(self) -> FloatArray:
        """``sum_s shifts[s] * codes[s]``: the quantised input in integer units (exact)."""
        return np.tensordot(self.shifts, self.codes, axes=1)

    def value(self) -> FloatArray:
        """The quantised input ``x_q`` in [0, 1] (or [-1, 1]), shape of ``x``."""
        return self.integer_value() / self.scale

    def recombine(self, plane_outputs: ArrayLike) -> FloatArray:
        """Shift-and-add of per-plane results computed from :attr:`dac_inputs`.

        Parameters
        ----------
        plane_outputs : array_like of shape (n_planes, ...)
            Result of each plane, e.g. ``dac_inputs[s] @ g`` (linear in the plane input).

        Returns
        -------
        ndarray of shape (...)
            ``sum_s plane_weights[s] * plane_outputs[s]``, equal to the result for ``x_q``.
        """
        out = as_float_array("plane_outputs", plane_outputs)
        if out.ndim < 1 or out.shape[0] != self.n_planes:
            raise ValueError(f"plane_outputs: expected leading axis of length {self.n_planes} "
                             f"(one per plane), got shape {out.shape}")
        return np.tensordot(self.plane_weights, out, axes=1)


def _digits(q: NDArray[np.int64], n_bits: int, d: int) -> NDArray[np.int64]:
    """Base-``2**d`` digits of non-negative ``q`` < ``2**n_bits``, LSB first, (n, *q.shape)."""
    n = -(-n_bits // d)
    shifts = (d * np.arange(n, dtype=np.int64)).reshape((n,) + (1,) * q.ndim)
    return (q[None] >> shifts) & ((1 << d) - 1)


def stream_inputs(x: ArrayLike, input_bits: int, dac_bits: int | None,
                  signed: str | None = None) -> BitStream:
    """Quantise ``x`` to ``input_bits`` and cut it into ``dac_bits``-bit planes, LSB first.

    Parameters
    ----------
    x : array_like
        Normalised inputs, in [0, 1] (``signed=None``) or [-1, 1]; clipped to that range.
    input_bits : int
        Input precision ``b`` including the sign bit when signed (1..52 unsigned, 2..52 signed).
    dac_bits : int or None
        DAC resolution ``d``; ``None`` (ideal DAC): no quantisation, one plane (two for
        ``"two_pass"``).
    signed : {None, "two_pass", "twos_complement"}
        Signed-input scheme.

    Returns
    -------
    BitStream
        * unsigned: ``q = round(x (2**b - 1))``, ``ceil(b / d)`` planes of its base-``2**d``
          digits, shifts ``2**(d s)``;
        * ``"two_pass"``: ``q = round(x (2**(b-1) - 1))``; the digits of ``max(q, 0)`` then of
          ``max(-q, 0)``, shifts ``+2**(d s)`` then ``-2**(d s)``;
        * ``"twos_complement"``: same ``q`` as ``b``-bit two's complement; the low ``b - 1`` bits
          in ``d``-bit planes (shifts ``2**(d s)``), then the sign bit as one plane with shift
          ``-2**(b-1)`` (code 0 or 1).
    """
    arr = as_float_array("x", x)
    if signed is not None and signed not in SIGNED_MODES:
        raise ValueError(f"signed: expected None, 'two_pass' or 'twos_complement', got "
                         f"{signed!r}")
    b = positive_int("input_bits", input_bits, minimum=1 if signed is None else 2)
    if b > _MAX_INPUT_BITS:
        raise ValueError(f"input_bits: at most {_MAX_INPUT_BITS} (exact in float64), got {b}")
    if dac_bits is None:
        if signed is None:
            codes = np.clip(arr, 0.0, 1.0)[None]
            return BitStream(codes, np.array([1.0]), 1.0, 1)
        if signed == "twos_complement":
            raise ValueError("signed: 'twos_complement' needs integer dac_bits, got None")
        clipped = np.clip(arr, -1.0, 1.0)
        codes = np.stack([np.maximum(clipped, 0.0), np.maximum(-clipped, 0.0)])
        return BitStream(codes, np.array([1.0, -1.0]), 1.0, 1)
    d = positive_int("dac_bits", dac_bits)
    code_max = (1 << d) - 1
    if signed is None:
        scale = float((1 << b) - 1)
        q = np.rint(np.clip(arr, 0.0, 1.0) * scale).astype(np.int64)
        digits = _digits(q, b, d)
        shifts = 2.0 ** (d * np.arange(digits.shape[0]))
        return BitStream(digits.astype(np.float64), shifts, scale, code_max)
    scale = float((1 << (b - 1)) - 1)
    q = np.rint(np.clip(arr, -1.0, 1.0) * scale).astype(np.int64)
    if signed == "two_pass":
        pos = _digits(np.maximum(q, 0), b - 1, d)
        neg = _digits(np.maximum(-q, 0), b - 1, d)
        mag_shifts = 2.0 ** (d * np.arange(pos.shape[0]))
        return BitStream(np.concatenate([pos, neg]).astype(np.float64),
                         np.concatenate([mag_shifts, -mag_shifts]), scale, code_max)
    # two's complement: r = q mod 2**b; q = -2**(b-1) * msb + low
    r = q & ((1 << b) - 1)
    low = _digits(r & ((1 << (b - 1)) - 1), b - 1, d)
    msb = (r >> (b - 1))[None]
    shifts = np.concatenate([2.0 ** (d * np.arange(low.shape[0])), [-(2.0 ** (b - 1))]])
    return BitStream(np.concatenate([low, msb]).astype(np.float64), shifts, scale, code_max)
