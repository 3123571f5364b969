"""Direct solver (sign-preserving nested dissection): oracles for every stage and the whole."""

from __future__ import annotations

import decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from tests.strategies import circuits
from xbarsim.hardware import schur
from xbarsim.hardware.circuit import NodalSystem, Parasitics, flip
from xbarsim.hardware.solvers import FCMSolver
from xbarsim.kernels import schur as kernels


def _par(c):
    return Parasitics.build(*c.g.shape, **c.parasitics)


@pytest.fixture(autouse=True)
def _fresh_plans():
    yield
    schur.plan.cache_clear()


# ---------------------------------------------------------------- exact oracle

def _g_eff_decimal(g, r_source, r_sense, r_row, r_col, digits=80):
    """``g_eff`` from the dense nodal system solved in ``digits``-digit decimal arithmetic.

    All resistances must be > 0. Gaussian elimination in 80 digits loses at most the
    system's condition number (< 1e20 here) and leaves ~60 correct digits: exact for float64.
    """
    ctx = decimal.Context(prec=digits)
    d = ctx.create_decimal
    n_rows, n_cols = g.shape
    n = 2 * n_rows * n_cols

    def u(i, j):
        return i * n_cols + j

    def w(i, j):
        return n_rows * n_cols + i * n_cols + j

    zero = d(0)
    a = [[zero] * n for _ in range(n)]
    rhs = [[zero] * n_rows for _ in range(n)]

    def stamp(x, y, cond):
        a[x][x] = ctx.add(a[x][x], cond)
        a[y][y] = ctx.add(a[y][y], cond)
        a[x][y] = ctx.subtract(a[x][y], cond)
        a[y][x] = ctx.subtract(a[y][x], cond)

    one = d(1)
    g_row, g_col = ctx.divide(one, d(r_row)), ctx.divide(one, d(r_col))
    for i in range(n_rows):
        g_s = ctx.divide(one, d(r_source[i]))
        a[u(i, 0)][u(i, 0)] = ctx.add(a[u(i, 0)][u(i, 0)], g_s)
        rhs[u(i, 0)][i] = g_s
        for j in range(n_cols):
            stamp(u(i, j), w(i, j), d(g[i, j]))
            if j + 1 < n_cols:
                stamp(u(i, j), u(i, j + 1), g_row)
            if i + 1 < n_rows:
                stamp(w(i, j), w(i + 1, j), g_col)
    g_k = [ctx.divide(one, d(r)) for r in r_sense]
    for j in range(n_cols):
        a[w(n_rows - 1, j)][w(n_rows - 1, j)] = ctx.add(a[w(n_rows - 1, j)][w(n_rows - 1, j)],
                                                      g_k[j])
    for k in range(n):            # Gaussian elimination (SPD: no pivoting needed)
        for i in range(k + 1, n):
            if a[i][k] == 0:
                continue
            f = ctx.divide(a[i][k], a[k][k])
            row_k, row_i = a[k], a[i]
            for j in range(k, n):
                if row_k[j] != 0:
                    row_i[j] = ctx.subtract(row_i[j], ctx.multiply(f, row_k[j]))
            for m in range(n_rows):
                if rhs[k][m] != 0:
                    rhs[i][m] = ctx.subtract(rhs[i][m], ctx.multiply(f, rhs[k][m]))
    x = [[zero] * n_rows for _ in range(n)]
    for k in range(n - 1, -1, -1):
        for m in range(n_rows):
            acc = rhs[k][m]
            for j in range(k + 1, n):
                if a[k][j] != 0:
                    acc = ctx.subtract(acc, ctx.multiply(a[k][j], x[j][m]))
            x[k][m] = ctx.divide(acc, a[k][k])
    return np.array([[float(ctx.multiply(x[w(n_rows - 1, j)][m], g_k[j]))
                      for j in range(n_cols)] for m in range(n_rows)])


