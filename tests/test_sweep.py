"""``xbarsim sweep`` / ``xbarsim report``: the sweep file, ids, executors, resuming, failures.

End-to-end runs use real MNIST (the ``mnist_path`` fixture; skipped when absent): 200 training
and 200 test images, a 784-16-10 MLP, one epoch, in software mode (and one cheap crossbar
point), so a run takes well under a second once Numba's cache is warm. Runs that must fail,
die or hang get a stand-in for ``xbarsim.runner.run`` from :mod:`tests.test_sweep_hooks`,
which also counts the runs each sweep executed (``calls.log``).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import example, given
from hypothesis import strategies as st

from tests import test_sweep_hooks as hooks
from xbarsim.cli import main
from xbarsim.errors import ConfigError
from xbarsim.io import hdf5
from xbarsim.studies import sweep as sw
from xbarsim.studies.report import group_over_seeds, load_results

REPO = Path(__file__).resolve().parents[1]
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None
HAVE_DASK = importlib.util.find_spec("distributed") is not None

BASE = """\
seed: 0
data: {dataset: mnist, n_train: 200, n_test: 200}
model: {name: mlp, hidden: [16]}
train: {mode: software, epochs: 1, batch_size: 50, lr: 0.1}
"""


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def base(tmp_path: Path, mnist_path: Path) -> Path:
    return write(tmp_path / "base.yaml",
                 BASE.replace("n_train: 200", f"data_dir: '{mnist_path}', n_train: 200"))


@pytest.fixture
def offline_base(tmp_path: Path) -> Path:
    """The base without data (for tests that only load sweep files)."""
    return write(tmp_path / "base.yaml", BASE)


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def assert_input_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for frag in fragments:
        assert frag in result.output, (frag, result.output)


# ---------------------------------------------------------------------------------------------
# the sweep file


def test_grid_zip_points_and_seeds_combine_as_a_product(tmp_path, offline_base):
    path = write(tmp_path / "s.yaml", """\
        base: base.yaml
        points:
          - {label: plain}
          - {label: heavy, train.momentum: 0.9}
        zip:
          model.hidden: [[8], [16]]
          train.batch_size: [20, 40]
        grid:
          train.lr: [0.05, 0.1, 0.2]
        seeds: [4, 7]
        """)
    plan = sw.load_sweep(path)
    assert plan.n_points == 2 * 2 * 3
    assert len(plan.runs) == 2 * 2 * 3 * 2
    assert plan.keys == ("train.momentum", "model.hidden", "train.batch_size", "train.lr")
    assert plan.seeds == (4, 7)
    first, last = plan.runs[0], plan.runs[-1]
    assert (first.label, first.seed, first.values) == (
        "plain", 4, {"train.momentum": 0.0, "model.hidden": [8], "train.batch_size": 20,
                     "train.lr": 0.05})
    assert first.config.train.momentum == 0.0          # resolved from the base
    assert (last.label, last.seed, last.config.train.momentum, last.config.model.hidden,
            last.config.train.batch_size, last.config.train.lr) == ("heavy", 7, 0.9, (16,), 40,
                                                                     0.2)
    assert [r.index for r in plan.runs] == list(range(1, 25))
    # seeds inner: the two runs of a point share the config id, nothing else does
    assert [r.point for r in plan.runs[:4]] == [1, 1, 2, 2]
    assert plan.runs[0].config_id == plan.runs[1].config_id != plan.runs[2].config_id
    assert len({r.point_id for r in plan.runs}) == 24
    assert len({r.config_id for r in plan.runs}) == 12


def test_ids_survive_unrelated_edits_and_change_with_the_config(tmp_path, offline_base):
    one = write(tmp_path / "one.yaml", """\
        base: base.yaml
        grid: {train.lr: [0.05, 0.1]}
        seeds: [0, 1]
        """)
    # reordered values, a new value, another seed, a description, an explicit restatement of
    # a base value and another data folder: the runs they share keep their ids
    two = write(tmp_path / "two.yaml", """\
        description: edited
        base: base.yaml
        set: {train.epochs: 1, data.data_dir: /elsewhere}
        grid: {train.lr: [0.2, 0.1, 0.05]}
        seeds: [1, 0, 2]
        out: somewhere
        """)
    ids_one = {(r.values["train.lr"], r.seed): r.point_id for r in sw.load_sweep(one).runs}
    ids_two = {(r.values["train.lr"], r.seed): r.point_id for r in sw.load_sweep(two).runs}
    assert ids_one.items() <= ids_two.items()
    three = write(tmp_path / "three.yaml", """\
        base: base.yaml
        set: {train.epochs: 2}
        grid: {train.lr: [0.05, 0.1]}
        seeds: [0, 1]
        """)
    ids_three = {(r.values["train.lr"], r.seed): r.point_id for r in sw.load_sweep(three).runs}
    assert not set(ids_three.values()) & set(ids_one.values())


def test_inline_base_with_presets_and_preset_points(tmp_path):
    path = write(tmp_path / "s.yaml", """\
        base:
          preset: txsim
          data: {n_train: 100, n_test: 100}
        points:
          - {label: Cross-NI}
          - {label: Cross-Ideal, preset: cross_ideal}
          - {label: software, preset: software}
        """)
    plan = sw.load_sweep(path)
    ni, ideal, soft = (r.config for r in plan.runs)
    assert (ni.hardware.solver.method, ideal.hardware.solver.method) == ("fcm", "ideal")
    assert (ni.train.mode, ideal.train.mode, soft.train.mode) == ("crossbar", "crossbar",
                                                                  "software")
    assert all(c.data.n_train == 100 for c in (ni, ideal, soft))
    assert [r.values["preset"] for r in plan.runs] == ["", "cross_ideal", "software"]
    assert plan.seeds == (0,)       # the base's seed when `seeds:` is absent


def test_set_accepts_a_list_of_key_value_strings_and_cli_overrides_win(tmp_path, offline_base):
    path = write(tmp_path / "s.yaml", """\
        base: base.yaml
        set: ["train.epochs=3", "train.lr=0.5"]
        grid: {train.momentum: [0.0, 0.5]}
        """)
    plan = sw.load_sweep(path, ["train.lr=0.25"], seeds=[3])
    assert {(r.config.train.epochs, r.config.train.lr, r.seed) for r in plan.runs} == {(3, 0.25,
                                                                                         3)}


@pytest.mark.parametrize("text, fragments", [
    ("base: base.yaml\ngrdi: {train.lr: [0.1]}\n", ["grdi: unknown key; did you mean 'grid'?"]),
    ("base: base.yaml\ngrid: {train.lrr: [0.1]}\n",
     ["grid: train.lrr: unknown key 'train.lrr'; did you mean 'train.lr'?"]),
    ("base: base.yaml\ngrid: {train.lr: [0.1, -1.0]}\n",
     ["point 2 (train.lr=-1): train.lr: expected float > 0, got -1.0"]),
    ("base: base.yaml\ngrid: {train.lr: 0.1}\n", ["grid.train.lr: expected a non-empty list"]),
    ("base: base.yaml\nzip: {train.lr: [0.1, 0.2], train.epochs: [1]}\n",
     ["zip: the axes advance together and need equal lengths",
      "train.lr: 2, train.epochs: 1"]),
    ("base: base.yaml\ngrid: {train.lr: [0.1]}\nzip: {train.lr: [0.2]}\n",
     ["train.lr is also swept in zip"]),
    ("base: base.yaml\ngrid: {seed: [0, 1]}\n", ["'seed' cannot be swept here; list the seeds"]),
    ("base: base.yaml\nseeds: [0, 0]\n", ["seeds: [0, 0] lists a seed twice"]),
    ("base: base.yaml\nseeds: [-1]\n", ["seeds: expected integers >= 0"]),
    ("base: base.yaml\npoints: [{train.lr: 0.1}, {train.lr: 0.1}]\n",
     ["point 2 (train.lr=0.1): resolves to the same configuration as point 1"]),
    ("base: missing.yaml\n", ["base: cannot read", "missing.yaml"]),
    ("base: base.yaml\ngrid: {train.lr: [0.1]}\nset: {train.epochs: 0}\n",
     ["point 1 (train.lr=0.1): train.epochs: expected int >= 1"]),
    ("base: base.yaml\ngrid: {train.mode: [software, quantum]}\n",
     ["point 2 (train.mode=quantum): train.mode:"]),
    ("- just a list\n", ["top level: expected a mapping"]),
])
def test_bad_sweep_files_name_the_place_and_exit_2(tmp_path, offline_base, text, fragments):
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        sw.load_sweep(path)
    for frag in fragments:
        assert frag in str(info.value), (frag, str(info.value))
    result = invoke("sweep", path, "--dry-run")
    assert_input_error(result, str(path), *fragments)


def test_cli_set_cannot_override_a_swept_key(tmp_path, offline_base):
    path = write(tmp_path / "s.yaml", "base: base.yaml\ngrid: {train.lr: [0.1, 0.2]}\n")
    assert_input_error(invoke("sweep", path, "--dry-run", "--set", "train.lr=0.3",
                              "train.epochz=2"),
                       "--set train.lr: the sweep varies this key (grid)",
                       "did you mean 'train.epochs'?")
    assert_input_error(invoke("sweep", path, "--seeds", "0,x"), "--seeds")
    assert_input_error(invoke("sweep", path, "--workers", "0"), "--workers")


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8)
                    | st.floats(allow_nan=False), lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(min_size=1, max_size=5), inner, max_size=3),
                    max_leaves=6))
@example({"\n": None}).via("CI failure: a key holding a line break")
@example(["a\rb", "\x85", "\u2028", "\U0001f600", 'q"\\'])
def test_swept_values_reach_the_loader_unchanged(value):
    text = sw._inline_yaml(value)
    assert "\n" not in text and "\r" not in text
    assert yaml.safe_load(text) == value
    escaped = sw._escaped_flow(value)    # the fallback, exercised on every example
    assert "\n" not in escaped and "\r" not in escaped
    assert yaml.safe_load(escaped) == value


def test_short_keys_are_unique_suffixes():
    keys = ["hardware.device.r_min", "hardware.crossbar.n_rows", "hardware.forward.adc.bits",
            "hardware.backward.adc.bits"]
    assert sw.short_keys(keys) == {
        "hardware.device.r_min": "r_min", "hardware.crossbar.n_rows": "n_rows",
        "hardware.forward.adc.bits": "forward.adc.bits",
        "hardware.backward.adc.bits": "backward.adc.bits"}


def test_table_files_round_trip(tmp_path):
    rows = [{"point_id": "a", "config_id": "c", "point": 1, "label": "", "seed": 0,
             "hardware.forward.adc.bits": None, "train.lr": 0.1, "status": "completed",
             "final_test_acc": 0.5, "epochs_done": 2, "error": ""},
            {"point_id": "b", "config_id": "d", "point": 2, "label": "x, \"y\"", "seed": 1,
             "hardware.forward.adc.bits": 4, "train.lr": 0.2, "status": "pending",
             "final_test_acc": float("nan"), "epochs_done": float("nan"), "error": "E: 1,2"}]
    keys = ["hardware.forward.adc.bits", "train.lr"]
    csv_path, h5_path = sw.write_results(tmp_path, rows, keys, attrs={"sweep_file": "s.yaml"})
    back = read_csv(csv_path)
    assert [r["hardware.forward.adc.bits"] for r in back] == ["null", "4"]   # YAML text
    assert [r["epochs_done"] for r in back] == ["2", ""]
    assert [r["final_test_acc"] for r in back] == ["0.5", ""]
    assert [r["label"] for r in back] == ["", 'x, "y"'] and back[1]["error"] == "E: 1,2"
    columns, attrs = hdf5.read_table(h5_path)
    assert list(columns)[:7] == ["point_id", "config_id", "point", "label", "seed", *keys]
    assert columns["hardware.forward.adc.bits"] == ["null", "4"]
    np.testing.assert_array_equal(columns["train.lr"], [0.1, 0.2])
    np.testing.assert_array_equal(columns["epochs_done"], [2.0, np.nan])
    assert attrs["kind"] == "table" and attrs["sweep_file"] == "s.yaml"
    assert attrs["swept_keys"] == keys
    with pytest.raises(ValueError, match="different lengths"):
        hdf5.write_table(tmp_path / "t.h5", {"a": [1, 2], "b": [1]})
    with pytest.raises(ValueError, match="mixes strings and numbers"):
        hdf5.write_table(tmp_path / "t.h5", {"a": [1, "x"]})
    with pytest.raises(FileExistsError):
        hdf5.write_table(h5_path, {"a": [1]})


def test_dry_run_lists_every_run_and_writes_nothing(tmp_path, offline_base):
    path = write(tmp_path / "s.yaml", """\
        base: base.yaml
        points: [{label: a, train.lr: 0.1}, {label: b, train.lr: 0.2}]
        seeds: [0, 5]
        """)
    out = tmp_path / "out"
    result = invoke("sweep", path, "--out", out, "--dry-run")
    assert result.exit_code == 0, result.output
    plan = sw.load_sweep(path)
    lines = result.output.splitlines()
    assert "2 points x 2 seeds = 4 runs" in lines[0]
    for run in plan.runs:
        line = next(x for x in lines if run.point_id in x)
        assert line.split()[-2:] == [str(run.seed), "pending"]
        assert run.label in line
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# running: local worker processes


def test_sweep_report_and_plots_end_to_end_on_local_workers(tmp_path, base):
    path = write(tmp_path / "s.yaml", """\
        description: tiny MLP
        base: base.yaml
        points:
          - {label: slow, train.lr: 0.05}
          - {label: fast, train.lr: 0.2, train.momentum: 0.5}
        seeds: [0, 1]
        """)
    out, figs = tmp_path / "out", tmp_path / "figs"
    args = ["sweep", path, "--out", out, "--workers", 2, "--no-progress"]
    if HAVE_MPL:
        args += ["--plot", figs]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "4 of 4 runs to run on 2 local worker processes (1 thread each)" in result.output
    plan = sw.load_sweep(path)
    rows = read_csv(out / "results.csv")
    assert [r["point_id"] for r in rows] == [r.point_id for r in plan.runs]
    assert list(rows[0])[:8] == ["point_id", "config_id", "point", "label", "seed", "train.lr",
                                 "train.momentum", "status"]
    for row, run in zip(rows, plan.runs, strict=True):
        assert row["status"] == "completed"
        assert int(row["seed"]) == run.seed and row["label"] == run.label
        stored = hdf5.read_run(out / row["run_file"])
        assert stored["attrs"]["seed"] == run.seed
        assert stored["attrs"]["mode"] == run.config.train.mode
        assert float(row["final_test_acc"]) == pytest.approx(stored["attrs"]["test_acc"])
        assert float(row["final_train_loss"]) == stored["history"]["train_loss"][-1]
        assert int(row["epochs_done"]) == 1 and row["error"] == ""
        assert float(row["elapsed_s"]) > 0
    assert [(r["train.lr"], r["train.momentum"]) for r in rows] == \
        [("0.05", "0.0")] * 2 + [("0.2", "0.5")] * 2
    # the HDF5 table holds the same
    columns, attrs = hdf5.read_table(out / "results.h5")
    assert columns["point_id"] == [r["point_id"] for r in rows]
    assert attrs["sweep_file"] == str(path)
    np.testing.assert_array_equal(columns["seed"], [0, 1] * 2)
    np.testing.assert_allclose(columns["final_test_acc"],
                               [float(r["final_test_acc"]) for r in rows])
    # the same seed gives the same numbers in another process (software mode)
    assert rows[0]["final_test_acc"] != "" and rows[0]["config_id"] == rows[1]["config_id"]
    # the grouped table in the output and from `report`
    for text in (result.output, invoke("report", out).output):
        assert "slow" in text and "2/2" in text and "2 completed" in text
    rep = invoke("report", out, "--runs")
    assert rep.exit_code == 0, rep.output
    assert "4 runs: 4 completed" in rep.output
    assert all(r["point_id"] in rep.output for r in rows)
    groups = group_over_seeds(load_results(out).rows, list(plan.keys))
    accs = [float(rows[i]["final_test_acc"]) for i in (0, 1)]
    assert groups[0]["final_test_acc"]["mean"] == pytest.approx(np.mean(accs))
    assert groups[0]["final_test_acc"]["std"] == pytest.approx(np.std(accs, ddof=1))
    assert groups[0]["final_test_acc"]["min"] == min(accs)
    if HAVE_MPL:
        pngs = sorted(p.name for p in figs.glob("*.png"))
        assert pngs == ["curves.png", "metrics_vs_lr.png", "metrics_vs_momentum.png"]
        redo = tmp_path / "figs2"
        rep = invoke("report", out, "--plot", redo)
        assert rep.exit_code == 0, rep.output
        assert sorted(p.name for p in redo.glob("*.png")) == pngs
    # a rerun finds everything done and runs nothing
    again = invoke("sweep", path, "--out", out, "--no-progress")
    assert again.exit_code == 0, again.output
    assert "nothing to run; 4 were done before" in again.output
    dry = invoke("sweep", path, "--out", out, "--dry-run")
    assert dry.output.count("done (completed)") == 4


def test_failures_and_divergence_are_recorded_and_do_not_stop_the_others(tmp_path, base):
    # a missing weights file passes validation (configs must load on other machines) but
    # the run fails when it starts
    path = write(tmp_path / "s.yaml", """\
        base: base.yaml
        points:
          - {label: ok}
          - {label: unsupported, train.weights: no_such_run.h5}
          - {label: exploding, train.lr: 1.0e+4, train.divergence_threshold: 10.0}
        """)
    out = tmp_path / "out"
    result = invoke("sweep", path, "--out", out, "--workers", 2, "--no-progress")
    assert result.exit_code == 1, result.output
    assert "1 of 3 runs failed" in result.output
    rows = {r["label"]: r for r in read_csv(out / "results.csv")}
    assert rows["ok"]["status"] == "completed"
    assert rows["unsupported"]["status"] == "failed"
    assert "FileNotFoundError" in rows["unsupported"]["error"]
    assert "train.weights" in rows["unsupported"]["error"]
    assert rows["exploding"]["status"] == "diverged"
    assert "diverged" in rows["exploding"]["error"]
    record = json.loads((out / "runs" / f"{rows['unsupported']['point_id']}.json").read_text())
    assert "Traceback" in record["traceback"]
    # a rerun retries only the failed run
    plan = sw.load_sweep(path)
    summary = sw.run_sweep(plan, out, workers=1, run_fn=hooks.counting_run)
    assert hooks.calls(out) == [rows["unsupported"]["point_id"]]
    assert (summary.done_before, summary.executed, summary.failed) == (2, 1, 1)


def test_a_killed_worker_loses_only_its_run_and_a_rerun_completes_it(tmp_path, base):
    path = write(tmp_path / "s.yaml", "base: base.yaml\nseeds: [0, 1, 2]\n")
    out = tmp_path / "out"
    plan = sw.load_sweep(path)
    killed = plan.runs[1].point_id
    summary = sw.run_sweep(plan, out, workers=2, run_fn=hooks.sigkill_on_seed_1)
    statuses = [r["status"] for r in summary.rows]
    assert statuses == ["completed", "failed", "completed"]
    assert "killed by SIGKILL" in summary.rows[1]["error"]
    assert len(hooks.calls(out)) == 3
    assert not list((out / "runs").glob(".*tmp*"))
    done = {r.point_id: (out / "runs" / f"{r.point_id}.h5").stat().st_mtime_ns
            for r in plan.runs if r.point_id != killed}
    (out / "calls.log").unlink()
    again = sw.run_sweep(plan, out, workers=2, run_fn=hooks.counting_run)
    assert hooks.calls(out) == [killed]
    assert (again.done_before, again.executed) == (2, 1)
    assert again.statuses == {"completed": 3}
    assert done == {pid: (out / "runs" / f"{pid}.h5").stat().st_mtime_ns for pid in done}


def test_ctrl_c_stops_cleanly_and_a_rerun_resumes_the_interrupted_run(tmp_path, base):
    """SIGINT to the whole process group (as a terminal sends it) while seed 1 hangs mid-run.

    Seed 1 has written its first epoch (checkpoint and a "running" run file) when it hangs;
    the others finish. After the interrupt the table is complete and readable, no temporary
    file is left, and the rerun executes only seed 1, resuming after its first epoch and
    ending with the numbers of an uninterrupted run.
    """
    path = write(tmp_path / "s.yaml", """\
        base: base.yaml
        set: {train.epochs: 2}
        seeds: [0, 1, 2]
        """)
    out = tmp_path / "out"
    script = textwrap.dedent(f"""\
        import sys
        from tests import test_sweep_hooks as hooks
        from xbarsim.studies import sweep as sw
        plan = sw.load_sweep({str(path)!r})
        try:
            sw.run_sweep(plan, {str(out)!r}, workers=2,
                         run_fn=hooks.block_after_epoch_1_on_seed_1)
        except sw.SweepInterrupted as exc:
            print("interrupted", exc.summary.statuses, flush=True)
            sys.exit(130)
        sys.exit(0)
        """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env,
                            start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    plan = sw.load_sweep(path)
    others = [out / "runs" / f"{r.point_id}.h5" for r in plan.runs if r.seed != 1]
    try:
        deadline = time.monotonic() + 120
        while not ((out / "blocked").exists()
                   and all(sw.read_state(out, p.stem).done for p in others)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the sweep did not reach the hanging run"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, (stdout, stderr)
    assert "interrupted" in stdout
    worker_pid = int((out / "blocked").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(worker_pid, 0)
    assert not [p for p in out.rglob(".*") if ".tmp-" in p.name]
    rows = read_csv(out / "results.csv")
    assert [r["status"] for r in rows] == ["completed", "partial", "completed"]
    assert rows[1]["epochs_done"] == "1"
    interrupted = plan.runs[1]
    assert (out / "runs" / f"{interrupted.point_id}.ckpt.h5").is_file()
    # rerun: only the interrupted run executes, from its checkpoint
    summary = sw.run_sweep(plan, out, workers=2, run_fn=hooks.counting_run)
    assert hooks.calls(out)[-1:] == [interrupted.point_id]
    assert hooks.calls(out).count(interrupted.point_id) == 2      # first try and the resume
    assert (summary.done_before, summary.executed) == (2, 1)
    assert summary.statuses == {"completed": 3}
    record = json.loads((out / "runs" / f"{interrupted.point_id}.json").read_text())
    assert record["resumed"] is True
    from xbarsim import runner

    reference = runner.run(interrupted.config, out=tmp_path / "reference.h5")
    resumed = hdf5.read_run(out / "runs" / f"{interrupted.point_id}.h5")
    for metric in ("train_loss", "train_acc", "test_acc"):
        np.testing.assert_array_equal(resumed["history"][metric], reference.history[metric])


def test_the_cli_reports_an_interrupt_with_exit_130(tmp_path, offline_base):
    path = write(tmp_path / "s.yaml", "base: base.yaml\n")
    summary = sw.SweepSummary(out_dir=tmp_path / "o", n_runs=1, done_before=0,
                              statuses={"pending": 1}, interrupted=True)
    with mock.patch.object(sw, "run_sweep", side_effect=sw.SweepInterrupted(summary)):
        result = invoke("sweep", path, "--out", tmp_path / "o", "--no-progress")
    assert result.exit_code == 130, result.output
    assert "interrupted" in result.output and "Continue with the same command" in result.output


def test_a_second_sweep_on_the_same_folder_is_refused(tmp_path, offline_base):
    path = write(tmp_path / "s.yaml", "base: base.yaml\n")
    out = tmp_path / "out"
    out.mkdir()
    with sw._folder_lock(out):
        result = invoke("sweep", path, "--out", out, "--no-progress")
    assert_input_error(result, "another xbarsim sweep is writing this folder")


def test_a_worker_without_the_sweep_folder_ships_the_run_file_back(tmp_path, base):
    plan = sw.load_sweep(write(tmp_path / "s.yaml", "base: base.yaml\n"))
    run = plan.runs[0]
    missing = tmp_path / "not-on-this-worker" / "runs" / f"{run.point_id}.h5"
    record = sw.execute_run(sw._Task(run.point_id, run.config, str(missing), None))
    assert record["status"] == "completed", record
    assert not missing.parent.exists()
    target = tmp_path / "shipped.h5"
    target.write_bytes(record["file"])
    assert hdf5.read_run(target)["attrs"]["status"] == "completed"


def test_an_unusable_checkpoint_is_replaced_by_a_fresh_start(tmp_path, base):
    plan = sw.load_sweep(write(tmp_path / "s.yaml", "base: base.yaml\n"))
    run = plan.runs[0]
    out = tmp_path / "runs" / f"{run.point_id}.h5"
    out.parent.mkdir()
    out.with_name(f"{run.point_id}.ckpt.h5").write_bytes(b"not HDF5")
    record = sw.execute_run(sw._Task(run.point_id, run.config, str(out), None))
    assert record["status"] == "completed", record
    assert record["resumed"] is False
    assert any("cannot resume" in w and "started over" in w for w in record["warnings"])
    assert hdf5.read_run(out)["attrs"]["epochs_done"] == 1


def test_report_needs_a_sweep_folder(tmp_path):
    assert_input_error(invoke("report", tmp_path), "not a sweep folder (no sweep.json)")


# ---------------------------------------------------------------------------------------------
# running: a Dask cluster


@pytest.fixture(scope="module")
def dask_cluster():
    """Two single-threaded worker processes on loopback (Dask's ``LocalCluster``).

    ``allowed-failures`` 0: a task whose worker dies fails at once (the default 3 would
    restart and kill three more workers before giving up).
    """
    if not HAVE_DASK:
        pytest.skip("Dask distributed is not installed (pip install 'xbarsim[dask]')")
    import logging

    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "distributed.comm.timeouts.connect": "20s"}):
        cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                               host="127.0.0.1", dashboard_address=None,
                               silence_logs=logging.ERROR, death_timeout=30)
        try:
            yield cluster
        finally:
            cluster.close(timeout=30)


def test_sweep_and_report_on_a_dask_cluster(tmp_path, base, dask_cluster):
    path = write(tmp_path / "s.yaml", """\
        base: base.yaml
        grid: {train.lr: [0.05, 0.2]}
        seeds: [0, 1]
        """)
    out = tmp_path / "out"
    result = invoke("sweep", path, "--out", out, "--scheduler", dask_cluster.scheduler_address,
                    "--no-progress")
    assert result.exit_code == 0, result.output
    assert "4 of 4 runs to run on Dask cluster" in result.output
    assert "2 workers, 2 threads" in result.output
    rows = read_csv(out / "results.csv")
    assert [r["status"] for r in rows] == ["completed"] * 4
    # a Dask worker computes what this process computes (software mode, same seed)
    from xbarsim import runner

    run = sw.load_sweep(path).runs[3]
    direct = runner.run(run.config, out=tmp_path / "direct.h5")
    assert float(rows[3]["final_test_acc"]) == direct.test_acc
    rep = invoke("report", out)
    assert rep.exit_code == 0 and "4 runs: 4 completed" in rep.output


def test_a_dead_dask_worker_loses_only_its_run(tmp_path, base, dask_cluster):
    path = write(tmp_path / "s.yaml", "base: base.yaml\nseeds: [0, 1, 2]\n")
    out = tmp_path / "out"
    plan = sw.load_sweep(path)
    summary = sw.run_sweep(plan, out, scheduler=dask_cluster.scheduler_address,
                           run_fn=hooks.sigkill_on_seed_1)
    assert [r["status"] for r in summary.rows] == ["completed", "failed", "completed"]
    assert summary.rows[1]["error"].startswith("WorkerDied")
    from distributed import Client

    with Client(dask_cluster.scheduler_address, timeout=30) as client:   # the nanny restarts it
        client.wait_for_workers(2, timeout=60)
    (out / "calls.log").unlink()
    again = sw.run_sweep(plan, out, scheduler=dask_cluster.scheduler_address,
                         run_fn=hooks.counting_run)
    assert hooks.calls(out) == [plan.runs[1].point_id]
    assert again.statuses == {"completed": 3}


def test_an_unreachable_scheduler_is_an_input_error(tmp_path, offline_base):
    if not HAVE_DASK:
        pytest.skip("Dask distributed is not installed (pip install 'xbarsim[dask]')")
    import socket

    with socket.socket() as s:        # a free loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write(tmp_path / "s.yaml", "base: base.yaml\n")
    with mock.patch.object(sw._DaskExecutor.__init__, "__defaults__", (2.0,)):
        result = invoke("sweep", path, "--out", tmp_path / "o", "--scheduler",
                        f"tcp://127.0.0.1:{port}", "--no-progress")
    assert_input_error(result, f"--scheduler tcp://127.0.0.1:{port}: cannot connect")


# ---------------------------------------------------------------------------------------------
# the committed studies (examples/studies): valid as written, and each one runs


STUDIES = sorted((REPO / "examples" / "studies").glob("[a-eg-h]_*.yaml"))   # (f) is a tile study
RUNS = {"a": 12, "b": 9, "c": 15, "d": 30, "e": 12, "g": 9, "h": None}


def test_the_studies_cover_the_issue():
    names = {p.stem for p in STUDIES}
    for stem in ("a_nonlinearity", "b_write_noise"):
        assert {f"{stem}_{r}" for r in ("recipe", "plain_sgd", "printed_eq1", "literal_noise",
                                        "paper_literal")} <= names
    assert {"c_crossbar_size", "d_onoff_vary_rmin", "d_onoff_vary_rmax", "e_solver",
            "g_ideal_vs_ni", "h_harsh_crossbar_size", "h_harsh_onoff_vary_rmin",
            "h_harsh_onoff_vary_rmax"} <= names


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_study_files_are_valid_as_written(path):
    text = path.read_text()
    assert f"#   xbarsim sweep examples/studies/{path.name}\n" in text   # the one command
    assert "TxSim" in text.split("\n\n")[0]                          # the claim it tests
    plan = sw.load_sweep(path)
    assert plan.seeds == (0, 1, 2)
    expected = RUNS[path.stem[0]]
    if expected is not None:
        assert len(plan.runs) == expected
    for run in plan.runs:
        cfg = run.config
        assert (cfg.model.name, cfg.data.dataset, cfg.data.n_train, cfg.data.n_test,
                cfg.train.epochs) == ("lenet5", "mnist", 6000, 10000, 10)
        assert cfg.train.mode == ("software" if run.label == "software" else "crossbar")
    result = invoke("sweep", path, "--dry-run", "--out", REPO / "no-such-sweep-folder")
    assert result.exit_code == 0, result.output
    assert result.output.count(" pending") == len(plan.runs)


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_each_study_runs_one_point_on_256_images(path, mnist_path, tmp_path):
    """The first point of every study, 256 training and test images, one epoch, in process."""
    from xbarsim import runner

    plan = sw.load_sweep(path, ["data.n_train=256", "data.n_test=256", "train.epochs=1",
                                "train.warmup_epochs=0.0", f"data.data_dir='{mnist_path}'"],
                         seeds=[0])
    run = plan.runs[0]
    result = runner.run(run.config, out=tmp_path / "run.h5")
    assert result.status == "completed", result.message
    assert result.epochs_done == 1 and 0.0 <= result.test_acc <= 1.0
