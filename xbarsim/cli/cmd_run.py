"""``xbarsim run``, ``check-config`` and ``show-config``: train or evaluate one configuration.

``validate`` is the deprecated name of ``check-config`` (hidden from ``--help``).
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from xbarsim.cli.common import (
    EXIT_INTERRUPTED,
    DivergedError,
    echo_warnings,
    load_run_config,
    main,
    set_options,
)

EXIT_TERMINATED = 143
"""Exit code after SIGTERM (128 + 15, as a shell reports a process killed by it); the last
completed epoch is in the checkpoint, as after Ctrl-C (exit code 130)."""


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C's KeyboardInterrupt."""


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM into :class:`_Terminated` for the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _has_val(h: dict[str, Any]) -> bool:
    n = len(h.get("epoch", ()))
    return "val_acc" in h and len(h["val_acc"]) == n


def _table_header(has_val: bool) -> list[str]:
    head = f"{'epoch':>5}  {'loss':>8}  {'train acc':>9}  " \
        + (f"{'val acc':>8}  " if has_val else "") + f"{'test acc':>8}  {'time [s]':>8}"
    return [head, "-" * len(head)]


def _table_row(h: dict[str, Any], i: int, has_val: bool) -> str:
    row = f"{int(h['epoch'][i]):>5}  {h['train_loss'][i]:>8.4f}  {100 * h['train_acc'][i]:>8.2f}%  "
    if has_val:
        row += f"{100 * h['val_acc'][i]:>7.2f}%  "
    return row + f"{100 * h['test_acc'][i]:>7.2f}%  {h['seconds'][i]:>8.2f}"


class _EpochTable:
    """Prints the per-epoch table to stdout, one row as each epoch ends (flushed)."""

    def __init__(self) -> None:
        self.printed = 0

    def __call__(self, h: dict[str, Any]) -> None:
        n = len(h.get("epoch", ()))
        if n and not self.printed:
            for line in _table_header(_has_val(h)):
                click.echo(line)
        for i in range(self.printed, n):
            click.echo(_table_row(h, i, _has_val(h)))     # click.echo flushes
        self.printed = max(self.printed, n)


def _format_run_summary(result: Any, printed: int = 0) -> str:
    """End-of-run text: the table rows not printed yet, the status line and the warnings."""
    h = result.history
    lines = []
    n = len(h.get("epoch", ()))
    if n > printed:
        if not printed:
            lines += _table_header(_has_val(h))
        lines += [_table_row(h, i, _has_val(h)) for i in range(printed, n)]
    acc = "n/a" if result.test_acc != result.test_acc else f"{100 * result.test_acc:.2f}%"
    warnings = list(getattr(result, "warnings", []) or [])
    status = result.status + (f" ({len(warnings)} warning{'s' if len(warnings) > 1 else ''} "
                              "below)" if warnings else "")
    if result.status == "diverged":
        lines.append(f"status: diverged in epoch {result.diverged_epoch} after "
                     f"{result.epochs_done} completed epoch(s); test acc {acc}; wrote "
                     f"{result.out}")
    else:
        lines.append(f"status: {status}; test acc {acc}; wrote {result.out}")
    lines += [f"warning: {text}" for text in warnings]
    return "\n".join(lines)


def _continue_command(config_path: Path, out: Path, overrides: tuple[str, ...],
                      seed: int | None, data_dir: Path | None, plot_dir: Path | None) -> str:
    """Build the command line that continues an interrupted run (every option that shaped it)."""
    args = ["xbarsim", "run", str(config_path), "--out", str(out)]
    for item in overrides:
        args += ["--set", item]
    if seed is not None:
        args += ["--seed", str(seed)]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    if plot_dir is not None:
        args += ["--plot", str(plot_dir)]
    return shlex.join([*args, "--resume"])


def _interrupted_message(exc: KeyboardInterrupt, ckpt: Path, command: str) -> str:
    what = "terminated (SIGTERM)" if isinstance(exc, _Terminated) else "interrupted (Ctrl-C)"
    epoch = None
    if ckpt.is_file():
        from xbarsim.io import hdf5

        try:
            epoch = hdf5.read_attrs(ckpt).get("epoch")
        except (OSError, ValueError):
            epoch = None
    if epoch is None:
        return f"\n{what}; no epoch was completed, so there is nothing to resume"
    return (f"\n{what}; the checkpoint {ckpt} holds epoch {epoch}. Continue with:\n"
            f"  {command}")


@main.command()
@click.argument("config_path", metavar="CONFIG",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="HDF5 run file (default: output.out of the config).")
@set_options
@click.option("--seed", type=int, help="Master seed (same as --set seed=N).")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run from its checkpoint (<out stem>.ckpt.h5).")
@click.option("--allow-schedule-change", is_flag=True,
              help="With --resume and another train.epochs: accept that a cosine schedule "
                   "changes (the remaining epochs use the rates of a run of the new length; "
                   "recorded in the run file). Without it such a resume is refused.")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the training-curve PNG into this directory (needs matplotlib).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Dataset folder; replaces data.data_dir and must hold the data.")
@click.option("--force", is_flag=True,
              help="Overwrite an existing run file and checkpoint.")
