"""Benchmark of one crossbar layer: forward + backward + update (issue 3, item 7).

A 400x120 layer at batch 128 on the TxSim hardware (64x64 tiles, signed split, 8-bit inputs
streamed through 1-bit DACs, 8-bit ADC per array and conversion, v = 0.01, gamma = 5, parasitics
1 / 4.6 Ohm wires and 100 Ohm terminals, exact FCM refresh after every update), timed in the same
run as NumPy matmuls of the same shapes and as a large square GEMM that measures the machine's
BLAS rate.

The "MVM work" is what the analog arrays compute: per product, ``2 * planes * batch * rows *
cols`` flops for every physical array (the bit-plane GEMMs); its rate is compared with the
square-GEMM rate. The refresh (FCM solves after the update) and the update are timed apart.
"""

from __future__ import annotations

import dataclasses as dc
from collections.abc import Callable
from typing import Any

import numpy as np

from xbarsim.config.presets import PRESETS
from xbarsim.config.schema import CrossbarConfig, HardwareConfig
from xbarsim.studies.bench import median_time


def txsim_layer_hardware() -> HardwareConfig:
    """TxSim preset hardware, ADC per array and bit-plane, 100 Ohm terminals (issue 3 setup)."""
    hw = PRESETS["txsim"]().hardware
    per_plane = [dc.replace(p, adc=dc.replace(p.adc, granularity="tile"))
                 for p in (hw.forward, hw.backward)]
    return dc.replace(hw, crossbar=CrossbarConfig(n_rows=64, n_cols=64, r_row=1.0, r_col=4.6,
                                                  r_source=100.0, r_sense=100.0),
                      forward=per_plane[0], backward=per_plane[1])


def _median(fn: Callable[[], Any], repeats: int) -> float:
    return median_time(fn, repeats)[0]


def run_layer_bench(n_in: int = 400, n_out: int = 120, batch: int = 128, repeats: int = 15,
                    seed: int = 0, hw: HardwareConfig | None = None) -> dict[str, float]:
    """Time one training step of a crossbar layer and NumPy references; returns seconds/ratios."""
    from xbarsim.hardware.tile import Tile  # noqa: PLC0415  (numba import only when used)

    hw = hw or txsim_layer_hardware()
    rng = np.random.default_rng(seed)
    w = 0.05 * rng.standard_normal((n_in, n_out))
    x = np.abs(rng.standard_normal((batch, n_in)))
    delta = 1e-3 * rng.standard_normal((batch, n_out))
    tile = Tile(n_in, n_out, hw, rng=np.random.default_rng(seed + 1), w_init=w)
    # steady state of training: the ADC ranges are calibrated (first batches), then frozen
    tile.forward(x)
    tile.backward(delta)
    tile.freeze_adcs()

    def refresh() -> None:
        tile.apply_step(np.zeros_like(w) + 1e-9)   # a real (tiny) update: every array is stale
        tile.refresh()

    out: dict[str, float] = {}
    out["refresh"] = _median(refresh, repeats)
    # products in batch slices on two threads (default) against one call with BLAS's own
    # threads, interleaved (rounds of both)
    one_call: dict[str, list[float]] = {"forward": [], "backward": []}
    split: dict[str, list[float]] = {"forward": [], "backward": []}
    for _ in range(3):
        for flag, store in ((False, one_call), (True, split)):
            tile.split_products = flag
            store["forward"].append(_median(lambda: tile.forward(x), repeats))
            store["backward"].append(_median(lambda: tile.backward(delta), repeats))
    tile.split_products = True
    for key in ("forward", "backward"):
        out[key] = float(np.median(split[key]))
        out[key + "_one_call"] = float(np.median(one_call[key]))
    out["update"] = _median(lambda: tile.update(x, delta, 1e-3), repeats)
    out["step"] = out["forward"] + out["backward"] + out["update"] + out["refresh"]
    out["numpy_step"] = _median(lambda: (x @ w, delta @ w.T, x.T @ delta), repeats)
    # MVM work: bit-plane GEMMs of every physical array, both directions
    n_arrays_fwd = sum(len(b.reads) for b in tile.blocks)
    fwd_planes = hw.forward.dac.input_bits or 1
    bwd_planes = 2 * ((hw.backward.dac.input_bits or 2) - 1)     # two-pass signed errors
    rows_cols = sum(x_.shape[0] * x_.shape[1] for b in tile.blocks for x_ in b.reads)
    out["mvm_flops"] = 2.0 * batch * rows_cols * (fwd_planes + bwd_planes)
    out["n_arrays"] = float(n_arrays_fwd)
    n = 1024
    a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    out["gemm_rate"] = 2.0 * n**3 / _median(lambda: a @ b, repeats)
    out["mvm_rate"] = out["mvm_flops"] / (out["forward"] + out["backward"])
    out["mvm_fraction_of_gemm"] = out["mvm_rate"] / out["gemm_rate"]
    out["mvm_rate_one_call"] = out["mvm_flops"] / (out["forward_one_call"]
                                                   + out["backward_one_call"])
    out["step_over_numpy"] = out["step"] / out["numpy_step"]
    return out


def format_layer_bench(res: dict[str, float]) -> str:
    """Markdown table of :func:`run_layer_bench` results."""
    ms = 1e3
    lines = ["| part | median [ms] |", "|---|---|"]
    for key in ("forward", "backward", "update", "refresh", "step", "numpy_step"):
        lines.append(f"| {key} | {res[key] * ms:.2f} |")
    if "forward_one_call" in res:
        lines += [f"| forward, one call (BLAS threads) | {res['forward_one_call'] * ms:.2f} |",
                  f"| backward, one call (BLAS threads) | {res['backward_one_call'] * ms:.2f} |"]
    lines += ["",
              f"crossbar step / NumPy step: {res['step_over_numpy']:.1f}x",
              f"MVM work: {res['mvm_flops'] / 1e9:.2f} GFlop per step over "
              f"{int(res['n_arrays'])} arrays, {res['mvm_rate'] / 1e9:.1f} GFlop/s = "
              f"{100 * res['mvm_fraction_of_gemm']:.0f} % of the measured GEMM rate "
              f"({res['gemm_rate'] / 1e9:.1f} GFlop/s, 1024^3 matmul)"]
    if "mvm_rate_one_call" in res:
        lines.append(f"MVM work as one call per block with BLAS's threads: "
                     f"{res['mvm_rate_one_call'] / 1e9:.1f} GFlop/s = "
                     f"{100 * res['mvm_rate_one_call'] / res['gemm_rate']:.0f} % "
                     "(the batch split over threads above is the default)")
    return "\n".join(lines)
