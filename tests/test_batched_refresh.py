"""Batched exact refresh: many arrays solved together equal the per-array solves bit for bit."""

from __future__ import annotations

import dataclasses as dc

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from xbarsim.config.presets import PRESETS
from xbarsim.config.schema import CrossbarConfig, SolverConfig
from xbarsim.hardware import parallel, schur
from xbarsim.hardware.circuit import NodalSystem, Parasitics
from xbarsim.hardware.solvers import (
    FCMSolver,
    InterpolatedSolver,
    NodalSolver,
    g_eff_many,
)
from xbarsim.hardware.tile import Tile, refresh_tiles

TXSIM = dict(r_source=100.0, r_sense=100.0, r_row=1.0, r_col=4.6)


@pytest.fixture
def always_split(monkeypatch):
    """Make every batched solve run in threads (the machine has >= 2 in CI)."""
    monkeypatch.setattr(parallel, "MIN_SPLIT_WORK", 0)
    monkeypatch.setattr(parallel, "default_threads", lambda: 2)


@pytest.mark.parametrize("shape", [(64, 64), (16, 64), (64, 10), (25, 6), (1, 7), (9, 1),
                                   (3, 3)])
def test_batch_equals_single_solves_bit_for_bit(rng, shape):
    g = rng.uniform(1e-6, 1e-5, (5, *shape))
    g[1] = 0.0                                   # an all-open array: g_eff = 0
    g[2][rng.random(shape) < 0.3] = 0.0          # open cells
    par = Parasitics.build(*shape, **TXSIM)
    batch = schur.g_eff_batch(g, par)
    for k in range(g.shape[0]):
        assert_array_equal(batch[k], schur.g_eff(g[k], par))
    assert np.all(batch[1] == 0.0)
    want = NodalSystem(g[0], par).g_eff()
    assert_allclose(batch[0], want, rtol=1e-9, atol=1e-13 * g[0].max())


def test_batch_with_zero_resistances_uses_each_arrays_stand_in(rng):
    # delta ~ 1e-16 / (n_cells max g) differs between arrays: each keeps its own
    g = np.stack([rng.uniform(1e-6, 1e-5, (6, 5)), rng.uniform(1e-3, 1e-2, (6, 5))])
    par = Parasitics.build(6, 5, r_row=1.0)
    batch = schur.g_eff_batch(g, par)
    for k in range(2):
        assert_array_equal(batch[k], schur.g_eff(g[k], par))
        assert_allclose(batch[k], NodalSystem(g[k], par).g_eff(), rtol=1e-9)


def _solvers(rng):
    """Mixed solvers and shapes, as the arrays of a layer's tiles (partial edge blocks)."""
    cases = []
    for shape in [(64, 64)] * 3 + [(16, 64)] * 2 + [(64, 10), (16, 10)]:
        par = Parasitics.build(*shape, **TXSIM)
        cases.append((FCMSolver(par, n_threads=1), shape))
        cases.append((InterpolatedSolver(par, refresh_every=2, n_threads=1), shape))
    other = Parasitics.build(64, 64, r_source=50.0, r_sense=20.0, r_row=2.0, r_col=2.0)
    cases.append((FCMSolver(other, n_threads=1), (64, 64)))      # same shape, other wires
    small = Parasitics.build(5, 4, **TXSIM)
    cases.append((NodalSolver(small), (5, 4)))
    cases.append((FCMSolver(small, algorithm="iterative", n_threads=1), (5, 4)))
    return cases


