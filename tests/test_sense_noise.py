"""Magnitude of the tile's sense noise: a statistical test against the documented scaling.

``adc.sense_noise`` is the std [A] of Gaussian current noise added to every column current
before its ADC (ADCConfig; docs/physics.md, 'Converters'). With ``granularity='tile'`` every
conversion (array a, bit-plane p, sample, column) draws its own noise and the output is
``s / (v_read alpha) * sum_a coef_a sum_p w_p ADC(I_ap + sigma xi)``, so the output noise of one
element has std ``sigma_y = sigma s / (v_read alpha) sqrt(n_blocks sum_a coef_a^2 sum_p w_p^2)``
(``n_blocks`` partial sums of the same output, ``w_p`` the plane weights). With
``granularity='layer'`` one bipolar conversion per output: ``sigma_y = sigma s / (v_read alpha)``.

Test: the residual ``r = y - y_ref`` (``y_ref`` from the noiseless plane-by-plane reference of
tests/reference.py) has N independent N(0, sigma_y^2) entries, so ``T = sum r^2 / sigma_y^2``
is chi-square with N degrees of freedom; two-sided ``p > 0.01``, and a Kolmogorov-Smirnov test
of ``r / sigma_y`` against N(0, 1), ``p > 0.01``. Power: with N >= 2000 a noise std wrong by
10 % gives ``T / N = 1.21`` (or 0.81), more than 6 standard deviations (``sqrt(2 / N)``) of
``T / N`` away from 1 (p < 1e-9); a 10x error gives ``T / N = 100``. Seeds are fixed, so the
outcome is deterministic; the p-values printed by a failure show how far off it is.
"""

from __future__ import annotations

import dataclasses as dc

import numpy as np
import pytest
from scipy import stats

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

N_IN, N_OUT, BATCH = 11, 9, 400          # 2 x 2 blocks of 6 x 5 arrays
ALPHA_LEVEL = 0.01

FWD = PeripheryConfig(dac=DACConfig(bits=1, input_bits=4, v_read=0.8),
                      adc=ADCConfig(bits=None, sense_noise=2e-8, granularity="tile"))
BWD = PeripheryConfig(dac=DACConfig(bits=2, input_bits=6, v_read=0.5, signed="two_pass"),
                      adc=ADCConfig(bits=None, sense_noise=7e-8, granularity="tile"))


def make_hw(forward=FWD, backward=BWD, scheme="signed_split") -> HardwareConfig:
    return HardwareConfig(
        crossbar=CrossbarConfig(n_rows=6, n_cols=5, r_row=0.0, r_col=0.0),
        device=DeviceConfig(bits=None, update_model="linear", nl=0.0, gamma=0.0),
        forward=forward, backward=backward, mapping=MappingConfig(scheme=scheme),
        solver=SolverConfig(method="ideal"))


def noiseless_reference(tile: Tile, hw: HardwareConfig, v, forward: bool):
    """The documented product without noise and with ideal ADCs (tests/reference.py)."""
    coefs = {"signed_split": [1.0, -1.0], "differential": [1.0, -1.0], "offset": [2.0]}
    ideal = dc.replace(hw.forward.adc, bits=None, sense_noise=0.0)
    arrays = []
    for blk in tile.blocks:
        for c, xbar in zip(coefs[hw.mapping.scheme], tile.read_arrays(blk), strict=True):
            arr = ref.RefArray(blk.block.rows, blk.block.cols, c, ref.ref_adc(ideal),
                               ref.ref_adc(ideal))
            arr.g_eff = np.array(xbar.g)               # ideal solver: g_eff = g
            arrays.append(arr)
    periphery = hw.forward if forward else hw.backward
    g_min, g_max = 1.0 / hw.device.r_max, 1.0 / hw.device.r_min
    baseline = g_max + g_min if hw.mapping.scheme == "offset" else 0.0
    return ref.tile_product(v, arrays, dc.replace(periphery, adc=dc.replace(periphery.adc,
                                                                            bits=None)),
                            forward=forward, alpha=(g_max - g_min) / tile.w_scale,
                            shape=tile.shape, baseline=baseline,
                            layer_adc=ref.RefADC(None), calibrate=False)


def expected_sigma(tile: Tile, hw: HardwareConfig, v, forward: bool) -> float:
    """Documented output noise std (module docstring) for the inputs ``v`` of one batch."""
    periphery = hw.forward if forward else hw.backward
    dac, adc = periphery.dac, periphery.adc
    s = np.abs(v).max()
    g_min, g_max = 1.0 / hw.device.r_max, 1.0 / hw.device.r_min
    gain = s / (dac.v_read * (g_max - g_min) / tile.w_scale)
    if adc.granularity == "layer":
        return adc.sense_noise * gain
    signed = dac.signed if v.min() < 0 else None
    input_bits = dac.input_bits or max(dac.bits or 52, 2 if signed else 1)
    _, w_p, _ = ref.stream_planes(v / s, input_bits, dac.bits, signed)
    coefs = {"signed_split": [1.0, -1.0], "differential": [1.0, -1.0], "offset": [2.0]}
    n_blocks = 2                                   # partial sums per output in this layout
    var = n_blocks * sum(c * c for c in coefs[hw.mapping.scheme]) * np.sum(w_p ** 2)
    return adc.sense_noise * gain * np.sqrt(var)


