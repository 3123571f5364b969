"""The parallel device update with keyed Philox noise: oracle, skipping, threads, tile state.

The oracle is the per-array kernel :func:`xbarsim.kernels.update.apply_update` that computes
every device (including those with a zero request) from a given array of normals, fed with
:meth:`Device.keyed_noise`; the keyed kernels must equal it bit for bit.
"""

from __future__ import annotations

import dataclasses as dc
import itertools
import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from scipy import stats

from xbarsim.config.schema import (
    CrossbarConfig,
    DeviceConfig,
    HardwareConfig,
    MappingConfig,
    SolverConfig,
)
from xbarsim.hardware.device import UPDATE_MODELS, Device
from xbarsim.hardware.mapping import MAPPINGS
from xbarsim.hardware.tile import Tile
from xbarsim.kernels import mapping as mapping_kernels
from xbarsim.kernels import update as K
from xbarsim.runtime import OMP_WAIT_ENV, tune_omp_wait

G_MIN, G_MAX = 1e-6, 1e-5
R = G_MAX - G_MIN
KEY = 0xDEADBEEF_01234567
ALPHA = 0.01
"""Significance level of the two-sample KS tests (fixed seeds)."""

NL = {"txsim": 2.0, "txsim_printed": 2.0, "linear": 0.0, "neurosim": 2.0, "soft_bounds": 0.0}


def device(model, *, shape, write_noise="sqrt", gamma=5.0, c2c=0.0, d2d=0.0, nl_d2d=0.0,
           pulses=None, seed=0):
    kw = {"nl_label": NL[model]} if model == "neurosim" else {"nl": NL[model]}
    return Device(g_min=G_MIN, g_max=G_MAX, update_model=model, gamma=gamma,
                  write_noise=write_noise, sigma_c2c=c2c, sigma_d2d=d2d, sigma_nl_d2d=nl_d2d,
                  n_pulses_max=pulses, shape=shape, rng=np.random.default_rng(seed), **kw)


def requests(rng, shape, zero_fraction=0.5, dg_pulse=None):
    """Signed requests with exact zeros and (with pulses) requests that round to 0 pulses."""
    dg = rng.uniform(-0.3 * R, 0.3 * R, shape)
    dg[rng.uniform(size=shape) < zero_fraction] = 0.0
    if dg_pulse is not None:
        small = rng.uniform(size=shape) < 0.1
        dg[small] = rng.uniform(-0.49, 0.49, small.sum()) * dg_pulse
    dg.flat[:3] = [0.0, -0.0, 0.0]
    return dg


CASES = list(itertools.product(sorted(UPDATE_MODELS), ["sqrt", "txsim_literal"],
                               [None, 40], [0.0, 0.1], [0.0, 0.2]))


@pytest.mark.parametrize(("model", "write_noise", "pulses", "c2c", "d2d"), CASES)
def test_keyed_update_equals_full_computation_with_keyed_noise(model, write_noise, pulses, c2c,
                                                               d2d, rng):
    # every update model and noise model, with pulse quantisation and c2c / d2d variation
    # (d2d: step gain per device and a per-device non-linearity): skipping the devices with
    # zero requests (no draw, no update) equals computing all of them, bit for bit
    shape = (17, 23)
    dev = device(model, shape=shape, write_noise=write_noise, c2c=c2c, d2d=d2d,
                 nl_d2d=0.3 if d2d and NL[model] else 0.0, pulses=pulses)
    g = rng.uniform(G_MIN, G_MAX, shape)
    dg = requests(rng, shape, dg_pulse=dev.dg_min)
    for step, index in ((0, 0), (5, 3), (2**33 + 1, 2**32 - 1)):
        xi = dev.keyed_noise(shape, key=KEY, step=step, array_index=index)
        full = dev.apply_update(g, dg, xi)
        got = dev.apply_update_keyed(g, dg, key=KEY, step=step, array_index=index)
        np.testing.assert_array_equal(got, full)
        idle = dg == 0.0
        np.testing.assert_array_equal(got[idle], g[idle])     # zero request: untouched
        if dev.noisy:
            assert np.any(got[~idle] != dev.apply_update(g, dg, np.zeros(shape))[~idle])


@pytest.mark.parametrize("model", sorted(UPDATE_MODELS))
def test_a_device_noise_does_not_depend_on_which_other_devices_move(model, rng):
    shape = (40, 33)
    dev = device(model, shape=shape, c2c=0.1)
    g = rng.uniform(G_MIN, G_MAX, shape)
    dg = requests(rng, shape, zero_fraction=0.0)
    more_zeros = dg.copy()
    more_zeros[rng.uniform(size=shape) < 0.7] = 0.0
    a = dev.apply_update_keyed(g, dg, key=KEY, step=1)
    b = dev.apply_update_keyed(g, more_zeros, key=KEY, step=1)
    moving = more_zeros != 0
    np.testing.assert_array_equal(a[moving], b[moving])
    np.testing.assert_array_equal(b[~moving], g[~moving])


