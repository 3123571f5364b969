"""``xbarsim deploy``: trained weights on many simulated chips, one accuracy per chip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from xbarsim.cli.common import InputError, check_new_file, echo_warnings, main, set_options


def format_deployment(result: Any) -> str:
    """Per-chip table and the distribution (mean, std, worst, best) of a deployment."""
    lines = [f"{'chip':>4}  {'seed':>12}  {'test acc':>8}  {'time [s]':>8}", "-" * 38]
    for k, (seed, acc, sec) in enumerate(zip(result.chip_seeds, result.accuracies,
                                             result.seconds, strict=True)):
        lines.append(f"{k:>4}  {int(seed):>12}  {100 * acc:>7.2f}%  {sec:>8.2f}")
    lines.append(f"digital weights ({result.source_mode}-trained): {100 * result.ideal_acc:.2f}%")
    lines.append(f"{result.accuracies.size} chips: mean {100 * result.mean:.2f}%, std "
                 f"{100 * result.std:.2f}%, worst {100 * result.worst:.2f}%, best "
                 f"{100 * result.best:.2f}%")
    return "\n".join(lines)


@main.command()
@click.argument("source", metavar="RUN",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--config", "config_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Run config whose hardware section describes the chips (its "
                   "hardware.variation.chip_seed is the first chip's seed).")
@click.option("--chips", type=click.IntRange(min=1), default=10, show_default=True,
              help="Number of chips (chip k has chip_seed + k).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the per-chip accuracies to this HDF5 file.")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write a histogram of the accuracies into this directory (needs "
                   "matplotlib).")
@click.option("--sigma-program", type=click.FloatRange(min=0.0), default=0.0,
              show_default=True,
              help="Programming error: std of the programmed conductance relative to "
                   "g_max - g_min.")
@click.option("--rescale", is_flag=True,
              help="Derive each layer's weight scale from the weights even when RUN stores "
                   "the one it was trained with.")
@set_options
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Dataset folder, searched after data.data_dir and before $XBARSIM_DATA.")
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
@echo_warnings
def deploy(source: Path, config_path: Path, chips: int, out: Path | None,
           plot_dir: Path | None, sigma_program: float, rescale: bool,
           overrides: tuple[str, ...], more_overrides: tuple[str, ...],
           data_dir: Path | None, force: bool) -> None:
    """Deploy the weights of RUN (a run file or checkpoint, any training mode) on many chips.

    Every chip is simulated in full with the hardware of --config (mapping, tiling,
    parasitics, solver, converters, device precision) and its own draw of the process
    variation; ADC ranges are calibrated on training batches, then each chip is evaluated on
    the test set. The model, data and input standardisation come from RUN; --set overrides
    apply to the combination (e.g. --set data.n_test=2000).

    \b
    Examples:
      xbarsim deploy aware.h5 --chips 10 --config hw.yaml --out deploy.h5 --plot figs/
      xbarsim deploy sw.h5 --config hw.yaml --set hardware.variation.sigma_pv=0.2
    """  # noqa: D301 (click needs a real backspace, \b, to keep the examples unwrapped)
    for item in more_overrides:
        if "=" not in item:
            raise InputError(f"unexpected argument {item!r}: after RUN only KEY=VALUE "
                             "overrides may follow (e.g. data.n_test=1000)")
    check_new_file(out, "--out", force)
    from xbarsim.config import load_config
    from xbarsim.deploy import deploy as run_deploy

    hw = load_config(config_path).hardware

    def progress(k: int, n: int, acc: float) -> None:
        click.echo(f"chip {k + 1}/{n}: test acc {100 * acc:.2f}%", err=True)

    result = run_deploy(source, hw, chips=chips, overrides=[*overrides, *more_overrides],
                        out=out, plot_dir=plot_dir, force=force, sigma_program=sigma_program,
                        rescale=rescale, data_dir=data_dir, on_chip=progress)
    click.echo(format_deployment(result))
    for path in (result.out, result.plot):
        if path is not None:
            click.echo(f"wrote {path}")
