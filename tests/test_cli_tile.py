"""``xbarsim tile`` / ``xbarsim bench tile`` end to end through click's CliRunner.

Bad input must give exit code 2, a message naming the option, key or file, and no traceback
(``result.exception`` is the ``SystemExit`` of click's error handling).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose, assert_array_equal

from xbarsim.cli import cmd_tile, main
from xbarsim.hardware.circuit import SolveCost
from xbarsim.io import hdf5, spice
from xbarsim.studies import tile as tile_mod

# matplotlib is an optional extra ('plot'); CI installs it with 'dev'. Only third-party tools
# may skip a test: a module of xbarsim that fails to import must fail the suite
# (tests/test_no_import_skips.py checks it).
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None
needs_mpl = pytest.mark.skipif(not HAVE_MPL, reason="matplotlib not installed (optional extra "
                                                    "'plot')")

SMALL = ["tile", "--rows", "8", "--cols", "6", "--batch", "3", "--seed", "7"]
NODAL = ["--methods", "ideal,nodal"]


def invoke(args):
    return CliRunner().invoke(main, args)


def assert_input_error(result, *fragments):
    """Exit code 2, one clean message, no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert "Error:" in result.output
    for frag in fragments:
        assert frag in result.output, (frag, result.output)


# --- happy paths ------------------------------------------------------------------------------


@needs_mpl
def test_tile_end_to_end_nodal(tmp_path):
    out = tmp_path / "tile.h5"
    figs = tmp_path / "figs"
    result = invoke([*SMALL, *NODAL, "--out", str(out), "--plot", str(figs)])
    assert result.exit_code == 0, result.output
    assert "tile 8 x 6" in result.output and "rho bound" in result.output
    assert "largest IR drop" in result.output
    assert sorted(p.name for p in figs.iterdir()) == [
        "tile_col_nodes.png", "tile_ir_drop.png", "tile_row_nodes.png"]
    for png in figs.iterdir():
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    got = hdf5.read_tile_study(out)
    data, units, attrs = got["data"], got["units"], got["attrs"]
    expected_units = {"g": "S", "v": "V", "i_ideal": "A", "i_nodal": "A", "g_eff": "S",
                      "u": "V", "w": "V", "ir_drop": "V", "r_source": "Ohm", "r_sense": "Ohm"}
    assert units == expected_units
    assert data["g"].shape == (8, 6) and data["v"].shape == (3, 8)
    assert data["i_nodal"].shape == (3, 6) and data["u"].shape == (3, 8, 6)
    for key in ("xbarsim_version", "created_utc", "numpy_version", "scipy_version",
                "numba_version", "rho_bound", "ir_drop_max", "ir_drop_rel", "parameters_yaml"):
        assert key in attrs, key
    assert attrs["rows"] == 8 and attrs["cols"] == 6 and attrs["seed"] == 7
    assert attrs["r_source"] == 100.0 and attrs["r_col"] == 4.6
    assert attrs["methods"] == ["ideal", "nodal"]

    # the file holds exactly what a direct library call computes
    study = tile_mod.run_tile_study(rows=8, cols=6, batch=3, seed=7, methods="ideal,nodal")
    assert_array_equal(data["g"], study.g)
    assert_array_equal(data["v"], study.v)
    assert_array_equal(data["i_ideal"], study.i_ideal)
    for name in ("i_nodal", "g_eff", "u", "w", "ir_drop"):
        assert_allclose(data[name], getattr(study, name), rtol=1e-13, atol=0)
    assert attrs["ir_drop_max"] == pytest.approx(study.ir_drop_max, rel=1e-12)
    assert attrs["err_ideal"] == pytest.approx(study.errors["ideal"], rel=1e-12)


def test_study_physics_sanity():
    study = tile_mod.run_tile_study(rows=8, cols=6, batch=3, seed=1, methods="nodal")
    # i = v @ g_eff exactly (same linear network), parasitics only reduce currents for v >= 0
    assert_allclose(study.i_nodal, study.v @ study.g_eff, rtol=1e-12)
    assert np.all(study.i_nodal <= study.i_ideal)
    assert 0 < study.errors["ideal"] < 0.1
    # IR drop definition: v_i - (u - w)_ij, largest entry and its location
    drop = study.v[:, :, None] - (study.u - study.w)
    assert_allclose(study.ir_drop, drop, rtol=0, atol=1e-15)
    assert study.ir_drop_max == pytest.approx(np.abs(drop).max())
    assert np.abs(drop)[study.ir_drop_argmax] == study.ir_drop_max
    rel = max(np.abs(drop[b]).max() / study.v[b].max() for b in range(3))
    assert study.ir_drop_rel == pytest.approx(rel)


