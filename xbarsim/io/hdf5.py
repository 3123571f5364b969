"""HDF5 result files: the only module of xbarsim that imports h5py.

Seven kinds of file are written here, told apart by the root attribute ``kind``: a training
run (``"run"``), a training checkpoint (``"checkpoint"``), a tile study (``"tile_study"``),
a deployment of trained weights on many chips (``"deployment"``), a table (``"table"``: the
results of ``xbarsim sweep``, see :func:`write_table`), a golden reference suite
(``"golden_suite"``) and another tool's results in the suite's schema (``"golden_results"``);
the last two are documented in docs/golden.md (:func:`write_golden`).
Every file is written to a temporary file next to the target and renamed into place
(``os.replace``), so a reader never sees a half-written file; an existing file is replaced
only when the caller says so (``force=True``; the run driver also rewrites its own files).

Layout of a run file (``xbarsim run CONFIG --out run.h5``, layout version 1)::

    /                        root attributes
        kind                 "run"
        layout_version       1
        xbarsim_version, created_utc (ISO 8601, UTC),
        numpy_version, scipy_version, numba_version, h5py_version,
        python_version ("3.12.3 (CPython)"), platform (OS, release, machine)
        config_yaml          the resolved configuration (xbarsim.config.dump_config); the
                             file is self-describing: load_config(yaml.safe_load(...))
        seed                 master seed of the run
        mode                 "software" | "crossbar" | "aware"
        hardware_label       "software", "Cross-Ideal" or "Cross-NI (<main non-idealities>)"
        model                model name (config model.name)
        status               "running" (written after every epoch), "completed",
                             "completed_with_warnings" (see warnings), "diverged",
                             "evaluated" or "evaluated_with_warnings" (evaluate-only run)
        epochs_done          completed epochs (length of the history)
        weights_epoch        epoch whose weights /layers holds (0: the initial weights; for
                             an evaluate-only run, that of the weights file)
        test_acc             test accuracy of the stored weights (NaN when unknown)
        message              "" or why the run stopped (divergence)
        warnings             list of str: what went wrong without stopping the run (ADC
                             conversions clipped or lost, an output that does not depend on
                             the input, a learning-rate schedule changed on resume, weights
                             of an unfinished or diverged run); empty when all is well
        diverged_epoch       1-based epoch that diverged (only when status is "diverged")
        weights_source       file the weights came from (evaluate-only runs / train.weights)
        data_dir             MNIST / CIFAR-10 only: the folder the data files were read from
                             (absolute; the one actually used, after --data-dir,
                             data.data_dir, $XBARSIM_DATA or the cache)
        data_files           MNIST / CIFAR-10 only: names of the files read, in reading order
                             (MNIST: train images, train labels, test images, test labels)
        data_md5             MNIST / CIFAR-10 only: md5 (hex) of each of those files as stored
        data_known_as        MNIST / CIFAR-10 only: what each file was verified to be, e.g.
                             "official MNIST test images (10,000)", "unknown md5 (content
                             checked)" or "not verified" (xbarsim.data, "Verification")
    /history/<metric>        (n_epochs,) float64, resizable (maxshape (None,)), units attr;
                             metrics: epoch, train_loss, train_acc, test_acc, lr, seconds,
                             collapsed_fraction [, val_acc with data.validation_fraction > 0]
    /layers/<layer>/weights  (n_in, n_out) float64, units "1": the layer's weight matrix
                             (for a crossbar layer: the weights its master conductances hold)
    /layers/<layer>/<param>  every other array of the model state, e.g. bias, gamma, beta,
                             running_mean, running_var (units "1")
    /layers/<layer>/g        crossbar mode only: (n_blocks, n_arrays, n_rows, n_cols) float64,
                             units "S", master conductances, NaN-padded partial blocks
                             (xbarsim.hardware.tile.Tile.conductances)
    /layers/<layer>/w_scale  crossbar and aware modes: scalar, units "1", weight of full scale
                             (aware mode: /g holds the mapped conductances before the chip's
                             variation)
    /normalization/mean,std  (channels,) input standardisation of the training set (units
                             "1"); absent when data.normalize is false
    /solver/<layer>/{n_solves, n_calls, n_fallbacks, max_iter}
                             crossbar mode only: scalars (units "1"), totals over the run

``<layer>`` is the dotted layer name of the model (``fc1``, ``conv2``,
``stage2.block0.conv1``); the model state key ``<layer>.weight`` is stored as
``/layers/<layer>/weights`` and ``<layer>.<param>`` as ``/layers/<layer>/<param>``, so
:func:`read_weights` turns the group back into a state dict. The weights are those of the
last completed epoch: after a divergence the file keeps the last good weights.

Layout of a checkpoint file (``<out stem>.ckpt.h5``, written after every epoch)::

    /                  attrs: kind "checkpoint", layout_version, provenance (the same
                       version attributes as a run file), plus the
                       scalar attributes of the checkpoint (epoch, config_yaml,
                       rng_states as JSON, ...)
    /<group>/.../<name>  nested groups of arrays, mirroring the nested dict given to
                       :func:`write_checkpoint` (model, tiles, optimizer, history, ...)

Layout of a tile-study file (``xbarsim tile --out tile.h5``, layout version 1)::

    /                       root attributes
        kind                "tile_study"
        layout_version      1
        xbarsim_version, created_utc (ISO 8601, UTC),
        numpy_version, scipy_version, numba_version, h5py_version, python_version, platform
        parameters_yaml     every study parameter as YAML (self-describing file)
        <parameter>         each scalar parameter also as its own attribute (SI units)
        ...                 scalar results (rho_bound, ir_drop_max, err_*, notes, ...)
    /g          (n_rows, n_cols)          units "S"   device conductances
    /v          (batch, n_rows)           units "V"   row drive voltages
    /i_ideal    (batch, n_cols)           units "A"   v @ g
    /i_nodal    (batch, n_cols)           units "A"   golden nodal solve (the reference)
    /i_fcm      (batch, n_cols)           units "A"   only when fcm was run
    /i_aam      (batch, n_cols)           units "A"   only when aam was run
    /g_eff      (n_rows, n_cols)          units "S"   exact effective conductance (nodal)
    /g_eff_fcm, /g_eff_aam                units "S"   when those methods were run
    /u, /w      (batch, n_rows, n_cols)   units "V"   row- / column-node voltages
    /ir_drop    (batch, n_rows, n_cols)   units "V"   v_i - (u - w)_ij

Layout of a deployment file (``xbarsim deploy RUN.h5 --chips N --out deploy.h5``, layout
version 1)::

    /                       root attributes
        kind                "deployment"
        layout_version      1
        xbarsim_version, created_utc, numpy/scipy/numba/h5py versions
        config_yaml         the resolved deployment configuration (model and data of the run,
                            hardware of the chips; chip k has chip_seed = first_chip_seed + k)
        source              the run file or checkpoint deployed; source_mode its train.mode
        n_chips, first_chip_seed, sigma_program, ideal_acc (digital weights, no hardware),
        mean_acc, std_acc (ddof 1), worst_acc, best_acc, seconds
    /chip_seed  (n_chips,) int64     units "1"   seed of each chip
    /test_acc   (n_chips,) float64   units "1"   test accuracy on each chip
    /seconds    (n_chips,) float64   units "s"   wall time per chip (calibration + test)

Every dataset carries a ``units`` attribute. Files are written to a temporary file next to the
target and renamed into place, so an existing file is never left half-written; it is replaced
only when ``force=True``.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import NDArray

__all__ = ["DEPLOYMENT_LAYOUT_VERSION", "LAYOUT_VERSION", "PROVENANCE_KEYS",
           "RUN_LAYOUT_VERSION", "provenance", "read_attrs", "read_checkpoint", "read_dataset",
           "read_deployment", "read_golden", "read_run", "read_run_summary", "read_table",
           "read_tile_study", "read_weights", "write_checkpoint", "write_deployment",
           "write_golden", "write_run", "write_table", "write_tile_study"]

LAYOUT_VERSION = 1
"""Version of the tile-study layout documented above; bump on incompatible changes."""

RUN_LAYOUT_VERSION = 1
"""Version of the run and checkpoint layouts documented above."""

DEPLOYMENT_LAYOUT_VERSION = 1
"""Version of the deployment layout documented above."""


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def provenance() -> dict[str, str]:
    """Root attributes identifying the software that wrote a file.

    Returns
    -------
    dict
        ``xbarsim_version``, ``created_utc``, the versions of numpy, scipy, numba, h5py and
        Python (``python_version``, with the implementation, e.g. ``"3.12.3 (CPython)"``),
        and ``platform`` (operating system, release and machine, :func:`platform.platform`).
    """
    from xbarsim import __version__

    return {
        "xbarsim_version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "numpy_version": np.__version__,
        "scipy_version": _version("scipy"),
        "numba_version": _version("numba"),
        "h5py_version": h5py.__version__,
        "python_version": f"{platform.python_version()} ({platform.python_implementation()})",
        "platform": platform.platform(),
    }


PROVENANCE_KEYS = ("xbarsim_version", "created_utc", "numpy_version", "scipy_version",
                   "numba_version", "h5py_version", "python_version", "platform")
"""Root attributes that :func:`provenance` adds to every file written here."""


def _write_root_attrs(f: h5py.File, kind: str, attrs: Mapping[str, Any], *,
                      layout_version: int | None = None) -> None:
    """Write a file's ``kind``, ``layout_version``, provenance and ``attrs`` (``None`` skipped)."""
    f.attrs["kind"] = kind
    if layout_version is not None:
        f.attrs["layout_version"] = layout_version
    for key, value in {**provenance(), **attrs}.items():
        if value is not None:
            f.attrs[key] = _attr_value(key, value)


