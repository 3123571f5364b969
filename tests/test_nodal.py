"""Nodal (MNA) assembly and golden nodal solver of one crossbar.

Oracles: hand-written matrices (1x1, 2x2), the dense union-find nodal solver and the
device-voltage (Z-matrix) formulation in tests/reference.py, an extended-precision refined
solution (``reference.refined_nodal``) for the accuracy floor, exact rational arithmetic for
the double-double Kirchhoff residual, and physical invariants.
"""

from __future__ import annotations

import itertools
import warnings
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse.linalg as spla
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from tests import reference as ref
from tests import strategies as xst
from xbarsim.hardware import circuit
from xbarsim.hardware.circuit import (
    G_FLOOR,
    NODAL_MAX_COUPLING,
    NodalRangeError,
    NodalSystem,
    Parasitics,
    backward_currents,
    effective_conductance,
    nested_dissection,
    nodal_cost,
    node_voltages,
    sense_currents,
)
from xbarsim.hardware.solvers import SOLVERS, FCMSolver
from xbarsim.kernels import nodal as nodal_kernels
from xbarsim.testing import TOL


def _system(g, **p) -> NodalSystem:
    g = np.asarray(g, dtype=np.float64)
    return NodalSystem(g, Parasitics.build(*g.shape, **p))


def _atol(v, g, rtol=TOL.nodal_rtol):
    """Absolute floor for currents that may cancel: rtol times the largest |v| @ g [A]."""
    return rtol * float(np.max(np.abs(np.atleast_2d(v)) @ np.asarray(g)))


# --------------------------------------------------------------------------------------------
# 1. hand-built matrices
# --------------------------------------------------------------------------------------------

G1 = 2.5e-4  # [S]
RS, RK = 120.0, 35.0  # [Ohm]


@pytest.mark.parametrize(
    ("r_source", "r_sense", "y", "b", "c", "d"),
    [
        # both terminals resistive: unknowns U00 (0), W00 (1)
        (RS, RK, [[1 / RS + G1, -G1], [-G1, G1 + 1 / RK]], [[1 / RS], [0.0]],
         [[0.0, 1 / RK]], [[0.0]]),
        # ideal driver: U00 is the source; unknown W00
        (0.0, RK, [[G1 + 1 / RK]], [[G1]], [[1 / RK]], [[0.0]]),
        # ideal virtual ground: W00 is the ground; unknown U00
        (RS, 0.0, [[1 / RS + G1]], [[1 / RS]], [[G1]], [[0.0]]),
        # both ideal: no unknown, direct feed-through D = g
        (0.0, 0.0, np.zeros((0, 0)), np.zeros((0, 1)), np.zeros((1, 0)), [[G1]]),
    ],
    ids=["rs_rk", "ideal_driver", "ideal_ground", "ideal"],
)
def test_nodal_matrices_1x1_by_hand(r_source, r_sense, y, b, c, d):
    # r_row / r_col have no segment in a 1x1 array and must not appear anywhere
    sys = _system([[G1]], r_source=r_source, r_sense=r_sense, r_row=7.0, r_col=9.0)
    assert sys.n_unknown == len(y)
    k = sys.n_unknown
    assert_allclose(sys.y.toarray(), np.array(y, dtype=float).reshape(k, k), rtol=0, atol=0)
    assert_allclose(sys.b.toarray(), np.array(b, dtype=float).reshape(k, 1), rtol=0, atol=0)
    assert_allclose(sys.c.toarray(), np.array(c, dtype=float).reshape(1, k), rtol=0, atol=0)
    assert_allclose(sys.d, np.array(d, dtype=float), rtol=0, atol=0)


@pytest.mark.parametrize(("r_source", "r_sense"), list(itertools.product([0.0, RS], [0.0, RK])))
@pytest.mark.parametrize("v", [0.37, -0.8])
def test_current_1x1_by_hand(r_source, r_sense, v):
    # a series circuit: i = v / (r_source + 1/g + r_sense)
    expected = v / (r_source + 1.0 / G1 + r_sense)
    got = sense_currents([[G1]], [v], r_source=r_source, r_sense=r_sense, r_row=3.0, r_col=4.0)
    assert got.shape == (1,)
    assert_allclose(got, [expected], rtol=TOL.kernel_rtol, atol=0)


