"""Benchmark of the effective-conductance solvers on square tiles (issue 2, item 6).

For each regime and size, in one run: nodal ``g_eff`` (golden sparse LU); FCM with its default
direct algorithm (nested dissection) cold and as a refresh after a 1 % random change of ``g``
(it keeps no state, so the two cost the same); FCM's iterative algorithm cold and warm-started
after the same change; and AAM with K = 1..4. Each time is the median of at least ``repeats``
calls timed with :func:`time.perf_counter`, and of more until they add up to
:data:`MIN_SECONDS`, after one untimed first call (which absorbs JIT compilation and gives the
result used for the error columns). Errors are
``max |g_eff_m - g_eff_ref| / max |g_eff_ref|`` with the nodal result as reference, which is
itself within about one float64 rounding of the exact ``g_eff`` (docs/circuit.md), so the
columns measure the other solvers' own errors.

Used by ``xbarsim bench tile`` and ``benchmarks/bench_tile.py`` so both print the same table.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

DEFAULT_SIZES = (32, 64, 128, 256)
"""Square tile sizes of the issue-2 benchmark."""

AAM_ORDERS = (1, 2, 3, 4)
"""Path-expansion orders K timed for AAM."""

CHANGE = 0.01
"""Relative size of the random change of g before the warm FCM refresh (1 % of the range)."""

MIN_SECONDS = 0.25
"""Timed seconds each measurement reaches at least (sub-millisecond solves: hundreds of calls)."""

REGIMES: dict[str, dict[str, float]] = {
    # TxSim devices (TxSim §V): R 100 kOhm - 1 MOhm, wires 1 / 4.6 Ohm per segment
    "txsim": {"g_min": 1.0e-6, "g_max": 1.0e-5, "r_row": 1.0, "r_col": 4.6,
              "r_source": 100.0, "r_sense": 100.0},
    # low-resistance devices and thick parasitics: rho >> 1, AAM diverges, FCM must cope
    "harsh": {"g_min": 5.0e-5, "g_max": 5.0e-4, "r_row": 10.0, "r_col": 10.0,
              "r_source": 100.0, "r_sense": 100.0},
}
"""Parameter sets of the benchmark: conductance range [S] and parasitics [Ohm]."""


def blas_note() -> str:
    """One line saying how long idle OpenBLAS workers spun in this run (it moves the numbers).

    See :func:`xbarsim.runtime.tune_blas_idle`; ``benchmarks/bench_blas_idle.py`` measures it.
    """
    from xbarsim.kernels.blas import idle_wait_log2  # noqa: PLC0415
    from xbarsim.runtime import BLAS_IDLE_WAIT_LOG2  # noqa: PLC0415

    waits = sorted(set(idle_wait_log2()))
    if not waits:
        return "BLAS: no OpenBLAS found; idle wait unknown"
    return ("BLAS: idle OpenBLAS workers spin for "
            + ", ".join(f"2^{w}" for w in waits)
            + f" cycles (OPENBLAS_THREAD_TIMEOUT; xbarsim's CLI sets {BLAS_IDLE_WAIT_LOG2}, "
            "OpenBLAS's default is 28)")


def median_time(fn: Callable[[], Any], repeats: int,
                 setup: Callable[[], Any] | None = None, *, min_seconds: float = 0.0,
                 max_calls: int = 1000) -> tuple[float, Any]:
    """Median wall time [s] of at least ``repeats`` calls of ``fn`` after one untimed call.

    ``setup`` (untimed) runs before every call. Calls continue past ``repeats`` until the timed
    calls add up to ``min_seconds`` (at most ``max_calls`` calls), so that a sub-millisecond
    solve is the median of hundreds of calls, not of a few that a busy machine can shift.
    Returns ``(median, result of the first call)``.
    """
    if setup is not None:
        setup()
    first = fn()
    times: list[float] = []
    while len(times) < repeats or (sum(times) < min_seconds and len(times) < max_calls):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), first


def _rel_err(a: FloatArray, ref: FloatArray) -> float:
    return float(np.max(np.abs(a - ref)) / np.max(np.abs(ref)))


def _solvers() -> tuple[Any, str | None]:
    """Return the solvers module, or None and the reason it is unavailable."""
    try:
        from xbarsim.hardware import solvers

        solvers.FCMSolver  # noqa: B018  (the class the benchmark needs)
    except (ImportError, AttributeError) as exc:
        return None, f"fcm/aam not available ({exc})"
    return solvers, None


def _bench_one(regime: str, g: FloatArray, g2: FloatArray, par: Any, repeats: int,
               run_nodal: bool, solvers: Any, unavailable: str | None,
               rtol: float) -> dict[str, Any]:
    """Measure one tile: ``g`` and its changed copy ``g2``, shape (n, n) [S]."""
    from xbarsim.hardware.circuit import NodalSystem, effective_conductance, rho_bound

    n = g.shape[0]
    kw = dict(r_source=par.r_source, r_sense=par.r_sense, r_row=par.r_row,
              r_col=par.r_col)
    rec: dict[str, Any] = {"regime": regime, "n_rows": n, "n_cols": n, "cells": n * n,
                           "repeats": repeats, "rho_bound": rho_bound(g, **kw),
                           "notes": []}
    logger.info("bench %s %dx%d (rho bound %.3g)", regime, n, n, rec["rho_bound"])

    ref = ref2 = None
    if run_nodal:
        rec["nodal_s"], ref = median_time(lambda: NodalSystem(g, par).g_eff(), repeats,
                                          min_seconds=MIN_SECONDS)
        ref2 = NodalSystem(g2, par).g_eff()
    else:
        rec["nodal_s"] = None
        rec["notes"].append("nodal skipped (--nodal-max-size)")

    rec.update(fcm_cold_s=None, fcm_warm_s=None, err_fcm=None, err_fcm_warm=None,
               iter_cold_s=None, iter_warm_s=None, err_iter=None, err_iter_warm=None)
    for k in AAM_ORDERS:
        rec[f"aam{k}_s"] = rec[f"err_aam{k}"] = None
    if solvers is None:
        rec["notes"].append(str(unavailable))
    else:
        # one solver object each, as a Crossbar would hold it
        direct = solvers.FCMSolver(par, algorithm="direct")
        rec["fcm_cold_s"], g_fcm = median_time(lambda: direct.g_eff(g), repeats,
                                               min_seconds=MIN_SECONDS)
        rec["fcm_warm_s"], g_fcm2 = median_time(lambda: direct.g_eff(g2), repeats,
                                                setup=lambda: direct.g_eff(g),
                                                min_seconds=MIN_SECONDS)
        iterative = solvers.FCMSolver(par, algorithm="iterative", rtol=rtol)
        rec["iter_cold_s"], g_it = median_time(lambda: iterative.g_eff(g, warm=False),
                                               repeats, min_seconds=MIN_SECONDS)
        rec["iter_warm_s"], g_it2 = median_time(
            lambda: iterative.g_eff(g2, warm=True), repeats,
            setup=lambda: iterative.g_eff(g, warm=False), min_seconds=MIN_SECONDS)
        if ref is None:
            ref, ref2 = g_fcm, g_fcm2
        else:
            rec["err_fcm"] = _rel_err(g_fcm, ref)
            rec["err_fcm_warm"] = _rel_err(g_fcm2, ref2)
        rec["err_iter"] = _rel_err(g_it, ref)
        rec["err_iter_warm"] = _rel_err(g_it2, ref2)
        if rec["rho_bound"] >= 1.0:
            rec["notes"].append(f"aam skipped (rho bound {rec['rho_bound']:.3g} >= 1)")
        else:
            for k in AAM_ORDERS:
                with warnings.catch_warnings():
                    # rho in [0.5, 1) warns on every call; the table shows rho instead
                    warnings.simplefilter("ignore", UserWarning)
                    try:
                        rec[f"aam{k}_s"], g_aam = median_time(
                            lambda k=k: effective_conductance(g, method="aam", order=k,
                                                              **kw), repeats,
                            min_seconds=MIN_SECONDS)
                    except ValueError as exc:      # the solver's own rho check
                        rec["notes"].append(f"aam skipped: {exc}")
                        break
                rec[f"err_aam{k}"] = _rel_err(g_aam, ref)
    rec["reference"] = "nodal" if rec["nodal_s"] is not None else "fcm"
    rec["nodal_over_fcm"] = (rec["nodal_s"] / rec["fcm_cold_s"]
                             if rec["nodal_s"] and rec["fcm_cold_s"] else None)
    rec["warm_over_cold"] = (rec["fcm_warm_s"] / rec["fcm_cold_s"]
                             if rec["fcm_warm_s"] and rec["fcm_cold_s"] else None)
    rec["iter_warm_over_cold"] = (rec["iter_warm_s"] / rec["iter_cold_s"]
                                  if rec["iter_warm_s"] and rec["iter_cold_s"] else None)
    rec["iter_warm_over_fcm"] = (rec["iter_warm_s"] / rec["fcm_cold_s"]
                                 if rec["iter_warm_s"] and rec["fcm_cold_s"] else None)
    return rec


def run_tile_bench(sizes: Iterable[int] = DEFAULT_SIZES,
                   regimes: Iterable[str] = tuple(REGIMES), repeats: int = 5, *,
                   seed: int = 0, nodal_max_size: int | None = None,
                   rtol: float = 1e-10) -> list[dict[str, Any]]:
    """Time the g_eff solvers on square tiles.

    Parameters
    ----------
    sizes : iterable of int
        Square tile sizes n (tiles are n x n).
    regimes : iterable of str
        Keys of :data:`REGIMES`.
    repeats : int
        Least number of timed calls per measurement, >= 1; calls continue until they add up
        to :data:`MIN_SECONDS` (the median is reported).
    seed : int
        Seed of the random conductances (stream ``"bench.<regime>.<n>"``).
    nodal_max_size : int, optional
        Skip the nodal solve for sizes above this (it grows fast: seconds at 256 x 256,
        minutes at 1024 x 1024).
        Default None: always run it. Without nodal, errors are taken against direct FCM.
    rtol : float
        Tolerance of the iterative FCM algorithm.

    Returns
    -------
    list of dict
        One record per (regime, size), with keys ``regime, n_rows, n_cols, cells, repeats,
        rho_bound`` and times [s] ``nodal_s``, ``fcm_cold_s, fcm_warm_s`` (direct FCM on ``g``
        and on the changed ``g``), ``iter_cold_s, iter_warm_s`` (iterative FCM, cold and
        warm-started), ``aam1_s .. aam4_s``; ratios ``nodal_over_fcm, warm_over_cold,
        iter_warm_over_cold, iter_warm_over_fcm``; errors (1) ``err_fcm, err_fcm_warm,
        err_iter, err_iter_warm, err_aam1 .. err_aam4``; ``reference`` ("nodal" or "fcm") and
        ``notes`` (list of str). Missing measurements are None.

    Raises
    ------
    ValueError
        Unknown regime, size < 1 or repeats < 1.
    """
    from xbarsim import rng as rng_mod
    from xbarsim.hardware.circuit import Parasitics

    sizes = [int(n) for n in sizes]
    regimes = list(regimes)
    if not sizes or min(sizes) < 1:
        raise ValueError(f"sizes: expected positive integers, got {sizes}")
    if repeats < 1:
        raise ValueError(f"repeats: expected an integer >= 1, got {repeats}")
    for name in regimes:
        if name not in REGIMES:
            raise ValueError(f"regime: unknown {name!r}; choose from {', '.join(REGIMES)}")
    solvers, unavailable = _solvers()

    records: list[dict[str, Any]] = []
    for regime in regimes:
        p = REGIMES[regime]
        for n in sizes:
            gen = rng_mod.stream(seed, f"bench.{regime}.{n}")
            g = gen.uniform(p["g_min"], p["g_max"], size=(n, n))
            step = CHANGE * (p["g_max"] - p["g_min"]) * gen.uniform(-1.0, 1.0, size=(n, n))
            g2 = np.clip(g + step, p["g_min"], p["g_max"])
            par = Parasitics.build(n, n, r_source=p["r_source"], r_sense=p["r_sense"],
                                   r_row=p["r_row"], r_col=p["r_col"])
            load_before = _load_average()
            rec = _bench_one(regime, g, g2, par, repeats,
                             nodal_max_size is None or n <= nodal_max_size,
                             solvers, unavailable, rtol)
            rec["load"] = max(load_before, _load_average())
            records.append(rec)
    return records


def _load_average() -> float:
    """1-minute load average of the machine (NaN where the OS does not report it)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return float("nan")


