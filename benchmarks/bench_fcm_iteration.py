"""FCM iterations side by side: conjugate gradients against single-sweep Chebyshev.

    python benchmarks/bench_fcm_iteration.py [--sizes 32,64,128,256] [--repeats 5]

Both iterations of :class:`xbarsim.hardware.solvers.FCMSolver` on the same tiles in one run
(the ``iteration="auto"`` rule is calibrated on this table). Two scenarios:

* one array with the solver's default threads, cold and warm (after a 1 % random change of g),
  in the TxSim and harsh regimes of ``xbarsim bench tile``;
* eight 64 x 64 arrays refreshed warm on two threads, one thread per array, after a 0.2 %
  change (what a Tile does after a training step), with 100 Ohm and with ideal terminals.

Prints median times [ms], iterations and the ratio CG / Chebyshev (> 1: Chebyshev faster).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from xbarsim.runtime import tune_allocator, tune_blas_idle

if __name__ == "__main__":
    tune_blas_idle()    # as the CLI does, before NumPy loads OpenBLAS (xbarsim.runtime)

import numpy as np  # noqa: E402

from xbarsim.hardware.circuit import Parasitics  # noqa: E402
from xbarsim.hardware.solvers import FCMSolver  # noqa: E402
from xbarsim.studies.bench import REGIMES  # noqa: E402

ITERATIONS = ("cg", "chebyshev")


def _median_ms(fn: Callable[[], Any], repeats: int,
               setup: Callable[[], Any] | None = None) -> float:
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def single_array(sizes: list[int], repeats: int, seed: int = 0) -> list[str]:
    """Cold and warm refresh of one array per size and regime, both iterations."""
    rng = np.random.default_rng(seed)
    rows = ["| regime | n | CG cold | Cheb. cold | CG warm | Cheb. warm | iterations CG / Cheb."
            " (cold) | CG/Cheb. cold | CG/Cheb. warm |", "|---|---|---|---|---|---|---|---|---|"]
    for regime, spec in REGIMES.items():
        for n in sizes:
            g = rng.uniform(spec["g_min"], spec["g_max"], (n, n))
            g2 = g * (1.0 + 0.01 * rng.uniform(-1.0, 1.0, g.shape))
            par = Parasitics.build(n, n, r_source=spec["r_source"], r_sense=spec["r_sense"],
                                   r_row=spec["r_row"], r_col=spec["r_col"])
            reps = max(1, repeats // 2) if n >= 256 else repeats
            res: dict[str, tuple[float, float, int]] = {}
            for it in ITERATIONS:
                solver = FCMSolver(par, iteration=it)
                solver.g_eff(g)     # compile and warm the caches
                cold = _median_ms(lambda s=solver, g=g: s.g_eff(g, warm=False), reps)
                n_cold = solver.stats.n_iter
                warm = _median_ms(lambda s=solver, g2=g2: s.g_eff(g2),
                                  reps, setup=lambda s=solver, g=g: s.g_eff(g))
                res[it] = (cold, warm, n_cold)
            cg, ch = res["cg"], res["chebyshev"]
            rows.append(f"| {regime} | {n} | {cg[0]:.3g} | {ch[0]:.3g} | {cg[1]:.3g} | "
                        f"{ch[1]:.3g} | {cg[2]} / {ch[2]} | {cg[0] / ch[0]:.2f} | "
                        f"{cg[1] / ch[1]:.2f} |")
    return rows


def tile_like(repeats: int, n_arrays: int = 8, n: int = 64, seed: int = 1) -> list[str]:
    """Warm refresh of several arrays on two threads (one single-threaded solver each)."""
    rng = np.random.default_rng(seed)
    rows = ["| terminals [Ohm] | CG [ms] | Cheb. [ms] | CG/Cheb. |", "|---|---|---|---|"]
    with ThreadPoolExecutor(2) as pool:
        for r_term in (100.0, 0.0):
            par = Parasitics.build(n, n, r_source=r_term, r_sense=r_term, r_row=1.0, r_col=4.6)
            gs = [rng.uniform(1e-6, 1e-5, (n, n)) for _ in range(n_arrays)]
            res = {}
            for it in ITERATIONS:
                solvers = [FCMSolver(par, iteration=it, n_threads=1) for _ in gs]
                state = {"g": gs}
                list(pool.map(lambda sg: sg[0].g_eff(sg[1]), zip(solvers, gs, strict=True)))

                def change(state: dict[str, Any] = state) -> None:
                    state["g"] = [g * (1.0 + 0.002 * rng.uniform(-1.0, 1.0, g.shape))
                                  for g in state["g"]]

                def refresh(solvers: list[FCMSolver] = solvers,
                            state: dict[str, Any] = state) -> None:
                    list(pool.map(lambda sg: sg[0].g_eff(sg[1]),
                                  zip(solvers, state["g"], strict=True)))

                res[it] = _median_ms(refresh, repeats, setup=change)
            rows.append(f"| {r_term:g} | {res['cg']:.3g} | {res['chebyshev']:.3g} | "
                        f"{res['cg'] / res['chebyshev']:.2f} |")
    return rows


def main() -> None:
    """Parse the options, run both scenarios, print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="32,64,128,256")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    print("One array, median [ms]:\n")
    print("\n".join(single_array(sizes, args.repeats)))
    print("\nEight 64x64 arrays refreshed warm on two threads (TxSim devices), median [ms]:\n")
    print("\n".join(tile_like(args.repeats)))


if __name__ == "__main__":
    tune_allocator()    # as the CLI does (xbarsim.runtime)
    main()
