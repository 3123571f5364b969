"""The update benchmark: its serial-noise path is the same physics as the keyed one."""

from __future__ import annotations

import dataclasses as dc

import numpy as np
import pytest

from xbarsim.config.schema import DeviceConfig
from xbarsim.hardware.tile import Tile
from xbarsim.studies.bench_train import cross_ni_hardware
from xbarsim.studies.bench_update import (
    format_update_bench,
    run_update_bench,
    serial_noise_apply_step,
)


@pytest.mark.parametrize("threads", [False, True])
def test_serial_noise_path_equals_keyed_path_without_noise(threads, rng):
    hw = cross_ni_hardware("fcm")
    hw = dc.replace(hw, device=dc.replace(hw.device, gamma=0.0))
    assert isinstance(hw.device, DeviceConfig)
    w = 0.1 * rng.standard_normal((70, 20))
    a = Tile(70, 20, hw, rng=np.random.default_rng(1), w_init=w)
    b = Tile(70, 20, hw, rng=np.random.default_rng(1), w_init=w)
    for _ in range(2):
        dw = 0.01 * rng.standard_normal(w.shape)
        a.apply_step(dw)
        serial_noise_apply_step(b, dw, threads)
    np.testing.assert_array_equal(a.conductances(), b.conductances())


def test_update_bench_runs_and_formats():
    rows = run_update_bench(("mlp",), threads=(1,), rounds=1, warmup=1)
    assert [r["threads"] for r in rows] == [1]
    assert rows[0]["devices"] == 2 * (784 * 256 + 256 * 128 + 128 * 10)
    assert rows[0]["old_ns"] > 0 and rows[0]["new_ns"] > 0
    assert "| mlp | 1 | 469504 |" in format_update_bench(rows)