def load_note(records: Sequence[dict[str, Any]]) -> str:
    """One line with the machine's CPU count and its load average while the records were taken.

    Other processes inflate every time (a load above the CPU count means the benchmark shared
    the cores); the ratios measured side by side suffer less.
    """
    loads = [r["load"] for r in records if r.get("load") is not None and r["load"] == r["load"]]
    cpus = os.cpu_count() or 1
    if not loads:
        return f"Machine: {cpus} CPUs; load average not available"
    busy = " (busy: other processes shared the cores, times are inflated)" if max(
        loads) > cpus else ""
    return (f"Machine: {cpus} CPUs; 1-minute load average during the measurements "
            f"{min(loads):.2g}-{max(loads):.2g}{busy}")


def fit_growth_exponent(records: Sequence[dict[str, Any]], key: str = "fcm_cold_s"
                        ) -> dict[str, float]:
    """Least-squares slope of ``log(time)`` against ``log(n_rows * n_cols)`` per regime.

    Parameters
    ----------
    records : sequence of dict
        Output of :func:`run_tile_bench`.
    key : str
        Time column to fit.

    Returns
    -------
    dict of str to float
        Regime -> exponent ``b`` in ``time ~ (n_rows n_cols)**b``; NaN with fewer than two
        sizes measured.
    """
    out: dict[str, float] = {}
    for regime in dict.fromkeys(r["regime"] for r in records):
        pts = [(r["cells"], r[key]) for r in records
               if r["regime"] == regime and r.get(key) and r[key] > 0]
        if len({c for c, _ in pts}) < 2:
            out[regime] = float("nan")
            continue
        x = np.log([c for c, _ in pts])
        y = np.log([t for _, t in pts])
        out[regime] = float(np.polyfit(x, y, 1)[0])
    return out


