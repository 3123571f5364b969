"""Adapters: other tools' results in the golden suite's schema (HDF5, npz, CSV), and badcrossbar.

Another tool's results ("THEIRS") hold, for each case it can express, the suite's output
datasets under the same names (docs/golden.md, "Results of another tool"):

* HDF5 (``.h5``): root attribute ``kind = "golden_results"``, ``/cases/<case>/<name>``; a
  case the tool cannot express has the group attribute ``refused`` (the reason) and no
  datasets. A whole suite file is accepted too (its outputs are then compared).
* npz (``.npz``): one array per ``"<case>/<name>"`` key, and ``"<case>/refused"`` (a string)
  for a refused case.
* CSV (``.csv``): columns ``case,name,index,value``, one row per element; ``index`` is the
  element's index with ``:`` between axes (``3:17``; empty for a scalar); a refused case is
  one row ``<case>,refused,,<reason>``.

:func:`badcrossbar_results` runs badcrossbar 1.1 (Joksas and Mehonic, Nanotechnology 2020)
on every tile case it can express and refuses the others, saying why.

This module imports only NumPy, the schema and :mod:`xbarsim.io` (the file formats), so that
an adapter never depends on xbarsim's solvers.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xbarsim.golden import schema

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

__all__ = ["FORMATS", "TOOLS", "Results", "badcrossbar_refusal", "badcrossbar_results",
           "read_results", "read_suite", "write_results"]

FORMATS = (".h5", ".hdf5", ".npz", ".csv")
"""File extensions of results files."""

CSV_COLUMNS = ("case", "name", "index", "value")
"""Header of a results CSV."""

BADCROSSBAR_VERSION = "1.1.0"
"""The badcrossbar release the adapter was written and validated for."""


@dataclass
class Results:
    """Another tool's results in the suite's schema.

    Attributes
    ----------
    cases : dict of str to dict of str to ndarray
        Case -> output name -> array.
    refused : dict of str to str
        Cases the tool cannot express -> why.
    tool : str
        What produced them (free text, e.g. ``"badcrossbar 1.1.0"``).
    source : str
        File they were read from ("" when made in memory).
    """

    cases: dict[str, dict[str, NDArray[Any]]] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    tool: str = ""
    source: str = ""


def _format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: unknown results format {suffix or '(no extension)'!r}; "
                         f"expected one of {', '.join(FORMATS)}")
    return ".h5" if suffix == ".hdf5" else suffix


def read_suite(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a golden suite (``xbarsim golden make``) as :func:`xbarsim.io.hdf5.read_golden`.

    Raises
    ------
    FileNotFoundError, OSError, ValueError
        Missing file, not HDF5, not a suite, or a layout version this xbarsim cannot read.
    """
    from xbarsim.io import hdf5

    suite = hdf5.read_golden(path, kinds=(schema.SUITE_KIND,))
    version = suite["attrs"].get("layout_version")
    if version != schema.LAYOUT_VERSION:
        raise ValueError(f"{path}: golden suite layout version {version!r}; this xbarsim "
                         f"reads version {schema.LAYOUT_VERSION} (remake the suite)")
    suite["source"] = str(path)
    return suite


