"""ADC statistics: the counting kernels against NumPy and the ADC itself, and a tile's counters."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from xbarsim.config import load_config
from xbarsim.hardware.converters import ADC
from xbarsim.hardware.tile import Tile
from xbarsim.kernels import adcstats


def reference(i, seg_start, seg_imax, n_steps, bipolar):
    """Counts by NumPy, straight from the definitions in xbarsim.kernels.adcstats."""
    out = np.zeros(4, dtype=np.int64)
    for s in range(len(seg_imax)):
        block = i[:, seg_start[s]:seg_start[s + 1]]
        v = np.abs(block) if bipolar else block
        top = seg_imax[s]
        sensed = v > 0
        out += [block.size, np.count_nonzero(sensed), np.count_nonzero(sensed & (v > top)),
                np.count_nonzero(sensed & (v <= top) & (v <= (0.5 / n_steps) * top))]
    return out


@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 7), widths=st.lists(
    st.integers(1, 9), min_size=1, max_size=4), bits=st.integers(1, 8), bipolar=st.booleans())
def test_count_conversions_matches_numpy(seed, rows, widths, bits, bipolar):
    rng = np.random.default_rng(seed)
    seg_start = np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)
    i = rng.normal(size=(rows, seg_start[-1])) * rng.choice([1e-7, 1e-5, 1e-3])
    i[rng.random(i.shape) < 0.2] = 0.0
    seg_imax = rng.choice([0.0, 1e-300, 1e-6, 1e-5, 1e-4, 1e3], size=len(widths))
    counts = np.zeros(4, dtype=np.int64)
    adcstats.count_conversions(i, seg_start, seg_imax, 2**bits - 1, bipolar, counts)
    assert_array_equal(counts, reference(i, seg_start, seg_imax, 2**bits - 1, bipolar))
    # the sampled variant computes v @ g itself: the same counts
    g = np.ascontiguousarray(np.abs(rng.normal(size=(5, seg_start[-1]))) * 1e-5)
    v = rng.normal(size=(rows, 5)) * (rng.random((rows, 5)) < 0.7)
    a, b = np.zeros(4, dtype=np.int64), np.zeros(4, dtype=np.int64)
    adcstats.count_products(v, g, seg_start, seg_imax, 2**bits - 1, bipolar, a)
    adcstats.count_conversions(v @ g, seg_start, seg_imax, 2**bits - 1, bipolar, b)
    assert a[0] == b[0] and a[1] == b[1]
    # a product by another summation order may differ in the last bit at a boundary
    assert np.all(np.abs(a[2:] - b[2:]) <= 1)


@pytest.mark.parametrize("bipolar", [False, True])
def test_lost_and_clipped_agree_with_the_adc_itself(rng, bipolar):
    adc = ADC(6, 1.0e-5, bipolar=bipolar)
    i = rng.normal(size=(40, 50)) * 1.0e-5
    codes = adc(i) / adc.lsb                       # reconstructed current in code steps
    counts = np.zeros(4, dtype=np.int64)
    adcstats.count_conversions(i, np.array([0, 50]), np.array([1.0e-5]), 63, bipolar, counts)
    mag = np.abs(i) if bipolar else i
    assert counts[1] == np.count_nonzero(mag > 0)
    assert counts[2] == np.count_nonzero((mag > 0) & (np.abs(codes) == 63) & (mag > 1.0e-5))
    assert counts[3] == np.count_nonzero((mag > 0) & (codes == 0))
    assert 0 < counts[2] < counts[1] and 0 < counts[3] < counts[1]


HW = {"crossbar": {"n_rows": 16, "n_cols": 16, "r_row": 0.0, "r_col": 0.0},
      "device": {"bits": None, "gamma": 0.0},
      "mapping": {"slice_bits": None, "weight_bits": None},
      "solver": {"method": "ideal"}}


def make_tile(rng, granularity, adc_range, calibration_batches=2):
    adc = {"bits": 8, "range": adc_range, "granularity": granularity,
           "calibration_batches": calibration_batches}
    cfg = load_config({"hardware": {**HW, "forward": {"dac": {"input_bits": 4}, "adc": adc},
                                    "backward": {"dac": {"input_bits": 4}, "adc": adc}}})
    return Tile(40, 20, cfg.hardware, rng=rng, w_init=rng.normal(size=(40, 20)) * 0.1)


@pytest.mark.parametrize("granularity", ["layer", "tile"])
def test_tile_counters_tell_a_healthy_range_from_stuck_ones(rng, granularity):
    x = np.abs(rng.normal(size=(16, 40)))
    fractions = {}
    for name, adc_range in (("calibrated", "calibrated"), ("tiny", 1.0e-12),
                            ("huge", 1.0e+3)):
        tile = make_tile(np.random.default_rng(1), granularity, adc_range)
        for _ in range(4):            # 2 calibrating passes, then 2 with frozen ranges
            tile.forward(x)
            tile.backward(rng.normal(size=(16, 20)))
        stats = tile.adc_stats()
        for direction in ("forward", "backward"):
            c = stats[direction]
            assert c["conversions"] > 0 and c["sensed"] > 0, (name, direction, c)
            assert c["sensed"] <= c["conversions"]
        c = stats["forward"]
        fractions[name] = (c["clipped"] / c["sensed"], c["lost"] / c["sensed"])
        tile.reset_adc_stats()
        assert all(v == 0 for d in tile.adc_stats().values() for v in d.values())
    assert fractions["tiny"] == (1.0, 0.0)
    assert fractions["huge"] == (0.0, 1.0)
    clipped, lost = fractions["calibrated"]
    assert clipped < 0.05 and lost < 0.2


def test_ideal_adcs_count_nothing(rng):
    cfg = load_config({"hardware": {**HW, "forward": {"adc": {"bits": None}},
                                    "backward": {"adc": {"bits": None}}}})
    tile = Tile(40, 20, cfg.hardware, rng=rng, w_init=rng.normal(size=(40, 20)))
    tile.forward(rng.normal(size=(8, 40)))
    assert tile.adc_stats()["forward"] == {"conversions": 0, "sensed": 0, "clipped": 0,
                                           "lost": 0}