TARGETS = (
    # (regime, n, column, limit [s] or ratio, description)
    ("txsim", 64, "fcm_cold_s", 2e-3, "fcm 64x64 txsim <= 2 ms"),
    ("txsim", 64, "nodal_over_fcm", 50.0, "fcm 64x64 txsim >= 50x faster than nodal"),
    ("txsim", 256, "fcm_cold_s", 100e-3, "fcm 256x256 txsim <= 100 ms"),
    ("harsh", 64, "fcm_cold_s", 20e-3, "fcm 64x64 harsh <= 20 ms"),
)


def check_targets(records: Sequence[dict[str, Any]]) -> list[str]:
    """Check the issue-2 performance targets: ``"PASS|FAIL|n/a: description (value)"`` each."""
    lines = []
    for regime, n, col, limit, text in TARGETS:
        rec = next((r for r in records if r["regime"] == regime and r["n_rows"] == n), None)
        val = None if rec is None else rec.get(col)
        if val is None:
            lines.append(f"n/a : {text}")
            continue
        ok = val >= limit if col == "nodal_over_fcm" else val <= limit
        shown = f"{val:.1f}x" if col == "nodal_over_fcm" else f"{val * 1e3:.3g} ms"
        lines.append(f"{'PASS' if ok else 'FAIL'}: {text} ({shown})")
    warm = [r["warm_over_cold"] for r in records if r.get("warm_over_cold") is not None]
    it_warm = [r["iter_warm_over_cold"] for r in records
               if r.get("iter_warm_over_cold") is not None]
    if warm:
        ok = max(warm) <= 0.5 or (bool(it_warm) and max(it_warm) <= 0.5)
        extra = (f"; iterative warm-started: worst {max(it_warm):.2f}" if it_warm else "")
        lines.append(f"{'PASS' if ok else 'FAIL'}: warm refresh <= half a cold one "
                     f"(direct, no warm start: worst refresh-after-change/cold "
                     f"{max(warm):.2f}{extra})")
    else:
        lines.append("n/a : warm refresh <= half a cold one")
    return lines


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e3:.3g}"


