"""Tile products against an independent, plane-by-plane reference (tests/reference.py).

The reference (``reference.tile_product``) is written from the documented semantics
(docs/physics.md, 'Converters' and 'From weights to conductances', the docstrings of
xbarsim.hardware.tile and .converters, the config field docs): per physical array and
bit-plane, the direction's DAC and ADC applied to ``V_p @ g_eff`` (forward) or
``V_p @ g_eff.T`` (backward), the ADC range calibrated per array over all the planes, samples
and columns it converts, shift-and-add, polarity/slice coefficients, digital rescale.
It shares no code with the tile: not the fused kernels, not the ADC class, not the streaming
helper, not the solvers (``g_eff`` comes from the dense nodal reference).

The configurations make the forward and backward converters differ in every documented
respect (DAC bits, input bits, signed mode, v_read, transfer curves; ADC bits, statistic,
window, fixed or calibrated range), so a backward pass that used the forward converters or
calibration state, or a calibration that mixed the currents of several arrays, fails.
"""

from __future__ import annotations

import dataclasses as dc
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from tests import reference as ref
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
from xbarsim.hardware.tile import Tile

N_IN, N_OUT = 11, 9            # 2 x 2 blocks of 6 x 5 arrays, two of them partial

FWD_1BIT = PeripheryConfig(
    dac=DACConfig(bits=1, input_bits=6, v_read=1.0, signed="two_pass"),
    adc=ADCConfig(bits=7, calibration="max", calibration_batches=3, granularity="tile"))
BWD_2BIT_TWOS = PeripheryConfig(
    dac=DACConfig(bits=2, input_bits=7, v_read=0.6, signed="twos_complement",
                  nonlinearity="bow", bow=0.15),
    adc=ADCConfig(bits=5, calibration="percentile", percentile=99.0, calibration_batches=2,
                  nonlinearity="tanh", tanh_beta=0.7, granularity="tile"))
FWD_IDEAL_DAC = PeripheryConfig(
    dac=DACConfig(bits=None, input_bits=None, v_read=0.8),
    adc=ADCConfig(bits=6, calibration="percentile", percentile=97.0, calibration_batches=2,
                  granularity="tile"))
BWD_FIXED_RANGE = PeripheryConfig(
    dac=DACConfig(bits=1, input_bits=5, v_read=1.0, signed="two_pass"),
    adc=ADCConfig(bits=8, range=1.2e-5, nonlinearity="bow", bow=0.2, granularity="tile"))
FWD_2BIT = PeripheryConfig(
    dac=DACConfig(bits=2, input_bits=4, v_read=0.9),
    adc=ADCConfig(bits=6, calibration="max", calibration_batches=2, granularity="tile"))
BWD_IDEAL_DAC_TWOS = PeripheryConfig(       # twos_complement needs DAC bits: two passes
    dac=DACConfig(bits=None, input_bits=None, v_read=0.5, signed="twos_complement"),
    adc=ADCConfig(bits=4, calibration="max", calibration_batches=1, granularity="tile"))
FWD_LAYER = PeripheryConfig(
    dac=DACConfig(bits=1, input_bits=5, v_read=1.0, signed="twos_complement"),
    adc=ADCConfig(bits=7, calibration="max", calibration_batches=2, granularity="layer"))
BWD_LAYER = PeripheryConfig(
    dac=DACConfig(bits=2, input_bits=6, v_read=0.7, signed="two_pass"),
    adc=ADCConfig(bits=5, calibration="percentile", percentile=98.0, calibration_batches=3,
                  nonlinearity="bow", bow=-0.2, granularity="layer"))

CASES = {
    # name: (mapping, forward, backward, parasitics, signed forward inputs)
    "split-1bit/2bit-twos": (MappingConfig(), FWD_1BIT, BWD_2BIT_TWOS, True, False),
    "differential-idealdac/fixed-range": (MappingConfig(scheme="differential"), FWD_IDEAL_DAC,
                                          BWD_FIXED_RANGE, True, False),
    "sliced-2bit/idealdac-twos": (MappingConfig(slice_bits=2, weight_bits=5), FWD_2BIT,
                                  BWD_IDEAL_DAC_TWOS, True, False),
    "offset-signed-inputs": (MappingConfig(scheme="offset"), FWD_1BIT, BWD_2BIT_TWOS, False,
                             True),
    "layer/layer": (MappingConfig(), FWD_LAYER, BWD_LAYER, True, True),
    "tile/layer": (MappingConfig(scheme="differential"), FWD_1BIT, BWD_LAYER, True, False),
    "layer/tile": (MappingConfig(), FWD_LAYER, BWD_2BIT_TWOS, True, True),
}


