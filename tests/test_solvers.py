"""FCM, AAM and interpolated solvers against the golden nodal solver and dense references."""

from __future__ import annotations

import importlib
import logging
import pkgutil

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import xbarsim.kernels
from xbarsim import effective_conductance
from xbarsim.errors import ConvergenceError
from xbarsim.hardware.circuit import Parasitics, rho_bound
from xbarsim.hardware.solvers import (
    SOLVERS,
    AAMSolver,
    FCMSolver,
    InterpolatedSolver,
    NodalSolver,
    make_solver,
)
from xbarsim.kernels import aam as aam_kernels
from xbarsim.kernels import fcm as fcm_kernels
from xbarsim.testing import TOL

from .strategies import circuits


def _par(c) -> Parasitics:
    return Parasitics.build(*c.g.shape, **c.parasitics)


def dense_z(g, r_source, r_sense, r_row, r_col):
    """Z of the device-voltage formulation (docs/circuit.md), entry by entry (cell i*N + j)."""
    n_rows, n_cols = g.shape
    z = np.zeros((n_rows * n_cols, n_rows * n_cols))
    for i in range(n_rows):
        for j in range(n_cols):
            for k in range(n_rows):
                for l in range(n_cols):
                    val = 0.0
                    if i == k:  # shared row path of cells j and l
                        val += r_source[i] + r_row * min(j, l)
                    if j == l:  # shared column path of cells i and k
                        val += r_sense[j] + r_col * (n_rows - 1 - max(i, k))
                    z[i * n_cols + j, k * n_cols + l] = val
    return z


def dense_g_eff(g, r_source, r_sense, r_row, r_col, order=None):
    """Exact (order=None) or truncated-series g_eff from the dense device-voltage system."""
    n_rows, n_cols = g.shape
    z = dense_z(g, r_source, r_sense, r_row, r_col)
    zd = z * g.reshape(-1)[None, :]
    e = np.zeros((n_rows * n_cols, n_rows))
    for i in range(n_rows):
        e[i * n_cols:(i + 1) * n_cols, i] = 1.0
    if order is None:
        x = np.linalg.solve(np.eye(n_rows * n_cols) + zd, e)
    else:
        term, x = e.copy(), e.copy()
        for _ in range(order):
            term = -zd @ term
            x += term
    # g_eff[m, j] = sum_i g[i, j] x_m[i, j]
    return np.einsum("ij,ijm->mj", g, x.reshape(n_rows, n_cols, n_rows))


# ---------------------------------------------------------------- kernels vs references

def test_z_apply_matches_dense_z(rng):
    g = rng.uniform(1e-6, 1e-3, (5, 7))
    x = rng.standard_normal((5, 7))
    par = Parasitics.build(5, 7, r_source=rng.uniform(0, 50, 5), r_sense=rng.uniform(0, 50, 7),
                           r_row=1.5, r_col=4.0)
    args = (g, x, par.r_source, par.r_sense, par.r_row, par.r_col)
    want = (dense_z(g, *args[2:]) @ (g * x).reshape(-1)).reshape(5, 7)
    assert_allclose(fcm_kernels.z_apply(*args), want, rtol=TOL.kernel_rtol)
    assert_allclose(fcm_kernels.z_apply.py_func(*args), want, rtol=TOL.kernel_rtol)


def test_z_op_batched_matches_z_apply(rng):
    g = rng.uniform(1e-6, 1e-3, (6, 4))
    x = rng.standard_normal((6, 4, 3))
    o_scale = rng.uniform(0.5, 2.0, (6, 4))
    par = Parasitics.build(6, 4, r_source=3.0, r_sense=rng.uniform(0, 9, 4), r_row=2.0, r_col=7.0)
    for fn in (fcm_kernels.z_op, fcm_kernels.z_op.py_func):
        out = np.empty_like(x)
        dots = np.empty(3)
        fn(g, x, o_scale, 0.5, par.r_source, par.r_sense, par.r_row, par.r_col, out,
           np.empty((4, 3)), np.empty((4, 3)), dots)
        for m in range(3):
            want = 0.5 * x[..., m] + o_scale * fcm_kernels.z_apply(
                g, x[..., m], par.r_source, par.r_sense, par.r_row, par.r_col)
            assert_allclose(out[..., m], want, rtol=1e-12, atol=1e-15)
            assert_allclose(dots[m], np.sum(x[..., m] * out[..., m]), rtol=1e-12)


