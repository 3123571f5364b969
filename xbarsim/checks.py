"""Input validation shared by the public API: one message style everywhere.

Every check names the argument, the expected shape or range and what was received, so that
the CLI can pass the message to the user unchanged.

Only real numbers are numbers here: a string (``r_source="100"``), a complex value (whose
imaginary part NumPy would silently drop) and a boolean are refused with
:class:`InputTypeError`, which is both a ``TypeError`` and a ``ValueError`` (callers that catch
the ``ValueError`` of a bad value catch it too).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray


class InputTypeError(TypeError, ValueError):
    """An argument of the wrong kind (a string, complex or boolean where numbers are expected)."""


def _show(x: Any) -> str:
    if isinstance(x, np.ndarray) and x.ndim > 0:
        first = x.flat[0].item() if x.size else None
        return f"{x.dtype} array of shape {x.shape}, first {first!r}"
    text = repr(x)
    return text if len(text) <= 40 else text[:37] + "..."


def _as_real_array(name: str, x: Any) -> NDArray[Any]:
    """``np.asarray(x)`` after refusing strings, complex numbers and booleans by name."""
    if isinstance(x, (str, bytes)):
        raise InputTypeError(f"{name}: expected a number or an array of numbers, got the string "
                             f"{_show(x)}; pass a number (no quotes)")
    try:
        arr = x if isinstance(x, np.ndarray) else np.asarray(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected an array of numbers, got {type(x).__name__}") from None
    kind = arr.dtype.kind
    if kind in "fiu":
        return arr
    if kind == "O":  # mixed Python objects (a ragged list, None, ...): look at each element
        for item in arr.flat:
            if isinstance(item, (str, bytes)):
                return _as_real_array(name, item)  # raises
            if isinstance(item, (complex, np.complexfloating, bool, np.bool_)):
                return _as_real_array(name, np.asarray([item]))  # raises
            if item is None:
                raise InputTypeError(f"{name}: expected numbers, got None in {_show(x)}")
        return arr  # the float conversion decides
    if kind == "c":
        raise InputTypeError(f"{name}: expected real numbers, got complex values "
                             f"({arr.dtype}); an imaginary part would be silently dropped: "
                             f"pass the real part (x.real) if that is what is meant")
    if kind == "b":
        raise InputTypeError(f"{name}: expected numbers, got booleans ({_show(x)})")
    if kind in "US":
        raise InputTypeError(f"{name}: expected numbers, got strings ({_show(x)}); pass "
                             f"numbers (no quotes)")
    raise InputTypeError(f"{name}: expected an array of numbers, got dtype {arr.dtype}")


def as_float_array(name: str, x: Any, *, ndim: int | tuple[int, ...] | None = None,
                   nonneg: bool = False, positive: bool = False,
                   shape: tuple[int | None, ...] | None = None) -> NDArray[np.float64]:
    """Return ``x`` as a C-contiguous float64 array after checking it.

    Parameters
    ----------
    name : str
        Argument name used in error messages.
    x : array_like
        The value.
    ndim : int or tuple of int, optional
        Allowed numbers of dimensions.
    nonneg, positive : bool
        Require ``x >= 0`` / ``x > 0`` element-wise.
    shape : tuple, optional
        Required shape; ``None`` entries match any length.

    Raises
    ------
    InputTypeError
        A string, complex or boolean value (a ``TypeError`` and a ``ValueError``).
    ValueError
        Non-numeric, non-finite, empty, wrong shape or out of range.
    """
    if not (isinstance(x, np.ndarray) and x.dtype == np.float64):  # the common case
        x = _as_real_array(name, x)
    try:
        arr = np.array(x, dtype=np.float64, order="C", copy=None)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected an array of numbers, got {type(x).__name__}") from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in allowed:
            raise ValueError(f"{name}: expected {' or '.join(f'{d}-D' for d in allowed)} array, "
                             f"got shape {arr.shape}")
    if shape is not None and (arr.ndim != len(shape) or any(
            s is not None and s != a for s, a in zip(shape, arr.shape))):
        want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name}: expected shape {want}, got {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: must not be empty, got shape {arr.shape}")
    # fast path: two reductions decide every check (NaN propagates through min and max); the
    # element-wise scans below only run to name the offending element
    lo, hi = (float(arr), float(arr)) if arr.ndim == 0 else (float(arr.min()), float(arr.max()))
    if (math.isfinite(lo) and math.isfinite(hi) and not (positive and lo <= 0.0)
            and not (nonneg and lo < 0.0)):
        return arr
    for failed, what in ((~np.isfinite(arr), "finite"), (positive & (arr <= 0), "> 0"),
                         (nonneg & (arr < 0), ">= 0")):
        if np.any(failed):
            index = tuple(int(k) for k in np.argwhere(failed)[0])
            got = arr[index] if what == "finite" else f"{arr[index]:g}"
            where = f" at index {index}" if arr.ndim else ""
            raise ValueError(f"{name}: must be {what}, got {got}{where}")
    return arr


def per_line(name: str, value: Any, n: int) -> NDArray[np.float64]:
    """A resistance given as a scalar or one value per line, returned as shape ``(n,)`` [Ohm].

    Raises
    ------
    ValueError
        Negative, non-finite, or a vector whose length is not ``n``.
    """
    arr = as_float_array(name, value, ndim=(0, 1), nonneg=True)
    _check_not_tiny(name, arr)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape != (n,):
        raise ValueError(f"{name}: expected a scalar or shape ({n},), got shape {arr.shape}")
    return arr


MIN_RESISTANCE = 1e-9
"""Smallest non-zero resistance accepted [Ohm]; below it 1/r overflows the nodal matrix."""


def _check_not_tiny(name: str, arr: NDArray[np.float64]) -> None:
    tiny = (arr > 0) & (arr < MIN_RESISTANCE)
    if np.any(tiny):
        raise ValueError(f"{name}: a resistance must be 0 (ideal connection) or >= "
                         f"{MIN_RESISTANCE:g} Ohm, got {arr[tiny].flat[0]:g}")


def nonneg_scalar(name: str, value: Any) -> float:
    """A finite scalar >= 0, as float."""
    return float(as_float_array(name, value, ndim=0, nonneg=True))


def resistance(name: str, value: Any) -> float:
    """A wire resistance [Ohm]: finite, 0 or >= ``MIN_RESISTANCE``."""
    arr = as_float_array(name, value, ndim=0, nonneg=True)
    _check_not_tiny(name, arr)
    return float(arr)


def positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` as int after checking it is an integer >= ``minimum``.

    Bools, floats and strings are refused with :class:`InputTypeError`.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputTypeError(f"{name}: expected an integer >= {minimum}, got {_show(value)} "
                             f"({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)
