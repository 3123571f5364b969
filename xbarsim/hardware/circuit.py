"""Golden nodal solver of one crossbar and the public circuit-core API.

The array is a linear resistive network, so its sense currents are exactly ``i = v @ g_eff``
for one effective-conductance matrix ``g_eff`` that depends only on ``g`` and the parasitics.
:func:`effective_conductance` computes it by one of several methods; :func:`sense_currents` and
:func:`node_voltages` solve the nodal system directly (sparse LU, factorized once, many
right-hand sides) and are the reference every fast path is tested against.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numpy.typing import ArrayLike, NDArray

from xbarsim.checks import as_float_array, per_line, resistance
from xbarsim.kernels import nodal as nodal_kernels

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Parasitics:
    """Parasitic resistances of one crossbar, validated and expanded per line.

    Attributes
    ----------
    r_source : ndarray of shape (n_rows,)
        Driver output resistance of each row [Ohm], >= 0 (0 = ideal driver).
    r_sense : ndarray of shape (n_cols,)
        Sense (virtual-ground input) resistance of each column [Ohm], >= 0 (0 = ideal).
    r_row : float
        Row (word-line) wire resistance per cell segment [Ohm], >= 0.
    r_col : float
        Column (bit-line) wire resistance per cell segment [Ohm], >= 0.
    """

    r_source: FloatArray
    r_sense: FloatArray
    r_row: float
    r_col: float

    @classmethod
    def build(cls, n_rows: int, n_cols: int, *, r_source: ArrayLike = 0.0,
              r_sense: ArrayLike = 0.0, r_row: float = 0.0, r_col: float = 0.0) -> Parasitics:
        """Validate scalars or per-line vectors and expand them to shape (n_rows,) / (n_cols,)."""
        return cls(r_source=per_line("r_source", r_source, n_rows),
                   r_sense=per_line("r_sense", r_sense, n_cols),
                   r_row=resistance("r_row", r_row),
                   r_col=resistance("r_col", r_col))

    @property
    def is_ideal(self) -> bool:
        """True when every parasitic is zero (then ``g_eff == g``)."""
        return (self.r_row == 0.0 and self.r_col == 0.0 and not self.r_source.any()
                and not self.r_sense.any())

    def flipped(self) -> Parasitics:
        """Parasitics of the flipped circuit used for the backward direction (see ``flip``)."""
        return Parasitics(r_source=self.r_sense[::-1].copy(), r_sense=self.r_source[::-1].copy(),
                          r_row=self.r_col, r_col=self.r_row)


def check_conductance(g: ArrayLike) -> FloatArray:
    """Validate a conductance matrix: 2-D, non-empty, finite, >= 0 [S]."""
    return as_float_array("g", g, ndim=2, nonneg=True)


def _check_inputs(g: ArrayLike, v: ArrayLike, name: str = "v", axis_len: int | None = None
                  ) -> tuple[FloatArray, FloatArray, bool]:
    g_arr = check_conductance(g)
    n = g_arr.shape[0] if axis_len is None else axis_len
    v_arr = as_float_array(name, v, ndim=(1, 2))
    if v_arr.shape[-1] != n:
        want = f"({n},) or (batch, {n})"
        raise ValueError(f"{name}: expected shape {want} to match g of shape {g_arr.shape}, "
                         f"got {v_arr.shape}")
    single = v_arr.ndim == 1
    return g_arr, np.atleast_2d(v_arr), single


class NodalSystem:
    """The assembled and factorized nodal system of one crossbar (golden reference).

    Parameters
    ----------
    g : ndarray of shape (n_rows, n_cols)
        Device conductances [S].
    parasitics : Parasitics
        Terminal and wire resistances.

    Notes
    -----
    Modified nodal analysis: ``Y x = B v`` for unknown node voltages ``x``, sense currents
    ``i = C x + D v`` (see :mod:`xbarsim.kernels.nodal`). ``Y`` is symmetric positive definite
    and factorized once with SuperLU; every solve reuses the factorization.
    """

    def __init__(self, g: FloatArray, parasitics: Parasitics) -> None:
        self.g = g
        self.parasitics = parasitics
        n_rows, n_cols = g.shape
        p = parasitics
        (y_r, y_c, y_v, b_r, b_c, b_v, c_r, c_c, c_v, d, self.u_label, self.w_label,
         n_unknown) = nodal_kernels.assemble(g, p.r_source, p.r_sense, p.r_row, p.r_col)
        self.n_unknown = int(n_unknown)
        shape_y = (self.n_unknown, self.n_unknown)
        self.y = sp.csc_matrix((y_v, (y_r, y_c)), shape=shape_y)
        self.b = sp.csr_matrix((b_v, (b_r, b_c)), shape=(self.n_unknown, n_rows))
        self.c = sp.csr_matrix((c_v, (c_r, c_c)), shape=(n_cols, self.n_unknown))
        self.d = d
        self._lu = (spla.splu(self.y, permc_spec="NATURAL") if self.n_unknown else None)

    def solve(self, rhs: FloatArray) -> FloatArray:
        """Solve ``Y x = rhs`` for rhs of shape (n_unknown, k)."""
        if self._lu is None:
            return np.zeros((0, rhs.shape[1]))
        return self._lu.solve(np.asfortranarray(rhs))

    def unknowns(self, v: FloatArray) -> FloatArray:
        """Unknown node voltages [V], shape (n_unknown, batch), for drives ``v`` (batch, n_rows)."""
        return self.solve(np.asarray(self.b @ v.T))

    def currents(self, v: FloatArray) -> FloatArray:
        """Sense currents [A], shape (batch, n_cols), for drives ``v`` of shape (batch, n_rows)."""
        x = self.unknowns(v)
        return np.asarray(self.c @ x).T + v @ self.d.T

    def g_eff(self) -> FloatArray:
        """Effective conductance [S], shape (n_rows, n_cols), with ``i = v @ g_eff``.

        Uses ``min(n_rows, n_cols)`` right-hand sides: ``Y`` is symmetric, so
        ``g_eff = B.T Y^-1 C.T + D.T`` may be solved from either side.
        """
        n_rows, n_cols = self.g.shape
        if self.n_unknown == 0:
            return self.d.T.copy()
        if n_rows <= n_cols:
            x = self.solve(self.b.toarray())                 # (n_unknown, n_rows)
            return np.asarray(self.c @ x).T + self.d.T
        x = self.solve(self.c.T.toarray())                   # (n_unknown, n_cols)
        return np.asarray(self.b.T @ x) + self.d.T

    def node_maps(self, v: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Row- and column-node voltages [V], each of shape (batch, n_rows, n_cols)."""
        x = self.unknowns(v).T                               # (batch, n_unknown)
        n_rows = self.g.shape[0]

        def expand(label: NDArray[np.int64]) -> FloatArray:
            out = np.zeros((v.shape[0], *label.shape))
            known = label >= 0
            out[:, known] = x[:, label[known]]
            src = (label < 0) & (label > -1 - n_rows)        # merged with an ideal source
            out[:, src] = v[:, -1 - label[src]]
            return out                                      # ideal grounds stay at 0 V

        return expand(self.u_label), expand(self.w_label)

    def kcl_residual(self, v: FloatArray) -> float:
        """Normwise backward error ``||Y x - b|| / (||Y|| ||x|| + ||b||)`` for drives ``v``.

        ``b = B v``; Frobenius norms. This is the scale-free measure of a direct solve (it stays
        at round-off level when low-resistance wires meet weak drives, where ``||b||`` alone
        would be a misleading denominator).
        """
        rhs = np.asarray(self.b @ v.T)
        x = self.solve(rhs)
        den = spla.norm(self.y) * np.linalg.norm(x) + np.linalg.norm(rhs)
        return float(np.linalg.norm(self.y @ x - rhs) / den) if den > 0 else 0.0


