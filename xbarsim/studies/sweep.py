"""Sweeps: many runs of one base configuration, resumable, on local processes or a Dask cluster.

A sweep file (YAML) names a base run configuration and the values to vary::

    description: write noise gamma on LeNet-5 Cross-NI    # optional, shown in reports
    base: ../lenet.yaml        # a run config, relative to this file; or an inline mapping
    set:                       # optional overrides of the base for every point
      train.epochs: 10
    grid:                      # axes over dotted keys, all combinations (product)
      hardware.device.gamma: [1.0, 5.0, 10.0]
    zip:                       # axes advanced together (equal lengths)
      hardware.crossbar.n_rows: [32, 64]
      hardware.crossbar.n_cols: [32, 64]
    points:                    # an explicit list of points (each a mapping of dotted keys)
      - {label: Cross-Ideal, preset: cross_ideal}
    seeds: [0, 1, 2]           # every point runs once per seed
    out: sweeps/gamma          # default output folder (relative to the working directory)

``points``, ``zip`` and ``grid`` combine as a product in that order (an absent part is left
out; none at all is one point, the base). Every (point, seed) is one *run*: a full
:func:`xbarsim.runner.run` writing its own run file ``<out>/runs/<point id>.h5``.

Identity
--------
The *point id* of a run is a short hash of its resolved configuration (presets expanded,
defaults filled; seed included; ``output``, ``data.data_dir``, ``data.download`` and
``train.checkpoint_every_epoch`` left out, since they do not change the numbers). Editing
unrelated parts of the sweep file, reordering points or adding seeds therefore keeps the ids
of unchanged runs, and their finished run files are reused. The *config id* is the same hash
without the seed: the runs of one point over its seeds share it.

Resuming and failures
---------------------
A run whose file has a final status (``completed``, ``completed_with_warnings``,
``diverged``, ``evaluated``, ``evaluated_with_warnings``) is skipped on a rerun. A run that
raised is recorded as ``failed`` with its error (``<point id>.json`` beside its run file) and
does not stop the others; a rerun retries it. A run interrupted mid-training
(Ctrl-C, a killed worker) keeps the checkpoint of its last completed epoch and continues from
there on the rerun (the same numbers as an uninterrupted run, see :mod:`xbarsim.runner`).

Outputs
-------
``<out>/results.csv`` and ``<out>/results.h5`` (one row per run; columns in
:data:`TABLE_COLUMNS` plus one per swept key) are rewritten atomically after every finished
run; ``<out>/sweep.json`` lists the runs of the last invocation (what ``xbarsim report`` reads).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import itertools
import json
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import tempfile
import time
import traceback
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from xbarsim.config import RunConfig, config_to_dict, load_config
from xbarsim.config.loader import parse_override
from xbarsim.errors import ConfigError

__all__ = ["FINAL_STATUSES", "RunState", "Sweep", "SweepInterrupted", "SweepRun",
           "SweepSummary", "TABLE_COLUMNS", "THREAD_ENV_VARS", "collect_rows", "core_count",
           "execute_run", "format_value", "load_sweep", "read_manifest", "read_state",
           "run_sweep", "short_keys", "write_results"]

logger = logging.getLogger(__name__)

SWEEP_KEYS = ("description", "base", "set", "grid", "zip", "points", "seeds", "out")
"""Top-level keys of a sweep file."""

LABEL_KEY = "label"
"""Key of a ``points`` entry naming the point (not a config key)."""

FINAL_STATUSES = ("completed", "completed_with_warnings", "diverged", "evaluated",
                  "evaluated_with_warnings")
"""Run-file statuses of a finished run (skipped on a rerun)."""

# config keys that do not change a run's numbers, left out of its identity
_IDENTITY_EXCLUDED = (("output",), ("data", "data_dir"), ("data", "download"),
                      ("train", "checkpoint_every_epoch"))

ID_LENGTH = 10
"""Hex digits of a point or config id (40 bits)."""

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                   "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS")
"""Thread counts set in every local worker's environment before NumPy and Numba load."""

TABLE_COLUMNS = ("point_id", "config_id", "point", "label", "seed", "status",
                 "final_test_acc", "best_test_acc", "best_epoch", "final_train_loss",
                 "epochs_done", "wall_time_s", "elapsed_s", "error", "run_file")
"""Columns of the results table; the swept keys follow ``seed``.

point_id : the run's id (file ``runs/<point_id>.h5``); config_id : the point's id without the
seed; point : 1-based index of the point in the sweep; label : the point's ``label`` or "";
seed : master seed; status : a final status of the run file (completed,
completed_with_warnings, diverged, evaluated, evaluated_with_warnings) | failed | partial
(interrupted, resumable) | pending; final_test_acc : test accuracy of the stored weights (the
last completed epoch), a fraction; best_test_acc, best_epoch : the highest test accuracy over
the epochs and its 1-based epoch; final_train_loss : mean training loss of the last completed epoch;
epochs_done : completed epochs; wall_time_s : training and test-evaluation time of the epochs
[s] (summed over resumptions); elapsed_s : wall time of the run's last execution including
start-up and data loading [s]; error : why a run failed or diverged; run_file : path relative
to the sweep folder.
"""

_METRIC_COLUMNS = ("final_test_acc", "best_test_acc", "best_epoch", "final_train_loss",
                   "epochs_done", "wall_time_s", "elapsed_s")


# ---------------------------------------------------------------------------------------------
# the sweep file


