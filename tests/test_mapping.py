"""Weight -> conductance mappings, weight scale, bit slicing and tiling (docs/physics.md)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from xbarsim.hardware.device import Device
from xbarsim.hardware.mapping import (
    MAPPINGS,
    OffsetMapping,
    SignedSplitMapping,
    assemble_tiles,
    combine_slices,
    quantize_weights,
    slice_shifts,
    slice_to_conductance,
    slice_weights,
    split_tiles,
    tile_grid,
    tile_slices,
    weight_scale,
)
from xbarsim.testing import dot_atol

G_MIN, G_MAX = 1e-6, 1e-5
R = G_MAX - G_MIN
shape_st = st.tuples(st.integers(1, 12), st.integers(1, 12))


def weights(seed, shape):
    return np.random.default_rng(seed).normal(0.0, 0.3, shape)


# ---------------------------------------------------------------- mappings
@given(name=st.sampled_from(sorted(MAPPINGS)), seed=st.integers(0, 2**32 - 1), shape=shape_st)
def test_round_trip_and_range(name, seed, shape):
    m = MAPPINGS[name](G_MIN, G_MAX)
    w = weights(seed, shape)
    w_s = weight_scale(w)
    g = m.to_conductance(w, w_s)
    assert g.shape == (m.n_arrays, *shape)
    assert np.all(g >= G_MIN) and np.all(g <= G_MAX)
    assert_allclose(m.to_weight(g, w_s), w, rtol=0, atol=1e-13 * w_s)


@given(name=st.sampled_from(sorted(MAPPINGS)), seed=st.integers(0, 2**32 - 1), shape=shape_st,
       bits=st.integers(1, 6))
def test_round_trip_through_device_levels_within_one_step(name, seed, shape, bits):
    # to_weight(program(to_conductance(w))) == w within one quantisation
    # step; a level step of the device is w_s / (levels - 1) in weight units for the signed
    # split (2 for the half-range mappings)
    m = MAPPINGS[name](G_MIN, G_MAX)
    dev = Device(g_min=G_MIN, g_max=G_MAX, bits=bits)
    w = weights(seed, shape)
    w_s = weight_scale(w)
    w_back = m.to_weight(dev.program(m.to_conductance(w, w_s)), w_s)
    step_w = dev.level_step / m.alpha(w_s) * (1 if name == "signed_split" else 2)
    assert np.max(np.abs(w_back - w)) <= step_w * (1 + 1e-9)


@given(name=st.sampled_from(sorted(MAPPINGS)), seed=st.integers(0, 2**32 - 1), shape=shape_st,
       batch=st.integers(1, 5))
def test_combine_gives_alpha_times_weight_product(name, seed, shape, batch):
    m = MAPPINGS[name](G_MIN, G_MAX)
    gen = np.random.default_rng(seed)
    w = weights(seed, shape)
    w_s = weight_scale(w)
    v = gen.uniform(0.0, 1.0, (batch, shape[0]))
    g = m.to_conductance(w, w_s)
    i = np.stack([v @ g_k for g_k in g])  # (n_arrays, batch, n_cols) ideal arrays
    i_ref = m.reference_current(v) if isinstance(m, OffsetMapping) else None
    y = m.combine(i, i_ref)
    want = v @ (m.alpha(w_s) * w)
    atol = 4 * dot_atol(v, g.sum(axis=0))  # cancellation of the g_min / g_mid baselines
    assert np.all(np.abs(y - want) <= atol + 1e-30)


@given(name=st.sampled_from(sorted(MAPPINGS)), seed=st.integers(0, 2**32 - 1), shape=shape_st)
def test_split_update_with_ideal_device_reaches_target(name, seed, shape):
    m = MAPPINGS[name](G_MIN, G_MAX)
    gen = np.random.default_rng(seed)
    w = 0.5 * np.tanh(weights(seed, shape))  # |w| < 0.5
    w_s = 1.0
    dw = gen.uniform(-0.3, 0.3, shape)  # may flip signs; |w + dw| < 0.8 stays in range
    g = m.to_conductance(w, w_s)
    dg = m.split_update(dw, g, w_s)
    assert dg.shape == g.shape
    lin = Device(g_min=G_MIN, g_max=G_MAX, update_model="linear")
    g_new = np.stack([lin.apply_update(g_k, d_k) for g_k, d_k in zip(g, dg)])
    assert_allclose(m.to_weight(g_new, w_s), w + dw, rtol=0, atol=1e-12)


@given(name=st.sampled_from(sorted(MAPPINGS)), seed=st.integers(0, 2**32 - 1), shape=shape_st,
       w_s=st.floats(0.05, 4.0))
def test_trusted_split_update_equals_checked_bit_for_bit(name, seed, shape, w_s):
    # the tile's hot path (a Numba kernel for signed_split) against the checked NumPy definition;
    # weights and steps reach beyond +-w_s (clipping), idle devices have drifted off g_min, and
    # the step is a strided view as the tile passes it
    m = MAPPINGS[name](G_MIN, G_MAX)
    gen = np.random.default_rng(seed)
    g = np.clip(m.to_conductance(gen.normal(0.0, w_s, shape), w_s)
                + gen.normal(0.0, 0.02 * R, (m.n_arrays, *shape)), G_MIN, G_MAX)
    dw = gen.normal(0.0, w_s, (shape[0], 2 * shape[1]))[:, ::2]
    checked = m.split_update(dw, g, w_s)
    trusted = m.split_update_trusted(dw, [np.ascontiguousarray(x) for x in g], w_s)
    assert_array_equal(trusted, checked)


def test_signed_split_update_follows_models_step_3():
    # W = +0.2 -> W' = -0.1: the positive device returns to g_min, the negative one rises
    m = SignedSplitMapping(G_MIN, G_MAX)
    g = m.to_conductance(np.array([[0.2]]), 1.0)
    dg = m.split_update(np.array([[-0.3]]), g, 1.0)
    assert_allclose(dg[:, 0, 0], [-0.2 * R, 0.1 * R], rtol=1e-12)
    # a drifted idle device (noise) is pulled back to g_min by the next update
    g[1, 0, 0] += 0.01 * R
    dg = m.split_update(np.array([[0.05]]), g, 1.0)
    assert_allclose(dg[:, 0, 0], [0.04 * R, -0.01 * R], rtol=1e-9)


def test_differential_update_is_symmetric():
    m = MAPPINGS["differential"](G_MIN, G_MAX)
    g = m.to_conductance(np.zeros((2, 3)), 2.0)
    assert_allclose(g, 0.5 * (G_MIN + G_MAX))
    dg = m.split_update(np.full((2, 3), 0.4), g, 2.0)
    assert_allclose(dg[0], 0.5 * (R / 2.0) * 0.4, rtol=1e-15)
    assert_array_equal(dg[1], -dg[0])


def test_saturation_beyond_weight_scale():
    m = SignedSplitMapping(G_MIN, G_MAX)
    g = m.to_conductance(np.array([[3.0, -3.0]]), 1.0)
    assert_allclose(g[:, 0, :], [[G_MAX, G_MIN], [G_MIN, G_MAX]], rtol=1e-15)


def test_weight_scale_statistics(rng):
    w = rng.normal(size=(100, 50))
    assert weight_scale(w) == np.abs(w).max()
    assert weight_scale(w, "percentile", 99.9) == pytest.approx(
        np.percentile(np.abs(w), 99.9), rel=1e-15)
    assert weight_scale(w, "percentile", 99.9) < weight_scale(w)


# ---------------------------------------------------------------- bit slicing
@given(k=st.integers(1, 4), n_slices=st.integers(1, 8), seed=st.integers(0, 2**32 - 1),
       n=st.integers(1, 50))
def test_slicing_round_trip_is_exact(k, n_slices, seed, n):
    q = np.random.default_rng(seed).integers(0, 2 ** (k * n_slices), n)
    digits = slice_weights(q, k, n_slices)
    assert digits.shape == (n_slices, n)
    assert np.all((digits >= 0) & (digits < 2**k))
    assert_array_equal(combine_slices(digits, k), q)
    assert_array_equal(slice_shifts(k, n_slices), 2.0 ** (k * np.arange(n_slices)))


def test_slicing_through_crossbar_products(rng):
    # 8-bit magnitudes on four 2-bit slices (TxSim k = 2): shift-and-add of per-slice
    # products reproduces x @ q exactly in integer arithmetic
    w = rng.normal(size=(6, 4))
    q = quantize_weights(w, weight_scale(w), 8)
    assert np.abs(q).max() == 255
    pos = slice_weights(np.maximum(q, 0), 2, 4)
    neg = slice_weights(np.maximum(-q, 0), 2, 4)
    x = rng.integers(0, 16, (3, 6)).astype(float)
    y = combine_slices(np.stack([x @ s for s in pos]), 2) - combine_slices(
        np.stack([x @ s for s in neg]), 2)
    assert_array_equal(y, x @ q)


def test_slice_levels_worked_example():
    # g = g_min + q (g_max - g_min) / (2**k - 1) (docs/physics.md, 'From weights to
    # conductances'): G_min = 1 uS, G_max = 10 uS, k = 2 -> levels 1, 4, 7, 10 uS
    g = slice_to_conductance(np.arange(4), 2, 1e-6, 1e-5)
    assert_allclose(g, [1e-6, 4e-6, 7e-6, 1e-5], rtol=1e-14)


def test_quantize_weights_within_half_step(rng):
    w = rng.normal(size=1000)
    w_s = weight_scale(w)
    q = quantize_weights(w, w_s, 6)
    assert np.max(np.abs(q * w_s / 63 - w)) <= 0.5 * w_s / 63 * (1 + 1e-12)


# ---------------------------------------------------------------- tiling
@given(n_in=st.integers(1, 40), n_out=st.integers(1, 40), n_rows=st.integers(1, 16),
       n_cols=st.integers(1, 16), seed=st.integers(0, 2**32 - 1))
def test_tiling_partial_sums_reproduce_product(n_in, n_out, n_rows, n_cols, seed):
    gen = np.random.default_rng(seed)
    w = gen.normal(size=(n_in, n_out))
    x = gen.normal(size=(3, n_in))
    blocks = tile_slices(n_in, n_out, n_rows, n_cols)
    n_tr, n_tc = tile_grid(n_in, n_out, n_rows, n_cols)
    assert len(blocks) == n_tr * n_tc
    covered = np.zeros((n_in, n_out), dtype=int)
    tiles = split_tiles(w, n_rows, n_cols)  # (n_tr, n_tc, n_rows, n_cols), zero padded
    x_pad = np.zeros((3, n_tr * n_rows))
    x_pad[:, :n_in] = x
    y = np.zeros((3, n_tc * n_cols))
    for b in blocks:
        covered[b.rows, b.cols] += 1
        rows = slice(b.tile_row * n_rows, (b.tile_row + 1) * n_rows)
        cols = slice(b.tile_col * n_cols, (b.tile_col + 1) * n_cols)
        y[:, cols] += x_pad[:, rows] @ tiles[b.tile_row, b.tile_col]  # digital accumulation
    assert np.all(covered == 1)
    # summation order differs from one matmul: scale-aware bound (xbarsim.testing.dot_atol)
    assert np.all(np.abs(y[:, :n_out] - x @ w) <= 2 * dot_atol(x, w))
    assert_array_equal(assemble_tiles(tiles, n_in, n_out), w)
    # padding is zero
    assert tiles.sum() == pytest.approx(w.sum(), rel=1e-12, abs=1e-12)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(("factory", "name"), [
    (lambda: SignedSplitMapping(1e-5, 1e-6), "g_min"),
    (lambda: SignedSplitMapping(0.0, 1e-6), "g_min"),
    (lambda: SignedSplitMapping(G_MIN, G_MAX).to_conductance(np.ones((2, 2)), 0.0), "w_scale"),
    (lambda: SignedSplitMapping(G_MIN, G_MAX).to_weight(np.ones((1, 2, 2)), 1.0), "g"),
    (lambda: SignedSplitMapping(G_MIN, G_MAX).split_update(
        np.ones((3, 2)), np.ones((2, 2, 2)) * G_MIN, 1.0), "dw"),
    (lambda: OffsetMapping(G_MIN, G_MAX).combine(np.ones((1, 2, 3))), "i_ref"),
    (lambda: weight_scale(np.zeros(4)), "w"),
    (lambda: weight_scale(np.ones(4), "mean"), "method"),
    (lambda: weight_scale(np.ones(4), "percentile", 0.0), "percentile"),
    (lambda: slice_weights(np.array([16]), 2, 2), "q"),
    (lambda: slice_weights(np.array([-1]), 2, 2), "q"),
    (lambda: slice_weights(np.array([1.5]), 2, 2), "q"),
    (lambda: slice_weights(np.array([1]), 0, 2), "k"),
    (lambda: quantize_weights(np.ones(2), 1.0, 0), "weight_bits"),
    (lambda: tile_slices(4, 4, 0, 4), "n_rows"),
    (lambda: tile_slices(0, 4, 4, 4), "n_in"),
    (lambda: slice_to_conductance(np.array([4]), 2, G_MIN, G_MAX), "digits"),
])
def test_impossible_configuration_names_the_setting(factory, name):
    with pytest.raises(ValueError, match=f"^{name}"):
        factory()


def test_registry():
    assert sorted(MAPPINGS) == ["differential", "offset", "signed_split"]
    assert [MAPPINGS[k].n_arrays for k in ("signed_split", "differential", "offset")] == [2, 2, 1]
