"""Batch-parallel digital kernels: slicing, bit-identity with the serial path, errors, nesting."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from xbarsim.hardware import parallel
from xbarsim.hardware.converters import ADC
from xbarsim.hardware.parallel import batch_slices, over_batch, shared_pool
from xbarsim.hardware.tile import Tile
from xbarsim.nn import Conv2d, MaxPool2d


@given(n_batch=st.integers(0, 300), n_parts=st.integers(1, 9))
def test_batch_slices_cover_the_batch_in_order(n_batch, n_parts):
    sl = batch_slices(n_batch, n_parts)
    assert [i for a, b in sl for i in range(a, b)] == list(range(n_batch))
    assert len(sl) == min(n_parts, n_batch) or (n_batch == 0 and sl == [])
    lengths = [b - a for a, b in sl]
    assert all(n > 0 for n in lengths)
    assert not lengths or max(lengths) - min(lengths) <= 1


def _calls(monkeypatch, n_threads, min_work, n_batch, work):
    monkeypatch.setattr(parallel, "default_threads", lambda: n_threads)
    monkeypatch.setattr(parallel, "MIN_SPLIT_WORK", min_work)
    seen = []
    lock = threading.Lock()

    def task(a, b):
        with lock:
            seen.append((a, b, threading.current_thread().name))

    over_batch(task, n_batch, work)
    return sorted(seen)


def test_over_batch_splits_large_work_and_keeps_small_work_serial(monkeypatch):
    split = _calls(monkeypatch, 2, 100, 7, 100)
    assert [(a, b) for a, b, _ in split] == [(0, 3), (3, 7)]
    assert split[0][2] == threading.current_thread().name     # first slice in the caller
    assert split[1][2].startswith(parallel.POOL_THREAD_PREFIX)
    assert [(a, b) for a, b, _ in _calls(monkeypatch, 2, 101, 7, 100)] == [(0, 7)]
    assert [(a, b) for a, b, _ in _calls(monkeypatch, 1, 0, 7, 100)] == [(0, 7)]
    assert [(a, b) for a, b, _ in _calls(monkeypatch, 2, 0, 1, 100)] == [(0, 1)]


def test_over_batch_inside_a_pool_thread_runs_serially(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_SPLIT_WORK", 0)
    monkeypatch.setattr(parallel, "default_threads", lambda: 2)
    seen = []
    # every pool thread busy with a task that itself calls over_batch: no deadlock
    futures = [shared_pool().submit(over_batch, lambda a, b: seen.append((a, b)), 4, 10**6)
               for _ in range(4)]
    for f in futures:
        f.result(timeout=30)
    assert seen == [(0, 4)] * 4


def test_over_batch_raises_after_every_slice_finished(monkeypatch):
    monkeypatch.setattr(parallel, "MIN_SPLIT_WORK", 0)
    monkeypatch.setattr(parallel, "default_threads", lambda: 2)
    done = threading.Event()

    def task(a, b):
        if a == 0:
            raise ValueError("first slice failed")
        threading.Event().wait(0.05)
        done.set()

    with pytest.raises(ValueError, match="first slice failed"):
        over_batch(task, 4, 10)
    assert done.is_set()

    def task2(a, b):
        if a > 0:
            raise RuntimeError("pool slice failed")

    with pytest.raises(RuntimeError, match="pool slice failed"):
        over_batch(task2, 4, 10)


@pytest.mark.parametrize("n_threads", [2, 3])
@pytest.mark.parametrize("b", [2, 5])
def test_conv_and_pool_are_bit_identical_split_or_serial(monkeypatch, n_threads, b):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((b, 3, 11, 12))
    g_seed = rng.integers(2**32)

    def run(min_work):
        monkeypatch.setattr(parallel, "MIN_SPLIT_WORK", min_work)
        monkeypatch.setattr(parallel, "default_threads", lambda: n_threads)
        conv = Conv2d(3, 4, 3, stride=1, padding=2, rng=np.random.default_rng(3))
        conv.bias.value[:] = np.arange(4.0)
        pool = MaxPool2d(2)
        y = pool.forward(conv.forward(x))
        g = np.random.default_rng(g_seed).standard_normal(y.shape)
        dx = conv.backward(pool.backward(g))
        return y, dx, conv.weight.grad, conv.bias.grad

    serial, split = run(10**12), run(0)
    for a, s in zip(serial, split, strict=True):
        assert_array_equal(a, s)


@pytest.mark.parametrize("n_threads", [2, 3])
def test_crossbar_layer_is_bit_identical_split_or_serial(monkeypatch, n_threads):
    """Input scale, DAC drive, layer ADC (calibrating, then frozen) and the block updates of
    a tile of 3 x 2 blocks (noisy devices), in slices or not."""
    from xbarsim.studies.bench_train import cross_ni_hardware

    hw = cross_ni_hardware("fcm")
    rng = np.random.default_rng(11)
    n_in, n_out = 130, 70
    w = 0.1 * rng.standard_normal((n_in, n_out))
    xs = [rng.uniform(0.0, 1.0, (9, n_in)), rng.standard_normal((9, n_in))]  # unsigned, signed
    delta = rng.standard_normal((9, n_out))

    def run(min_work):
        monkeypatch.setattr(parallel, "MIN_SPLIT_WORK", min_work)
        monkeypatch.setattr(parallel, "default_threads", lambda: n_threads)
        tile = Tile(n_in, n_out, hw, rng=np.random.default_rng(5), w_init=w)
        assert len(tile.blocks) == 6
        out = [tile.forward(x) for x in xs] + [tile.backward(delta)]
        tile.update(xs[1], delta, 0.05)
        tile.freeze_adcs()
        out += [tile.forward(xs[1]), tile.backward(delta)]
        return out + [x.g for blk in tile.blocks for x in blk.masters]

    for a, b in zip(run(10**12), run(0), strict=True):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("bipolar", [False, True])
def test_adc_range_and_conversion_are_bit_identical_split_or_serial(monkeypatch, bipolar):
    rng = np.random.default_rng(3)
    i = rng.standard_normal((13, 11)) * 1e-5

    def run(min_work, currents):
        monkeypatch.setattr(parallel, "MIN_SPLIT_WORK", min_work)
        monkeypatch.setattr(parallel, "default_threads", lambda: 2)
        adc = ADC(8, bipolar=bipolar, calibration_window=2)
        return adc(currents), adc.i_max

    (a, ia), (b, ib) = run(10**12, i), run(0, i)
    assert a.tobytes() == b.tobytes() and ia == ib
    ref = np.max(np.abs(i)) if bipolar else np.max(np.maximum(i, 0.0))
    assert ia == ref                                      # the statistic np.max gives


@given(x=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=64), max_size=40),
       bipolar=st.booleans())
def test_peak_kernel_is_the_numpy_statistic(x, bipolar):
    from xbarsim.kernels.quantize import peak

    arr = np.array(x, dtype=np.float64)
    want = np.max(np.abs(arr) if bipolar else np.maximum(arr, 0.0), initial=0.0)
    got = peak(arr, bipolar)
    assert (np.isnan(got) and np.isnan(want)) or got == want