@pytest.mark.parametrize(("shape", "g_range", "r_term", "r_wire"), [
    ((3, 4), (1e-6, 1e-5), 1e-3, (1.0, 4.6)),     # TxSim devices, near-ideal terminals
    ((4, 3), (1e-6, 1e-5), 100.0, (1.0, 4.6)),
    ((2, 5), (5e-5, 5e-4), 100.0, (10.0, 10.0)),  # harsh
    ((3, 3), (1e-9, 1e-8), 1e-4, (1e-3, 1e-3)),   # 1e-9 S against 1e4 S: 13 decades
])
def test_direct_is_entrywise_accurate_against_exact_arithmetic(rng, shape, g_range, r_term,
                                                               r_wire):
    """Every entry of g_eff to ~1e-14 of itself, where the LU of the nodal system loses digits."""
    g = rng.uniform(*g_range, shape)
    par = Parasitics.build(*shape, r_source=r_term, r_sense=r_term, r_row=r_wire[0],
                           r_col=r_wire[1])
    exact = _g_eff_decimal(g, par.r_source, par.r_sense, par.r_row, par.r_col)
    got = schur.g_eff(g, par)
    assert_allclose(got, exact, rtol=2e-14, atol=0)
    # the golden nodal solve (refined in double-double) too: observed <= 2.1e-16 in all four
    # cases (before refinement and nested dissection: up to ~1e-7 in the last one)
    nodal_err = np.max(np.abs(NodalSystem(g, par).g_eff() - exact) / exact)
    assert nodal_err < 1e-15


# ---------------------------------------------------------------- whole solver vs nodal

@given(c=circuits(max_side=12), box=st.sampled_from([1, 2, 4, 8, 16]))
def test_direct_equals_nodal_for_every_box_size(c, box):
    """Any shape, zero and non-zero parasitics, any padding: equal to the golden solver.

    Observed over 1500 examples: max |got - want| <= 1.9e-15 max |want|; entries above
    1e-6 max |want| within 3e-14 of themselves.
    """
    par = _par(c)
    want = NodalSystem(c.g, par).g_eff()
    got = schur.g_eff(c.g, par, box=box)
    assert np.all(got >= 0.0)
    assert_allclose(got, want, rtol=1e-13, atol=1e-14 * np.abs(want).max())


@pytest.mark.parametrize("shape", [(64, 64), (40, 24), (17, 70), (1, 33), (33, 1)])
@pytest.mark.parametrize("regime", ["txsim", "harsh", "ideal_terminals"])
def test_direct_equals_nodal_on_tiles(rng, shape, regime):
    g_range, par_kw = {
        "txsim": ((1e-6, 1e-5), dict(r_source=100.0, r_sense=100.0, r_row=1.0, r_col=4.6)),
        "harsh": ((5e-5, 5e-4), dict(r_source=100.0, r_sense=100.0, r_row=10.0, r_col=10.0)),
        "ideal_terminals": ((1e-6, 1e-5), dict(r_row=1.0, r_col=4.6)),
    }[regime]
    g = rng.uniform(*g_range, shape)
    g[rng.random(shape) < 0.05] = 0.0
    par = Parasitics.build(*shape, **par_kw)
    want = NodalSystem(g, par).g_eff()
    got = FCMSolver(par).g_eff(g)
    # observed: every entry within 3.3e-15 of itself (the exact zeros of ideal terminals come
    # out as ~1e-26 S)
    assert_allclose(got, want, rtol=1e-14, atol=1e-16 * g.max())


def test_threaded_subtrees_equal_serial_bit_for_bit(rng):
    g = rng.uniform(1e-6, 1e-5, (64, 48))
    par = Parasitics.build(64, 48, r_source=100.0, r_sense=100.0, r_row=1.0, r_col=4.6)
    parts = schur.plan(64, 48).parts
    assert len(parts) == 2 and parts[0].last_step > 0 and parts[1].last_step > parts[1].first_step
    serial = FCMSolver(par, n_threads=1).g_eff(g)
    threaded = FCMSolver(par, n_threads=2).g_eff(g)
    assert_array_equal(serial, threaded)