@click.option("--no-progress", is_flag=True,
              help="No progress bar (there is none anyway when stderr is not a terminal).")
@click.pass_context
@echo_warnings
def run(ctx: click.Context, config_path: Path, out: Path | None, overrides: tuple[str, ...],
        more_overrides: tuple[str, ...], seed: int | None, resume: bool,
        allow_schedule_change: bool, plot_dir: Path | None, data_dir: Path | None,
        force: bool, no_progress: bool) -> None:
    """Train (or evaluate) a network on simulated crossbars as described by CONFIG.

    Writes an HDF5 run file (resolved config, per-epoch history, final weights and
    conductances) and, after every epoch, a checkpoint for --resume; a table line is printed
    as each epoch ends. The run file and checkpoint are locked while the run lasts: a second
    run with the same --out is refused. Exit code 2 for configuration or input errors, 3 when
    training diverged (the history and the last good weights are kept in the run file), 130
    after Ctrl-C and 143 after SIGTERM (the checkpoint keeps the last completed epoch; the
    printed command continues the run). Warnings (e.g. ADC conversions clipped at full scale,
    an output that does not depend on the input) are printed at the end and stored in the run
    file; the exit code stays 0.

    \b
    Examples:
      xbarsim run examples/lenet.yaml --out lenet.h5 --plot figs/
      xbarsim run examples/mlp.yaml --set train.epochs=2 --set data.n_train=1000
      xbarsim run examples/lenet.yaml --out lenet.h5 --resume
    """  # noqa: D301 (click needs a real backspace, \b, to keep the examples unwrapped)
    user_overrides = (*overrides, *more_overrides)
    if seed is not None:
        overrides = (*overrides, f"seed={seed}")
    if out is not None:
        overrides = (*overrides, f"output.out={str(out)!r}")
    if plot_dir is not None:
        overrides = (*overrides, f"output.plot_dir={str(plot_dir)!r}")
    cfg = load_run_config(config_path, overrides, more_overrides)
    out_path = Path(cfg.output.out)
    from xbarsim import runner

    table = _EpochTable()
    progress = not no_progress and _stderr_is_terminal()
    try:
        with _sigterm_interrupts():
            result = runner.run(cfg, out=out_path, resume=resume, force=force,
                                plot_dir=cfg.output.plot_dir, progress=progress,
                                data_dir=data_dir, allow_schedule_change=allow_schedule_change,
                                on_epoch=table, notify=lambda text: click.echo(text, err=True))
    except KeyboardInterrupt as exc:
        if cfg.train.evaluate_only:
            click.echo("\ninterrupted; nothing was written", err=True)
        else:
            command = _continue_command(config_path, out_path, user_overrides, seed, data_dir,
                                        plot_dir)
            click.echo(_interrupted_message(exc, runner.checkpoint_path_for(cfg, out_path),
                                            command), err=True)
        ctx.exit(EXIT_TERMINATED if isinstance(exc, _Terminated) else EXIT_INTERRUPTED)
    click.echo(_format_run_summary(result, table.printed))
    for path in result.plots:
        click.echo(f"wrote {path}")
    if result.status == "diverged":
        kept = (f"the history of the {result.epochs_done} completed epoch(s) and the weights "
                f"of epoch {result.epochs_done} are kept" if result.epochs_done else
                "no epoch completed; the initial weights are kept")
        raise DivergedError(f"{result.message}. Stopped cleanly: {kept} in {result.out} "
                            f"(status 'diverged')")


def _stderr_is_terminal() -> bool:
    """Whether stderr is a terminal (a tqdm bar in a log file is 1000 carriage returns)."""
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


@main.command("check-config")
@click.argument("config_path", metavar="CONFIG",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@set_options
def check_config(config_path: Path, overrides: tuple[str, ...],
                 more_overrides: tuple[str, ...]) -> None:
    """Check the run configuration CONFIG (and --set overrides) without running it.

    Prints "ok" or every error (exit code 2): whatever 'xbarsim run' would refuse before
    reading any data. (To validate another crossbar simulator against xbarsim, see
    'xbarsim golden'.)
    """
    load_run_config(config_path, overrides, more_overrides)
    click.echo(f"ok: {config_path}")


@main.command("validate", hidden=True)
@click.argument("config_path", metavar="CONFIG",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@set_options
def validate(config_path: Path, overrides: tuple[str, ...],
             more_overrides: tuple[str, ...]) -> None:
    """Check CONFIG: the deprecated name of 'xbarsim check-config'."""
    click.echo("note: 'xbarsim validate' is deprecated and will be removed; use 'xbarsim "
               "check-config' (it checks a run configuration; 'xbarsim golden' validates "
               "other simulators)", err=True)
    load_run_config(config_path, overrides, more_overrides)
    click.echo(f"ok: {config_path}")


@main.command("show-config")
@click.argument("config_path", metavar="CONFIG",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@set_options
def show_config(config_path: Path, overrides: tuple[str, ...],
                more_overrides: tuple[str, ...]) -> None:
    """Print the resolved configuration of CONFIG (presets expanded, defaults filled) as YAML."""
    from xbarsim.config import dump_config

    click.echo(dump_config(load_run_config(config_path, overrides, more_overrides)), nl=False)