def read_results(path: str | os.PathLike[str]) -> Results:
    """Read another tool's results (HDF5, npz or CSV; see the module docstring).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Unknown extension, or content that is not in the schema (naming the key, row or
        dataset).
    OSError
        The file cannot be read as its extension says.
    """
    path = Path(path)
    fmt = _format(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if fmt == ".h5":
        return _read_h5(path)
    if fmt == ".npz":
        return _read_npz(path)
    return _read_csv(path)


def _read_h5(path: Path) -> Results:
    from xbarsim.io import hdf5

    raw = hdf5.read_golden(path)
    out = Results(tool=str(raw["attrs"].get("tool", raw["attrs"].get("kind", ""))),
                  source=str(path))
    suite = raw["attrs"].get("kind") == schema.SUITE_KIND
    for case, content in raw["cases"].items():
        reason = content["attrs"].get("refused")
        if reason:
            out.refused[case] = str(reason)
            continue
        data = content["data"]
        if suite:   # a whole suite: compare its outputs
            kind = str(content["attrs"].get("case_kind", ""))
            data = {name: data[name] for name in schema.outputs_of(kind, list(data))}
        out.cases[case] = {name: np.asarray(value) for name, value in data.items()}
    return out


def _split_key(key: str, where: str) -> tuple[str, str]:
    if "/" not in key:
        raise ValueError(f"{where}: key {key!r} is not '<case>/<name>'")
    case, name = key.split("/", 1)
    if not case or not name:
        raise ValueError(f"{where}: key {key!r} is not '<case>/<name>'")
    return case, name


def _read_npz(path: Path) -> Results:
    out = Results(source=str(path), tool="npz")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise OSError(f"{path}: cannot read as .npz ({exc})") from None
    with npz:
        for key in npz.files:
            case, name = _split_key(key, str(path))
            value = npz[key]
            if name == "refused":
                out.refused[case] = str(value)
            elif name == "tool" and case == "_":
                out.tool = str(value)
            else:
                if value.dtype.kind not in "biuf":
                    raise ValueError(f"{path}: {key} holds {value.dtype} data, expected numbers")
                out.cases.setdefault(case, {})[name] = value
    return out


def _read_csv(path: Path) -> Results:
    out = Results(source=str(path), tool="csv")
    cells: dict[tuple[str, str], dict[tuple[int, ...], float]] = {}
    try:
        fh = open(path, newline="", encoding="utf-8")
    except OSError as exc:
        raise OSError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != CSV_COLUMNS:
            raise ValueError(f"{path}: expected the header {','.join(CSV_COLUMNS)}, got "
                             f"{','.join(header) if header else 'an empty file'}")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != 4:
                raise ValueError(f"{path}, line {line}: expected 4 columns, got {len(row)}")
            case, name, index_text, value_text = (x.strip() for x in row)
            if name == "refused":
                out.refused[case] = value_text
                continue
            try:
                index = tuple(int(k) for k in index_text.split(":")) if index_text else ()
                value = float(value_text)
            except ValueError:
                raise ValueError(f"{path}, line {line}: {case}/{name}: cannot read index "
                                 f"{index_text!r} or value {value_text!r}") from None
            if any(k < 0 for k in index):
                raise ValueError(f"{path}, line {line}: {case}/{name}: negative index "
                                 f"{index_text!r}")
            target = cells.setdefault((case, name), {})
            if index in target:
                raise ValueError(f"{path}, line {line}: {case}/{name}[{index_text}] is given "
                                 f"twice")
            target[index] = value
    for (case, name), values in cells.items():
        ndims = {len(k) for k in values}
        if len(ndims) != 1:
            raise ValueError(f"{path}: {case}/{name}: indices with different numbers of axes")
        ndim = ndims.pop()
        shape = tuple(max(k[d] for k in values) + 1 for d in range(ndim))
        if len(values) != math.prod(shape):
            raise ValueError(f"{path}: {case}/{name}: {len(values)} values for an array of "
                             f"shape {shape} (elements are missing)")
        arr = np.empty(shape)
        for index, value in values.items():
            arr[index] = value
        out.cases.setdefault(case, {})[name] = arr
    return out


def write_results(path: str | os.PathLike[str], results: Results, *,
                  force: bool = False) -> Path:
    """Write results as HDF5, npz or CSV (by extension; see the module docstring).

    Raises
    ------
    FileExistsError
        ``path`` exists and ``force`` is False.
    ValueError, OSError
        Unknown extension, or the file cannot be written.
    """
    path = Path(path)
    fmt = _format(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path}: file exists; use --force (force=True) to overwrite it")
    if fmt == ".h5":
        from xbarsim.io import hdf5

        cases: dict[str, dict[str, Any]] = {
            case: {"data": data, "meta": {}} for case, data in results.cases.items()}
        for case, reason in results.refused.items():
            cases[case] = {"attrs": {"refused": reason}, "data": {}}
        return hdf5.write_golden(path, kind=schema.RESULTS_KIND, cases=cases,
                                 attrs={"layout_version": schema.LAYOUT_VERSION,
                                        "tool": results.tool}, force=force)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if fmt == ".npz":
            arrays: dict[str, Any] = {"_/tool": np.str_(results.tool)}
            for case, data in results.cases.items():
                arrays.update({f"{case}/{name}": np.asarray(v) for name, v in data.items()})
            arrays.update({f"{case}/refused": np.str_(reason)
                           for case, reason in results.refused.items()})
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)
        else:
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(CSV_COLUMNS)
                for case, data in results.cases.items():
                    for name, value in data.items():
                        arr = np.asarray(value, dtype=np.float64)
                        for index in np.ndindex(arr.shape):
                            writer.writerow([case, name, ":".join(map(str, index)),
                                             repr(float(arr[index]))])
                for case, reason in results.refused.items():
                    writer.writerow([case, "refused", "", reason])
        os.replace(tmp, path)
    except OSError as exc:
        raise OSError(f"{path}: cannot write ({exc.strerror or exc})") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# ---------------------------------------------------------------------------------------------