@pytest.mark.parametrize("threads", [False, True])
def test_g_eff_many_equals_the_loop_results_and_statistics(rng, request, threads):
    if threads:
        request.getfixturevalue("always_split")
    seed = int(rng.integers(1 << 30))
    loop = _solvers(np.random.default_rng(seed))
    many = _solvers(np.random.default_rng(seed))
    gen = np.random.default_rng(seed + 1)
    for _ in range(3):      # interpolated: refresh, interpolate, refresh
        gs = [gen.uniform(1e-6, 1e-5, shape) for _, shape in loop]
        want = [solver.g_eff(g) for (solver, _), g in zip(loop, gs, strict=True)]
        got = g_eff_many([solver for solver, _ in many], gs)
        for w, g_ in zip(want, got, strict=True):
            assert_array_equal(g_, w)
        for (a, _), (b, _) in zip(loop, many, strict=True):
            assert a.stats == b.stats
            if isinstance(a, InterpolatedSolver):
                assert a.exact_solver.stats == b.exact_solver.stats


def test_g_eff_many_checks_its_inputs():
    par = Parasitics.build(3, 3)
    with pytest.raises(ValueError, match="2 solvers but 1"):
        g_eff_many([FCMSolver(par), FCMSolver(par)], [np.ones((3, 3))])
    with pytest.raises(ValueError, match="shape"):
        g_eff_many([FCMSolver(par)], [np.ones((3, 4))])


def _hardware(method):
    hw = PRESETS["txsim"]().hardware
    return dc.replace(hw, crossbar=CrossbarConfig(n_rows=32, n_cols=32, **TXSIM),
                      solver=SolverConfig(method=method, refresh_every=3))


@pytest.mark.parametrize("method", ["fcm", "interpolated"])
def test_refresh_tiles_equals_refreshing_each_tile(rng, always_split, method):
    """Two layers (shared 32 x 32 shapes and partial edge blocks): products equal bit for bit."""
    hw = _hardware(method)
    shapes = [(70, 40), (40, 10)]
    w = [0.1 * rng.standard_normal(s) for s in shapes]
    x = rng.uniform(0, 1, (8, 70))

    def build():
        return [Tile(*s, hw, rng=np.random.default_rng(k), name=f"t{k}", w_init=w[k])
                for k, s in enumerate(shapes)]

    alone, together = build(), build()
    for step in range(4):
        dw = [1e-3 * np.random.default_rng(step + 10 * k).standard_normal(s)
              for k, s in enumerate(shapes)]
        for tiles in (alone, together):
            for t, d in zip(tiles, dw, strict=True):
                t.apply_step(d)
        refresh_tiles(together)
        assert all(not xb.stale for t in together for b in t.blocks for xb in t.read_arrays(b))
        h_alone = alone[1].forward(alone[0].forward(x))
        h_together = together[1].forward(together[0].forward(x))
        assert_array_equal(h_together, h_alone)
        for ta, tb in zip(alone, together, strict=True):
            assert ta.solver_stats() == tb.solver_stats()


# ---------------------------------------------------------------- one array, public API

def test_public_call_caches_parasitics_and_matches_the_solver(rng):
    import xbarsim  # noqa: PLC0415
    from xbarsim.hardware.solvers import parasitics_for  # noqa: PLC0415

    g = rng.uniform(1e-6, 1e-5, (12, 9))
    kw = dict(r_source=np.linspace(50.0, 150.0, 12), r_sense=100.0, r_row=1.0, r_col=4.6)
    first = parasitics_for(g.shape, **kw)
    assert parasitics_for(g.shape, **kw) is first               # cached
    assert not first.r_source.flags.writeable                   # shared: read-only
    assert parasitics_for((12, 10), **kw) is not first          # keyed on the shape
    other = dict(kw, r_row=2.0)
    assert parasitics_for(g.shape, **other) is not first        # and on the values
    want = FCMSolver(Parasitics.build(12, 9, **kw)).g_eff(g)
    assert_array_equal(xbarsim.effective_conductance(g, method="fcm", **kw), want)
    assert_array_equal(xbarsim.effective_conductance(g, method="fcm", **kw), want)
    # lists are not cached but work; bad values give the same errors as before
    listed = dict(kw, r_source=list(kw["r_source"]))
    assert_array_equal(xbarsim.effective_conductance(g, method="fcm", **listed), want)
    with pytest.raises(ValueError, match="r_source"):
        xbarsim.effective_conductance(g, r_source=np.ones(3))
    with pytest.raises(ValueError, match="r_row"):
        xbarsim.effective_conductance(g, r_row=-1.0)


