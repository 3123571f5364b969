"""Deployment of trained weights on many simulated chips: ``deploy(...) -> DeployResult``.

What ``xbarsim deploy RUN.h5 --chips N --config HW.yaml`` calls. The weights of a run file or
checkpoint (trained in any mode: software, crossbar (the weights its conductances held at the
end), aware) are programmed onto ``N`` independently drawn chips, each simulated in full by
crossbar :class:`~xbarsim.hardware.tile.Tile` layers: the configured mapping, tiling,
parasitics, solver, converters, device precision, a fresh process-variation draw per chip
(chip ``k`` has ``hardware.variation.chip_seed + k``) and, optionally, programming noise.
ADC ranges are calibrated on training batches, never on the test set, exactly as
evaluate-only runs do (:func:`xbarsim.runner._calibrate_adcs`); then each chip is evaluated on
the test set.

Which configuration describes what:

* the **model and data** (architecture, dataset, sample counts, input standardisation) come
  from the deployed file, so the weights meet the network and inputs they were trained with;
* the **hardware** (the chips) comes from the deployment configuration;
* ``overrides`` (``--set``) apply to that combination, e.g. ``data.n_test=1000`` or
  ``hardware.crossbar.r_source=500.0``.

The weight scale ``W_s`` of each layer (``alpha = (g_max - g_min) / W_s``) is the one stored in
the file when it has one (crossbar and aware runs: the mapping the weights were trained for),
else ``headroom * max |W|`` as for any freshly programmed tile (software runs, or
``rescale=True``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xbarsim.config import HardwareConfig, config_to_dict, dump_config, load_config

__all__ = ["DeployResult", "deploy", "read_source"]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]


@dataclass
class DeployResult:
    """Outcome of :func:`deploy`.

    Attributes
    ----------
    accuracies : ndarray of shape (n_chips,)
        Test accuracy of each chip.
    chip_seeds : ndarray of shape (n_chips,), int64
        Seed of each chip.
    ideal_acc : float
        Test accuracy of the digital weights (no hardware).
    source_mode : str
        ``train.mode`` of the deployed run ("software", "crossbar", "aware").
    seconds : ndarray of shape (n_chips,)
        Wall time per chip (model build, programming, ADC calibration, test) [s].
    config_yaml : str
        The resolved deployment configuration (first chip's seed).
    out, plot : Path or None
        Files written.
    """

    accuracies: FloatArray
    chip_seeds: NDArray[np.int64]
    ideal_acc: float
    source_mode: str
    seconds: FloatArray
    config_yaml: str
    out: Path | None = None
    plot: Path | None = None
    calibration_batches: list[int] = field(default_factory=list)

    @property
    def mean(self) -> float:
        """Mean accuracy over the chips."""
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        """Sample standard deviation (ddof 1; 0 for one chip)."""
        n = self.accuracies.size
        return float(np.std(self.accuracies, ddof=1)) if n > 1 else 0.0

    @property
    def worst(self) -> float:
        """Lowest accuracy over the chips."""
        return float(np.min(self.accuracies))

    @property
    def best(self) -> float:
        """Highest accuracy over the chips."""
        return float(np.max(self.accuracies))


@dataclass
class _Source:
    state: dict[str, FloatArray]
    normalization: dict[str, FloatArray]
    config: dict[str, Any]
    mode: str
    w_scales: dict[str, float]


def read_source(path: str | Path) -> _Source:
    """Weights, normalisation, configuration and weight scales of a run file or checkpoint.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, not a run or checkpoint file, or no stored configuration.
    """
    import yaml

    from xbarsim.io import hdf5

    path = Path(path)
    state, norm = hdf5.read_weights(path)
    w_scales: dict[str, float] = {}
    try:
        run = hdf5.read_run(path)
    except ValueError:            # a checkpoint
        tree, attrs = hdf5.read_checkpoint(path)
        for name, tstate in tree.get("tiles", {}).items():
            if "w_scale" in tstate:
                w_scales[name] = float(tstate["w_scale"])
    else:
        attrs = run["attrs"]
        for name, datasets in run["layers"].items():
            if "w_scale" in datasets:
                w_scales[name] = float(datasets["w_scale"])
    text = attrs.get("config_yaml")
    if not text:
        raise ValueError(f"{path}: has no stored configuration (config_yaml); was it written "
                         "by xbarsim run?")
    config = yaml.safe_load(text)
    if not isinstance(config, dict):
        raise ValueError(f"{path}: the stored configuration is not a mapping")
    mode = str(attrs.get("mode") or config.get("train", {}).get("mode", "software"))
    return _Source(state, dict(norm), config, mode, w_scales)


def _deployment_config(source: _Source, hardware: HardwareConfig,
                       overrides: Sequence[str]) -> dict[str, Any]:
    """Raw config dict: the source's model and data, the given hardware, then ``overrides``."""
    raw = dict(source.config)
    raw["hardware"] = config_to_dict(hardware)
    train = dict(raw.get("train") or {})
    train.update({"mode": "crossbar", "evaluate_only": False, "weights": None})
    raw["train"] = train
    cfg = load_config(raw, list(overrides))       # validates; overrides applied once here
    return config_to_dict(cfg)


def _program_with_noise(tiles: dict[str, Any], sigma: float, chip_seed: int) -> None:
    """Reprogram every tile's masters with Gaussian programming error (std ``sigma * R``).

    The error is added to each target conductance (``R = g_max - g_min``) and clipped to the
    range before the device's own programming (level rounding, the chip's process variation);
    drawn from the named stream ``program/<layer>`` of the chip seed.
    """
    from xbarsim.rng import stream

    for name, tile in tiles.items():
        rng = stream(chip_seed, f"program/{name}")
        w = tile.get_weights()
        span = tile.g_max - tile.g_min
        for blk in tile.blocks:
            b = blk.block
            targets = tile.mapping.to_conductance(w[b.rows, b.cols], tile.w_scale)
            for a, xbar in enumerate(blk.masters):
                noisy = targets[a] + sigma * span * rng.standard_normal(targets[a].shape)
                xbar.program(np.clip(noisy, tile.g_min, tile.g_max))
            blk.slices_stale = True


def deploy(source_path: str | Path, hardware: HardwareConfig, *, chips: int = 10,
           overrides: Sequence[str] = (), out: str | Path | None = None,
           plot_dir: str | Path | None = None, force: bool = False,
           sigma_program: float = 0.0, rescale: bool = False,
           data_dir: str | Path | None = None,
           on_chip: Callable[[int, int, float], None] | None = None) -> DeployResult:
    """Program saved weights onto ``chips`` simulated chips and evaluate each on the test set.

    Parameters
    ----------
    source_path : path-like
        Run file or checkpoint written by ``xbarsim run`` (any ``train.mode``).
    hardware : HardwareConfig
        The chips (``variation.chip_seed`` is the first chip's seed; chip ``k`` uses
        ``chip_seed + k``).
    chips : int
        Number of chips, >= 1.
    overrides : sequence of str
        ``"a.b=value"`` items applied to the deployment configuration (module notes).
    out : path-like, optional
        Deployment file (layout in :mod:`xbarsim.io.hdf5`).
    plot_dir : path-like, optional
        Write ``<out or source stem>_deploy.png``, a histogram of the accuracies.
    force : bool
        Overwrite an existing ``out`` / figure.
    sigma_program : float
        Programming error, standard deviation relative to ``g_max - g_min``, >= 0.
    rescale : bool
        Derive every layer's weight scale from the weights (``headroom * max|W|``) even when
        the file stores one.
    data_dir : path-like, optional
        Dataset folder searched after ``data.data_dir``.
    on_chip : callable, optional
        ``on_chip(k, n_chips, accuracy)`` after each chip (progress output).

    Returns
    -------
    DeployResult

    Raises
    ------
    FileNotFoundError, FileExistsError, ValueError, ConfigError
        Missing source, existing output without ``force``, a file that does not fit the
        configured model, bad arguments.
    """
    from xbarsim import runner
    from xbarsim.train import checkpoint, evaluate

    if isinstance(chips, bool) or not isinstance(chips, (int, np.integer)) or chips < 1:
        raise ValueError(f"chips: expected an integer >= 1, got {chips!r}")
    if not (sigma_program >= 0.0 and math.isfinite(sigma_program)):
        raise ValueError(f"sigma_program: expected a finite value >= 0, got {sigma_program!r}")
    source_path = Path(source_path)
    out_path = Path(out) if out is not None else None
    plot_path = None
    if plot_dir is not None:
        from xbarsim import plot

        plot.require_matplotlib()
        stem = (out_path or source_path).stem
        plot_path = Path(plot_dir) / f"{stem}_deploy.png"
    for path, what in ((out_path, "out"), (plot_path, "plot")):
        if path is None:
            continue
        if path.is_dir():
            raise IsADirectoryError(f"{what} {path}: is a directory, expected a file name")
        if not path.parent.is_dir():
            raise FileNotFoundError(f"{what} {path}: directory {path.parent} does not exist")
        if path.exists() and not force:
            raise FileExistsError(f"{what} {path}: file exists; use --force to overwrite it")

    source = read_source(source_path)
    raw = _deployment_config(source, hardware, overrides)
    base_cfg = load_config(raw)
    first_seed = base_cfg.hardware.variation.chip_seed
    data = runner.load_data(base_cfg, data_dir, normalization=source.normalization or None)
    input_shape, n_classes = data.x_train.shape[1:], data.n_classes
    eval_bs = max(base_cfg.train.batch_size, 1000)

    ideal_model, _ = runner.build_model(base_cfg, input_shape, n_classes, hardware=False)
    runner._load_weights(ideal_model, source.state, str(source_path))
    ideal_acc = evaluate(ideal_model, data.x_test, data.y_test, batch_size=eval_bs)
    del ideal_model

    seeds = np.arange(first_seed, first_seed + chips, dtype=np.int64)
    accs = np.empty(chips)
    seconds = np.empty(chips)
    n_cal: list[int] = []
    for k, seed in enumerate(seeds):
        t0 = time.perf_counter()
        raw["hardware"]["variation"]["chip_seed"] = int(seed)
        cfg = load_config(raw)
        model, _ = runner.build_model(cfg, input_shape, n_classes, hardware=True)
        runner._load_weights(model, source.state, str(source_path))
        tiles = checkpoint.hardware_layers(model)
        for name, tile in tiles.items():
            if not rescale and name in source.w_scales:
                # the mapping the weights were trained for (crossbar / aware runs)
                tile.w_scale = source.w_scales[name]
                tile.set_weights(source.state[f"{name}.weight"], rescale=False)
        if sigma_program > 0:
            _program_with_noise(tiles, sigma_program, int(seed))
        n_cal.append(runner._calibrate_adcs(model, cfg, data.x_train))
        accs[k] = evaluate(model, data.x_test, data.y_test, batch_size=eval_bs)
        seconds[k] = time.perf_counter() - t0
        logger.info("chip %d/%d (seed %d): test acc %.4f (%.1f s)", k + 1, chips, seed,
                    accs[k], seconds[k])
        if on_chip is not None:
            on_chip(k, chips, float(accs[k]))
        del model, tiles

    raw["hardware"]["variation"]["chip_seed"] = int(first_seed)
    result = DeployResult(accuracies=accs, chip_seeds=seeds, ideal_acc=float(ideal_acc),
                          source_mode=source.mode, seconds=seconds,
                          config_yaml=dump_config(load_config(raw)),
                          calibration_batches=n_cal)
    if out_path is not None:
        from xbarsim.io import hdf5

        hdf5.write_deployment(out_path, attrs={
            "config_yaml": result.config_yaml, "source": str(source_path),
            "source_mode": result.source_mode, "n_chips": chips,
            "first_chip_seed": int(first_seed), "sigma_program": float(sigma_program),
            "rescale": bool(rescale), "ideal_acc": result.ideal_acc, "mean_acc": result.mean,
            "std_acc": result.std, "worst_acc": result.worst, "best_acc": result.best,
            "seconds": float(seconds.sum())},
            datasets={"chip_seed": (seeds, "1"), "test_acc": (accs, "1"),
                      "seconds": (seconds, "s")}, force=force)
        result.out = out_path
    if plot_path is not None:
        from xbarsim import plot

        result.plot = plot.deployment_histogram(
            accs, plot_path, ideal=result.ideal_acc,
            title=f"{source_path.name} ({source.mode}) on {chips} chips")
    return result
