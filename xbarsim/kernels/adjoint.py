"""Kernels of the adjoint (device-sensitivity) computation: back-substitution.

Back-substitution through the nested dissection of :mod:`xbarsim.kernels.schur`. The direct
solver eliminates, at every merge, the nodes two boxes share. With the elimination factor kept
(``merge_level_factored`` / ``merge_boxes_factored``), the voltage of every eliminated node
follows from the voltages of the nodes that were still present::

    x_c = sum_{i > c} w_ci x_i,     w_ci = -t_ci / sum_{i' > c} (-t_ci')  (>= 0, sum <= 1)

(``t_ci`` the entry ``(i, c)`` of the merged map when ``c`` was the pivot; no current is
injected at internal nodes). So, from the terminal voltages of a drive (sources and virtual
grounds), the merges are undone top-down, depth-first: box merges (:func:`back_part`,
:func:`undo_step`), then each box's equal-box levels and cells
(:func:`back_levels_gradient`). Every step is a weighted average with non-negative weights: as
accurate as the elimination itself.

Drives are processed together as the columns of a voltage matrix; the kernels never form a
full voltage field. :func:`back_levels_gradient` consumes the device voltages of forward and
adjoint drives at once: ``grad[i, j] -= sum_r dv_fwd[r] * dv_adj[r]``.
"""

from __future__ import annotations

import numpy as np

from xbarsim.kernels._jit import jit

#: Pivots per block of the blocked back-substitution in :func:`undo_step`.
BLOCK = 32


@jit
def undo_step(step_factor, factor_start, steps, positions, s, xo):
    """Undo box merge ``s``: node voltages of its two children from the merged map's.

    Parameters
    ----------
    step_factor : (size,) float64 — factors of every box merge (``p x (p + q)`` row-major).
    factor_start : (n_steps,) int64 — their offsets.
    steps, positions : int64 — the merge program of :func:`xbarsim.kernels.schur.merge_boxes`.
    s : int — the step.
    xo : (q, n_drives) float64 — voltages [V] of the merged map's nodes (its outer nodes).

    Returns
    -------
    va, vb : (d_a, n_drives), (d_b, n_drives) float64 — voltages of child A's and B's nodes.

    Notes
    -----
    With ``W = -t / pivot`` (row-scaled; rows of isolated nodes zero) the shared voltages
    solve ``x_s = W_so x_o + U x_s`` (``U`` the strictly upper part of ``W_ss``): one product
    for the outer part, then blocked back-substitution (a product per block of :data:`BLOCK`
    pivots for the part below it, a short loop inside).
    """
    _off_a, d_a, _off_b, d_b, _off_o, pos0, p, n_plain, n_src, n_gnd = steps[s, :10]
    q = n_plain + n_src + n_gnd
    n = p + q
    n_drv = xo.shape[1]
    f0 = factor_start[s]
    t = step_factor[f0:f0 + p * n].reshape(p, n)
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
        shared[:, :] = np.dot(np.ascontiguousarray(wt[:, p:]), xo)
        c1 = p
        while c1 > 0:
            c0 = max(0, c1 - BLOCK)
            if c1 < p:
                shared[c0:c1] += np.dot(np.ascontiguousarray(wt[c0:c1, c1:p]), shared[c1:p])
            for c in range(c1 - 1, c0 - 1, -1):
                for i in range(c + 1, c1):
                    wci = wt[c, i]
                    if wci != 0.0:
                        for r in range(n_drv):
                            shared[c, r] += wci * shared[i, r]
            c1 = c0
    va = np.empty((d_a, n_drv))
    vb = np.empty((d_b, n_drv))
    for side in range(2):
        d = d_a if side == 0 else d_b
        out = va if side == 0 else vb
        p0 = pos0 if side == 0 else pos0 + d_a
        for a in range(d):
            ps = positions[p0 + a]
            if ps < p:
                for r in range(n_drv):
                    out[a, r] = shared[ps, r]
            else:
                for r in range(n_drv):
                    out[a, r] = xo[ps - p, r]
    return va, vb


@jit
def _box_slots(values, keep, keep_start, box, n_slots):
    """Slot voltages ``(n_slots, 1, n_drives)`` of one box from its kept nodes' voltages.

    Unconnected slots get 0 V (no device or wire touches them, so it is never used).
    """
    n_drv = values.shape[1]
    out = np.zeros((n_slots, 1, n_drv))
    k0 = keep_start[box]
    for a in range(keep_start[box + 1] - k0):
        slot = keep[k0 + a]
        for r in range(n_drv):
            out[slot, 0, r] = values[a, r]
    return out


@jit
def back_part(step_factor, factor_start, steps, positions, first, last, child_box, root,
              root_box, stack_nodes, keep, keep_start, n_slots, n_top, level_meta, level_pos,
              level_factor, g, g_row, g_col, g_source, g_sense, cell_row, cell_col, n_fwd,
              grad):
    """Undo one part of the nested dissection depth-first; accumulate the gradient of its cells.

    Box merges are undone in reverse program order (the program is post-order, child A's
    subtree first, so the reverse visits a merged map right after its parent: a stack). A child
    that is a merged map is pushed; a child that is a box goes down its equal-box levels to its
    cells at once (:func:`back_levels_gradient`). Only the maps waiting on the stack are stored
    (at most ``stack_nodes`` nodes).

    Parameters
    ----------
    step_factor, factor_start, steps, positions : as in :func:`undo_step`.
    first, last : int — the part's merge steps ``[first, last)``.
    child_box : (n_steps, 2) int64 — box index (within the part) of each step's child A / B,
        or -1 for a merged map.
    root : (d_root, n_drives) float64 — voltages of the part's merged map (or of its only box).
    root_box : int — box index when the part is a single box, else -1.
    stack_nodes : int — stack size [nodes].
    keep, keep_start, n_slots, n_top : the part's boxes (kept slots) and their count.
    level_meta ... grad : as in :func:`back_levels_gradient`.
    """
    n_drv = root.shape[1]
    if root_box >= 0:
        top = _box_slots(root, keep, keep_start, root_box, n_slots)
        back_levels_gradient(top, root_box, n_top, level_meta, level_pos, level_factor, g, g_row,
                             g_col, g_source, g_sense, cell_row, cell_col, n_fwd, grad)
        return
    stack = np.empty((stack_nodes, n_drv))
    sp = root.shape[0]
    stack[:sp] = root
    for s in range(last - 1, first - 1, -1):
        q = steps[s, 7] + steps[s, 8] + steps[s, 9]
        xo = stack[sp - q:sp].copy()                   # the merged map of step s is on top
        sp -= q
        va, vb = undo_step(step_factor, factor_start, steps, positions, s, xo)
        for side in range(2):
            v = va if side == 0 else vb
            box = child_box[s, side]
            if box >= 0:
                top = _box_slots(v, keep, keep_start, box, n_slots)
                back_levels_gradient(top, box, n_top, level_meta, level_pos, level_factor, g,
                                     g_row, g_col, g_source, g_sense, cell_row, cell_col, n_fwd,
                                     grad)
            else:
                d = v.shape[0]
                stack[sp:sp + d] = v
                sp += d


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
    g, g_row, g_col, g_source, g_sense — the conductances of the factorization [S], zero
        resistances replaced (:class:`~xbarsim.hardware.schur_factored.SchurFactors`):
        ``g`` (n_rows, n_cols), ``g_row`` and ``g_col`` floats, ``g_source`` (n_rows,),
        ``g_sense`` (n_cols,).
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
