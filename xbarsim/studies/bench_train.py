"""Benchmark of one training step (batch 128): software, crossbar and PyTorch, side by side.

Models (:data:`BENCH_MODELS`, chosen with ``models=``): LeNet-5 and an MLP 784-256-128-10 on
MNIST-shaped inputs, ResNet-20 and the VGG-style CNN on CIFAR-10-shaped inputs (32 x 32 x 3).
The inputs are synthetic (uniform in [0, 1], random labels): a step's time does not depend on
the pixel values. One step is forward, softmax cross-entropy, backward and a plain SGD update.
Measured in the same run:

* ``software``: xbarsim with digital weights;
* ``torch``: the same network in PyTorch on the CPU, float64 (only when ``torch`` is
  installed; the optional baseline, ``pip install torch==2.13.0``);
* ``cross_ni_exact``: the TxSim preset hardware (Cross-NI) with an exact FCM refresh of every
  array after every update;
* ``cross_ni_interp``: the same with interpolated FCM (exact refresh every L = 10 steps).

Times are medians over at least ``repeats`` steps (and as many more as make
:data:`xbarsim.studies.bench.MIN_SECONDS`) after warm-up steps (JIT compilation, ADC
calibration), taken in rounds that alternate the modes, and the medians over the rounds;
ratios are against PyTorch when present, else against ``software``. The peak memory of each
mode is measured in a fresh process that builds only that model and mode and runs its
warm-up and a few steps (:func:`peak_rss_mb`).
"""

from __future__ import annotations

import dataclasses as dc
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from xbarsim.config.presets import PRESETS
from xbarsim.config.schema import HardwareConfig, SolverConfig
from xbarsim.studies.bench import MIN_SECONDS, median_time

MNIST_SHAPE = (1, 28, 28)
CIFAR_SHAPE = (3, 32, 32)


@dc.dataclass(frozen=True)
class BenchModel:
    """A network of the training benchmark.

    Attributes
    ----------
    name : str — the key in :data:`BENCH_MODELS`.
    input_shape : tuple of int — one sample (channels, height, width), or (features,).
    data : str — what the synthetic inputs stand for.
    build : callable — ``build(seed, weight_factory)`` returns the xbarsim model.
    """

    name: str
    input_shape: tuple[int, ...]
    data: str
    build: Callable[[int, Any], Any]


def _models() -> dict[str, BenchModel]:
    from xbarsim.nn import models  # noqa: PLC0415

    mnist, cifar = "MNIST-shaped synthetic", "CIFAR-10-shaped synthetic"
    return {
        "lenet5": BenchModel("lenet5", MNIST_SHAPE, mnist,
                             lambda seed, f: models.lenet5(seed=seed, weight_factory=f)),
        "mlp": BenchModel("mlp", (784,), mnist,
                          lambda seed, f: models.mlp([784, 256, 128, 10], seed=seed,
                                                     weight_factory=f)),
        "resnet20": BenchModel("resnet20", CIFAR_SHAPE, cifar,
                               lambda seed, f: models.resnet20(seed=seed, weight_factory=f)),
        "vgg_small": BenchModel("vgg_small", CIFAR_SHAPE, cifar,
                                lambda seed, f: models.vgg_small(seed=seed, weight_factory=f)),
    }


#: Names of the benchmark's networks, in report order.
BENCH_MODELS = ("lenet5", "mlp", "resnet20", "vgg_small")

#: The networks a run times unless told otherwise (the CIFAR-10-shaped ones take minutes).
DEFAULT_MODELS = ("lenet5", "mlp")


def check_models(models: tuple[str, ...]) -> tuple[str, ...]:
    """Validate model names (``ValueError`` naming the bad one and the choices)."""
    for name in models:
        if name not in BENCH_MODELS:
            raise ValueError(f"model {name!r}: expected one of {', '.join(BENCH_MODELS)}")
    if not models:
        raise ValueError(f"models: name at least one of {', '.join(BENCH_MODELS)}")
    return models