def _e(x: float | None) -> str:
    return "-" if x is None else f"{x:.1e}"


def _x(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def format_bench_table(records: Sequence[dict[str, Any]]) -> str:
    """Markdown tables (times in ms, ratios, errors), growth exponents and targets.

    Returns
    -------
    str
        Text ready to print or to save under ``data/bench/`` (``benchmarks/update_docs.py``
        puts it into docs/benchmarks.md).
    """
    k_cols = " | ".join(f"aam K={k}" for k in AAM_ORDERS)
    head = ("| regime | n | rho bound | nodal | fcm | fcm after change | nodal/fcm | "
            f"iterative cold | iterative warm | iter. warm/cold | iter. warm/fcm | {k_cols} |")
    lines = ["Median times [ms] (first call excluded); fcm = the direct algorithm (default), "
             "iterative = Chebyshev/CG:", "", head, "|" + "---|" * (11 + len(AAM_ORDERS))]
    for r in records:
        aam = " | ".join(_ms(r[f"aam{k}_s"]) for k in AAM_ORDERS)
        lines.append(f"| {r['regime']} | {r['n_rows']} | {r['rho_bound']:.3g} | "
                     f"{_ms(r['nodal_s'])} | {_ms(r['fcm_cold_s'])} | {_ms(r['fcm_warm_s'])} | "
                     f"{_x(r['nodal_over_fcm'])} | {_ms(r['iter_cold_s'])} | "
                     f"{_ms(r['iter_warm_s'])} | {_x(r['iter_warm_over_cold'])} | "
                     f"{_x(r['iter_warm_over_fcm'])} | {aam} |")
    e_cols = " | ".join(f"aam K={k}" for k in AAM_ORDERS)
    lines += ["", "Max relative error of g_eff vs the reference (relative to max |g_eff|):", "",
              f"| regime | n | reference | fcm | fcm after change | iterative cold | "
              f"iterative warm | {e_cols} |", "|" + "---|" * (7 + len(AAM_ORDERS))]
    for r in records:
        aam = " | ".join(_e(r[f"err_aam{k}"]) for k in AAM_ORDERS)
        lines.append(f"| {r['regime']} | {r['n_rows']} | {r['reference']} | "
                     f"{_e(r['err_fcm'])} | {_e(r['err_fcm_warm'])} | {_e(r['err_iter'])} | "
                     f"{_e(r['err_iter_warm'])} | {aam} |")
    exps = fit_growth_exponent(records)
    it_exps = fit_growth_exponent(records, key="iter_cold_s")
    lines += ["", "Growth exponent b of fcm time ~ (n_rows*n_cols)**b (log-log fit): "
              + ", ".join(f"{k} {v:.2f}" for k, v in exps.items())
              + "; iterative cold: " + ", ".join(f"{k} {v:.2f}" for k, v in it_exps.items())]
    lines += ["", load_note(records)]
    lines += ["", "Targets (issue 2):", *(f"  {t}" for t in check_targets(records))]
    notes = [f"  {r['regime']} {r['n_rows']}: {n}" for r in records for n in r["notes"]]
    if notes:
        lines += ["", "Notes:", *dict.fromkeys(notes)]
    return "\n".join(lines)
