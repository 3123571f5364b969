"""Benchmark of one training step (batch 128): software, crossbar and PyTorch (issue 4, item 9).

Models: LeNet-5 (MNIST shape) and an MLP 784-256-128-10. One step is forward, softmax
cross-entropy, backward and a plain SGD update. Measured in the same run:

* ``software``: xbarsim with digital weights;
* ``torch``: the same network in PyTorch on the CPU (only when ``torch`` is installed; the
  optional baseline, ``pip install torch==2.13.0``);
* ``cross_ni_exact``: the TxSim preset hardware (Cross-NI) with an exact FCM refresh of every
  array after every update;
* ``cross_ni_interp``: the same with interpolated FCM (exact refresh every L = 10 steps).

Times are medians over at least ``repeats`` steps (and as many more as make
:data:`xbarsim.studies.bench.MIN_SECONDS`) after warm-up steps (JIT compilation, ADC
calibration), taken in rounds that alternate the modes, and the medians over the rounds;
ratios are against PyTorch when present, else against ``software``.
"""

from __future__ import annotations

import dataclasses as dc
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from xbarsim.config.presets import PRESETS
from xbarsim.config.schema import HardwareConfig, SolverConfig
from xbarsim.studies.bench import MIN_SECONDS, median_time


def _median_step(step: Callable[[], Any], repeats: int, warmup: int) -> float:
    """Median over at least ``repeats`` steps and as many more as make MIN_SECONDS."""
    for _ in range(warmup):
        step()
    return median_time(step, repeats, min_seconds=MIN_SECONDS)[0]


def _build(model_name: str, hw: HardwareConfig | None, batch: int, seed: int
           ) -> tuple[Any, list[Any], Callable[[], None], Callable[[], None], Callable[[], None]]:
    """Model, its tiles, and the forward (with the loss), backward and update of one step."""
    from xbarsim.hardware.tile import Tile  # noqa: PLC0415
    from xbarsim.nn import models  # noqa: PLC0415
    from xbarsim.nn.losses import SoftmaxCrossEntropy  # noqa: PLC0415
    from xbarsim.nn.optim import SGD  # noqa: PLC0415
    from xbarsim.rng import stream  # noqa: PLC0415

    tiles: list[Tile] = []
    factory = None
    if hw is not None:
        def factory(name: str, n_in: int, n_out: int, w_init: np.ndarray) -> Tile:
            tiles.append(Tile(n_in, n_out, hw, rng=stream(seed, f"tile/{name}"), name=name,
                              w_init=w_init))
            return tiles[-1]
    if model_name == "lenet5":
        model = models.lenet5(seed=seed, weight_factory=factory)
        shape: tuple[int, ...] = (batch, 1, 28, 28)
    else:
        model = models.mlp([784, 256, 128, 10], seed=seed, weight_factory=factory)
        shape = (batch, 784)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, shape)
    labels = rng.integers(0, 10, batch)
    loss = SoftmaxCrossEntropy()
    opt = SGD(model.parameters(), lr=0.01)

    def forward() -> None:
        loss(model.forward(x), labels)

    def backward() -> None:
        model.backward(loss.backward(), input_grad=False)

    return model, tiles, forward, backward, opt.step


def _xbarsim_step(model_name: str, hw: HardwareConfig | None, batch: int, seed: int
                  ) -> Callable[[], None]:
    _, _, forward, backward, update = _build(model_name, hw, batch, seed)

    def step() -> None:
        forward()
        backward()
        update()

    return step


#: Parts of a crossbar training step, in the order they run (see :func:`run_step_parts`).
PARTS = ("refresh", "forward", "backward", "update")


