"""Assembly of the crossbar nodal (modified nodal analysis) matrices in one Numba pass.

Nodes: row nodes ``U[i, j]`` and column nodes ``W[i, j]``. Unknown nodes are numbered cell by
cell in row-major order, ``U`` before ``W`` (bandwidth about ``2 * n_cols``). A node merged with
an ideal source (``r_source == 0``) or an ideal ground (``r_sense == 0``) is not an unknown; a
zero wire resistance merges the whole line into its first node.

With unknown node voltages ``x`` (n_unknown,), drive voltages ``v`` (n_rows,) and sense currents
``i`` (n_cols,)::

    Y x = B v,      i = C x + D v

so that ``g_eff.T = C Y^{-1} B + D``.
"""

from __future__ import annotations

import numpy as np

from xbarsim.kernels._jit import jit


@jit
def label_nodes(n_rows, n_cols, r_source, r_sense, r_row, r_col):
    """Number the nodes of the crossbar.

    Returns ``(u_label, w_label, n_unknown)``; labels have shape (n_rows, n_cols), int64.
    A label ``k >= 0`` is an unknown; ``-1 - i`` is the ideal source of row ``i``;
    ``-1 - n_rows - j`` is the ideal ground of column ``j``.
    """
    u_label = np.empty((n_rows, n_cols), dtype=np.int64)
    w_label = np.empty((n_rows, n_cols), dtype=np.int64)
    # column representatives: when r_col == 0 a column is one node, fixed if r_sense[j] == 0
    col_rep = np.full(n_cols, -(1 << 62), dtype=np.int64)
    if r_col == 0.0:
        for j in range(n_cols):
            if r_sense[j] == 0.0:
                col_rep[j] = -1 - n_rows - j
    k = 0
    for i in range(n_rows):
        row_rep = -(1 << 62)
        if r_row == 0.0 and r_source[i] == 0.0:
            row_rep = -1 - i
        for j in range(n_cols):
            # row node (i, j)
            if j == 0 and r_source[i] == 0.0:
                u_label[i, j] = -1 - i
            elif r_row == 0.0:
                if row_rep == -(1 << 62):
                    row_rep = k
                    k += 1
                u_label[i, j] = row_rep
            else:
                u_label[i, j] = k
                k += 1
            # column node (i, j)
            if r_col == 0.0:
                if col_rep[j] == -(1 << 62):
                    col_rep[j] = k
                    k += 1
                w_label[i, j] = col_rep[j]
            elif i == n_rows - 1 and r_sense[j] == 0.0:
                w_label[i, j] = -1 - n_rows - j
            else:
                w_label[i, j] = k
                k += 1
    return u_label, w_label, k


@jit
def _stamp(a, b, cond, n_rows, y_r, y_c, y_v, ny, b_r, b_c, b_v, nb, c_r, c_c, c_v, nc, d):
    """Stamp one two-terminal conductance ``cond`` [S] between labels ``a`` and ``b``."""
    if a >= 0 and b >= 0:
        y_r[ny] = a
        y_c[ny] = a
        y_v[ny] = cond
        y_r[ny + 1] = b
        y_c[ny + 1] = b
        y_v[ny + 1] = cond
        y_r[ny + 2] = a
        y_c[ny + 2] = b
        y_v[ny + 2] = -cond
        y_r[ny + 3] = b
        y_c[ny + 3] = a
        y_v[ny + 3] = -cond
        return ny + 4, nb, nc
    if a < 0 and b < 0:
        # between an ideal source and an ideal ground: direct feed-through
        src, gnd = (a, b) if a > -1 - n_rows else (b, a)
        d[-1 - n_rows - gnd, -1 - src] += cond
        return ny, nb, nc
    node, fixed = (a, b) if a >= 0 else (b, a)
    y_r[ny] = node
    y_c[ny] = node
    y_v[ny] = cond
    if fixed > -1 - n_rows:  # source of row -1 - fixed injects cond * v into the node
        b_r[nb] = node
        b_c[nb] = -1 - fixed
        b_v[nb] = cond
        return ny + 1, nb + 1, nc
    # ground of column j: the sense current collects cond * x[node]
    c_r[nc] = -1 - n_rows - fixed
    c_c[nc] = node
    c_v[nc] = cond
    return ny + 1, nb, nc + 1


