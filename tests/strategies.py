"""Hypothesis strategies for crossbar circuits (SI units throughout).

* shapes: ``1 <= n_rows, n_cols <= MAX_SIDE`` (non-square included);
* conductances: ``g`` in ``[G_MIN, G_MAX]`` = [1 uS, 1 mS];
* drives: ``v`` in ``[-V_MAX, V_MAX]`` = [-1, 1] V (or ``[0, 1]`` V for monotonicity tests),
  each exactly 0 or with ``|v| >= V_TINY`` = 1 nV;
* parasitics: each resistance is either exactly 0 (drawn explicitly, often) or in
  ``[R_MIN, R_MAX]`` = [0.1, 300] Ohm. Tiny positive resistances (< 0.1 Ohm) are excluded on
  purpose: with g >= 1 uS they make ``Y`` ill-conditioned beyond the tolerances of the
  nodal-vs-reference tests (and ngspice clamps resistances below 1 mOhm).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

MAX_SIDE = 12
G_MIN, G_MAX = 1e-6, 1e-3
V_MAX = 1.0
V_TINY = 1e-9
R_MIN, R_MAX = 0.1, 300.0


@dataclass(frozen=True)
class Circuit:
    """One drawn crossbar: conductances, parasitics (per-line vectors expanded) and drives."""

    g: np.ndarray          # (n_rows, n_cols) [S]
    r_source: np.ndarray   # (n_rows,) [Ohm]
    r_sense: np.ndarray    # (n_cols,) [Ohm]
    r_row: float           # [Ohm]
    r_col: float           # [Ohm]
    v: np.ndarray          # (batch, n_rows) [V]

    @property
    def parasitics(self) -> dict:
        """Keyword arguments for the circuit functions."""
        return dict(r_source=self.r_source, r_sense=self.r_sense, r_row=self.r_row,
                    r_col=self.r_col)


def _float(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False, allow_subnormal=False)


def resistance(max_value: float = R_MAX) -> st.SearchStrategy[float]:
    """A parasitic resistance [Ohm]: exactly 0 about a third of the time, else in [R_MIN, max]."""
    return st.one_of(st.just(0.0), _float(R_MIN, max_value), _float(R_MIN, max_value))


def shapes(max_side: int = MAX_SIDE, min_side: int = 1) -> st.SearchStrategy[tuple[int, int]]:
    """(n_rows, n_cols), independent sides (mostly non-square)."""
    side = st.integers(min_side, max_side)
    return st.tuples(side, side)


def conductances(shape: tuple[int, int]) -> st.SearchStrategy[np.ndarray]:
    """g of the given shape in [G_MIN, G_MAX] S."""
    return hnp.arrays(np.float64, shape, elements=_float(G_MIN, G_MAX))


def voltage(nonneg: bool = False) -> st.SearchStrategy[float]:
    """A drive voltage [V]: exactly 0, or V_TINY <= |v| <= V_MAX (no sub-nanovolt drives, whose
    currents would approach the float64 underflow range)."""
    mag = _float(V_TINY, V_MAX)
    if nonneg:
        return st.one_of(st.just(0.0), mag)
    return st.one_of(st.just(0.0), mag, mag.map(lambda x: -x))


def drives(n_rows: int, batch: int = 2, nonneg: bool = False) -> st.SearchStrategy[np.ndarray]:
    """v of shape (batch, n_rows) in [-V_MAX, V_MAX] V (or [0, V_MAX] when ``nonneg``)."""
    return hnp.arrays(np.float64, (batch, n_rows), elements=voltage(nonneg))


def per_line(n: int) -> st.SearchStrategy[np.ndarray]:
    """A terminal resistance [Ohm]: all zero, one shared value or one value per line."""
    return st.one_of(
        resistance().map(lambda r: np.full(n, r)),
        st.lists(resistance(), min_size=n, max_size=n).map(np.array),
    )


@st.composite
def circuits(draw, max_side: int = MAX_SIDE, min_side: int = 1, batch: int = 2,
             nonneg: bool = False, zero: tuple[bool, bool, bool, bool] | None = None) -> Circuit:
    """A random crossbar with parasitics and drives.

    Parameters
    ----------
    zero : (source, sense, row, col) flags, optional
        Force the corresponding parasitic to exactly 0 (True) or to be > 0 (False); None draws
        them freely.
    """
    n_rows, n_cols = draw(shapes(max_side, min_side))
    g = draw(conductances((n_rows, n_cols)))
    v = draw(drives(n_rows, batch, nonneg))
    if zero is None:
        r_source = draw(per_line(n_rows))
        r_sense = draw(per_line(n_cols))
        r_row = draw(resistance())
        r_col = draw(resistance())
    else:
        pos = _float(R_MIN, R_MAX)
        r_source = (np.zeros(n_rows) if zero[0]
                    else draw(hnp.arrays(np.float64, n_rows, elements=pos)))
        r_sense = (np.zeros(n_cols) if zero[1]
                   else draw(hnp.arrays(np.float64, n_cols, elements=pos)))
        r_row = 0.0 if zero[2] else draw(pos)
        r_col = 0.0 if zero[3] else draw(pos)
    return Circuit(g=g, r_source=r_source, r_sense=r_sense, r_row=float(r_row),
                   r_col=float(r_col), v=v)