# ---------------------------------------------------------------- products in batch slices

@pytest.mark.parametrize("granularity", ["tile", "layer"])
def test_products_split_over_the_batch_are_bit_identical(monkeypatch, rng, granularity):
    """Per-array converters with frozen ranges, or the layer matrix: batch slices in threads
    equal one call, bit for bit (odd batch, partial edge blocks, both directions, signed)."""
    from xbarsim.studies.bench_layer import txsim_layer_hardware  # noqa: PLC0415

    hw = txsim_layer_hardware()
    periph = [dc.replace(p, adc=dc.replace(p.adc, granularity=granularity))
              for p in (hw.forward, hw.backward)]
    hw = dc.replace(hw, forward=periph[0], backward=periph[1])
    w = 0.1 * rng.standard_normal((150, 70))
    x = rng.uniform(0.0, 1.0, (37, 150))
    xs = rng.standard_normal((37, 150))
    delta = rng.standard_normal((37, 70))

    def run(split):
        monkeypatch.setattr(parallel, "MIN_SPLIT_WORK", 0)
        monkeypatch.setattr(parallel, "default_threads", lambda: 2)
        tile = Tile(150, 70, hw, rng=np.random.default_rng(5), w_init=w)
        tile.split_products = split
        out = [tile.forward(x), tile.backward(delta)]
        tile.freeze_adcs()
        return out + [tile.forward(x), tile.forward(xs), tile.backward(delta)]

    for a, b in zip(run(False), run(True), strict=True):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("granularity", ["layer", "tile"])
@pytest.mark.parametrize("sense_noise", [0.0, 1e-7])
def test_large_inputs_in_row_chunks_give_the_same_outputs(monkeypatch, rng, granularity,
                                                          sense_noise):
    """An evaluation pass over many rows, in chunks or at once: bit-identical outputs."""
    import xbarsim.hardware.tile as tile_mod  # noqa: PLC0415

    hw = PRESETS["txsim"]().hardware
    periph = [dc.replace(p, adc=dc.replace(p.adc, granularity=granularity,
                                           sense_noise=sense_noise))
              for p in (hw.forward, hw.backward)]
    hw = dc.replace(hw, crossbar=CrossbarConfig(n_rows=32, n_cols=32, **TXSIM),
                    forward=periph[0], backward=periph[1])
    w = 0.1 * rng.standard_normal((40, 20))
    train = rng.uniform(0.0, 1.0, (16, 40))
    x = rng.uniform(0.0, 1.0, (3000, 40))
    delta = rng.standard_normal((2500, 20))

    def run(chunk_bytes):
        monkeypatch.setattr(tile_mod, "PRODUCT_CHUNK_BYTES", chunk_bytes)
        monkeypatch.setattr(tile_mod, "PRODUCT_CHUNK_MIN_ROWS", 1)
        tile = Tile(40, 20, hw, rng=np.random.default_rng(3), w_init=w)
        tile.forward(train)                     # calibrating: never in chunks
        tile.backward(train[:, :20])
        tile.freeze_adcs()
        return [tile.forward(x, calibrate=False), tile.backward(delta, calibrate=False)]

    calls = []
    real = Tile._convert_rows
    monkeypatch.setattr(Tile, "_convert_rows",
                        lambda self, x, *a: calls.append(x.shape[0]) or real(self, x, *a))
    whole = run(1 << 40)
    n_whole = len(calls)
    chunked = run(8 * 40 * 7 * 64)
    # noisy per-array sensing draws its noise plane by plane over the batch: never chunked
    assert (len(calls) - n_whole > n_whole) is not (granularity == "tile" and sense_noise > 0)
    for a, b in zip(whole, chunked, strict=True):
        assert a.tobytes() == b.tobytes()
