"""``xbarsim tile``: study one crossbar (ideal vs nodal vs FCM vs AAM, IR drop, rho bound)."""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from xbarsim.cli.common import (
    EXIT_INTERRUPTED,
    InputError,
    check_new_file,
    echo_warnings,
    main,
)

_TILE_OPTIONS = ("rows", "cols", "g_min", "g_max", "seed", "batch", "v_max", "r_source",
                 "r_sense", "r_row", "r_col", "aam_order", "methods")

#: Options that describe random conductances / random inputs (meaningless with --g / --v).
_RANDOM_G = ("rows", "cols", "g_min", "g_max")
_RANDOM_V = ("batch", "v_max")

#: Refuse (without --allow-large) solves estimated to take longer than this [s] ...
MAX_SECONDS = 600.0
#: ... or to need more than this fraction of the memory available.
MAX_MEMORY_FRACTION = 0.8
#: Say how long the solves will take (and that Ctrl-C stops them) from this estimate [s].
NOTE_SECONDS = 10.0
#: How often the main thread wakes while the solve runs in its worker thread [s].
POLL_SECONDS = 0.1


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML file with any of the options below (underscored keys, SI units); "
                   "options given on the command line override it.")
@click.option("--g", "g_file", metavar="FILE",
              help="Conductances [S] from FILE.npy or FILE.h5:DATASET (instead of random).")
@click.option("--v", "v_file", metavar="FILE",
              help="Input voltages [V], shape (batch, rows) or (rows,), from .npy or .h5.")
@click.option("--rows", type=int, default=64, show_default=True, help="Rows of a random tile.")
@click.option("--cols", type=int, default=64, show_default=True, help="Columns of a random tile.")
@click.option("--g-min", type=float, default=1.0e-6, show_default=True,
              help="Smallest random conductance [S].")
@click.option("--g-max", type=float, default=1.0e-5, show_default=True,
              help="Largest random conductance [S].")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of random g and v.")
@click.option("--batch", type=int, default=4, show_default=True,
              help="Number of random input vectors.")
@click.option("--v-max", type=float, default=1.0, show_default=True,
              help="Random inputs are uniform in [0, v-max] [V].")
@click.option("--r-source", type=float, default=100.0, show_default=True,
              help="Driver resistance per row [Ohm].")
@click.option("--r-sense", type=float, default=100.0, show_default=True,
              help="Sense resistance per column [Ohm].")
@click.option("--r-row", type=float, default=1.0, show_default=True,
              help="Row wire resistance per cell segment [Ohm].")
@click.option("--r-col", type=float, default=4.6, show_default=True,
              help="Column wire resistance per cell segment [Ohm].")
@click.option("--aam-order", type=int, default=2, show_default=True,
              help="Path terms K of the AAM.")
@click.option("--methods", default="ideal,nodal,fcm,aam", show_default=True,
              help="Comma-separated methods to compare (ideal and nodal always run).")
@click.option("--out", type=click.Path(path_type=Path), help="Write everything to this HDF5 file.")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write PNG heat maps into this directory (needs matplotlib).")
@click.option("--spice", "spice_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write an ngspice netlist of the tile (one .op run per input vector).")
@click.option("--nodal/--no-nodal", "run_nodal", default=True, show_default=True,
              help="Run the golden nodal solve. --no-nodal skips it (for large tiles): FCM's "
                   "direct solver, exact to round-off, becomes the reference; no node "
                   "voltages, IR drop or node maps then.")
@click.option("--allow-large", is_flag=True,
              help=f"Run even when the solves are estimated to take more than "
                   f"{MAX_SECONDS / 60:g} min or {100 * MAX_MEMORY_FRACTION:g} % of the "
                   f"available memory (refused otherwise, before any work).")