def test_nodal_matrices_2x2_by_hand():
    g = np.array([[1e-4, 2e-4], [3e-4, 4e-4]])
    rs = np.array([100.0, 150.0])
    rk = np.array([20.0, 30.0])
    r_row, r_col = 2.0, 5.0
    a, b_ = 1 / r_row, 1 / r_col
    (g00, g01), (g10, g11) = g
    # unknowns, cell by cell in row-major order, U before W:
    # U00=0 W00=1 U01=2 W01=3 U10=4 W10=5 U11=6 W11=7
    y = np.zeros((8, 8))
    y[0, [0, 1, 2]] = [1 / rs[0] + a + g00, -g00, -a]
    y[1, [0, 1, 5]] = [-g00, g00 + b_, -b_]
    y[2, [0, 2, 3]] = [-a, a + g01, -g01]
    y[3, [2, 3, 7]] = [-g01, g01 + b_, -b_]
    y[4, [4, 5, 6]] = [1 / rs[1] + a + g10, -g10, -a]
    y[5, [1, 4, 5]] = [-b_, -g10, b_ + g10 + 1 / rk[0]]
    y[6, [4, 6, 7]] = [-a, a + g11, -g11]
    y[7, [3, 6, 7]] = [-b_, -g11, b_ + g11 + 1 / rk[1]]
    bm = np.zeros((8, 2))
    bm[0, 0], bm[4, 1] = 1 / rs[0], 1 / rs[1]
    cm = np.zeros((2, 8))
    cm[0, 5], cm[1, 7] = 1 / rk[0], 1 / rk[1]
    sys = _system(g, r_source=rs, r_sense=rk, r_row=r_row, r_col=r_col)
    assert sys.n_unknown == 8
    assert_allclose(sys.y.toarray(), y, rtol=1e-15, atol=0)
    assert_allclose(sys.b.toarray(), bm, rtol=0, atol=0)
    assert_allclose(sys.c.toarray(), cm, rtol=0, atol=0)
    assert_array_equal(sys.d, np.zeros((2, 2)))
    # and the currents equal those of the hand-written system
    v = np.array([0.3, -0.7])
    x = np.linalg.solve(y, bm @ v)
    assert_allclose(sense_currents(g, v, r_source=rs, r_sense=rk, r_row=r_row, r_col=r_col),
                    cm @ x, rtol=TOL.nodal_rtol, atol=0)


def test_nodal_matrices_2x2_zero_wires_by_hand():
    # r_row = r_col = 0: each row and each column is a single node (docs/circuit.md)
    g = np.array([[1e-4, 2e-4], [3e-4, 4e-4]])
    rs = np.array([100.0, 150.0])
    rk = np.array([20.0, 30.0])
    (g00, g01), (g10, g11) = g
    # unknowns in order of first appearance: row0=0, col0=1, col1=2, row1=3
    y = np.array([
        [1 / rs[0] + g00 + g01, -g00, -g01, 0.0],
        [-g00, g00 + g10 + 1 / rk[0], 0.0, -g10],
        [-g01, 0.0, g01 + g11 + 1 / rk[1], -g11],
        [0.0, -g10, -g11, 1 / rs[1] + g10 + g11],
    ])
    bm = np.array([[1 / rs[0], 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 1 / rs[1]]])
    cm = np.array([[0.0, 1 / rk[0], 0.0, 0.0], [0.0, 0.0, 1 / rk[1], 0.0]])
    sys = _system(g, r_source=rs, r_sense=rk, r_row=0.0, r_col=0.0)
    assert_allclose(sys.y.toarray(), y, rtol=1e-15, atol=0)
    assert_allclose(sys.b.toarray(), bm, rtol=0, atol=0)
    assert_allclose(sys.c.toarray(), cm, rtol=0, atol=0)
    assert_array_equal(sys.d, np.zeros((2, 2)))


# --------------------------------------------------------------------------------------------
# 2. the references agree with each other (so a shared mistake is unlikely)
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("zero", list(itertools.product([False, True], repeat=4)),
                         ids=lambda z: "zero_" + "".join("SKRC"[k] for k in range(4) if z[k]) or
                         "none")
def test_references_agree(zero, rng):
    g = rng.uniform(xst.G_MIN, xst.G_MAX, (4, 3))
    p = _random_parasitics(rng, 4, 3, zero)
    a = ref.dense_g_eff(g, **p)
    b = ref.path_g_eff(g, **p)
    assert_allclose(a, b, rtol=TOL.nodal_rtol, atol=TOL.nodal_rtol * b.max())


def _random_parasitics(rng, m, n, zero):
    return dict(r_source=0.0 if zero[0] else rng.uniform(xst.R_MIN, xst.R_MAX, m),
                r_sense=0.0 if zero[1] else rng.uniform(xst.R_MIN, xst.R_MAX, n),
                r_row=0.0 if zero[2] else float(rng.uniform(xst.R_MIN, xst.R_MAX)),
                r_col=0.0 if zero[3] else float(rng.uniform(xst.R_MIN, xst.R_MAX)))


# --------------------------------------------------------------------------------------------
# 3. nodal vs references
# --------------------------------------------------------------------------------------------

@given(c=xst.circuits(zero=(True, True, True, True)))
def test_ideal_limit(c):
    got = sense_currents(c.g, c.v, **c.parasitics)
    assert_allclose(got, c.v @ c.g, rtol=TOL.kernel_rtol, atol=_atol(c.v, c.g, TOL.kernel_rtol))


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (6, 1), (5, 3), (3, 7)])
@pytest.mark.parametrize("zero", list(itertools.product([False, True], repeat=4)),
                         ids=lambda z: "zero_" + "".join("SKRC"[k] for k in range(4) if z[k]) or
                         "none")