@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_aam_series_matches_dense_neumann(rng, order):
    g = rng.uniform(1e-6, 1e-4, (4, 5))
    par = Parasitics.build(4, 5, r_source=100.0, r_sense=50.0, r_row=3.0, r_col=5.0)
    p = (par.r_source, par.r_sense, par.r_row, par.r_col)
    want = dense_g_eff(g, *p, order=order)
    got = aam_kernels.aam_series(g, order, 0, 4, *p)
    assert_allclose(got, want, rtol=1e-12)
    assert_allclose(aam_kernels.aam_series.py_func(g, order, 1, 2, *p), want[1:3], rtol=1e-12)
    assert_allclose(AAMSolver(par, order=order).g_eff(g), want, rtol=1e-12)


def test_aam_first_order_closed_form_equals_series(rng):
    g = rng.uniform(1e-6, 1e-5, (8, 6))
    par = Parasitics.build(8, 6, r_source=100.0, r_sense=100.0, r_row=1.0, r_col=4.6)
    p = (par.r_source, par.r_sense, par.r_row, par.r_col)
    assert_allclose(aam_kernels.aam_first_order(g, *p), aam_kernels.aam_series(g, 1, 0, 8, *p),
                    rtol=1e-13)


def test_fcm_cg_py_func_matches_jit(rng):
    g = rng.uniform(1e-5, 1e-4, (3, 4))
    par = Parasitics.build(3, 4, r_source=100.0, r_sense=30.0, r_row=2.0, r_col=3.0)
    outs = []
    for fn in (fcm_kernels.fcm_cg, fcm_kernels.fcm_cg.py_func):
        y = np.empty((3, 4, 3))
        fcm_kernels.ideal_guess(np.sqrt(g), 0, y)
        work = [np.empty_like(y) for _ in range(3)]
        fn(g, y, 0, par.r_source, par.r_sense, par.r_row, par.r_col, np.full(3, 1e-16), 100,
           *work)
        outs.append(fcm_kernels.collect_g_eff(np.sqrt(g), y))
    assert_allclose(outs[0], outs[1], rtol=1e-12)
    want = dense_g_eff(g, par.r_source, par.r_sense, par.r_row, par.r_col)
    assert_allclose(outs[0], want, rtol=1e-10)


def test_kernels_have_no_fastmath():
    """Numba options live in kernels/_jit.py; no kernel may switch fastmath on."""
    n_checked = 0
    for info in pkgutil.iter_modules(xbarsim.kernels.__path__):
        mod = importlib.import_module(f"xbarsim.kernels.{info.name}")
        for obj in vars(mod).values():
            opts = getattr(obj, "targetoptions", None)
            if opts is not None:
                assert opts.get("fastmath") in (None, False), obj
                n_checked += 1
    assert n_checked >= 8


# ---------------------------------------------------------------- FCM

ITERATIONS = ["cg", "chebyshev"]


@pytest.mark.parametrize("iteration", ITERATIONS)
@given(c=circuits(max_side=10))
def test_fcm_equals_nodal_within_tolerance(c, iteration):
    """FCM's guaranteed bound: max|g_eff - exact| <= rtol * max(g) (plus round-off; the golden
    solve itself is within ~2e-16 of the exact g_eff)."""
    par = _par(c)
    want = NodalSolver(par).g_eff(c.g)
    solver = FCMSolver(par, algorithm="iterative", rtol=1e-10, fallback=None, iteration=iteration)
    got = solver.g_eff(c.g)
    assert_allclose(got, want, rtol=0, atol=1e-10 * c.g.max() + 1e-14 * np.abs(want).max())
    assert solver.stats.residual <= 1e-10