def make_hw(mapping, forward, backward, parasitics) -> HardwareConfig:
    sliced = mapping.slice_bits is not None
    return HardwareConfig(
        crossbar=CrossbarConfig(n_rows=6, n_cols=5,
                                **(dict(r_row=2.0, r_col=5.0, r_source=200.0, r_sense=150.0)
                                   if parasitics else dict(r_row=0.0, r_col=0.0))),
        device=DeviceConfig(bits=mapping.slice_bits if sliced else None, update_model="linear",
                            nl=0.0, gamma=0.0),
        forward=forward, backward=backward, mapping=mapping,
        solver=SolverConfig(method="fcm" if parasitics else "ideal"))


def documented_coefs(hw: HardwareConfig) -> list[float]:
    """Shift-and-add coefficient of each read array of a block, in the tile's array order.

    Polarity-major: +1 / -1 (signed split, differential), 2 (offset column); bit-sliced:
    slice s of B_w-bit weights in k-bit slices weighs
    ``2**(k s) (2**k - 1) / (2**B_w - 1)``.
    """
    base = {"signed_split": [1.0, -1.0], "differential": [1.0, -1.0], "offset": [2.0]}
    polarities = base[hw.mapping.scheme]
    k, b = hw.mapping.slice_bits, hw.mapping.weight_bits
    if k is None:
        return polarities
    shifts = [2.0 ** (k * s) * (2 ** k - 1) / (2 ** b - 1) for s in range(math.ceil(b / k))]
    return [p * s for p in polarities for s in shifts]


class Reference:
    """The reference model of one tile: its arrays' layout and its own ADC states."""

    def __init__(self, tile: Tile, hw: HardwareConfig) -> None:
        self.tile, self.hw = tile, hw
        coefs = documented_coefs(hw)
        self.arrays = [ref.RefArray(blk.block.rows, blk.block.cols, c, ref.ref_adc(hw.forward.adc),
                                    ref.ref_adc(hw.backward.adc))
                       for blk in tile.blocks for c in coefs]
        self.layer_adc = {True: ref.ref_adc(hw.forward.adc, bipolar=True),
                          False: ref.ref_adc(hw.backward.adc, bipolar=True)}
        dev = hw.device
        self.g_min, self.g_max = 1.0 / dev.r_max, 1.0 / dev.r_min

    def _refresh(self) -> None:
        """g_eff of every read array from its programmed conductances (dense nodal solve)."""
        cb = self.hw.crossbar
        reads = [x for blk in self.tile.blocks for x in self.tile.read_arrays(blk)]
        assert len(reads) == len(self.arrays)
        for arr, xbar in zip(self.arrays, reads, strict=True):
            g = np.array(xbar.g)
            arr.g_eff = g if self.hw.solver.method == "ideal" else ref.dense_g_eff(
                g, r_source=cb.r_source, r_sense=cb.r_sense, r_row=cb.r_row, r_col=cb.r_col)

    def product(self, x, *, forward: bool, calibrate: bool = True):
        self._refresh()
        baseline = self.g_max + self.g_min if self.hw.mapping.scheme == "offset" else 0.0
        return ref.tile_product(
            x, self.arrays, self.hw.forward if forward else self.hw.backward, forward=forward,
            alpha=(self.g_max - self.g_min) / self.tile.w_scale, shape=self.tile.shape,
            baseline=baseline, layer_adc=self.layer_adc[forward], calibrate=calibrate)

    def assert_same_ranges(self) -> None:
        """Every ADC of the tile has the reference's range and calibration state."""
        tile_adcs = {True: [a for blk in self.tile.blocks for a in blk.adc_fwd],
                     False: [a for blk in self.tile.blocks for a in blk.adc_bwd]}
        for forward in (True, False):
            pairs = [(t, arr.adc[forward]) for t, arr in zip(tile_adcs[forward], self.arrays,
                                                             strict=True)]
            layer = (self.tile._adc_layer_fwd if forward else self.tile._adc_layer_bwd,
                     self.layer_adc[forward])
            for k, (got, want) in enumerate([*pairs, layer]):
                where = f"{'forward' if forward else 'backward'} ADC {k}"
                if want.i_max is None:
                    assert got.i_max is None, where
                else:
                    assert got.i_max == pytest.approx(want.i_max, rel=1e-12), where
                assert got.calibrating == want.calibrating, where