def run_step_parts(model_name: str, method: str = "fcm", batch: int = 128, steps: int = 30,
                   warmup: int = 10, seed: int = 0) -> dict[str, float]:
    """Where a Cross-NI training step goes: refresh, forward, backward and update times [s].

    The step of :func:`run_train_bench` on :func:`cross_ni_hardware` ``(method)``, with the
    refresh of every stale ``g_eff`` (which the forward would otherwise start) timed on its
    own. ``refresh`` is the mean over ``steps`` steps (the interpolated solver refreshes
    exactly once in 10, so a median would hide it; ``steps`` should be a multiple of 10), the
    others are medians. Also returns ``n_devices``, the devices of all arrays, and
    ``update_ns_per_device``, the update's median per device [ns].
    """
    _, tiles, forward, backward, update = _build(model_name, cross_ni_hardware(method), batch,
                                                 seed)
    def refresh() -> None:
        for t in tiles:
            t.refresh()

    parts = dict(zip(PARTS, (refresh, forward, backward, update), strict=True))
    times: dict[str, list[float]] = {k: [] for k in PARTS}
    for i in range(warmup + steps):
        for name, part in parts.items():
            t0 = time.perf_counter()
            part()
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
    out = {k: statistics.median(v) for k, v in times.items()}
    out["refresh"] = statistics.fmean(times["refresh"])
    out["n_devices"] = float(sum(x.g.size for t in tiles for blk in t.blocks
                                 for x in t.read_arrays(blk)))
    out["update_ns_per_device"] = 1e9 * out["update"] / out["n_devices"]
    return out


def format_step_parts(results: dict[tuple[str, str], dict[str, float]]) -> str:
    """Markdown table of :func:`run_step_parts` results keyed by ``(model, method)``."""
    out = ["| model | solver | refresh, mean [ms] | forward [ms] | backward [ms] | update [ms] | "
           "sum [ms] | devices | update [ns/device] |",
           "|---|---|---|---|---|---|---|---|---|"]
    for (model, method), r in results.items():
        total = sum(r[k] for k in PARTS)
        out.append(f"| {model} | {method} | {1e3 * r['refresh']:.3g} | {1e3 * r['forward']:.3g} "
                   f"| {1e3 * r['backward']:.3g} | {1e3 * r['update']:.3g} | {1e3 * total:.3g} "
                   f"| {int(r['n_devices'])} | {r['update_ns_per_device']:.3g} |")
    return "\n".join(out)


def _torch_step(model_name: str, batch: int, seed: int) -> Callable[[], None] | None:
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return None
    torch.manual_seed(seed)
    nn = torch.nn
    if model_name == "lenet5":
        net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                            nn.Linear(84, 10)).double()
        x = torch.rand(batch, 1, 28, 28, dtype=torch.float64)
    else:
        net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                            nn.Linear(128, 10)).double()
        x = torch.rand(batch, 784, dtype=torch.float64)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    lossf = nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad()
        lossf(net(x), y).backward()
        opt.step()

    return step


def cross_ni_hardware(method: str = "fcm") -> HardwareConfig:
    """TxSim preset hardware; ``method`` "fcm" (exact each step) or "interpolated" (L = 10)."""
    hw = PRESETS["txsim"]().hardware
    return dc.replace(hw, solver=SolverConfig(method=method, refresh_every=10,
                                              refresh_method="fcm"))


def run_train_bench(models: tuple[str, ...] = ("lenet5", "mlp"), batch: int = 128,
                    repeats: int = 5, warmup: int = 2, seed: int = 0, rounds: int = 3
                    ) -> list[dict[str, Any]]:
    """Step times [s] per model and mode, measured side by side in one run.

    The modes of a model are timed in turn, ``rounds`` times over (after ``warmup`` steps of
    each), and each column is the median over the rounds; ``row["rounds"]`` keeps the times
    of every round. Interleaving keeps a burst of load on a shared machine from falling on one
    mode only.
    """
    rows = []
    for name in models:
        steps: dict[str, Callable[[], Any] | None] = {
            "torch": _torch_step(name, batch, seed),
            "software": _xbarsim_step(name, None, batch, seed),
            "cross_ni_exact": _xbarsim_step(name, cross_ni_hardware("fcm"), batch, seed),
            "cross_ni_interp": _xbarsim_step(name, cross_ni_hardware("interpolated"), batch,
                                             seed)}
        for step in steps.values():
            for _ in range(warmup if step is not None else 0):
                step()
        per_round: dict[str, list[float]] = {k: [] for k, v in steps.items() if v is not None}
        for _ in range(max(1, rounds)):
            for key, step in steps.items():
                if step is None:
                    continue
                # interpolated: whole refresh periods (one exact refresh in every 10 steps)
                per_round[key].append(_mean_over_periods(step, repeats, 0)
                                      if key == "cross_ni_interp" else
                                      _median_step(step, repeats, 0))
        row: dict[str, Any] = {"model": name}
        row.update({k: (statistics.median(per_round[k]) if k in per_round else None)
                    for k in steps})
        row["rounds"] = per_round
        rows.append(row)
    return rows


