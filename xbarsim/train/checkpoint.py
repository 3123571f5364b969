"""Training checkpoints as plain nested dicts of arrays (file I/O lives in ``xbarsim.io.hdf5``).

A checkpoint holds everything that the rest of a run depends on, so that a resumed run gives
the same numbers as an uninterrupted one:

* ``model``: :meth:`~xbarsim.nn.base.Layer.state_dict` (weights, biases, batch-norm buffers);
* ``tiles``: per hardware layer, the backend's own ``state_dict()`` (exact conductances, weight
  scale, ADC ranges and calibration counters, which decide when a range freezes, and the key
  and step counter of the counter-based write noise);
* ``optimizer``: learning rate and momentum buffers (:meth:`xbarsim.nn.optim.SGD.state_dict`);
* ``history``: the per-epoch metrics so far;
* ``solver``: cumulative solver statistics per hardware layer;
* ``attrs``: ``epoch`` (completed epochs; the learning-rate schedule is a function of the
  epoch, so this is the schedule position) and ``rng_states``, the
  ``Generator.bit_generator.state`` of every named stream as JSON.

Limits of exact resumption: an iterative solver's warm start (FCM) and the interpolated
solver's reference point are not saved; after a resume they restart cold, which changes
``g_eff`` at the level of the solver tolerance (``hardware.solver.rtol``), and the
interpolated solver refreshes at once. The stateless solvers (``ideal``, ``nodal``, ``aam``)
and software mode resume bit for bit.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xbarsim.nn.base import BackendParameter, Layer
from xbarsim.nn.optim import SGD
from xbarsim.train.trainer import History

__all__ = ["capture", "hardware_layers", "restore", "history_arrays", "history_from_arrays"]

logger = logging.getLogger(__name__)

_WEIGHT_SUFFIX = ".weight"


def hardware_layers(model: Layer) -> dict[str, Any]:
    """Weight backends of ``model`` that carry their own state (crossbar tiles), by layer name.

    A backend counts as hardware when it has ``state_dict`` and ``load_state_dict``
    (:class:`~xbarsim.hardware.tile.Tile`); :class:`~xbarsim.nn.base.DigitalWeights` does not.

    Returns
    -------
    dict
        ``{"fc1": tile, "conv2": tile, ...}`` in model order; empty in software mode.
    """
    out: dict[str, Any] = {}
    for key, p in model.named_parameters():
        if isinstance(p, BackendParameter) and hasattr(p.backend, "state_dict") \
                and hasattr(p.backend, "load_state_dict"):
            name = key[:-len(_WEIGHT_SUFFIX)] if key.endswith(_WEIGHT_SUFFIX) else key
            out[name] = p.backend
    return out


def history_arrays(history: History, extra: Mapping[str, list[float]] | None = None
                   ) -> dict[str, NDArray[np.float64]]:
    """Return the history (and extra per-epoch metrics) as float64 arrays."""
    out = {k: np.asarray(v, dtype=np.float64) for k, v in history.as_dict().items()}
    for k, v in (extra or {}).items():
        out[k] = np.asarray(v, dtype=np.float64)
    return out


def history_from_arrays(arrays: Mapping[str, NDArray[np.float64]]
                        ) -> tuple[History, dict[str, list[float]]]:
    """Inverse of :func:`history_arrays`: a :class:`History` and the extra metrics.

    Metrics that the arrays lack (files written before the metric existed) are NaN.
    """
    h = History()
    extra: dict[str, list[float]] = {}
    for k, v in arrays.items():
        values = [float(x) for x in np.asarray(v).reshape(-1)]
        if hasattr(h, k):
            setattr(h, k, [int(x) for x in values] if k == "epoch" else values)
        else:
            extra[k] = values
    for k, values in h.as_dict().items():
        if not values and h.epoch:
            setattr(h, k, [float("nan")] * len(h.epoch))
    return h, extra


def capture(model: Layer, optimizer: SGD | None, *, epoch: int, history: History,
            rngs: Mapping[str, np.random.Generator],
            extra_history: Mapping[str, list[float]] | None = None,
            solver_offsets: Mapping[str, Mapping[str, float]] | None = None,
            attrs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Snapshot the complete training state after ``epoch`` completed epochs.

    Parameters
    ----------
    model : Layer
        The model (its hardware layers are found with :func:`hardware_layers`).
    optimizer : SGD or None
        Its learning rate and momentum buffers are saved.
    epoch : int
        Completed epochs.
    history : History
        Metrics of the completed epochs.
    rngs : mapping of str to numpy.random.Generator
        Every stream the rest of the run draws from (data shuffling, tile noise, ...).
    extra_history : mapping, optional
        Extra per-epoch metrics (e.g. ``val_acc``).
    solver_offsets : mapping, optional
        Solver statistics accumulated before this process (resumed runs); added to the tiles'.
    attrs : mapping, optional
        More scalar attributes (config YAML, seed, ...).

    Returns
    -------
    dict
        ``{"attrs": {...}, "model": {...}, "tiles": {...}, "optimizer": {...},
        "history": {...}, "solver": {...}}``; all arrays are copies.
    """
    tiles: dict[str, Any] = {}
    solver: dict[str, dict[str, float]] = {}
    for name, tile in hardware_layers(model).items():
        tiles[name] = {k: np.array(v, copy=True) for k, v in tile.state_dict().items()}
        solver[name] = total_solver_stats(tile, (solver_offsets or {}).get(name))
    opt: dict[str, Any] = {}
    if optimizer is not None:
        ost = optimizer.state_dict()
        opt = {"lr": np.float64(ost["lr"]),
               "velocity": {str(i): v for i, v in ost["velocity"].items()}}  # type: ignore[union-attr]
    rng_states = {name: g.bit_generator.state for name, g in rngs.items()}
    return {
        "attrs": {**(attrs or {}), "epoch": int(epoch), "rng_states": json.dumps(rng_states)},
        "model": model.state_dict(),
        "tiles": tiles,
        "optimizer": opt,
        "history": history_arrays(history, extra_history),
        "solver": {k: {s: np.float64(v) for s, v in d.items()} for k, d in solver.items()},
    }