@dataclass(frozen=True, eq=False)
class SweepRun:
    """One run of a sweep: one point of the axes with one seed.

    Attributes
    ----------
    index : int
        1-based position in the sweep (points outer, seeds inner).
    point_id : str
        Hash of the resolved configuration including the seed; the run file is
        ``runs/<point_id>.h5``.
    config_id : str
        The same hash without the seed (shared by the seeds of one point).
    point : int
        1-based index of the point.
    seed : int
        Master seed of the run.
    label : str
        The point's ``label`` ("" when none is given).
    values : dict
        Swept key -> value of this point, for every swept key (keys a point does not set
        hold the resolved value; a ``preset`` key a point does not set holds "").
    config : RunConfig
        The resolved configuration (its ``output`` section is set by :func:`run_sweep`).
    """

    index: int
    point_id: str
    config_id: str
    point: int
    seed: int
    label: str
    values: dict[str, Any]
    config: RunConfig

    def record(self) -> dict[str, Any]:
        """Return the JSON-able description stored in ``sweep.json``."""
        return {"index": self.index, "point_id": self.point_id, "config_id": self.config_id,
                "point": self.point, "seed": self.seed, "label": self.label,
                "values": self.values}


@dataclass(frozen=True, eq=False)
class Sweep:
    """A validated sweep file (:func:`load_sweep`).

    Attributes
    ----------
    source : str or None
        The sweep file.
    description : str
        Its ``description`` ("" when absent).
    keys : tuple of str
        Swept dotted keys, in order of first appearance (points, zip, grid).
    seeds : tuple of int
        Seeds of every point (the resolved base seed when ``seeds`` is absent).
    runs : tuple of SweepRun
        Every run, points outer, seeds inner.
    out : str or None
        The file's ``out`` (default output folder).
    n_points : int
        Number of points (runs = points x seeds).
    """

    source: str | None
    description: str
    keys: tuple[str, ...]
    seeds: tuple[int, ...]
    runs: tuple[SweepRun, ...]
    out: str | None
    n_points: int


def _dump_flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=2**31 - 1, sort_keys=False)
    if text.endswith("\n...\n"):    # a scalar document
        text = text[:-5]
    return text.strip()