def _median_step(step: Callable[[], Any], repeats: int, warmup: int) -> float:
    """Median over at least ``repeats`` steps and as many more as make MIN_SECONDS."""
    for _ in range(warmup):
        step()
    return median_time(step, repeats, min_seconds=MIN_SECONDS)[0]


def _build(model_name: str, hw: HardwareConfig | None, batch: int, seed: int
           ) -> tuple[Any, list[Any], Callable[[], None], Callable[[], None], Callable[[], None]]:
    """Model, its tiles, and the forward (with the loss), backward and update of one step."""
    from xbarsim.hardware.tile import Tile, refresh_tiles  # noqa: PLC0415
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
    spec = _models()[model_name]
    model = spec.build(seed, factory)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (batch, *spec.input_shape))
    labels = rng.integers(0, 10, batch)
    loss = SoftmaxCrossEntropy()
    opt = SGD(model.parameters(), lr=0.01)

    def forward() -> None:
        if tiles:
            refresh_tiles(tiles)     # all stale arrays of the model in one batched refresh
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
    from xbarsim.hardware.tile import refresh_tiles  # noqa: PLC0415

    _, tiles, forward, backward, update = _build(model_name, cross_ni_hardware(method), batch,
                                                 seed)

    def refresh() -> None:
        refresh_tiles(tiles)

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


def _torch_model(model_name: str) -> Any:
    """Build the benchmark network in PyTorch (the same layers as xbarsim's)."""
    import torch  # noqa: PLC0415

    nn = torch.nn
    if model_name == "lenet5":
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                             nn.Linear(84, 10))
    if model_name == "mlp":
        return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                             nn.Linear(128, 10))
    if model_name == "vgg_small":
        layers: list[Any] = []
        c = 3
        for width in (32, 64, 128):
            for _ in range(2):
                layers += [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                           nn.ReLU()]
                c = width
            layers.append(nn.MaxPool2d(2))
        return nn.Sequential(*layers, nn.Flatten(), nn.Linear(128 * 4 * 4, 10))

    class Block(nn.Module):  # type: ignore[misc]
        def __init__(self, c_in: int, c_out: int, stride: int) -> None:
            super().__init__()
            self.main = nn.Sequential(
                nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(c_out), nn.ReLU(),
                nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out))
            self.shortcut = (nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)))

        def forward(self, x: Any) -> Any:
            return torch.relu(self.main(x) + self.shortcut(x))

    blocks: list[Any] = [nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
                         nn.ReLU()]
    c = 16
    for s, width in enumerate((16, 32, 64), start=1):
        for k in range(3):
            blocks.append(Block(c, width, 2 if (s > 1 and k == 0) else 1))
            c = width
    return nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def _torch_step(model_name: str, batch: int, seed: int) -> Callable[[], None] | None:
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        return None
    torch.manual_seed(seed)
    net = _torch_model(model_name).double()
    x = torch.rand(batch, *_models()[model_name].input_shape, dtype=torch.float64)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    lossf = torch.nn.CrossEntropyLoss()

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


#: Networks whose steps take seconds: fewer timed steps (see :func:`run_train_bench`).
BIG_MODELS = ("resnet20", "vgg_small")

#: The modes of a benchmark row, in report order.
MODES = ("torch", "software", "cross_ni_exact", "cross_ni_interp")


def _mode_step(name: str, mode: str, batch: int, seed: int) -> Callable[[], None] | None:
    """Return the training step of one mode (None: PyTorch is not installed)."""
    if mode == "torch":
        return _torch_step(name, batch, seed)
    hw = {"software": None, "cross_ni_exact": cross_ni_hardware("fcm"),
          "cross_ni_interp": cross_ni_hardware("interpolated")}[mode]
    return _xbarsim_step(name, hw, batch, seed)


