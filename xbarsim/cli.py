"""Command-line interface: ``xbarsim <command>`` (the single entry point).

Each command parses its options, calls one library function and prints or writes the result.
Heavy modules (NumPy solvers, Numba kernels, h5py, matplotlib) are imported inside the commands,
so ``xbarsim --help`` stays fast and compiles nothing.

Errors about user input (``ValueError``, ``ConfigError``, ``OSError``, a missing optional
dependency) are printed as one ``Error: ...`` line and exit with code 2, without a traceback;
``-vv`` logs the traceback as well.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from xbarsim import __version__
from xbarsim.errors import ConfigError, ConvergenceError
from xbarsim.runtime import tune_allocator, tune_blas_idle

logger = logging.getLogger("xbarsim.cli")

EXIT_INPUT_ERROR = 2
"""Exit code for bad input (the same as click's usage errors)."""


class InputError(click.ClickException):
    """A user-input problem: printed as ``Error: <message>``, exit code 2."""

    exit_code = EXIT_INPUT_ERROR


class _Group(click.Group):
    """A click group that turns library input errors into clean exit-2 messages."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.Abort, click.ClickException):
            raise
        except (ConfigError, ValueError, OSError, ImportError) as exc:
            logger.debug("input error", exc_info=True)
            raise InputError(str(exc)) from None
        except ConvergenceError as exc:
            logger.debug("convergence error", exc_info=True)
            raise click.ClickException(f"{exc} (try --methods nodal)") from None


def _configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="xbarsim")
@click.option("-v", "--verbose", count=True,
              help="More log output: -v info, -vv debug (with tracebacks of input errors).")
def main(verbose: int) -> None:
    """Simulate DNN training on resistive crossbars with circuit non-idealities."""
    _configure_logging(verbose)
    tune_allocator()    # keep freed temporaries mapped (XBARSIM_TUNE_MALLOC=0: leave it)
    tune_blas_idle()    # idle BLAS workers sleep soon (before NumPy loads; the user's value wins)


def _echo_warnings(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command with Python warnings shown as ``warning: ...`` lines on stderr."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            try:
                return fn(*args, **kwargs)
            finally:
                for item in caught:
                    click.echo(f"warning: {item.message}", err=True)
    return wrapper


# ---------------------------------------------------------------------------------------------
# Commands added by other work items go here (ARCHITECTURE.md §1, §2.7):
#   run CONFIG [--out PATH] [--seed N] [--set KEY=VALUE ...]   -> xbarsim.runner.run
#   validate CONFIG                                              -> xbarsim.config.loader
#   show-config CONFIG                                           -> resolved YAML
#   sweep / golden
# Keep each command thin: parse options, call one library function, print the result.
# ---------------------------------------------------------------------------------------------


EXIT_DIVERGED = 3
"""Exit code of ``xbarsim run`` when training diverged (the history so far is saved)."""

EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C (the last completed epoch is in the checkpoint)."""


class DivergedError(click.ClickException):
    """Training diverged: printed as ``Error: ...``, exit code 3."""

    exit_code = EXIT_DIVERGED


def _set_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--set KEY=VALUE`` (repeatable) plus trailing ``KEY=VALUE`` arguments.

    ``--set a=1 b=2`` therefore works as well as ``--set a=1 --set b=2``.
    """
    fn = click.argument("more_overrides", nargs=-1, metavar="[KEY=VALUE]...")(fn)
    return click.option(
        "--set", "overrides", multiple=True, metavar="KEY=VALUE",
        help="Override a config value by its dotted key, e.g. --set train.lr=0.05 (value "
             "parsed as YAML); repeatable, and further KEY=VALUE arguments may follow.")(fn)


def _load_run_config(config_path: Path, overrides: tuple[str, ...],
                     more_overrides: tuple[str, ...] = ()) -> Any:
    """``load_config`` of CONFIG with the --set overrides (ConfigError -> exit 2)."""
    from xbarsim.config import load_config

    for item in more_overrides:
        if "=" not in item:
            raise InputError(f"unexpected argument {item!r}: after CONFIG only KEY=VALUE "
                             "overrides may follow (e.g. train.epochs=2)")
    return load_config(config_path, [*overrides, *more_overrides])


def _format_run_summary(result: Any) -> str:
    """End-of-run table: one row per epoch, then status and output path."""
    h = result.history
    lines = []
    n = len(h.get("epoch", ()))
    if n:
        has_val = "val_acc" in h and len(h["val_acc"]) == n
        head = f"{'epoch':>5}  {'loss':>8}  {'train acc':>9}  " \
               + (f"{'val acc':>8}  " if has_val else "") + f"{'test acc':>8}  {'time [s]':>8}"
        lines += [head, "-" * len(head)]
        for i in range(n):
            row = (f"{int(h['epoch'][i]):>5}  {h['train_loss'][i]:>8.4f}  "
                   f"{100 * h['train_acc'][i]:>8.2f}%  ")
            if has_val:
                row += f"{100 * h['val_acc'][i]:>7.2f}%  "
            row += f"{100 * h['test_acc'][i]:>7.2f}%  {h['seconds'][i]:>8.2f}"
            lines.append(row)
    acc = "n/a" if result.test_acc != result.test_acc else f"{100 * result.test_acc:.2f}%"
    if result.status == "diverged":
        lines.append(f"status: diverged in epoch {result.diverged_epoch} after "
                     f"{result.epochs_done} completed epoch(s); test acc {acc}; wrote "
                     f"{result.out}")
    else:
        lines.append(f"status: {result.status}; test acc {acc}; wrote {result.out}")
    return "\n".join(lines)


@main.command()
@click.argument("config_path", metavar="CONFIG",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="HDF5 run file (default: output.out of the config).")
@_set_options
@click.option("--seed", type=int, help="Master seed (same as --set seed=N).")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run from its checkpoint (<out stem>.ckpt.h5).")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the training-curve PNG into this directory (needs matplotlib).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Dataset folder, searched after data.data_dir and before $XBARSIM_DATA.")
@click.option("--force", is_flag=True,
              help="Overwrite an existing run file and checkpoint.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_context
@_echo_warnings
def run(ctx: click.Context, config_path: Path, out: Path | None, overrides: tuple[str, ...],
        more_overrides: tuple[str, ...], seed: int | None, resume: bool,
        plot_dir: Path | None, data_dir: Path | None, force: bool, no_progress: bool) -> None:
    """Train (or evaluate) a network on simulated crossbars as described by CONFIG.

    Writes an HDF5 run file (resolved config, per-epoch history, final weights and
    conductances) and, after every epoch, a checkpoint for --resume. Exit code 2 for
    configuration or input errors, 3 when training diverged (the history and the last good
    weights are kept in the run file).

    \b
    Examples:
      xbarsim run examples/lenet.yaml --out lenet.h5 --plot figs/
      xbarsim run examples/mlp.yaml --set train.epochs=2 --set data.n_train=1000
      xbarsim run examples/lenet.yaml --out lenet.h5 --resume
    """  # noqa: D301 (click needs a real backspace, \b, to keep the examples unwrapped)
    if seed is not None:
        overrides = (*overrides, f"seed={seed}")
    if out is not None:
        overrides = (*overrides, f"output.out={str(out)!r}")
    if plot_dir is not None:
        overrides = (*overrides, f"output.plot_dir={str(plot_dir)!r}")
    cfg = _load_run_config(config_path, overrides, more_overrides)
    out_path = Path(cfg.output.out)
    from xbarsim import runner

    try:
        result = runner.run(cfg, out=out_path, resume=resume, force=force,
                            plot_dir=cfg.output.plot_dir, progress=not no_progress,
                            data_dir=data_dir)
    except KeyboardInterrupt:
        ckpt = runner.checkpoint_path_for(cfg, out_path)
        click.echo(f"\ninterrupted; the last completed epoch is in {ckpt} (if any): continue "
                   f"with: xbarsim run {config_path} --out {out_path} --resume", err=True)
        ctx.exit(EXIT_INTERRUPTED)
    click.echo(_format_run_summary(result))
    for path in result.plots:
        click.echo(f"wrote {path}")
    if result.status == "diverged":
        kept = (f"the history of the {result.epochs_done} completed epoch(s) and the weights "
                f"of epoch {result.epochs_done} are kept" if result.epochs_done else
                "no epoch completed; the initial weights are kept")
        raise DivergedError(f"{result.message}. Stopped cleanly: {kept} in {result.out} "
                            f"(status 'diverged')")


@main.command()
@click.argument("config_path", metavar="CONFIG",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_set_options
def validate(config_path: Path, overrides: tuple[str, ...],
             more_overrides: tuple[str, ...]) -> None:
    """Check CONFIG (and --set overrides): print "ok" or every error (exit code 2)."""
    _load_run_config(config_path, overrides, more_overrides)
    click.echo(f"ok: {config_path}")


@main.command("show-config")
@click.argument("config_path", metavar="CONFIG",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_set_options
def show_config(config_path: Path, overrides: tuple[str, ...],
                more_overrides: tuple[str, ...]) -> None:
    """Print the resolved configuration of CONFIG (presets expanded, defaults filled) as YAML."""
    from xbarsim.config import dump_config

    click.echo(dump_config(_load_run_config(config_path, overrides, more_overrides)), nl=False)


# ---------------------------------------------------------------------------------------------
# xbarsim tile


_TILE_OPTIONS = ("rows", "cols", "g_min", "g_max", "seed", "batch", "v_max", "r_source",
                 "r_sense", "r_row", "r_col", "aam_order", "methods")


def _check_new_file(path: Path | None, option: str, force: bool) -> None:
    """Refuse, before any work, to overwrite ``path`` without --force."""
    if path is None:
        return
    if path.is_dir():
        raise InputError(f"{option} {path}: is a directory, expected a file name")
    if path.exists() and not force:
        raise InputError(f"{option} {path}: file exists; use --force to overwrite it")
    if not path.parent.is_dir():
        raise InputError(f"{option} {path}: directory {path.parent} does not exist")


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
@_echo_warnings
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
    _check_new_file(out, "--out", force)
    _check_new_file(spice_file, "--spice", force)
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


# ---------------------------------------------------------------------------------------------
# xbarsim bench ...


@main.group()
def bench() -> None:
    """Benchmarks: circuit solvers (tile), one crossbar layer (layer), training steps (train)."""


@bench.result_callback()
def _bench_blas_note(*_: Any, **__: Any) -> None:
    """After every benchmark: the BLAS idle wait it ran with (it moves the numbers)."""
    from xbarsim.studies.bench import blas_note

    click.echo(blas_note())


@bench.command("tile")
@click.option("--sizes", default="32,64,128,256", show_default=True,
              help="Comma-separated square tile sizes n (n x n).")
@click.option("--regimes", default="txsim,harsh", show_default=True,
              help="Comma-separated regimes: txsim (g 1-10 uS, wires 1/4.6 Ohm) and harsh "
                   "(g 50-500 uS, wires 10 Ohm); source/sense 100 Ohm in both.")
@click.option("--repeats", type=int, default=5, show_default=True,
              help="Least number of timed calls per measurement; calls continue until they "
                   "add up to 0.25 s (median reported; a first call is excluded).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--nodal-max-size", type=int, default=None,
              help="Skip the slow nodal solve above this size (default: always run it).")
@_echo_warnings
def bench_tile(sizes: str, regimes: str, repeats: int, seed: int,
               nodal_max_size: int | None) -> None:
    """Time nodal, FCM (direct; iterative cold and warm) and AAM K=1..4 g_eff on square tiles."""
    from xbarsim.studies import bench as bench_mod

    try:
        size_list = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--sizes: expected comma-separated integers, got {sizes!r}") from None
    regime_list = [r.strip() for r in regimes.split(",") if r.strip()]
    records = bench_mod.run_tile_bench(size_list, regime_list, repeats, seed=seed,
                                       nodal_max_size=nodal_max_size)
    click.echo(bench_mod.format_bench_table(records))


@bench.command("layer")
@click.option("--repeats", type=int, default=15, show_default=True,
              help="Timed steps per measurement (median reported; a first step is excluded).")
@_echo_warnings
def bench_layer(repeats: int) -> None:
    """Time forward + backward + update of a 400x120 crossbar layer vs NumPy (batch 128)."""
    from xbarsim.studies.bench_layer import format_layer_bench, run_layer_bench

    click.echo(format_layer_bench(run_layer_bench(repeats=repeats)))


@bench.command("train")
@click.option("--repeats", type=int, default=5, show_default=True,
              help="Timed steps (refresh periods for the interpolated solver) per measurement.")
@click.option("--rounds", type=int, default=3, show_default=True,
              help="Rounds that time every mode in turn (the table gives medians over them).")
@click.option("--parts", is_flag=True,
              help="Also time the refresh, forward, backward and update of the Cross-NI steps "
                   "apart (30 steps each).")
@_echo_warnings
def bench_train(repeats: int, rounds: int, parts: bool) -> None:
    """Time one training step (batch 128): software, Cross-NI and PyTorch when installed."""
    from xbarsim.studies.bench_train import (
        format_step_parts,
        format_train_bench,
        run_step_parts,
        run_train_bench,
    )

    click.echo(format_train_bench(run_train_bench(repeats=repeats, rounds=rounds)))
    if parts:
        results = {(m, method): run_step_parts(m, method)
                   for m in ("lenet5", "mlp") for method in ("fcm", "interpolated")}
        click.echo("\nCross-NI step by part (refresh: mean over 30 steps, others medians):\n")
        click.echo(format_step_parts(results))
