"""Structured kernels for the effective conductance of one crossbar (FCM and AAM).

Device-voltage formulation (docs/circuit.md, 'The device-voltage formulation'): for a unit
drive on row ``m`` the device voltages ``x_m`` of shape (n_rows, n_cols) solve
``(I + Z D) x_m = e_m 1^T`` with ``D = diag(g)`` and::

    (Z c)[i, j] = sum_l P_row_i[j, l] c[i, l] + sum_k P_col_j[i, k] c[k, j]
    P_row_i[j, l] = r_source[i] + r_row * min(j, l)
    P_col_j[i, k] = r_sense[j] + r_col * (n_rows - 1 - max(i, k))

``Z`` is applied with two running sums per line (O(n_rows * n_cols) per drive, no matrix).
Batched arrays hold all drives in the last axis: shape (n_rows, n_cols, n_drives), so the
inner loops run over contiguous drives (SIMD). Then ``g_eff[m, j] = sum_i g[i, j] x_m[i, j]``.

Two iterations solve the symmetric form ``(I + S Z S) y = S e_m 1^T`` (``S = sqrt(D)``):
conjugate gradients (:func:`fcm_cg`, adaptive, about fourteen passes over the fields per
iteration) and Chebyshev semi-iteration on an upper bound of the spectrum
(:func:`fcm_chebyshev`: one sweep per step, which also yields the true residual of the step's
input, so the iterate it stops at is certified).
"""

from __future__ import annotations

import numpy as np

from xbarsim.kernels._jit import jit


