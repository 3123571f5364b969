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

Two iterations solve the symmetric form ``(I + S Z S) y = S e_m 1^T`` (``S = sqrt(D)``):
conjugate gradients (:func:`fcm_cg`, adaptive, about fourteen passes over the fields per
iteration) and Chebyshev semi-iteration on the a-priori spectral bound (:func:`fcm_chebyshev`,
one pass per step, certified at the end by :func:`certify`).
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


@jit
def cheb_pass(cur_cold, prev_cold, drive0, s, y_k, corr_k, y_prev, corr_prev, omega, gamma,
              r_source, r_sense, r_row, r_col, col_s, col_t, estimate, rr_est):
    """One Chebyshev step in a single sweep: ``y_prev <- y_{k+1}`` from ``y_k`` and ``y_{k-1}``.

    Solves ``A y = b`` with ``A = I + S Z S`` (spectrum in ``[1, 1 + rho]``) by the Chebyshev
    semi-iteration of the Richardson step ``y + gamma (b - A y)``::

        y_{k+1} = omega (gamma r_k + y_k) + (1 - omega) y_{k-1},    r_k = b - A y_k

    The column-sum terms of ``Z`` (``r_sense S + r_col T``) are known only after the sweep; a
    field is therefore stored with a *pending column correction*: its value is
    ``stored[i, j, m] + s[i, j] * corr[j, m]``. This keeps one sweep per step (read ``y_k`` and
    ``y_{k-1}``, write ``y_{k+1}`` over ``y_{k-1}``).

    Parameters
    ----------
    cur_cold, prev_cold : bool — ``y_k`` / ``y_{k-1}`` is the ideal start ``b`` (not read).
    drive0 : int — row driven by drive 0 of the block.
    s : (n_rows, n_cols) — square roots of the conductances [S^0.5].
    y_k : (n_rows, n_cols, n_drives), corr_k : (n_cols, n_drives) — current iterate.
    y_prev : (n_rows, n_cols, n_drives), corr_prev : (n_cols, n_drives) — previous iterate
        (read only when ``omega != 1``); overwritten with ``y_{k+1}``, and ``corr_prev`` with
        its pending correction.
    omega, gamma : float — Chebyshev weight and Richardson step ``1 / (1 + rho / 2)``.
    r_source : (n_rows,), r_sense : (n_cols,), r_row, r_col — resistances [Ohm].
    col_s, col_t : (n_cols, n_drives) — output: ``sum_i s y_k`` (that is ``g_eff`` of ``y_k``,
        transposed) and ``sum_i (n_rows - 1 - i) s y_k``, for :func:`certify`.
    estimate : bool — compute ``rr_est`` (only the first step needs it).
    rr_est : (n_drives,) — output: ``|r_k|^2`` from an expansion that loses accuracy once
        ``r_k`` is small against ``rho y_k`` (a progress estimate, never a certificate).
    """
    n_rows, n_cols, n_drv = y_prev.shape
    pre = col_s
    wsum = col_t
    pre[:] = 0.0
    wsum[:] = 0.0
    srp = np.zeros((n_cols, n_drv))      # sum_i s rp, for the residual estimate
    rr_est[:] = 0.0
    yk = np.empty((n_cols, n_drv))
    rpv = np.empty(n_drv)
    row_total = np.empty(n_drv)
    suffix = np.empty(n_drv)
    min_sum = np.empty(n_drv)
    og = omega * gamma
    om1 = 1.0 - omega
    for i in range(n_rows):
        m_src = i - drive0
        has_src = 0 <= m_src < n_drv
        row_total[:] = 0.0
        for j in range(n_cols):
            sij = s[i, j]
            if cur_cold:
                for m in range(n_drv):
                    yk[j, m] = 0.0
                if 0 <= m_src < n_drv:
                    yk[j, m_src] = sij
            else:
                for m in range(n_drv):
                    yk[j, m] = y_k[i, j, m] + sij * corr_k[j, m]
            for m in range(n_drv):
                row_total[m] += sij * yk[j, m]
        rs = r_source[i]
        w_i = float(n_rows - 1 - i)
        for m in range(n_drv):
            suffix[m] = row_total[m]
            min_sum[m] = 0.0
        for j in range(n_cols):
            sij = s[i, j]
            for m in range(n_drv):
                yv = yk[j, m]
                c = sij * yv
                rpv[m] = -yv - sij * (rs * row_total[m] + r_row * min_sum[m]
                                      + r_col * (w_i * pre[j, m] - wsum[j, m]))
                suffix[m] -= c
                min_sum[m] += suffix[m]
                pre[j, m] += c
                wsum[j, m] += w_i * c
            if has_src:
                rpv[m_src] += sij
            if estimate:
                for m in range(n_drv):
                    srp[j, m] += sij * rpv[m]
                    rr_est[m] += rpv[m] * rpv[m]
            if omega == 1.0:
                for m in range(n_drv):
                    y_prev[i, j, m] = og * rpv[m] + yk[j, m]
            elif prev_cold:
                for m in range(n_drv):
                    y_prev[i, j, m] = og * rpv[m] + omega * yk[j, m]
                if has_src:
                    y_prev[i, j, m_src] += om1 * sij
            else:
                for m in range(n_drv):
                    y_prev[i, j, m] = (og * rpv[m] + omega * yk[j, m]
                                       + om1 * (y_prev[i, j, m] + sij * corr_prev[j, m]))
    # column terms: r_k = rp - s C,  C = r_sense S + r_col T
    for j in range(n_cols):
        g_col = 0.0
        if estimate:
            for i in range(n_rows):
                g_col += s[i, j] * s[i, j]
        rsj = r_sense[j]
        for m in range(n_drv):
            cv = rsj * pre[j, m] + r_col * wsum[j, m]
            corr_prev[j, m] = -og * cv
            if estimate:
                rr_est[m] += cv * (cv * g_col - 2.0 * srp[j, m])
    for m in range(n_drv):
        if rr_est[m] < 0.0:
            rr_est[m] = 0.0