def _assert_output(got, want, what):
    assert got.shape == want.shape
    assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max(), err_msg=what)


@pytest.mark.parametrize("case", list(CASES))
def test_forward_and_backward_match_plane_by_plane_reference(case):
    mapping, forward, backward, parasitics, signed_x = CASES[case]
    hw = make_hw(mapping, forward, backward, parasitics)
    rng = np.random.default_rng(list(CASES).index(case))
    w = rng.standard_normal((N_IN, N_OUT))
    tile = Tile(N_IN, N_OUT, hw, rng=np.random.default_rng(5), w_init=w)
    model = Reference(tile, hw)
    assert len(tile.blocks) == 4
    for step in range(4):                      # past every calibration window (1, 2, 3)
        x = rng.uniform(-1.0 if signed_x else 0.0, 1.0, (7, N_IN)) * 3.0
        x[:, rng.random(N_IN) < 0.2] = 0.0     # some undriven rows, as after a ReLU
        d = rng.standard_normal((7, N_OUT)) * 0.01
        _assert_output(tile.forward(x), model.product(x, forward=True), f"forward {step}")
        _assert_output(tile.backward(d), model.product(d, forward=False), f"backward {step}")
        model.assert_same_ranges()
        tile.apply_step(0.05 * rng.standard_normal((N_IN, N_OUT)))
    # evaluation passes convert with the frozen (and fixed) ranges and change nothing
    x = rng.uniform(-1.0 if signed_x else 0.0, 1.0, (5, N_IN))
    d = rng.standard_normal((5, N_OUT))
    _assert_output(tile.forward(x, calibrate=False), model.product(x, forward=True,
                                                                  calibrate=False), "eval fwd")
    _assert_output(tile.backward(d, calibrate=False), model.product(d, forward=False,
                                                                   calibrate=False), "eval bwd")
    model.assert_same_ranges()


def test_reference_is_sensitive_to_the_backward_converters():
    """The backward reference really depends on the backward settings (the test can fail)."""
    hw = make_hw(MappingConfig(), FWD_1BIT, BWD_2BIT_TWOS, True)
    rng = np.random.default_rng(1)
    tile = Tile(N_IN, N_OUT, hw, rng=rng, w_init=rng.standard_normal((N_IN, N_OUT)))
    d = rng.standard_normal((7, N_OUT))
    got = Reference(tile, hw).product(d, forward=False)
    for other in (FWD_1BIT, dc.replace(BWD_2BIT_TWOS, adc=FWD_1BIT.adc),
                  dc.replace(BWD_2BIT_TWOS, dac=FWD_1BIT.dac)):
        hw2 = dc.replace(hw, backward=other)
        wrong = Reference(tile, hw2).product(d, forward=False)
        assert np.abs(wrong - got).max() > 1e-3 * np.abs(got).max()


# ---------------------------------------------------------------- range calibration per array

