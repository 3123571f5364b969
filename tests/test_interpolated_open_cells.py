"""The interpolated solver on arrays with open cells (g = 0), against its documented definition.

Definition (docs/physics.md, 'Interpolated FCM'; InterpolatedSolver): at a refresh the exact
``g_eff_ref`` of ``g_ref`` is computed and the distortion ``delta = (g_ref - g_eff_ref) / g_ref``
stored; between refreshes ``g_eff = g (1 - delta)``. An open cell (``g_ref = 0``) has no
ratio: it keeps the absolute difference of the refresh, ``g_eff = g - (g_ref - g_eff_ref) =
g + g_eff_ref``. An open cell still has ``g_eff != 0`` (current reaches its column through the
other cells), so the exact values come from the dense nodal reference of tests/reference.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

from tests import reference as ref
from xbarsim.hardware.circuit import Parasitics
from xbarsim.hardware.solvers import InterpolatedSolver

KW = dict(r_source=200.0, r_sense=150.0, r_row=2.0, r_col=5.0)


def open_cells_array(rng, shape=(7, 6)):
    g = rng.uniform(1e-6, 1e-5, shape)
    g[rng.random(shape) < 0.3] = 0.0
    g[2, :] = 0.0                        # an open row
    g[:, 4] = 0.0                        # an open column
    return g


@pytest.mark.parametrize("exact", ["fcm", "nodal", "aam"])
def test_open_cells_between_refreshes_follow_the_definition(exact):
    rng = np.random.default_rng(8)
    g0 = open_cells_array(rng)
    m, n = g0.shape
    par = Parasitics.build(m, n, **KW)
    opts = {"order": 6} if exact == "aam" else {}
    solver = InterpolatedSolver(par, refresh_every=3, exact=exact, **opts)
    exact0 = ref.dense_g_eff(g0, **KW)
    tol = dict(rtol=0, atol=(1e-8 if exact == "aam" else 1e-11) * exact0.max())
    with warnings.catch_warnings():
        warnings.simplefilter("error")             # no division by zero, no invalid value
        got0 = solver.g_eff(g0)
        assert_allclose(got0, exact0, **tol)
        # an open cell conducts through the other cells, unless its whole row or column is open
        assert np.all(exact0[2, :] == 0) and np.all(exact0[:, 4] == 0)
        assert np.count_nonzero(exact0[g0 == 0] > 0) >= 5
        # next update: some open cells are formed, some cells are opened, the rest move
        g1 = g0 * rng.uniform(0.8, 1.2, g0.shape)
        formed = (g0 == 0) & (rng.random(g0.shape) < 0.5)
        g1[formed] = rng.uniform(1e-6, 1e-5, formed.sum())
        g1[0, 0] = g1[5, 1] = 0.0
        opened = (g0 > 0) & (g1 == 0)
        assert formed.any() and opened.any()
        got1 = solver.g_eff(g1)
        got2 = solver.g_eff(g0)                     # back to the refresh point, no refresh
    assert solver.stats.n_solves == 1 and solver.stats.n_calls == 3
    delta = np.divide(g0 - exact0, g0, out=np.zeros_like(g0), where=g0 > 0)
    want1 = np.where(g0 > 0, g1 * (1.0 - delta), g1 + exact0)
    assert_allclose(got1, want1, **tol)
    assert np.all(got1[opened] == 0.0)              # a ratio of nothing is nothing
    assert_allclose(got1[formed], g1[formed] + exact0[formed], **tol)
    assert_allclose(got2, exact0, **tol)            # no drift: same g, same g_eff


def test_all_open_array_refreshes_only_on_schedule_or_change():
    """An all-open array: g_eff = 0 exactly; an unchanged array needs no threshold refresh."""
    par = Parasitics.build(5, 4, **KW)
    solver = InterpolatedSolver(par, refresh_every=10, refresh_threshold=0.05)
    zeros = np.zeros((5, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            assert np.all(solver.g_eff(zeros) == 0.0)
        assert solver.stats.n_solves == 1            # nothing changed: no exact re-solve
        g = np.full((5, 4), 1e-6)
        assert_allclose(solver.g_eff(g), ref.dense_g_eff(g, **KW), rtol=1e-11)
    assert solver.stats.n_solves == 2                 # from nothing to something: refresh
