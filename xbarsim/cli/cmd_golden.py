"""``xbarsim golden``: make the golden reference suite, run adapters, check other tools."""

from __future__ import annotations

from pathlib import Path

import click

from xbarsim.cli.common import InputError, check_new_file, echo_warnings, main

EXIT_CHECK_FAILED = 1
"""Exit code of ``golden check`` when a quantity exceeds its tolerance (or none was compared)."""


@main.group()
def golden() -> None:
    """Golden reference suite for validating other crossbar simulators (docs/golden.md).

    \b
    xbarsim golden make --out suite.h5              the default suite
    xbarsim golden adapt badcrossbar suite.h5 --out theirs.h5
    xbarsim golden check suite.h5 theirs.h5 --report report.csv
    """  # noqa: D301 (click needs a real backspace, \b, to keep the examples unwrapped)


@golden.command("make")
@click.argument("spec_path", metavar="[SPEC]", required=False,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path),
              help="Suite file to write (HDF5, e.g. suite.h5).")
@click.option("--force", is_flag=True, help="Overwrite an existing --out file.")
@echo_warnings
def make(spec_path: Path | None, out_path: Path, force: bool) -> None:
    """Make a golden suite from SPEC (YAML), or the default suite without SPEC.

    The default suite (print it with 'xbarsim golden spec') has the shipped ngspice-verified
    tiles, tiles from 1 x 1 to 256 x 256 in the TxSim and harsh regimes (open devices,
    per-line, zero and wire-like terminals, zero wires), three layer cases and one MLP
    training step: about 4 MB, made in about 10-20 s.
    """
    from xbarsim.golden.make import make_suite, write_suite
    from xbarsim.golden.spec import load_spec

    check_new_file(out_path, "--out", force)
    spec = load_spec(spec_path)
    made = make_suite(spec, progress=lambda name: click.echo(f"making {name}", err=True))
    path = write_suite(made, out_path, force=force)
    kinds: dict[str, int] = {}
    for case in made.cases.values():
        kind = case["attrs"]["case_kind"]
        kinds[kind] = kinds.get(kind, 0) + 1
    counts = ", ".join(f"{n} {k}" for k, n in kinds.items())
    click.echo(f"wrote {path}: {len(made.cases)} cases ({counts}), "
               f"{path.stat().st_size / 1e6:.1f} MB, made in {made.total_seconds:.1f} s")


@golden.command("spec")
def spec() -> None:
    """Print the specification of the default suite (YAML), to copy and edit."""
    from xbarsim.golden.spec import default_spec_text

    click.echo(default_spec_text(), nl=False)


@golden.command("adapt")
@click.argument("tool", type=click.Choice(["badcrossbar"]))
@click.argument("suite_path", metavar="SUITE",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path),
              help="Results to write: .h5, .npz or .csv (the suite's schema).")
@click.option("--force", is_flag=True, help="Overwrite an existing --out file.")
@echo_warnings
def adapt(tool: str, suite_path: Path, out_path: Path, force: bool) -> None:
    """Run TOOL on every case of SUITE it can express; write its results (THEIRS).

    Cases the tool cannot express are recorded as refused, with the reason.
    """
    from xbarsim.golden import adapters

    if out_path.suffix.lower() not in adapters.FORMATS:
        raise InputError(f"--out {out_path}: expected a results file name ending in "
                         f"{', '.join(adapters.FORMATS)}")
    check_new_file(out_path, "--out", force)
    suite = adapters.read_suite(suite_path)
    results = adapters.TOOLS[tool](suite, progress=lambda n: click.echo(f"{tool}: {n}",
                                                                          err=True))
    adapters.write_results(out_path, results, force=force)
    click.echo(f"wrote {out_path}: {results.tool} on {len(results.cases)} cases, "
               f"{len(results.refused)} refused")
    for case, reason in results.refused.items():
        click.echo(f"  refused {case}: {reason}")


@golden.command("check")
@click.argument("suite_path", metavar="SUITE",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("theirs_path", metavar="THEIRS",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--report", "report_path", type=click.Path(path_type=Path),
              help="Also write the table as .csv or .json.")
@click.option("--tolerance", "tolerances", multiple=True, metavar="[NAME=]VALUE",
              help="Override a tolerance: NAME=VALUE for one quantity (e.g. i_sense=1e-6), "
                   "VALUE for all. Repeatable.")
@click.option("--failures-only", is_flag=True, help="Print only the rows that failed.")
@click.option("--force", is_flag=True, help="Overwrite an existing --report file.")
@click.pass_context
def check(ctx: click.Context, suite_path: Path, theirs_path: Path, report_path: Path | None,
          tolerances: tuple[str, ...], failures_only: bool, force: bool) -> None:
    """Compare THEIRS (.h5, .npz or .csv in the suite's schema) with SUITE.

    Prints, per case and quantity, the largest error relative to the quantity's scale, the
    worst element, both values there and pass/FAIL against the tolerance. Exit code 0 when
    everything compared passed, 1 when anything failed (or nothing was compared), 2 for
    unreadable or mismatched input.
    """
    from xbarsim.golden import adapters
    from xbarsim.golden.check import check_results, parse_tolerances

    if report_path is not None:
        if report_path.suffix.lower() not in (".csv", ".json"):
            raise InputError(f"--report {report_path}: expected a .csv or .json file name")
        check_new_file(report_path, "--report", force)
    overrides = parse_tolerances(tolerances)
    suite = adapters.read_suite(suite_path)
    theirs = adapters.read_results(theirs_path)
    report = check_results(suite, theirs, tolerances=overrides)
    if failures_only:
        shown = report.rows
        report.rows = report.failed
        click.echo(report.table())
        report.rows = shown
    else:
        click.echo(report.table())
    click.echo("")
    click.echo(report.summary())
    if report_path is not None:
        report.write(report_path, force=force)
        click.echo(f"wrote {report_path}")
    if report.failed or not report.compared:
        ctx.exit(EXIT_CHECK_FAILED)


@golden.command("show")
@click.argument("suite_path", metavar="SUITE",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
def show(suite_path: Path) -> None:
    """List the cases of SUITE: kind, description and datasets with their shapes."""
    from xbarsim.golden import adapters

    suite = adapters.read_suite(suite_path)
    attrs = suite["attrs"]
    click.echo(f"{suite_path}: {len(suite['cases'])} cases, made by xbarsim "
               f"{attrs.get('xbarsim_version', '?')} on {attrs.get('created_utc', '?')}")
    for name, case in suite["cases"].items():
        a = case["attrs"]
        click.echo(f"\n{name} [{a.get('case_kind')}]: {a.get('description', '')}")
        for dname, value in case["data"].items():
            meta = case["meta"].get(dname, {})
            shape = "x".join(map(str, getattr(value, "shape", ()))) or "scalar"
            click.echo(f"  {meta.get('role', ''):<7} {dname:<22} {shape:<18} "
                       f"[{meta.get('units', '')}]")
