"""Structured kernels for the effective conductance of one crossbar (FCM and AAM).

Device-voltage formulation (MODELS.md §2.3, kappa_r = kappa_c = 0): for a unit drive on row
``m`` the device voltages ``x_m`` of shape (n_rows, n_cols) solve ``(I + Z D) x_m = e_m 1^T``
with ``D = diag(g)`` and::

    (Z c)[i, j] = sum_l P_row_i[j, l] c[i, l] + sum_k P_col_j[i, k] c[k, j]
    P_row_i[j, l] = r_source[i] + r_row * min(j, l)
    P_col_j[i, k] = r_sense[j] + r_col * (n_rows - 1 - max(i, k))

``Z`` is applied with two running sums per line (O(n_rows * n_cols) per drive, no matrix).
Batched arrays hold all drives in the last axis: shape (n_rows, n_cols, n_drives), so the
inner loops run over contiguous drives (SIMD). Then ``g_eff[m, j] = sum_i g[i, j] x_m[i, j]``.
"""

from __future__ import annotations

import numpy as np

from xbarsim.kernels._jit import jit


@jit
def z_apply(g, x, r_source, r_sense, r_row, r_col):
    """``Z (g * x)`` for one drive: shape (n_rows, n_cols) [V per V].

    ``z_apply(g, ones)`` gives the row sums of ``Z D``, whose maximum bounds its spectral
    radius (MODELS.md §3.3).
    """
    n_rows, n_cols = g.shape
    out = np.empty((n_rows, n_cols))
    for i in range(n_rows):
        total = 0.0
        for j in range(n_cols):
            total += g[i, j] * x[i, j]
        suffix = total
        min_sum = 0.0  # sum_l min(j, l) c_l, built up as j advances
        for j in range(n_cols):
            out[i, j] = r_source[i] * total + r_row * min_sum
            suffix -= g[i, j] * x[i, j]
            min_sum += suffix
    for j in range(n_cols):
        total = 0.0
        for i in range(n_rows):
            total += g[i, j] * x[i, j]
        prefix = total
        dist_sum = 0.0  # sum_k (n_rows-1-max(i, k)) c_k, built up as i goes up
        for i in range(n_rows - 1, -1, -1):
            out[i, j] += r_sense[j] * total + r_col * dist_sum
            prefix -= g[i, j] * x[i, j]
            dist_sum += prefix
    return out


@jit
def z_op(c_scale, x, o_scale, alpha, r_source, r_sense, r_row, r_col, out, col_pre, col_wsum,
         dots):
    """``out = alpha x + o_scale * Z(c_scale * x)`` and ``dots[m] = x_m . out_m``, all drives.

    One sweep over the rows; the column sums are accumulated top-down as rows are visited, so
    each element of ``x`` comes from memory once (the second read of a row hits the cache)::

        sum_k (n_rows-1-max(i,k)) c_k = T - B_i + (n_rows-1-i) Pre_i
        Pre_i = sum_{k<i} c_k,  B_i = sum_{k<i} (n_rows-1-k) c_k,  T = sum_k (n_rows-1-k) c_k

    The terms that need the column totals (``r_sense S + r_col T``) are added in a second pass,
    which also forms ``dots``.

    Parameters
    ----------
    c_scale, o_scale : (n_rows, n_cols) — element-wise factors before / after ``Z``.
    x, out : (n_rows, n_cols, n_drives) — distinct arrays.
    alpha : float — coefficient of the identity term.
    r_source : (n_rows,), r_sense : (n_cols,), r_row, r_col : float — resistances [Ohm].
    col_pre, col_wsum : (n_cols, n_drives) — workspace.
    dots : (n_drives,) — output.
    """
    n_rows, n_cols, n_drv = x.shape
    col_pre[:] = 0.0
    col_wsum[:] = 0.0
    row_total = np.empty(n_drv)
    suffix = np.empty(n_drv)
    min_sum = np.empty(n_drv)
    for i in range(n_rows):
        row_total[:] = 0.0
        for j in range(n_cols):
            cs = c_scale[i, j]
            for m in range(n_drv):
                row_total[m] += cs * x[i, j, m]
        rs = r_source[i]
        w_i = float(n_rows - 1 - i)
        for m in range(n_drv):
            suffix[m] = row_total[m]
            min_sum[m] = 0.0
        for j in range(n_cols):
            cs = c_scale[i, j]
            os_ = o_scale[i, j]
            for m in range(n_drv):
                c = cs * x[i, j, m]
                part = (rs * row_total[m] + r_row * min_sum[m]
                        + r_col * (w_i * col_pre[j, m] - col_wsum[j, m]))
                out[i, j, m] = alpha * x[i, j, m] + os_ * part
                suffix[m] -= c
                min_sum[m] += suffix[m]
                col_pre[j, m] += c
                col_wsum[j, m] += w_i * c
    # now col_pre = S_j and col_wsum = T_j; reuse col_pre for r_sense S + r_col T
    for j in range(n_cols):
        for m in range(n_drv):
            col_pre[j, m] = r_sense[j] * col_pre[j, m] + r_col * col_wsum[j, m]
    dots[:] = 0.0
    for i in range(n_rows):
        for j in range(n_cols):
            os_ = o_scale[i, j]
            for m in range(n_drv):
                a = out[i, j, m] + os_ * col_pre[j, m]
                out[i, j, m] = a
                dots[m] += x[i, j, m] * a