@click.option("--force", is_flag=True, help="Overwrite existing --out / --plot / --spice files.")
@click.pass_context
@echo_warnings
def tile(ctx: click.Context, config_path: Path | None, g_file: str | None, v_file: str | None,
         out: Path | None, plot_dir: Path | None, spice_file: Path | None, run_nodal: bool,
         allow_large: bool, force: bool, **options: Any) -> None:
    """Study one crossbar: ideal vs nodal vs FCM vs AAM currents, IR drop and rho bound.

    The tile is random (uniform g in [g-min, g-max], inputs in [0, v-max], from --seed), or
    read with --g/--v, or described by --config. Errors are max|i - i_nodal| / max|i_nodal|;
    the IR drop of device (i, j) is v_i - (u - w)_ij with u, w the row- and column-node
    voltages. Large tiles: the time and memory of the solves are estimated first; Ctrl-C
    stops a running solve (exit code 130).

    \b
    Examples:
      xbarsim tile --rows 64 --cols 64 --out tile.h5 --plot figs/
      xbarsim tile --config examples/tile.yaml --spice tile.cir
      xbarsim tile --g g.npy --v data.h5:inputs --r-row 2.5
      xbarsim tile --rows 1024 --cols 1024 --no-nodal
    """  # noqa: D301 (click needs a real backspace, \b, to keep the examples unwrapped)
    # the ordering matters: fail on every input problem before the (possibly long) solve
    check_new_file(out, "--out", force)
    check_new_file(spice_file, "--spice", force)
    if plot_dir is not None:
        from xbarsim import plot

        plot.require_matplotlib()
        existing = [p for p in plot.tile_figure_paths(plot_dir, aam=True, nodal=run_nodal).values()
                    if p.exists()]
        if existing and not force:
            raise InputError(f"--plot {plot_dir}: {', '.join(map(str, existing))} exist(s); "
                             f"use --force to overwrite")
    if spice_file is not None:
        write_netlist = _netlist_writer()

    from xbarsim.studies import tile as tile_study

    kwargs: dict[str, Any] = {}
    where: dict[str, str] = {}               # how each option was given, for messages
    sources: dict[str, str] = {}
    if config_path is not None:
        cfg = tile_study.load_tile_config(config_path)
        g_file = g_file or cfg.pop("g", None)
        v_file = v_file or cfg.pop("v", None)
        cfg.pop("g", None)
        cfg.pop("v", None)
        kwargs.update(cfg)
        where.update({k: f"{k} in {config_path}" for k in cfg})
    for name in _TILE_OPTIONS:                     # explicit command-line options win
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT:
            kwargs[name] = options[name]
            where[name] = "--" + name.replace("_", "-")
    _check_no_contradiction(where, g_file, v_file)
    g = v = None
    if g_file:
        g = tile_study.load_array(g_file, "--g")
        sources["g"] = str(g_file)
    if v_file:
        v = tile_study.load_array(v_file, "--v")
        sources["v"] = str(v_file)

    from xbarsim.hardware.circuit import NodalRangeError

    try:
        inputs = tile_study.prepare_tile_study(g, v, sources=sources, nodal=run_nodal,
                                               **kwargs)
    except NodalRangeError as exc:
        raise InputError(f"{exc} (here: --no-nodal)") from None
    _check_estimates(inputs, allow_large)

    def solve() -> tuple[Any, list[warnings.WarningMessage]]:
        # warnings are recorded in the thread that issues them
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            return tile_study.solve_tile_study(inputs), caught

    study, caught = _interruptible(solve)
    click.echo(tile_study.format_summary(study))   # lists the study's warnings as notes
    for item in caught:
        if str(item.message) not in study.notes:
            click.echo(f"warning: {item.message}", err=True)

    if out is not None:
        from xbarsim.io import hdf5

        datasets, attrs = study.hdf5_records()
        hdf5.write_tile_study(out, datasets=datasets, attrs=attrs, force=force)
        click.echo(f"wrote {out}")
    if plot_dir is not None:
        for path in plot.tile_figures(study, plot_dir, force=force):
            click.echo(f"wrote {path}")
        if study.u is not None:
            click.echo(f"(node and IR-drop maps of input vector "
                       f"{plot.tile_figure_vector(study)}, the one with the largest IR drop)")
    if spice_file is not None:
        write_netlist(spice_file, study.g, study.v, r_source=study.r_source,
                      r_sense=study.r_sense, r_row=study.r_row, r_col=study.r_col,
                      title=f"xbarsim tile {study.shape[0]}x{study.shape[1]}, "
                            f"batch {study.v.shape[0]}")
        click.echo(f"wrote {spice_file} (ngspice netlist, one .op run per input vector)")