def test_keyed_kernels_are_bit_identical_for_any_thread_count_and_slicing(rng):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has one thread (NUMBA_NUM_THREADS=1): nothing to compare")
    dev = device("txsim", shape=None, c2c=0.1)
    sizes = [1, 2, 3, 1023, 1025, 4097, 777]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    arrays = np.stack([offsets[:-1], sizes, np.arange(len(sizes)) * 3 + 1], axis=1)
    n = int(offsets[-1])
    g = rng.uniform(G_MIN, G_MAX, n)
    dg = requests(rng, n)
    v, sat, gain = dev.update_arrays((1,))
    results = []
    before = numba.get_num_threads()
    try:
        for threads, task_devices in ((1, K.TASK_DEVICES), (2, K.TASK_DEVICES), (2, 37),
                                      (1, 5000)):
            numba.set_num_threads(threads)
            tasks = K.update_tasks(arrays.astype(np.int64), task_devices)
            results.append(K.apply_update_keyed(dev.model_code, g, dg, v, sat, gain, dev.params,
                                                5, 6, 9, arrays.astype(np.int64), tasks, True))
    finally:
        numba.set_num_threads(before)
    results.append(K.apply_update_keyed_serial(dev.model_code, g, dg, v, sat, gain, dev.params,
                                               5, 6, 9, arrays.astype(np.int64),
                                               K.update_tasks(arrays.astype(np.int64), 100),
                                               True))
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    # and the oracle, array by array
    for (off, size, index) in arrays:
        xi = Device.keyed_noise((size,), key=(6 << 32) | 5, step=9, array_index=int(index))
        want = dev.apply_update(g[off:off + size], dg[off:off + size], xi)
        np.testing.assert_array_equal(results[0][off:off + size], want)


def tile_hw(n_rows=8, n_cols=5, scheme="signed_split", **device_kw) -> HardwareConfig:
    dev = {"bits": None, "update_model": "txsim", "nl": 2.0, "gamma": 5.0, **device_kw}
    return HardwareConfig(
        crossbar=CrossbarConfig(n_rows=n_rows, n_cols=n_cols, r_row=0.0, r_col=0.0),
        device=DeviceConfig(**dev),
        mapping=MappingConfig(scheme=scheme, slice_bits=None, weight_bits=None),
        solver=SolverConfig(method="ideal"))


@pytest.mark.parametrize("device_kw", [
    {}, {"sigma_c2c": 0.2, "sigma_d2d": 0.3}, {"update_model": "txsim_printed",
                                               "n_pulses_max": 30},
    {"update_model": "soft_bounds", "nl": 0.0, "write_noise": "txsim_literal", "gamma": 0.5},
    {"gamma": 0.0}])
def test_fused_signed_split_equals_requests_then_per_array_update(device_kw, rng):
    # odd array widths (5 columns: device pairs straddle rows), partial edge blocks
    hw = tile_hw(**device_kw)
    w = 0.3 * rng.standard_normal((19, 12))
    w[rng.uniform(size=w.shape) < 0.2] = 0.0
    tile = Tile(19, 12, hw, rng=np.random.default_rng(8), w_init=w)
    for s in range(3):
        g_before = [x.g.copy() for x in tile.masters]
        step = 0.1 * rng.standard_normal(w.shape)
        step[rng.uniform(size=w.shape) < 0.3] = 0.0
        tile.apply_step(step)
        for b, blk in enumerate(tile.blocks):
            gp, gn = g_before[2 * b], g_before[2 * b + 1]
            req = mapping_kernels.signed_split_requests(
                gp, gn, np.ascontiguousarray(step[blk.block.rows, blk.block.cols]), tile.alpha,
                tile.g_min, tile.g_max)
            for a, g0 in enumerate((gp, gn)):
                dev = blk.masters[a].device
                xi = dev.keyed_noise(g0.shape, key=tile.update_key, step=s,
                                     array_index=2 * b + a)
                want = dev.apply_update(g0, req[a], xi)
                np.testing.assert_array_equal(blk.masters[a].g, want)