def total_solver_stats(tile: Any, offset: Mapping[str, float] | None = None) -> dict[str, float]:
    """``tile.solver_stats()`` plus the totals of earlier processes (``max_iter``: maximum)."""
    stats = {k: float(v) for k, v in tile.solver_stats().items()}
    for k, v in (offset or {}).items():
        v = float(v)
        stats[k] = max(stats.get(k, 0.0), v) if k == "max_iter" else stats.get(k, 0.0) + v
    return stats


def _restore_optimizer(ost: Mapping[str, Any] | None, optimizer: SGD) -> None:
    """Load the optimizer state of a checkpoint; refuse an incomplete one."""
    if not ost or "lr" not in ost:
        raise ValueError("checkpoint has no optimizer state (group /optimizer with lr and "
                         "velocity): resuming would silently restart the momentum; it was not "
                         "written by xbarsim run, or is damaged")
    velocity = dict(ost.get("velocity", {}))
    if optimizer.momentum > 0 and len(velocity) != len(optimizer.params):
        raise ValueError(f"checkpoint has momentum buffers for {len(velocity)} of the "
                         f"{len(optimizer.params)} parameters (group /optimizer/velocity): "
                         "resuming would silently restart the momentum; it is damaged or was "
                         "written with train.momentum = 0")
    optimizer.load_state_dict({"lr": float(ost["lr"]), "velocity": velocity})


def restore(state: Mapping[str, Any], model: Layer, optimizer: SGD | None, *,
            rngs: Mapping[str, np.random.Generator]
            ) -> tuple[int, History, dict[str, list[float]], dict[str, dict[str, float]]]:
    """Load a :func:`capture` snapshot into a freshly built model, optimizer and streams.

    The model must have been built from the same configuration. Digital parameters are
    loaded from ``model``; hardware layers get their exact state (conductances, weight scale,
    ADC ranges and calibration counts) through their own ``load_state_dict``, not by
    re-programming.

    Returns
    -------
    epoch : int
        Completed epochs.
    history : History
        Metrics so far.
    extra_history : dict
        Extra metrics so far.
    solver_offsets : dict
        Solver statistics accumulated so far, per hardware layer.

    Raises
    ------
    ValueError
        The snapshot does not fit the model (missing or unexpected keys, shapes), lacks a
        random stream, or lacks the optimizer state (or, with momentum, a momentum buffer of
        every parameter) while an ``optimizer`` is given.
    """
    hw = hardware_layers(model)
    weights_on_hw = {f"{name}{_WEIGHT_SUFFIX}" for name in hw}
    digital = {k: v for k, v in state["model"].items() if k not in weights_on_hw}
    expected = set(model.state_dict())
    missing = sorted(expected - set(state["model"]))
    unexpected = sorted(set(state["model"]) - expected)
    if missing or unexpected:
        raise ValueError(f"checkpoint does not fit the model: missing {missing}, unexpected "
                         f"{unexpected}; was it written with another model configuration?")
    try:
        model.load_state_dict(digital, strict=False)
    except ValueError as exc:
        raise ValueError(f"checkpoint does not fit the model: {exc}; was it written with "
                         "another model configuration?") from None
    tiles = state.get("tiles", {})
    for name, tile in hw.items():
        if name not in tiles:
            raise ValueError(f"checkpoint has no hardware state for layer {name!r}; it was "
                             "written in software mode")
        tile.load_state_dict(dict(tiles[name]))
    if optimizer is not None:
        _restore_optimizer(state.get("optimizer"), optimizer)
    saved = json.loads(state["attrs"]["rng_states"])
    for name, g in rngs.items():
        if name not in saved:
            raise ValueError(f"checkpoint has no state for random stream {name!r}")
        g.bit_generator.state = saved[name]
    history, extra = history_from_arrays(state.get("history", {}))
    solver = {k: {s: float(v) for s, v in d.items()} for k, d in state.get("solver", {}).items()}
    return int(state["attrs"]["epoch"]), history, extra, solver