def _mean_over_periods(step: Callable[[], Any], periods: int, warmup: int) -> float:
    """Mean step time over whole refresh periods of 10 steps (median of the period means)."""
    for _ in range(warmup):
        step()
    means = []
    for _ in range(max(1, periods)):
        t0 = time.perf_counter()
        for _ in range(10):
            step()
        means.append((time.perf_counter() - t0) / 10)
    return statistics.median(means)


#: issue 4 targets: (column, largest allowed ratio to PyTorch, description)
TARGETS = (("software", 1.5, "software <= 1.5x PyTorch"),
           ("cross_ni_exact", 10.0, "Cross-NI exact refresh every batch <= 10x PyTorch"),
           ("cross_ni_interp", 5.0, "Cross-NI interpolated (L = 10) <= 5x PyTorch"))


def _round_ratios(row: dict[str, Any], key: str) -> list[float] | None:
    """``key`` over PyTorch in each round, or None without several timed rounds."""
    rounds = row.get("rounds", {})
    if len(rounds.get("torch", ())) < 2:
        return None
    return [v / t for v, t in zip(rounds[key], rounds["torch"], strict=True)]


def _ratio(row: dict[str, Any], key: str) -> float:
    """``key`` over PyTorch: the median of the rounds' ratios when there are rounds."""
    each = _round_ratios(row, key)
    return statistics.median(each) if each else row[key] / row["torch"]


def format_train_bench(rows: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`run_train_bench` results with ratios, then the targets.

    Times are the rows' values (medians over rounds); a ratio is the median over the rounds of
    the ratio measured in each round (side by side), or the ratio of the times without rounds.
    """
    out = ["| model | torch [ms] | software [ms] | Cross-NI exact [ms] | Cross-NI interp. L=10 [ms]"
           " | software/torch | exact/torch | interp/torch |",
           "|---|---|---|---|---|---|---|---|"]
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{1e3 * v:.3g}"

    for r in rows:
        has_torch = r["torch"] is not None
        ratios = [f"{_ratio(r, k):.2f}x" if has_torch else "-"
                  for k in ("software", "cross_ni_exact", "cross_ni_interp")]
        out.append(f"| {r['model']} | {ms(r['torch'])} | {ms(r['software'])} | "
                   f"{ms(r['cross_ni_exact'])} | {ms(r['cross_ni_interp'])} | "
                   + " | ".join(ratios) + " |")
    out += ["", "Targets (issue 4):"]
    for r in rows:
        if r["torch"] is None:
            out.append(f"  {r['model']}: no PyTorch in this environment "
                       "(pip install torch==2.13.0), targets not evaluated")
            continue
        for key, limit, text in TARGETS:
            ratio = _ratio(r, key)
            verdict = "PASS" if ratio <= limit else "FAIL"
            out.append(f"  {verdict}: {r['model']} {text} ({ratio:.2f}x)")
    per_round = [r for r in rows if r["torch"] is not None and _round_ratios(r, "software")]
    if per_round:
        out += ["", "Ratios to PyTorch in each round (the table gives their medians):"]
        for r in per_round:
            for key, _, _ in TARGETS:
                each = "/".join(f"{v:.2f}" for v in _round_ratios(r, key) or ())
                out.append(f"  {r['model']} {key}: {each}")
    return "\n".join(out)
