r"""Weights -> conductances: signed mappings, weight scale, bit slicing, tiling.

The models are described in docs/physics.md, 'From weights to conductances'.

Signed mappings (``R = g_max - g_min``, ``g_mid = (g_max + g_min) / 2``, per-layer weight scale
``w_scale = W_s``, gain ``alpha = R / W_s`` [S per weight unit])::

    signed_split   g+ = g_min + alpha max(W, 0),  g- = g_min + alpha max(-W, 0)     (2 arrays)
    differential   g+- = g_mid +- alpha W / 2                                          (2 arrays)
    offset         g  = g_mid + alpha W / 2, reference column of g_mid devices          (1 array)

Every mapping's :meth:`Mapping.combine` returns the signed current that an ideal array of
``alpha * W`` would give, ``v @ (alpha W)``, so a tile recovers ``v @ W`` by dividing by
``alpha`` whatever the mapping. Weights beyond ``+-w_scale`` saturate (conductances are clipped
to ``[g_min, g_max]``).

Weights have shape ``(n_rows, n_cols) = (in_features, out_features)``; conductance stacks have
shape ``(n_arrays, n_rows, n_cols)`` [S]; currents ``(n_arrays, batch, n_cols)`` [A].
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xbarsim.checks import as_float_array, positive_int
from xbarsim.kernels.mapping import signed_split_requests

FloatArray = NDArray[np.float64]

__all__ = [
    "MAPPINGS",
    "DifferentialMapping",
    "Mapping",
    "OffsetMapping",
    "SignedSplitMapping",
    "TileBlock",
    "assemble_tiles",
    "combine_slices",
    "quantize_weights",
    "slice_shifts",
    "slice_to_conductance",
    "slice_weights",
    "split_tiles",
    "tile_grid",
    "tile_slices",
    "weight_scale",
]


def _positive_scale(w_scale: float) -> float:
    return float(as_float_array("w_scale", w_scale, ndim=0, positive=True))


def weight_scale(w: ArrayLike, method: str = "max", percentile: float = 99.9) -> float:
    """Per-layer weight scale ``W_s`` from weight statistics (replaces TxSim's ``Scale_Layer-k``).

    Parameters
    ----------
    w : array_like
        Layer weights (any shape).
    method : {"max", "percentile"}
        ``max |W|`` or the ``percentile``-th percentile of ``|W|``.
    percentile : float
        In (0, 100].

    Returns
    -------
    float
        ``W_s > 0``; ``alpha = (g_max - g_min) / W_s`` is the conductance per weight unit.

    Raises
    ------
    ValueError
        Unknown method, percentile out of range, or all-zero weights (scale undefined).
    """
    arr = np.abs(as_float_array("w", w))
    if method == "max":
        scale = float(arr.max())
    elif method == "percentile":
        p = float(as_float_array("percentile", percentile, ndim=0, positive=True))
        if p > 100.0:
            raise ValueError(f"percentile: must be in (0, 100], got {p:g}")
        scale = float(np.percentile(arr, p))
    else:
        raise ValueError(f"method: expected 'max' or 'percentile', got {method!r}")
    if scale <= 0.0:
        raise ValueError(f"w: the weight scale ({method}) of all-zero weights is 0; give "
                         f"w_scale explicitly")
    return scale


class Mapping(ABC):
    """Signed weights onto ``n_arrays`` conductance arrays in ``[g_min, g_max]`` [S].

    Parameters
    ----------
    g_min, g_max : float
        Device conductance range [S], ``0 < g_min < g_max``.
    """

    n_arrays: ClassVar[int]
    name: ClassVar[str]

    def __init__(self, g_min: float, g_max: float) -> None:
        self.g_min = float(as_float_array("g_min", g_min, ndim=0, positive=True))
        self.g_max = float(as_float_array("g_max", g_max, ndim=0, positive=True))
        if not self.g_min < self.g_max:
            raise ValueError(f"g_min: must be < g_max, got g_min={self.g_min:g} S >= "
                             f"g_max={self.g_max:g} S")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(g_min={self.g_min:g}, g_max={self.g_max:g})"

    @property
    def g_range(self) -> float:
        """``g_max - g_min`` [S]."""
        return self.g_max - self.g_min

    @property
    def g_mid(self) -> float:
        """``(g_max + g_min) / 2`` [S]."""
        return 0.5 * (self.g_max + self.g_min)

    def alpha(self, w_scale: float) -> float:
        """Conductance per weight unit ``(g_max - g_min) / w_scale`` [S]."""
        return self.g_range / _positive_scale(w_scale)

    def _weights(self, w: ArrayLike) -> FloatArray:
        return as_float_array("w", w, ndim=2)

    def _step_args(self, g: ArrayLike, dw: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Checked ``(g, dw)`` of :meth:`split_update`: a conductance stack and a matching step."""
        g_arr = self._stack(g)
        dw_arr = self._weights(dw)
        if dw_arr.shape != g_arr.shape[1:]:
            raise ValueError(f"dw: expected shape {g_arr.shape[1:]} (as g[0]), got "
                             f"{dw_arr.shape}")
        return g_arr, dw_arr

    def _stack(self, g: ArrayLike) -> FloatArray:
        arr = as_float_array("g", g, ndim=3)
        if arr.shape[0] != self.n_arrays:
            raise ValueError(f"g: expected shape ({self.n_arrays}, n_rows, n_cols) for "
                             f"{self.name!r}, got {arr.shape}")
        return arr

    @abstractmethod
    def to_conductance(self, w: ArrayLike, w_scale: float) -> FloatArray:
        """Target conductances of weights ``w`` (n_rows, n_cols).

        Returns
        -------
        ndarray of shape (n_arrays, n_rows, n_cols)
            Conductances [S], clipped to ``[g_min, g_max]``.
        """

    @abstractmethod
    def to_weight(self, g: ArrayLike, w_scale: float) -> FloatArray:
        """Weights (n_rows, n_cols) represented by conductances (n_arrays, n_rows, n_cols) [S]."""

    @abstractmethod
    def combine(self, i: ArrayLike, i_ref: ArrayLike | None = None) -> FloatArray:
        """Signed output current [A] from per-array currents.

        Parameters
        ----------
        i : array_like of shape (n_arrays, ..., n_cols)
            Currents of each array [A].
        i_ref : array_like of shape (..., 1) or (...,), optional
            Current of a reference column of ``g_mid`` devices (offset mapping only).

        Returns
        -------
        ndarray of shape (..., n_cols)
            ``v @ (alpha W)`` for ideal arrays.
        """

    @abstractmethod
    def split_update(self, dw: ArrayLike, g: ArrayLike, w_scale: float) -> FloatArray:
        """Per-array conductance change requests [S] for a weight change ``dw``.

        Parameters
        ----------
        dw : array_like of shape (n_rows, n_cols)
            Requested signed weight change (learning rate applied).
        g : array_like of shape (n_arrays, n_rows, n_cols)
            Present conductances [S].
        w_scale : float
            Weight scale ``W_s``.

        Returns
        -------
        ndarray of shape (n_arrays, n_rows, n_cols)
            Requested signed conductance changes [S] for :meth:`Device.apply_update`.
        """

    def split_update_trusted(self, dw: FloatArray, g: Sequence[FloatArray],
                             w_scale: float) -> FloatArray:
        """:meth:`split_update` without argument checks, for the tile's hot path.

        ``dw`` (n_rows, n_cols) finite float64 (a view is fine), ``g`` one C-contiguous
        float64 array of that shape per array. Results equal :meth:`split_update` bit for bit.
        """
        return self.split_update(dw, np.stack(g), w_scale)


class _PairMapping(Mapping):
    """Two arrays whose difference carries the weight: ``W = (g+ - g-) / alpha``."""

    n_arrays = 2

    def to_weight(self, g: ArrayLike, w_scale: float) -> FloatArray:  # noqa: D102
        g_arr = self._stack(g)
        return (g_arr[0] - g_arr[1]) / self.alpha(w_scale)

    def combine(self, i: ArrayLike, i_ref: ArrayLike | None = None) -> FloatArray:  # noqa: D102
        i_arr = as_float_array("i", i)
        if i_arr.ndim < 2 or i_arr.shape[0] != 2:
            raise ValueError(f"i: expected shape (2, ..., n_cols), got {i_arr.shape}")
        if i_ref is not None:
            raise ValueError(f"i_ref: not used by the {self.name} mapping")
        return i_arr[0] - i_arr[1]


class SignedSplitMapping(_PairMapping):
    """Two arrays, one per sign, the idle one at ``g_min`` (TxSim "separate crossbars", PUMA)."""

    n_arrays = 2
    name = "signed_split"

    def to_conductance(self, w: ArrayLike, w_scale: float) -> FloatArray:  # noqa: D102
        w_arr = self._weights(w)
        a = self.alpha(w_scale)
        # (2, n_rows, n_cols): positive part, negative part
        parts = np.stack([np.maximum(w_arr, 0.0), np.maximum(-w_arr, 0.0)])
        return np.clip(self.g_min + a * parts, self.g_min, self.g_max)


    def split_update(self, dw: ArrayLike, g: ArrayLike,  # noqa: D102
                     w_scale: float) -> FloatArray:
        # target W' = W + dW -> target g' -> requests g' - g (docs/physics.md, 'Device updates'):
        # a sign change of W moves both devices; drift of the idle device back to g_min is
        # corrected.
        g_arr, dw_arr = self._step_args(g, dw)
        w_new = self.to_weight(g_arr, w_scale) + dw_arr
        return self.to_conductance(w_new, w_scale) - g_arr

    def split_update_trusted(self, dw: FloatArray, g: Sequence[FloatArray],  # noqa: D102
                             w_scale: float) -> FloatArray:
        # one Numba pass instead of five NumPy temporaries and the checks
        g_pos, g_neg = g
        return signed_split_requests(g_pos, g_neg, dw, self.alpha(w_scale), self.g_min,
                                     self.g_max)


class DifferentialMapping(_PairMapping):
    """Differential pair around ``g_mid``: both devices move by ``+-alpha dW / 2``."""

    n_arrays = 2
    name = "differential"

    def to_conductance(self, w: ArrayLike, w_scale: float) -> FloatArray:  # noqa: D102
        half = 0.5 * self.alpha(w_scale) * self._weights(w)
        return np.clip(np.stack([self.g_mid + half, self.g_mid - half]), self.g_min, self.g_max)


    def split_update(self, dw: ArrayLike, g: ArrayLike,  # noqa: D102
                     w_scale: float) -> FloatArray:
        g_arr, dw_arr = self._step_args(g, dw)
        half = 0.5 * self.alpha(w_scale) * dw_arr
        return np.stack([half, -half])


class OffsetMapping(Mapping):
    """One array around ``g_mid``; the ``g_mid`` baseline is removed with a reference current.

    The reference (``i_ref = v @ g_mid = g_mid * sum(v)``) may come from a physical column of
    ``g_mid`` devices or be computed digitally; :meth:`combine` needs it.
    """

    n_arrays = 1
    name = "offset"

    def to_conductance(self, w: ArrayLike, w_scale: float) -> FloatArray:  # noqa: D102
        half = 0.5 * self.alpha(w_scale) * self._weights(w)
        return np.clip(self.g_mid + half, self.g_min, self.g_max)[None]

    def to_weight(self, g: ArrayLike, w_scale: float) -> FloatArray:  # noqa: D102
        g_arr = self._stack(g)
        return 2.0 * (g_arr[0] - self.g_mid) / self.alpha(w_scale)

    def combine(self, i: ArrayLike, i_ref: ArrayLike | None = None) -> FloatArray:  # noqa: D102
        i_arr = as_float_array("i", i)
        if i_arr.ndim < 2 or i_arr.shape[0] != 1:
            raise ValueError(f"i: expected shape (1, ..., n_cols), got {i_arr.shape}")
        if i_ref is None:
            raise ValueError("i_ref: the offset mapping needs the reference current "
                             "g_mid * sum(v) of shape (..., 1)")
        ref = as_float_array("i_ref", i_ref)
        if ref.shape == i_arr.shape[1:-1]:
            ref = ref[..., None]
        if ref.shape != i_arr.shape[1:-1] + (1,):
            raise ValueError(f"i_ref: expected shape {i_arr.shape[1:-1] + (1,)}, got "
                             f"{ref.shape}")
        return 2.0 * (i_arr[0] - ref)

    def reference_current(self, v: ArrayLike) -> FloatArray:
        """Ideal reference current [A] ``g_mid * sum(v)`` for inputs ``v`` (..., n_rows) [V].

        Returns shape (..., 1).
        """
        return self.g_mid * np.sum(as_float_array("v", v), axis=-1, keepdims=True)

    def split_update(self, dw: ArrayLike, g: ArrayLike,  # noqa: D102
                     w_scale: float) -> FloatArray:
        g_arr, dw_arr = self._step_args(g, dw)
        return (0.5 * self.alpha(w_scale) * dw_arr)[None]


MAPPINGS: dict[str, type[Mapping]] = {
    "signed_split": SignedSplitMapping,
    "differential": DifferentialMapping,
    "offset": OffsetMapping,
}
"""Mapping classes by name."""


# ---------------------------------------------------------------------- bit slicing
def quantize_weights(w: ArrayLike, w_scale: float, weight_bits: int) -> NDArray[np.int64]:
    """Signed integer weights ``sign(W) * round(min(|W|/W_s, 1) * (2**B - 1))`` (bit slicing).

    Parameters
    ----------
    w : array_like
        Weights (any shape).
    w_scale : float
        Weight scale ``W_s`` > 0.
    weight_bits : int
        Magnitude bits ``B`` (1..52).

    Returns
    -------
    ndarray of int64, shape of ``w``
        ``q`` with ``|q| <= 2**B - 1``; ``W ~ q * W_s / (2**B - 1)``.
    """
    arr = as_float_array("w", w)
    bits = positive_int("weight_bits", weight_bits)
    if bits > 52:
        raise ValueError(f"weight_bits: at most 52 (exact in float64), got {bits}")
    mag = np.minimum(np.abs(arr) / _positive_scale(w_scale), 1.0)
    return (np.sign(arr) * np.rint(mag * ((1 << bits) - 1))).astype(np.int64)


def slice_shifts(k: int, n_slices: int) -> FloatArray:
    """Shift weights ``2**(k s)``, ``s = 0..n_slices-1`` (LSB slice first), shape (n_slices,)."""
    k = positive_int("k", k)
    n_slices = positive_int("n_slices", n_slices)
    return 2.0 ** (k * np.arange(n_slices))


def slice_weights(q: ArrayLike, k: int, n_slices: int) -> NDArray[np.int64]:
    """Digits of non-negative integer weights over ``k``-bit devices, LSB slice first.

    Parameters
    ----------
    q : array_like of non-negative integers
        Weight magnitudes (e.g. ``abs(quantize_weights(...))``), ``q < 2**(k n_slices)``.
    k : int
        Bits per device (``2**k`` levels).
    n_slices : int
        Number of slices (devices per weight and polarity).

    Returns
    -------
    ndarray of int64, shape (n_slices, *q.shape)
        ``q_s = floor(q / 2**(k s)) mod 2**k``; ``sum_s 2**(k s) q_s == q`` exactly.

    Raises
    ------
    ValueError
        Negative or non-integer ``q``, or ``q`` too large for ``n_slices`` slices.
    """
    k = positive_int("k", k)
    n_slices = positive_int("n_slices", n_slices)
    if k * n_slices > 62:
        raise ValueError(f"k, n_slices: k * n_slices must be <= 62 bits, got {k * n_slices}")
    arr = np.asarray(q)
    if arr.dtype.kind not in "iu":
        f = as_float_array("q", arr)
        if np.any(f != np.round(f)):
            raise ValueError("q: expected integer weight magnitudes")
        arr = f.astype(np.int64)
    arr = arr.astype(np.int64)
    if np.any(arr < 0):
        raise ValueError(f"q: expected non-negative magnitudes, got min {arr.min()}")
    if np.any(arr >= (1 << (k * n_slices))):
        raise ValueError(f"q: max {arr.max()} needs more than n_slices={n_slices} slices of "
                         f"k={k} bits (limit {(1 << (k * n_slices)) - 1})")
    shifts = (k * np.arange(n_slices, dtype=np.int64)).reshape((n_slices,) + (1,) * arr.ndim)
    return (arr[None] >> shifts) & ((1 << k) - 1)


def combine_slices(y_slices: ArrayLike, k: int) -> FloatArray:
    """Shift-and-add ``sum_s 2**(k s) y_s`` over the leading slice axis (LSB first).

    Parameters
    ----------
    y_slices : array_like of shape (n_slices, ...)
        Per-slice results (digits, or products with the digits).
    k : int
        Bits per device.
    """
    y = as_float_array("y_slices", y_slices)
    return np.tensordot(slice_shifts(k, y.shape[0]), y, axes=1)


def slice_to_conductance(digits: ArrayLike, k: int, g_min: float, g_max: float) -> FloatArray:
    """Device levels ``g_min + q_s (g_max - g_min) / (2**k - 1)`` [S] of slice digits ``q_s``."""
    k = positive_int("k", k)
    d = as_float_array("digits", digits)
    lo = float(as_float_array("g_min", g_min, ndim=0, positive=True))
    hi = float(as_float_array("g_max", g_max, ndim=0, positive=True))
    if not lo < hi:
        raise ValueError(f"g_min: must be < g_max, got {lo:g} >= {hi:g}")
    if np.any((d < 0) | (d > (1 << k) - 1)):
        raise ValueError(f"digits: must be in [0, {(1 << k) - 1}] for k={k}")
    return lo + d * (hi - lo) / ((1 << k) - 1)


# ---------------------------------------------------------------------- tiling
@dataclass(frozen=True)
class TileBlock:
    """One crossbar-sized block of a layer matrix.

    Attributes
    ----------
    tile_row, tile_col : int
        Block index in the tile grid.
    rows, cols : slice
        Rows / columns of the layer matrix held by the block (the last blocks may be partial;
        the crossbar's remaining rows / columns are zero padding).
    """

    tile_row: int
    tile_col: int
    rows: slice
    cols: slice


def tile_grid(n_in: int, n_out: int, n_rows: int, n_cols: int) -> tuple[int, int]:
    """Number of crossbars ``(ceil(n_in / n_rows), ceil(n_out / n_cols))`` for one matrix."""
    n_in = positive_int("n_in", n_in)
    n_out = positive_int("n_out", n_out)
    n_rows = positive_int("n_rows", n_rows)
    n_cols = positive_int("n_cols", n_cols)
    return -(-n_in // n_rows), -(-n_out // n_cols)


def tile_slices(n_in: int, n_out: int, n_rows: int, n_cols: int) -> list[TileBlock]:
    """Blocks of an ``(n_in, n_out)`` matrix on ``n_rows x n_cols`` crossbars, row-major.

    Partial sums of blocks in the same tile column are added digitally:
    ``y[:, b.cols] += x[:, b.rows] @ W[b.rows, b.cols]``.
    """
    n_tr, n_tc = tile_grid(n_in, n_out, n_rows, n_cols)
    return [TileBlock(r, c, slice(r * n_rows, min((r + 1) * n_rows, n_in)),
                      slice(c * n_cols, min((c + 1) * n_cols, n_out)))
            for r in range(n_tr) for c in range(n_tc)]


def split_tiles(w: ArrayLike, n_rows: int, n_cols: int, fill: float = 0.0) -> FloatArray:
    """Cut a matrix into zero-padded crossbar blocks.

    Parameters
    ----------
    w : array_like of shape (n_in, n_out)
        Layer matrix (weights or conductances).
    n_rows, n_cols : int
        Crossbar size.
    fill : float
        Padding value (0 for weights; use ``g_min`` when padding conductances).

    Returns
    -------
    ndarray of shape (n_tile_rows, n_tile_cols, n_rows, n_cols)
    """
    arr = as_float_array("w", w, ndim=2)
    n_tr, n_tc = tile_grid(arr.shape[0], arr.shape[1], n_rows, n_cols)
    padded = np.full((n_tr * n_rows, n_tc * n_cols), float(fill))
    padded[: arr.shape[0], : arr.shape[1]] = arr
    # (n_tr*n_rows, n_tc*n_cols) -> (n_tr, n_rows, n_tc, n_cols) -> (n_tr, n_tc, n_rows, n_cols)
    return np.ascontiguousarray(padded.reshape(n_tr, n_rows, n_tc, n_cols).transpose(0, 2, 1, 3))


def assemble_tiles(blocks: ArrayLike, n_in: int, n_out: int) -> FloatArray:
    """Inverse of :func:`split_tiles`: the ``(n_in, n_out)`` matrix without the padding."""
    b = as_float_array("blocks", blocks, ndim=4)
    n_tr, n_tc, n_rows, n_cols = b.shape
    if tile_grid(n_in, n_out, n_rows, n_cols) != (n_tr, n_tc):
        raise ValueError(f"blocks: shape {b.shape} does not tile an ({n_in}, {n_out}) matrix")
    # (n_tr, n_tc, n_rows, n_cols) -> (n_tr, n_rows, n_tc, n_cols) -> (n_tr*n_rows, n_tc*n_cols)
    full = b.transpose(0, 2, 1, 3).reshape(n_tr * n_rows, n_tc * n_cols)
    return np.ascontiguousarray(full[:n_in, :n_out])
