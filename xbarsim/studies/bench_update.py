"""Benchmark of the device update of a training step: the serial-noise path against the keyed one.

Both paths realise the same weight steps on the tiles of a model built on the TxSim preset
hardware (:func:`xbarsim.studies.bench_train.cross_ni_hardware`): the MLP 784-256-128-10
(tiles 784x256, 256x128, 128x10) and LeNet-5 (conv1, conv2, fc1-fc3).

* ``serial-noise`` (:func:`serial_noise_apply_step`): the path this project used before the
  keyed update, kept here to measure against: one NumPy normal draw for the whole tile (every
  master device, including the idle device of each signed-split pair), sliced per array; the
  signed-split requests block by block; :func:`xbarsim.kernels.update.apply_update` per array;
  blocks in slices on the pool's threads (:func:`xbarsim.hardware.parallel.over_batch`).
* ``keyed`` (:meth:`xbarsim.hardware.tile.Tile.apply_step`): one parallel kernel per tile,
  normals drawn inside it from keyed Philox, zero requests skipped.

Each path has its own copy of the tiles (same seeds, same steps). The variants (model x path x
threads) are timed in turn, ``rounds`` times over, one optimizer step's tile updates per
timing; the table gives medians over rounds of ns per master device and the per-round ratios.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from xbarsim.hardware.parallel import over_batch

#: Rough serial cost of one device update of the serial-noise path [ns] (its thread split).
SERIAL_NOISE_NS_PER_DEVICE = 25


def serial_noise_apply_step(tile: Any, dw: np.ndarray, threads: bool = True) -> None:
    """Apply ``dw`` by the update path used before the keyed kernel (benchmark only; same physics).

    Parameters
    ----------
    tile : Tile
        Updated in place.
    dw : ndarray of shape (n_in, n_out)
        Weight step.
    threads : bool
        Update blocks on the pool's threads (the old default) or serially.
    """
    sizes = [x.g.size for x in tile.masters if x.device.noisy]
    noise = tile.rng.standard_normal(sum(sizes)) if sizes else None
    xis: list[list[np.ndarray | None]] = []
    offset = 0
    for blk in tile.blocks:
        xis.append([])
        for xbar in blk.masters:
            if noise is not None and xbar.device.noisy:
                xis[-1].append(noise[offset:offset + xbar.g.size].reshape(xbar.shape))
                offset += xbar.g.size
            else:
                xis[-1].append(None)

    def update_blocks(k0: int, k1: int) -> None:
        for blk, blk_xis in zip(tile.blocks[k0:k1], xis[k0:k1], strict=True):
            requests = tile.mapping.split_update_trusted(dw[blk.block.rows, blk.block.cols],
                                                         [x.g for x in blk.masters],
                                                         tile.w_scale)
            for xbar, request, xi in zip(blk.masters, requests, blk_xis, strict=True):
                xbar.update(request, xi)
            blk.slices_stale = True

    if threads:
        n_devices = sum(x.g.size for x in tile.masters)
        over_batch(update_blocks, len(tile.blocks), SERIAL_NOISE_NS_PER_DEVICE * n_devices)
    else:
        update_blocks(0, len(tile.blocks))


def model_tiles(model_name: str, seed: int = 0) -> list[Any]:
    """Build the tiles of ``model_name`` ("mlp" or "lenet5") on the TxSim preset hardware."""
    from xbarsim.hardware.tile import Tile  # noqa: PLC0415
    from xbarsim.nn import models  # noqa: PLC0415
    from xbarsim.rng import stream  # noqa: PLC0415
    from xbarsim.studies.bench_train import cross_ni_hardware  # noqa: PLC0415

    hw = cross_ni_hardware("fcm")
    tiles: list[Tile] = []

    def factory(name: str, n_in: int, n_out: int, w_init: np.ndarray) -> Tile:
        tiles.append(Tile(n_in, n_out, hw, rng=stream(seed, f"tile/{name}"), name=name,
                          w_init=w_init))
        return tiles[-1]

    if model_name == "lenet5":
        models.lenet5(seed=seed, weight_factory=factory)
    elif model_name == "mlp":
        models.mlp([784, 256, 128, 10], seed=seed, weight_factory=factory)
    else:
        raise ValueError(f"model_name: expected 'mlp' or 'lenet5', got {model_name!r}")
    return tiles


def run_update_bench(models: tuple[str, ...] = ("mlp", "lenet5"), threads: tuple[int, ...] = (1, 2),
                     rounds: int = 15, warmup: int = 2, step_size: float = 1e-3,
                     seed: int = 0) -> list[dict[str, Any]]:
    """Time the serial-noise and the keyed update side by side, interleaved.

    Parameters
    ----------
    models : tuple of str
        "mlp" and/or "lenet5".
    threads : tuple of int
        Thread counts (Numba's for the keyed kernel, the pool's slices for the serial-noise
        path: 1 runs it serially).
    rounds : int
        Timed rounds; every variant is timed once per round.
    warmup : int
        Untimed steps of every variant first (JIT compilation).
    step_size : float
        Standard deviation of the random weight steps.
    seed : int
        Seed of the models and steps.

    Returns
    -------
    list of dict
        One row per model and thread count: ``model``, ``threads``, ``devices``, ``tiles``,
        ``old_ns``, ``new_ns`` (medians of wall time per master device), ``ratios`` (per
        round, old / new), ``old_cpu_ns``, ``new_cpu_ns`` (medians of the process's CPU time,
        all threads, per master device: the work, whatever else runs on the machine).
    """
    threads = tuple(t for t in threads if t <= numba.config.NUMBA_NUM_THREADS)
    before = numba.get_num_threads()
    rows = []
    try:
        variants: dict[tuple[str, int, str], Callable[[], None]] = {}
        meta: dict[str, tuple[int, int]] = {}
        for name in models:
            old_tiles, new_tiles = model_tiles(name, seed), model_tiles(name, seed)
            rng = np.random.default_rng(seed + 1)
            steps = [step_size * rng.standard_normal(t.shape) for t in new_tiles]
            meta[name] = (sum(x.g.size for t in new_tiles for x in t.masters), len(new_tiles))
            for n_threads in threads:
                variants[(name, n_threads, "old")] = (
                    lambda ts=old_tiles, ss=steps, n=n_threads: [
                        serial_noise_apply_step(t, s, n > 1) for t, s in zip(ts, ss, strict=True)])
                variants[(name, n_threads, "new")] = (
                    lambda ts=new_tiles, ss=steps: [t.apply_step(s)
                                                    for t, s in zip(ts, ss, strict=True)])
        for (_, n_threads, _), fn in variants.items():
            numba.set_num_threads(n_threads)
            for _ in range(warmup):
                fn()
        times: dict[tuple[str, int, str], list[float]] = {k: [] for k in variants}
        cpu: dict[tuple[str, int, str], list[float]] = {k: [] for k in variants}
        for _ in range(rounds):
            for key, fn in variants.items():
                numba.set_num_threads(key[1])
                c0, t0 = time.process_time(), time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - t0)
                cpu[key].append(time.process_time() - c0)
        for name in models:
            n_dev, n_tiles = meta[name]
            for n_threads in threads:
                old, new = times[(name, n_threads, "old")], times[(name, n_threads, "new")]
                rows.append({"model": name, "threads": n_threads, "devices": n_dev,
                             "tiles": n_tiles, "old_ns": statistics.median(old) / n_dev * 1e9,
                             "new_ns": statistics.median(new) / n_dev * 1e9,
                             "ratios": [o / n for o, n in zip(old, new, strict=True)],
                             "old_cpu_ns": statistics.median(cpu[(name, n_threads, "old")])
                             / n_dev * 1e9,
                             "new_cpu_ns": statistics.median(cpu[(name, n_threads, "new")])
                             / n_dev * 1e9})
    finally:
        numba.set_num_threads(before)
    return rows


def format_update_bench(rows: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`run_update_bench` and the per-round ratios."""
    lines = ["| model | threads | master devices | serial-noise wall [ns/device] "
             "| keyed wall [ns/device] | serial-noise / keyed wall (median of rounds) "
             "| serial-noise CPU [ns/device] | keyed CPU [ns/device] | CPU ratio |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['threads']} | {r['devices']} | {r['old_ns']:.2f} | "
                     f"{r['new_ns']:.2f} | {statistics.median(r['ratios']):.2f}x | "
                     f"{r['old_cpu_ns']:.2f} | {r['new_cpu_ns']:.2f} | "
                     f"{r['old_cpu_ns'] / r['new_cpu_ns']:.2f}x |")
    lines += ["", "Ratios serial-noise / keyed in each round:"]
    for r in rows:
        lines.append(f"  {r['model']} {r['threads']} thread(s): "
                     + "/".join(f"{x:.2f}" for x in r["ratios"]))
    return "\n".join(lines)