def test_small_arrays_solve_in_the_calling_thread(rng, monkeypatch):
    # below direct_parallel_min_cells two threads cost more than they save (16x16: 3x slower)
    from xbarsim.hardware import solvers  # noqa: PLC0415

    used = []
    real_pool = solvers.shared_pool
    monkeypatch.setattr(solvers, "shared_pool", lambda: used.append(1) or real_pool())
    side = int(FCMSolver.direct_parallel_min_cells ** 0.5)
    for n, threaded in ((side - 1, False), (side, True)):
        par = Parasitics.build(n, n, r_source=100.0, r_sense=100.0, r_row=1.0, r_col=4.6)
        g = rng.uniform(1e-6, 1e-5, (n, n))
        used.clear()
        got = FCMSolver(par, n_threads=2).g_eff(g)
        assert bool(used) is threaded, n
        assert_array_equal(got, FCMSolver(par, n_threads=1).g_eff(g))


def test_reciprocity_flipped_circuit(rng):
    """Driving the columns and sensing the rows gives g_eff.T (solved on the flipped circuit)."""
    g = rng.uniform(1e-6, 1e-5, (9, 14))
    par = Parasitics.build(9, 14, r_source=rng.uniform(0, 200, 9),
                           r_sense=rng.uniform(0, 200, 14), r_row=1.0, r_col=4.6)
    forward = schur.g_eff(g, par)
    backward = schur.g_eff(flip(g), par.flipped())
    assert_allclose(backward, flip(forward), rtol=1e-12)


def test_ideal_limits_and_zero_conductance():
    g = np.full((5, 7), 2e-6)
    assert_allclose(schur.g_eff(g, Parasitics.build(5, 7)), g, rtol=1e-14)
    assert np.all(schur.g_eff(np.zeros((5, 7)), Parasitics.build(5, 7, r_row=1.0)) == 0.0)


def test_zero_resistance_stand_in_changes_nothing_measurable(rng):
    """r = 0 is replaced by delta ~1e-16 / (n_rows n_cols max g): compare with a tiny r > 0."""
    g = rng.uniform(1e-6, 1e-5, (12, 10))
    zero = Parasitics.build(12, 10, r_row=1.0, r_col=4.6)
    tiny = Parasitics.build(12, 10, r_source=1e-9, r_sense=1e-9, r_row=1.0, r_col=4.6)
    a, b = schur.g_eff(g, zero), schur.g_eff(g, tiny)
    # 1e-9 Ohm in series changes currents by about 1e-9 * 10 * 1e-5 = 1e-13 relative
    assert_allclose(a, b, rtol=1e-12)
    assert_allclose(a, NodalSystem(g, zero).g_eff(), rtol=1e-9)


# ---------------------------------------------------------------- plan

@pytest.mark.parametrize(("shape", "box"), [((64, 64), 8), ((16, 64), 8), ((16, 16), 4),
                                            ((8, 8), 2), ((3, 11), 1), ((1, 1), 1),
                                            ((70, 33), 8)])
def test_plan_box_size_and_padding(shape, box):
    assert schur.box_size(*shape) == box
    pl = schur.plan(*shape)
    cell_row = np.concatenate([part.cell_row for part in pl.parts])
    cell_col = np.concatenate([part.cell_col for part in pl.parts])
    n_real = int(np.sum((cell_row >= 0) & (cell_col < shape[1])))
    assert n_real == shape[0] * shape[1]
    assert cell_row.size <= 1.3 * shape[0] * shape[1] or box == 1
    # every real cell appears exactly once in the first batches of the parts
    real = (cell_row >= 0) & (cell_col < shape[1])
    cells = set(zip(cell_row[real].tolist(), cell_col[real].tolist(), strict=True))
    assert len(cells) == n_real
    # the parts' boxes are every box once, and their merges tile the program before the root
    offsets = np.concatenate([part.box_offset for part in pl.parts])
    assert len(set(offsets.tolist())) == offsets.size
    assert pl.parts[0].first_step == 0
    assert all(a.last_step == b.first_step
               for a, b in zip(pl.parts[:-1], pl.parts[1:], strict=True))
    assert pl.n_steps - pl.parts[-1].last_step == len(pl.parts) - 1
    assert pl.root_size == shape[0] + shape[1]
    assert sorted(pl.source_index.tolist() + pl.ground_index.tolist()) == list(
        range(pl.root_size))


