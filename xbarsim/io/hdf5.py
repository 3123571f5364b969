"""HDF5 result files: the only module of xbarsim that imports h5py.

Layout of a tile-study file (``xbarsim tile --out tile.h5``, layout version 1)::

    /                       root attributes
        kind                "tile_study"
        layout_version      1
        xbarsim_version, created_utc (ISO 8601, UTC),
        numpy_version, scipy_version, numba_version, h5py_version
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

Every dataset carries a ``units`` attribute. Files are written to a temporary file next to the
target and renamed into place, so an existing file is never left half-written; it is replaced
only when ``force=True``.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import NDArray

__all__ = ["LAYOUT_VERSION", "provenance", "read_dataset", "read_tile_study", "write_tile_study"]

LAYOUT_VERSION = 1
"""Version of the tile-study layout documented above; bump on incompatible changes."""


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
        ``xbarsim_version``, ``created_utc`` and the versions of numpy, scipy, numba, h5py.
    """
    from xbarsim import __version__

    return {
        "xbarsim_version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "numpy_version": np.__version__,
        "scipy_version": _version("scipy"),
        "numba_version": _version("numba"),
        "h5py_version": h5py.__version__,
    }


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
            f.attrs["kind"] = "tile_study"
            f.attrs["layout_version"] = LAYOUT_VERSION
            for key, value in {**provenance(), **attrs}.items():
                if value is not None:
                    f.attrs[key] = _attr_value(key, value)
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