def _parasitics(g: FloatArray, r_source: ArrayLike, r_sense: ArrayLike, r_row: float,
                r_col: float) -> Parasitics:
    return Parasitics.build(g.shape[0], g.shape[1], r_source=r_source, r_sense=r_sense,
                            r_row=r_row, r_col=r_col)


def sense_currents(g: ArrayLike, v: ArrayLike, *, r_source: ArrayLike = 0.0,
                   r_sense: ArrayLike = 0.0, r_row: float = 0.0, r_col: float = 0.0,
                   method: str = "nodal") -> FloatArray:
    """Column sense currents of one crossbar for row drive voltages.

    Parameters
    ----------
    g : array_like of shape (n_rows, n_cols)
        Device conductances [S], finite and >= 0.
    v : array_like of shape (n_rows,) or (batch, n_rows)
        Ideal source voltages of the rows [V].
    r_source : float or array_like of shape (n_rows,)
        Driver resistance per row [Ohm]; 0 = ideal driver.
    r_sense : float or array_like of shape (n_cols,)
        Sense resistance per column [Ohm]; 0 = ideal virtual ground.
    r_row, r_col : float
        Wire resistance per cell segment of rows / columns [Ohm].
    method : {"nodal", "fcm", "aam", "ideal"}
        ``"nodal"`` solves the nodal system directly; the others go through
        :func:`effective_conductance` and a matrix product.

    Returns
    -------
    ndarray of shape (batch, n_cols), or (n_cols,) for 1-D ``v``
        Currents into the sense nodes [A].
    """
    g_arr, v2, single = _check_inputs(g, v)
    if method == "nodal":
        par = _parasitics(g_arr, r_source, r_sense, r_row, r_col)
        i_out = NodalSystem(g_arr, par).currents(v2)
    else:
        i_out = v2 @ effective_conductance(g_arr, r_source=r_source, r_sense=r_sense,
                                           r_row=r_row, r_col=r_col, method=method)
    return i_out[0] if single else i_out


