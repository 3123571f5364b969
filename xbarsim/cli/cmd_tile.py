"""``xbarsim tile``: study one crossbar (ideal vs nodal vs FCM vs AAM, IR drop, rho bound)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from xbarsim.cli.common import InputError, check_new_file, echo_warnings, main

_TILE_OPTIONS = ("rows", "cols", "g_min", "g_max", "seed", "batch", "v_max", "r_source",
                 "r_sense", "r_row", "r_col", "aam_order", "methods")



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
@click.option("--force", is_flag=True, help="Overwrite existing --out / --plot / --spice files.")
@click.pass_context
@echo_warnings
def tile(ctx: click.Context, config_path: Path | None, g_file: str | None, v_file: str | None,
         out: Path | None, plot_dir: Path | None, spice_file: Path | None, force: bool,
         **options: Any) -> None:
    """Study one crossbar: ideal vs nodal vs FCM vs AAM currents, IR drop and rho bound.

    The tile is random (uniform g in [g-min, g-max], inputs in [0, v-max], from --seed), or
    read with --g/--v, or described by --config. Errors are max|i - i_nodal| / max|i_nodal|;
    the IR drop of device (i, j) is v_i - (u - w)_ij with u, w the row- and column-node
    voltages.

    \b
    Examples:
      xbarsim tile --rows 64 --cols 64 --out tile.h5 --plot figs/
      xbarsim tile --config examples/tile.yaml --spice tile.cir
      xbarsim tile --g g.npy --v data.h5:inputs --r-row 2.5
    """  # noqa: D301 (click needs a real backspace, \b, to keep the examples unwrapped)
    # the ordering matters: fail on every input problem before the (possibly long) solve
    check_new_file(out, "--out", force)
    check_new_file(spice_file, "--spice", force)
    if plot_dir is not None:
        from xbarsim import plot

        plot.require_matplotlib()
        existing = [p for p in plot.tile_figure_paths(plot_dir, aam=True).values() if p.exists()]
        if existing and not force:
            raise InputError(f"--plot {plot_dir}: {', '.join(map(str, existing))} exist(s); "
                             f"use --force to overwrite")
    if spice_file is not None:
        write_netlist = _netlist_writer()

    from xbarsim.studies import tile as tile_study

    kwargs: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if config_path is not None:
        cfg = tile_study.load_tile_config(config_path)
        g_file = g_file or cfg.pop("g", None)
        v_file = v_file or cfg.pop("v", None)
        cfg.pop("g", None)
        cfg.pop("v", None)
        kwargs.update(cfg)
    for name in _TILE_OPTIONS:                     # explicit command-line options win
        source = ctx.get_parameter_source(name)
        if name not in kwargs or source is not click.core.ParameterSource.DEFAULT:
            kwargs[name] = options[name]
    g = v = None
    if g_file:
        g = tile_study.load_array(g_file, "--g")
        sources["g"] = str(g_file)
    if v_file:
        v = tile_study.load_array(v_file, "--v")
        sources["v"] = str(v_file)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        study = tile_study.run_tile_study(g, v, sources=sources, **kwargs)
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