def test_plan_rejects_bad_shapes_and_boxes():
    with pytest.raises(ValueError, match="shape"):
        schur.plan(0, 3)
    with pytest.raises(ValueError, match="power of two"):
        schur.plan(4, 4, 3)


# ---------------------------------------------------------------- kernels vs dense references

def _dense_gth(k_full, p):
    """Reference: eliminate the first p nodes of a Laplacian given by its off-diagonals."""
    k = k_full.astype(float).copy()
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(k, -k.sum(axis=1))
    schur_ = k[p:, p:] - k[p:, :p] @ np.linalg.solve(k[:p, :p], k[:p, p:])
    np.fill_diagonal(schur_, 0.0)
    return schur_


def _random_laplacian(rng, n, density=0.6):
    off = -rng.uniform(0.1, 1.0, (n, n)) * (rng.random((n, n)) < density)
    off = np.triu(off, 1)
    off = off + off.T
    # a spanning path keeps every node connected (the references invert a Laplacian block)
    for i in range(n - 1):
        off[i, i + 1] = off[i + 1, i] = min(off[i, i + 1], -0.05)
    return off


@pytest.mark.parametrize(("h", "w", "horizontal"), [(1, 1, True), (1, 2, False), (2, 2, True),
                                                    (4, 2, True), (2, 4, False)])
def test_merge_level_equals_dense_elimination(rng, h, w, horizontal):
    p, q, pos_a, pos_b = schur._level_maps(h, w, horizontal)
    m = 2 * h + 2 * w
    n_par = 5
    child = np.stack([_random_laplacian(rng, m) for _ in range(2 * n_par)], axis=-1)
    lower = np.tril(np.ones((q, q), dtype=bool), -1)
    wants = []
    for x in range(n_par):
        k = np.zeros((p + q, p + q))
        k[np.ix_(pos_a, pos_a)] += child[:, :, x]
        k[np.ix_(pos_b, pos_b)] += child[:, :, n_par + x]
        wants.append(_dense_gth(k, p))
    for chunk in (2, 8):
        out = kernels.merge_level(child, pos_a, pos_b, p, q, chunk)
        for x in range(n_par):
            assert_allclose(out[:, :, x][lower], wants[x][lower], rtol=1e-12, atol=1e-14)
    # the last level writes the kept slots of every box straight into the arenas: parent
    # e = box * n_arrays + array; here 5 parents = 5 boxes of one array, every other slot kept
    keep = np.concatenate([np.arange(x % 2, q, 2) for x in range(n_par)]).astype(np.int64)
    counts = [len(range(x % 2, q, 2)) for x in range(n_par)]
    keep_start = np.cumsum([0] + counts).astype(np.int64)
    starts = np.cumsum([0] + [c * c for c in counts]).astype(np.int64)
    arena = np.full((1, starts[-1]), np.nan)
    kernels.merge_level_into_arenas(child, pos_a, pos_b, p, q, 2, keep, keep_start, arena,
                                    starts[:-1])
    for x in range(n_par):
        kept = keep[keep_start[x]:keep_start[x + 1]]
        d = kept.size
        got = arena[0, starts[x]:starts[x + 1]].reshape(d, d)
        low = np.tril(np.ones((d, d), dtype=bool), -1)
        assert_allclose(got[low], wants[x][np.ix_(kept, kept)][low], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("p", "q", "counts", "panel"), [
    (5, 7, (7, 0, 0), 2), (40, 30, (10, 12, 8), 16), (3, 9, (0, 4, 5), 32), (33, 5, (5, 0, 0), 8),
])
def test_merge_pair_equals_dense_elimination(rng, p, q, counts, panel):
    """Blocked GTH merge (strict lower triangle), source-source and ground-ground left at 0."""
    n = p + q
    na = n - 3
    perm = rng.permutation(n)
    pos_a = np.sort(perm[:na]).astype(np.int64)
    pos_b = np.sort(np.r_[perm[na:], perm[:4]]).astype(np.int64)
    ka, kb = _random_laplacian(rng, na), _random_laplacian(rng, pos_b.size)
    n_plain, n_src, n_gnd = counts
    # as in every real program, a child couples no two terminals of one kind (its own
    # source-source and ground-ground blocks were left at 0 when it was formed)
    section = np.searchsorted([p + n_plain, p + n_plain + n_src], np.arange(n), side="right")
    for km, pos in ((ka, pos_a), (kb, pos_b)):
        sec = section[pos]
        same_terminal = (sec[:, None] == sec[None, :]) & (sec[:, None] > 0)
        km[same_terminal & ~np.eye(pos.size, dtype=bool)] = 0.0
    k = np.zeros((n, n))
    k[np.ix_(pos_a, pos_a)] += ka
    k[np.ix_(pos_b, pos_b)] += kb
    want = _dense_gth(k, p)
    src = slice(n_plain, n_plain + n_src)
    gnd = slice(n_plain + n_src, q)
    want[src, src] = 0.0
    want[gnd, gnd] = 0.0
    # the children and the merge's work block [t | parent] in one flat memory, NaN first
    off_o = ka.size + kb.size + p * n
    mem = np.concatenate([ka.ravel(), kb.ravel(), np.full(p * n + q * q, np.nan)])
    kernels._merge_pair(mem, 0, na, ka.size, pos_b.size, off_o,
                        schur._scatter_blocks(pos_a, p, q), schur._scatter_blocks(pos_b, p, q),
                        p, n_plain,
                        n_src, n_gnd, panel, np.empty(panel * p), np.empty(p))
    out = mem[off_o:].reshape(q, q)
    lower = np.tril(np.ones((q, q), dtype=bool), -1)
    assert_allclose(out[lower], want[lower], rtol=1e-11, atol=1e-13)
    assert np.all(out[lower] <= 0.0)
    # the children are read, not written
    assert_array_equal(mem[:ka.size], ka.ravel())
    assert_array_equal(mem[ka.size:ka.size + kb.size], kb.ravel())


