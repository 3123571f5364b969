"""ngspice netlists of one crossbar, for validating the nodal solver against a real SPICE.

The netlist reproduces xbarsim's circuit convention exactly (``xbarsim.hardware`` docstring):
row ``i`` is driven at its left end by ``Vin<i>`` behind ``r_source[i]``; adjacent row nodes are
joined by ``r_row``, adjacent column nodes by ``r_col``; the device ``(i, j)`` is a resistor
``1/g[i, j]`` between row node ``(i, j)`` and column node ``(i, j)``; column ``j`` leaves its
bottom node through ``r_sense[j]`` and a 0 V source ``Vsense<j>`` (the ammeter) into ground.

Zero resistances are handled exactly by merging nodes (ngspice rejects ``R = 0`` and clamps
resistances below 1 mOhm): a zero ``r_source[i]`` makes row node ``(i, 0)`` the source node, a zero
wire makes the whole line one node, a zero ``r_sense[j]`` connects the bottom node straight to
the ammeter. A device with ``g == 0`` is left out (open circuit).

Sign: ``i(Vsense<j>)`` is the current entering the ammeter's ``+`` terminal, i.e. flowing into
the virtual ground, which is xbarsim's sense-current sign (positive for positive ``v`` and
``g``).

Several drive vectors are run in one ngspice call: the ``.control`` block runs ``op``, prints
every ``i(vsense<j>)`` with 17 significant digits, then ``alter``\\s the sources and repeats.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xbarsim.checks import as_float_array, nonneg_scalar, per_line

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

NGSPICE = "ngspice"
"""Name (or path) of the ngspice executable."""

_HEADER = re.compile(r"^\*\s*xbarsim-netlist\s+n_rows=(\d+)\s+n_cols=(\d+)\s+batch=(\d+)",
                     re.MULTILINE)
_RUN = re.compile(r"^@xbarsim\s+drive\s+(\d+)\s*$")
_CURRENT = re.compile(r"^i\(vsense(\d+)\)\s*=\s*(\S+)\s*$", re.IGNORECASE)


def _num(x: float) -> str:
    """A float with 17 significant digits (round-trips float64 exactly)."""
    return f"{x:.17g}"


@contextmanager
def _open_text(path_or_file: str | os.PathLike[str] | IO[str]) -> Iterator[IO[str]]:
    if hasattr(path_or_file, "write"):
        yield path_or_file  # type: ignore[misc]
    else:
        with open(path_or_file, "w", encoding="ascii", newline="\n") as fh:
            yield fh


def netlist_text(g: ArrayLike, v: ArrayLike, *, r_source: ArrayLike = 0.0,
                 r_sense: ArrayLike = 0.0, r_row: float = 0.0, r_col: float = 0.0,
                 title: str = "xbarsim crossbar", options: dict[str, Any] | None = None
                 ) -> str:
    """The ngspice netlist of one crossbar as a string (see :func:`write_netlist`)."""
    g_arr = as_float_array("g", g, ndim=2, nonneg=True)
    m, n = g_arr.shape
    v_arr = as_float_array("v", v, ndim=(1, 2))
    if v_arr.shape[-1] != m:
        raise ValueError(f"v: expected shape ({m},) or (batch, {m}) to match g of shape "
                         f"{g_arr.shape}, got {v_arr.shape}")
    v2 = np.atleast_2d(v_arr)
    rs = per_line("r_source", r_source, m)
    rk = per_line("r_sense", r_sense, n)
    rr = nonneg_scalar("r_row", r_row)
    rc = nonneg_scalar("r_col", r_col)
    if "\n" in title or "\r" in title:
        raise ValueError("title: must be a single line")

    def u(i: int, j: int) -> str:
        if j == 0 or rr == 0.0:
            return f"s{i}" if rs[i] == 0.0 else f"u{i}_0"
        return f"u{i}_{j}"

    def w(i: int, j: int) -> str:
        if i == m - 1 or rc == 0.0:
            return f"k{j}" if rk[j] == 0.0 else f"w{m - 1}_{j}"
        return f"w{i}_{j}"

    lines = [
        title,
        f"* xbarsim-netlist n_rows={m} n_cols={n} batch={v2.shape[0]}",
        "* row i: Vin<i> -> r_source -> (i,0) -r_row- (i,1) ...; device (i,j) = 1/g between row",
        "* node u<i>_<j> and column node w<i>_<j>; column j: (n_rows-1,j) -> r_sense -> Vsense<j>",
        "* (0 V ammeter) -> ground. Zero resistances are merged nodes. Units: V, Ohm.",
        f"* r_row={_num(rr)} r_col={_num(rc)}",
    ]
    for i in range(m):
        lines.append(f"Vin{i} s{i} 0 DC {_num(v2[0, i])}")
        if rs[i] > 0.0:
            lines.append(f"Rsrc{i} s{i} u{i}_0 {_num(rs[i])}")
    for i in range(m):
        for j in range(n):
            if rr > 0.0 and j + 1 < n:
                lines.append(f"Rrow{i}_{j} {u(i, j)} {u(i, j + 1)} {_num(rr)}")
            if g_arr[i, j] > 0.0:
                lines.append(f"Rg{i}_{j} {u(i, j)} {w(i, j)} {_num(1.0 / g_arr[i, j])}")
            if rc > 0.0 and i + 1 < m:
                lines.append(f"Rcol{i}_{j} {w(i, j)} {w(i + 1, j)} {_num(rc)}")
    for j in range(n):
        if rk[j] > 0.0:
            lines.append(f"Rsense{j} w{m - 1}_{j} k{j} {_num(rk[j])}")
        lines.append(f"Vsense{j} k{j} 0 DC 0")
    if options:
        lines.append(".options " + " ".join(f"{k}={v_}" for k, v_ in options.items()))
    lines.append(".op")
    lines += [".control", "set numdgt=17"]
    currents = " ".join(f"i(Vsense{j})" for j in range(n))
    for b in range(v2.shape[0]):
        if b > 0:
            lines += [f"alter Vin{i} dc = {_num(v2[b, i])}" for i in range(m)]
        lines += ["op", f'echo "@xbarsim drive {b}"', f"print {currents}"]
    lines += ["quit", ".endc", ".end", ""]
    return "\n".join(lines)


def write_netlist(path_or_file: str | os.PathLike[str] | IO[str], g: ArrayLike, v: ArrayLike,
                  *, r_source: ArrayLike = 0.0, r_sense: ArrayLike = 0.0, r_row: float = 0.0,
                  r_col: float = 0.0, title: str = "xbarsim crossbar",
                  options: dict[str, Any] | None = None) -> None:
    """Write an ngspice netlist of one crossbar with an ``.op`` analysis per drive vector.

    Parameters
    ----------
    path_or_file : path or text file object
        Destination.
    g : array_like of shape (n_rows, n_cols)
        Device conductances [S], finite and >= 0 (0 = device left out).
    v : array_like of shape (n_rows,) or (batch, n_rows)
        Source voltages [V]; each row of a batch is one ``op`` run.
    r_source : float or array_like of shape (n_rows,)
        Driver resistance per row [Ohm]; 0 = ideal driver (merged node).
    r_sense : float or array_like of shape (n_cols,)
        Sense resistance per column [Ohm]; 0 = ideal virtual ground.
    r_row, r_col : float
        Wire resistance per cell segment [Ohm]; 0 = the line is one node.
    title : str
        First (title) line of the netlist.
    options : dict, optional
        Extra ``.options`` (e.g. ``{"reltol": 1e-12}``); ngspice defaults when None.

    Raises
    ------
    ValueError
        Invalid input; the message names the argument.
    """
    text = netlist_text(g, v, r_source=r_source, r_sense=r_sense, r_row=r_row, r_col=r_col,
                        title=title, options=options)
    with _open_text(path_or_file) as fh:
        fh.write(text)
    logger.debug("wrote ngspice netlist (%d lines) to %s", text.count("\n"), path_or_file)


def _executable() -> str:
    exe = shutil.which(NGSPICE)
    if exe is None:
        raise FileNotFoundError(f"ngspice executable {NGSPICE!r} not found on PATH; install "
                                "ngspice (e.g. 'apt-get install ngspice') to run SPICE checks")
    return exe


def ngspice_version() -> str:
    """The ngspice version string, e.g. ``"ngspice-39"``.

    Raises
    ------
    FileNotFoundError
        ngspice is not installed.
    """
    out = subprocess.run([_executable(), "-v"], capture_output=True, text=True, check=False,
                         stdin=subprocess.DEVNULL, timeout=60)
    found = re.search(r"ngspice-[\w.+-]+", out.stdout + out.stderr)
    return found.group(0) if found else (out.stdout + out.stderr).strip()


def parse_output(stdout: str, n_cols: int, batch: int) -> FloatArray:
    """Sense currents [A], shape (batch, n_cols), from ngspice's printed output.

    Raises
    ------
    ValueError
        A current is missing or duplicated.
    """
    out = np.full((batch, n_cols), np.nan)
    run = -1
    for line in stdout.splitlines():
        line = line.strip()
        if (hit := _RUN.match(line)) is not None:
            run = int(hit.group(1))
        elif (hit := _CURRENT.match(line)) is not None:
            j = int(hit.group(1))
            if not (0 <= run < batch and 0 <= j < n_cols) or not np.isnan(out[run, j]):
                raise ValueError(f"stdout: unexpected current line {line!r} in drive {run}")
            out[run, j] = float(hit.group(2))
    if np.isnan(out).any():
        missing = np.argwhere(np.isnan(out))[0]
        raise ValueError(f"stdout: no value for i(vsense{missing[1]}) in drive {missing[0]}")
    return out


def run_ngspice(netlist_path: str | os.PathLike[str], *, timeout: float = 600.0) -> FloatArray:
    """Run ``ngspice -b`` on a netlist from :func:`write_netlist` and return its sense currents.

    Parameters
    ----------
    netlist_path : path
        A netlist written by :func:`write_netlist`.
    timeout : float
        Seconds before ngspice is killed.

    Returns
    -------
    ndarray of shape (batch, n_cols)
        Currents into the sense nodes [A], one row per drive vector.

    Raises
    ------
    FileNotFoundError
        ngspice is not installed (or the netlist does not exist).
    RuntimeError
        ngspice failed or printed no usable result; the message carries its output.
    """
    path = Path(netlist_path)
    header = _HEADER.search(path.read_text(encoding="ascii"))
    if header is None:
        raise ValueError(f"netlist_path: {path} is not a netlist written by write_netlist")
    _, n_cols, batch = (int(x) for x in header.groups())
    cmd = [_executable(), "-b", str(path)]
    logger.debug("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"ngspice failed on {path} (exit code {proc.returncode}):\n"
                           f"{proc.stderr.strip()}\n{proc.stdout.strip()[-2000:]}")
    try:
        return parse_output(proc.stdout, n_cols, batch)
    except ValueError as exc:
        raise RuntimeError(f"ngspice output for {path} could not be read ({exc}):\n"
                           f"{proc.stderr.strip()}\n{proc.stdout.strip()[-2000:]}") from None
