"""Approximate analytical model (AAM): path (Neumann) expansion of the crossbar response.

docs/physics.md, 'Approximate analytical model (AAM)': ``x_K = sum_{k=0..K} (-Z D)^k E`` and
``g_eff^(K)[m, j] = sum_i g[i, j] x_K[m, i, j]``.
Term k collects the paths that interact k times with other cells' currents through shared wire
segments or terminal resistances. Order 1 has the closed form ``g * (1 - rowsum(Z D))``.
"""

from __future__ import annotations

import numpy as np

from xbarsim.kernels._jit import jit
from xbarsim.kernels.fcm import collect_g_eff, z_apply, z_op


@jit
def aam_first_order(g, r_source, r_sense, r_row, r_col):
    """First-order AAM in closed form: (n_rows, n_cols) [S].

    ``g_eff^(1) = g * (1 - sum_l g[i,l] P_row[j,l] - sum_k P_col[i,k] g[k,j])``.

    O(n_rows * n_cols): the row sums of ``Z D`` are one application of ``Z`` to ``g``.
    """
    return g * (1.0 - z_apply(g, np.ones_like(g), r_source, r_sense, r_row, r_col))


@jit
def aam_series(g, order, drive0, n_drives, r_source, r_sense, r_row, r_col):
    """Rows ``drive0 .. drive0+n_drives-1`` of ``g_eff^(K)``: shape (n_drives, n_cols) [S].

    Sums ``order + 1`` terms of the path expansion for unit drives on those rows.
    """
    n_rows, n_cols = g.shape
    term = np.zeros((n_rows, n_cols, n_drives))
    for m in range(n_drives):
        for j in range(n_cols):
            term[drive0 + m, j, m] = 1.0
    total = term.copy()
    nxt = np.empty_like(term)
    col_pre = np.empty((n_cols, n_drives))
    col_wsum = np.empty((n_cols, n_drives))
    dots = np.empty(n_drives)
    minus_ones = -np.ones_like(g)
    for _ in range(order):
        # next term = -Z (g * term)
        z_op(g, term, minus_ones, 0.0, r_source, r_sense, r_row, r_col, nxt, col_pre, col_wsum,
             dots)
        term, nxt = nxt, term
        for i in range(n_rows):
            for j in range(n_cols):
                for m in range(n_drives):
                    total[i, j, m] += term[i, j, m]
    return collect_g_eff(g, total)