@pytest.mark.parametrize("parallel_min", [None, 1])
def test_tile_results_do_not_depend_on_thread_count(parallel_min, rng, monkeypatch):
    # parallel_min=1: the parallel kernel even for this small tile (else the serial one)
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has one thread (NUMBA_NUM_THREADS=1): nothing to compare")
    if parallel_min is not None:
        monkeypatch.setattr(K, "PARALLEL_MIN_DEVICES", parallel_min)
    hw = tile_hw(n_rows=16, n_cols=9, sigma_c2c=0.1)
    w = 0.2 * rng.standard_normal((70, 40))
    steps = [0.05 * rng.standard_normal(w.shape) for _ in range(3)]
    out = []
    before = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            tile = Tile(70, 40, hw, rng=np.random.default_rng(4), w_init=w)
            for s in steps:
                tile.apply_step(s)
            out.append(tile.conductances())
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(out[0], out[1])


def test_tile_key_and_step_are_state_and_resume_bit_for_bit(rng):
    hw = tile_hw()
    w = 0.3 * rng.standard_normal((11, 7))
    steps = [0.1 * rng.standard_normal(w.shape) for _ in range(4)]
    a = Tile(11, 7, hw, rng=np.random.default_rng(1), w_init=w)
    a.apply_step(steps[0])
    snap = {k: np.array(v, copy=True) for k, v in a.state_dict().items()}
    assert int(snap["update_step"]) == 1 and int(snap["update_key"]) == a.update_key != 0
    for s in steps[1:]:
        a.apply_step(s)
    # a tile built from another seed has another key: the state brings the right one back
    b = Tile(11, 7, hw, rng=np.random.default_rng(2), w_init=np.ones(w.shape))
    assert b.update_key != a.update_key
    b.load_state_dict(snap)
    for s in steps[1:]:
        b.apply_step(s)
    np.testing.assert_array_equal(b.conductances(), a.conductances())
    assert b.update_step == a.update_step == 4
    # a state without them (written before the keyed noise) keeps the tile's own key
    c = Tile(11, 7, hw, rng=np.random.default_rng(1), w_init=w)
    c.load_state_dict({k: v for k, v in snap.items() if not k.startswith("update_")})
    assert c.update_key == a.update_key and c.update_step == 0


def test_noiseless_tile_draws_no_key_and_leaves_its_stream_alone(rng):
    hw = tile_hw(gamma=0.0)
    gen = np.random.default_rng(3)
    state = gen.bit_generator.state
    tile = Tile(11, 7, hw, rng=gen, w_init=rng.standard_normal((11, 7)))
    tile.apply_step(0.1 * rng.standard_normal((11, 7)))
    assert tile.update_key == 0 and gen.bit_generator.state == state