def assert_gaussian_with_std(r, sigma):
    """Chi-square test of the variance and KS test of the shape, both at ALPHA_LEVEL."""
    z = (r / sigma).reshape(-1)
    n = z.size
    t = float(np.sum(z * z))
    p_var = 2.0 * min(stats.chi2.cdf(t, n), stats.chi2.sf(t, n))
    p_ks = stats.kstest(z, "norm").pvalue
    msg = f"T/N = {t / n:.4f} (p = {p_var:.3g}), KS p = {p_ks:.3g}, N = {n}"
    assert p_var > ALPHA_LEVEL, msg
    assert p_ks > ALPHA_LEVEL, msg


def driven_inputs(rng, forward: bool):
    """A batch in which every bit-plane of every block drives at least one line.

    (Keeps every current of the unipolar ADC well above 0: the negative noise is not clipped.)
    """
    if forward:
        x = rng.uniform(0.0, 2.0, (BATCH, N_IN))
        x[:, [0, 6]] = 2.0                      # full-scale code in both row blocks
        return x
    return rng.standard_normal((BATCH, N_OUT))


@pytest.mark.parametrize("scheme", ["signed_split", "offset"])
@pytest.mark.parametrize("forward", [True, False])
def test_tile_sense_noise_has_the_documented_std(scheme, forward):
    """Ideal per-array ADCs; forward and backward have different sense_noise and DACs."""
    hw = make_hw(scheme=scheme)
    rng = np.random.default_rng(11)
    tile = Tile(N_IN, N_OUT, hw, rng=np.random.default_rng(4),
                w_init=rng.standard_normal((N_IN, N_OUT)))
    v = driven_inputs(rng, forward)
    y = tile.forward(v) if forward else tile.backward(v)
    r = y - noiseless_reference(tile, hw, v, forward)
    assert_gaussian_with_std(r, expected_sigma(tile, hw, v, forward))


@pytest.mark.parametrize("calibrated", [False, True])
def test_quantising_adc_sense_noise_has_the_documented_std(calibrated):
    """24-bit per-array ADCs (LSB ~ 1e-4 sigma): fixed range, or calibrating on this batch.

    The calibrating pass converts all planes in one product (its own noise draw), the frozen
    one plane by plane: both must add noise of the same std.
    """
    adc = ADCConfig(bits=24, sense_noise=3e-8, granularity="tile",
                    range="calibrated" if calibrated else 2.0e-4, calibration_batches=100)
    fwd = dc.replace(FWD, adc=adc)
    hw = make_hw(forward=fwd)
    rng = np.random.default_rng(12)
    tile = Tile(N_IN, N_OUT, hw, rng=np.random.default_rng(5),
                w_init=rng.standard_normal((N_IN, N_OUT)))
    x = driven_inputs(rng, True)
    y = tile.forward(x)
    assert tile.blocks[0].adc_fwd[0].calibrating == calibrated
    r = y - noiseless_reference(tile, hw, x, True)
    assert_gaussian_with_std(r, expected_sigma(tile, hw, x, True))


@pytest.mark.parametrize("forward", [True, False])
def test_layer_sense_noise_has_the_documented_std(forward):
    """One bipolar ideal ADC on the stitched layer output: sigma_y = sigma s / (v_read alpha)."""
    fwd = dc.replace(FWD, adc=dc.replace(FWD.adc, granularity="layer"))
    bwd = dc.replace(BWD, adc=dc.replace(BWD.adc, granularity="layer"))
    hw = make_hw(fwd, bwd)
    rng = np.random.default_rng(13)
    tile = Tile(N_IN, N_OUT, hw, rng=np.random.default_rng(6),
                w_init=rng.standard_normal((N_IN, N_OUT)))
    v = driven_inputs(rng, forward)
    y = tile.forward(v) if forward else tile.backward(v)
    r = y - noiseless_reference(tile, hw, v, forward)
    assert_gaussian_with_std(r, expected_sigma(tile, hw, v, forward))


def test_undriven_planes_are_converted_with_their_noise():
    """A plane that drives no line of a block is still converted, so its ADC noise is there.

    The inputs of the second row block stay below half the batch scale, so its MSB plane
    (weight 8/15) drives nothing in the whole batch; the conversions happen all the same
    (the per-plane schedule is fixed) and the output noise of a sample does not depend on the
    other samples of its batch.
    """
    hw = make_hw()
    rng = np.random.default_rng(14)
    tile = Tile(N_IN, N_OUT, hw, rng=np.random.default_rng(7),
                w_init=rng.standard_normal((N_IN, N_OUT)))
    x = rng.uniform(0.0, 2.0, (BATCH, N_IN))
    x[:, 0] = 2.0
    x[:, 6:] = rng.uniform(0.0, 0.9, (BATCH, N_IN - 6))   # block row 2: MSB plane all off
    y = tile.forward(x)
    r = y - noiseless_reference(tile, hw, x, True)
    assert_gaussian_with_std(r, expected_sigma(tile, hw, x, True))
