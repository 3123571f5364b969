"""The direct solver that keeps its elimination factors, for the exact circuit gradient.

:func:`factorize` computes the same exact ``g_eff`` as :func:`xbarsim.hardware.schur.g_eff`
(same plan, same sign-preserving nested dissection; the two agree to round-off, about 1e-15
relative, tested) and keeps every elimination's factors in a :class:`SchurFactors`.
:mod:`xbarsim.hardware.adjoint` back-substitutes through them to obtain the node voltages of
any drive, hence ``d g_eff / d g`` contracted with the gradient of the loss (aware training).

It runs the kernels of :mod:`xbarsim.kernels.schur_factored`: one array at a time with full
box maps, the layout back-substitution walks. :func:`xbarsim.hardware.schur.g_eff` (arrays
batched, strict lower triangles, BLAS accumulated in place) is the fast path whenever the
factors are not needed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from xbarsim.hardware.circuit import Parasitics
from xbarsim.hardware.schur import SchurPlan, conductances, plan
from xbarsim.kernels import schur as fast_kernels
from xbarsim.kernels import schur_factored as kernels

__all__ = ["CHUNK", "PANEL", "SchurFactors", "factorize", "level_factor_layout",
           "step_factor_starts"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: Pivots per panel of the blocked elimination in the box merges.
PANEL = 32

#: Boxes of the equal-box levels processed together (kept in cache).
CHUNK = 32


@dataclass
class SchurFactors:
    """The elimination factors of one direct solve, kept for back-substitution.

    Produced by :func:`factorize`; :mod:`xbarsim.hardware.adjoint` turns them into the node
    voltages of any drive (every internal node of the network is a weighted average of the
    nodes of the merge that eliminated it).

    Attributes
    ----------
    plan : SchurPlan
    g : (n_rows, n_cols) float64 — the conductances factorized [S] (a reference, not a copy).
    g_eff : (n_rows, n_cols) float64 — the effective conductance [S].
    g_row, g_col : float — wire conductances [S] (zero resistances replaced, see
        :mod:`xbarsim.hardware.schur`).
    g_source : (n_rows,) float64, g_sense : (n_cols,) float64 — terminal conductances [S].
    level_factors : list (per part) of flat float64 arrays — every equal-box level's factor
        ``(p + q, p, n_parents)`` (see
        :func:`~xbarsim.kernels.schur_factored.merge_level_factored`) at the offsets of
        :func:`level_factor_layout`.
    step_factor : (size,) float64, step_factor_start : (n_steps,) int64 — each box merge's
        factor (see :func:`~xbarsim.kernels.schur_factored.merge_boxes_factored`).
    """

    plan: SchurPlan
    g: FloatArray
    g_eff: FloatArray
    g_row: float
    g_col: float
    g_source: FloatArray
    g_sense: FloatArray
    level_factors: list[FloatArray]
    step_factor: FloatArray
    step_factor_start: IntArray

    @property
    def nbytes(self) -> int:
        """Memory held by the factors [bytes]."""
        return int(self.step_factor.nbytes + sum(f.nbytes for f in self.level_factors))


def step_factor_starts(pl: SchurPlan) -> tuple[IntArray, int]:
    """Offsets of each box merge's factor (``p x (p + q)``) in one flat array, and its size."""
    steps = pl.steps
    sizes = steps[:, 6] * (steps[:, 6] + steps[:, 7:10].sum(axis=1))
    start = np.zeros(len(sizes), dtype=np.int64)
    if len(sizes):
        start[1:] = np.cumsum(sizes)[:-1]
    return start, int(sizes.sum())


def level_factor_layout(pl: SchurPlan, n_cells: int) -> IntArray:
    """Layout of a part's equal-box level factors in one flat array.

    Returns (n_levels, 5) int64: per level (bottom-up) the offset of its factor
    ``(p + q, p, n_parents)``, the child slots ``m``, ``p``, ``q`` and ``n_parents``; the
    flat size is ``offset + (p + q) * p * n_parents`` of the last row.
    """
    meta = np.zeros((len(pl.levels), 5), dtype=np.int64)
    offset = 0
    n_children = n_cells
    for k, (pos_a, _pos_b, p, q) in enumerate(pl.levels):
        n_par = n_children // 2
        meta[k] = (offset, pos_a.size, p, q, n_par)
        offset += (p + q) * p * n_par
        n_children = n_par
    return meta


