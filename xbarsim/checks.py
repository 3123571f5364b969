"""Input validation shared by the public API: one message style everywhere.

Every check names the argument, the expected shape or range and what was received, so that
the CLI can pass the message to the user unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray


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
    ValueError
        Non-numeric, non-finite, empty, wrong shape or out of range.
    """
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
    """An integer >= ``minimum`` (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)