@pytest.mark.parametrize("iteration", ITERATIONS)
@given(c=circuits(max_side=8), rtol=st.sampled_from([1e-4, 1e-7]))
def test_fcm_looser_tolerance_is_honoured(c, rtol, iteration):
    par = _par(c)
    want = NodalSolver(par).g_eff(c.g)
    got = FCMSolver(par, algorithm="iterative", rtol=rtol, fallback=None,
                    iteration=iteration).g_eff(c.g)
    assert np.abs(got - want).max() <= rtol * c.g.max() * (1 + 1e-6) + 1e-14 * np.abs(want).max()


@pytest.mark.parametrize("iteration", ITERATIONS)
def test_fcm_ideal_limit_and_zero_conductance(rng, iteration):
    g = rng.uniform(1e-6, 1e-5, (6, 9))
    solver = FCMSolver(Parasitics.build(6, 9), algorithm="iterative", iteration=iteration)
    assert_allclose(solver.g_eff(g), g, rtol=1e-14)
    g[2, :] = 0.0
    g[:, 4] = 0.0
    par = Parasitics.build(6, 9, r_source=100.0, r_sense=100.0, r_row=1.0, r_col=4.6)
    assert_allclose(FCMSolver(par, algorithm="iterative", iteration=iteration).g_eff(g),
                    NodalSolver(par).g_eff(g),
                    rtol=0, atol=1e-10 * g.max())
    solver = FCMSolver(par, algorithm="iterative", iteration=iteration)
    assert np.all(solver.g_eff(np.zeros((6, 9))) == 0.0)


@pytest.mark.parametrize("iteration", ITERATIONS)
@pytest.mark.parametrize("shape", [(16, 16), (24, 9), (9, 24)])
def test_fcm_warm_start_matches_cold_after_update(rng, shape, iteration):
    par = Parasitics.build(*shape, r_source=100.0, r_sense=100.0, r_row=1.0, r_col=4.6)
    g = rng.uniform(1e-6, 1e-5, shape)
    solver = FCMSolver(par, algorithm="iterative", iteration=iteration)
    solver.g_eff(g)
    cold_iter = solver.stats.n_iter
    for _ in range(2):      # twice: the second warm start begins from a warm-started state
        g2 = g * (1 + 0.01 * rng.uniform(-1, 1, shape))
        warm = solver.g_eff(g2)
        assert solver.stats.n_iter <= cold_iter
        assert_allclose(warm, NodalSolver(par).g_eff(g2), rtol=0, atol=1e-10 * g2.max())
        cold = FCMSolver(par, algorithm="iterative", warm_start=False).g_eff(g2)
        assert_allclose(warm, cold, rtol=0,
                        atol=2e-10 * g2.max())
        g = g2


def test_fcm_auto_iteration_by_size_and_rho_bound(rng):
    small = Parasitics.build(16, 16, r_source=100.0, r_sense=100.0, r_row=1.0, r_col=4.6)
    large = Parasitics.build(64, 64, r_source=100.0, r_sense=100.0, r_row=1.0, r_col=4.6)
    assert FCMSolver(small)._choose_iteration(16 * 16, 0.1) == "cg"
    assert FCMSolver(large)._choose_iteration(64 * 64, 0.1) == "chebyshev"
    assert FCMSolver(large)._choose_iteration(64 * 64, 50.0) == "cg"
    assert FCMSolver(large)._choose_iteration(128 * 128, 50.0) == "chebyshev"
    cheb = FCMSolver(small, algorithm="iterative", iteration="chebyshev")
    assert cheb._choose_iteration(16 * 16, 50.0) == "chebyshev"
    g = rng.uniform(1e-6, 1e-5, (64, 64))
    solver = FCMSolver(large, algorithm="iterative")
    solver.g_eff(g)
    assert solver._state_kind == "chebyshev"


@pytest.mark.parametrize(("n", "kind", "blocks"), [
    (40, "chebyshev", [40]),              # two blocks of 20 would not vectorise
    (64, "chebyshev", [32, 32]),          # one per thread
    (40, "cg", [20, 20]),                 # CG keeps one block per thread
    (300, "chebyshev", [28] * 10 + [20]),  # memory cap (23 drives) raised to 28
])
def test_fcm_drive_blocks_per_iteration(n, kind, blocks):
    par = Parasitics.build(n, n, r_source=100.0, r_sense=100.0, r_row=1.0, r_col=4.6)
    solver = FCMSolver(par, algorithm="iterative", n_threads=2, iteration=kind)
    solver._layout(n, n, kind)
    assert [d1 - d0 for d0, d1 in solver._blocks] == blocks
    assert solver._blocks[0][0] == 0 and solver._blocks[-1][1] == n


