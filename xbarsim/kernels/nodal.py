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


# ---------------------------------------------------------------------------------------------
# branch list, extended-precision Kirchhoff residual and multi-right-hand-side LU solves


@jit
def branches(g, r_source, r_sense, r_row, r_col, u_label, w_label):
    """Every two-terminal branch of the crossbar as ``(a, b, cond)`` over node labels.

    Parameters
    ----------
    g, r_source, r_sense, r_row, r_col
        As for :func:`assemble` [S], [Ohm].
    u_label, w_label : (n_rows, n_cols) int64
        Node labels from :func:`label_nodes`.

    Returns
    -------
    a, b : (n_branch,) int64
        End labels (``>= 0`` unknown, ``-1 - i`` source of row i, ``-1 - n_rows - j`` ground of
        column j); the branch current is ``cond * (x_a - x_b)``, from ``a`` to ``b``.
    cond : (n_branch,) float64
        Branch conductances [S]. Devices with ``g == 0`` and 0-Ohm wires (merged nodes) have no
        branch.
    """
    n_rows, n_cols = g.shape
    n_max = 3 * n_rows * n_cols + n_rows + n_cols
    a = np.empty(n_max, dtype=np.int64)
    b = np.empty(n_max, dtype=np.int64)
    cond = np.empty(n_max)
    k = 0
    for i in range(n_rows):
        if r_source[i] > 0.0:
            a[k] = -1 - i
            b[k] = u_label[i, 0]
            cond[k] = 1.0 / r_source[i]
            k += 1
        for j in range(n_cols):
            if r_row > 0.0 and j + 1 < n_cols:
                a[k] = u_label[i, j]
                b[k] = u_label[i, j + 1]
                cond[k] = 1.0 / r_row
                k += 1
            if g[i, j] > 0.0:
                a[k] = u_label[i, j]
                b[k] = w_label[i, j]
                cond[k] = g[i, j]
                k += 1
            if r_col > 0.0 and i + 1 < n_rows:
                a[k] = w_label[i, j]
                b[k] = w_label[i + 1, j]
                cond[k] = 1.0 / r_col
                k += 1
    for j in range(n_cols):
        if r_sense[j] > 0.0:
            a[k] = w_label[n_rows - 1, j]
            b[k] = -1 - n_rows - j
            cond[k] = 1.0 / r_sense[j]
            k += 1
    return a[:k], b[:k], cond[:k]


_SPLIT = 134217729.0  # 2**27 + 1: Dekker's splitting constant for float64


@jit
def kirchhoff(a, b, cond, x, fixed, res, cur, res_lo, cur_lo):
    """Kirchhoff residual and terminal currents in double-double arithmetic.

    For every branch the current ``cond * (x_a - x_b)`` is formed with error-free
    transformations (Knuth's two-sum, Dekker's two-product; no fused multiply-add is assumed)
    and summed per node in double-double, then rounded once. The result is the residual of
    the circuit with exactly these float64 conductances and voltages, correct to about one
    rounding of itself; ``Y x`` computed from an assembled float64 ``Y`` is not (its diagonal
    sums ``g + 2 / r_row`` lose the digits of ``g`` that matter).

    Parameters
    ----------
    a, b, cond : branch list from :func:`branches`.
    x : (n_unknown, k) float64, C order
        Voltages of the unknown nodes [V] for k right-hand sides.
    fixed : (n_rows + n_cols, k) float64, C order
        Voltages of the sources (rows) then of the grounds (columns) [V].
    res : (n_unknown, k) float64, output
        Current entering each unknown node from its branches [A] (``B v - Y x``; 0 at the
        solution).
    cur : (n_rows + n_cols, k) float64, output
        Current entering each source / ground node from the network [A]: for the grounds, the
        sense currents.
    res_lo, cur_lo : like ``res`` and ``cur``, work arrays (the low parts of the sums).
    """
    k = x.shape[1]
    res[:] = 0.0
    cur[:] = 0.0
    res_lo[:] = 0.0
    cur_lo[:] = 0.0
    for e in range(a.size):
        la = a[e]
        lb = b[e]
        xa = x[la] if la >= 0 else fixed[-1 - la]
        xb = x[lb] if lb >= 0 else fixed[-1 - lb]
        ha = res[la] if la >= 0 else cur[-1 - la]
        ea = res_lo[la] if la >= 0 else cur_lo[-1 - la]
        hb = res[lb] if lb >= 0 else cur[-1 - lb]
        eb = res_lo[lb] if lb >= 0 else cur_lo[-1 - lb]
        c = cond[e]
        t = _SPLIT * c
        c_hi = t - (t - c)
        c_lo = c - c_hi
        for m in range(k):
            # difference, exactly: d + dl = x_a - x_b
            d = xa[m] - xb[m]
            z = d - xa[m]
            dl = (xa[m] - (d - z)) - (xb[m] + z)
            # product c * d exactly as p + pl (Dekker), plus c * dl
            p = c * d
            t = _SPLIT * d
            d_hi = t - (t - d)
            d_lo = d - d_hi
            pl = c_lo * d_lo - (((p - c_hi * d_hi) - c_lo * d_hi) - c_hi * d_lo) + c * dl
            # the current p + pl leaves a and enters b
            s = ha[m] - p
            z = s - ha[m]
            ea[m] += ((ha[m] - (s - z)) - (p + z)) - pl
            ha[m] = s
            s = hb[m] + p
            z = s - hb[m]
            eb[m] += ((hb[m] - (s - z)) + (p - z)) + pl
            hb[m] = s
    res += res_lo
    cur += cur_lo