def _netlist_writer() -> Callable[..., Any]:
    """``xbarsim.io.spice.write_netlist``, or a clear error when it is not available."""
    try:
        from xbarsim.io.spice import write_netlist
    except ImportError as exc:
        raise InputError(f"--spice: the netlist writer xbarsim.io.spice.write_netlist is not "
                         f"available in this installation ({exc})") from None
    return write_netlist


def _check_no_contradiction(where: dict[str, str], g_file: str | None,
                            v_file: str | None) -> None:
    """Refuse options that describe random data the files replace (exit 2)."""
    problems = []
    if g_file:
        problems += [f"{where[k]} has no effect with --g {g_file} (the conductances and the "
                     f"tile's shape come from the file)" for k in _RANDOM_G if k in where]
    if v_file:
        problems += [f"{where[k]} has no effect with --v {v_file} (the input vectors come "
                     f"from the file)" for k in _RANDOM_V if k in where]
    if g_file and v_file and "seed" in where:
        problems.append(f"{where['seed']} has no effect with both --g and --v (nothing is "
                        f"random)")
    if problems:
        raise InputError("; ".join(problems) + "; leave it out")


def _fmt_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.2g} s"
    if seconds < 5400:
        return f"{seconds / 60:.2g} min"
    return f"{seconds / 3600:.2g} h"


def _check_estimates(inputs: Any, allow_large: bool) -> None:
    """Refuse (exit 2) or announce solves estimated to be long or large."""
    from xbarsim.studies.tile import available_memory

    est = inputs.estimates()
    if not est:
        return
    seconds = sum(c.seconds for c in est.values())
    memory = sum(c.bytes for c in est.values())
    avail = available_memory()
    parts = ", ".join(f"{m} ~{_fmt_seconds(c.seconds)}, {c.bytes / 2**30:.2g} GiB"
                      for m, c in est.items())
    n_rows, n_cols = inputs.shape
    too_long = seconds > MAX_SECONDS
    too_big = avail is not None and memory > MAX_MEMORY_FRACTION * avail
    if (too_long or too_big) and not allow_large:
        have = "" if avail is None else f"; {avail / 2**30:.3g} GiB of memory available"
        skip = (" skip the nodal solve with --no-nodal (FCM, exact to round-off, becomes the "
                "reference; no IR-drop maps),") if "nodal" in est else ""
        raise InputError(
            f"the solves of this {n_rows} x {n_cols} tile are estimated at about "
            f"{_fmt_seconds(seconds)} and {memory / 2**30:.3g} GiB ({parts}{have}). "
            f"To go ahead anyway:{skip} use a smaller tile or fewer --methods, or pass "
            f"--allow-large")
    if seconds > NOTE_SECONDS or too_long or too_big:
        click.echo(f"note: the solves of this {n_rows} x {n_cols} tile are estimated at about "
                   f"{_fmt_seconds(seconds)} and {memory / 2**30:.3g} GiB ({parts}); Ctrl-C "
                   f"stops them", err=True)


def _interruptible(task: Callable[[], Any]) -> Any:
    """Run ``task`` in a worker thread so that Ctrl-C stops it promptly (exit code 130).

    The solvers spend their time in SuperLU and in Numba kernels that release the GIL but
    cannot be interrupted; Python delivers SIGINT to the main thread only, between bytecodes.
    So the main thread waits for the worker in short timed joins, and on Ctrl-C it reports
    and ends the process at once: nothing has been written yet (outputs are written after
    the solve, by the main thread), and waiting for the worker, or for the solver threads'
    queued blocks at interpreter exit, could take minutes.
    """
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = task()
        except BaseException as exc:  # noqa: BLE001  (re-raised in the main thread)
            result["error"] = exc

    worker = threading.Thread(target=run, name="xbarsim-tile-solve", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(POLL_SECONDS)
    except KeyboardInterrupt:
        click.echo("Error: interrupted (Ctrl-C) during the solve; nothing was written",
                   err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
    if "error" in result:
        raise result["error"]
    return result["value"]
