"""Kernels of the adjoint (device-sensitivity) computation: back-substitution.

Back-substitution through the nested dissection of :mod:`xbarsim.kernels.schur`. The direct
solver eliminates, at every merge, the nodes two boxes share. With the elimination factor kept
(``merge_level_factored`` / ``merge_boxes_factored``), the voltage of every eliminated node
follows from the voltages of the nodes that were still present::

    x_c = sum_{i > c} w_ci x_i,     w_ci = -t_ci / sum_{i' > c} (-t_ci')  (>= 0, sum <= 1)

(``t_ci`` the entry ``(i, c)`` of the merged map when ``c`` was the pivot; no current is
injected at internal nodes). So, from the terminal voltages of a drive (sources and virtual
grounds), the merges are undone top-down: box merges (:func:`back_steps`), then equal-box
levels and the cells themselves (:func:`back_levels_gradient`). Every step is a weighted
average with non-negative weights: as accurate as the elimination itself.

Drives are processed together as the columns of a voltage matrix; the kernels never form a
full voltage field. :func:`back_levels_gradient` consumes the device voltages of forward and
adjoint drives at once: ``grad[i, j] -= sum_r dv_fwd[r] * dv_adj[r]``.
"""

from __future__ import annotations

import numpy as np

from xbarsim.kernels._jit import jit

#: Pivots per block of the blocked back-substitution in :func:`back_steps`.
BLOCK = 32


@jit
def back_steps(step_factor, factor_start, steps, positions, step_nodes, volts, first, last):
    """Undo box merges ``last - 1`` down to ``first``: node voltages of every child map.

    Parameters
    ----------
    step_factor : (size,) float64 — factors of every box merge (``p x (p + q)`` row-major).
    factor_start : (n_steps,) int64 — their offsets.
    steps, positions : int64 — the merge program of :func:`xbarsim.kernels.schur.merge_boxes`.
    step_nodes : (n_steps, 3) int64 — first row in ``volts`` of child A's, child B's and the
        merged map's nodes (in the order of the maps).
    volts : (n_nodes, n_drives) float64 — node voltages [V]; the merged map of step
        ``last - 1`` must be filled; on return every map of the steps is.

    Notes
    -----
    Per step, with ``W = -t / pivot`` (row-scaled; rows of isolated nodes zero), the shared
    voltages solve ``x_s = W_so x_o + U x_s`` (``U`` the strictly upper part of ``W_ss``):
    one product for the outer part, then blocked back-substitution (a product per block of
    :data:`BLOCK` pivots for the part above it, a short loop inside).
    """
    n_drv = volts.shape[1]
    for s in range(last - 1, first - 1, -1):
        off_a, d_a, off_b, d_b, off_o, pos0, p, n_plain, n_src, n_gnd = steps[s]
        q = n_plain + n_src + n_gnd
        n = p + q
        f0 = factor_start[s]
        t = step_factor[f0:f0 + p * n].reshape(p, n)
        no = step_nodes[s, 2]
        xo = volts[no:no + q]                           # (q, n_drv) outer nodes, known
        shared = np.zeros((p, n_drv))
        if p > 0:
            wt = np.zeros((p, n))
            for c in range(p):
                piv = 0.0
                for i in range(c + 1, n):
                    piv -= t[c, i]
                if piv > 0.0:                           # else isolated: no current, 0 V
                    inv = 1.0 / piv
                    for i in range(c + 1, n):
                        wt[c, i] = -t[c, i] * inv
            shared[:, :] = np.dot(np.ascontiguousarray(wt[:, p:]), np.ascontiguousarray(xo))
            c1 = p
            while c1 > 0:
                c0 = max(0, c1 - BLOCK)
                if c1 < p:
                    shared[c0:c1] += np.dot(np.ascontiguousarray(wt[c0:c1, c1:p]),
                                            shared[c1:p])
                for c in range(c1 - 1, c0 - 1, -1):
                    for i in range(c + 1, c1):
                        wci = wt[c, i]
                        if wci != 0.0:
                            for r in range(n_drv):
                                shared[c, r] += wci * shared[i, r]
                c1 = c0
        for side in range(2):
            d = d_a if side == 0 else d_b
            nc = step_nodes[s, side]
            p0 = pos0 if side == 0 else pos0 + d_a
            for a in range(d):
                ps = positions[p0 + a]
                if ps < p:
                    for r in range(n_drv):
                        volts[nc + a, r] = shared[ps, r]
                else:
                    for r in range(n_drv):
                        volts[nc + a, r] = xo[ps - p, r]


@jit
def box_slots(volts, node_start, keep, keep_start, box0, box1, n_slots):
    """Slot voltages of boxes ``box0 .. box1 - 1`` from their kept nodes' voltages.

    Returns (n_slots, box1 - box0, n_drives) float64; unconnected slots get 0 V (no device or
    wire touches them, so their voltage is never used).
    """
    n_drv = volts.shape[1]
    out = np.zeros((n_slots, box1 - box0, n_drv))
    for b in range(box0, box1):
        k0 = keep_start[b]
        for a in range(keep_start[b + 1] - k0):
            slot = keep[k0 + a]
            row = node_start[b] + a
            for r in range(n_drv):
                out[slot, b - box0, r] = volts[row, r]
    return out