def test_ideal_limit_without_parasitics():
    study = tile_mod.run_tile_study(rows=5, cols=4, batch=2, r_source=0, r_sense=0, r_row=0,
                                    r_col=0, methods="nodal")
    assert_allclose(study.i_nodal, study.i_ideal, rtol=1e-12)
    assert study.ir_drop_max == pytest.approx(0.0, abs=1e-12)


def _dense_rho_bound(g, r_source, r_sense, r_row, r_col):
    """Max row sum of Z D built entry by entry (docs/circuit.md, device-voltage formulation)."""
    m, n = g.shape
    z = np.zeros((m * n, m * n))
    for i in range(m):
        for j in range(n):
            for l_ in range(n):
                z[i * n + j, i * n + l_] += r_source + r_row * min(j, l_)
            for k in range(m):
                z[i * n + j, k * n + j] += r_sense + r_col * (m - 1 - max(i, k))
    return float((z * g.ravel()[None, :]).sum(axis=1).max())


def test_rho_bound_matches_definition():
    study = tile_mod.run_tile_study(rows=5, cols=4, batch=1, methods="nodal")
    assert study.rho_bound == pytest.approx(
        _dense_rho_bound(study.g, 100.0, 100.0, 1.0, 4.6), rel=1e-12)


def test_config_file_and_override(tmp_path):
    cfg = tmp_path / "tile.yaml"
    cfg.write_text("rows: 5\ncols: 4\ng_min: 2.0e-6\ng_max: 4.0e-6\nbatch: 2\n"
                   "r_row: 2.0\nmethods: [nodal]\n")
    out = tmp_path / "t.h5"
    result = invoke(["tile", "--config", str(cfg), "--r-row", "3.0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    attrs = hdf5.read_tile_study(out)["attrs"]
    assert (attrs["rows"], attrs["cols"], attrs["batch"]) == (5, 4, 2)
    assert attrs["g_min"] == 2.0e-6 and attrs["r_row"] == 3.0      # command line wins
    g = hdf5.read_tile_study(out)["data"]["g"]
    assert g.min() >= 2.0e-6 and g.max() <= 4.0e-6


def test_example_config_is_valid():
    cfg = tile_mod.load_tile_config(tile_mod.Path(__file__).parents[1] / "examples/tile.yaml")
    assert cfg["g_min"] == 1.0e-6 and cfg["r_col"] == 4.6


def test_g_and_v_from_files(tmp_path, rng):
    g = rng.uniform(1e-6, 1e-5, (8, 6))
    v = rng.uniform(0, 1, (3, 8))
    np.save(tmp_path / "g.npy", g)
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f["inputs/v"] = v
    out = tmp_path / "t.h5"
    result = invoke(["tile", "--g", str(tmp_path / "g.npy"), "--v",
                     f"{tmp_path / 'in.h5'}:inputs/v", *NODAL, "--out", str(out)])
    assert result.exit_code == 0, result.output
    got = hdf5.read_tile_study(out)
    assert_array_equal(got["data"]["g"], g)
    assert_array_equal(got["data"]["v"], v)
    assert got["attrs"]["g"].endswith("g.npy")


def test_cli_defaults_match_library_defaults():
    params = {p.name: p.default for p in main.commands["tile"].params}
    for key, value in tile_mod.DEFAULTS.items():
        if key == "methods":
            assert tile_mod.parse_methods(params[key]) == value
        else:
            assert params[key] == value, key


@needs_mpl
def test_tile_end_to_end_all_methods(tmp_path):
    out = tmp_path / "tile.h5"
    figs = tmp_path / "figs"
    result = invoke([*SMALL, "--aam-order", "3", "--out", str(out), "--plot", str(figs)])
    assert result.exit_code == 0, result.output
    assert (figs / "tile_aam_error.png").exists()
    got = hdf5.read_tile_study(out)
    data = got["data"]
    for name in ("i_fcm", "i_aam"):
        assert got["units"][name] == "A"
    assert got["units"]["g_eff_fcm"] == "S" and got["units"]["aam_rel_error"] == "1"
    # fcm is exact to its tolerance; aam K=3 is close in the TxSim regime (rho ~ 1e-2)
    assert_allclose(data["i_fcm"], data["i_nodal"], rtol=1e-8, atol=0)
    assert got["attrs"]["err_aam"] < 1e-5
    assert got["attrs"]["err_fcm"] < 1e-8


def test_rho_at_least_one_skips_aam(monkeypatch):
    monkeypatch.setattr("xbarsim.hardware.circuit.rho_bound", lambda g, **kw: 1.5)
    with pytest.warns(UserWarning, match="AAM skipped"):
        study = tile_mod.run_tile_study(rows=4, cols=3, batch=1, methods="nodal,aam")
    assert "aam" not in study.methods and study.i_aam is None
    assert any("AAM skipped" in n for n in study.notes)
    result = invoke(["tile", "--rows", "4", "--cols", "3", "--methods", "nodal,aam"])
    assert result.exit_code == 0, result.output
    assert "note: rho bound 1.5 >= 1" in result.output and "AAM skipped" in result.output
    assert result.output.count("rho bound 1.5") == 1             # no duplicate warning line


def test_harsh_tile_aam_refused_fcm_exact(tmp_path):
    out = tmp_path / "t.h5"
    result = invoke(["tile", "--rows", "16", "--cols", "16", "--g-min", "5.0e-5", "--g-max",
                     "5.0e-4", "--r-row", "10", "--r-col", "10", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "AAM skipped" in result.output
    got = hdf5.read_tile_study(out)
    assert "i_aam" not in got["data"] and got["attrs"]["methods"] == ["ideal", "nodal", "fcm"]
    assert got["attrs"]["err_fcm"] < 1e-9


def test_rho_above_half_warns_but_runs_aam(monkeypatch):
    monkeypatch.setattr("xbarsim.hardware.circuit.rho_bound", lambda g, **kw: 0.7)
    result = invoke(["tile", "--rows", "4", "--cols", "3", "--methods", "nodal,aam"])
    assert result.exit_code == 0, result.output
    assert "AAM is inaccurate" in result.output and "aam K=2" in result.output


def test_spice_netlist_reproduces_currents(tmp_path):
    cir, out = tmp_path / "tile.cir", tmp_path / "tile.h5"
    result = invoke([*SMALL, *NODAL, "--spice", str(cir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "batch=3" in cir.read_text()
    try:
        i_spice = spice.run_ngspice(cir)
    except FileNotFoundError:
        pytest.skip("ngspice not installed")
    i_nodal = hdf5.read_tile_study(out)["data"]["i_nodal"]
    assert_allclose(i_spice, i_nodal, rtol=1e-9, atol=1e-15)   # TOL.spice_rtol / spice_atol


# --- bad input -> exit 2, clean message -------------------------------------------------------


def test_negative_resistance():
    assert_input_error(invoke([*SMALL, *NODAL, "--r-source", "-5"]), "r_source", ">= 0")


def test_g_max_below_g_min():
    assert_input_error(invoke([*SMALL, *NODAL, "--g-min", "1e-5", "--g-max", "1e-6"]), "g_max")


def test_unknown_method_suggests():
    assert_input_error(invoke([*SMALL, "--methods", "nodal,fmc"]), "fmc", "did you mean 'fcm'")


def test_unknown_yaml_key_with_suggestion(tmp_path):
    cfg = tmp_path / "tile.yaml"
    cfg.write_text("rows: 4\nr_rwo: 1.0\n")
    assert_input_error(invoke(["tile", "--config", str(cfg)]),
                       str(cfg), "r_rwo", "did you mean 'r_row'")


def test_yaml_exponent_string_gotcha(tmp_path):
    cfg = tmp_path / "tile.yaml"
    cfg.write_text("g_min: 1e-6\ng_max: 1.0e-5\n")
    assert_input_error(invoke(["tile", "--config", str(cfg)]),
                       "g_min", "'1e-6'", "write 1.0e-6")


def test_yaml_errors_are_collected(tmp_path):
    cfg = tmp_path / "tile.yaml"
    cfg.write_text("rows: four\ncolz: 3\nr_source: [1.0, 2e3]\n")
    result = invoke(["tile", "--config", str(cfg)])
    assert_input_error(result, "rows: expected an integer", "colz", "did you mean 'cols'",
                       "r_source[1]", "write 2.0e3")


def test_missing_config_file(tmp_path):
    assert_input_error(invoke(["tile", "--config", str(tmp_path / "nope.yaml")]), "nope.yaml")


def test_missing_g_file(tmp_path):
    assert_input_error(invoke(["tile", "--g", str(tmp_path / "missing.npy")]),
                       "--g", "missing.npy")


def test_missing_h5_dataset(tmp_path):
    with h5py.File(tmp_path / "g.h5", "w") as f:
        f["cond"] = np.ones((3, 2))
    assert_input_error(invoke(["tile", "--g", f"{tmp_path / 'g.h5'}:conductance", *NODAL]),
                       "--g", "conductance", "cond")


def test_shape_mismatch_between_g_and_v(tmp_path, rng):
    np.save(tmp_path / "g.npy", rng.uniform(1e-6, 1e-5, (8, 6)))
    np.save(tmp_path / "v.npy", rng.uniform(0, 1, (3, 5)))
    assert_input_error(invoke(["tile", "--g", str(tmp_path / "g.npy"), "--v",
                               str(tmp_path / "v.npy"), *NODAL]),
                       "v:", "(3, 5)", "(8, 6)")


def test_negative_conductance_file(tmp_path):
    np.save(tmp_path / "g.npy", -np.ones((2, 2)))
    assert_input_error(invoke(["tile", "--g", str(tmp_path / "g.npy"), *NODAL]), "g:", ">= 0")


def test_existing_out_without_force_is_untouched(tmp_path):
    out = tmp_path / "tile.h5"
    out.write_bytes(b"earlier results")
    assert_input_error(invoke([*SMALL, *NODAL, "--out", str(out)]), "--out", "--force")
    assert out.read_bytes() == b"earlier results"
    result = invoke([*SMALL, *NODAL, "--out", str(out), "--force"])
    assert result.exit_code == 0, result.output
    assert hdf5.read_tile_study(out)["attrs"]["rows"] == 8


def test_plot_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # import matplotlib -> ImportError
    result = invoke([*SMALL, *NODAL, "--plot", str(tmp_path / "figs")])
    assert_input_error(result, "matplotlib", "pip install")
    assert not (tmp_path / "figs").exists()


def test_spice_writer_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "xbarsim.io.spice", None)
    result = invoke([*SMALL, *NODAL, "--spice", str(tmp_path / "t.cir")])
    assert_input_error(result, "--spice", "write_netlist")


# --- bench ------------------------------------------------------------------------------------


def test_bench_tile_small():
    result = invoke(["bench", "tile", "--sizes", "4,6", "--regimes", "txsim", "--repeats", "1"])
    assert result.exit_code == 0, result.output
    assert "| txsim | 6 |" in result.output
    assert "Growth exponent" in result.output


def test_bench_records_and_exponent():
    from xbarsim.studies import bench

    recs = bench.run_tile_bench([4, 6], ["txsim", "harsh"], repeats=1, nodal_max_size=4)
    assert [(r["regime"], r["n_rows"]) for r in recs] == [
        ("txsim", 4), ("txsim", 6), ("harsh", 4), ("harsh", 6)]
    assert recs[0]["nodal_s"] > 0 and recs[1]["nodal_s"] is None
    for r in recs:
        assert r["fcm_cold_s"] > 0 and r["iter_cold_s"] > 0 and r["iter_warm_s"] > 0
        assert r["err_iter"] < 1e-9 and r["err_iter_warm"] < 1e-9
    assert recs[0]["reference"] == "nodal" and recs[0]["err_fcm"] < 1e-12
    assert recs[1]["reference"] == "fcm" and recs[1]["err_fcm"] is None
    table = bench.format_bench_table(recs)
    assert "iterative warm" in table and "warm refresh <= half a cold one" in table
    fake = [{"regime": "x", "cells": c, "t": 2.0 * c ** 1.5} for c in (16, 64, 256)]
    assert bench.fit_growth_exponent(fake, key="t")["x"] == pytest.approx(1.5)


def test_bench_bad_regime():
    assert_input_error(invoke(["bench", "tile", "--regimes", "soft"]), "soft", "txsim")


# --- import hygiene ---------------------------------------------------------------------------


def test_import_and_help_do_not_import_numba():
    code = textwrap.dedent("""
        import json, sys
        import xbarsim
        after_import = "numba" in sys.modules
        from xbarsim.cli import main
        for args in (["--help"], ["tile", "--help"], ["bench", "tile", "--help"], ["--version"]):
            try:
                main(args)
            except SystemExit as exc:
                assert exc.code == 0, (args, exc.code)
        print(json.dumps({"import": after_import, "help": "numba" in sys.modules,
                          "h5py": "h5py" in sys.modules}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    flags = json.loads(proc.stdout.strip().splitlines()[-1])
    assert flags == {"import": False, "help": False, "h5py": False}


def test_median_time_calls_until_min_seconds():
    from xbarsim.studies.bench import median_time

    calls = []
    median, first = median_time(lambda: calls.append(1) or len(calls), 3, min_seconds=0.02)
    assert first == 1
    assert len(calls) > 4          # a no-op call takes far less than 0.02 s / 3
    calls.clear()
    median_time(lambda: calls.append(1), 3)
    assert len(calls) == 4         # one untimed call and exactly `repeats` timed ones
    calls.clear()
    median_time(lambda: calls.append(1), 2, min_seconds=10.0, max_calls=7)
    assert len(calls) == 8
    assert median >= 0.0



# --- large tiles: skip the nodal solve, estimates, refusal, Ctrl-C ----------------------------


def test_no_nodal_takes_fcm_as_the_reference(tmp_path):
    out = tmp_path / "t.h5"
    result = invoke([*SMALL, "--no-nodal", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "err vs fcm" in result.output and "IR drop: not computed" in result.output
    assert "nodal " not in result.output.split("errors:")[0]      # no nodal row in the table
    got = hdf5.read_tile_study(out)
    assert got["attrs"]["reference"] == "fcm" and got["attrs"]["methods"] == [
        "ideal", "fcm", "aam"]
    for name in ("i_nodal", "u", "w", "ir_drop"):
        assert name not in got["data"]
    assert "ir_drop_max" not in got["attrs"]
    # g_eff is FCM's, and the errors are measured against it
    study = tile_mod.run_tile_study(rows=8, cols=6, batch=3, seed=7)
    assert_allclose(got["data"]["g_eff"], study.g_eff, rtol=1e-14)
    assert got["attrs"]["err_ideal"] == pytest.approx(study.errors["ideal"], rel=1e-12)


def test_no_nodal_library():
    study = tile_mod.run_tile_study(rows=6, cols=5, batch=2, methods="ideal,aam", nodal=False)
    assert study.reference == "fcm" and study.methods == ("ideal", "fcm", "aam")
    assert study.i_nodal is None and study.u is None and study.ir_drop_argmax is None
    assert set(study.errors) == {"ideal", "aam"}
    assert "IR drop: not computed" in tile_mod.format_summary(study)


def test_estimates_refuse_before_any_work(tmp_path, monkeypatch):
    """Too large for the memory available: exit 2 naming the estimate and the ways out, and
    no solver runs."""
    monkeypatch.setattr(tile_mod, "available_memory", lambda: 1 << 10)
    monkeypatch.setattr(tile_mod, "solve_tile_study",
                        lambda *a, **k: pytest.fail("the solve must not start"))
    out = tmp_path / "t.h5"
    result = invoke([*SMALL, "--out", str(out)])
    assert_input_error(result, "estimated at about", "GiB", "nodal ~", "--no-nodal",
                       "--allow-large", "9.54e-07 GiB of memory available")
    assert not out.exists()
    # FCM alone is refused too, without the advice to skip the nodal solve
    result = invoke([*SMALL, "--no-nodal"])
    assert_input_error(result, "fcm ~", "--allow-large")
    assert "--no-nodal" not in result.output


def test_estimates_refuse_long_solves_and_allow_large_overrides(monkeypatch):
    monkeypatch.setattr(cmd_tile, "MAX_SECONDS", 1e-9)
    assert_input_error(invoke([*SMALL, *NODAL]), "estimated at about", "--allow-large")
    result = invoke([*SMALL, *NODAL, "--allow-large"])
    assert result.exit_code == 0, result.output
    assert "note: the solves of this 8 x 6 tile are estimated at about" in result.output
    assert "Ctrl-C stops them" in result.output and "largest IR drop" in result.output


def test_real_large_tile_is_refused_quickly():
    """2048 x 2048 with the nodal solve: hours by the estimate; refused up front."""
    t0 = time.perf_counter()
    result = invoke(["tile", "--rows", "2048", "--cols", "2048", "--methods", "ideal,nodal"])
    assert_input_error(result, "2048 x 2048", "nodal ~", " h ", "--no-nodal")
    assert time.perf_counter() - t0 < 60


def test_estimates_grow_with_the_tile():
    small = tile_mod.prepare_tile_study(rows=16, cols=16).estimates()
    large = tile_mod.prepare_tile_study(rows=512, cols=512, g_min=1e-8,
                                        g_max=1e-7).estimates()
    assert set(small) == {"nodal", "fcm", "aam"}
    for m in small:
        assert isinstance(large[m], SolveCost)
        assert large[m].seconds > 100 * small[m].seconds and large[m].bytes > 100 * small[m].bytes
    assert "aam" not in tile_mod.prepare_tile_study(rows=256, cols=256).estimates()  # rho >= 1
    assert "nodal" not in tile_mod.prepare_tile_study(rows=8, cols=8, nodal=False).estimates()


def test_huge_conductance_is_refused_with_the_cli_way_out():
    result = invoke([*SMALL, "--g-min", "1e30", "--g-max", "2e30"])
    assert_input_error(result, "g: the largest conductance 2e+30 S", "beyond 1e+12",
                       "--no-nodal")
    result = invoke([*SMALL, "--g-min", "1e30", "--g-max", "2e30", "--no-nodal"])
    assert result.exit_code == 0, result.output


def test_tiny_conductance_is_refused():
    assert_input_error(invoke([*SMALL, "--g-min", "1e-300", "--g-max", "2e-300"]),
                       "g: a conductance must be 0", "1.49e-154 S")


def test_ctrl_c_stops_a_large_solve_promptly(tmp_path):
    """SIGINT to a 384 x 384 tile (about a minute of nodal solve) ends it within seconds, with
    exit code 130, one message and no output file."""
    out = tmp_path / "t.h5"
    code = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from xbarsim.cli import main; main()")         # SIGINT may be ignored if inherited
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-c", code, "tile", "--rows", "384", "--cols",
                             "384", "--methods", "ideal,nodal", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first = proc.stderr.readline()                    # the estimate: the solve starts now
        assert "estimated at about" in first, first
        time.sleep(1.0)
        assert proc.poll() is None, "finished before the interrupt"
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
        elapsed = time.perf_counter() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (stdout, stderr)
    assert elapsed < 5.0, elapsed
    assert "Error: interrupted (Ctrl-C)" in stderr and "Traceback" not in stderr
    assert not out.exists() and stdout == ""


# --- options that contradict --g / --v -------------------------------------------------------


@pytest.fixture
def g_file(tmp_path, rng):
    path = tmp_path / "g.npy"
    np.save(path, rng.uniform(1e-6, 1e-5, (8, 6)))
    return path


@pytest.fixture
def v_file(tmp_path, rng):
    path = tmp_path / "v.npy"
    np.save(path, rng.uniform(0, 1, (3, 8)))
    return path


@pytest.mark.parametrize(("extra", "names"), [
    (["--rows", "16"], ["--rows"]),
    (["--cols", "6"], ["--cols"]),                 # even when it happens to agree
    (["--g-min", "1e-6", "--g-max", "2e-6"], ["--g-min", "--g-max"]),
])
def test_random_g_options_with_g_file_are_errors(g_file, extra, names):
    result = invoke(["tile", "--g", str(g_file), *NODAL, *extra])
    assert_input_error(result, *names, "has no effect with --g", "leave it out")


def test_random_v_options_and_seed_with_files_are_errors(g_file, v_file):
    assert_input_error(invoke(["tile", "--v", str(v_file), "--batch", "5", *NODAL]),
                       "--batch has no effect with --v")
    assert_input_error(invoke(["tile", "--g", str(g_file), "--v", str(v_file), "--seed", "3",
                               *NODAL]), "--seed has no effect with both --g and --v")
    # --seed with --g alone still draws the inputs: fine
    assert invoke(["tile", "--g", str(g_file), "--seed", "3", *NODAL]).exit_code == 0


def test_config_keys_that_contradict_g(tmp_path, g_file):
    cfg = tmp_path / "t.yaml"
    cfg.write_text(f"g: {g_file}\nrows: 16\n")
    assert_input_error(invoke(["tile", "--config", str(cfg), *NODAL]),
                       f"rows in {cfg} has no effect with --g")


def test_library_refuses_contradicting_arguments(rng):
    g = rng.uniform(1e-6, 1e-5, (4, 3))
    with pytest.raises(ValueError, match="rows: has no effect when g is given"):
        tile_mod.run_tile_study(g, rows=16, methods="nodal")
    with pytest.raises(ValueError, match="seed: has no effect when g and v are given"):
        tile_mod.run_tile_study(g, np.ones(4), seed=1, methods="nodal")


# --- heat maps show the vector the summary names ---------------------------------------------


@pytest.mark.skipif(not HAVE_MPL, reason="matplotlib not installed")
# matplotlib 3.9's mathtext with pyparsing >= 3.3 (the lowest allowed matplotlib and today's
# pyparsing) raises pyparsing's deprecation warnings: between the two, not ours
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_heat_maps_show_the_vector_with_the_largest_ir_drop(tmp_path, monkeypatch):
    from xbarsim import plot

    v = np.full((4, 8), 0.1)
    v[2] = 0.9                                    # vector 2 has the largest IR drop
    study = tile_mod.run_tile_study(v=v, rows=8, cols=6, seed=3, methods="nodal,aam")
    assert study.ir_drop_argmax[0] == 2
    drawn = []
    real = plot.heatmap
    monkeypatch.setattr(plot, "heatmap", lambda data, path, **kw: drawn.append(
        (data, kw)) or real(data, path, **kw))
    paths = plot.tile_figures(study, tmp_path)
    assert len(paths) == 4 and all(p.exists() for p in paths)
    row_maps, col_map, drop_map = (d for d, _ in drawn[:3])
    assert_array_equal(row_maps[0], study.u[2])
    assert_array_equal(col_map, study.w[2])
    assert_array_equal(drop_map, study.ir_drop[2])
    assert "input vector 2 (largest IR drop)" in drawn[0][1]["suptitle"]
    for _, kw in drawn[1:3]:
        assert "input vector 2 (largest IR drop)" in kw["title"]
    summary = tile_mod.format_summary(study)
    assert "at vector 2," in summary
    # an explicit choice is drawn and named as such
    drawn.clear()
    plot.tile_figures(study, tmp_path, force=True, vector=0)
    assert_array_equal(drawn[2][0], study.ir_drop[0])
    assert "input vector 0," in drawn[2][1]["title"]
    with pytest.raises(IndexError, match="vector"):
        plot.tile_figures(study, tmp_path, force=True, vector=4)


@pytest.mark.skipif(not HAVE_MPL, reason="matplotlib not installed")
def test_no_nodal_plots_only_the_aam_map(tmp_path):
    figs = tmp_path / "figs"
    result = invoke([*SMALL, "--no-nodal", "--plot", str(figs)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in figs.iterdir()) == ["tile_aam_error.png"]


@pytest.mark.parametrize("case", ["a", "b", "c"])
def test_aam_map_studies_run_as_written(case, tmp_path):
    """examples/studies/f_aam_map_*.yaml (TxSim Fig. 6) with the command in their header."""
    path = Path(__file__).resolve().parents[1] / "examples" / "studies" / f"f_aam_map_{case}.yaml"
    text = path.read_text()
    assert f"#   xbarsim tile --config examples/studies/f_aam_map_{case}.yaml --no-nodal" in text
    result = CliRunner().invoke(main, ["tile", "--config", str(path), "--no-nodal"])
    assert result.exit_code == 0, result.output
    rho = float(result.output.split("rho bound (AAM converges for < 1):")[1].split()[0])
    # the three ranges span TxSim's negligible / small / considerable cases
    lo, hi = {"a": (0.03, 0.15), "b": (0.15, 0.5), "c": (0.5, 1.0)}[case]
    assert lo <= rho < hi