# badcrossbar


def badcrossbar_refusal(case: Mapping[str, Any]) -> str | None:
    """Why badcrossbar cannot express a suite case, or None when it can.

    badcrossbar (1.1) solves one crossbar whose word lines are driven at their left ends and
    bit lines sensed at their bottom ends, like xbarsim; its only parasitics are one
    resistance per word-line segment and one per bit-line segment, and the segment between
    the driver and the first device (and between the last device and the sense amplifier) is
    a wire segment like the others. So it expresses exactly the tiles whose ``r_source`` is
    ``r_row`` on every row and whose ``r_sense`` is ``r_col`` on every column.
    """
    kind = case["attrs"].get("case_kind")
    if kind != "tile":
        return (f"badcrossbar solves one crossbar's circuit; a {kind} case needs converters, "
                f"a weight mapping and device updates")
    data = case["data"]
    r_row, r_col = float(data["r_row"]), float(data["r_col"])
    problems = []
    for name, line, wire, wire_name in (("r_source", data["r_source"], r_row, "r_row"),
                                        ("r_sense", data["r_sense"], r_col, "r_col")):
        if not np.all(np.asarray(line) == wire):
            values = np.unique(line)
            shown = (f"{values[0]:g}" if values.size == 1
                     else f"{values.min():g}..{values.max():g} per line")
            problems.append(f"{name} = {shown} Ohm differs from {wire_name} = {wire:g} Ohm")
    if problems:
        return ("badcrossbar's terminal resistances are its end wire segments (r_source = "
                "r_row, r_sense = r_col): " + "; ".join(problems))
    return None


def _import_badcrossbar() -> Any:
    try:
        with warnings.catch_warnings(record=True):
            # its __init__ warns (ImportWarning) when its plotting part (cairo) is missing and
            # sets a global warnings filter; record=True keeps both inside this block
            import badcrossbar
            from badcrossbar import compute
    except ImportError as exc:
        raise ImportError(f"badcrossbar is not installed ({exc}); install its solver with "
                          f"'pip install --no-deps badcrossbar=={BADCROSSBAR_VERSION} "
                          f"pathvalidate' (its plotting dependency pycairo needs the cairo "
                          f"headers, the solver does not)") from None
    return badcrossbar, compute