@jit
def certify(s, y, corr, drive0, r_source, r_sense, r_row, r_col, col_s, col_t, rr):
    """``rr[m] = |b_m - A y_m|^2`` (true residual) in one sweep, given ``y``'s column sums.

    ``y`` holds ``stored + s * corr`` (see :func:`cheb_pass`); ``col_s`` and ``col_t`` are its
    column sums ``sum_i s y`` and ``sum_i (n_rows - 1 - i) s y`` as :func:`cheb_pass` returns
    them, which supply the column-total terms of ``Z`` before the sweep reaches the bottom.
    """
    n_rows, n_cols, n_drv = y.shape
    pre = np.zeros((n_cols, n_drv))
    wsum = np.zeros((n_cols, n_drv))
    yk = np.empty((n_cols, n_drv))
    row_total = np.empty(n_drv)
    suffix = np.empty(n_drv)
    min_sum = np.empty(n_drv)
    rr[:] = 0.0
    for i in range(n_rows):
        m_src = i - drive0
        row_total[:] = 0.0
        for j in range(n_cols):
            sij = s[i, j]
            for m in range(n_drv):
                yk[j, m] = y[i, j, m] + sij * corr[j, m]
                row_total[m] += sij * yk[j, m]
        rs = r_source[i]
        w_i = float(n_rows - 1 - i)
        for m in range(n_drv):
            suffix[m] = row_total[m]
            min_sum[m] = 0.0
        for j in range(n_cols):
            sij = s[i, j]
            rsj = r_sense[j]
            for m in range(n_drv):
                yv = yk[j, m]
                c = sij * yv
                res = -yv - sij * (rs * row_total[m] + r_row * min_sum[m] + rsj * col_s[j, m]
                                   + r_col * (col_t[j, m] - wsum[j, m] + w_i * pre[j, m]))
                if m == m_src:
                    res += sij
                rr[m] += res * res
                suffix[m] -= c
                min_sum[m] += suffix[m]
                pre[j, m] += c
                wsum[j, m] += w_i * c


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
def fcm_chebyshev(s, drive0, r_source, r_sense, r_row, r_col, rho, y_a, corr_a, y_b, corr_b,
                  warm, tol_res, max_iter):
    """Solve ``(I + S Z S) y = b`` for a block of unit drives by single-sweep Chebyshev steps.

    The spectrum lies in ``[1, 1 + rho]`` (``rho`` the a-priori bound of MODELS.md §3.3), so
    ``|r_k| <= 2 q^k |r_0|`` with ``q = (sqrt(1 + rho) - 1) / (sqrt(1 + rho) + 1)``, the
    conjugate-gradient bound, at a third of the memory traffic per step. When that bound
    predicts ``|r_k| <= tol_res`` (and at the step limit), the true residual of ``y_k`` is
    computed (:func:`certify`); the solve succeeds only when it is within ``tol_res``
    (eigenvalues >= 1, so it bounds the error of ``y_k``).

    Parameters
    ----------
    s : (n_rows, n_cols) — square roots of the conductances.
    drive0 : int — row driven by drive 0 of the block.
    r_source : (n_rows,), r_sense : (n_cols,), r_row, r_col — resistances [Ohm].
    rho : float — upper bound of the spectral radius of ``S Z S``.
    y_a, corr_a : start (read when ``warm``; else the ideal start ``b`` is used).
    y_b, corr_b : workspace of the same shapes.
    warm : bool.
    tol_res : float — required residual 2-norm per drive.
    max_iter : int — limit of steps.

    Returns
    -------
    status : int — 0 certified, 2 limit reached.
    n_iter : int — steps taken.
    res : (n_drives,) — true residual norms of the returned iterate (the last one computed;
        ``status == 2``: some exceed ``tol_res``).
    g_eff : (n_drives, n_cols) — ``sum_i s y`` of that iterate [S].
    in_b : bool — that iterate is in ``y_b``/``corr_b`` (else ``y_a``/``corr_a``).
    """
    n_rows, n_cols, n_drv = y_a.shape
    half = 0.5 * max(rho, 0.0)
    gamma = 1.0 / (1.0 + half)
    sigma = half * gamma
    q = sigma / (1.0 + np.sqrt(1.0 - sigma * sigma))
    omegas = chebyshev_omegas(sigma, max_iter + 1)
    col_s = np.zeros((n_cols, n_drv))
    col_t = np.zeros((n_cols, n_drv))
    rr_est = np.zeros(n_drv)
    rr = np.zeros(n_drv)
    res = np.full(n_drv, np.inf)
    cur, cur_corr, prev, prev_corr = y_a, corr_a, y_b, corr_b
    cur_cold = not warm
    prev_cold = False
    in_b = False
    k_check = 0
    status = 2
    k = 0
    while k <= max_iter:
        # step k: y_{k+1} into prev; column sums and residual estimate of y_k
        cheb_pass(cur_cold, prev_cold, drive0, s, cur, cur_corr, prev, prev_corr, omegas[k],
                  gamma, r_source, r_sense, r_row, r_col, col_s, col_t, k == 0, rr_est)
        if k == 0:
            r0 = np.sqrt(rr_est.max())
            if r0 <= tol_res or q <= 0.0:
                k_check = 0
            else:
                k_check = int(np.ceil(np.log(tol_res / (2.0 * r0)) / np.log(q)))
        if k >= k_check or k == max_iter:
            if cur_cold:
                # y_0 = b was never stored: materialise it for the certificate and the result
                cur[:] = 0.0
                cur_corr[:] = 0.0
                for m in range(n_drv):
                    i = drive0 + m
                    if i < n_rows:
                        for j in range(n_cols):
                            cur[i, j, m] = s[i, j]
                cur_cold = False
            certify(s, cur, cur_corr, drive0, r_source, r_sense, r_row, r_col, col_s, col_t,
                    rr)
            ok = True
            for m in range(n_drv):
                res[m] = np.sqrt(rr[m])
                if res[m] > tol_res:
                    ok = False
            if ok:
                status = 0
                break
        if k == max_iter:
            break
        prev_cold = cur_cold
        cur_cold = False
        cur, cur_corr, prev, prev_corr = prev, prev_corr, cur, cur_corr
        in_b = not in_b
        k += 1
    return status, k, res, col_s.T.copy(), in_b
