"""Crossbar tile engine: ideal equivalence, converters in the loop, non-ideal paths, update."""

from __future__ import annotations

import dataclasses as dc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from xbarsim.config.schema import (
    ADCConfig,
    CrossbarConfig,
    DACConfig,
    DeviceConfig,
    HardwareConfig,
    MappingConfig,
    PeripheryConfig,
    SolverConfig,
)
from xbarsim.hardware.converters import stream_inputs
from xbarsim.hardware.solvers import NodalSolver
from xbarsim.hardware.tile import Tile
from xbarsim.kernels import mvm
from xbarsim.kernels.quantize import KIND_BOW, KIND_NONE

IDEAL_IO = PeripheryConfig(dac=DACConfig(bits=None, input_bits=None), adc=ADCConfig(bits=None))


def ideal_hw(n_rows=8, n_cols=6, scheme="signed_split", granularity="tile") -> HardwareConfig:
    io = dc.replace(IDEAL_IO, adc=ADCConfig(bits=None, granularity=granularity))
    return HardwareConfig(
        crossbar=CrossbarConfig(n_rows=n_rows, n_cols=n_cols, r_row=0.0, r_col=0.0),
        device=DeviceConfig(bits=None, update_model="linear", nl=0.0, gamma=0.0),
        forward=io, backward=io,
        mapping=MappingConfig(scheme=scheme, slice_bits=None, weight_bits=None),
        solver=SolverConfig(method="ideal"))


def parasitic_hw(**kw) -> HardwareConfig:
    base = ideal_hw(**kw)
    return dc.replace(base, crossbar=dc.replace(base.crossbar, r_row=2.0, r_col=5.0,
                                                r_source=200.0, r_sense=150.0),
                      solver=SolverConfig(method="fcm"))


# ---------------------------------------------------------------- ideal equivalence

@given(n_in=st.integers(1, 30), n_out=st.integers(1, 20), batch=st.integers(1, 5),
       scheme=st.sampled_from(["signed_split", "differential", "offset"]),
       granularity=st.sampled_from(["tile", "layer"]), seed=st.integers(0, 2**16))