@jit
def _residual(s, y, drive0, r_source, r_sense, r_row, r_col, r, ap, col_pre, col_wsum, rr):
    """``r = b - A y`` and ``rr[m] = |r_m|^2`` (true residual).

    ``b`` is the unit drive of row ``drive0 + m``: ``b[i, j, m] = s[i, j] * (i == drive0 + m)``.
    """
    n_rows, n_cols, n_drv = y.shape
    pap = np.empty(n_drv)
    z_op(s, y, s, 1.0, r_source, r_sense, r_row, r_col, ap, col_pre, col_wsum, pap)
    rr[:] = 0.0
    for i in range(n_rows):
        for j in range(n_cols):
            for m in range(n_drv):
                v = -ap[i, j, m]
                if i == drive0 + m:
                    v += s[i, j]
                r[i, j, m] = v
                rr[m] += v * v


@jit
def ideal_guess(s, drive0, y):
    """Cold start ``y = b`` (ideal device voltages: 1 V across the driven row)."""
    n_rows, n_cols, n_drv = y.shape
    y[:] = 0.0
    for m in range(n_drv):
        i = drive0 + m
        if i < n_rows:
            for j in range(n_cols):
                y[i, j, m] = s[i, j]


@jit
def fcm_cg(g, y, drive0, r_source, r_sense, r_row, r_col, tol_res, max_iter, r, p, ap):
    """Solve ``(I + S Z S) y = b`` by conjugate gradients for unit drives, ``S = diag(sqrt(g))``.

    The symmetric form of ``(I + Z D) x_m = e_m 1^T`` with ``y = sqrt(g) x``; drive ``m`` of
    the batch is row ``drive0 + m``. The matrix is symmetric positive definite with
    eigenvalues in [1, 1 + rho], so ``|y_m - y*_m| <= |r_m|``.

    Parameters
    ----------
    g : (n_rows, n_cols) [S].
    y : (n_rows, n_cols, n_drives) — initial guess, overwritten with the solution.
    drive0 : int — row index of the first drive.
    r_source : (n_rows,), r_sense : (n_cols,), r_row, r_col — resistances [Ohm].
    tol_res : (n_drives,) — stop when ``|r_m| <= tol_res[m]`` for every drive.
    max_iter : int.
    r, p, ap : (n_rows, n_cols, n_drives) — workspace (overwritten).

    Returns
    -------
    n_iter : int — iterations performed.
    res : (n_drives,) — final residual norms (recomputed from scratch, not recursive).
    """
    s = np.sqrt(g)
    n_rows, n_cols, n_drv = y.shape
    col_pre = np.empty((n_cols, n_drv))
    col_wsum = np.empty((n_cols, n_drv))
    pap = np.empty(n_drv)
    rr = np.empty(n_drv)
    _residual(s, y, drive0, r_source, r_sense, r_row, r_col, r, ap, col_pre, col_wsum, rr)
    p[:] = r
    alpha = np.empty(n_drv)
    rr_new = np.empty(n_drv)
    n_iter = 0
    restarts = 0
    while True:
        done = True
        for m in range(n_drv):
            if np.sqrt(rr[m]) > tol_res[m]:
                done = False
        if done:
            # confirm with the true residual (the recursive one drifts in floating point)
            _residual(s, y, drive0, r_source, r_sense, r_row, r_col, r, ap, col_pre, col_wsum,
                      rr)
            ok = True
            for m in range(n_drv):
                if np.sqrt(rr[m]) > tol_res[m]:
                    ok = False
            if ok or restarts >= 3:
                break
            restarts += 1
            p[:] = r
        if n_iter >= max_iter:
            _residual(s, y, drive0, r_source, r_sense, r_row, r_col, r, ap, col_pre, col_wsum,
                      rr)
            break
        z_op(s, p, s, 1.0, r_source, r_sense, r_row, r_col, ap, col_pre, col_wsum, pap)
        for m in range(n_drv):
            alpha[m] = rr[m] / pap[m] if pap[m] > 0.0 else 0.0
        rr_new[:] = 0.0
        for i in range(n_rows):
            for j in range(n_cols):
                for m in range(n_drv):
                    y[i, j, m] += alpha[m] * p[i, j, m]
                    v = r[i, j, m] - alpha[m] * ap[i, j, m]
                    r[i, j, m] = v
                    rr_new[m] += v * v
        for m in range(n_drv):
            alpha[m] = rr_new[m] / rr[m] if rr[m] > 0.0 else 0.0   # beta
            rr[m] = rr_new[m]
        for i in range(n_rows):
            for j in range(n_cols):
                for m in range(n_drv):
                    p[i, j, m] = r[i, j, m] + alpha[m] * p[i, j, m]
        n_iter += 1
    return n_iter, np.sqrt(rr)


@jit
def collect_g_eff(c_scale, x):
    """``g_eff[m, j] = sum_i c_scale[i, j] * x[i, j, m]``: shape (n_drives, n_cols) [S]."""
    n_rows, n_cols, n_drv = x.shape
    out = np.zeros((n_drv, n_cols))
    for j in range(n_cols):
        for i in range(n_rows):
            cs = c_scale[i, j]
            for m in range(n_drv):
                out[m, j] += cs * x[i, j, m]
    return out




@jit
def seed_unconnected(s, drive0, y):
    """Warm start fix-up: cells whose conductance was 0 before get their ideal value."""
    n_rows, n_cols, n_drv = y.shape
    for m in range(n_drv):
        i = drive0 + m
        if i < n_rows:
            for j in range(n_cols):
                if y[i, j, m] == 0.0:
                    y[i, j, m] = s[i, j]