def test_zero_resistance_combinations_vs_reference(zero, shape, rng):
    g = rng.uniform(xst.G_MIN, xst.G_MAX, shape)
    v = rng.uniform(-1, 1, (3, shape[0]))
    p = _random_parasitics(rng, *shape, zero)
    expected, u_ref, w_ref = ref.dense_nodal(g, v, **p)
    assert_allclose(sense_currents(g, v, **p), expected, rtol=TOL.nodal_rtol, atol=_atol(v, g))
    u, w = node_voltages(g, v, **p)
    assert_allclose(u, u_ref, rtol=TOL.nodal_rtol, atol=TOL.nodal_rtol)
    assert_allclose(w, w_ref, rtol=TOL.nodal_rtol, atol=TOL.nodal_rtol)


@given(c=xst.circuits())
def test_currents_vs_dense_reference(c):
    expected = ref.dense_currents(c.g, c.v, **c.parasitics)
    got = sense_currents(c.g, c.v, **c.parasitics)
    assert got.shape == c.v.shape[:1] + c.g.shape[1:]
    assert_allclose(got, expected, rtol=TOL.nodal_rtol, atol=_atol(c.v, c.g))


@given(c=xst.circuits(max_side=8))
def test_g_eff_vs_path_reference(c):
    got = _system(c.g, **c.parasitics).g_eff()
    expected = ref.path_g_eff(c.g, **c.parasitics)
    assert_allclose(got, expected, rtol=TOL.nodal_rtol, atol=TOL.nodal_rtol * expected.max())
    # and g_eff reproduces the direct solve: i = v @ g_eff
    assert_allclose(c.v @ got, sense_currents(c.g, c.v, **c.parasitics), rtol=TOL.nodal_rtol,
                    atol=_atol(c.v, c.g))


# --------------------------------------------------------------------------------------------
# 4. invariants
# --------------------------------------------------------------------------------------------

@given(c=xst.circuits(batch=2), a=st.floats(-3, 3), b=st.floats(-3, 3))
def test_linearity_in_v(c, a, b):
    v1, v2 = c.v
    i1, i2 = sense_currents(c.g, c.v, **c.parasitics)
    i12 = sense_currents(c.g, a * v1 + b * v2, **c.parasitics)
    assert_allclose(i12, a * i1 + b * i2, rtol=TOL.nodal_rtol,
                    atol=(abs(a) + abs(b)) * _atol(c.v, c.g))


@given(c=xst.circuits())
def test_kcl_residual(c):
    """||Y x - B v|| / ||B v|| < TOL.residual * ||Y|| ||x|| / ||B v||, i.e. a normwise backward
    error below TOL.residual. The plain ratio alone can exceed 1e-12 when 0.1 Ohm wires (10 S)
    meet a weak drive (b ~ v / r_source): hypothesis found 1.02e-12 with 0.125 Ohm wires."""
    sys = _system(c.g, **c.parasitics)
    rhs = np.asarray(sys.b @ c.v.T)
    if sys.n_unknown == 0 or not rhs.any():
        assert sys.kcl_residual(c.v) == 0.0
        return
    x = sys.unknowns(c.v)
    growth = spla.norm(sys.y) * np.linalg.norm(x) / np.linalg.norm(rhs)
    assert sys.kcl_residual(c.v) < TOL.residual * max(1.0, growth)


@pytest.mark.parametrize("shape", [(16, 16), (8, 5), (3, 11)])
def test_kcl_residual_txsim_regime(shape, rng):
    g = rng.uniform(1e-6, 1e-5, shape)
    v = rng.uniform(-1, 1, (4, shape[0]))
    sys = _system(g, r_source=100.0, r_sense=100.0, r_row=1.0, r_col=4.6)
    assert sys.kcl_residual(v) < TOL.residual


@given(c=xst.circuits(nonneg=True))
def test_nonneg_drives_give_bounded_nonneg_currents(c):
    """Maximum principle, v >= 0: every node lies in [0, max v], so 0 <= i_j <= max(v) sum_i g_ij.

    NB: i_j <= (v @ g)_j does NOT hold in general (sneak paths, see the counterexample test);
    it holds for equal drives, where u <= V and w >= 0 make every device current <= g V.
    """
    i_out = sense_currents(c.g, c.v, **c.parasitics)
    slack = 1e-12 * c.v.max() * c.g.sum()
    assert np.all(i_out >= -slack)
    assert np.all(i_out <= c.v.max(axis=1, keepdims=True) * c.g.sum(axis=0) + slack)
    u, w = node_voltages(c.g, c.v, **c.parasitics)
    vmax = c.v.max(axis=1)[:, None, None]
    assert np.all((u >= -1e-12) & (u <= vmax + 1e-12) & (w >= -1e-12) & (w <= vmax + 1e-12))
    # equal drives: each current is at most the ideal one
    eq = np.full(c.g.shape[0], c.v.max())
    i_eq = sense_currents(c.g, eq, **c.parasitics)
    assert np.all(i_eq <= eq @ c.g + slack)


PARAMS = ("r_source", "r_sense", "r_row", "r_col")


@given(c=xst.circuits(batch=1), which=st.sampled_from(PARAMS), line=st.integers(0, 100),
       grow=st.floats(0.1, 300.0, allow_subnormal=False))
