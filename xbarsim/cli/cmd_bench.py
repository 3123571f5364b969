"""``xbarsim bench ...``: benchmarks of the circuit solvers, one layer and training steps."""

from __future__ import annotations

from typing import Any

import click

from xbarsim.cli.common import InputError, echo_warnings, main


@main.group()
def bench() -> None:
    """Benchmarks: circuit solvers (tile, api), refresh, one layer (layer), training (train)."""


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
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True,
              help="Least number of timed calls per measurement; calls continue until they "
                   "add up to 0.25 s (median reported; a first call is excluded).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--nodal-max-size", type=click.IntRange(min=0), default=None,
              help="Skip the slow nodal solve above this size (default: always run it).")
@echo_warnings
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
@click.option("--repeats", type=click.IntRange(min=1), default=15, show_default=True,
              help="Timed steps per measurement (median reported; a first step is excluded).")
@echo_warnings
def bench_layer(repeats: int) -> None:
    """Time forward + backward + update of a 400x120 crossbar layer vs NumPy (batch 128)."""
    from xbarsim.studies.bench_layer import format_layer_bench, run_layer_bench

    click.echo(format_layer_bench(run_layer_bench(repeats=repeats)))


def _model_list(models: str) -> tuple[str, ...]:
    from xbarsim.studies.bench_train import check_models

    try:
        return check_models(tuple(m.strip() for m in models.split(",") if m.strip()))
    except ValueError as err:
        raise InputError(f"--models: {err}") from None


@bench.command("train")
@click.option("--models", default="lenet5,mlp", show_default=True,
              help="Comma-separated networks: lenet5, mlp (MNIST-shaped inputs), resnet20, "
                   "vgg_small (CIFAR-10-shaped; minutes per model). Inputs are synthetic.")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True,
              help="Timed steps (refresh periods for the interpolated solver) per measurement "
                   "(at most 2 steps and 1 period for resnet20 and vgg_small).")
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Rounds that time every mode in turn (the table gives medians over them).")
@click.option("--rss/--no-rss", default=True, show_default=True,
              help="Measure the peak memory of every mode in a fresh process.")
@click.option("--parts", is_flag=True,
              help="Also time the refresh, forward, backward and update of the Cross-NI steps "
                   "apart (30 steps each).")
@echo_warnings
def bench_train(models: str, repeats: int, rounds: int, rss: bool, parts: bool) -> None:
    """Time one training step (batch 128): software, Cross-NI and PyTorch when installed."""
    from xbarsim.studies.bench_train import (
        format_step_parts,
        format_train_bench,
        run_step_parts,
        run_train_bench,
    )

    names = _model_list(models)
    click.echo(format_train_bench(run_train_bench(names, repeats=repeats, rounds=rounds,
                                                  rss=rss)))
    if parts:
        results = {(m, method): run_step_parts(m, method)
                   for m in names for method in ("fcm", "interpolated")}
        click.echo("\nCross-NI step by part (refresh: mean over 30 steps, others medians):\n")
        click.echo(format_step_parts(results))


@bench.command("refresh")
@click.option("--models", default="lenet5,mlp", show_default=True,
              help="Comma-separated networks (see bench train) whose arrays are refreshed.")
@click.option("--rounds", type=click.IntRange(min=1), default=5, show_default=True,
              help="Rounds (batched refresh, per-array refresh and a GEMM in each).")
@echo_warnings
def bench_refresh(models: str, rounds: int) -> None:
    """Time the exact refresh of every array of a network against the machine's GEMM rate."""
    from xbarsim.studies.bench_train import format_refresh_bench, run_refresh_bench

    click.echo(format_refresh_bench(run_refresh_bench(_model_list(models), rounds=rounds)))


@bench.command("api")
@click.option("--size", type=click.IntRange(min=2, max=512), default=64, show_default=True,
              help="Array side n (n x n).")
@click.option("--rounds", type=click.IntRange(min=1), default=7, show_default=True,
              help="Rounds alternating the two solves (median of per-round ratios).")
@echo_warnings
def bench_api(size: int, rounds: int) -> None:
    """One g_eff through xbarsim.effective_conductance against SciPy's sparse LU."""
    from xbarsim.studies.bench_api import format_api_bench, run_api_bench

    click.echo(format_api_bench(run_api_bench(size, rounds=rounds)))
