"""``xbarsim sweep`` and ``xbarsim report``: many runs of one config, and their results."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import click

from xbarsim.cli.common import EXIT_INTERRUPTED, InputError, echo_warnings, main, set_options


def _parse_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--seeds: expected comma-separated integers, got {text!r}") from None


def _status_text(statuses: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in statuses.items()) or "no runs"


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _figures(out_dir: Path, rows: list[dict[str, Any]], keys: list[str], plot_dir: Path,
             title: str) -> list[Path]:
    from xbarsim import plot_sweep
    from xbarsim.studies.report import load_histories

    return plot_sweep.sweep_figures(rows, keys, load_histories(out_dir, rows), plot_dir,
                                    title=title)


@main.command()
@click.argument("sweep_path", metavar="SWEEP.yaml",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Sweep folder (default: the file's `out:`, else sweeps/<file name>).")
@click.option("--workers", type=int,
              help="Local worker processes (default: the number of cores).")
@click.option("--scheduler", metavar="ADDRESS",
              help="Run the points on this Dask distributed scheduler, e.g. tcp://host:8786 "
                   "(needs xbarsim[dask]).")
@click.option("--dry-run", is_flag=True,
              help="List every run (id, swept values, seed, done/pending) and stop.")
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the sweep figures into this directory (needs matplotlib).")
@click.option("--seeds", "seeds_text", metavar="LIST",
              help="Comma-separated seeds replacing the file's `seeds:`, e.g. --seeds 0.")
@set_options
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Dataset folder, searched after data.data_dir (on every worker).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_context
@echo_warnings
def sweep(ctx: click.Context, sweep_path: Path, out_dir: Path | None, workers: int | None,
          scheduler: str | None, dry_run: bool, plot_dir: Path | None,
          seeds_text: str | None, overrides: tuple[str, ...], more_overrides: tuple[str, ...],
          data_dir: Path | None, no_progress: bool) -> None:
    """Run every point of SWEEP.yaml (a base config, axes over dotted keys, seeds).

    Each run is a full `xbarsim run` with its own run file in OUT/runs/; OUT/results.csv and
    OUT/results.h5 (one row per point and seed) are rewritten after every finished run.
    Finished runs are skipped on a rerun, so an interrupted sweep continues where it stopped;
    a failed run is recorded with its error and retried on the next rerun. --set overrides
    apply to every point. Exit code 0 when every run finished (diverged runs included), 1
    when some failed, 2 for bad input, 130 after Ctrl-C. docs/sweeps.md has the file format.

    \b
    Examples:
      xbarsim sweep examples/studies/b_write_noise_recipe.yaml --dry-run
      xbarsim sweep study.yaml --workers 2 --plot figs/
      xbarsim sweep study.yaml --scheduler tcp://10.0.0.5:8786
      xbarsim sweep study.yaml --seeds 0 --set train.epochs=1 data.n_train=256
    """  # noqa: D301 (click needs a real backspace, \b, to keep the examples unwrapped)
    from xbarsim.studies import sweep as sweep_mod

    for item in more_overrides:
        if "=" not in item:
            raise InputError(f"unexpected argument {item!r}: after SWEEP.yaml only KEY=VALUE "
                             "overrides may follow (e.g. train.epochs=2)")
    if workers is not None and workers < 1:
        raise InputError(f"--workers: expected at least 1, got {workers}")
    if workers is not None and scheduler is not None:
        raise InputError("--workers applies to local processes; with --scheduler the "
                         "cluster's workers run the points (drop one of the two)")
    plan = sweep_mod.load_sweep(sweep_path, [*overrides, *more_overrides],
                                seeds=_parse_seeds(seeds_text))
    if out_dir is None:
        out_dir = Path(plan.out) if plan.out else Path("sweeps") / sweep_path.stem
    if plot_dir is not None:
        from xbarsim.plot import require_matplotlib

        require_matplotlib()
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir}: is a file, expected a folder")

    head = (f"{sweep_path}: {plan.n_points} point{'s' if plan.n_points != 1 else ''} x "
            f"{len(plan.seeds)} seed{'s' if len(plan.seeds) != 1 else ''} = {len(plan.runs)} "
            f"runs -> {out_dir}")
    if dry_run:
        click.echo(head)
        click.echo(_dry_run_table(plan, out_dir))
        return
    click.echo(head)
    # SIGTERM (a batch system ending the job) stops the sweep as cleanly as Ctrl-C
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        summary = sweep_mod.run_sweep(plan, out_dir, workers=workers, scheduler=scheduler,
                                      progress=not no_progress and _stderr_is_terminal(),
                                      data_dir=data_dir, echo=click.echo)
    except sweep_mod.SweepInterrupted as exc:
        s = exc.summary
        click.echo(f"\ninterrupted after {s.elapsed_s:.0f} s: {_status_text(s.statuses)}; "
                   f"the table is in {out_dir / 'results.csv'}. Continue with the same "
                   f"command (finished runs are kept, interrupted ones resume from their "
                   f"last epoch).", err=True)
        ctx.exit(EXIT_INTERRUPTED)
    finally:
        signal.signal(signal.SIGTERM, previous)
    _print_summary(summary.out_dir, summary.rows, list(plan.keys))
    ran = (f"ran {summary.executed} run{'s' if summary.executed != 1 else ''} in "
           f"{summary.elapsed_s:.1f} s on {summary.executor}" if summary.executed
           else "nothing to run")
    click.echo(f"{ran}; {summary.done_before} were done before; now "
               f"{_status_text(summary.statuses)}")
    for path in summary.files:
        click.echo(f"wrote {path}")
    if plot_dir is not None:
        for path in _figures(out_dir, summary.rows, list(plan.keys), plot_dir,
                             plan.description or sweep_path.stem):
            click.echo(f"wrote {path}")
    n_failed = summary.statuses.get("failed", 0)
    if n_failed:
        raise click.ClickException(
            f"{n_failed} of {summary.n_runs} runs failed (the error column of "
            f"{out_dir / 'results.csv'} says why); rerun the same command to retry them")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _dry_run_table(plan: Any, out_dir: Path) -> str:
    from xbarsim.studies.report import render_table
    from xbarsim.studies.sweep import format_value, read_state, short_keys

    keys = list(plan.keys)
    short = short_keys(keys)
    has_label = any(r.label for r in plan.runs)
    header = ["run", "point_id", "point", *(["label"] if has_label else []),
              *(short[k] for k in keys), "seed", "status"]
    body = []
    exists = (out_dir / "runs").is_dir()
    for r in plan.runs:
        state = read_state(out_dir, r.point_id) if exists else None
        if state is None or state.status == "pending":
            status = "pending"
        elif state.done:
            status = f"done ({state.status})"
        elif state.status == "partial":
            epochs = state.summary["attrs"].get("epochs_done", 0) if state.summary else 0
            status = f"pending (resumes after epoch {epochs})" if state.resumable \
                else "pending (restarts)"
        else:
            status = f"pending ({state.status}: {state.error[:60]})"
        body.append([str(r.index), r.point_id, str(r.point), *([r.label] if has_label else []),
                     *(format_value(r.values[k]) for k in keys), str(r.seed), status])
    return render_table(header, body, {0, 2, len(header) - 2})


def _print_summary(out_dir: Path, rows: list[dict[str, Any]], keys: list[str]) -> None:
    from xbarsim.studies.report import format_groups, group_over_seeds

    click.echo("")
    click.echo(format_groups(group_over_seeds(rows, keys), keys))


@main.command()
@click.argument("sweep_dir", metavar="SWEEP_DIR",
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--plot", "plot_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write the sweep figures into this directory (needs matplotlib).")
@click.option("--runs", "show_runs", is_flag=True,
              help="Also list every run (one row per point and seed).")
@echo_warnings
def report(sweep_dir: Path, plot_dir: Path | None, show_runs: bool) -> None:
    """Print the results of a sweep folder grouped over seeds; --plot redraws its figures.

    Reads the stored run files only (nothing is run), so it works on a sweep that is still
    running or was interrupted. Accuracies in percent: mean, sample standard deviation, min
    and max over the seeds whose runs completed.
    """
    from xbarsim.studies.report import format_runs, load_results

    if plot_dir is not None:
        from xbarsim.plot import require_matplotlib

        require_matplotlib()
    results = load_results(sweep_dir)
    m = results.manifest
    source = m.get("sweep_file") or "?"
    click.echo(f"sweep {source} in {sweep_dir}"
               + (f": {m['description']}" if m.get("description") else ""))
    statuses: dict[str, int] = {}
    for row in results.rows:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    click.echo(f"{len(results.rows)} runs: {_status_text(statuses)}")
    _print_summary(sweep_dir, results.rows, results.keys)
    if show_runs:
        click.echo("")
        click.echo(format_runs(results.rows, results.keys))
    if plot_dir is not None:
        title = m.get("description") or Path(str(source)).stem
        for path in _figures(sweep_dir, results.rows, results.keys, plot_dir, title):
            click.echo(f"wrote {path}")
