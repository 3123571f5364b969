"""Golden nodal solver of one crossbar and the public circuit-core API.

The array is a linear resistive network, so its sense currents are exactly ``i = v @ g_eff``
for one effective-conductance matrix ``g_eff`` that depends only on ``g`` and the parasitics.
:func:`effective_conductance` computes it by one of several methods; :func:`sense_currents` and
:func:`node_voltages` solve the nodal system directly (sparse LU with a nested-dissection
ordering, factorized once, many right-hand sides, refined on a double-double Kirchhoff
residual to float64 rounding) and are the reference every fast path is tested against.

Conductances must be 0 or at least :data:`G_FLOOR` (every method); the nodal solve also needs
``max(g)`` times the series resistance below :data:`NODAL_MAX_COUPLING`. docs/circuit.md
explains both limits and the measured accuracy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numpy.typing import ArrayLike, NDArray

from xbarsim.checks import as_float_array, per_line, positive_int, resistance
from xbarsim.hardware.parallel import default_threads, shared_pool, splits
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
        n_rows = positive_int("n_rows", n_rows)
        n_cols = positive_int("n_cols", n_cols)
        return cls(r_source=per_line("r_source", r_source, n_rows),
                   r_sense=per_line("r_sense", r_sense, n_cols),
                   r_row=resistance("r_row", r_row),
                   r_col=resistance("r_col", r_col))

    @property
    def is_ideal(self) -> bool:
        """True when every parasitic is zero (then ``g_eff == g``)."""
        return (self.r_row == 0.0 and self.r_col == 0.0 and not self.r_source.any()
                and not self.r_sense.any())

    def series_resistance(self) -> float:
        """Largest resistance in series with one device [Ohm].

        The worst device's driver, the row wire up to it, the column wire down from it and its
        sense resistance: ``max(r_source) + (n_cols - 1) r_row + (n_rows - 1) r_col +
        max(r_sense)``. ``g * series_resistance()`` is the coupling that decides whether the
        nodal solve is meaningful (:data:`NODAL_MAX_COUPLING`).
        """
        n_rows, n_cols = self.r_source.size, self.r_sense.size
        return float(self.r_source.max() + (n_cols - 1) * self.r_row
                     + (n_rows - 1) * self.r_col + self.r_sense.max())

    def flipped(self) -> Parasitics:
        """Parasitics of the flipped circuit used for the backward direction (see ``flip``)."""
        return Parasitics(r_source=self.r_sense[::-1].copy(), r_sense=self.r_source[::-1].copy(),
                          r_row=self.r_col, r_col=self.r_row)


G_FLOOR = float(np.sqrt(np.finfo(np.float64).smallest_normal))
"""Smallest non-zero conductance accepted [S], about 1.5e-154: the square root of the smallest
normal float64, so that a product of two conductances (the structured solvers form them) is
still a normal number. Below it the FCM solver's currents underflow to 0 (measured: exact at
1e-160 S, 0 at 1e-200 S)."""

NODAL_MAX_COUPLING = 1.0e12
"""Largest ``max(g) * series resistance`` (:meth:`Parasitics.series_resistance`) for which the
nodal solve is accepted. Beyond it the devices are short circuits next to the wires, the nodal
matrix is singular to float64 and no refinement recovers the currents. Measured against the
FCM solver (which stays exact there) for 16 x 16 and 64 x 64 tiles with six sets of
parasitics: agreement to 1e-15 up to a coupling of 5e12, errors of 1e-11 to 1 from 1e14."""


def check_conductance(g: ArrayLike) -> FloatArray:
    """Validate a conductance matrix: 2-D, non-empty, finite, 0 or >= :data:`G_FLOOR` [S].

    Raises
    ------
    ValueError
        Naming the first offending entry and the accepted range.
    """
    arr = as_float_array("g", g, ndim=2, nonneg=True)
    if float(arr.min()) < G_FLOOR:          # zeros (common) or tiny values (refused)
        tiny = (arr > 0.0) & (arr < G_FLOOR)
        if tiny.any():
            index = tuple(int(k) for k in np.argwhere(tiny)[0])
            raise ValueError(
                f"g: a conductance must be 0 (device off) or >= {G_FLOOR:.3g} S, got "
                f"{arr[index]:.3g} S at index {index}. Smaller values underflow in the "
                f"solvers' products of two conductances (float64's smallest normal number "
                f"is {np.finfo(np.float64).smallest_normal:.3g}); check the units, or use 0")
    return arr


class NodalRangeError(ValueError):
    """Conductances too large for the nodal solve in float64 (:func:`check_nodal_range`)."""


def check_nodal_range(g: FloatArray, parasitics: Parasitics) -> None:
    """Refuse conductances the nodal solve cannot resolve in float64.

    Raises
    ------
    NodalRangeError
        A ValueError: ``max(g) * parasitics.series_resistance()`` exceeds
        :data:`NODAL_MAX_COUPLING`;
        the message names both factors and suggests the FCM solver, which is exact there.
    """
    r_series = parasitics.series_resistance()
    g_max = float(g.max())
    coupling = g_max * r_series
    if coupling > NODAL_MAX_COUPLING:
        raise NodalRangeError(
            f"g: the largest conductance {g_max:.3g} S times the largest resistance in series "
            f"with a device ({r_series:.3g} Ohm) is {coupling:.3g}, beyond "
            f"{NODAL_MAX_COUPLING:.0e} where the nodal solve is meaningful in float64 (the "
            f"devices are short circuits next to the wires). Check the units of g, or use "
            f"method 'fcm', which stays exact for any coupling")


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


#: Cells per leaf block of the nested-dissection ordering. Measured at 128 x 128 (TxSim
#: devices): 16 cells gave the fewest factor entries (1.28 M, against 1.74 M for 64 cells and
#: 2.90 M for 256) and the fastest solves (1.0-1.2 s for 128 right-hand sides in blocks of 16,
#: against 1.7-2.1 s and 2.5-3.0 s).
ND_LEAF_CELLS = 16

#: Largest number of refinement steps (two are typical: the first correction is ~1e-13 of
#: the solution, the second at the rounding level of float64).
MAX_REFINEMENT_STEPS = 10

#: Bytes of work memory per solve block (several right-hand sides solved together): the block
#: holds four arrays of ``8 * n_unknown * k`` bytes.
BLOCK_BYTES = 256 << 20

#: Largest number of right-hand sides per solve block.
MAX_BLOCK = 32

_EPS = float(np.finfo(np.float64).eps)
#: Voltages below this [V] count as 0 when the size of a refinement step is measured.
_TINY_VOLTAGE = float(np.finfo(np.float64).tiny) / _EPS


def nested_dissection(u_label: NDArray[np.int64], w_label: NDArray[np.int64],
                      leaf_cells: int = ND_LEAF_CELLS) -> NDArray[np.int64]:
    """Fill-reducing elimination order of the crossbar's unknown nodes (nested dissection).

    The row nodes ``U[i, :]`` of the tile form horizontal chains and the column nodes
    ``W[:, j]`` vertical ones, joined cell by cell through the devices. Removing the row nodes
    of one column ``j`` cuts every row wire there and leaves the column nodes ``W[:, j]`` as a
    chain of their own, so ``U[:, j]`` separates the left and right halves with only
    ``n_rows`` nodes (likewise ``W[i, :]`` the upper and lower halves). Halves are split along
    their longer side until they hold at most ``leaf_cells`` cells; each block is numbered
    before its separator, as in George's nested dissection of a grid. Needs ``r_row > 0`` and
    ``r_col > 0`` (otherwise a line is one node and the graph is not a grid).

    Parameters
    ----------
    u_label, w_label : ndarray of shape (n_rows, n_cols), int64
        Node labels (:func:`xbarsim.kernels.nodal.label_nodes`); negative labels (nodes merged
        with a source or a ground) are left out.
    leaf_cells : int
        Largest block numbered directly (row by row).

    Returns
    -------
    ndarray of shape (n_unknown,), int64
        ``order[k]`` is the label eliminated k-th.
    """
    pieces: list[NDArray[np.int64]] = []
    stack: list[tuple[int, int, int, int, int]] = [(0, u_label.shape[0], 0, u_label.shape[1],
                                                    0)]
    # iterative post-order: (i0, i1, j0, j1, state); state 1 emits the separator
    while stack:
        i0, i1, j0, j1, state = stack.pop()
        h, w = i1 - i0, j1 - j0
        if h <= 0 or w <= 0:
            continue
        if state == 0 and h * w <= leaf_cells:
            pieces.append(np.stack([u_label[i0:i1, j0:j1], w_label[i0:i1, j0:j1]],
                                   axis=-1).ravel())
            continue
        if w >= h:
            jm = (j0 + j1) // 2
            if state == 0:
                stack += [(i0, i1, j0, j1, 1), (i0, i1, jm + 1, j1, 0), (i0, i1, j0, jm, 0)]
            else:    # the left chain of column nodes, then the separating row nodes
                pieces += [w_label[i0:i1, jm], u_label[i0:i1, jm]]
        else:
            im = (i0 + i1) // 2
            if state == 0:
                stack += [(i0, i1, j0, j1, 1), (im + 1, i1, j0, j1, 0), (i0, im, j0, j1, 0)]
            else:
                pieces += [u_label[im, j0:j1], w_label[im, j0:j1]]
    order = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
    return order[order >= 0]


@dataclass(frozen=True)
class SolveCost:
    """Estimated cost of a solve (see :func:`nodal_cost`).

    Attributes
    ----------
    seconds : float
        Wall time [s].
    bytes : int
        Peak memory [B].
    """

    seconds: float
    bytes: int


#: Factor entries per cell and per ``log2(cells)`` of the nested-dissection ordering, fitted to
#: 4.2e5 .. 1.3e8 entries at 64 x 64 .. 1024 x 1024 (within 20 % of every measurement).
_FILL_PER_CELL_LOG = 6.2
#: Factorization time per factor entry [s], and time per factor entry and right-hand side of
#: a refined solve (three triangular solves and two Kirchhoff passes, two threads) [s]:
#: 320-460 ns and 8.3-9.2 ns measured at 256 x 256 and 512 x 512 on the shared 2-core
#: machine under load (load average 13); an idle machine is faster.
_FACTOR_SECONDS_PER_ENTRY = 4.0e-7
_SOLVE_SECONDS_PER_ENTRY_RHS = 8.0e-9
#: Peak bytes per factor entry during the factorization (SuperLU's storage and the copies
#: taken from it), measured 49-68 B.
_BYTES_PER_ENTRY = 60


def factor_entries(n_rows: int, n_cols: int) -> float:
    """Estimated entries of the triangular factors of an ``n_rows x n_cols`` tile's ``Y``.

    ``6.2 * cells * log2(cells)``: the fill of nested dissection on a grid, fitted to
    64 x 64 .. 1024 x 1024 (an overestimate by up to 20 % at 64 x 64 and 2x at 32 x 32).
    """
    cells = max(1, n_rows * n_cols)
    return _FILL_PER_CELL_LOG * cells * max(1.0, float(np.log2(cells)))


def nodal_cost(n_rows: int, n_cols: int, n_rhs: int) -> SolveCost:
    """Estimate time and memory of a :class:`NodalSystem` and ``n_rhs`` refined solves.

    ``g_eff`` takes ``min(n_rows, n_cols)`` right-hand sides; sense currents or node maps one
    per input vector. The estimate is an order of magnitude for deciding whether to run (the
    fill of the factors is fitted within 20 %, the speed depends on the machine and its load).

    Parameters
    ----------
    n_rows, n_cols : int
        Tile shape.
    n_rhs : int
        Right-hand sides solved.

    Returns
    -------
    SolveCost
    """
    entries = factor_entries(n_rows, n_cols)
    n_unknown = 2 * max(1, n_rows * n_cols)
    block = int(min(MAX_BLOCK, max(1, BLOCK_BYTES // (32 * n_unknown)), max(n_rhs, 1)))
    threads = min(default_threads(), max(1, -(-n_rhs // block)))
    seconds = entries * (_FACTOR_SECONDS_PER_ENTRY + n_rhs * _SOLVE_SECONDS_PER_ENTRY_RHS)
    memory = _BYTES_PER_ENTRY * entries + 4 * 8 * n_unknown * block * threads
    return SolveCost(seconds=float(seconds), bytes=int(memory))


class NodalSystem:
    """The assembled and factorized nodal system of one crossbar (golden reference).

    Parameters
    ----------
    g : ndarray of shape (n_rows, n_cols)
        Device conductances [S].
    parasitics : Parasitics
        Terminal and wire resistances.

    Raises
    ------
    NodalRangeError
        ``max(g)`` times the series resistance exceeds :data:`NODAL_MAX_COUPLING`.

    Notes
    -----
    Modified nodal analysis: ``Y x = B v`` for unknown node voltages ``x``, sense currents
    ``i = C x + D v`` (see :mod:`xbarsim.kernels.nodal`). ``Y`` is symmetric positive definite.
    It is permuted by nested dissection (:func:`nested_dissection`; SuperLU's minimum degree
    on ``Y + Y^T`` when a wire resistance is 0) and factorized once with SuperLU on its
    diagonal; the triangular solves run in :func:`xbarsim.kernels.nodal.lu_solve`, many
    right-hand sides at a time.

    Every solve is refined iteratively: the Kirchhoff residual of the float64 solution is
    computed in double-double arithmetic from the branch currents
    (:func:`xbarsim.kernels.nodal.kirchhoff`), solved for a correction, and added, until the
    correction changes no voltage by more than the float64 rounding or stops shrinking. The
    sense currents are summed from the branch currents in the same arithmetic. Against an
    independent solution refined in extended precision the currents and ``g_eff`` agree to
    a few units of float64 rounding (docs/circuit.md).

    Attributes
    ----------
    n_unknown : int
        Unknown node voltages.
    factor_nnz : int
        Stored entries of the triangular factors.
    refinement_steps : int
        Most refinement steps any right-hand side needed in the last solve.
    last_correction : float
        Size of the last correction of the last solve, ``max |dx| / |x|``.
    """

    def __init__(self, g: FloatArray, parasitics: Parasitics) -> None:
        check_nodal_range(g, parasitics)
        self.g = g
        self.parasitics = parasitics
        n_rows, n_cols = g.shape
        p = parasitics
        (y_r, y_c, y_v, b_r, b_c, b_v, c_r, c_c, c_v, d, self.u_label, self.w_label,
         n_unknown) = nodal_kernels.assemble(g, p.r_source, p.r_sense, p.r_row, p.r_col)
        self.n_unknown = int(n_unknown)
        self.n_fixed = n_rows + n_cols
        shape_y = (self.n_unknown, self.n_unknown)
        self.y = sp.csc_matrix((y_v, (y_r, y_c)), shape=shape_y)
        self.b = sp.csr_matrix((b_v, (b_r, b_c)), shape=(self.n_unknown, n_rows))
        self.c = sp.csr_matrix((c_v, (c_r, c_c)), shape=(n_cols, self.n_unknown))
        self.d = d
        a, b, cond = nodal_kernels.branches(g, p.r_source, p.r_sense, p.r_row, p.r_col,
                                            self.u_label, self.w_label)
        # the residual kernel sees conductances scaled by a power of two to at most 1 (exact),
        # so its error-free products cannot overflow whatever the units
        self._cond_exp = int(np.frexp(cond.max())[1]) if cond.size else 0
        cond = np.ldexp(cond, -self._cond_exp)
        self._branches = (a, b, cond)
        at_terminal = (a < 0) | (b < 0)          # the only branches that carry B v or i
        self._terminal_branches = (a[at_terminal], b[at_terminal], cond[at_terminal])
        self.refinement_steps = 0
        self.last_correction = 0.0
        self.factor_nnz = 0
        if self.n_unknown:
            self._factorize()

    def _factorize(self) -> None:
        p = self.parasitics
        if p.r_row > 0.0 and p.r_col > 0.0:
            order = nested_dissection(self.u_label, self.w_label)
            y = self.y[order][:, order].tocsc()
            spec = "NATURAL"
        else:
            order = np.arange(self.n_unknown)
            y = self.y
            spec = "MMD_AT_PLUS_A"
        # symmetric positive definite: pivots on the diagonal, symmetric column order
        lu = spla.splu(y, permc_spec=spec, diag_pivot_thresh=0.0,
                       options={"SymmetricMode": True})
        factor = lu.L                                      # unit diagonal, dropped
        self._l = nodal_kernels.split_diagonal(factor.indptr, factor.indices, factor.data)[:3]
        del factor
        factor = lu.U
        *self._u, self._u_diag = nodal_kernels.split_diagonal(factor.indptr, factor.indices,
                                                              factor.data)
        del factor
        self.factor_nnz = int(self._l[1].size + self._u[1].size + self.n_unknown)
        # Pr Y[order][:, order] Pc = L U (scipy's convention): solve with rhs[perm_in] and
        # return z[perm_out] (both composed with the nested-dissection order)
        self._perm_in = np.empty(self.n_unknown, dtype=np.int64)
        self._perm_in[lu.perm_r] = order
        self._perm_out = np.empty(self.n_unknown, dtype=np.int64)
        self._perm_out[order] = lu.perm_c
        del lu

    # ---- solves -----------------------------------------------------------------------------

    def solve(self, rhs: FloatArray) -> FloatArray:
        """Solve ``Y x = rhs`` for rhs of shape (n_unknown, k), without refinement."""
        if self.n_unknown == 0:
            return np.zeros((0, rhs.shape[1]))
        rhs = np.ascontiguousarray(rhs, dtype=np.float64)
        out = np.empty_like(rhs)
        self._lu_solve(rhs, np.empty_like(rhs), out)
        return out

    def _lu_solve(self, rhs: FloatArray, work: FloatArray, out: FloatArray) -> None:
        nodal_kernels.lu_solve(*self._l, *self._u, self._u_diag, self._perm_in, self._perm_out,
                               rhs, work, out)

    def block_size(self) -> int:
        """Right-hand sides solved together (:data:`BLOCK_BYTES` of work memory, at most 32).

        Measured at 256 x 256: 8.8 ms per right-hand side and solve in blocks of 16, 7.7 in
        blocks of 32, 14 in blocks of 8, 33 one at a time.
        """
        return int(min(MAX_BLOCK, max(1, BLOCK_BYTES // (32 * max(self.n_unknown, 1)))))

    def solve_fixed(self, fixed: FloatArray, keep_voltages: bool = False
                    ) -> tuple[FloatArray | None, FloatArray]:
        """Refined solve for given source and ground voltages.

        Parameters
        ----------
        fixed : ndarray of shape (n_rows + n_cols, k)
            Voltages [V] of the row sources, then of the column grounds, for k cases.
        keep_voltages : bool
            Return the unknown node voltages too.

        Returns
        -------
        x : ndarray of shape (n_unknown, k), or None
            Unknown node voltages [V] (when ``keep_voltages``).
        currents : ndarray of shape (n_rows + n_cols, k)
            Current entering each source and each ground from the network [A].
        """
        k = fixed.shape[1]
        currents = np.empty((self.n_fixed, k))
        x_all = np.empty((self.n_unknown, k)) if keep_voltages else None
        step = self.block_size()
        blocks = [(k0, min(k, k0 + step)) for k0 in range(0, k, step)]
        results: list[tuple[int, float]] = []

        def run(k0: int, k1: int) -> None:
            # each case scaled by a power of two to at most 1 V (exact; linear circuit)
            block = fixed[:, k0:k1]
            peak = np.abs(block).max(axis=0)
            exp = np.where(peak > 0, np.frexp(peak)[1], 0)
            x, cur, n_steps, change = self._refine(np.ascontiguousarray(np.ldexp(block, -exp)))
            currents[:, k0:k1] = np.ldexp(cur, exp)
            if x_all is not None:
                x_all[:, k0:k1] = np.ldexp(x, exp)
            results.append((n_steps, change))

        work = 4 * self.factor_nnz * k
        if len(blocks) > 1 and splits(len(blocks), work):
            list(shared_pool().map(lambda blk: run(*blk), blocks))
        else:
            for blk in blocks:
                run(*blk)
        self.refinement_steps = max((r[0] for r in results), default=0)
        self.last_correction = max((r[1] for r in results), default=0.0)
        return x_all, currents

    def _refine(self, fixed: FloatArray) -> tuple[FloatArray, FloatArray, int, float]:
        """Solve one block and refine it (see the class notes).

        Returns ``(x, currents, steps, last correction)``.
        """
        n, k = self.n_unknown, fixed.shape[1]
        x = np.zeros((n, k))
        res = np.empty((n, k))
        res_lo = np.empty((n, k))
        cur = np.empty((self.n_fixed, k))
        cur_lo = np.empty((self.n_fixed, k))
        # at x = 0 only the terminal branches carry current: res = B v
        self._kirchhoff(self._terminal_branches, x, fixed, res, cur, res_lo, cur_lo)
        if n == 0:
            return x, cur, 0, 0.0
        work = res_lo                                      # free between the Kirchhoff passes
        self._lu_solve(res, work, x)
        previous = np.inf
        change = 0.0
        steps = 0
        for steps in range(1, MAX_REFINEMENT_STEPS + 1):     # noqa: B007
            self._kirchhoff(self._branches, x, fixed, res, cur, res_lo, cur_lo)
            self._lu_solve(res, work, res)                  # the correction, in place
            change = nodal_kernels.max_relative(res, x, _TINY_VOLTAGE)
            x += res
            if change <= _EPS or change > previous / 2:
                break
            previous = change
        # the currents into the sources and grounds flow through the terminal branches only
        self._kirchhoff(self._terminal_branches, x, fixed, res, cur, res_lo, cur_lo)
        return x, cur, steps, change

    def _kirchhoff(self, branches: tuple[NDArray[np.int64], NDArray[np.int64], FloatArray],
                   x: FloatArray, fixed: FloatArray, res: FloatArray, cur: FloatArray,
                   res_lo: FloatArray, cur_lo: FloatArray) -> None:
        """Residual and terminal currents [A] (the kernel's, undoing the conductance scale)."""
        nodal_kernels.kirchhoff(*branches, x, fixed, res, cur, res_lo, cur_lo)
        if self._cond_exp:
            np.ldexp(res, self._cond_exp, out=res)
            np.ldexp(cur, self._cond_exp, out=cur)

    def _drive(self, v: FloatArray) -> FloatArray:
        """Fixed-node voltages (n_rows + n_cols, batch) for row drives ``v`` (batch, n_rows)."""
        fixed = np.zeros((self.n_fixed, v.shape[0]))
        fixed[:self.g.shape[0]] = v.T
        return fixed

    def unknowns(self, v: FloatArray) -> FloatArray:
        """Unknown node voltages [V], shape (n_unknown, batch), for drives ``v`` (batch, n_rows)."""
        x, _ = self.solve_fixed(self._drive(v), keep_voltages=True)
        assert x is not None
        return x

    def currents(self, v: FloatArray) -> FloatArray:
        """Sense currents [A], shape (batch, n_cols), for drives ``v`` of shape (batch, n_rows)."""
        _, cur = self.solve_fixed(self._drive(v))
        return cur[self.g.shape[0]:].T.copy()

    def g_eff(self) -> FloatArray:
        """Effective conductance [S], shape (n_rows, n_cols), with ``i = v @ g_eff``.

        Uses ``min(n_rows, n_cols)`` right-hand sides: with fewer columns than rows each column
        is driven at its ground and the currents into the row sources are read, which by
        reciprocity (``Y`` is symmetric) is the same ``g_eff``.
        """
        n_rows, n_cols = self.g.shape
        if n_rows <= n_cols:
            fixed = np.zeros((self.n_fixed, n_rows))
            fixed[np.arange(n_rows), np.arange(n_rows)] = 1.0
            _, cur = self.solve_fixed(fixed)
            return cur[n_rows:].T.copy()
        fixed = np.zeros((self.n_fixed, n_cols))
        fixed[n_rows + np.arange(n_cols), np.arange(n_cols)] = 1.0
        _, cur = self.solve_fixed(fixed)
        return cur[:n_rows].copy()

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

        ``b = B v``; Frobenius norms, ``Y x`` in float64 from the assembled ``Y``. This is the
        scale-free measure of a direct solve (it stays at round-off level when low-resistance
        wires meet weak drives, where ``||b||`` alone would be a misleading denominator).
        """
        rhs = np.asarray(self.b @ v.T)
        x = self.unknowns(v)
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

    Raises
    ------
    ValueError
        Bad shapes or values, naming the argument: among them a conductance between 0 and
        :data:`G_FLOOR`, and for ``"nodal"`` a ``max(g)`` beyond the coupling limit
        (:func:`check_nodal_range`).
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

    Raises
    ------
    ValueError
        As :func:`sense_currents` with ``method="nodal"``.
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
    """A-priori bound on the spectral radius of ``Z D``: its max row sum.

    ``rho <= max_ij (sum_l g[i,l] P_row[j,l] + sum_k P_col[i,k] g[k,j])``; the path expansion
    (AAM) converges iff rho < 1 (docs/circuit.md, 'The device-voltage formulation').
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

    Raises
    ------
    ValueError
        As :func:`sense_currents` (conductance range, and the coupling limit of ``"nodal"``).
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