def test_fcm_switching_iteration_relays_the_blocks_and_stays_exact(rng):
    """A change of iteration between calls (auto crosses its rho rule) re-lays the drive
    blocks and starts cold; every call still meets the tolerance."""
    par = Parasitics.build(40, 40, r_source=100.0, r_sense=100.0, r_row=1.0, r_col=4.6)
    g = rng.uniform(1e-6, 1e-5, (40, 40))
    want = NodalSolver(par).g_eff(g)
    solver = FCMSolver(par, algorithm="iterative", n_threads=2, iteration="cg")
    for kind in ("cg", "chebyshev", "chebyshev", "cg"):
        solver.iteration = kind
        assert_allclose(solver.g_eff(g), want, rtol=0, atol=1e-10 * g.max())
        assert solver._state_kind == kind
        assert len(solver._blocks) == (1 if kind == "chebyshev" else 2)


def _dense_a_b(g, par, drive0, n_drv):
    """``A = I + S Z S`` and the unit drives ``b`` (columns) of the symmetric FCM system."""
    s = np.sqrt(g)
    z = dense_z(g, par.r_source, par.r_sense, par.r_row, par.r_col)
    a = np.eye(g.size) + s.reshape(-1)[:, None] * z * s.reshape(-1)[None, :]
    b = np.zeros((*g.shape, n_drv))
    for m in range(n_drv):
        if drive0 + m < g.shape[0]:
            b[drive0 + m, :, m] = s[drive0 + m]
    return a, b


@pytest.mark.parametrize("prev_is_b", [True, False])
@pytest.mark.parametrize("cold", [True, False])
def test_cheb_step_residual_next_iterate_and_totals_match_dense(rng, cold, prev_is_b):
    """One step: exact residual of y_k, the Chebyshev update, line totals of y_{k+1}.

    ``cold``: y_k is the ideal start b, whose totals ``ideal_totals`` forms without reading the
    field; ``prev_is_b``: y_{k-1} = b is taken from the drive pattern, the field (NaN here) is
    not read.
    """
    n_rows, n_cols, n_drv, drive0 = 5, 7, 4, 2       # drives 3 and 4 lie beyond the rows
    g = rng.uniform(1e-5, 1e-4, (n_rows, n_cols))
    par = Parasitics.build(n_rows, n_cols, r_source=rng.uniform(0, 50, n_rows),
                           r_sense=rng.uniform(0, 50, n_cols), r_row=2.0, r_col=3.0)
    p = (par.r_source, par.r_sense, par.r_row, par.r_col)
    s = np.sqrt(g)
    a, b = _dense_a_b(g, par, drive0, n_drv)
    y = b.copy() if cold else rng.standard_normal((n_rows, n_cols, n_drv)) * 1e-3
    y_prev = (np.full_like(b, np.nan) if prev_is_b
              else rng.standard_normal((n_rows, n_cols, n_drv)) * 1e-3)
    totals = [np.empty((n_rows, n_drv)), np.empty((n_cols, n_drv))]
    fcm_kernels.field_totals(s, y, np.ones_like(s), par.r_sense, par.r_col, *totals)
    if cold:
        ideal = [np.empty((n_rows, n_drv)), np.empty((n_cols, n_drv))]
        fcm_kernels.ideal_totals(s, drive0, par.r_sense, par.r_col, *ideal)
        assert_allclose(ideal[0], totals[0], rtol=1e-13)
        assert_allclose(ideal[1], totals[1], rtol=1e-13)
    omega, gamma = 1.3, 0.8
    y_next = y_prev.copy()
    next_totals = [np.empty((n_rows, n_drv)), np.empty((n_cols, n_drv))]
    col_s, rr = np.empty((n_cols, n_drv)), np.empty(n_drv)
    fcm_kernels.cheb_step(prev_is_b, drive0, s, y,
                          *totals, y_next, omega, gamma, *p, True, *next_totals, col_s, rr)
    for m in range(n_drv):
        r = b[..., m].reshape(-1) - a @ y[..., m].reshape(-1)
        assert rr[m] == pytest.approx(r @ r, rel=1e-10)
        y_m = y[..., m].reshape(-1)
        y_prev_m = (b if prev_is_b else y_prev)[..., m].reshape(-1)
        want = omega * (gamma * r + y_m) + (1 - omega) * y_prev_m
        assert_allclose(y_next[..., m].reshape(-1), want, rtol=1e-10, atol=1e-18)
    assert_allclose(col_s, np.einsum("ij,ijm->jm", s, y), rtol=1e-12, atol=1e-20)
    want_totals = [np.empty((n_rows, n_drv)), np.empty((n_cols, n_drv))]
    fcm_kernels.field_totals(s, y_next, np.ones_like(s), par.r_sense, par.r_col, *want_totals)
    assert_allclose(next_totals[0], want_totals[0], rtol=1e-12, atol=1e-20)
    assert_allclose(next_totals[1], want_totals[1], rtol=1e-12, atol=1e-20)
    # write=False certifies only: the same residual, the next iterate untouched
    y_keep = y_prev.copy()
    rr2 = np.empty(n_drv)
    fcm_kernels.cheb_step(prev_is_b, drive0, s, y, *totals, y_keep, omega, gamma, *p,
                          False, *next_totals, col_s, rr2)
    assert_allclose(rr2, rr, rtol=1e-12)
    assert_allclose(y_keep, y_prev, rtol=0)