@jit
def back_levels_gradient(top, x0, n_top, level_meta, level_pos, level_factor, g, g_row, g_col,
                         g_source, g_sense, cell_row, cell_col, n_fwd, grad):
    """Undo the equal-box levels of a chunk of boxes down to its cells; accumulate the gradient.

    Parameters
    ----------
    top : (q_top, w, n_drives) float64 — slot voltages of boxes ``x0 .. x0 + w - 1`` of one part
        (drives: ``n_fwd`` forward ones, then as many adjoint ones).
    x0, n_top : int — first box of the chunk, and the part's number of boxes.
    level_meta : (n_levels, 5) int64 — per level (bottom-up): offset of its factor in
        ``level_factor``, child slots ``m``, shared ``p``, outer ``q``, parents ``n_par``.
    level_pos : (n_levels, 2, m_max) int64 — ``pos_a``, ``pos_b`` of each level.
    level_factor : (size,) float64 — every level's factor ``(p + q, p, n_par)``, flattened.
    g, g_row, g_col, g_source, g_sense — as in :func:`xbarsim.kernels.schur.leaf_maps` (the
        conductances of the factorization, zero resistances replaced).
    cell_row, cell_col : (n_cells,) int64 — real cell of each cell of the part (batch order).
    n_fwd : int — forward drives (the first ``n_fwd`` columns; the next ``n_fwd`` are adjoint).
    grad : (n_rows, n_cols) float64 — ``grad[i, j] -= sum_r dv[r] dv[n_fwd + r]`` with ``dv``
        the device voltage (row node minus column node) of cell ``(i, j)``.

    Notes
    -----
    The parents of level ``k`` that descend from boxes ``x0 .. x0 + w - 1`` have global
    indices ``x + m n_top`` (``m < 2**depth``), because parent ``x`` of every level merges
    children ``x`` and ``n_par + x``; locally they are stored as ``m w + (x - x0)``, which
    keeps the same rule (children ``y`` and ``P + y`` of ``P`` local parents).
    """
    n_levels = level_meta.shape[0]
    w = top.shape[1]
    n_drv = top.shape[2]
    n_rows, n_cols = g.shape
    cur = top
    n_local = w
    for k in range(n_levels - 1, -1, -1):
        f_off = level_meta[k, 0]
        m = level_meta[k, 1]
        p = level_meta[k, 2]
        q = level_meta[k, 3]
        n_par = level_meta[k, 4]
        n = p + q
        shared = np.zeros((p, n_local, n_drv))
        wts = np.empty(n)
        for y in range(n_local):
            gy = x0 + y % w + (y // w) * n_top
            for c in range(p - 1, -1, -1):
                piv = 0.0
                for i in range(c + 1, n):
                    wts[i] = -level_factor[f_off + (i * p + c) * n_par + gy]
                    piv += wts[i]
                if piv <= 0.0:
                    continue                         # isolated node: stays at 0 V
                inv = 1.0 / piv
                for i in range(c + 1, n):
                    wci = wts[i] * inv
                    if wci == 0.0:
                        continue
                    if i < p:
                        for r in range(n_drv):
                            shared[c, y, r] += wci * shared[i, y, r]
                    else:
                        for r in range(n_drv):
                            shared[c, y, r] += wci * cur[i - p, y, r]
        child = np.empty((m, 2 * n_local, n_drv))
        for side in range(2):
            for a in range(m):
                ps = level_pos[k, side, a]
                for y in range(n_local):
                    yc = y + side * n_local
                    if ps < p:
                        for r in range(n_drv):
                            child[a, yc, r] = shared[ps, y, r]
                    else:
                        for r in range(n_drv):
                            child[a, yc, r] = cur[ps - p, y, r]
        cur = child
        n_local *= 2
    # cells: slots [L, R, T, B]; recover the nodes the leaf maps eliminated
    for y in range(n_local):
        gy = x0 + y % w + (y // w) * n_top
        i = cell_row[gy]
        j = cell_col[gy]
        if i < 0 or i >= n_rows or j < 0 or j >= n_cols:
            continue
        gd = g[i, j]
        lr = g_row if j + 1 < n_cols else 0.0
        tb = g_col if i + 1 < n_rows else g_sense[j]
        # couplings of the column node (i, j) after the leaf eliminated a first-column row node
        lt = gd
        rt = 0.0
        d0 = g_source[i] + lr + gd
        inv0 = 1.0 / d0 if d0 > 0.0 else 0.0
        if j == 0:
            lt = g_source[i] * gd * inv0
            rt = lr * gd * inv0
        d1 = lt + rt + tb
        inv1 = 1.0 / d1 if d1 > 0.0 else 0.0
        acc = 0.0
        for r in range(n_fwd):
            dv0 = 0.0
            for half in range(2):
                rr = r + half * n_fwd
                v_l = cur[0, y, rr]
                if i == 0:
                    w_node = (lt * v_l + rt * cur[1, y, rr] + tb * cur[3, y, rr]) * inv1
                else:
                    w_node = cur[2, y, rr]
                if j == 0:
                    u_node = (g_source[i] * v_l + lr * cur[1, y, rr] + gd * w_node) * inv0
                else:
                    u_node = v_l
                if half == 0:
                    dv0 = u_node - w_node
                else:
                    acc += dv0 * (u_node - w_node)
        grad[i, j] -= acc
