"""Shared pieces of the command-line interface: the ``main`` group, errors and options.

Every command module of :mod:`xbarsim.cli` imports ``main`` from here and registers itself
with ``@main.command()``; :mod:`xbarsim.cli` imports the command modules, so ``xbarsim.cli.main``
is the complete entry point.

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
from xbarsim.runtime import tune_allocator, tune_blas_idle, tune_omp_wait

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
    tune_omp_wait()     # waiting OpenMP threads sleep (Numba's parallel kernels; user's value wins)


def echo_warnings(fn: Callable[..., Any]) -> Callable[..., Any]:
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



EXIT_DIVERGED = 3
"""Exit code of ``xbarsim run`` when training diverged (the history so far is saved)."""

EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C (the last completed epoch is in the checkpoint)."""


class DivergedError(click.ClickException):
    """Training diverged: printed as ``Error: ...``, exit code 3."""

    exit_code = EXIT_DIVERGED


def set_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--set KEY=VALUE`` (repeatable) plus trailing ``KEY=VALUE`` arguments.

    ``--set a=1 b=2`` therefore works as well as ``--set a=1 --set b=2``.
    """
    fn = click.argument("more_overrides", nargs=-1, metavar="[KEY=VALUE]...")(fn)
    return click.option(
        "--set", "overrides", multiple=True, metavar="KEY=VALUE",
        help="Override a config value by its dotted key, e.g. --set train.lr=0.05 (value "
             "parsed as YAML); repeatable, and further KEY=VALUE arguments may follow.")(fn)


def load_run_config(config_path: Path, overrides: tuple[str, ...],
                     more_overrides: tuple[str, ...] = ()) -> Any:
    """``load_config`` of CONFIG with the --set overrides (ConfigError -> exit 2)."""
    from xbarsim.config import load_config

    for item in more_overrides:
        if "=" not in item:
            raise InputError(f"unexpected argument {item!r}: after CONFIG only KEY=VALUE "
                             "overrides may follow (e.g. train.epochs=2)")
    return load_config(config_path, [*overrides, *more_overrides])



def check_new_file(path: Path | None, option: str, force: bool) -> None:
    """Refuse, before any work, to overwrite ``path`` without --force."""
    if path is None:
        return
    if path.is_dir():
        raise InputError(f"{option} {path}: is a directory, expected a file name")
    if path.exists() and not force:
        raise InputError(f"{option} {path}: file exists; use --force to overwrite it")
    if not path.parent.is_dir():
        raise InputError(f"{option} {path}: directory {path.parent} does not exist")