def _solve(compute: Any, g: FloatArray, volts: FloatArray, r_word: float, r_bit: float,
           maps: bool) -> tuple[FloatArray, FloatArray | None, FloatArray | None]:
    """Solve with badcrossbar: currents (p, n), node maps (p, m, n) for drives (p, m)."""
    with np.errstate(divide="ignore"):
        resistances = 1.0 / g                                   # open devices: inf
    solution = compute(np.ascontiguousarray(volts.T), resistances, r_i_word_line=r_word,
                       r_i_bit_line=r_bit, node_voltages=maps, all_currents=False)
    p, (m, n) = volts.shape[0], g.shape
    currents = np.asarray(solution.currents.output, dtype=np.float64).reshape(p, n)
    if not maps:
        return currents, None, None

    def grid(x: Any) -> FloatArray:
        arr = np.asarray(x, dtype=np.float64).reshape(m, n, p)   # p == 1 comes as (m, n)
        return np.moveaxis(arr, 2, 0)

    return currents, grid(solution.voltages.word_line), grid(solution.voltages.bit_line)


def badcrossbar_results(suite: Mapping[str, Any], *,
                        progress: Callable[[str], None] | None = None) -> Results:
    """Run badcrossbar on every tile case of ``suite`` it can express.

    The convention mapping (docs/golden.md): word line ``i`` is row ``i``, bit line ``j`` is
    column ``j``; ``resistances = 1 / g`` (inf for an open device); ``applied_voltages =
    v.T``; ``r_i_word_line = r_row`` (= ``r_source``), ``r_i_bit_line = r_col`` (=
    ``r_sense``); ``currents.output`` is ``i_sense``, ``voltages.word_line`` / ``bit_line``
    are ``u`` / ``w`` (moved to (vector, row, column)). ``g_eff`` is the output for unit drives
    of each row; ``i_back`` is the forward solve of the flipped crossbar (columns driven at
    their sense ends): ``g[::-1, ::-1].T`` with ``d[:, ::-1]``, word and bit line resistances
    swapped, and the outputs reversed.

    Parameters
    ----------
    suite : mapping
        A suite as :func:`read_suite` returns it.
    progress : callable, optional
        Called with each case name.

    Returns
    -------
    Results
        Outputs of the expressed cases; every other case in ``refused`` with the reason.

    Raises
    ------
    ImportError
        badcrossbar is not installed (the message says how to install its solver).
    """
    badcrossbar, compute = _import_badcrossbar()
    version = getattr(badcrossbar, "__version__", None) or _dist_version("badcrossbar")
    out = Results(tool=f"badcrossbar {version}")
    bc_logger = logging.getLogger("badcrossbar")
    level = bc_logger.level
    bc_logger.setLevel(logging.WARNING)       # it logs every solve at INFO
    try:
        for name, case in suite["cases"].items():
            reason = badcrossbar_refusal(case)
            if reason is not None:
                out.refused[name] = reason
                continue
            if progress is not None:
                progress(name)
            data = case["data"]
            g = np.asarray(data["g"], dtype=np.float64)
            r_row, r_col = float(data["r_row"]), float(data["r_col"])
            maps = "u" in data or "w" in data
            i_sense, u, w = _solve(compute, g, np.asarray(data["v"]), r_row, r_col, maps)
            result: dict[str, Any] = {"i_sense": i_sense}
            if maps:
                result["u"], result["w"] = u, w
            result["g_eff"] = _solve(compute, g, np.eye(g.shape[0]), r_row, r_col, False)[0]
            d = np.asarray(data["d"], dtype=np.float64)
            flipped = np.ascontiguousarray(g[::-1, ::-1].T)
            result["i_back"] = _solve(compute, flipped, d[:, ::-1], r_col, r_row,
                                      False)[0][:, ::-1]
            out.cases[name] = result
    finally:
        bc_logger.setLevel(level)
    return out


def _dist_version(dist: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


TOOLS: dict[str, Callable[..., Results]] = {"badcrossbar": badcrossbar_results}
"""Tools an adapter can run on a suite (``xbarsim golden adapt TOOL``)."""