def test_field_totals_scales_in_place_and_sums_lines(rng):
    g = rng.uniform(1e-5, 1e-4, (4, 3))
    s, scale = np.sqrt(g), rng.uniform(0.5, 2.0, (4, 3))
    r_sense, r_col = rng.uniform(0, 50, 3), 3.0
    y = rng.standard_normal((4, 3, 2))
    want_y = y * scale[:, :, None]
    row_tot, col_tot = np.empty((4, 2)), np.empty((3, 2))
    fcm_kernels.field_totals(s, y, scale, r_sense, r_col, row_tot, col_tot)
    assert_allclose(y, want_y, rtol=1e-15)
    c = s[:, :, None] * want_y
    assert_allclose(row_tot, c.sum(axis=1), rtol=1e-12)
    k_col = r_sense[None, :] + r_col * (3.0 - np.arange(4))[:, None]
    assert_allclose(col_tot, np.einsum("ij,ijm->jm", k_col, c), rtol=1e-12)


@given(circuits(max_side=5))
def test_spectral_bound_lies_between_spectral_radius_and_row_sum_bound(c):
    par = _par(c)
    p = (par.r_source, par.r_sense, par.r_row, par.r_col)
    zd = dense_z(c.g, *p) * c.g.reshape(-1)[None, :]
    radius = float(np.max(np.abs(np.linalg.eigvals(zd))))
    row_sum = float(np.max(fcm_kernels.z_apply(c.g, np.ones_like(c.g), *p)))
    v = np.ones_like(c.g)
    assert fcm_kernels.spectral_bound(c.g, *p, v, 0) == pytest.approx(row_sum, rel=1e-12)
    for n_iter in (0, 4, 0):    # the last call starts from the iterate the others left in v
        bound = fcm_kernels.spectral_bound(c.g, *p, v, n_iter)
        assert radius - 1e-9 * row_sum <= bound <= row_sum * (1 + 1e-12)
        assert np.all(v > 0)


def test_spectral_bound_is_tight_on_a_txsim_tile(rng):
    g = rng.uniform(1e-6, 1e-5, (32, 32))
    par = Parasitics.build(32, 32, r_source=100.0, r_sense=100.0, r_row=1.0, r_col=4.6)
    p = (par.r_source, par.r_sense, par.r_row, par.r_col)
    zd = dense_z(g, *p) * g.reshape(-1)[None, :]
    radius = float(np.max(np.abs(np.linalg.eigvals(zd))))
    bound = fcm_kernels.spectral_bound(g, *p, np.ones_like(g), 4)
    assert radius <= bound <= 1.05 * radius
    assert float(np.max(fcm_kernels.z_apply(g, np.ones_like(g), *p))) > 1.15 * radius