def test_total_current_monotone_in_each_parasitic(c, which, line, grow):
    """Rayleigh monotonicity: with all rows at the same V >= 0, the sources form one terminal and
    the grounds another, so sum_j i_j (a two-terminal conductance times V) never increases when
    any one resistance grows (one element of r_source / r_sense, or r_row / r_col)."""
    v = np.full(c.g.shape[0], 0.8)
    before = sense_currents(c.g, v, **c.parasitics)
    p = {k: np.array(x, dtype=float) for k, x in c.parasitics.items()}
    if which in ("r_source", "r_sense"):
        p[which][line % p[which].size] += grow
    else:
        p[which] = p[which] + grow
    after = sense_currents(c.g, v, **p)
    assert after.sum() <= before.sum() * (1 + 1e-12)
    assert before.sum() <= (v @ c.g).sum() * (1 + 1e-12)


@given(data=st.data(), n=st.integers(1, xst.MAX_SIDE), single_row=st.booleans(),
       r=st.tuples(*(xst.resistance() for _ in range(4))), grow=st.floats(0.1, 300.0))
def test_single_line_bounded_and_monotone_in_r_source(data, n, single_row, r, grow):
    """One row (1 x n) or one column (n x 1), v >= 0: each i_j <= (v @ g)_j (every device
    current is at most g v_i). With a single row, every node voltage is proportional to the
    voltage behind r_source, so each current is non-increasing in r_source."""
    shape = (1, n) if single_row else (n, 1)
    g = data.draw(xst.conductances(shape))
    v = data.draw(xst.drives(shape[0], batch=1, nonneg=True))[0]
    p = dict(r_source=r[0], r_sense=r[1], r_row=r[2], r_col=r[3])
    before = sense_currents(g, v, **p)
    assert np.all(before <= v @ g * (1 + 1e-12))
    if single_row:
        after = sense_currents(g, v, **{**p, "r_source": r[0] + grow})
        assert np.all(after <= before * (1 + 1e-12))
        assert np.all(after >= 0)


def test_individual_currents_are_not_monotone_counterexample():
    """The tempting invariants 'each i_j <= (v @ g)_j' and 'each i_j non-increasing in every
    parasitic' are false for v >= 0 when the terminal resistances differ. Sneak path:
    row 0 -> g00 -> column 0 (lifted by r_sense0) -> g10 -> row 1 (floating on r_source1) ->
    g11 -> column 1. Also checked against the dense reference."""
    g = np.array([[1e-3, 1e-6], [1e-3, 1e-3]])
    v = np.array([1.0, 0.0])
    p = dict(r_source=[0.0, 300.0], r_sense=[300.0, 0.0])
    i_out = sense_currents(g, v, **p)
    assert_allclose(i_out, ref.dense_currents(g, v, **p), rtol=TOL.nodal_rtol)
    assert i_out[1] > 30 * (v @ g)[1]
    # growing r_sense of column 0 increases the current of column 1
    p2 = dict(r_source=[0.0, 300.0], r_sense=[600.0, 0.0])
    assert sense_currents(g, v, **p2)[1] > i_out[1]


@given(data=st.data(), c=xst.circuits())
def test_reciprocity_backward_equals_transpose(data, c):
    """Columns driven through r_sense, rows sensed through r_source: i_back = d @ g_eff.T."""
    d = data.draw(xst.drives(c.g.shape[1], batch=2))
    g_eff = _system(c.g, **c.parasitics).g_eff()
    back = backward_currents(c.g, d, **c.parasitics)
    assert back.shape == (2, c.g.shape[0])
    assert_allclose(back, d @ g_eff.T, rtol=TOL.nodal_rtol, atol=_atol(d, c.g.T))
    assert backward_currents(c.g, d[0], **c.parasitics).shape == (c.g.shape[0],)


@given(c=xst.circuits(max_side=6))
def test_effective_conductance_nodal_method(c):
    got = effective_conductance(c.g, method="nodal", **c.parasitics)
    expected = ref.dense_g_eff(c.g, **c.parasitics)
    assert_allclose(got, expected, rtol=TOL.nodal_rtol, atol=TOL.nodal_rtol * expected.max())
    d = np.ones((1, c.g.shape[1]))
    assert_allclose(backward_currents(c.g, d, **c.parasitics), d @ got.T, rtol=TOL.nodal_rtol,
                    atol=_atol(d, c.g.T))


@given(c=xst.circuits())
def test_node_voltages(c):
    m, n = c.g.shape
    u, w = node_voltages(c.g, c.v, **c.parasitics)
    assert u.shape == w.shape == (c.v.shape[0], m, n)
    u1, w1 = node_voltages(c.g, c.v[0], **c.parasitics)
    assert u1.shape == w1.shape == (m, n)
    assert_allclose(u1, u[0], rtol=1e-14, atol=1e-15)
    # the source current of row i is the sum of its device currents (a row leaks only there)
    row_current = np.sum(c.g * (u - w), axis=2)                      # (batch, m) [A]
    assert_allclose(u[:, :, 0], c.v - c.r_source * row_current, rtol=TOL.nodal_rtol,
                    atol=TOL.nodal_rtol)
    # the sense current flows through r_sense from the bottom node to 0 V
    i_out = sense_currents(c.g, c.v, **c.parasitics)
    assert_allclose(w[:, -1, :], c.r_sense * i_out, rtol=TOL.nodal_rtol, atol=TOL.nodal_rtol)