def factorize(g: FloatArray, parasitics: Parasitics, *, arena: FloatArray | None = None,
              run_parallel: Callable[[list[Callable[[], None]]], None] | None = None,
              box: int | None = None, reuse: SchurFactors | None = None) -> SchurFactors:
    """Exact ``g_eff`` of one array with the elimination factors kept (for back-substitution).

    Parameters
    ----------
    g : ndarray of shape (n_rows, n_cols)
        Device conductances [S], finite, >= 0 and not all zero.
    parasitics : Parasitics
        Terminal and wire resistances of the same shape.
    arena : ndarray of shape (plan.arena_size,), optional
        Work memory (default: allocated).
    run_parallel : callable, optional
        Runs a list of independent no-argument tasks (the root's two subtrees), for example in
        threads; the result is the same bit for bit.
    box : int, optional
        Edge of the equal boxes (a power of two); default
        :func:`xbarsim.hardware.schur.box_size`.
    reuse : SchurFactors, optional
        Earlier factors of the same plan whose memory may be overwritten (saves allocating and
        faulting in that memory at every step); ``reuse`` must not be used afterwards.

    Returns
    -------
    SchurFactors
        ``g_eff`` agrees with :func:`xbarsim.hardware.schur.g_eff` to round-off. The factors
        cost about ``8 * (25 n_rows n_cols + sum_steps p (p + q))`` bytes (e.g. 0.23 GB for
        784 x 500).

    Raises
    ------
    ValueError
        All conductances are zero (nothing to factorize).
    """
    n_rows, n_cols = g.shape
    g_max = float(g.max())
    if g_max == 0.0:
        raise ValueError("g: all conductances are 0; nothing to factorize")
    pl = plan(n_rows, n_cols, box)
    g_rows, g_cols, g_sources, g_senses = conductances(g_max, parasitics, n_rows * n_cols)
    g_row, g_col = float(g_rows[0]), float(g_cols[0])
    g_source, g_sense = np.ascontiguousarray(g_sources[0]), np.ascontiguousarray(g_senses[0])
    arena = arena.reshape(-1) if arena is not None else None
    if arena is None or arena.size < pl.arena_size:
        arena = np.empty(pl.arena_size)
    steps, pos = pl.steps, pl.positions
    if reuse is not None and reuse.plan is not pl:
        reuse = None
    level_meta: list[IntArray] = []
    level_factors: list[FloatArray] = []
    for k_part, part in enumerate(pl.parts):
        meta = level_factor_layout(pl, part.cell_row.size)
        level_meta.append(meta)
        size = (int(meta[-1, 0] + (meta[-1, 2] + meta[-1, 3]) * meta[-1, 2] * meta[-1, 4])
                if len(meta) else 0)
        level_factors.append(reuse.level_factors[k_part] if reuse is not None
                             else np.empty(size))
    factor_start, factor_size = step_factor_starts(pl)
    step_factor = reuse.step_factor if reuse is not None else np.empty(factor_size)

    def run_part(k_part: int) -> None:
        """Cells -> equal boxes -> the part's merged map, written into the arena."""
        part = pl.parts[k_part]
        # the fast solver's cell maps (strict lower triangles, one array) made symmetric: the
        # factored kernels read full maps
        maps = fast_kernels.leaf_maps(g[None], g_rows[:1], g_cols[:1], g_sources[:1],
                                      g_senses[:1], part.cell_row, part.cell_col)
        maps = maps + maps.transpose(1, 0, 2)
        for k, (pos_a, pos_b, p, q) in enumerate(pl.levels):
            f_off, _, _, _, n_par = level_meta[k_part][k]
            factor = level_factors[k_part][f_off:f_off + (p + q) * p * n_par].reshape(
                p + q, p, n_par)
            maps = kernels.merge_level_factored(maps, pos_a, pos_b, p, q, CHUNK,
                                                k == len(pl.levels) - 1, factor)
        if not pl.levels:
            maps = np.ascontiguousarray(maps.transpose(2, 0, 1))
        kernels.gather_boxes(maps, part.keep, part.keep_start, arena, part.box_offset)
        kernels.merge_boxes_factored(arena, steps, pos, part.first_step, part.last_step, PANEL,
                                     step_factor, factor_start)

    tasks = [functools.partial(run_part, k) for k in range(len(pl.parts))]
    if run_parallel is None or len(tasks) == 1:
        for task in tasks:
            task()
    else:
        run_parallel(tasks)
    kernels.merge_boxes_factored(arena, steps, pos, pl.parts[-1].last_step, pl.n_steps, PANEL,
                                 step_factor, factor_start)
    d = pl.root_size
    root = arena[pl.root_offset:pl.root_offset + d * d].reshape(d, d)
    out = -root[np.ix_(pl.source_index, pl.ground_index)]
    return SchurFactors(plan=pl, g=g, g_eff=out, g_row=g_row, g_col=g_col,
                        g_source=g_source, g_sense=g_sense, level_factors=level_factors,
                        step_factor=step_factor, step_factor_start=factor_start)