@jit
def z_apply(g, x, r_source, r_sense, r_row, r_col):
    """``Z (g * x)`` for one drive: shape (n_rows, n_cols) [V per V].

    ``z_apply(g, ones)`` gives the row sums of ``Z D``, whose maximum bounds its spectral
    radius (docs/physics.md, 'Approximate analytical model (AAM)').
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


@jit
def spectral_bound(g, r_source, r_sense, r_row, r_col, v, n_iter):
    """Upper bound of the spectral radius of ``Z D`` (Collatz-Wielandt), tighter than the row sum.

    ``Z D`` is entrywise non-negative, so ``rho(Z D) <= max_i (Z D v)_i / v_i`` for every
    ``v > 0``; the bound is taken over the given ``v`` and ``n_iter`` power iterates from it,
    which approach the Perron vector. From ``v = 1`` (whose bound is the row sum that
    :func:`xbarsim.hardware.circuit.rho_bound` returns) four iterates come within 2-7 % of the
    spectral radius on the TxSim tiles, against 25-35 % for the row sum; the last iterate, left
    in ``v``, starts the next call well.

    Parameters
    ----------
    g : (n_rows, n_cols) [S]; r_source, r_sense, r_row, r_col — resistances [Ohm].
    v : (n_rows, n_cols) — positive start vector; overwritten with the last power iterate.
    n_iter : int — power iterations after the first bound.

    Returns
    -------
    float — the smallest bound found (dimensionless).
    """
    best = np.inf
    for _ in range(n_iter + 1):
        w = z_apply(g, v, r_source, r_sense, r_row, r_col)
        w_max = 0.0
        ratio = 0.0
        for i in range(g.shape[0]):
            for j in range(g.shape[1]):
                w_max = max(w_max, w[i, j])
                ratio = max(ratio, w[i, j] / v[i, j])
        best = min(best, ratio)
        if w_max <= 0.0:
            break
        for i in range(g.shape[0]):
            for j in range(g.shape[1]):
                v[i, j] = max(w[i, j] / w_max, 1e-12)   # stays > 0: every iterate bounds
    return best


@jit
def ideal_totals(s, drive0, r_sense, r_col, row_tot, col_tot):
    """Line totals of the ideal start ``y = b`` (see :func:`cheb_step` for their meaning)."""
    n_rows, n_drv = row_tot.shape
    row_tot[:] = 0.0
    col_tot[:] = 0.0
    for m in range(n_drv):
        i = drive0 + m
        if i < n_rows:
            w_i = float(n_rows - 1 - i)
            for j in range(s.shape[1]):
                g_ij = s[i, j] * s[i, j]
                row_tot[i, m] += g_ij
                col_tot[j, m] = (r_sense[j] + r_col * w_i) * g_ij


@jit
def field_totals(s, y, scale, r_sense, r_col, row_tot, col_tot):
    """Scale a stored field in place, ``y *= scale[:, :, None]``, and form its line totals.

    The scaling is the warm start (``scale = sqrt(g / g_prev)`` keeps the device voltages);
    see :func:`cheb_step` for the meaning of the totals.
    """
    n_rows, n_cols, n_drv = y.shape
    row_tot[:] = 0.0
    col_tot[:] = 0.0
    for i in range(n_rows):
        w_i = float(n_rows - 1 - i)
        for j in range(n_cols):
            sij = s[i, j]
            f = scale[i, j]
            k_col = r_sense[j] + r_col * w_i
            for m in range(n_drv):
                y[i, j, m] *= f
                c = sij * y[i, j, m]
                row_tot[i, m] += c
                col_tot[j, m] += k_col * c


@jit
def cheb_step(prev_is_b, drive0, s, y, row_tot, col_tot, y_next, omega, gamma, r_source,
              r_sense, r_row, r_col, write, row_tot_next, col_tot_next, col_s, rr):
    """One Chebyshev step in one sweep: the true residual of ``y_k`` and ``y_{k+1}``.

    Solves ``A y = b`` with ``A = I + S Z S`` (spectrum in ``[1, 1 + rho]``) by the Chebyshev
    semi-iteration of the Richardson step ``y + gamma (b - A y)``::

        y_{k+1} = omega (gamma r_k + y_k) + (1 - omega) y_{k-1},    r_k = b - A y_k

    ``Z`` needs the line totals of ``c = s y_k`` before the sweep reaches the end of a line;
    they come from the previous step, which accumulates them while it writes ``y_k``::

        row_tot[i, m] = sum_j c[i, j, m]
        col_tot[j, m] = sum_i (r_sense[j] + r_col (n_rows - 1 - i)) c[i, j, m]

    With them, ``Z c`` at ``(i, j)`` follows from two running sums, one per line, and ``r_k``
    is exact (not an estimate) element by element: every step certifies its input.

    Parameters
    ----------
    prev_is_b : bool — ``y_{k-1}`` is ``b`` (``y_next`` is not read; also right when
        ``omega == 1``, where the term vanishes).
    drive0 : int — row driven by drive 0 of the block: ``b[i, j, m] = s[i, j] [i == drive0 + m]``.
    s : (n_rows, n_cols) — square roots of the conductances [S^0.5].
    y : (n_rows, n_cols, n_drives) — ``y_k``; row_tot : (n_rows, n_drives) and
        col_tot : (n_cols, n_drives) — its line totals.
    y_next : (n_rows, n_cols, n_drives) — ``y_{k-1}`` in, ``y_{k+1}`` out (when ``write``).
    omega, gamma : float — Chebyshev weight and Richardson step ``1 / (1 + rho / 2)``.
    r_source : (n_rows,), r_sense : (n_cols,), r_row, r_col — resistances [Ohm].
    write : bool — form ``y_{k+1}`` (False: only certify ``y_k``).
    row_tot_next, col_tot_next : line totals of ``y_{k+1}`` (output when ``write``).
    col_s : (n_cols, n_drives) — output: ``sum_i s y_k``, that is ``g_eff`` of ``y_k``
        transposed [S].
    rr : (n_drives,) — output: ``|r_k|^2`` per drive.
    """
    n_rows, n_cols, n_drv = y_next.shape
    pre = col_s                 # running column sum of c; ends as sum_i s y_k
    pre[:] = 0.0
    v_col = col_tot.copy()      # column part of Z c at the current row
    x_row = np.empty(n_drv)     # row part of Z c at the current cell
    p_row = np.empty(n_drv)     # running row sum of c
    r_tot = np.empty(n_drv)
    r_next = np.empty(n_drv)
    bv = np.zeros(n_drv)
    rv = np.empty(n_drv)
    rr[:] = 0.0
    if write:
        col_tot_next[:] = 0.0
    og = omega * gamma
    om1 = 1.0 - omega
    for i in range(n_rows):
        m_src = i - drive0
        has_src = 0 <= m_src < n_drv
        rs = r_source[i]
        w_i = float(n_rows - 1 - i)
        for m in range(n_drv):
            r_tot[m] = row_tot[i, m]
            x_row[m] = rs * r_tot[m]
            p_row[m] = 0.0
            r_next[m] = 0.0
        for j in range(n_cols):
            sij = s[i, j]
            k_col = r_sense[j] + r_col * w_i
            if has_src:
                bv[m_src] = sij
            for m in range(n_drv):
                yk = y[i, j, m]
                c = sij * yk
                r = bv[m] - yk - sij * (x_row[m] + v_col[j, m])
                rv[m] = r
                rr[m] += r * r
                p_row[m] += c
                x_row[m] += r_row * (r_tot[m] - p_row[m])
                pre[j, m] += c
                v_col[j, m] -= r_col * pre[j, m]
            if write:
                if prev_is_b:
                    for m in range(n_drv):
                        y1 = og * rv[m] + omega * y[i, j, m] + om1 * bv[m]
                        y_next[i, j, m] = y1
                        c1 = sij * y1
                        r_next[m] += c1
                        col_tot_next[j, m] += k_col * c1
                else:
                    for m in range(n_drv):
                        y1 = og * rv[m] + omega * y[i, j, m] + om1 * y_next[i, j, m]
                        y_next[i, j, m] = y1
                        c1 = sij * y1
                        r_next[m] += c1
                        col_tot_next[j, m] += k_col * c1
            if has_src:
                bv[m_src] = 0.0
        if write:
            for m in range(n_drv):
                row_tot_next[i, m] = r_next[m]


@jit
def chebyshev_omegas(sigma, n):
    """Weights ``omega_1 .. omega_n`` of Chebyshev semi-iteration for ``[-sigma, sigma]``."""
    out = np.ones(n)
    for k in range(1, n):
        if k == 1:
            out[k] = 1.0 / (1.0 - 0.5 * sigma * sigma)
        else:
            out[k] = 1.0 / (1.0 - 0.25 * sigma * sigma * out[k - 1])
    return out


@jit
def fcm_chebyshev(s, drive0, r_source, r_sense, r_row, r_col, rho, y_a, y_b, warm, scale,
                  tol_res, max_iter):
    """Solve ``(I + S Z S) y = b`` for a block of unit drives by one-sweep Chebyshev steps.

    The spectrum lies in ``[1, 1 + rho]`` (``rho`` an upper bound of the spectral radius of
    ``Z D``), so ``|r_k| <= 2 q^k |r_0|`` with ``q = (sqrt(1 + rho) - 1) / (sqrt(1 + rho) +
    1)``, the conjugate-gradient bound, at one sweep per step. Every step computes the true
    residual of its input (:func:`cheb_step`); the solve stops at the first iterate whose
    residual is within ``tol_res`` for every drive (eigenvalues >= 1, so that bounds its
    error). The step that the bound predicts to be the last one only certifies (it does not
    form the next iterate); should it fail, it is repeated with the next iterate formed.

    Parameters
    ----------
    s : (n_rows, n_cols) — square roots of the conductances.
    drive0 : int — row driven by drive 0 of the block.
    r_source : (n_rows,), r_sense : (n_cols,), r_row, r_col — resistances [Ohm].
    rho : float — upper bound of the spectral radius of ``Z D``.
    y_a : (n_rows, n_cols, n_drives) — start when ``warm``; else overwritten with the ideal
        start ``b``.
    y_b : workspace of the same shape.
    warm : bool.
    scale : (n_rows, n_cols) — warm start: ``y_a`` is first multiplied by it (not read cold).
    tol_res : float — required residual 2-norm per drive.
    max_iter : int — limit of steps.

    Returns
    -------
    status : int — 0 certified, 2 limit reached.
    n_iter : int — steps taken (the index of the returned iterate).
    res : (n_drives,) — true residual norms of the returned iterate (``status == 2``: some
        exceed ``tol_res``).
    g_eff : (n_drives, n_cols) — ``sum_i s y`` of that iterate [S].
    in_b : bool — that iterate is in ``y_b`` (else ``y_a``).
    """
    n_rows, n_cols, n_drv = y_a.shape
    half = 0.5 * max(rho, 0.0)
    gamma = 1.0 / (1.0 + half)
    sigma = half * gamma
    q = sigma / (1.0 + np.sqrt(1.0 - sigma * sigma))
    omegas = chebyshev_omegas(sigma, max_iter + 1)
    row_a = np.zeros((n_rows, n_drv))
    col_a = np.zeros((n_cols, n_drv))
    row_b = np.zeros((n_rows, n_drv))
    col_b = np.zeros((n_cols, n_drv))
    col_s = np.zeros((n_cols, n_drv))
    rr = np.zeros(n_drv)
    res = np.full(n_drv, np.inf)
    if warm:
        field_totals(s, y_a, scale, r_sense, r_col, row_a, col_a)
    else:
        ideal_guess(s, drive0, y_a)
        ideal_totals(s, drive0, r_sense, r_col, row_a, col_a)
    cur, row_cur, col_cur = y_a, row_a, col_a
    nxt, row_nxt, col_nxt = y_b, row_b, col_b
    prev_is_b = True            # y_{-1}: any value does (omega_0 = 1); b is not read
    in_b = False
    k_last = max_iter           # the step the bound predicts to certify
    status = 2
    k = 0
    while True:
        write = k < k_last and k < max_iter
        cheb_step(prev_is_b, drive0, s, cur, row_cur, col_cur, nxt, omegas[k], gamma,
                  r_source, r_sense, r_row, r_col, write, row_nxt, col_nxt, col_s, rr)
        ok = True
        for m in range(n_drv):
            res[m] = np.sqrt(rr[m])
            if res[m] > tol_res:
                ok = False
        if ok:
            status = 0
            break
        if k == 0 and q > 0.0:
            k_last = max(1, int(np.ceil(np.log(tol_res / (2.0 * res.max())) / np.log(q))))
        if k >= max_iter:
            break
        if not write:           # predicted to certify but did not: repeat, forming y_{k+1}
            k_last = max_iter
            continue
        prev_is_b = False
        cur, nxt = nxt, cur
        row_cur, row_nxt = row_nxt, row_cur
        col_cur, col_nxt = col_nxt, col_cur
        in_b = not in_b
        k += 1
    return status, k, res, col_s.T.copy(), in_b