def run_train_bench(models: tuple[str, ...] = DEFAULT_MODELS, batch: int = 128,
                    repeats: int = 5, warmup: int = 2, seed: int = 0, rounds: int = 3,
                    rss: bool = True) -> list[dict[str, Any]]:
    """Step times [s] per model and mode, measured side by side in one run.

    The modes of a model are timed in turn, ``rounds`` times over (after ``warmup`` steps of
    each), and each column is the median over the rounds; ``row["rounds"]`` keeps the times
    of every round. Interleaving keeps a burst of load on a shared machine from falling on one
    mode only. The interpolated mode is timed over whole refresh periods of 10 steps
    (``repeats`` periods); for :data:`BIG_MODELS` at most 2 steps and 1 period per round.
    With ``rss``, ``row["rss_mb"][mode]`` is the peak resident memory [MB] of a fresh process
    running only that mode (:func:`peak_rss_mb`).
    """
    rows = []
    for name in check_models(tuple(models)):
        reps = min(repeats, 2) if name in BIG_MODELS else repeats
        periods = 1 if name in BIG_MODELS else repeats
        steps = {mode: _mode_step(name, mode, batch, seed) for mode in MODES}
        for step in steps.values():
            for _ in range(warmup if step is not None else 0):
                step()
        per_round: dict[str, list[float]] = {k: [] for k, v in steps.items() if v is not None}
        for _ in range(max(1, rounds)):
            for key, step in steps.items():
                if step is None:
                    continue
                # interpolated: whole refresh periods (one exact refresh in every 10 steps)
                per_round[key].append(_mean_over_periods(step, periods, 0)
                                      if key == "cross_ni_interp" else
                                      _median_step(step, reps, 0))
        row: dict[str, Any] = {"model": name, "data": _models()[name].data}
        row.update({k: (statistics.median(per_round[k]) if k in per_round else None)
                    for k in steps})
        row["rounds"] = per_round
        del steps
        if rss:
            row["rss_mb"] = {mode: peak_rss_mb(name, mode, batch, seed, warmup + 2)
                             for mode in MODES if mode in per_round}
        rows.append(row)
    return rows


def peak_rss_mb(model: str, mode: str, batch: int = 128, seed: int = 0, steps: int = 4
                ) -> float:
    """Peak resident memory [MB] of a fresh Python process that runs ``steps`` steps of a mode.

    The process imports xbarsim (and PyTorch for ``mode="torch"``), builds the model and
    runs the steps; its high-water mark (Linux: ``VmHWM``) is returned, interpreter and
    libraries included.
    """
    code = ("import sys; from xbarsim.studies.bench_train import _rss_child; "
            f"_rss_child({model!r}, {mode!r}, {int(batch)}, {int(seed)}, {int(steps)})")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"peak_rss_mb({model}, {mode}): the child process failed:\n"
                           f"{done.stderr[-2000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def _peak_rss_of_this_process_mb() -> float:
    """High-water mark of this process's resident memory [MB].

    Linux: ``VmHWM`` of ``/proc/self/status``, which starts afresh at ``exec``;
    ``getrusage``'s ``ru_maxrss`` would report at least the resident size of the parent at
    the ``fork`` that started this process. Elsewhere ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024.0          # kB
    except OSError:
        pass
    import resource  # noqa: PLC0415  (POSIX only)

    # ru_maxrss is in kilobytes on Linux (bytes on macOS)
    scale = 1.0 / 1024 if sys.platform != "darwin" else 1.0 / 1024 ** 2
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _rss_child(model: str, mode: str, batch: int, seed: int, steps: int) -> None:
    """Body of :func:`peak_rss_mb`'s process: run the steps, print the peak RSS in MB."""
    step = _mode_step(model, mode, batch, seed)
    assert step is not None
    for _ in range(steps):
        step()
    sys.stdout.write(f"{_peak_rss_of_this_process_mb()}\n")


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