def _attr_value(name: str, value: Any) -> Any:
    """Coerce an attribute to something h5py stores faithfully."""
    if isinstance(value, (str, bool, int, float, np.generic)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(x, str) for x in value):
        return np.array(value, dtype=h5py.string_dtype())
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"attribute {name!r}: cannot store value of type {type(value).__name__}")
    return arr


def write_tile_study(path: str | os.PathLike[str], *,
                     datasets: Mapping[str, tuple[NDArray[Any], str]],
                     attrs: Mapping[str, Any], force: bool = False) -> Path:
    """Write a tile study to ``path`` in the layout documented in this module.

    Parameters
    ----------
    path : path-like
        Output file (conventionally ``*.h5``).
    datasets : mapping of str to (ndarray, str)
        Dataset name -> (array, unit string such as ``"S"``, ``"V"``, ``"A"``, ``"1"``).
    attrs : mapping of str to scalar, str, list of str or ndarray
        Root attributes (parameters and scalar results). ``None`` values are skipped.
        Provenance attributes (:func:`provenance`) are added automatically.
    force : bool
        Replace an existing file. Without it an existing file is an error and stays untouched.

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``force`` is False.
    OSError
        The directory does not exist or is not writable.
    """
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path}: file exists; use --force (force=True) to overwrite it")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, expected an output file name")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: directory {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            _write_root_attrs(f, "tile_study", attrs, layout_version=LAYOUT_VERSION)
            for name, (data, units) in datasets.items():
                dset = f.create_dataset(name, data=np.asarray(data))
                dset.attrs["units"] = units
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.dtype.kind in "OS":
        return [v.decode() if isinstance(v, bytes) else str(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_tile_study(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a file written by :func:`write_tile_study` (for tests and notebooks).

    Parameters
    ----------
    path : path-like
        A tile-study HDF5 file.

    Returns
    -------
    dict
        ``{"attrs": {name: value}, "data": {name: ndarray}, "units": {name: str}}``.

    Raises
    ------
    ValueError
        The file is HDF5 but not a tile study.
    OSError
        The file is missing or not HDF5.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with h5py.File(path, "r") as f:
        attrs = {k: _plain(v) for k, v in f.attrs.items()}
        if attrs.get("kind") != "tile_study":
            raise ValueError(f"{path}: not an xbarsim tile-study file (attribute kind="
                             f"{attrs.get('kind')!r})")
        data = {k: f[k][()] for k in f if isinstance(f[k], h5py.Dataset)}
        units = {k: _plain(f[k].attrs.get("units", "")) for k in data}
    return {"attrs": attrs, "data": data, "units": units}


def read_dataset(path: str | os.PathLike[str], name: str | None = None) -> NDArray[Any]:
    """One dataset of an HDF5 file as an array (used for ``--g file.h5:dataset``).

    Parameters
    ----------
    path : path-like
        HDF5 file.
    name : str, optional
        Dataset path inside the file. May be omitted when the file holds exactly one dataset.

    Raises
    ------
    FileNotFoundError
        No such file.
    OSError
        Not an HDF5 file.
    ValueError
        The dataset does not exist (the message lists those that do) or the name is ambiguous.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise OSError(f"{path}: cannot open as HDF5 ({exc})") from None
    with f:
        found: list[str] = []
        f.visititems(lambda n, obj: found.append(n) if isinstance(obj, h5py.Dataset) else None)
        if name is None or name == "":
            if len(found) != 1:
                raise ValueError(f"{path}: holds {len(found)} datasets ({', '.join(found)}); "
                                 f"name one as {path}:DATASET")
            name = found[0]
        obj = f.get(name)
        if not isinstance(obj, h5py.Dataset):
            raise ValueError(f"{path}: no dataset {name!r}; available: "
                             f"{', '.join(found) or 'none'}")
        return np.asarray(obj[()])


# ---------------------------------------------------------------------------------------------
# training runs and checkpoints


def _check_target(path: Path, force: bool) -> None:
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, expected an output file name")
    if path.exists() and not force:
        raise FileExistsError(f"{path}: file exists; use --force (force=True) to overwrite it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path}: directory {path.parent} does not exist")


def _atomic_write(path: Path, fill: Any, force: bool) -> Path:
    """Create ``path`` through a temporary sibling file and ``os.replace``.

    A failure to write names ``path`` (and its folder), not the temporary file.
    """
    _check_target(path, force)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        try:
            f = h5py.File(tmp, "w")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise OSError(exc.errno, f"{path}: cannot write in folder {path.parent} "
                                     f"({reason})") from None
        with f:
            fill(f)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_run(path: str | os.PathLike[str], *, attrs: Mapping[str, Any],
              history: Mapping[str, Any],
              layers: Mapping[str, Mapping[str, tuple[Any, str]]],
              solver: Mapping[str, Mapping[str, float]] | None = None,
              normalization: Mapping[str, Any] | None = None,
              force: bool = False) -> Path:
    """Write a training run in the layout documented in this module.

    Parameters
    ----------
    path : path-like
        Output file (conventionally ``*.h5``).
    attrs : mapping
        Root attributes (``config_yaml``, ``seed``, ``status``, ...). ``None`` values are
        skipped; provenance attributes are added.
    history : mapping of str to array_like of shape (n_epochs,)
        Per-epoch metrics, stored as resizable float64 datasets under ``/history``.
    layers : mapping of str to mapping of str to (ndarray, str)
        Layer name -> dataset name -> (array, units).
    solver : mapping of str to mapping of str to float, optional
        Layer name -> solver statistic -> value (``/solver/<layer>/<stat>``).
    normalization : mapping of str to ndarray, optional
        ``{"mean": ..., "std": ...}`` input standardisation (``/normalization``).
    force : bool
        Replace an existing file.

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``force`` is False.
    OSError
        The directory does not exist or is not writable.
    """
    def fill(f: h5py.File) -> None:
        _write_root_attrs(f, "run", attrs, layout_version=RUN_LAYOUT_VERSION)
        hist = f.create_group("history")
        for name, values in history.items():
            arr = np.asarray(values, dtype=np.float64).reshape(-1)
            dset = hist.create_dataset(name, data=arr, maxshape=(None,), chunks=(64,))
            dset.attrs["units"] = "s" if name == "seconds" else "1"
        grp = f.create_group("layers")
        for lname, items in layers.items():
            lg = grp.create_group(lname)
            for dname, (data, units) in items.items():
                dset = lg.create_dataset(dname, data=np.asarray(data))
                dset.attrs["units"] = units
        if solver:
            sg = f.create_group("solver")
            for lname, stats in solver.items():
                lg = sg.create_group(lname)
                for key, value in stats.items():
                    lg.create_dataset(key, data=np.float64(value)).attrs["units"] = "1"
        if normalization:
            ng = f.create_group("normalization")
            for key, value in normalization.items():
                ng.create_dataset(key, data=np.asarray(value, dtype=np.float64)
                                  ).attrs["units"] = "1"

    return _atomic_write(Path(path), fill, force)


def _open_kind(path: Path, kinds: tuple[str, ...]) -> h5py.File:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise OSError(f"{path}: cannot open as HDF5 ({exc})") from None
    kind = _plain(f.attrs.get("kind"))
    if kind not in kinds:
        f.close()
        raise ValueError(f"{path}: not an xbarsim {' or '.join(kinds)} file (attribute "
                         f"kind={kind!r})")
    return f


def _read_group(g: h5py.Group) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, obj in g.items():
        out[key] = _read_group(obj) if isinstance(obj, h5py.Group) else np.asarray(obj[()])
    return out


def read_run(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a run file written by :func:`write_run` (for tests, notebooks and the CLI).

    Parameters
    ----------
    path : path-like
        A run HDF5 file.

    Returns
    -------
    dict
        ``{"attrs": {...}, "history": {metric: ndarray}, "layers": {layer: {name: ndarray}},
        "units": {"layers/<layer>/<name>" or "history/<metric>": str},
        "solver": {layer: {stat: float}}, "normalization": {name: ndarray}}``.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The file is HDF5 but not a run file.
    """
    path = Path(path)
    with _open_kind(path, ("run",)) as f:
        attrs = {k: _plain(v) for k, v in f.attrs.items()}
        units: dict[str, str] = {}
        history = {k: np.asarray(d[()]) for k, d in f["history"].items()}
        units.update({f"history/{k}": _plain(d.attrs.get("units", ""))
                      for k, d in f["history"].items()})
        layers: dict[str, dict[str, Any]] = {}
        for lname, lg in f["layers"].items():
            layers[lname] = {k: np.asarray(d[()]) for k, d in lg.items()}
            units.update({f"layers/{lname}/{k}": _plain(d.attrs.get("units", ""))
                          for k, d in lg.items()})
        solver = {lname: {k: float(d[()]) for k, d in lg.items()}
                  for lname, lg in f["solver"].items()} if "solver" in f else {}
        norm = _read_group(f["normalization"]) if "normalization" in f else {}
    return {"attrs": attrs, "history": history, "layers": layers, "units": units,
            "solver": solver, "normalization": norm}


def read_attrs(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Root attributes of a run file or checkpoint (cheap: no dataset is read).

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, or not a run / checkpoint file.
    """
    with _open_kind(Path(path), ("run", "checkpoint")) as f:
        return {k: _plain(v) for k, v in f.attrs.items()}


def read_run_summary(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Root attributes and history of a run file, without the (large) layer arrays.

    Parameters
    ----------
    path : path-like
        A run HDF5 file.

    Returns
    -------
    dict
        ``{"attrs": {...}, "history": {metric: ndarray}}`` as in :func:`read_run`.

    Raises
    ------
    FileNotFoundError, OSError, ValueError
        Missing file, not HDF5, or not a run file.
    """
    with _open_kind(Path(path), ("run",)) as f:
        attrs = {k: _plain(v) for k, v in f.attrs.items()}
        history = ({k: np.asarray(d[()]) for k, d in f["history"].items()}
                   if "history" in f else {})
    return {"attrs": attrs, "history": history}


_HARDWARE_DATASETS = ("g", "g_eff", "w_scale")


def read_weights(path: str | os.PathLike[str]) -> tuple[dict[str, NDArray[np.float64]],
                                                        dict[str, NDArray[np.float64]]]:
    """Model state and input normalisation stored in a run file or a checkpoint.

    Parameters
    ----------
    path : path-like
        A run file (``/layers``) or a checkpoint (``/model``).

    Returns
    -------
    state : dict of str to ndarray
        Model state dict (``"fc1.weight"``, ``"fc1.bias"``, ...), as
        :meth:`xbarsim.nn.base.Layer.load_state_dict` expects it.
    normalization : dict of str to ndarray
        ``{"mean", "std"}`` when the file has them, else empty.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, or not a run / checkpoint file.
    """
    path = Path(path)
    with _open_kind(path, ("run", "checkpoint")) as f:
        kind = _plain(f.attrs["kind"])
        norm = _read_group(f["normalization"]) if "normalization" in f else {}
        if kind == "checkpoint":
            return _read_group(f["model"]) if "model" in f else {}, norm
        state: dict[str, NDArray[np.float64]] = {}
        for lname, lg in f["layers"].items():
            for k, d in lg.items():
                if k in _HARDWARE_DATASETS:
                    continue
                state[f"{lname}.{'weight' if k == 'weights' else k}"] = np.asarray(d[()])
    return state, norm


def _write_tree(g: h5py.Group, tree: Mapping[str, Any]) -> None:
    for key, value in tree.items():
        if "/" in key:
            raise ValueError(f"checkpoint key {key!r}: '/' is not allowed in names")
        if isinstance(value, Mapping):
            _write_tree(g.create_group(key), value)
        else:
            g.create_dataset(key, data=np.asarray(value))


def write_checkpoint(path: str | os.PathLike[str], tree: Mapping[str, Any], *,
                     attrs: Mapping[str, Any]) -> Path:
    """Write (or atomically replace) a checkpoint: nested dict of arrays plus root attributes.

    Parameters
    ----------
    path : path-like
        Checkpoint file; an existing one is replaced (a run owns its checkpoint).
    tree : mapping
        Nested mapping whose leaves are array-likes; each level becomes an HDF5 group.
    attrs : mapping
        Scalar or string root attributes (provenance is added).

    Returns
    -------
    Path
    """
    def fill(f: h5py.File) -> None:
        _write_root_attrs(f, "checkpoint", attrs, layout_version=RUN_LAYOUT_VERSION)
        _write_tree(f, tree)

    return _atomic_write(Path(path), fill, force=True)


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a checkpoint written by :func:`write_checkpoint`.

    Returns
    -------
    tree : dict
        The nested dict of arrays.
    attrs : dict
        Root attributes.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, or not a checkpoint.
    """
    with _open_kind(Path(path), ("checkpoint",)) as f:
        attrs = {k: _plain(v) for k, v in f.attrs.items()}
        tree = _read_group(f)
    return tree, attrs


# ---------------------------------------------------------------------------------------------
# tables (the results of a sweep)


def write_table(path: str | os.PathLike[str], columns: Mapping[str, Any], *,
                attrs: Mapping[str, Any] | None = None, force: bool = False) -> Path:
    """Write a table of equal-length columns (atomically): one dataset per column.

    Layout (root attribute ``kind`` = ``"table"``)::

        /                    attrs: kind, layout_version, provenance, ``columns`` (the column
                             names in order) and the caller's ``attrs``
        /<column>            (n_rows,) float64, int64, bool, or variable-length UTF-8 strings

    Parameters
    ----------
    path : path-like
        Output file.
    columns : mapping of str to sequence
        Column name -> values: all numbers (stored as a numeric array; NaN for missing floats)
        or all strings. Every column has the same length.
    attrs : mapping, optional
        Extra root attributes (``None`` values are skipped).
    force : bool
        Replace an existing file.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        Columns of different lengths, a column name with ``/``, or values that are neither all
        numbers nor all strings.
    """
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"write_table: columns have different lengths: {lengths}")
    arrays: dict[str, Any] = {}
    for name, values in columns.items():
        if "/" in name or not name:
            raise ValueError(f"write_table: invalid column name {name!r}")
        values = list(values)
        if all(isinstance(v, str) for v in values):
            arrays[name] = np.array(values, dtype=h5py.string_dtype())
        else:
            arr = np.asarray(values)
            if arr.dtype.kind not in "biuf":
                raise ValueError(f"write_table: column {name!r} mixes strings and numbers or "
                                 f"holds other objects (dtype {arr.dtype}); convert it first")
            arrays[name] = arr

    def fill(f: h5py.File) -> None:
        _write_root_attrs(f, "table", attrs or {}, layout_version=RUN_LAYOUT_VERSION)
        f.attrs["columns"] = np.array(list(arrays), dtype=h5py.string_dtype())
        for name, arr in arrays.items():
            f.create_dataset(name, data=arr)

    return _atomic_write(Path(path), fill, force)


def read_table(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a table written by :func:`write_table`.

    Returns
    -------
    columns : dict of str to ndarray or list of str
        In the stored column order; string columns as lists of ``str``.
    attrs : dict
        Root attributes.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, or not a table file.
    """
    with _open_kind(Path(path), ("table",)) as f:
        attrs = {k: _plain(v) for k, v in f.attrs.items()}
        names = attrs.get("columns", list(f))
        columns: dict[str, Any] = {}
        for name in names:
            data = f[name]
            if h5py.check_string_dtype(data.dtype) is not None:
                columns[name] = [v.decode() if isinstance(v, bytes) else str(v)
                                 for v in data[()].tolist()]
            else:
                columns[name] = np.asarray(data[()])
    return columns, attrs


# ---------------------------------------------------------------------------------------------
# golden suites and results in their schema (docs/golden.md)

#: Arrays with at least this many elements are stored gzip-compressed (with the shuffle filter).
_COMPRESS_MIN = 4096


def write_golden(path: str | os.PathLike[str], *, kind: str,
                 cases: Mapping[str, Mapping[str, Any]], attrs: Mapping[str, Any],
                 force: bool = False) -> Path:
    """Write a golden suite or results file (atomically).

    Layout (docs/golden.md)::

        /                         attrs: kind, layout_version, provenance, the caller's attrs
        /cases/<case>             group; attrs: the case's attributes (case_kind, ...)
        /cases/<case>/<name>      one dataset per array; ``<name>`` may contain ``/`` (a
                                  layer prefix, e.g. ``fc1/weights``: a subgroup); attrs:
                                  ``units`` and whatever the case's ``meta`` gives

    Parameters
    ----------
    path : path-like
        Output file.
    kind : {"golden_suite", "golden_results"}
        Root attribute ``kind``.
    cases : mapping of str to mapping
        Case name -> ``{"attrs": {...}, "data": {name: array}, "meta": {name: {attr: value}}}``
        (``attrs`` and ``meta`` optional); ``meta[name]["units"]`` is the dataset's units.
    attrs : mapping
        Root attributes (``layout_version`` among them; provenance is added).
    force : bool
        Replace an existing file.

    Returns
    -------
    Path

    Raises
    ------
    FileExistsError, OSError, ValueError
        Existing file without ``force``, unwritable folder, or a bad case or dataset name.
    """
    if kind not in ("golden_suite", "golden_results"):
        raise ValueError(f"kind: expected 'golden_suite' or 'golden_results', got {kind!r}")

    def fill(f: h5py.File) -> None:
        _write_root_attrs(f, kind, attrs)
        root = f.create_group("cases")
        for case, content in cases.items():
            if not case or "/" in case:
                raise ValueError(f"case name {case!r}: must be non-empty and without '/'")
            grp = root.create_group(case)
            for key, value in (content.get("attrs") or {}).items():
                if value is not None:
                    grp.attrs[key] = _attr_value(f"{case}.{key}", value)
            meta = content.get("meta") or {}
            for name, data in (content.get("data") or {}).items():
                arr = np.asarray(data)
                opts = ({"compression": "gzip", "shuffle": True}
                        if arr.size >= _COMPRESS_MIN else {})
                dset = grp.create_dataset(name, data=arr, **opts)
                for key, value in (meta.get(name) or {}).items():
                    if value is not None:
                        dset.attrs[key] = _attr_value(f"{case}/{name}.{key}", value)

    return _atomic_write(Path(path), fill, force)


def read_golden(path: str | os.PathLike[str],
                kinds: tuple[str, ...] = ("golden_suite", "golden_results")) -> dict[str, Any]:
    """Read a file written by :func:`write_golden`.

    Returns
    -------
    dict
        ``{"attrs": {...}, "cases": {case: {"attrs": {...}, "data": {name: ndarray},
        "meta": {name: {attr: value}}}}}``, names with their layer prefixes (``fc1/weights``).

    Raises
    ------
    FileNotFoundError, OSError, ValueError
        Missing file, not HDF5, or not one of ``kinds`` (the message names the file).
    """
    path = Path(path)
    with _open_kind(path, kinds) as f:
        attrs = {k: _plain(v) for k, v in f.attrs.items()}
        cases: dict[str, Any] = {}
        if "cases" in f:
            for case, grp in f["cases"].items():
                data: dict[str, Any] = {}
                meta: dict[str, dict[str, Any]] = {}

                def visit(name: str, obj: Any, data: dict[str, Any] = data,
                          meta: dict[str, dict[str, Any]] = meta) -> None:
                    if isinstance(obj, h5py.Dataset):
                        value = obj[()]
                        if isinstance(value, bytes):
                            value = value.decode()
                        data[name] = np.asarray(value) if not isinstance(value, str) else value
                        meta[name] = {k: _plain(v) for k, v in obj.attrs.items()}

                grp.visititems(visit)
                cases[case] = {"attrs": {k: _plain(v) for k, v in grp.attrs.items()},
                               "data": data, "meta": meta}
    return {"attrs": attrs, "cases": cases}


# ---------------------------------------------------------------------------------------------
# deployments on many chips


def write_deployment(path: str | os.PathLike[str], *, attrs: Mapping[str, Any],
                     datasets: Mapping[str, tuple[Any, str]], force: bool = False) -> Path:
    """Write a deployment (one accuracy per chip) in the layout documented in this module.

    Parameters
    ----------
    path : path-like
        Output file.
    attrs : mapping
        Root attributes; ``None`` values are skipped; provenance is added.
    datasets : mapping of str to (array, str)
        Name -> (array, units), e.g. ``{"test_acc": (acc, "1")}``.
    force : bool
        Replace an existing file.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``force`` is False.
    """
    def fill(f: h5py.File) -> None:
        _write_root_attrs(f, "deployment", attrs, layout_version=DEPLOYMENT_LAYOUT_VERSION)
        for name, (data, units) in datasets.items():
            f.create_dataset(name, data=np.asarray(data)).attrs["units"] = units

    return _atomic_write(Path(path), fill, force)


def read_deployment(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a file written by :func:`write_deployment`.

    Returns
    -------
    dict
        ``{"attrs": {...}, "data": {name: ndarray}, "units": {name: str}}``.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, or not a deployment file.
    """
    with _open_kind(Path(path), ("deployment",)) as f:
        attrs = {k: _plain(v) for k, v in f.attrs.items()}
        data = {k: np.asarray(f[k][()]) for k in f if isinstance(f[k], h5py.Dataset)}
        units = {k: _plain(f[k].attrs.get("units", "")) for k in data}
    return {"attrs": attrs, "data": data, "units": units}