def _quoted(text: str) -> str:
    """Quote ``text`` as a YAML double-quoted scalar: printable ASCII kept, the rest escaped."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def _escaped_flow(value: Any) -> str:
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_escaped_flow(k)}: {_escaped_flow(v)}"
                               for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_escaped_flow(v) for v in value) + "]"
    return _dump_flow(value)


def _inline_yaml(value: Any) -> str:
    """``value`` as one line of YAML that ``yaml.safe_load`` reads back as ``value``.

    PyYAML's flow style where it fits on one line (plain scalars stay readable); strings
    holding line breaks or other non-printable characters are written double-quoted with
    escapes instead.
    """
    text = _dump_flow(value)
    if "\n" in text or "\r" in text:
        text = _escaped_flow(value)
    return text


def format_value(value: Any) -> str:
    """Short text of a swept value for tables and legends (YAML spelling: null, true, 1.0e-06)."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value
    return _inline_yaml(value)


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Shortest unique dotted suffix of every key (``hardware.device.nl`` -> ``nl``)."""
    out: dict[str, str] = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            cand = ".".join(parts[-n:])
            if sum(1 for k in keys if k == cand or k.endswith("." + cand)) == 1:
                out[key] = cand
                break
        else:
            out[key] = key
    return out


def _get_dotted(tree: Mapping[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _identity(cfg: RunConfig, *, with_seed: bool) -> str:
    tree = config_to_dict(cfg)
    for path in _IDENTITY_EXCLUDED:
        node = tree
        for part in path[:-1]:
            node = node[part]
        node.pop(path[-1], None)
    if not with_seed:
        tree.pop("seed")
    # canonical JSON (sorted keys, Python's shortest float repr): the same text on every
    # machine, with or without libyaml, and ~50x faster than a YAML dump
    text = json.dumps(tree, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:ID_LENGTH]


def _read_yaml_file(path: Path, errors: list[str], what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        errors.append(f"{what}: cannot read {path}: {exc.strerror or exc}")
        return None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        errors.append(f"{what}: YAML syntax error in {path} at {where}{problem}")
        return None


def _unknown(where: str, key: Any, valid: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(str(key), list(valid), n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(valid)}"
    return f"{where}{key}: unknown key; {hint}"


def _as_overrides(raw: Any, where: str, errors: list[str]) -> list[tuple[str, Any]]:
    """``set:`` as (dotted key, value) pairs: a mapping, or a list of ``KEY=VALUE`` strings."""
    if raw is None:
        return []
    if isinstance(raw, Mapping):
        return [(str(k), v) for k, v in raw.items()]
    if isinstance(raw, list):
        pairs = []
        for item in raw:
            if not isinstance(item, str):
                errors.append(f"{where}: expected KEY=VALUE strings, got {item!r}")
                continue
            try:
                parts, value = parse_override(item)
            except ConfigError as exc:
                errors.extend(f"{where}: {m}" for m in exc.errors)
                continue
            pairs.append((".".join(parts), value))
        return pairs
    errors.append(f"{where}: expected a mapping of dotted keys to values (or a list of "
                  f"KEY=VALUE strings), got {raw!r}")
    return []


def _axis_values(key: str, values: Any, where: str, errors: list[str]) -> list[Any] | None:
    if not isinstance(values, list) or not values:
        errors.append(f"{where}.{key}: expected a non-empty list of values, got {values!r}")
        return None
    return values


def _check_key(base: Mapping[str, Any], key: str, value: Any, where: str) -> list[str]:
    """Problems of the dotted key itself (unknown key, a value where a section is expected)."""
    if key == "seed":
        return [f"{where}: 'seed' cannot be swept here; list the seeds under `seeds:`"]
    text = f"{key}={_inline_yaml(value)}"
    prefix = f"--set {text!r}: "
    try:
        load_config(base, [text])
    except ConfigError as exc:
        return [f"{where}: {m[len(prefix):]}" for m in exc.errors if m.startswith(prefix)]
    return []


def load_sweep(source: str | os.PathLike[str], overrides: Sequence[str] = (), *,
               seeds: Sequence[int] | None = None) -> Sweep:
    """Read and validate a sweep file; resolve and validate the configuration of every run.

    Parameters
    ----------
    source : path-like
        The sweep file (format in the module docstring).
    overrides : sequence of str
        ``KEY=VALUE`` overrides of the base for every point (the CLI's ``--set``), applied
        after the file's ``set:``; a swept key cannot be overridden.
    seeds : sequence of int, optional
        Seeds replacing the file's ``seeds``.

    Returns
    -------
    Sweep

    Raises
    ------
    ConfigError
        Every problem found, each naming its place: a sweep-file key, an axis key (with a
        "did you mean"), or a point with its values and the dotted config key at fault.
        Nothing is run before the whole sweep is valid.
    """
    path = Path(source)
    label = os.fspath(source)
    errors: list[str] = []
    raw = _read_yaml_file(path, errors, "sweep file")
    if errors:
        raise ConfigError(errors, source=label)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError([f"top level: expected a mapping with keys {', '.join(SWEEP_KEYS)}, "
                           f"got {type(raw).__name__}"], source=label)
    errors += [_unknown("", k, SWEEP_KEYS) for k in raw if k not in SWEEP_KEYS]

    # the base configuration, as a raw mapping (presets are expanded per run by load_config)
    base_spec = raw.get("base")
    base: Any = {}
    if isinstance(base_spec, str):
        base_path = Path(base_spec)
        if not base_path.is_absolute():
            base_path = path.parent / base_path
        base = _read_yaml_file(base_path, errors, "base")
        if base is None:
            base = {}
    elif isinstance(base_spec, Mapping):
        base = dict(base_spec)
    elif base_spec is not None:
        errors.append(f"base: expected a config file (path relative to the sweep file) or an "
                      f"inline mapping, got {base_spec!r}")
    if not isinstance(base, Mapping):
        errors.append(f"base: the config must be a mapping of sections, got "
                      f"{type(base).__name__}")
        base = {}

    description = raw.get("description") or ""
    if not isinstance(description, str):
        errors.append(f"description: expected a string, got {description!r}")
        description = str(description)
    out = raw.get("out")
    if out is not None and not isinstance(out, str):
        errors.append(f"out: expected a folder path, got {out!r}")
        out = None

    fixed = _as_overrides(raw.get("set"), "set", errors)
    cli_fixed = _as_overrides(list(overrides), "--set", errors)

    # axes -> parts of the product, each a list of (label, {key: value})
    parts: list[list[tuple[str, dict[str, Any]]]] = []
    owner: dict[str, str] = {}       # swept key -> the part that sweeps it

    def claim(key: str, where: str) -> None:
        if key in owner and owner[key] != where:
            errors.append(f"{where}: {key} is also swept in {owner[key]}; sweep each key in "
                          f"one place")
        owner.setdefault(key, where)

    points_raw = raw.get("points")
    if points_raw is not None:
        if not isinstance(points_raw, list) or not points_raw:
            errors.append(f"points: expected a non-empty list of mappings, got {points_raw!r}")
        else:
            entries = []
            for i, entry in enumerate(points_raw, 1):
                if not isinstance(entry, Mapping):
                    errors.append(f"points[{i}]: expected a mapping of dotted keys to values, "
                                  f"got {entry!r}")
                    continue
                name = entry.get(LABEL_KEY, "")
                if not isinstance(name, (str, int, float)) or isinstance(name, bool):
                    errors.append(f"points[{i}].label: expected a string, got {name!r}")
                    name = ""
                values = {str(k): v for k, v in entry.items() if k != LABEL_KEY}
                for key in values:
                    claim(key, "points")
                entries.append((str(name), values))
            parts.append(entries)
    zip_raw = raw.get("zip")
    if zip_raw is not None:
        if not isinstance(zip_raw, Mapping) or not zip_raw:
            errors.append(f"zip: expected a mapping of dotted keys to lists, got {zip_raw!r}")
        else:
            axes = {str(k): _axis_values(str(k), v, "zip", errors) for k, v in zip_raw.items()}
            for key in axes:
                claim(key, "zip")
            lengths = {k: len(v) for k, v in axes.items() if v is not None}
            if len(set(lengths.values())) > 1:
                errors.append("zip: the axes advance together and need equal lengths; got "
                              + ", ".join(f"{k}: {n}" for k, n in lengths.items()))
            elif lengths and all(v is not None for v in axes.values()):
                n = next(iter(lengths.values()))
                parts.append([("", {k: v[i] for k, v in axes.items()}) for i in range(n)])
    grid_raw = raw.get("grid")
    if grid_raw is not None:
        if not isinstance(grid_raw, Mapping) or not grid_raw:
            errors.append(f"grid: expected a mapping of dotted keys to lists, got {grid_raw!r}")
        else:
            axes = {str(k): _axis_values(str(k), v, "grid", errors) for k, v in grid_raw.items()}
            for key in axes:
                claim(key, "grid")
            if all(v is not None for v in axes.values()):
                keys = list(axes)
                parts.append([("", dict(zip(keys, combo, strict=True)))
                              for combo in itertools.product(*(axes[k] for k in keys))])

    seed_list: list[int] | None = None
    seeds_raw = list(seeds) if seeds is not None else raw.get("seeds")
    where_seeds = "--seeds" if seeds is not None else "seeds"
    if seeds_raw is not None:
        if not isinstance(seeds_raw, list) or not seeds_raw:
            errors.append(f"{where_seeds}: expected a non-empty list of integers >= 0, got "
                          f"{seeds_raw!r}")
        elif any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds_raw):
            errors.append(f"{where_seeds}: expected integers >= 0, got {seeds_raw!r}")
        elif len(set(seeds_raw)) != len(seeds_raw):
            errors.append(f"{where_seeds}: {seeds_raw!r} lists a seed twice")
        else:
            seed_list = list(seeds_raw)

    # the keys themselves, once each (unknown keys with a suggestion), before any point
    swept = list(owner)
    for key, value in fixed:
        errors += _check_key(base, key, value, f"set: {key}")
    for key, value in cli_fixed:
        errors += _check_key(base, key, value, f"--set {key}")
        if key in owner:
            errors.append(f"--set {key}: the sweep varies this key ({owner[key]}); edit the "
                          f"sweep file instead")
    for part in parts:
        seen: set[str] = set()
        for _, values in part:
            for key, value in values.items():
                if key not in seen:
                    seen.add(key)
                    errors += _check_key(base, key, value, f"{owner[key]}: {key}")
    if errors:
        raise ConfigError(errors, source=label)

    common = [f"{k}={_inline_yaml(v)}" for k, v in [*fixed, *cli_fixed]]
    combos: list[tuple[str, dict[str, Any]]] = [("", {})]
    for part in parts:
        combos = [(" ".join(x for x in (a, b) if x), {**va, **vb})
                  for (a, va), (b, vb) in itertools.product(combos, part)]

    runs: list[SweepRun] = []
    by_config: dict[str, int] = {}
    by_point: dict[str, int] = {}
    base_seed_list = seed_list
    for p, (name, values) in enumerate(combos, 1):
        point_overrides = [f"{k}={_inline_yaml(v)}" for k, v in values.items()]
        desc = ", ".join(f"{k}={format_value(v)}" for k, v in values.items())
        where = f"point {p}" + (f" ({desc})" if desc else "") + (f" [{name}]" if name else "")
        try:
            cfg = load_config(base, [*common, *point_overrides])
        except ConfigError as exc:
            errors += [f"{where}: {m}" for m in exc.errors]
            continue
        config_id = _identity(cfg, with_seed=False)
        if config_id in by_config:
            errors.append(f"{where}: resolves to the same configuration as point "
                          f"{by_config[config_id]} (config id {config_id}); remove one")
            continue
        by_config[config_id] = p
        tree = config_to_dict(cfg)
        full = {k: values.get(k, "" if k.split(".")[-1] == "preset" else _get_dotted(tree, k))
                for k in swept}
        for seed in base_seed_list if base_seed_list is not None else [cfg.seed]:
            run_cfg = dataclasses.replace(cfg, seed=seed)
            point_id = _identity(run_cfg, with_seed=True)
            if point_id in by_point:   # cannot happen unless the hash collides
                errors.append(f"{where}, seed {seed}: point id {point_id} collides with run "
                              f"{by_point[point_id]}")
                continue
            runs.append(SweepRun(index=len(runs) + 1, point_id=point_id, config_id=config_id,
                                 point=p, seed=seed, label=name, values=full, config=run_cfg))
            by_point[point_id] = runs[-1].index
    if errors:
        raise ConfigError(errors, source=label)
    seeds_used = tuple(dict.fromkeys(r.seed for r in runs))
    return Sweep(source=label, description=description, keys=tuple(swept), seeds=seeds_used,
                 runs=tuple(runs), out=out, n_points=len(combos))


# ---------------------------------------------------------------------------------------------
# state on disk


def run_file(out_dir: Path, point_id: str) -> Path:
    """Run file of a run: ``<out_dir>/runs/<point_id>.h5``."""
    return Path(out_dir) / "runs" / f"{point_id}.h5"


def _record_file(out_dir: Path, point_id: str) -> Path:
    return Path(out_dir) / "runs" / f"{point_id}.json"


def _checkpoint_file(out_dir: Path, point_id: str) -> Path:
    return Path(out_dir) / "runs" / f"{point_id}.ckpt.h5"


@dataclass
class RunState:
    """What the sweep folder holds for one run.

    Attributes
    ----------
    status : str
        completed | diverged | evaluated (final), failed, partial (a run file of an
        unfinished run, status "running"), or pending (nothing yet).
    error : str
        Error of a failed run, divergence message of a diverged one.
    summary : dict or None
        ``{"attrs", "history"}`` of the run file (:func:`xbarsim.io.hdf5.read_run_summary`).
    record : dict or None
        The run's ``<point_id>.json``: error, traceback, elapsed time, host, warnings.
    resumable : bool
        A checkpoint exists to continue from.
    """

    status: str
    error: str = ""
    summary: dict[str, Any] | None = None
    record: dict[str, Any] | None = None
    resumable: bool = False

    @property
    def done(self) -> bool:
        """Whether the run is finished (skipped on a rerun)."""
        return self.status in FINAL_STATUSES


def read_state(out_dir: str | os.PathLike[str], point_id: str) -> RunState:
    """Read the state of run ``point_id`` in sweep folder ``out_dir`` (small parts only)."""
    from xbarsim.io import hdf5

    out_dir = Path(out_dir)
    record = None
    rec_path = _record_file(out_dir, point_id)
    if rec_path.is_file():
        try:
            record = json.loads(rec_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = None
    resumable = _checkpoint_file(out_dir, point_id).is_file()
    path = run_file(out_dir, point_id)
    summary = None
    if path.is_file():
        try:
            summary = hdf5.read_run_summary(path)
        except (OSError, ValueError) as exc:
            return RunState("failed", f"unreadable run file: {exc}", None, record, resumable)
        status = str(summary["attrs"].get("status", ""))
        if status in FINAL_STATUSES:
            return RunState(status, str(summary["attrs"].get("message", "") or ""), summary,
                            record, resumable)
    if record is not None and record.get("status") == "failed":
        return RunState("failed", str(record.get("error", "")), summary, record, resumable)
    return RunState("partial" if summary is not None else "pending", "", summary, record,
                    resumable)


def _row(run: Mapping[str, Any], keys: Sequence[str], state: RunState) -> dict[str, Any]:
    """One table row of a run (``run`` as in :meth:`SweepRun.record`)."""
    nan = float("nan")
    row: dict[str, Any] = {"point_id": run["point_id"], "config_id": run["config_id"],
                           "point": int(run["point"]), "label": run.get("label", ""),
                           "seed": int(run["seed"])}
    for key in keys:
        row[key] = run["values"].get(key)
    row["status"] = state.status
    metrics: dict[str, Any] = dict.fromkeys(_METRIC_COLUMNS, nan)
    if state.summary is not None:
        attrs, hist = state.summary["attrs"], state.summary["history"]
        metrics["epochs_done"] = int(attrs.get("epochs_done", 0) or 0)
        test = hist.get("test_acc")
        if state.status.startswith("evaluated"):
            metrics["final_test_acc"] = metrics["best_test_acc"] = float(attrs["test_acc"])
            metrics["wall_time_s"] = float(attrs.get("seconds", nan))
        elif test is not None and len(test):
            metrics["final_test_acc"] = float(attrs.get("test_acc", test[-1]))
            finite = [i for i, a in enumerate(test) if math.isfinite(float(a))]
            if finite:
                best = max(finite, key=lambda i: float(test[i]))
                metrics["best_test_acc"] = float(test[best])
                metrics["best_epoch"] = int(hist["epoch"][best]) if "epoch" in hist else best + 1
            loss = hist.get("train_loss")
            if loss is not None and len(loss):
                metrics["final_train_loss"] = float(loss[-1])
            secs = hist.get("seconds")
            if secs is not None and len(secs):
                metrics["wall_time_s"] = float(sum(float(s) for s in secs))
        else:
            metrics["epochs_done"] = 0
    if state.record is not None and state.record.get("elapsed_s") is not None:
        metrics["elapsed_s"] = float(state.record["elapsed_s"])
    row.update(metrics)
    row["error"] = state.error
    row["run_file"] = f"runs/{run['point_id']}.h5"
    return row


def collect_rows(out_dir: str | os.PathLike[str], runs: Sequence[Mapping[str, Any]],
                 keys: Sequence[str]) -> list[dict[str, Any]]:
    """Build the table rows of ``runs`` (records of ``sweep.json``) from ``out_dir``'s files."""
    return [_row(run, keys, read_state(out_dir, run["point_id"])) for run in runs]


def _column(values: list[Any]) -> list[Any]:
    """Make a table column: all numbers stay numbers, anything else is YAML text (null, true)."""
    def is_num(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if values and all(is_num(v) for v in values):
        if all(isinstance(v, int) or math.isnan(v) for v in values):
            return values     # integers (NaN where missing): CSV "3", HDF5 float64 if any NaN
        return [float(v) for v in values]
    return [v if isinstance(v, str) else _inline_yaml(v) for v in values]


def write_results(out_dir: str | os.PathLike[str], rows: Sequence[Mapping[str, Any]],
                  keys: Sequence[str], *, attrs: Mapping[str, Any] | None = None
                  ) -> tuple[Path, Path]:
    """Write ``results.csv`` and ``results.h5`` atomically (temporary file, then rename).

    Returns
    -------
    (Path, Path)
        The CSV and HDF5 files.
    """
    import csv
    import io

    from xbarsim.io import hdf5

    out_dir = Path(out_dir)
    names = [*TABLE_COLUMNS[:5], *keys, *TABLE_COLUMNS[5:]]
    columns = {name: _column([row.get(name) for row in rows]) for name in names}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(names)
    for i in range(len(rows)):
        cells = []
        for name in names:
            v = columns[name][i]
            cells.append("" if isinstance(v, float) and math.isnan(v) else
                         repr(v) if isinstance(v, float) else v)
        writer.writerow(cells)
    csv_path = out_dir / "results.csv"
    _atomic_text(csv_path, buf.getvalue())
    h5_path = hdf5.write_table(out_dir / "results.h5", columns,
                               attrs={"swept_keys": list(keys) or None, **(attrs or {})},
                               force=True)
    return csv_path, h5_path


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_manifest(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the ``sweep.json`` of a sweep folder.

    Raises
    ------
    FileNotFoundError
        ``out_dir`` is not a sweep folder.
    ValueError
        The manifest is unreadable.
    """
    path = Path(out_dir) / "sweep.json"
    if not path.is_file():
        raise FileNotFoundError(f"{out_dir}: not a sweep folder (no sweep.json); give the "
                                "folder written by xbarsim sweep (its --out)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path}: unreadable ({exc})") from None
    if not isinstance(manifest, dict) or "runs" not in manifest:
        raise ValueError(f"{path}: not a sweep manifest")
    return manifest


# ---------------------------------------------------------------------------------------------
# executing one run (in a worker process or on a Dask worker)


@dataclass(frozen=True)
class _Task:
    point_id: str
    config: RunConfig
    out: str                    # absolute run-file path
    data_dir: str | None
    run_fn: Callable[..., Any] | None = None


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _threads_like_dask_worker() -> None:
    """On a Dask worker, let xbarsim's own threads follow the BLAS limit Dask sets.

    Dask's nanny starts each worker process with ``OMP_NUM_THREADS`` (and the BLAS
    equivalents) set to 1, so that worker processes x threads do not oversubscribe the host;
    xbarsim's thread pool (:func:`xbarsim.hardware.parallel.default_threads`) reads
    ``NUMBA_NUM_THREADS``, which Dask leaves alone. A value set by the user is kept.
    """
    if "NUMBA_NUM_THREADS" in os.environ or "OMP_NUM_THREADS" not in os.environ:
        return
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return
    try:
        distributed.get_worker()
    except ValueError:          # not inside a Dask worker
        return
    os.environ["NUMBA_NUM_THREADS"] = os.environ["OMP_NUM_THREADS"]


def execute_run(task: _Task) -> dict[str, Any]:
    """Run one point (``xbarsim.runner.run``) and return a record of how it ended.

    The run continues from its checkpoint when one exists next to the run file. A worker that
    cannot see the sweep folder (a cluster without a shared file system) runs in a temporary
    folder and returns the run file's bytes in the record (``"file"``) for the client to
    store. Exceptions become ``status: "failed"`` records; KeyboardInterrupt and SystemExit
    propagate.

    Returns
    -------
    dict
        ``status``, ``error``, ``traceback``, ``warnings``, ``elapsed_s``, ``host``, ``pid``,
        ``started_utc``, ``finished_utc`` and, when shipped, ``file`` (bytes).
    """
    _threads_like_dask_worker()
    if task.run_fn is None:
        from xbarsim.runner import run as run_fn
    else:
        run_fn = task.run_fn
    started = _utc_now()
    t0 = time.perf_counter()
    out = Path(task.out)
    ship = not out.parent.is_dir()
    record: dict[str, Any] = {"point_id": task.point_id, "error": "", "traceback": ""}
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="xbarsim-"))) \
            if ship else out.parent
        target = folder / out.name
        resume = (folder / f"{out.stem}.ckpt.h5").is_file()
        caught = stack.enter_context(warnings.catch_warnings(record=True))
        warnings.simplefilter("always")
        try:
            try:
                result = run_fn(task.config, out=target, resume=resume, force=not resume,
                                progress=False, data_dir=task.data_dir)
            except (OSError, ValueError) as exc:
                checkpoint = folder / f"{out.stem}.ckpt.h5"
                if not (resume and str(exc).startswith(str(checkpoint))):
                    raise
                # the checkpoint itself is unusable (unreadable, or from another version of
                # the configuration): start the run over instead of failing on every rerun
                logger.warning("run %s: cannot resume (%s); starting over", task.point_id, exc)
                warnings.warn(f"cannot resume from {checkpoint} ({exc}); started over",
                              stacklevel=1)
                resume = False
                result = run_fn(task.config, out=target, resume=False, force=True,
                                progress=False, data_dir=task.data_dir)
        except Exception as exc:
            record.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                          traceback=traceback.format_exc())
        else:
            record.update(status=result.status, error=result.message or "")
        record["resumed"] = resume
        record["warnings"] = list(dict.fromkeys(str(w.message) for w in caught))
        if ship and target.is_file():
            record["file"] = target.read_bytes()
    record.update(elapsed_s=time.perf_counter() - t0, host=socket.gethostname(),
                  pid=os.getpid(), started_utc=started, finished_utc=_utc_now())
    return record


# ---------------------------------------------------------------------------------------------
# executors


def core_count() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _raise_system_exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _worker_main(conn: multiprocessing.connection.Connection) -> None:
    """Loop of a local worker process: receive a task, run it, send the record back."""
    # Ctrl-C reaches the whole process group: the parent decides and stops workers with
    # SIGTERM, which unwinds the run (temporary files removed, checkpoint kept)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _raise_system_exit)
    from xbarsim.runtime import tune_allocator

    tune_allocator()
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        record = execute_run(task)
        try:
            conn.send(record)
        except OSError:
            return


def _death_message(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        how = f"was killed by {name}"
    else:
        how = f"exited with code {exitcode}"
    return (f"WorkerDied: the worker process running this point {how} (out of memory, "
            f"killed, or a crash in native code); a rerun retries it")


@dataclass
class _Worker:
    process: Any
    conn: multiprocessing.connection.Connection
    task: _Task | None = None


class _LocalExecutor:
    """Worker processes (spawned) that each run one point at a time."""

    def __init__(self, n_workers: int, threads: int) -> None:
        self.n_workers = n_workers
        self.threads = threads
        self.ctx = multiprocessing.get_context("spawn")
        self.pids: set[int] = set()

    def _start(self) -> _Worker:
        parent_conn, child_conn = self.ctx.Pipe(duplex=True)
        process = self.ctx.Process(target=_worker_main, args=(child_conn,), daemon=True,
                                   name="xbarsim-sweep-worker")
        with _environment(dict.fromkeys(THREAD_ENV_VARS, str(self.threads))):
            process.start()
        child_conn.close()
        self.pids.add(process.pid)
        return _Worker(process, parent_conn)

    def run(self, tasks: Sequence[_Task],
            on_result: Callable[[_Task, dict[str, Any]], None]) -> None:
        queue = deque(tasks)
        workers = [self._start() for _ in range(min(self.n_workers, len(queue)))]
        try:
            for w in workers:
                w.task = queue.popleft()
                w.conn.send(w.task)
            while True:
                busy = [w for w in workers if w.task is not None]
                if not busy:
                    break
                handles: list[Any] = [w.conn for w in busy] + [w.process.sentinel for w in busy]
                ready = multiprocessing.connection.wait(handles)
                for w in busy:
                    if w.conn not in ready and w.process.sentinel not in ready:
                        continue
                    record = None
                    try:
                        if w.conn.poll():
                            record = w.conn.recv()
                    except (EOFError, OSError):
                        record = None
                    task = w.task
                    assert task is not None
                    if record is None:
                        w.process.join(timeout=10)
                        if w.process.is_alive():     # readable but nothing came: keep waiting
                            continue
                        record = {"point_id": task.point_id, "status": "failed",
                                  "error": _death_message(w.process.exitcode), "traceback": "",
                                  "warnings": [], "pid": w.process.pid}
                        w.conn.close()
                        workers.remove(w)
                        if queue:
                            w = self._start()
                            workers.append(w)
                    w.task = None
                    on_result(task, record)
                    if queue and w in workers:
                        w.task = queue.popleft()
                        w.conn.send(w.task)
        except BaseException:
            self._shutdown(workers, graceful=False)
            raise
        self._shutdown(workers, graceful=True)

    def _shutdown(self, workers: list[_Worker], *, graceful: bool, wait: float = 20.0) -> None:
        for w in workers:
            if w.task is None or graceful:
                with contextlib.suppress(OSError):
                    w.conn.send(None)
            elif w.process.is_alive():
                w.process.terminate()      # SIGTERM: the run unwinds, checkpoint kept
        deadline = time.monotonic() + wait
        for w in workers:
            w.process.join(timeout=max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                logger.warning("worker %d did not stop within %.0f s; killing it",
                               w.process.pid, wait)
                w.process.kill()
                w.process.join(timeout=5)
            with contextlib.suppress(OSError):
                w.conn.close()


class _DaskExecutor:
    """Points as tasks on an existing Dask distributed cluster."""

    def __init__(self, address: str, timeout: float = 30.0) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise ImportError("--scheduler needs Dask distributed, which is not installed; "
                              "install it with: pip install 'xbarsim[dask]'") from None
        try:
            self.client = Client(address, timeout=timeout)
        except (OSError, TimeoutError) as exc:
            raise OSError(f"--scheduler {address}: cannot connect to the Dask scheduler "
                          f"({exc}); start one with `dask scheduler` and give its address, "
                          "e.g. tcp://host:8786") from None

    def describe(self) -> str:
        """Workers and threads of the cluster."""
        info = self.client.scheduler_info()
        workers = info.get("workers", {})
        threads = sum(int(w.get("nthreads", 0)) for w in workers.values())
        return f"Dask cluster {info.get('address', '?')}: {len(workers)} workers, " \
               f"{threads} threads"

    def run(self, tasks: Sequence[_Task],
            on_result: Callable[[_Task, dict[str, Any]], None]) -> None:
        from distributed import as_completed

        tag = uuid.uuid4().hex[:8]
        futures = {self.client.submit(execute_run, task, key=f"xbarsim-{task.point_id}-{tag}",
                                      pure=False): task for task in tasks}
        try:
            for future in as_completed(list(futures)):
                task = futures[future]
                try:
                    record = future.result()
                except Exception as exc:
                    name = type(exc).__name__
                    error = (f"WorkerDied: {exc} (the Dask workers running this point died; "
                             "a rerun retries it)" if name == "KilledWorker"
                             else f"{name}: {exc}")
                    record = {"point_id": task.point_id, "status": "failed", "error": error,
                              "traceback": "", "warnings": []}
                on_result(task, record)
        except BaseException:
            # tasks already running on a worker cannot be stopped; they finish and write
            # their run file (a rerun then finds them done)
            self.client.cancel(list(futures))
            raise
        finally:
            self.client.close()


# ---------------------------------------------------------------------------------------------
# the sweep driver


@dataclass
class SweepSummary:
    """Outcome of :func:`run_sweep`.

    Attributes
    ----------
    out_dir : Path
        The sweep folder.
    n_runs : int
        Runs in the sweep.
    done_before : int
        Runs already finished when the sweep started (skipped).
    executed : int
        Runs executed by this invocation (a result came back: finished, diverged or failed).
    failed : int
        Runs that failed in this invocation.
    statuses : dict of str to int
        Status -> number of runs, over the whole sweep after this invocation.
    interrupted : bool
        Stopped by Ctrl-C (or SIGTERM in the CLI).
    elapsed_s : float
        Wall time of this invocation [s].
    rows : list of dict
        The results table.
    files : list of Path
        ``results.csv`` and ``results.h5``.
    executor : str
        Where the runs went.
    """

    out_dir: Path
    n_runs: int
    done_before: int
    executed: int = 0
    failed: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    interrupted: bool = False
    elapsed_s: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    executor: str = ""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :func:`run_sweep` cleanly; ``summary`` says what is done."""

    def __init__(self, summary: SweepSummary) -> None:
        super().__init__("sweep interrupted")
        self.summary = summary


@contextlib.contextmanager
def _folder_lock(out_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the sweep folder (two sweeps must not share one)."""
    try:
        import fcntl
    except ImportError:   # not on POSIX: no lock
        yield
        return
    lock_path = out_dir / ".lock"
    fh = open(lock_path, "a+")     # noqa: SIM115 (held for the whole block)
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise OSError(f"{out_dir}: another xbarsim sweep is writing this folder; wait for "
                          "it to finish or give another --out") from None
        yield
    finally:
        fh.close()


def _clean_temporaries(folder: Path, pids: set[int] | None = None) -> list[Path]:
    """Remove ``.<name>.tmp-<pid>`` files left by killed writers (of ``pids`` or dead ones)."""
    removed = []
    for path in folder.glob(".*.tmp-*"):
        pid_text = path.name.rpartition(".tmp-")[2]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        if pids is not None:
            stale = pid in pids
        else:
            try:
                os.kill(pid, 0)
                stale = False
            except ProcessLookupError:
                stale = True
            except PermissionError:
                stale = False
        if stale:
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    _atomic_text(path, json.dumps(data, indent=1, default=str) + "\n")


def run_sweep(sweep: Sweep, out_dir: str | os.PathLike[str], *, workers: int | None = None,
              scheduler: str | None = None, progress: bool = False,
              data_dir: str | os.PathLike[str] | None = None,
              run_fn: Callable[..., Any] | None = None,
              echo: Callable[[str], None] | None = None) -> SweepSummary:
    """Run every unfinished run of ``sweep`` and keep the results table up to date.

    Parameters
    ----------
    sweep : Sweep
        From :func:`load_sweep`.
    out_dir : path-like
        The sweep folder (created): ``runs/``, ``results.csv``, ``results.h5``, ``sweep.json``.
    workers : int, optional
        Local worker processes (default: the core count, at most one per run). Each gets
        ``max(1, cores // workers)`` BLAS and Numba threads (:data:`THREAD_ENV_VARS`).
    scheduler : str, optional
        Address of a Dask distributed scheduler (``tcp://host:8786``) to run the points on
        instead of local processes.
    progress : bool
        A tqdm bar over runs on stderr (silently off without tqdm).
    data_dir : path-like, optional
        Dataset folder searched after ``data.data_dir`` (as ``xbarsim run --data-dir``).
    run_fn : callable, optional
        Replaces :func:`xbarsim.runner.run` (same signature; importable by the workers). For
        tests.
    echo : callable, optional
        Receives one line of text per finished run.

    Returns
    -------
    SweepSummary

    Raises
    ------
    SweepInterrupted
        After Ctrl-C: workers stopped, temporary files removed, the table written; the
        exception carries the summary. A rerun continues.
    OSError
        The folder is locked by another sweep, or the scheduler is unreachable.
    """
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    if workers is not None and workers < 1:
        raise ValueError(f"--workers: expected at least 1, got {workers}")
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    records = [run.record() for run in sweep.runs]
    keys = list(sweep.keys)
    attrs = {"sweep_file": sweep.source or "", "description": sweep.description}
    with _folder_lock(out_dir):
        _clean_temporaries(out_dir / "runs")
        _clean_temporaries(out_dir)
        from xbarsim import __version__

        _write_json(out_dir / "sweep.json", {
            "sweep_file": str(Path(sweep.source).resolve()) if sweep.source else None,
            "description": sweep.description, "keys": keys, "seeds": list(sweep.seeds),
            "n_points": sweep.n_points, "xbarsim_version": __version__,
            "written_utc": _utc_now(), "runs": records})
        states = {run.point_id: read_state(out_dir, run.point_id) for run in sweep.runs}
        rows = {run.point_id: _row(rec, keys, states[run.point_id])
                for run, rec in zip(sweep.runs, records, strict=True)}
        done_before = sum(states[r.point_id].done for r in sweep.runs)
        summary = SweepSummary(out_dir=out_dir, n_runs=len(sweep.runs), done_before=done_before)

        def table() -> None:
            ordered = [rows[r.point_id] for r in sweep.runs]
            summary.rows = ordered
            summary.files = list(write_results(out_dir, ordered, keys, attrs=attrs))
            counts: dict[str, int] = {}
            for row in ordered:
                counts[row["status"]] = counts.get(row["status"], 0) + 1
            summary.statuses = counts

        todo = [r for r in sweep.runs if not states[r.point_id].done]
        table()
        if not todo:
            summary.elapsed_s = time.perf_counter() - t_start
            return summary
        by_id = {r.point_id: r for r in sweep.runs}
        tasks = []
        for run in todo:
            path = run_file(out_dir, run.point_id).resolve()
            cfg = dataclasses.replace(run.config, output=dataclasses.replace(
                run.config.output, out=str(path), checkpoint=None, plot_dir=None))
            tasks.append(_Task(run.point_id, cfg, str(path),
                               None if data_dir is None else str(Path(data_dir).resolve()),
                               run_fn))

        executor: _LocalExecutor | _DaskExecutor
        if scheduler is not None:
            executor = _DaskExecutor(scheduler)
            summary.executor = executor.describe()
        else:
            cores = core_count()
            n = min(workers or cores, len(tasks))
            executor = _LocalExecutor(n, max(1, cores // n))
            summary.executor = (f"{n} local worker process{'es' if n > 1 else ''} "
                                f"({executor.threads} thread{'s' if executor.threads > 1 else ''}"
                                f" each)")
        say_first = f"{len(todo)} of {len(sweep.runs)} runs to run on {summary.executor}"
        bar = None
        if progress:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                bar = None
            else:
                bar = tqdm(total=len(sweep.runs), initial=done_before, unit="run",
                           desc="sweep", dynamic_ncols=True)

        def say(line: str) -> None:
            if echo is None:
                return
            if bar is not None:
                with bar.external_write_mode():
                    echo(line)
            else:
                echo(line)

        def on_result(task: _Task, record: dict[str, Any]) -> None:
            data = record.pop("file", None)
            if data is not None:
                _atomic_bytes(Path(task.out), data)
            _write_json(_record_file(out_dir, task.point_id), record)
            run = by_id[task.point_id]
            state = read_state(out_dir, task.point_id)
            if record.get("status") == "failed":
                state.status, state.error = "failed", str(record.get("error", ""))
            rows[task.point_id] = row = _row(run.record(), keys, state)
            summary.executed += 1
            summary.failed += row["status"] == "failed"
            for text in record.get("warnings", []):
                logger.warning("run %s: %s", task.point_id, text)
            table()
            say(_result_line(run, row, len(sweep.runs), sweep.keys))
            if bar is not None:
                bar.update(1)

        say(say_first)
        try:
            executor.run(tasks, on_result)
        except KeyboardInterrupt:
            summary.interrupted = True
            if isinstance(executor, _LocalExecutor):
                _clean_temporaries(out_dir / "runs", executor.pids)
            for run in todo:
                if rows[run.point_id]["status"] == "pending":
                    state = read_state(out_dir, run.point_id)
                    rows[run.point_id] = _row(run.record(), keys, state)
            table()
            summary.elapsed_s = time.perf_counter() - t_start
            raise SweepInterrupted(summary) from None
        finally:
            if bar is not None:
                bar.close()
        summary.elapsed_s = time.perf_counter() - t_start
        return summary


def _atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _result_line(run: SweepRun, row: Mapping[str, Any], n_runs: int,
                 keys: Sequence[str]) -> str:
    short = short_keys(keys)
    what = ", ".join(f"{short[k]}={format_value(run.values[k])}" for k in keys)
    if run.label:
        what = f"{run.label}: {what}" if what else run.label
    head = f"[{run.index}/{n_runs}] {run.point_id} {what}{', ' if what else ''}seed {run.seed}:"
    status = row["status"]
    if status == "failed":
        return f"{head} failed: {row['error']}"
    acc = row["final_test_acc"]
    acc_text = "n/a" if not math.isfinite(acc) else f"{100 * acc:.2f} %"
    text = f"{head} {status}, test acc {acc_text}"
    if math.isfinite(row["elapsed_s"]):
        text += f" ({row['elapsed_s']:.1f} s)"
    if status == "diverged":
        text += f"; {row['error']}"
    return text

