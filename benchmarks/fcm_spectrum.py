"""Spectrum of the FCM operator, and how much a coarse space of line modes would remove.

FCM solves ``(I + S Z S) y = b`` (docs/circuit.md, 'The device-voltage formulation'); Chebyshev
needs about
``log(tol) / log(q)`` steps with ``q = (sqrt(1 + rho) - 1) / (sqrt(1 + rho) + 1)``, ``rho`` the
largest eigenvalue of ``S Z S``. This study builds ``S Z S`` densely from the library's own
operator (:func:`xbarsim.kernels.fcm.z_apply`, one column per unit vector; small tiles only)
and prints

* its largest eigenvalues: one per line (``n_cols`` column modes, then ``n_rows`` row modes)
  stand out, the rest are an order of magnitude smaller;
* the spectrum left after deflating ``2 n`` line modes (``P A`` with ``P = I - A V E^-1 V^T``,
  ``E = V^T A V``), each mode the line's own block ``s Z_line s`` applied twice to ``s``
  (O(n) per line with running sums), and the Chebyshev steps both spectra imply.

It is an analysis for a possible two-level FCM, not a benchmark: the solver does not deflate.
What stands in the way is applying ``A V c`` in every step without a pass over the fields
(``A V`` is dense, ``n_rows n_cols x 2 n``). Usage: ``python benchmarks/fcm_spectrum.py --n 32``.
"""

from __future__ import annotations

import argparse

import numpy as np

from xbarsim.kernels.fcm import z_apply
from xbarsim.studies.bench import REGIMES


def dense_operator(g: np.ndarray, r_source: float, r_sense: float, r_row: float,
                   r_col: float) -> np.ndarray:
    """``S Z S`` as a dense (N, N) matrix, N = n_rows * n_cols, from ``z_apply = Z D``."""
    n_rows, n_cols = g.shape
    n = g.size
    rs = np.full(n_rows, r_source)
    rk = np.full(n_cols, r_sense)
    zd = np.empty((n, n))
    unit = np.zeros(n)
    for k in range(n):
        unit[k] = 1.0
        zd[:, k] = z_apply(g, unit.reshape(g.shape), rs, rk, r_row, r_col).ravel()
        unit[k] = 0.0
    s = np.sqrt(g.ravel())
    m = s[:, None] * zd / s[None, :]              # S (Z D) S^-1 = S Z S
    assert np.allclose(m, m.T, rtol=1e-9, atol=1e-12 * np.abs(m).max())
    return 0.5 * (m + m.T)


def line_modes(szs: np.ndarray, shape: tuple[int, int], n_power: int = 2) -> np.ndarray:
    """(N, n_rows + n_cols): per line, its block of ``S Z S`` applied ``n_power`` times to s."""
    n_rows, n_cols = shape
    idx = np.arange(n_rows * n_cols).reshape(shape)
    lines = [idx[i] for i in range(n_rows)] + [idx[:, j] for j in range(n_cols)]
    v = np.zeros((n_rows * n_cols, len(lines)))
    s = np.sqrt(np.diag(szs).clip(min=0))         # any positive start vector works
    for k, ids in enumerate(lines):
        block = szs[np.ix_(ids, ids)]
        x = s[ids] + 1.0
        for _ in range(n_power):
            x = block @ x
            x /= np.linalg.norm(x)
        v[ids, k] = x
    return v


def chebyshev_steps(rho: float, tol: float = 5e-11) -> float:
    q = (np.sqrt(1.0 + rho) - 1.0) / (np.sqrt(1.0 + rho) + 1.0)
    return float(np.log(tol) / np.log(q)) if q > 0 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=32, help="square tile size (N = n^2; <= 64)")
    ap.add_argument("--regimes", default="txsim,harsh")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    n = args.n
    for name in args.regimes.split(","):
        reg = REGIMES[name]
        g = np.random.default_rng(args.seed).uniform(reg["g_min"], reg["g_max"], (n, n))
        szs = dense_operator(g, reg["r_source"], reg["r_sense"], reg["r_row"], reg["r_col"])
        ev = np.linalg.eigvalsh(szs)[::-1]
        rho = ev[0]
        a = np.eye(n * n) + szs
        v = line_modes(szs, (n, n))
        e = v.T @ a @ v
        pa = a - a @ v @ np.linalg.solve(e, v.T @ a)
        dev = np.linalg.eigvalsh(0.5 * (pa + pa.T))
        dev = dev[dev > 1e-8]
        rho_defl = dev.max() / dev.min() - 1.0
        marks = [k for k in (1, 2, n, n + 1, 2 * n, 2 * n + 1) if k <= ev.size]
        print(f"{name} {n}x{n}: rho = {rho:.4g}; eigenvalue k / rho: "
              + ", ".join(f"k={k}: {ev[k - 1] / rho:.3f}" for k in marks))
        print(f"  deflated by {2 * n} line modes: spectrum [{dev.min():.4f}, {dev.max():.4f}], "
              f"rho_eff = {rho_defl:.4g} ({rho / rho_defl:.0f}x smaller); Chebyshev steps for "
              f"1e-10: {chebyshev_steps(rho):.1f} -> {chebyshev_steps(rho_defl):.1f}")


if __name__ == "__main__":
    main()