# --------------------------------------------------------------------------------------------
# 5. bad input
# --------------------------------------------------------------------------------------------

GOOD = dict(r_source=10.0, r_sense=10.0, r_row=1.0, r_col=1.0)
G_OK = np.full((3, 2), 1e-4)
V_OK = np.ones(3)


@pytest.mark.parametrize(
    ("g", "v", "override", "name"),
    [
        ([[np.nan, 1e-4]], [1.0], {}, "g"),
        ([[np.inf, 1e-4]], [1.0], {}, "g"),
        ([[-1e-4, 1e-4]], [1.0], {}, "g"),
        (np.zeros((0, 2)), np.zeros(0), {}, "g"),
        (np.ones(3) * 1e-4, V_OK, {}, "g"),                    # 1-D g
        (G_OK, np.ones(2), {}, "v"),                          # shape mismatch
        (G_OK, np.ones((4, 2)), {}, "v"),
        (G_OK, np.zeros((0, 3)), {}, "v"),                    # empty batch
        (G_OK, [1.0, np.nan, 0.0], {}, "v"),
        (G_OK, V_OK, {"r_source": -1.0}, "r_source"),
        (G_OK, V_OK, {"r_source": np.nan}, "r_source"),
        (G_OK, V_OK, {"r_source": [1.0, 2.0]}, "r_source"),   # wrong length (n_cols)
        (G_OK, V_OK, {"r_source": np.ones((3, 1))}, "r_source"),
        (G_OK, V_OK, {"r_sense": -1e-3}, "r_sense"),
        (G_OK, V_OK, {"r_sense": np.inf}, "r_sense"),
        (G_OK, V_OK, {"r_sense": [1.0, 2.0, 3.0]}, "r_sense"),  # wrong length (n_rows)
        (G_OK, V_OK, {"r_row": -1.0}, "r_row"),
        (G_OK, V_OK, {"r_row": np.inf}, "r_row"),
        (G_OK, V_OK, {"r_row": [1.0, 2.0]}, "r_row"),         # must be a scalar
        (G_OK, V_OK, {"r_col": -2.0}, "r_col"),
        (G_OK, V_OK, {"r_col": np.nan}, "r_col"),
    ],
)
@pytest.mark.parametrize("func", [sense_currents, node_voltages])
def test_bad_input_names_the_argument(func, g, v, override, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        func(g, v, **{**GOOD, **override})


@pytest.mark.parametrize(("d", "override", "name"), [
    (np.ones(3), {}, "d"),                         # d has n_cols entries, not n_rows
    (np.ones(2), {"r_sense": [1.0, 2.0, 3.0]}, "r_sense"),
    (np.ones(2), {"r_source": -5.0}, "r_source"),
])
def test_backward_bad_input_names_the_argument(d, override, name):
    with pytest.raises(ValueError, match=rf"^{name}:"):
        backward_currents(G_OK, d, **{**GOOD, **override})


def test_subnormal_resistance_is_rejected_not_singular():
    """A resistance below 1 nOhm would overflow 1/r: rejected with the argument's name."""
    g = np.full((2, 3), 1e-6)
    for kw in (dict(r_row=5e-324), dict(r_col=1e-12), dict(r_source=[0.0, 1e-20]),
               dict(r_sense=1e-10)):
        with pytest.raises(ValueError, match=f"{next(iter(kw))}: a resistance must be 0"):
            sense_currents(g, np.ones(2), **kw)



# --------------------------------------------------------------------------------------------
# 6. the accuracy floor of the golden solver (extended-precision oracle)
# --------------------------------------------------------------------------------------------

REGIMES = {
    # TxSim devices (R 100 kOhm - 1 MOhm), 1 / 4.6 Ohm wire segments, 100 Ohm terminals
    "txsim": ((1e-6, 1e-5), dict(r_source=100.0, r_sense=100.0, r_row=1.0, r_col=4.6)),
    # low-resistance devices and thick wires: rho >> 1
    "harsh": ((5e-5, 5e-4), dict(r_source=100.0, r_sense=100.0, r_row=10.0, r_col=10.0)),
}

#: Golden accuracy asserted against the extended-precision solution: max |di| / max |i| of the
#: sense currents and max |dg| / |g| entry by entry of g_eff. Observed with these seeds at
#: 64 x 64 .. 256 x 256 and 96 x 40, 40 x 96, both regimes: <= 2.1e-16 and <= 3.4e-16 (one to
#: two roundings); the FCM solver: up to 2.7e-15; the nodal solve before refinement and a
#: fill-reducing ordering: 3e-14 .. 5e-11.
GOLDEN_RTOL = 1e-15

LONGDOUBLE_EXTENDED = np.finfo(np.longdouble).eps < 1e-18
needs_longdouble = pytest.mark.skipif(
    not LONGDOUBLE_EXTENDED, reason="np.longdouble is float64 on this platform: the "
    "extended-precision oracle cannot resolve the golden solver's accuracy")


def _accuracy_case(shape, regime, seed, rows_of_g_eff):
    gr, kw = REGIMES[regime]
    gen = np.random.default_rng(seed)
    g = gen.uniform(*gr, shape)
    m = shape[0]
    rows = np.unique(np.linspace(0, m - 1, rows_of_g_eff).astype(int))
    # three drives in [0, 1] V, one of both signs, and unit drives (rows of g_eff)
    v = np.vstack([gen.uniform(0, 1, (3, m)), gen.uniform(-1, 1, (1, m)), np.eye(m)[rows]])
    i_ref, info = ref.refined_nodal(g, v, **kw)
    assert info["residual"] < 1e-18, info           # the oracle itself converged
    return g, v, rows, i_ref.astype(np.float64), Parasitics.build(*shape, **kw)


def _check_golden(g, v, rows, i_ref, par, with_g_eff=True):
    system = NodalSystem(g, par)
    i_out = system.currents(v)
    err = float(np.max(np.abs(i_out - i_ref)) / np.max(np.abs(i_ref)))
    assert err <= GOLDEN_RTOL, err
    assert system.refinement_steps >= 1 and system.last_correction <= 4 * np.finfo(float).eps
    if with_g_eff:
        g_eff = system.g_eff()
        unit = i_ref[4:]
        entry = float(np.max(np.abs(g_eff[rows] - unit) / unit))
        assert entry <= GOLDEN_RTOL, entry
    return system


@needs_longdouble
@pytest.mark.parametrize("regime", list(REGIMES))
@pytest.mark.parametrize("shape", [(64, 64), (96, 40), (40, 96), (128, 128)],
                         ids=lambda s: f"{s[0]}x{s[1]}")
def test_golden_accuracy_vs_extended_precision(shape, regime):
    """Currents and g_eff to ~1e-15 of an independent solution refined in extended precision.

    96 x 40 solves g_eff through the columns (reciprocity), 40 x 96 through the rows.
    """
    _check_golden(*_accuracy_case(shape, regime, seed=sum(shape), rows_of_g_eff=6))


@needs_longdouble
@pytest.mark.slow
@pytest.mark.parametrize("regime", list(REGIMES))
def test_golden_accuracy_vs_extended_precision_256(regime):
    """256 x 256: currents of four drives and six unit drives (g_eff rows via the same solve;
    the g_eff path itself is covered above)."""
    _check_golden(*_accuracy_case((256, 256), regime, seed=256, rows_of_g_eff=6),
                  with_g_eff=False)


@needs_longdouble
def test_fcm_agrees_with_the_golden_solver_to_its_own_floor():
    """The structured solver against the (now more accurate) reference: observed 2.4e-15."""
    g, v, rows, i_ref, par = _accuracy_case((64, 64), "txsim", seed=3, rows_of_g_eff=4)
    fcm = FCMSolver(par).g_eff(g)
    golden = NodalSystem(g, par).g_eff()
    assert np.max(np.abs(golden[rows] - i_ref[4:]) / i_ref[4:]) <= GOLDEN_RTOL
    assert np.max(np.abs(fcm - golden)) / np.max(golden) <= 1e-14


def test_refined_oracle_agrees_with_the_dense_reference(rng):
    """The two references (dense float64 union-find solve, refined longdouble stencil) agree."""
    g = rng.uniform(1e-6, 1e-3, (5, 7))
    v = rng.uniform(-1, 1, (3, 5))
    p = dict(r_source=rng.uniform(1, 300, 5), r_sense=rng.uniform(1, 300, 7), r_row=2.0,
             r_col=0.5)
    i_ref, info = ref.refined_nodal(g, v, **p)
    assert_allclose(i_ref.astype(np.float64), ref.dense_currents(g, v, **p), rtol=1e-12,
                    atol=1e-12 * np.abs(v).max() * g.sum())
    assert info["steps"] >= 2


def test_refinement_is_what_makes_the_solve_accurate():
    """Without refinement (one solve with the float64 factors) the TxSim 64 x 64 currents are
    off by ~1e-13; refined, by one rounding. Guards against a refinement that does nothing."""
    g, v, _, i_ref, par = _accuracy_case((64, 64), "txsim", seed=5, rows_of_g_eff=1)
    system = NodalSystem(g, par)
    x = system.solve(np.asarray(system.b @ v.T))
    unrefined = (np.asarray(system.c @ x).T + v @ system.d.T)
    err_plain = np.max(np.abs(unrefined - i_ref)) / np.max(np.abs(i_ref))
    err_refined = np.max(np.abs(system.currents(v) - i_ref)) / np.max(np.abs(i_ref))
    assert err_plain > 1e-15 > err_refined


# --------------------------------------------------------------------------------------------
# 7. the pieces: ordering, triangular solves, double-double residual, blocks
# --------------------------------------------------------------------------------------------

@given(c=xst.circuits(max_side=9))
def test_nested_dissection_is_a_permutation_of_the_unknowns(c):
    p = Parasitics.build(*c.g.shape, **c.parasitics)
    u_label, w_label, n_unknown = nodal_kernels.label_nodes(*c.g.shape, p.r_source, p.r_sense,
                                                            p.r_row, p.r_col)
    if p.r_row > 0 and p.r_col > 0:            # otherwise lines are merged: not a grid
        for leaf in (1, 4, 16):
            order = nested_dissection(u_label, w_label, leaf)
            assert_array_equal(np.sort(order), np.arange(n_unknown))


def test_nested_dissection_separators_come_last():
    """4 x 4, leaf 4: left block (2 x 4 cells minus its separator), right block, then the left
    chain of column nodes and the separating row nodes of column 2."""
    u_label, w_label, n = nodal_kernels.label_nodes(4, 4, np.ones(4), np.ones(4), 1.0, 1.0)
    order = nested_dissection(u_label, w_label, leaf_cells=4)
    assert_array_equal(order[-8:-4], w_label[:, 2])
    assert_array_equal(order[-4:], u_label[:, 2])
    # eliminating in this order fills less than the natural (banded) order
    y = NodalSystem(np.full((16, 16), 1e-5), Parasitics.build(16, 16, r_source=1.0,
                    r_sense=1.0, r_row=1.0, r_col=1.0))
    assert y.factor_nnz < 0.7 * y.y.nnz * 16 / 2


@given(c=xst.circuits(max_side=7))
def test_lu_solve_matches_dense_solve(c):
    system = NodalSystem(c.g, Parasitics.build(*c.g.shape, **c.parasitics))
    if system.n_unknown == 0:
        return
    rhs = np.random.default_rng(0).uniform(-1, 1, (system.n_unknown, 3))
    want = np.linalg.solve(system.y.toarray(), rhs)
    assert_allclose(system.solve(rhs), want, rtol=1e-9, atol=1e-9 * np.abs(want).max())


def _exact_kirchhoff(a, b, cond, x, fixed):
    """B v - Y x and the terminal currents in exact rational arithmetic, rounded once."""
    n, k = x.shape
    res = [[Fraction(0)] * k for _ in range(n)]
    cur = [[Fraction(0)] * k for _ in range(fixed.shape[0])]
    for la, lb, c in zip(a, b, cond, strict=True):
        for m in range(k):
            xa = Fraction(x[la, m] if la >= 0 else fixed[-1 - la, m])
            xb = Fraction(x[lb, m] if lb >= 0 else fixed[-1 - lb, m])
            i_ab = Fraction(c) * (xa - xb)
            (res[la] if la >= 0 else cur[-1 - la])[m] -= i_ab
            (res[lb] if lb >= 0 else cur[-1 - lb])[m] += i_ab
    return (np.array([[float(q) for q in r] for r in res]).reshape(n, k),
            np.array([[float(q) for q in r] for r in cur]))


@given(c=xst.circuits(max_side=4, batch=2))
def test_kirchhoff_residual_is_exact_to_one_rounding(c):
    """The double-double residual equals the exact one rounded (to 1 ulp), even when it is the
    tiny difference of large branch currents (x near the solution)."""
    p = Parasitics.build(*c.g.shape, **c.parasitics)
    system = NodalSystem(c.g, p)
    a, b, cond = system._branches
    x = system.unknowns(c.v)                       # near the solution: maximal cancellation
    x = np.ascontiguousarray(x * (1 + 1e-12 * np.random.default_rng(1).standard_normal(x.shape)))
    fixed = np.ascontiguousarray(system._drive(c.v))
    res, cur = np.empty_like(x), np.empty_like(fixed)
    nodal_kernels.kirchhoff(a, b, cond, x, fixed, res, cur, np.empty_like(x),
                            np.empty_like(fixed))
    want_res, want_cur = _exact_kirchhoff(a, b, cond, x, fixed)
    assert_allclose(res, want_res, rtol=4e-16, atol=1e-300)
    assert_allclose(cur, want_cur, rtol=4e-16, atol=1e-300)


def test_blocks_and_threads_do_not_change_the_result(rng, monkeypatch):
    g = rng.uniform(1e-6, 1e-5, (24, 20))
    par = Parasitics.build(24, 20, r_source=100.0, r_sense=100.0, r_row=1.0, r_col=4.6)
    whole = NodalSystem(g, par).g_eff()
    monkeypatch.setattr(circuit, "BLOCK_BYTES", 1)              # one right-hand side a block
    monkeypatch.setattr(circuit, "splits", lambda n, work: n > 1)   # and in threads
    system = NodalSystem(g, par)
    assert system.block_size() == 1
    assert_allclose(system.g_eff(), whole, rtol=4e-16, atol=0)


def test_nodal_cost_tracks_the_measured_fill():
    for shape in ((64, 64), (96, 96), (128, 40)):
        g = np.full(shape, 5e-6)
        par = Parasitics.build(*shape, r_source=100.0, r_sense=100.0, r_row=1.0, r_col=4.6)
        entries = NodalSystem(g, par).factor_nnz
        est = circuit.factor_entries(*shape)
        assert 0.9 < est / entries < 1.5, (shape, est, entries)
    small, large = nodal_cost(64, 64, 64), nodal_cost(512, 512, 512)
    assert large.seconds > 100 * small.seconds and large.bytes > 30 * small.bytes


# --------------------------------------------------------------------------------------------
# 8. the range of conductances where float64 is meaningful
# --------------------------------------------------------------------------------------------

TXSIM = REGIMES["txsim"][1]


@pytest.mark.parametrize("method", ["nodal", "fcm", "aam", "ideal"])
def test_conductance_below_the_floor_is_refused_by_every_method(method):
    g = np.full((4, 3), 1e-6)
    g[1, 2] = 1e-300
    with pytest.raises(ValueError, match=r"g: a conductance must be 0 .* >= 1.49e-154 S, got "
                                         r"1e-300 S at index \(1, 2\)"):
        sense_currents(g, np.ones(4), method=method, **TXSIM)
    with pytest.raises(ValueError, match="1e-300 S"):
        effective_conductance(g, method=method, **TXSIM)
    with pytest.raises(ValueError, match="1e-300 S"):
        SOLVERS[method](Parasitics.build(4, 3, **TXSIM)).g_eff(g)


def test_conductance_at_the_floor_and_zero_are_accepted():
    g = np.full((4, 3), G_FLOOR)
    g[0, 0] = 0.0
    i_nodal = sense_currents(g, np.ones(4), **TXSIM)
    # parasitics are negligible at this scale: i = v @ g to rounding, and no underflow
    assert_allclose(i_nodal, np.ones(4) @ g, rtol=1e-15)
    assert_allclose(sense_currents(g, np.ones(4), method="fcm", **TXSIM), i_nodal, rtol=1e-14)


def test_huge_conductance_is_refused_by_nodal_and_solved_by_fcm():
    """g = 1e30 S: the nodal matrix is singular to float64 (it returned 6.8e-19 A silently);
    FCM stays exact and gives the short-circuit limit of the wires."""
    g = np.full((16, 16), 1e30)
    v = np.ones(16)
    with pytest.raises(NodalRangeError, match=r"g: the largest conductance 1e\+30 S times .*"
                                              r"284 Ohm\) is 2.84e\+32, beyond 1e\+12"):
        sense_currents(g, v, **TXSIM)
    for func in (node_voltages, backward_currents):
        with pytest.raises(ValueError, match="method 'fcm'"):
            func(g, v, **TXSIM)
    with pytest.raises(ValueError, match="beyond 1e\\+12"):
        effective_conductance(g, method="nodal", **TXSIM)
    i_fcm = sense_currents(g, v, method="fcm", **TXSIM)
    # doubling every conductance changes nothing once they are shorts
    assert_allclose(sense_currents(2 * g, v, method="fcm", **TXSIM), i_fcm, rtol=1e-12)
    assert np.all(i_fcm > 1e-3) and np.all(i_fcm < 1.0 / 200.0)


@pytest.mark.parametrize("r", [dict(r_source=100.0, r_sense=100.0, r_row=1.0, r_col=4.6),
                               dict(r_source=1.0, r_sense=1.0, r_row=100.0, r_col=100.0),
                               dict(r_source=0.0, r_sense=0.0, r_row=1.0, r_col=1.0),
                               dict(r_source=100.0, r_sense=100.0, r_row=0.0, r_col=1.0)])
def test_nodal_is_accurate_up_to_the_coupling_limit(r, rng):
    """Just inside NODAL_MAX_COUPLING the refined nodal solve still agrees with FCM."""
    shape = (16, 16)
    par = Parasitics.build(*shape, **r)
    g = rng.uniform(0.5, 1.0, shape)
    g *= 0.99 * NODAL_MAX_COUPLING / (g.max() * par.series_resistance())
    v = rng.uniform(0, 1, (2, 16))
    i_nodal = sense_currents(g, v, **r)
    i_fcm = v @ FCMSolver(par).g_eff(g)
    assert np.max(np.abs(i_nodal - i_fcm)) / np.max(np.abs(i_fcm)) < 1e-13
    with pytest.raises(NodalRangeError):
        sense_currents(g * 1.02, v, **r)


def test_series_resistance():
    par = Parasitics.build(3, 5, r_source=[1.0, 7.0, 2.0], r_sense=[3.0, 0, 0, 0, 4.0],
                           r_row=0.5, r_col=2.0)
    assert par.series_resistance() == 7.0 + 4 * 0.5 + 2 * 2.0 + 4.0
    assert Parasitics.build(3, 5).series_resistance() == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # no parasitics: no limit at all (g_eff = g), even for absurd conductances
        assert_array_equal(sense_currents(np.full((3, 5), 1e200), np.ones(3)),
                           np.full(5, 3e200))


@pytest.mark.parametrize("scale", [1e300, 1e-290, 2.0 ** -1000])
def test_any_finite_drive_scales_exactly(scale, rng):
    """The solve is linear in v, and each case is scaled by a power of two before it: huge or
    tiny drives give the 1 V currents times the scale, to rounding (no overflow in the
    error-free products, no underflow of the residual)."""
    g = rng.uniform(1e-6, 1e-5, (5, 4))
    v = rng.uniform(0.1, 1.0, (2, 5))
    unit = sense_currents(g, v, **TXSIM)
    assert_allclose(sense_currents(g, v * scale, **TXSIM), unit * scale, rtol=1e-15)
    u, w = node_voltages(g, v * scale, **TXSIM)
    assert_allclose(u, node_voltages(g, v, **TXSIM)[0] * scale, rtol=1e-15)


def test_huge_conductances_without_parasitics():
    g = np.full((2, 3), 1e305)
    assert_array_equal(sense_currents(g, np.ones(2)), np.full(3, 2e305))