def test_leaf_maps_equal_dense_elimination_of_one_cell():
    """Corner, edge and inner cells: the 4-slot maps are the Schur complements of the cells."""
    g = np.array([[2e-6, 3e-6], [4e-6, 5e-6]])
    g_row, g_col = 1.0, 1 / 4.6
    g_src, g_sns = np.array([0.01, 0.02]), np.array([0.03, 0.04])
    cells_r = np.array([0, 0, 1, 1, -1], dtype=np.int64)
    cells_c = np.array([0, 1, 0, 1, 0], dtype=np.int64)
    maps = kernels.leaf_maps(g[None], np.array([g_row]), np.array([g_col]), g_src[None],
                             g_sns[None], cells_r, cells_c)
    assert np.all(maps[:, :, 4] == 0.0)          # padding
    for c in range(4):
        i, j = cells_r[c], cells_c[c]
        # nodes: 0 L(or s), 1 R, 2 T, 3 B, 4 row node (if eliminated), 5 column node (if so)
        k = np.zeros((6, 6))

        def stamp(a, b, cond, k=k):
            k[a, b] -= cond
            k[b, a] -= cond

        row_node = 4 if j == 0 else 0
        col_node = 5 if i == 0 else 2
        if j == 0:
            stamp(0, 4, g_src[i])
        stamp(row_node, col_node, g[i, j])
        stamp(row_node, 1, g_row if j + 1 < 2 else 0.0)
        stamp(col_node, 3, g_col if i + 1 < 2 else g_sns[j])
        inner = [x for x in (4, 5) if (x == 4 and j == 0) or (x == 5 and i == 0)]
        order = inner + [0, 1, 2, 3]
        want = _dense_gth(k[np.ix_(order, order)] + np.eye(6)[np.ix_(order, order)] * 0,
                          len(inner)) if inner else k[:4, :4]
        np.fill_diagonal(want, 0.0)
        low = np.tril(np.ones((4, 4), dtype=bool), -1)
        assert_allclose(maps[:, :, c][low], want[low], rtol=1e-13, atol=1e-20)
        assert np.all(maps[:, :, c][~low] == 0.0)
