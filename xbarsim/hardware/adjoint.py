r"""Exact sensitivity of ``g_eff`` to every device conductance: the adjoint method.

For one crossbar, ``g_eff[i, j]`` is the current into sense node ``j`` per volt on row ``i``.
With ``dX^(i)`` the device-voltage field (row node minus column node of every cell) when row
``i`` is driven with 1 V and every other terminal is at 0 V, and ``dY^(j)`` the field when the
virtual ground of column ``j`` is raised to 1 V behind ``r_sense`` (the *adjoint drive*; every
row source at 0 V), the derivative is (docs/aware.md, 'The exact circuit gradient')::

    d g_eff[i, j] / d g[k, l] = - dX^(i)[k, l] * dY^(j)[k, l]

For a loss ``L`` with ``Gamma = dL/dg_eff`` of rank ``r`` written as ``Gamma = P Q^T``
(``P`` of shape (n_rows, r), ``Q`` of shape (n_cols, r)), linearity collapses the sum over
``(i, j)``::

    dL/dg[k, l] = - sum_{i,j} Gamma_ij dX^(i)_kl dY^(j)_kl = - sum_s dX[P_s]_kl * dY[Q_s]_kl

where ``dX[P_s]`` is the field of the forward drive with row voltages ``P[:, s]`` and
``dY[Q_s]`` that of the adjoint drive with ground voltages ``Q[:, s]``. So the exact gradient
costs ``2 r`` field solves, ``r = min(batch, n_rows, n_cols)`` for a layer
(``Gamma = V^T delta``), and no field is ever stored: :func:`conductance_gradient` undoes the
nested dissection of the direct solver (:func:`xbarsim.hardware.schur_factored.factorize`) from the
terminal voltages down to the cells, a few drives at a time, and accumulates the products
cell by cell.

Cost: back-substitution is ``sum p (p + q)`` flops per drive over the merges (about
``2 (n_rows + n_cols)`` per node), far below the ``35 n^3`` of the factorization itself.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from xbarsim.hardware import schur, schur_factored
from xbarsim.hardware.circuit import Parasitics
from xbarsim.hardware.parallel import POOL_THREAD_PREFIX, default_threads, shared_pool
from xbarsim.kernels import adjoint as kernels
from xbarsim.kernels.blas import one_blas_thread

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

__all__ = ["AdjointPlan", "adjoint_plan", "conductance_gradient", "gradient_from_factors",
           "VOLTS_BUDGET_BYTES"]

#: Memory for the node voltages waiting on the depth-first stack of one part [bytes]; drives
#: are processed in chunks that fit (at least one forward-adjoint pair).
VOLTS_BUDGET_BYTES = 256 << 20


@dataclass(frozen=True)
class AdjointPlan:
    """How to undo the nested dissection of one array shape, part by part.

    Attributes
    ----------
    child_box : (n_steps, 2) int64 — box index (within its part) of each box merge's child A
        and B, or -1 when the child is a merged map.
    root_box : tuple of int — per part, its box index when the part is one box, else -1.
    stack_nodes : tuple of int — per part, the largest number of nodes waiting on the stack.
    level_meta : tuple of (n_levels, 5) int64 — per part,
        :func:`~xbarsim.hardware.schur_factored.level_factor_layout`.
    level_pos : (n_levels, 2, m_max) int64 — ``pos_a``, ``pos_b`` of each equal-box level.
    """

    child_box: IntArray
    root_box: tuple[int, ...]
    stack_nodes: tuple[int, ...]
    level_meta: tuple[IntArray, ...]
    level_pos: IntArray


@functools.lru_cache(maxsize=16)
def adjoint_plan(n_rows: int, n_cols: int, box: int | None = None) -> AdjointPlan:
    """Build (and cache) the back-substitution plan of one array shape.

    Checks that the merge program is the post-order the stack of
    :func:`xbarsim.kernels.adjoint.back_part` relies on.
    """
    pl = schur.plan(n_rows, n_cols, box)
    steps = pl.steps
    child_box = np.full((pl.n_steps, 2), -1, dtype=np.int64)
    root_box, stack_nodes, part_roots = [], [], []
    for part in pl.parts:
        # what each arena offset holds as the program runs: a box (its index) or a merged map
        # (-1); the direct solver reuses the memory of consumed maps, so an offset may hold a
        # box first and a merged map later
        live = {int(o): b for b, o in enumerate(part.box_offset)}
        for s in range(part.first_step, part.last_step):
            for side in range(2):
                held = live.pop(int(steps[s, 2 * side]), None)
                if held is None:
                    raise AssertionError(f"adjoint plan: step {s} reads a map no step wrote")
                child_box[s, side] = held
            live[int(steps[s, 4])] = -1
        if part.last_step == part.first_step:
            root_box.append(0)
            part_roots.append(int(part.box_offset[0]))
            stack_nodes.append(int(part.keep_start[1]))
            continue
        root_box.append(-1)
        top = steps[part.last_step - 1]
        part_roots.append(int(top[4]))
        # simulate the stack: (offset, size) of the maps waiting, the next step's on top
        stack = [(int(top[4]), int(top[7:10].sum()))]
        peak = stack[0][1]
        for s in range(part.last_step - 1, part.first_step - 1, -1):
            off_o, size = stack.pop()
            if off_o != int(steps[s, 4]):
                raise AssertionError("adjoint plan: the merge program is not in post-order")
            for side in range(2):
                if child_box[s, side] < 0:
                    stack.append((int(steps[s, 2 * side]), int(steps[s, 2 * side + 1])))
            peak = max(peak, sum(d for _, d in stack))
        if stack:
            raise AssertionError("adjoint plan: maps left on the stack")
        stack_nodes.append(peak)
    n_root_steps = pl.n_steps - pl.parts[-1].last_step
    if len(pl.parts) == 2 and (n_root_steps != 1 or
                               (int(steps[-1, 0]), int(steps[-1, 2])) != tuple(part_roots)):
        raise AssertionError("adjoint plan: the last merge does not join the two parts")
    m_max = max((lv[0].size for lv in pl.levels), default=1)
    level_pos = np.full((len(pl.levels), 2, m_max), -1, dtype=np.int64)
    for k, (pos_a, pos_b, _p, _q) in enumerate(pl.levels):
        level_pos[k, 0, :pos_a.size] = pos_a
        level_pos[k, 1, :pos_b.size] = pos_b
    meta = tuple(schur_factored.level_factor_layout(pl, part.cell_row.size) for part in pl.parts)
    return AdjointPlan(child_box=child_box, root_box=tuple(root_box),
                       stack_nodes=tuple(stack_nodes), level_meta=meta, level_pos=level_pos)


def on_pool_thread() -> bool:
    """Whether the caller runs on a thread of the shared pool (then it must not wait on it)."""
    return threading.current_thread().name.startswith(POOL_THREAD_PREFIX)


def _check_drives(name: str, drive: FloatArray, n: int) -> FloatArray:
    arr = np.asarray(drive, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ValueError(f"{name}: expected shape ({n}, r), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: drive voltages must be finite")
    return arr


def gradient_from_factors(factors: schur_factored.SchurFactors, p_drive: FloatArray,
                          q_drive: FloatArray, *, n_threads: int | None = None) -> FloatArray:
    """Compute ``-sum_s dX[P_s] * dY[Q_s]`` from the factors of a direct solve (exact ``dL/dg``).

    Parameters
    ----------
    factors : SchurFactors
        From :func:`xbarsim.hardware.schur_factored.factorize` of the conductances ``g``.
    p_drive : ndarray of shape (n_rows, r)
        Forward drives: row source voltages [V] (every ground at 0 V).
    q_drive : ndarray of shape (n_cols, r)
        Adjoint drives: virtual-ground voltages [V] behind ``r_sense`` (every source at 0 V).
    n_threads : int, optional
        Threads (the root's two subtrees and chunks of boxes run in parallel); default
        :func:`~xbarsim.hardware.parallel.default_threads`.

    Returns
    -------
    ndarray of shape (n_rows, n_cols)
        ``sum_{i,j} (P Q^T)_ij d g_eff[i, j] / d g`` [per S of the entries of ``P Q^T``]:
        with ``P Q^T = dL/dg_eff`` this is ``dL/dg``.
    """
    pl = factors.plan
    n_rows, n_cols = pl.n_rows, pl.n_cols
    p_drive = _check_drives("p_drive", p_drive, n_rows)
    q_drive = _check_drives("q_drive", q_drive, n_cols)
    if p_drive.shape[1] != q_drive.shape[1]:
        raise ValueError(f"p_drive, q_drive: expected the same number of drives, got "
                         f"{p_drive.shape[1]} and {q_drive.shape[1]}")
    ap = adjoint_plan(n_rows, n_cols, pl.box)
    r = p_drive.shape[1]
    grad = np.zeros((n_rows, n_cols))
    if r == 0:
        return grad
    threads = n_threads or default_threads()
    per_chunk = max(1, min(r, VOLTS_BUDGET_BYTES // (16 * max(ap.stack_nodes))))
    for s0 in range(0, r, per_chunk):
        s1 = min(r, s0 + per_chunk)
        rc = s1 - s0
        # terminal voltages in the order of the root map: forward drives, then adjoint ones
        terminals = np.zeros((pl.root_size, 2 * rc))
        terminals[pl.source_index, :rc] = p_drive[:, s0:s1]
        terminals[pl.ground_index, rc:] = q_drive[:, s0:s1]
        if len(pl.parts) == 1:
            roots = [terminals]
        else:
            roots = list(kernels.undo_step(factors.step_factor, factors.step_factor_start,
                                           pl.steps, pl.positions, pl.n_steps - 1, terminals))

        def run_part(k: int, roots: list[FloatArray] = roots, rc: int = rc) -> None:
            part = pl.parts[k]
            kernels.back_part(factors.step_factor, factors.step_factor_start, pl.steps,
                              pl.positions, part.first_step, part.last_step, ap.child_box,
                              roots[k], ap.root_box[k], ap.stack_nodes[k], part.keep,
                              part.keep_start, 4 * pl.box, part.box_offset.size,
                              ap.level_meta[k], ap.level_pos, factors.level_factors[k],
                              factors.g, factors.g_row, factors.g_col, factors.g_source,
                              factors.g_sense, part.cell_row, part.cell_col, rc, grad)

        # below the root the products are small: one BLAS thread each (threaded BLAS on small
        # products cost 5-20x on a loaded 2-core machine)
        if threads >= 2 and len(pl.parts) == 2 and not on_pool_thread():
            futures = [shared_pool().submit(one_blas_thread(functools.partial(run_part, k)))
                       for k in range(2)]
            for f in futures:
                f.result()
        else:
            for k in range(len(pl.parts)):
                one_blas_thread(run_part)(k)
    return grad


def conductance_gradient(g: FloatArray, parasitics: Parasitics, p_drive: FloatArray,
                         q_drive: FloatArray, *, n_threads: int | None = None) -> FloatArray:
    """Exact ``dL/dg`` of one crossbar for ``dL/dg_eff = P Q^T`` (factorizes ``g`` first).

    Convenience wrapper of :func:`~xbarsim.hardware.schur_factored.factorize` and
    :func:`gradient_from_factors`; see there for the arguments.
    """
    g = np.ascontiguousarray(g, dtype=np.float64)
    return gradient_from_factors(schur_factored.factorize(g, parasitics), p_drive, q_drive,
                                 n_threads=n_threads)