@jit
def lu_solve(l_ptr, l_idx, l_val, u_ptr, u_idx, u_val, u_diag, perm_in, perm_out, rhs, work,
             out):
    """Solve with a sparse LU factorization for k right-hand sides stored row-major.

    ``work = rhs[perm_in]``; ``work <- U^-1 L^-1 work`` with ``L`` unit lower triangular and
    ``U`` upper triangular, both as CSC without their diagonals (``u_diag`` holds U's); then
    ``out = work[perm_out]``. The inner loops run over the k right-hand sides, which are
    contiguous, so each factor entry is read once per call (SuperLU's own solve reads it once
    per right-hand side and is 5-30x slower for tens of them).

    Parameters
    ----------
    l_ptr, l_idx, l_val : CSC of the strictly lower part of L (n, n).
    u_ptr, u_idx, u_val : CSC of the strictly upper part of U (n, n).
    u_diag : (n,) diagonal of U.
    perm_in, perm_out : (n,) int64 permutations.
    rhs : (n, k) C order, input; work, out : (n, k) C order, outputs (``out`` may be ``rhs``).
    """
    n, k = rhs.shape
    for i in range(n):
        work[i, :] = rhs[perm_in[i]]
    for j in range(n):
        xj = work[j]
        for p in range(l_ptr[j], l_ptr[j + 1]):
            xi = work[l_idx[p]]
            f = l_val[p]
            for m in range(k):
                xi[m] -= f * xj[m]
    for j in range(n - 1, -1, -1):
        xj = work[j]
        piv = u_diag[j]
        for m in range(k):
            xj[m] /= piv
        for p in range(u_ptr[j], u_ptr[j + 1]):
            xi = work[u_idx[p]]
            f = u_val[p]
            for m in range(k):
                xi[m] -= f * xj[m]
    for i in range(n):
        out[i, :] = work[perm_out[i]]


@jit
def max_relative(d, x, floor):
    """``max |d| / max(|x|, floor)`` over all entries (the size of a refinement step)."""
    out = 0.0
    for i in range(d.shape[0]):
        for m in range(d.shape[1]):
            if d[i, m] != 0.0:
                q = abs(d[i, m]) / max(abs(x[i, m]), floor)
                if q > out:
                    out = q
    return out


@jit
def split_diagonal(ptr, idx, val):
    """Split a square CSC matrix into its off-diagonal part and its diagonal.

    Returns ``(ptr, idx, val, diag)``: the CSC arrays without the diagonal entries, and the
    diagonal (duplicates summed).
    """
    n = ptr.size - 1
    diag = np.zeros(n)
    out_ptr = np.empty(n + 1, dtype=np.int64)
    out_idx = np.empty(idx.size, dtype=np.int64)
    out_val = np.empty(val.size)
    k = 0
    out_ptr[0] = 0
    for j in range(n):
        for p in range(ptr[j], ptr[j + 1]):
            if idx[p] == j:
                diag[j] += val[p]
            else:
                out_idx[k] = idx[p]
                out_val[k] = val[p]
                k += 1
        out_ptr[j + 1] = k
    return out_ptr, out_idx[:k].copy(), out_val[:k].copy(), diag