def test_tile_follows_programming_and_restores_between_steps(rng):
    # the flat buffer of the last update is reused only while nothing else changed g
    hw = tile_hw()
    w = 0.3 * rng.standard_normal((11, 7))
    tile = Tile(11, 7, hw, rng=np.random.default_rng(1), w_init=w)
    tile.apply_step(0.1 * rng.standard_normal(w.shape))
    view = tile.masters[0].g
    held = view.copy()
    tile.set_weights(-w)
    np.testing.assert_allclose(tile.get_weights(), -w, rtol=1e-12, atol=1e-12)
    tile.apply_step(np.zeros(w.shape))          # zero step: the programmed weights stay
    np.testing.assert_allclose(tile.get_weights(), -w, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(view, held)   # an earlier g view keeps its values


@pytest.mark.parametrize(("model", "write_noise", "c2c"), [
    ("txsim", "sqrt", 0.0), ("txsim", "sqrt", 0.3), ("soft_bounds", "txsim_literal", 0.0),
    ("linear", "sqrt", 0.1)])
def test_updated_conductances_have_the_old_paths_distribution(model, write_noise, c2c):
    # old path: normals from a NumPy Generator; new: keyed Philox. Same devices, same requests
    n = 40_000
    rng = np.random.default_rng(12)
    g = rng.uniform(0.3 * R + G_MIN, 0.7 * R + G_MIN, n)
    dg = rng.choice([-1, 1], n) * rng.uniform(0.01, 0.05, n) * R
    dev = device(model, shape=None, write_noise=write_noise, c2c=c2c,
                 gamma=5.0 if write_noise == "sqrt" else 0.5)
    old = dev.apply_update(g, dg, np.random.default_rng(13).standard_normal(n))
    new = dev.apply_update_keyed(g, dg, key=KEY, step=0)
    quiet = dev.apply_update(g, dg, np.zeros(n))
    assert stats.ks_2samp(old - quiet, new - quiet).pvalue > ALPHA
    assert stats.ks_2samp(old, new).pvalue > ALPHA
    # and the noise is there: standardised residuals of the new path are N(0, 1)
    sigma = dev.write_noise_std(dg, dev.nonlinear_response(g, dg))
    assert stats.kstest((new - quiet) / sigma, "norm").pvalue > ALPHA


def test_tile_update_statistics_match_the_old_path():
    # a whole tile: new (keyed) against the old path's distribution of g after one step
    hw = tile_hw(n_rows=64, n_cols=64)
    rng = np.random.default_rng(21)
    w = 0.05 * rng.standard_normal((128, 128))
    dw = 0.01 * rng.standard_normal(w.shape)
    tile = Tile(128, 128, hw, rng=np.random.default_rng(22), w_init=w)
    g0 = [x.g.copy() for x in tile.masters]
    tile.apply_step(dw)
    old_rng = np.random.default_rng(23)
    new, old = [], []
    scheme = MAPPINGS["signed_split"](tile.g_min, tile.g_max)
    for b, blk in enumerate(tile.blocks):
        req = scheme.split_update(dw[blk.block.rows, blk.block.cols], np.stack(g0[2 * b:2 * b + 2]),
                                  tile.w_scale)
        for a in range(2):
            moving = req[a] != 0
            dev = blk.masters[a].device
            quiet = dev.apply_update(g0[2 * b + a], req[a], np.zeros(req[a].shape))
            o = dev.apply_update(g0[2 * b + a], req[a], old_rng.standard_normal(req[a].shape))
            old.append((o - quiet)[moving])
            new.append((blk.masters[a].g - quiet)[moving])
    assert stats.ks_2samp(np.concatenate(old), np.concatenate(new)).pvalue > ALPHA


def test_keyed_update_checks_its_arguments():
    dev = device("txsim", shape=(3, 4))
    g = np.full((3, 4), 2e-6)
    with pytest.raises(ValueError, match="key"):
        dev.apply_update_keyed(g, g, key=-1, step=0)
    with pytest.raises(ValueError, match="key"):
        dev.apply_update_keyed(g, g, key=2**64, step=0)
    with pytest.raises(ValueError, match="step"):
        dev.apply_update_keyed(g, g, key=1, step=-1)
    with pytest.raises(ValueError, match="array_index"):
        dev.apply_update_keyed(g, g, key=1, step=0, array_index=2**32)
    with pytest.raises(ValueError, match="dg_request"):
        dev.apply_update_keyed(g, g[:2], key=1, step=0)
    with pytest.raises(ValueError, match="g: expected shape"):
        dev.apply_update_keyed(g[:2], g[:2], key=1, step=0)


def test_keyed_kernels_do_not_use_fastmath():
    for kernel in (K.apply_update_keyed, K.signed_split_update_keyed):
        assert kernel.targetoptions.get("fastmath") in (None, False)
        assert kernel.targetoptions.get("parallel")
    for kernel in (K.apply_update_keyed_serial, K.signed_split_update_keyed_serial):
        assert kernel.targetoptions.get("fastmath") in (None, False)
        assert not kernel.targetoptions.get("parallel")
    # Numba's disk cache does not key on options: each variant needs its own function name,
    # or the parallel kernel may load the serial machine code (and run on one thread)
    names = {k.py_func.__qualname__ for k in (K.apply_update_keyed, K.signed_split_update_keyed,
                                             K.apply_update_keyed_serial,
                                             K.signed_split_update_keyed_serial)}
    assert len(names) == 4


def test_differential_and_offset_tiles_use_the_keyed_per_array_path(rng):
    for scheme in ("differential", "offset"):
        hw = dc.replace(tile_hw(), mapping=MappingConfig(scheme=scheme, slice_bits=None,
                                                         weight_bits=None))
        tile = Tile(11, 7, hw, rng=np.random.default_rng(5), w_init=rng.standard_normal((11, 7)))
        g0 = tile.conductances()
        tile.apply_step(np.zeros((11, 7)))
        np.testing.assert_array_equal(tile.conductances(), g0)    # no request, no change
        tile.apply_step(0.05 * rng.standard_normal((11, 7)))
        assert not np.array_equal(tile.conductances(), g0) and tile.update_step == 2


def test_omp_wait_policy_is_passive_unless_the_user_set_one(monkeypatch):
    monkeypatch.delenv(OMP_WAIT_ENV, raising=False)
    assert tune_omp_wait() is True and os.environ[OMP_WAIT_ENV] == "passive"
    monkeypatch.setenv(OMP_WAIT_ENV, "active")
    assert tune_omp_wait() is False and os.environ[OMP_WAIT_ENV] == "active"


def test_cli_lets_waiting_openmp_threads_sleep(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != OMP_WAIT_ENV}
    code = ("import os; from xbarsim.cli import main; main(['bench', '--help'], "
            "standalone_mode=False); print(os.environ.get('OMP_WAIT_POLICY'))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, cwd=tmp_path).stdout
    assert out.strip().splitlines()[-1] == "passive"
