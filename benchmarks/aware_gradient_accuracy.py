"""Accuracy of the circuit gradients of aware training (docs/aware.md, tables 1 and 2).

1. The exact gradient (adjoint method) against central differences of the non-ideal forward,
   on every shape and regime of the acceptance test (plus 64 x 64): max |exact - fd| / max |fd|.
2. The approximate gradients ``aam1`` and ``straight_through`` against ``exact`` for a
   layer-like ``dL/dg_eff = V^T delta`` (batch 16, random inputs and errors): the relative
   error ``|approx - exact| / |exact|`` (Frobenius) and the cosine between them (1 = same
   descent direction), over array sizes and regimes.

Usage: ``python benchmarks/aware_gradient_accuracy.py [--out data/bench/aware_gradient.txt]``
(about a minute).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from xbarsim.hardware import schur
from xbarsim.hardware.adjoint import conductance_gradient
from xbarsim.hardware.aware import aam1_gradient
from xbarsim.hardware.circuit import Parasitics, rho_bound

REGIMES = {
    "txsim (100k-1M, wires 1/4.6, terminals 0)":
        dict(g=(1e-6, 1e-5), r_source=0.0, r_sense=0.0, r_row=1.0, r_col=4.6),
    "txsim + terminals 1k":
        dict(g=(1e-6, 1e-5), r_source=1e3, r_sense=1e3, r_row=1.0, r_col=4.6),
    "chakraborty (100k-1M, terminals 1k/2k, no wires)":
        dict(g=(1e-6, 1e-5), r_source=1e3, r_sense=2e3, r_row=0.0, r_col=0.0),
    "conductive (10k-100k, wires 1/4.6, terminals 500)":
        dict(g=(1e-5, 1e-4), r_source=500.0, r_sense=500.0, r_row=1.0, r_col=4.6),
    "harsh (2k-20k, wires 10, terminals 100-1000)":
        dict(g=(5e-5, 5e-4), r_source=(100.0, 1000.0), r_sense=(100.0, 1000.0), r_row=10.0,
             r_col=10.0),
}


def circuit(rng: np.random.Generator, shape: tuple[int, int], spec: dict
            ) -> tuple[np.ndarray, Parasitics]:
    n_rows, n_cols = shape
    g = rng.uniform(*spec["g"], size=shape)

    def line(value, n):
        return rng.uniform(*value, size=n) if isinstance(value, tuple) else value

    par = Parasitics.build(n_rows, n_cols, r_source=line(spec["r_source"], n_rows),
                           r_sense=line(spec["r_sense"], n_cols), r_row=spec["r_row"],
                           r_col=spec["r_col"])
    return g, par


def fd_error(rng: np.random.Generator, shape: tuple[int, int], spec: dict) -> float:
    g, par = circuit(rng, shape, spec)
    p, q = rng.standard_normal((shape[0], 3)), rng.standard_normal((shape[1], 3))
    gamma = p @ q.T
    exact = conductance_gradient(g, par, p, q)
    fd = np.empty_like(g)
    for k in range(shape[0]):
        for m in range(shape[1]):
            h = 1e-4 * g[k, m]
            gp, gm = g.copy(), g.copy()
            gp[k, m] += h
            gm[k, m] -= h
            fd[k, m] = (np.sum(gamma * schur.g_eff(gp, par))
                        - np.sum(gamma * schur.g_eff(gm, par))) / (2 * h)
    return float(np.abs(exact - fd).max() / np.abs(fd).max())


def approx_errors(rng: np.random.Generator, shape: tuple[int, int], spec: dict
                  ) -> tuple[float, float, float, float, float]:
    g, par = circuit(rng, shape, spec)
    v = rng.uniform(0.0, 1.0, (16, shape[0]))            # non-negative inputs (ReLU layers)
    delta = rng.standard_normal((16, shape[1]))
    gamma = v.T @ delta
    exact = conductance_gradient(g, par, v.T, delta.T)
    out = [rho_bound(g, r_source=par.r_source, r_sense=par.r_sense, r_row=par.r_row,
                     r_col=par.r_col)]
    for approx in (aam1_gradient(g, par, gamma), gamma):
        err = np.linalg.norm(approx - exact) / np.linalg.norm(exact)
        cos = np.sum(approx * exact) / (np.linalg.norm(approx) * np.linalg.norm(exact))
        out += [float(err), float(cos)]
    return tuple(out)  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="also write the tables to this file")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(20260123)
    lines = ["# xbarsim: accuracy of the aware-training circuit gradients",
             f"# {time.strftime('%Y-%m-%d %H:%M')}; python benchmarks/aware_gradient_accuracy.py",
             "",
             "Table 1. exact (adjoint) gradient vs central differences of g_eff "
             "(relative step 1e-4): max|exact - fd| / max|fd|", ""]
    shapes = [(1, 1), (3, 5), (8, 8), (17, 9), (30, 40)]
    head = f"{'regime':<52}" + "".join(f"{f'{a}x{b}':>10}" for a, b in shapes)
    lines += [head, "-" * len(head)]
    for name, spec in REGIMES.items():
        row = f"{name:<52}" + "".join(f"{fd_error(rng, s, spec):>10.1e}" for s in shapes)
        lines.append(row)
        print(row, file=sys.stderr, flush=True)
    lines += ["", "Table 2. approximate gradients vs exact, dL/dg_eff = V^T delta (batch 16, "
              "V uniform in [0, 1], delta normal): relative error |approx - exact| / |exact| and "
              "cosine(approx, exact); rho = a-priori bound on the spectral radius of Z D "
              "(the AAM series converges for rho < 1)", ""]
    head = (f"{'regime':<52}{'size':>9}{'rho':>9}{'aam1 err':>10}{'aam1 cos':>10}"
            f"{'st err':>10}{'st cos':>10}")
    lines += [head, "-" * len(head)]
    for name, spec in REGIMES.items():
        for n in (32, 64, 128):
            rho, e_aam, c_aam, e_st, c_st = approx_errors(rng, (n, n), spec)
            row = (f"{name:<52}{f'{n}x{n}':>9}{rho:>9.3g}{e_aam:>10.2e}{c_aam:>10.4f}"
                   f"{e_st:>10.2e}{c_st:>10.4f}")
            lines.append(row)
            print(row, file=sys.stderr, flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
