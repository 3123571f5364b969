"""Nodal (MNA) assembly and golden nodal solver of one crossbar.

Oracles: hand-written matrices (1x1, 2x2), the dense union-find nodal solver and the
device-voltage (Z-matrix) formulation in tests/reference.py, and physical invariants.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse.linalg as spla
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from tests import reference as ref
from tests import strategies as xst
from xbarsim.hardware.circuit import (
    NodalSystem,
    Parasitics,
    backward_currents,
    effective_conductance,
    node_voltages,
    sense_currents,
)
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
    # r_row = r_col = 0: each row and each column is a single node (MODELS.md §2.7)
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
    parasitic' are false for v >= 0 (ARCHITECTURE.md §2.6 states the latter). Sneak path:
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