@pytest.mark.parametrize("warm", [False, True])
def test_fcm_chebyshev_py_func_matches_jit(rng, warm):
    g = rng.uniform(1e-5, 1e-4, (3, 4))
    par = Parasitics.build(3, 4, r_source=100.0, r_sense=30.0, r_row=2.0, r_col=3.0)
    rho = float(rho_bound(g, r_source=100.0, r_sense=30.0, r_row=2.0, r_col=3.0))
    start = rng.uniform(0, 1e-2, (3, 4, 3))
    outs = []
    for fn in (fcm_kernels.fcm_chebyshev, fcm_kernels.fcm_chebyshev.py_func):
        ya, yb = start.copy(), np.zeros((3, 4, 3))
        status, n_it, res, out, in_b = fn(np.sqrt(g), 0, par.r_source, par.r_sense,
                                          par.r_row, par.r_col, rho, ya, yb, warm,
                                          np.ones_like(g), 1e-16, 200)
        assert status == 0 and res.max() <= 1e-16 and n_it > 0
        assert_allclose(out, np.einsum("ij,ijm->mj", np.sqrt(g), yb if in_b else ya),
                        rtol=1e-12)
        outs.append(out)
    assert_allclose(outs[0], outs[1], rtol=1e-12)
    want = dense_g_eff(g, par.r_source, par.r_sense, par.r_row, par.r_col)
    assert_allclose(outs[0], want, rtol=1e-10)


def test_fcm_chebyshev_repeats_a_failed_certify_only_step(rng, monkeypatch):
    """An interval that is too narrow makes the predicted last step fail: it is repeated."""
    g = rng.uniform(1e-5, 1e-4, (6, 5))
    par = Parasitics.build(6, 5, r_source=100.0, r_sense=30.0, r_row=20.0, r_col=30.0)
    p = (par.r_source, par.r_sense, par.r_row, par.r_col)
    rho = fcm_kernels.spectral_bound(g, *p, np.ones_like(g), 10)
    calls = []
    step = fcm_kernels.cheb_step

    def recording_step(*args):
        calls.append(args[13])     # write
        return step(*args)

    monkeypatch.setattr(fcm_kernels, "cheb_step", recording_step)
    ya, yb = np.zeros((6, 5, 6)), np.zeros((6, 5, 6))
    status, _, res, out, in_b = fcm_kernels.fcm_chebyshev.py_func(
        np.sqrt(g), 0, *p, 0.3 * rho, ya, yb, False, np.sqrt(g), 1e-15, 100)
    assert status == 0 and res.max() <= 1e-15
    repeats = [k for k in range(1, len(calls)) if not calls[k - 1] and calls[k]]
    assert repeats, calls
    assert_allclose(out, dense_g_eff(g, *p), rtol=1e-10)
    assert_allclose(out, np.einsum("ij,ijm->mj", np.sqrt(g), yb if in_b else ya), rtol=1e-12)


def test_fcm_chebyshev_returns_the_ideal_start_when_it_is_exact():
    """No parasitics: y_0 = b is certified at step 0 and materialised for the warm start."""
    g = np.full((3, 4), 1e-5)
    zero = np.zeros(3), np.zeros(4)
    ya, yb = np.full((3, 4, 3), np.nan), np.zeros((3, 4, 3))
    status, n_it, res, out, in_b = fcm_kernels.fcm_chebyshev(np.sqrt(g), 0, *zero, 0.0, 0.0,
                                                             0.0, ya, yb, False, g, 1e-16,
                                                             10)
    assert (status, n_it, in_b) == (0, 0, False) and res.max() == 0.0
    assert_allclose(out, g)
    _, b = _dense_a_b(g, Parasitics.build(3, 4), 0, 3)
    assert_allclose(ya, b, rtol=0)