def node_voltages(g: ArrayLike, v: ArrayLike, *, r_source: ArrayLike = 0.0,
                  r_sense: ArrayLike = 0.0, r_row: float = 0.0, r_col: float = 0.0
                  ) -> tuple[FloatArray, FloatArray]:
    """Row- and column-node voltage maps of one crossbar (for IR-drop studies).

    Returns
    -------
    u, w : ndarray of shape (batch, n_rows, n_cols), or (n_rows, n_cols) for 1-D ``v``
        Voltages [V] of the row nodes (word line side of each device) and of the column nodes
        (bit line side). The IR drop seen by device (i, j) is ``v_i - (u - w)[i, j]``.
    """
    g_arr, v2, single = _check_inputs(g, v)
    par = _parasitics(g_arr, r_source, r_sense, r_row, r_col)
    u, w = NodalSystem(g_arr, par).node_maps(v2)
    return (u[0], w[0]) if single else (u, w)


def flip(g: FloatArray) -> FloatArray:
    """Conductances of the flipped crossbar used for the backward direction.

    Columns become rows: flipped row ``a`` is original column ``n_cols-1-a`` (driven at its
    sense end), flipped column ``b`` is original row ``n_rows-1-b`` (sensed at its driver end).
    Shape (n_cols, n_rows).
    """
    return np.ascontiguousarray(g[::-1, ::-1].T)


def backward_currents(g: ArrayLike, d: ArrayLike, *, r_source: ArrayLike = 0.0,
                      r_sense: ArrayLike = 0.0, r_row: float = 0.0, r_col: float = 0.0
                      ) -> FloatArray:
    """Row currents when the columns are driven and the rows sensed (nodal solve, flipped circuit).

    Columns are driven at their bottom ends through ``r_sense``; rows are sensed at their left
    ends through ``r_source`` into virtual grounds. By reciprocity the result equals
    ``d @ g_eff.T``; this function solves the flipped circuit directly so tests can show it.

    Parameters
    ----------
    d : array_like of shape (n_cols,) or (batch, n_cols)
        Column drive voltages [V].

    Returns
    -------
    ndarray of shape (batch, n_rows), or (n_rows,) for 1-D ``d``
        Currents into the row sense nodes [A].
    """
    g_arr, d2, single = _check_inputs(g, d, name="d", axis_len=check_conductance(g).shape[1])
    par = _parasitics(g_arr, r_source, r_sense, r_row, r_col)
    i_flip = NodalSystem(flip(g_arr), par.flipped()).currents(d2[:, ::-1].copy())
    i_back = i_flip[:, ::-1]
    return i_back[0] if single else i_back


def rho_bound(g: ArrayLike, *, r_source: ArrayLike = 0.0, r_sense: ArrayLike = 0.0,
              r_row: float = 0.0, r_col: float = 0.0) -> float:
    """A-priori bound on the spectral radius of ``Z D`` (MODELS.md §3.3): max row sum.

    ``rho <= max_ij (sum_l g[i,l] P_row[j,l] + sum_k P_col[i,k] g[k,j])``; the path expansion
    (AAM) converges iff rho < 1.
    """
    g_arr = check_conductance(g)
    par = _parasitics(g_arr, r_source, r_sense, r_row, r_col)
    from xbarsim.kernels.fcm import z_apply  # noqa: PLC0415  (kernel import is lazy)

    return float(np.max(z_apply(g_arr, np.ones_like(g_arr), par.r_source, par.r_sense,
                                par.r_row, par.r_col)))


_METHODS = ("nodal", "fcm", "aam", "ideal")  # "interpolated" keeps state: use the solver object


def effective_conductance(g: ArrayLike, *, r_source: ArrayLike = 0.0, r_sense: ArrayLike = 0.0,
                          r_row: float = 0.0, r_col: float = 0.0, method: str = "fcm",
                          **options: Any) -> FloatArray:
    """Effective conductance ``g_eff`` of one crossbar: ``i = v @ g_eff`` for every ``v``.

    Parameters
    ----------
    g : array_like of shape (n_rows, n_cols)
        Device conductances [S], finite and >= 0.
    r_source, r_sense, r_row, r_col
        Parasitic resistances [Ohm], see :func:`sense_currents`.
    method : {"fcm", "nodal", "aam", "ideal"}
        ``"nodal"``: golden sparse LU solve. ``"fcm"``: exact structured solver (direct nested
        dissection by default, exact to round-off; ``algorithm="iterative"`` iterates to
        ``rtol``, default 1e-10). ``"aam"``: path expansion of order ``order`` (default 2).
        ``"ideal"``: ``g`` itself (parasitics ignored).
    **options
        Passed to the method (``rtol``, ``max_iter``, ``order``, ...).

    Returns
    -------
    ndarray of shape (n_rows, n_cols)
        ``g_eff`` [S].
    """
    g_arr = check_conductance(g)
    if method not in _METHODS:
        raise ValueError(f"method: expected one of {', '.join(_METHODS)}, got {method!r}")
    if method == "ideal":
        return g_arr.copy()
    from xbarsim.hardware import solvers  # noqa: PLC0415

    # validated, expanded parasitics kept across calls of the same shape (solvers.py)
    par = solvers.parasitics_for(g_arr.shape, r_source, r_sense, r_row, r_col)
    return solvers.SOLVERS[method](par, **options).g_eff(g_arr)