#: Targets of issue 24 per model: (column, largest allowed ratio to PyTorch, description).
TARGETS: dict[str, tuple[tuple[str, float, str], ...]] = {
    "lenet5": (("software", 1.0, "software <= 1.0x PyTorch"),
               ("cross_ni_exact", 3.0, "Cross-NI exact refresh every batch <= 3x PyTorch"),
               ("cross_ni_interp", 2.0, "Cross-NI interpolated (L = 10) <= 2x PyTorch")),
    "mlp": (("software", 1.0, "software <= 1.0x PyTorch"),
            ("cross_ni_exact", 20.0, "Cross-NI exact refresh every batch <= 20x PyTorch"),
            ("cross_ni_interp", 5.0, "Cross-NI interpolated (L = 10) <= 5x PyTorch")),
    "resnet20": (("software", 1.2, "software <= 1.2x PyTorch"),
                 ("cross_ni_exact", 2.0, "Cross-NI exact refresh every batch <= 2x PyTorch"),
                 ("cross_ni_interp", 1.6, "Cross-NI interpolated (L = 10) <= 1.6x PyTorch")),
}

_RATIO_KEYS = ("software", "cross_ni_exact", "cross_ni_interp")


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
    Per-round ratios follow with their ranges, then the peak memory of every mode when the
    rows have it.
    """
    out = ["| model | torch [ms] | software [ms] | Cross-NI exact [ms] | Cross-NI interp. L=10 [ms]"
           " | software/torch | exact/torch | interp/torch |",
           "|---|---|---|---|---|---|---|---|"]
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{1e3 * v:.3g}"

    for r in rows:
        has_torch = r["torch"] is not None
        ratios = [f"{_ratio(r, k):.2f}x" if has_torch else "-" for k in _RATIO_KEYS]
        out.append(f"| {r['model']} | {ms(r['torch'])} | {ms(r['software'])} | "
                   f"{ms(r['cross_ni_exact'])} | {ms(r['cross_ni_interp'])} | "
                   + " | ".join(ratios) + " |")
    inputs = sorted({f"{r['model']}: {r['data']}" for r in rows if "data" in r})
    if inputs:
        out += ["", "Inputs (batch of random images and labels; no dataset is read): "
                + "; ".join(inputs)]
    if any(r.get("rss_mb") for r in rows):
        out += ["", "Peak resident memory [MB] of a fresh process running one mode (build, "
                "warm-up, 2 steps; interpreter and libraries included):", "",
                "| model | torch | software | Cross-NI exact | Cross-NI interp. |",
                "|---|---|---|---|---|"]
        for r in rows:
            rss = r.get("rss_mb") or {}
            out.append(f"| {r['model']} | " + " | ".join(
                f"{rss[m]:.0f}" if m in rss else "-" for m in MODES) + " |")
    out += ["", "Targets (issue 24):"]
    for r in rows:
        if r["torch"] is None:
            out.append(f"  {r['model']}: no PyTorch in this environment "
                       "(pip install torch==2.13.0), targets not evaluated")
            continue
        targets = TARGETS.get(r["model"], ())
        if not targets:
            out.append(f"  {r['model']}: no target set (reported only)")
        for key, limit, text in targets:
            ratio = _ratio(r, key)
            verdict = "PASS" if ratio <= limit else "FAIL"
            out.append(f"  {verdict}: {r['model']} {text} ({ratio:.2f}x)")
    per_round = [r for r in rows if r["torch"] is not None and _round_ratios(r, "software")]
    if per_round:
        out += ["", "Ratios to PyTorch in each round (the table gives their medians):"]
        for r in per_round:
            for key in _RATIO_KEYS:
                each = _round_ratios(r, key) or []
                out.append(f"  {r['model']} {key}: " + "/".join(f"{v:.2f}" for v in each)
                           + f" (range {min(each):.2f}-{max(each):.2f})")
    return "\n".join(out)


def run_refresh_bench(models: tuple[str, ...] = DEFAULT_MODELS, rounds: int = 5,
                      seed: int = 0) -> list[dict[str, Any]]:
    """Exact refresh of every array of a model (TxSim hardware): flop rate against GEMM.

    Per model and round, after a tiny update has made every array stale, in turn: the batched
    refresh of all tiles (:func:`xbarsim.hardware.tile.refresh_tiles`), the same solves array
    by array (``solver.g_eff`` per array, the arrays split in one slice per thread, one BLAS
    thread each: the refresh without batching), and a 1024 x 1024 matrix product on all
    cores (the machine's GEMM rate at that moment). Each row gives the medians over the
    rounds [s], the solves' flops (:func:`xbarsim.hardware.schur.flop_count`), the arrays,
    and the per-round fractions of the GEMM rate.
    """
    from xbarsim.hardware import parallel, schur  # noqa: PLC0415
    from xbarsim.hardware.tile import refresh_tiles  # noqa: PLC0415
    from xbarsim.kernels.blas import one_blas_thread  # noqa: PLC0415

    rows = []
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((1024, 1024))
    b = rng.standard_normal((1024, 1024))
    for name in check_models(tuple(models)):
        _, tiles, _, _, _ = _build(name, cross_ni_hardware("fcm"), 8, seed)
        arrays = [x for t in tiles for blk in t.blocks for x in t.read_arrays(blk)]
        flops = sum(schur.flop_count(*x.shape) for x in arrays)

        def make_stale(tiles: list[Any] = tiles) -> None:
            for t in tiles:
                t.apply_step(np.full(t.shape, 1e-9))

        def batched(tiles: list[Any] = tiles) -> None:
            refresh_tiles(tiles)

        def per_array(tiles: list[Any] = tiles) -> None:
            stale = [x for t in tiles for blk in t.blocks for x in t.read_arrays(blk)]

            def solve(k0: int, k1: int) -> None:
                for x in stale[k0:k1]:
                    x.accept_g_eff(x.solver.g_eff(x.g))

            work = sum(x.g.size * max(x.shape) * 5 for x in stale)
            if parallel.splits(len(stale), work):
                parallel.over_batch(one_blas_thread(solve), len(stale), work)
            else:
                solve(0, len(stale))

        times: dict[str, list[float]] = {"batched": [], "per_array": [], "gemm": []}
        make_stale()
        refresh_tiles(tiles)                 # compile, warm up
        for _ in range(max(1, rounds)):
            for key, fn in (("batched", batched), ("per_array", per_array),
                            ("gemm", lambda: a @ b)):
                if key != "gemm":
                    make_stale()
                t0 = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - t0)
        gemm_rate = [2.0 * 1024 ** 3 / t for t in times["gemm"]]
        rows.append({"model": name, "n_arrays": len(arrays), "flops": float(flops),
                     "shapes": sorted({x.shape for x in arrays}),
                     **{k: statistics.median(v) for k, v in times.items()},
                     "gemm_rate": statistics.median(gemm_rate),
                     "fraction": [flops / t / r for t, r in zip(times["batched"], gemm_rate,
                                                                  strict=True)],
                     "speedup": [p / q for p, q in zip(times["per_array"], times["batched"],
                                                       strict=True)]})
    return rows


def format_refresh_bench(rows: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`run_refresh_bench` results."""
    out = ["| model | arrays | GFlop | batched [ms] | GFlop/s | GEMM [GFlop/s] | of GEMM | "
           "per array [ms] | per array / batched |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        frac = statistics.median(r["fraction"])
        rate = r["flops"] / r["batched"]
        out.append(f"| {r['model']} | {r['n_arrays']} | {r['flops'] / 1e9:.3g} | "
                   f"{1e3 * r['batched']:.3g} | {rate / 1e9:.3g} | {r['gemm_rate'] / 1e9:.3g} | "
                   f"{100 * frac:.0f} % | {1e3 * r['per_array']:.3g} | "
                   f"{statistics.median(r['speedup']):.2f}x |")
    out += ["", "Per round (fraction of the GEMM rate measured in the same round; speed-up of "
            "batching):"]
    for r in rows:
        out.append(f"  {r['model']}: " + "/".join(f"{100 * f:.0f}%" for f in r["fraction"])
                   + "; " + "/".join(f"{s:.2f}x" for s in r["speedup"])
                   + "; shapes " + ", ".join(f"{m}x{n}" for m, n in r["shapes"]))
    return "\n".join(out)
