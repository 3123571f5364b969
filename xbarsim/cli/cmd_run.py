"""``xbarsim run``, ``validate`` and ``show-config``: train or evaluate one configuration."""

from __future__ import annotations

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
@set_options
@click.option("--seed", type=int, help="Master seed (same as --set seed=N).")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run from its checkpoint (<out stem>.ckpt.h5).")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the training-curve PNG into this directory (needs matplotlib).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Dataset folder; replaces data.data_dir and must hold the data.")
@click.option("--force", is_flag=True,
              help="Overwrite an existing run file and checkpoint.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_context
@echo_warnings
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
    cfg = load_run_config(config_path, overrides, more_overrides)
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
@set_options
def validate(config_path: Path, overrides: tuple[str, ...],
             more_overrides: tuple[str, ...]) -> None:
    """Check CONFIG (and --set overrides): print "ok" or every error (exit code 2)."""
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