@pytest.mark.parametrize("iteration", ITERATIONS)
def test_fcm_raises_convergence_error_with_iterations_and_residual(rng, iteration):
    g = rng.uniform(50e-6, 500e-6, (12, 12))
    par = Parasitics.build(12, 12, r_source=100.0, r_sense=100.0, r_row=10.0, r_col=10.0)
    with pytest.raises(ConvergenceError, match=r"after 2 iterations") as info:
        FCMSolver(par, algorithm="iterative", max_iter=2, fallback=None,
                  iteration=iteration).g_eff(g)
    assert info.value.n_iter == 2
    assert 1e-10 < info.value.residual < np.inf
    assert "residual" in str(info.value) or "error bound" in str(info.value)


def test_fcm_falls_back_to_direct_solve_and_logs(rng, caplog):
    g = rng.uniform(50e-6, 500e-6, (12, 12))
    par = Parasitics.build(12, 12, r_source=100.0, r_sense=100.0, r_row=10.0, r_col=10.0)
    solver = FCMSolver(par, algorithm="iterative", max_iter=2)
    with caplog.at_level(logging.WARNING, logger="xbarsim.hardware.solvers"):
        got = solver.g_eff(g)
    assert solver.stats.n_fallbacks == 1
    assert "falling back" in caplog.text
    assert_allclose(got, NodalSolver(par).g_eff(g), rtol=1e-12)


@pytest.mark.parametrize("bad", [dict(rtol=0.0), dict(rtol=2.0), dict(max_iter=0),
                                 dict(iteration="jacobi"),
                                 dict(fallback="dense")])
def test_fcm_rejects_bad_options(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        FCMSolver(Parasitics.build(2, 2), **bad)


def test_solver_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"g: expected shape \(3, 4\)"):
        FCMSolver(Parasitics.build(3, 4)).g_eff(np.ones((4, 3)) * 1e-6)


# ---------------------------------------------------------------- AAM

@given(c=circuits(max_side=8), order=st.integers(0, 4))
def test_aam_error_within_a_priori_bound(c, order):
    """|g_eff^(K) - exact| <= max_j(sum_i g[i,j]) * rho^(K+1) / (1 - rho), rho = rho bound < 0.5."""
    rho = rho_bound(c.g, **c.parasitics)
    assume(rho < 0.5)
    par = _par(c)
    exact = NodalSolver(par).g_eff(c.g)
    got = AAMSolver(par, order=order).g_eff(c.g)
    bound = c.g.sum(axis=0).max() * rho ** (order + 1) / (1 - rho)
    assert np.abs(got - exact).max() <= bound * (1 + 1e-9) + 1e-12 * np.abs(exact).max()


def test_aam_error_decreases_with_order_txsim_regime(rng):
    g = rng.uniform(1e-6, 1e-5, (32, 32))
    par = Parasitics.build(32, 32, r_source=100.0, r_sense=100.0, r_row=1.0, r_col=4.6)
    exact = NodalSolver(par).g_eff(g)
    errs = [np.abs(AAMSolver(par, order=k).g_eff(g) - exact).max() for k in range(5)]
    assert all(b < 0.2 * a for a, b in zip(errs, errs[1:])), errs


def test_aam_warns_and_refuses_by_rho_bound(rng):
    g = rng.uniform(1e-6, 1e-5, (16, 16))
    par_ok = Parasitics.build(16, 16, r_source=100.0, r_sense=100.0, r_row=1.0, r_col=4.6)
    AAMSolver(par_ok, order=2).g_eff(g)          # rho ~ 0.03: silent (filterwarnings=error)
    par_warn = Parasitics.build(16, 16, r_source=4000.0, r_sense=4000.0)
    assert 0.5 <= rho_bound(g, r_source=4000.0, r_sense=4000.0) < 1
    with pytest.warns(UserWarning, match="rho bound"):
        AAMSolver(par_warn, order=2).g_eff(g)
    par_bad = Parasitics.build(16, 16, r_source=1e4, r_sense=1e4)
    with pytest.raises(ValueError, match=r"rho bound .* >= 1"):
        AAMSolver(par_bad, order=2).g_eff(g)


# ---------------------------------------------------------------- interpolated FCM