def test_ideal_tile_reproduces_matmuls(n_in, n_out, batch, scheme, granularity, seed):
    """Ideal hardware = x @ W and delta @ W.T to float tolerance, tiling over several arrays."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n_in, n_out))
    tile = Tile(n_in, n_out, ideal_hw(7, 5, scheme, granularity), rng=rng, w_init=w)
    x = rng.standard_normal((batch, n_in))
    d = rng.standard_normal((batch, n_out))
    tol = dict(rtol=1e-12, atol=1e-12 * (np.abs(x).sum() + np.abs(d).sum()) * np.abs(w).max())
    assert_allclose(tile.forward(x), x @ w, **tol)
    assert_allclose(tile.backward(d), d @ w.T, **tol)
    assert_allclose(tile.get_weights(), w, rtol=1e-12, atol=1e-14)


def test_ideal_update_is_exact_sgd(rng):
    w = rng.standard_normal((13, 9))
    tile = Tile(13, 9, ideal_hw(), rng=rng, w_init=w)
    x, d = rng.standard_normal((4, 13)), rng.standard_normal((4, 9))
    tile.update(x, d, lr=0.05)
    assert_allclose(tile.get_weights(), w - 0.05 * x.T @ d, rtol=1e-12, atol=1e-14)
    step = 0.01 * rng.standard_normal((13, 9))
    tile.apply_step(step)
    assert_allclose(tile.get_weights(), w - 0.05 * x.T @ d + step, rtol=1e-12, atol=1e-14)


def test_zero_input_and_zero_request(rng):
    w = rng.standard_normal((6, 4))
    tile = Tile(6, 4, parasitic_hw(), rng=rng, w_init=w)
    assert np.all(tile.forward(np.zeros((3, 6))) == 0.0)
    before = tile.conductances()
    tile.apply_step(np.zeros((6, 4)))
    assert_allclose(tile.conductances(), before, rtol=0, atol=0)


# ---------------------------------------------------------------- converters in the loop

@pytest.mark.parametrize("signed", ["two_pass", "twos_complement"])
def test_bit_streaming_recombines_exactly_without_adc(rng, signed):
    """1-bit DAC, 8-bit inputs, ideal ADC: forward = (x quantised to 8 bits) @ W exactly."""
    io = PeripheryConfig(dac=DACConfig(bits=1, input_bits=8, signed=signed),
                         adc=ADCConfig(bits=None))
    hw = dc.replace(ideal_hw(), forward=io, backward=io)
    w = rng.standard_normal((11, 7))
    tile = Tile(11, 7, hw, rng=rng, w_init=w)
    for x in (rng.uniform(0, 3, (4, 11)), rng.standard_normal((4, 11))):
        s = np.abs(x).max()
        sgn = None if np.all(x >= 0) else signed
        x_q = s * stream_inputs(x / s, 8, 1, sgn).value()
        assert np.abs(x_q - x).max() > 1e-4          # quantisation really happened
        assert_allclose(tile.forward(x), x_q @ w, rtol=1e-12, atol=1e-12 * s)


def test_bit_slicing_recombines_exactly_without_adc(rng):
    """2-bit slices of 8-bit weights, ideal converters: forward = x @ W_q (W quantised)."""
    hw = dc.replace(ideal_hw(), device=DeviceConfig(bits=2, update_model="linear", nl=0.0,
                                                    gamma=0.0),
                    mapping=MappingConfig(slice_bits=2, weight_bits=8))
    w = rng.standard_normal((10, 9))
    tile = Tile(10, 9, hw, rng=rng, w_init=w)
    assert tile.n_slices == 4
    levels = 2 ** 8 - 1
    w_q = np.sign(w) * np.round(np.abs(w) / tile.w_scale * levels) * tile.w_scale / levels
    x = rng.uniform(0, 1, (3, 10))
    assert_allclose(tile.forward(x), x @ w_q, rtol=1e-12, atol=1e-13)
    assert np.abs(x @ w_q - x @ w).max() > 1e-6


def test_adc_quantises_and_calibration_freezes(rng):
    io = PeripheryConfig(dac=DACConfig(bits=1, input_bits=4),
                         adc=ADCConfig(bits=3, calibration_batches=2, granularity="tile"))
    hw = dc.replace(ideal_hw(), forward=io)
    w = np.abs(rng.standard_normal((8, 6)))
    tile = Tile(8, 6, hw, rng=rng, w_init=w)
    x = rng.uniform(0, 1, (16, 8))
    y = tile.forward(x)
    assert np.abs(y - x @ w).max() > 1e-3 * np.abs(x @ w).max()       # 3-bit ADC is lossy
    tile.forward(x)
    adc = tile.blocks[0].adc_fwd[0]
    assert not adc.calibrating
    frozen = adc.i_max
    tile.forward(100 * x * (x > 0.99))   # much larger normalised currents would widen a live ADC
    assert adc.i_max == frozen


def _adc_state(tile):
    return {k: v.copy() for k, v in tile.state_dict().items() if "adc" in k}


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("granularity", ["tile", "layer"])
def test_evaluation_passes_leave_calibrating_adcs_unchanged(rng, granularity):
    """calibrate=False converts with the present range; only training passes widen it."""
    io = PeripheryConfig(dac=DACConfig(bits=4, input_bits=4),
                         adc=ADCConfig(bits=4, calibration_batches=100, granularity=granularity))
    hw = dc.replace(ideal_hw(), forward=io, backward=io)
    w = rng.standard_normal((8, 6))
    tile = Tile(8, 6, hw, rng=rng, w_init=w)
    x_small = rng.uniform(0, 1, (16, 8)) * (rng.random((16, 8)) < 0.3)
    tile.forward(x_small)                              # training pass: calibrates
    tile.backward(rng.standard_normal((16, 6)))
    before = _adc_state(tile)
    adcs = [*tile.blocks[0].adc_fwd, tile._adc_layer_fwd]
    assert any(a.calibrating and a.i_max is not None for a in adcs)
    x_big = rng.uniform(0, 1, (16, 8))                 # larger normalised currents
    y_eval = tile.forward(x_big, calibrate=False)
    tile.backward(rng.standard_normal((16, 6)), calibrate=False)
    _assert_same_state(_adc_state(tile), before)
    # the same conversion again gives the same numbers (no state moved in between)
    np.testing.assert_array_equal(tile.forward(x_big, calibrate=False), y_eval)
    # a training pass on the same batch does widen the range (the test above can fail)
    tile.forward(x_big)
    after = _adc_state(tile)
    assert any(not np.array_equal(after[k], before[k]) for k in before)


@pytest.mark.parametrize("granularity", ["tile", "layer"])
def test_evaluation_before_any_calibration_is_refused(rng, granularity):
    io = PeripheryConfig(dac=DACConfig(bits=4, input_bits=4),
                         adc=ADCConfig(bits=4, granularity=granularity))
    tile = Tile(8, 6, dc.replace(ideal_hw(), forward=io), rng=rng,
                w_init=rng.standard_normal((8, 6)))
    with pytest.raises(RuntimeError, match="no range yet"):
        tile.forward(rng.uniform(0, 1, (4, 8)), calibrate=False)


def test_calibrating_adcs_context_lets_evaluation_passes_calibrate(rng):
    from xbarsim.hardware.tile import calibrating_adcs

    io = PeripheryConfig(dac=DACConfig(bits=4, input_bits=4),
                         adc=ADCConfig(bits=4, calibration_batches=100, granularity="tile"))
    tiles = [Tile(8, 6, dc.replace(ideal_hw(), forward=io), rng=rng,
                  w_init=rng.standard_normal((8, 6))) for _ in range(2)]
    x = rng.uniform(0, 1, (16, 8))
    with calibrating_adcs(tiles):
        for t in tiles:
            t.forward(x, calibrate=False)
    assert all(t.blocks[0].adc_fwd[0].n_calibration_calls == 1 for t in tiles)
    assert not any(t.calibrate_in_evaluation for t in tiles)      # restored on exit
    before = _adc_state(tiles[0])
    tiles[0].forward(2 * x, calibrate=False)
    _assert_same_state(_adc_state(tiles[0]), before)


# ---------------------------------------------------------------- non-ideal paths

@pytest.mark.parametrize("granularity", ["tile", "layer"])
def test_parasitic_forward_and_backward_go_through_g_eff(rng, granularity):
    """With ideal converters the products are exactly x @ W_eff and d @ W_eff.T (no shortcut)."""
    hw = parasitic_hw()
    hw = dc.replace(hw, forward=dc.replace(hw.forward, adc=ADCConfig(bits=None,
                                                                     granularity=granularity)))
    w = rng.standard_normal((20, 11))
    tile = Tile(20, 11, hw, rng=rng, w_init=w)
    w_eff = tile.effective_weights()
    assert np.abs(w_eff - w).max() > 1e-4 * np.abs(w).max()        # parasitics matter here
    x, d = rng.uniform(0, 1, (3, 20)), rng.standard_normal((3, 11))
    assert_allclose(tile.forward(x), x @ w_eff, rtol=1e-9, atol=1e-12)
    assert_allclose(tile.backward(d), d @ w_eff.T, rtol=1e-9, atol=1e-12)


def test_effective_weights_match_nodal_solution_per_block(rng):
    hw = parasitic_hw(n_rows=8, n_cols=6)
    w = rng.standard_normal((8, 6))
    tile = Tile(8, 6, hw, rng=rng, w_init=w)
    blk = tile.blocks[0]
    par = blk.masters[0].solver.parasitics
    g_eff = [NodalSolver(par).g_eff(x.g) for x in blk.masters]
    assert_allclose(tile.effective_weights(), (g_eff[0] - g_eff[1]) / tile.alpha, rtol=1e-8,
                    atol=1e-12)


def test_noisy_nonlinear_update_stays_in_range_and_follows_sign(rng):
    hw = dc.replace(parasitic_hw(), device=DeviceConfig(bits=None, update_model="txsim",
                                                        nl=2.0, gamma=5.0))
    w = 0.1 * rng.standard_normal((9, 7))
    tile = Tile(9, 7, hw, rng=np.random.default_rng(3), w_init=w)
    step = np.full((9, 7), 0.02)
    tile.apply_step(step)
    g = tile.conductances()
    assert np.nanmin(g) >= tile.g_min and np.nanmax(g) <= tile.g_max
    assert np.mean(tile.get_weights() - w > 0) > 0.9


@pytest.mark.parametrize("scheme", ["signed_split", "differential", "offset"])
def test_update_step_equals_per_array_reference_bit_for_bit(scheme, rng):
    # the tile updates all its arrays in one kernel that draws keyed Philox normals; the
    # reference uses the checked mapping and the per-array kernel fed with the same normals
    # (Device.keyed_noise): 2x2 blocks (9x7 on 8x6 arrays), clipping, noise, non-linearity
    hw = dc.replace(parasitic_hw(), device=DeviceConfig(bits=None, update_model="txsim",
                                                        nl=2.0, gamma=5.0),
                    mapping=MappingConfig(scheme=scheme, slice_bits=None, weight_bits=None))
    w = 0.3 * rng.standard_normal((9, 7))
    tile = Tile(9, 7, hw, rng=np.random.default_rng(3), w_init=w)
    ref = Tile(9, 7, hw, rng=np.random.default_rng(3), w_init=w)
    assert len(tile.blocks) > 1 and tile.update_key == ref.update_key != 0
    for s in range(3):
        step = 0.2 * rng.standard_normal((9, 7))
        tile.apply_step(step)
        index = 0
        for blk in ref.blocks:
            g = np.stack([x.g for x in blk.masters])
            requests = ref.mapping.split_update(step[blk.block.rows, blk.block.cols], g,
                                                ref.w_scale)
            for a, xbar in enumerate(blk.masters):
                xi = xbar.device.keyed_noise(xbar.shape, key=ref.update_key, step=s,
                                             array_index=index)
                xbar.update(requests[a], xi)
                index += 1
        np.testing.assert_array_equal(tile.conductances(), ref.conductances())
        assert tile.update_step == s + 1


def test_same_seed_same_numbers(rng):
    hw = dc.replace(parasitic_hw(), device=DeviceConfig(bits=None, update_model="txsim",
                                                        nl=0.5, gamma=5.0))
    w = rng.standard_normal((9, 7))
    x, d = rng.uniform(0, 1, (4, 9)), rng.standard_normal((4, 7))
    outs = []
    for _ in range(2):
        tile = Tile(9, 7, hw, rng=np.random.default_rng(11), w_init=w)
        tile.update(x, d, 0.1)
        outs.append(tile.forward(x))
    assert np.array_equal(outs[0], outs[1])


def test_state_dict_round_trip(rng):
    hw = dc.replace(parasitic_hw(), forward=PeripheryConfig(dac=DACConfig(bits=1, input_bits=6),
                                                            adc=ADCConfig(bits=6)))
    w = rng.standard_normal((9, 7))
    a = Tile(9, 7, hw, rng=np.random.default_rng(1), w_init=w)
    x = rng.uniform(0, 1, (5, 9))
    a.forward(x)
    a.apply_step(0.01 * rng.standard_normal((9, 7)))
    b = Tile(9, 7, hw, rng=np.random.default_rng(2), w_init=np.ones((9, 7)))
    b.load_state_dict(a.state_dict())
    y = a.forward(x)
    # same conductances; the two FCM solves agree to their bound (1e-10 of g_max, amplified by
    # the G+ - G- difference), not bit for bit (one of them was warm-started)
    assert_allclose(b.forward(x), y, rtol=0, atol=1e-8 * np.abs(y).max())
    assert_allclose(b.conductances(), a.conductances(), rtol=0, atol=0)


# ---------------------------------------------------------------- fused kernel

def _shift_add_reference(i, weights, coef, i_max, n_steps, bow):
    """Plain NumPy: clip, bow transfer, round, ideal inverse, weighted plane sum."""
    if n_steps == 0:
        conv = i
    else:
        u = np.clip(i / i_max, 0.0, 1.0)
        conv = i_max * np.rint((u + bow * u * (1 - u)) * n_steps) / n_steps
    return coef * np.tensordot(weights, conv, axes=1)


@pytest.mark.parametrize("n_steps,bow", [(0, 0.0), (255, 0.0), (15, 0.3)])
def test_adc_shift_add_segments_matches_reference(rng, n_steps, bow):
    i = rng.uniform(-0.2, 1.3, (5, 4, 7)) * 1e-5
    weights = np.array([1.0, 2.0, 4.0, 8.0, -16.0]) / 15
    kind = KIND_BOW if bow else KIND_NONE
    want = _shift_add_reference(i, weights, -0.7, 1e-5, n_steps, bow)
    empty = np.zeros(2)
    stacked = i.reshape(5 * 4, 7)                      # planes stacked as the tile does
    for fn in (mvm.adc_shift_add_segments, mvm.adc_shift_add_segments.py_func):
        out = np.zeros((4, 7))
        fn(stacked, 5, np.array([0, 7]), np.array([0]), np.array([-0.7]), np.array([1e-5]),
           weights, n_steps, kind, bow, empty, empty, out)
        assert_allclose(out, want, rtol=1e-12, atol=1e-20)


# ---------------------------------------------------------------- bad settings

def test_bad_settings_name_the_setting(rng):
    with pytest.raises(ValueError, match="tile shape"):
        Tile(0, 3, ideal_hw(), rng=rng)
    with pytest.raises(ValueError, match="slice_bits"):
        Tile(4, 3, dc.replace(ideal_hw(), mapping=MappingConfig(scheme="differential",
                                                                 slice_bits=2)), rng=rng)
    with pytest.raises(ValueError, match="r_min"):
        DeviceConfig(r_min=1.0e6, r_max=1.0e5)
    with pytest.raises(ValueError, match="bits"):
        DACConfig(bits=0)
    with pytest.raises(ValueError, match="sense_noise"):
        ADCConfig(sense_noise=-1.0)
    tile = Tile(4, 3, ideal_hw(), rng=rng)
    with pytest.raises(ValueError, match=r"x: expected shape \(batch, 4\)"):
        tile.forward(np.ones((2, 5)))
    with pytest.raises(ValueError, match="dw: expected shape"):
        tile.apply_step(np.ones((3, 4)))


@pytest.mark.parametrize(("mode", "signed", "lo"), [(mvm.MODE_UNSIGNED, None, 0.0),
                                                   (mvm.MODE_TWO_PASS, "two_pass", -1.0),
                                                   (mvm.MODE_TWOS_COMPLEMENT,
                                                    "twos_complement", -1.0)])
@pytest.mark.parametrize(("input_bits", "dac_bits"), [(8, 1), (8, 2), (6, 3), (5, 5), (3, 1)])
def test_dac_planes_equal_streaming_then_dac(rng, mode, signed, lo, input_bits, dac_bits):
    """The fused kernel reproduces stream_inputs + DAC.drive exactly (bow DAC included)."""
    from xbarsim.hardware.converters import DAC

    u = rng.uniform(lo, 1.0, (7, 9))
    dac = DAC(dac_bits, 0.7, nonlinearity="bow", bow=0.2)
    want = dac.drive(stream_inputs(u, input_bits, dac_bits, signed))
    for fn in (mvm.dac_planes, mvm.dac_planes.py_func):
        got = fn(u, 1.0, input_bits, dac_bits, mode, *dac.transfer, dac.v_max)
        np.testing.assert_array_equal(got, want)
        # the kernel normalises by in_scale itself, exactly as a division before it would
        got = fn(2.5 * u, 2.5, input_bits, dac_bits, mode, *dac.transfer, dac.v_max)
        np.testing.assert_array_equal(got, dac.drive(stream_inputs((2.5 * u) / 2.5, input_bits,
                                                                  dac_bits, signed)))


def test_planes_product_convert_equals_stacked_reference(rng):
    v_src = (rng.random((5, 4, 6)) > 0.5) * 0.8
    v_src[2] = 0.0                                     # an all-zero plane is skipped
    g_cat = rng.uniform(1e-6, 1e-5, (6, 7))
    seg_start, seg_dst = np.array([0, 3, 7]), np.array([0, 1])
    seg_coef, seg_imax = np.array([1.0, -1.0]), np.array([2e-5, 3e-5])
    weights = np.array([1.0, 2.0, 4.0, 8.0, -16.0]) / 15
    want = np.zeros((4, 5))
    stacked = v_src.reshape(20, 6) @ g_cat
    mvm.adc_shift_add_segments(stacked, 5, seg_start, seg_dst, seg_coef, seg_imax, weights,
                               63, 0, 0.0, np.zeros(2), np.zeros(2), want)
    for fn in (mvm.planes_product_convert, mvm.planes_product_convert.py_func):
        out = np.zeros((4, 5))
        fn(v_src, g_cat, seg_start, seg_dst, seg_coef, seg_imax, weights,
           np.array([63.0, 0.0, 0.0]), np.zeros(2), np.zeros(2), out)
        assert_allclose(out, want, rtol=1e-13, atol=1e-20)


def test_forward_and_backward_granularity_are_configured_separately(rng):
    """Forward per array (3-bit ADCs), backward on the stitched layer (ideal ADC)."""
    fwd = PeripheryConfig(dac=DACConfig(bits=None, input_bits=None),
                          adc=ADCConfig(bits=3, granularity="tile"))
    bwd = PeripheryConfig(dac=DACConfig(bits=None, input_bits=None),
                          adc=ADCConfig(bits=None, granularity="layer"))
    hw = dc.replace(parasitic_hw(), forward=fwd, backward=bwd)
    w = rng.standard_normal((20, 11))
    tile = Tile(20, 11, hw, rng=rng, w_init=w)
    x, d = rng.uniform(0, 1, (3, 20)), rng.standard_normal((3, 11))
    w_eff = tile.effective_weights()
    assert np.abs(tile.forward(x) - x @ w_eff).max() > 1e-3 * np.abs(x @ w_eff).max()
    assert_allclose(tile.backward(d), d @ w_eff.T, rtol=1e-9, atol=1e-12)
    assert tile._adc_layer_fwd.i_max is None           # forward never used the layer ADC


def test_dac_effective_is_the_weighted_plane_sum(rng):
    from xbarsim.hardware.tile import _plane_weights

    u = rng.uniform(-1, 1, (37, 9))
    for mode, signed in ((mvm.MODE_UNSIGNED, None), (mvm.MODE_TWO_PASS, "two_pass"),
                         (mvm.MODE_TWOS_COMPLEMENT, "twos_complement")):
        for kind, param in ((1, 0.3), (0, 0.0)):       # bow DAC (planes), linear (fast path)
            args = (3.0 * u, 3.0, 8, 2, mode, kind, param, np.zeros(2), np.zeros(2), 0.9)
            weights = _plane_weights(8, 2, signed)
            want = np.tensordot(weights, mvm.dac_planes(*args), axes=1)
            assert_allclose(mvm.dac_effective(*args, weights), want, rtol=1e-14, atol=1e-15)


@given(rows=st.integers(1, 6), cols=st.integers(1, 6), seed=st.integers(0, 2**32 - 1),
       nan_at=st.none() | st.integers(0, 35))
def test_abs_max_min_equals_numpy(rows, cols, seed, nan_at):
    x = np.random.default_rng(seed).standard_normal((rows, cols)) * 10.0 ** (seed % 7 - 3)
    if nan_at is not None:
        x.flat[nan_at % x.size] = np.nan
    for fn in (mvm.abs_max_min, mvm.abs_max_min.py_func):
        top, low = fn(x)
        if nan_at is not None:
            assert np.isnan(top) and np.isnan(low)
        else:
            assert (top, low) == (np.abs(x).max(), x.min())


@pytest.mark.parametrize("mode", [mvm.MODE_UNSIGNED, mvm.MODE_TWO_PASS])
def test_ideal_dac_planes_normalise_by_in_scale(rng, mode):
    """dac_bits = 0 (ideal DAC): the planes carry v_max * x / in_scale, split by sign."""
    x = rng.uniform(-2.0, 2.0, (5, 7))
    for fn in (mvm.dac_planes, mvm.dac_planes.py_func):
        got = fn(x, 2.0, 8, 0, mode, KIND_NONE, 0.0, np.zeros(2), np.zeros(2), 0.5)
        u = x / 2.0
        if mode == mvm.MODE_UNSIGNED:
            np.testing.assert_array_equal(got, 0.5 * np.clip(u, 0.0, 1.0)[None])
        else:
            np.testing.assert_array_equal(got, 0.5 * np.stack([np.maximum(u, 0.0),
                                                               np.maximum(-u, 0.0)]))


def test_interpolated_solver_in_a_tile_refreshes_exactly_every_l_updates(rng):
    """Between exact refreshes the tile's arrays use the stored distortion (cheap, inline)."""
    hw = dc.replace(parasitic_hw(), solver=SolverConfig(method="interpolated", refresh_every=3))
    w = rng.standard_normal((9, 7))
    tile = Tile(9, 7, hw, rng=rng, w_init=w)
    x = rng.uniform(0, 1, (2, 9))
    solves = []
    for _ in range(7):
        tile.forward(x)
        solves.append(tile.solver_stats()["n_solves"])
        tile.apply_step(1e-3 * rng.standard_normal((9, 7)))
    n_arrays = sum(len(b.reads) for b in tile.blocks)
    # exact solves at calls 1, 4 and 7 only
    assert solves == [n_arrays, n_arrays, n_arrays, 2 * n_arrays, 2 * n_arrays, 2 * n_arrays,
                      3 * n_arrays]


def test_sense_noise_path_is_seeded_and_unbiased(rng):
    io = PeripheryConfig(dac=DACConfig(bits=1, input_bits=4),
                         adc=ADCConfig(bits=None, sense_noise=1e-7, granularity="tile"))
    hw = dc.replace(ideal_hw(), forward=io)
    w = rng.uniform(0.1, 1.0, (8, 6))
    x = rng.uniform(0, 1, (400, 8))
    outs = [Tile(8, 6, hw, rng=np.random.default_rng(9), w_init=w).forward(x) for _ in range(2)]
    np.testing.assert_array_equal(outs[0], outs[1])           # same stream, same noise
    s = np.abs(x).max()
    clean = s * stream_inputs(x / s, 4, 1, None).value() @ w
    err = outs[0] - clean
    assert np.abs(err).max() > 0                               # the noise is really there
    assert abs(err.mean()) < 4 * err.std() / np.sqrt(err.size)  # zero-mean (4 sigma)