@pytest.mark.parametrize("calibration", ["max", "percentile"])
@pytest.mark.parametrize("forward", [True, False])
def test_each_array_calibrates_on_its_own_currents(calibration, forward):
    """Per-array, all-plane ranges: arrays whose currents differ (2-3x) get their own ranges.

    Block rows carry weights of very different sizes and signs (the negative polarity sees the
    negative weights only), so a calibration that pooled the currents of several arrays (one
    range per stack of arrays, or the neighbour's segment) gives other ranges.
    """
    adc = ADCConfig(bits=6, calibration=calibration, percentile=95.0, calibration_batches=2,
                    granularity="tile")
    io = PeripheryConfig(dac=DACConfig(bits=1, input_bits=4, signed="two_pass"), adc=adc)
    hw = make_hw(MappingConfig(), io, io, True)
    rng = np.random.default_rng(3)
    w = rng.standard_normal((N_IN, N_OUT))
    w[:6, :5] = 0.1 * np.abs(w[:6, :5])       # block (0, 0): small positive weights
    w[6:, :5] = -np.abs(w[6:, :5])            # block (1, 0): negative weights only
    tile = Tile(N_IN, N_OUT, hw, rng=np.random.default_rng(5), w_init=w)
    model = Reference(tile, hw)
    for _ in range(3):
        x = rng.uniform(0.0, 1.0, (6, N_IN))
        d = rng.standard_normal((6, N_OUT))
        v = x if forward else d
        _assert_output(tile.forward(v) if forward else tile.backward(v),
                       model.product(v, forward=forward), "product")
        model.assert_same_ranges()
    ranges = [arr.adc[forward].i_max for arr in model.arrays]
    assert max(ranges) > 2 * min(ranges)          # the arrays' ranges really differ
    assert not any(arr.adc[forward].calibrating for arr in model.arrays)


# ---------------------------------------------------------------- random configurations

@st.composite
def peripheries(draw):
    dac_bits = draw(st.sampled_from([None, 1, 2, 3]))
    input_bits = None if dac_bits is None else draw(
        st.one_of(st.none(), st.integers(max(dac_bits, 2), 8)))
    nonlin = "none" if dac_bits is None else draw(st.sampled_from(["none", "bow"]))
    dac = DACConfig(bits=dac_bits, input_bits=input_bits, v_read=draw(st.sampled_from([0.3, 1.0])),
                    signed=draw(st.sampled_from(["two_pass", "twos_complement"])),
                    nonlinearity=nonlin, bow=0.2 if nonlin == "bow" else 0.0)
    adc_bits = draw(st.sampled_from([None, 3, 5, 8]))
    kind = "none" if adc_bits is None else draw(st.sampled_from(["none", "bow", "tanh"]))
    adc = ADCConfig(bits=adc_bits, calibration=draw(st.sampled_from(["max", "percentile"])),
                    percentile=draw(st.sampled_from([90.0, 99.5, 100.0])),
                    calibration_batches=draw(st.integers(1, 3)), nonlinearity=kind,
                    bow=-0.3 if kind == "bow" else 0.0, tanh_beta=1.3,
                    granularity=draw(st.sampled_from(["tile", "layer"])))
    return PeripheryConfig(dac=dac, adc=adc)


@given(forward=peripheries(), backward=peripheries(),
       scheme=st.sampled_from(["signed_split", "differential", "offset"]),
       n_in=st.integers(1, 13), n_out=st.integers(1, 11), batch=st.integers(1, 5),
       signed_x=st.booleans(), seed=st.integers(0, 2**16))
def test_random_configurations_match_the_reference(forward, backward, scheme, n_in, n_out,
                                                   batch, signed_x, seed):
    """Any converter settings, layouts and signs: tile = reference, step after step."""
    hw = make_hw(MappingConfig(scheme=scheme), forward, backward, False)
    hw = dc.replace(hw, crossbar=dc.replace(hw.crossbar, n_rows=4, n_cols=3))
    rng = np.random.default_rng(seed)
    tile = Tile(n_in, n_out, hw, rng=np.random.default_rng(1),
                w_init=rng.standard_normal((n_in, n_out)))
    model = Reference(tile, hw)
    for step in range(3):
        x = rng.uniform(-1.0 if signed_x else 0.0, 1.0, (batch, n_in))
        d = rng.standard_normal((batch, n_out))
        _assert_output(tile.forward(x), model.product(x, forward=True), f"forward {step}")
        _assert_output(tile.backward(d), model.product(d, forward=False), f"backward {step}")
        model.assert_same_ranges()
        tile.apply_step(0.1 * rng.standard_normal((n_in, n_out)))