def test_interpolated_equals_fcm_right_after_refresh(rng):
    shape = (16, 12)
    par = Parasitics.build(*shape, r_source=1000.0, r_sense=1000.0, r_row=1.0, r_col=4.6)
    solver = InterpolatedSolver(par, refresh_every=3)
    g = rng.uniform(1e-6, 1e-5, shape)
    for call in range(7):
        got = solver.g_eff(g)
        if call % 3 == 0:
            assert_allclose(got, FCMSolver(par).g_eff(g), rtol=0, atol=2e-10 * g.max())
        g = np.clip(g + 1e-7 * rng.standard_normal(shape), 1e-6, 1e-5)
    assert solver.stats.n_solves == 3
    assert solver.stats.n_calls == 7


def test_interpolated_between_refreshes_uses_stored_distortion(rng):
    shape = (8, 8)
    par = Parasitics.build(*shape, r_source=500.0, r_sense=500.0, r_row=2.0, r_col=2.0)
    g0 = rng.uniform(1e-6, 1e-5, shape)
    solver = InterpolatedSolver(par, refresh_every=10)
    exact0 = solver.g_eff(g0)
    delta = (g0 - exact0) / g0
    g1 = g0 * 1.01
    assert_allclose(solver.g_eff(g1), g1 * (1 - delta), rtol=1e-14)


def test_interpolated_beats_stale_g_eff(rng):
    """After a 1 % change interpolation is several times better than stale (docs/physics.md)."""
    shape = (32, 32)
    par = Parasitics.build(*shape, r_source=1000.0, r_sense=1000.0, r_row=1.0, r_col=4.6)
    g0 = rng.uniform(1e-6, 1e-5, shape)
    solver = InterpolatedSolver(par, refresh_every=100)
    stale = solver.g_eff(g0)
    g1 = np.clip(g0 + 0.01 * 9e-6 * rng.standard_normal(shape), 1e-6, 1e-5)
    exact1 = NodalSolver(par).g_eff(g1)
    err_interp = np.abs(solver.g_eff(g1) - exact1).max()
    err_stale = np.abs(stale - exact1).max()
    assert err_interp < err_stale / 3


def test_interpolated_threshold_forces_refresh(rng):
    par = Parasitics.build(6, 6, r_source=100.0, r_sense=100.0, r_row=1.0, r_col=1.0)
    solver = InterpolatedSolver(par, refresh_every=100, refresh_threshold=0.05)
    g = rng.uniform(1e-6, 1e-5, (6, 6))
    solver.g_eff(g)
    solver.g_eff(g * 1.01)
    assert solver.stats.n_solves == 1
    solver.g_eff(g * 1.2)
    assert solver.stats.n_solves == 2


@pytest.mark.parametrize("bad", [dict(refresh_every=0), dict(refresh_threshold=-1.0),
                                 dict(exact="interpolated")])
def test_interpolated_rejects_bad_options(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        InterpolatedSolver(Parasitics.build(2, 2), **bad)


# ---------------------------------------------------------------- public API

@pytest.mark.parametrize("method", ["nodal", "fcm", "aam", "ideal"])
def test_effective_conductance_methods(rng, method):
    g = rng.uniform(1e-6, 1e-5, (5, 7))
    kw = dict(r_source=100.0, r_sense=100.0, r_row=1.0, r_col=4.6)
    got = effective_conductance(g, method=method, **kw)
    exact = effective_conductance(g, method="nodal", **kw)
    tol = {"nodal": 1e-14, "fcm": 1e-10, "aam": 1e-6, "ideal": 1e-1}[method]
    assert np.abs(got - exact).max() <= tol * g.max()


def test_effective_conductance_rejects_unknown_method():
    with pytest.raises(ValueError, match="method: expected one of"):
        effective_conductance(np.ones((2, 2)) * 1e-6, method="spice")


def test_registry_and_factory():
    assert set(SOLVERS) == {"ideal", "nodal", "fcm", "aam", "interpolated"}
    solver = make_solver("interpolated", Parasitics.build(2, 3), refresh_every=2)
    assert isinstance(solver, InterpolatedSolver)
    with pytest.raises(ValueError, match="method"):
        make_solver("exact", Parasitics.build(2, 3))