@jit
def assemble(g, r_source, r_sense, r_row, r_col):
    """COO triplets of ``Y``, ``B``, ``C`` and the dense ``D`` of the crossbar nodal system.

    Parameters
    ----------
    g : (n_rows, n_cols) float64 — device conductances [S], >= 0.
    r_source : (n_rows,) float64 — driver resistances [Ohm], >= 0.
    r_sense : (n_cols,) float64 — sense resistances [Ohm], >= 0.
    r_row, r_col : float — wire resistance per cell segment [Ohm], >= 0.

    Returns
    -------
    y_r, y_c, y_v : COO of Y (n_unknown, n_unknown) [S]
    b_r, b_c, b_v : COO of B (n_unknown, n_rows) [S]
    c_r, c_c, c_v : COO of C (n_cols, n_unknown) [S]
    d : (n_cols, n_rows) [S]
    u_label, w_label : (n_rows, n_cols) int64 node labels (see ``label_nodes``)
    n_unknown : int
    """
    n_rows, n_cols = g.shape
    u_label, w_label, n_unknown = label_nodes(n_rows, n_cols, r_source, r_sense, r_row, r_col)
    n_branch = 4 * n_rows * n_cols + n_rows + n_cols
    y_r = np.empty(4 * n_branch, dtype=np.int64)
    y_c = np.empty(4 * n_branch, dtype=np.int64)
    y_v = np.empty(4 * n_branch)
    b_r = np.empty(n_branch, dtype=np.int64)
    b_c = np.empty(n_branch, dtype=np.int64)
    b_v = np.empty(n_branch)
    c_r = np.empty(n_branch, dtype=np.int64)
    c_c = np.empty(n_branch, dtype=np.int64)
    c_v = np.empty(n_branch)
    d = np.zeros((n_cols, n_rows))
    ny = 0
    nb = 0
    nc = 0
    for i in range(n_rows):
        if r_source[i] > 0.0:
            ny, nb, nc = _stamp(-1 - i, u_label[i, 0], 1.0 / r_source[i], n_rows,
                                y_r, y_c, y_v, ny, b_r, b_c, b_v, nb, c_r, c_c, c_v, nc, d)
        for j in range(n_cols):
            if r_row > 0.0 and j + 1 < n_cols:
                ny, nb, nc = _stamp(u_label[i, j], u_label[i, j + 1], 1.0 / r_row, n_rows,
                                    y_r, y_c, y_v, ny, b_r, b_c, b_v, nb, c_r, c_c, c_v, nc, d)
            if g[i, j] > 0.0:
                ny, nb, nc = _stamp(u_label[i, j], w_label[i, j], g[i, j], n_rows,
                                    y_r, y_c, y_v, ny, b_r, b_c, b_v, nb, c_r, c_c, c_v, nc, d)
            if r_col > 0.0 and i + 1 < n_rows:
                ny, nb, nc = _stamp(w_label[i, j], w_label[i + 1, j], 1.0 / r_col, n_rows,
                                    y_r, y_c, y_v, ny, b_r, b_c, b_v, nb, c_r, c_c, c_v, nc, d)
    for j in range(n_cols):
        if r_sense[j] > 0.0:
            ny, nb, nc = _stamp(w_label[n_rows - 1, j], -1 - n_rows - j, 1.0 / r_sense[j], n_rows,
                                y_r, y_c, y_v, ny, b_r, b_c, b_v, nb, c_r, c_c, c_v, nc, d)
    return (y_r[:ny], y_c[:ny], y_v[:ny], b_r[:nb], b_c[:nb], b_v[:nb],
            c_r[:nc], c_c[:nc], c_v[:nc], d, u_label, w_label, n_unknown)
