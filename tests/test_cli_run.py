"""``xbarsim run`` / ``check-config`` / ``show-config`` end to end through click's CliRunner.

Real MNIST (the ``mnist_path`` fixture; skipped when absent), 256 training and 256 test images,
a 784-32-10 MLP, in software mode and on small crossbars (64x64 arrays, analog devices, AAM
solver, 4-bit input streaming, layer-level ADCs) so that one epoch takes about a second.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import h5py
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from numpy.testing import assert_array_equal

from xbarsim.cli import main
from xbarsim.config import load_config
from xbarsim.io import hdf5

HAVE_MPL = importlib.util.find_spec("matplotlib") is not None

SOFTWARE = """\
seed: 3
data: {dataset: mnist, n_train: 256, n_test: 256}
model: {name: mlp, hidden: [32]}
train: {mode: software, epochs: 2, batch_size: 32, lr: 0.1}
"""

# small, fast crossbars that still have IR drop (AAM), write noise and calibrating 8-bit ADCs
CROSSBAR = """\
seed: 3
data: {dataset: mnist, n_train: 256, n_test: 256}
model: {name: mlp, hidden: [32]}
hardware:
  device: {bits: null}
  mapping: {slice_bits: null}
  solver: {method: aam}
  forward: {dac: {input_bits: 4}, adc: {granularity: layer}}
  backward: {dac: {input_bits: 4}, adc: {granularity: layer}}
train: {mode: crossbar, epochs: 2, batch_size: 32, lr: 0.1}
"""

METRICS = ("epoch", "train_loss", "train_acc", "test_acc", "lr")  # all but wall time


@pytest.fixture
def configs(tmp_path: Path, mnist_path: Path) -> dict[str, Path]:
    """The two run configs, pointing at the MNIST folder."""
    out = {}
    for name, text in (("software", SOFTWARE), ("crossbar", CROSSBAR)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(text.replace("dataset: mnist,", f"dataset: mnist, data_dir: "
                                     f"'{mnist_path}',"))
        out[name] = path
    return out


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def run_ok(*args: object):
    result = invoke("run", *args, "--no-progress")
    assert result.exit_code == 0, result.output
    return result


def assert_input_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for frag in fragments:
        assert frag in result.output, (frag, result.output)


def test_help_imports_no_numba_nor_h5py():
    code = ("import sys; from xbarsim.cli import main\n"
            "try:\n    main(['run', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('numba', 'h5py', 'xbarsim.runner') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


@pytest.mark.parametrize("mode", ["software", "crossbar"])
def test_run_trains_and_writes_documented_layout(configs, tmp_path, mode):
    out = tmp_path / "run.h5"
    result = run_ok(configs[mode], "--out", out, "--set", "train.epochs=3")
    # summary table: header, one row per epoch, final status line with the path
    assert "train acc" in result.output and "test acc" in result.output
    assert "status: completed" in result.output and str(out) in result.output
    run = hdf5.read_run(out)
    a, h = run["attrs"], run["history"]
    assert a["kind"] == "run" and a["status"] == "completed" and a["epochs_done"] == 3
    assert a["seed"] == 3 and a["mode"] == mode and a["model"] == "mlp"
    for key in ("xbarsim_version", "created_utc", "numpy_version", "numba_version",
                "scipy_version", "h5py_version"):
        assert isinstance(a[key], str) and a[key], key
    # the stored config is the resolved one and loads back to the same RunConfig
    assert load_config(yaml.safe_load(a["config_yaml"])) == load_config(
        configs[mode], ["train.epochs=3", f"output.out={str(out)!r}"])
    assert set(h) == {"epoch", "train_loss", "train_acc", "test_acc", "lr", "seconds",
                      "collapsed_fraction"}
    assert all(v.shape == (3,) for v in h.values())
    assert_array_equal(h["epoch"], [1, 2, 3])
    assert h["train_loss"][-1] < 0.6 * h["train_loss"][0]          # it learns
    assert h["test_acc"][-1] > 0.5 and a["test_acc"] == h["test_acc"][-1]
    with h5py.File(out, "r") as f:
        assert all(f["history"][k].maxshape == (None,) for k in h)   # resizable
    assert run["units"]["history/seconds"] == "s"
    assert set(run["layers"]) == {"fc1", "fc2"}
    assert run["layers"]["fc1"]["weights"].shape == (784, 32)
    assert run["layers"]["fc2"]["bias"].shape == (10,)
    assert run["units"]["layers/fc1/weights"] == "1"
    if mode == "crossbar":
        g = run["layers"]["fc1"]["g"]                 # 784 = 13 blocks of <= 64 rows
        assert g.shape == (13, 2, 64, 64) and run["units"]["layers/fc1/g"] == "S"
        finite = g[np.isfinite(g)]
        assert finite.min() >= 1.0e-6 * (1 - 1e-12) and finite.max() <= 1.0e-5 * (1 + 1e-12)
        assert set(run["solver"]) == {"fc1", "fc2"}
        assert set(run["solver"]["fc1"]) == {"n_solves", "n_calls", "n_fallbacks", "max_iter"}
        assert run["solver"]["fc1"]["n_calls"] > 0
    else:
        assert "g" not in run["layers"]["fc1"] and run["solver"] == {}
    # the checkpoint sits next to the run file
    assert (tmp_path / "run.ckpt.h5").is_file()


@pytest.mark.parametrize("mode", ["software", "crossbar"])
def test_same_seed_gives_identical_numbers(configs, tmp_path, mode):
    runs = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        run_ok(configs[mode], "--out", tmp_path / f"{name}.h5", "--seed", seed)
        runs.append(hdf5.read_run(tmp_path / f"{name}.h5"))
    a, b, c = runs
    for key in METRICS:
        assert_array_equal(a["history"][key], b["history"][key])   # bit-identical
    assert_array_equal(a["layers"]["fc1"]["weights"], b["layers"]["fc1"]["weights"])
    if mode == "crossbar":
        assert_array_equal(a["layers"]["fc1"]["g"], b["layers"]["fc1"]["g"])
    # and the seed matters (so the comparison above can fail)
    assert not np.array_equal(a["history"]["train_loss"], c["history"]["train_loss"])


def _interrupt_in_epoch(epoch: int, after_batches: int = 2):
    """Patch BatchIterator so that pass ``epoch`` raises KeyboardInterrupt mid-epoch."""
    from xbarsim.data import BatchIterator

    original = BatchIterator.__iter__
    passes = {"n": 0}

    def interrupted(self):
        passes["n"] += 1
        for k, item in enumerate(original(self)):
            if passes["n"] == epoch and k == after_batches:
                raise KeyboardInterrupt
            yield item

    return mock.patch.object(BatchIterator, "__iter__", interrupted)


@pytest.mark.parametrize("mode", ["software", "crossbar"])
def test_resume_after_interrupt_equals_uninterrupted_run(configs, tmp_path, mode):
    # momentum and a cosine schedule: the optimizer state and the schedule position matter
    opts = ["--set", "train.epochs=3", "train.momentum=0.9", "train.schedule=cosine"]
    if mode == "crossbar":
        # the layer ADCs calibrate once per training batch (8 calls an epoch; evaluations
        # never calibrate): with 12 the ranges freeze in epoch 2, after the resume point, so
        # the saved calibration count matters
        opts += ["hardware.forward.adc.calibration_batches=12",
                 "hardware.backward.adc.calibration_batches=12"]
    run_ok(configs[mode], "--out", tmp_path / "full.h5", *opts)
    with _interrupt_in_epoch(2):
        result = invoke("run", configs[mode], "--out", tmp_path / "part.h5", *opts,
                        "--seed", 3, "--no-progress")
    assert result.exit_code == 130, result.output
    assert "interrupted (Ctrl-C)" in result.output and "holds epoch 1" in result.output
    part = hdf5.read_run(tmp_path / "part.h5")           # written after epoch 1
    assert part["attrs"]["status"] == "interrupted" and part["attrs"]["epochs_done"] == 1
    assert not (tmp_path / "part.h5.lock").exists()       # the locks are released
    # the printed command, followed as printed (every --set of the run is in it)
    command = shlex.split(result.output.rsplit("Continue with:", 1)[1].strip())
    assert command[:3] == ["xbarsim", "run", str(configs[mode])] and command[-1] == "--resume"
    assert "--seed" in command and all(o in command for o in opts[1:])
    result = run_ok(*command[2:])
    full, resumed = hdf5.read_run(tmp_path / "full.h5"), hdf5.read_run(tmp_path / "part.h5")
    assert resumed["attrs"]["status"] == "completed"
    for key in METRICS:
        assert_array_equal(resumed["history"][key], full["history"][key], err_msg=key)
    for layer in ("fc1", "fc2"):
        for name, value in full["layers"][layer].items():
            assert_array_equal(resumed["layers"][layer][name], value, err_msg=f"{layer}/{name}")
    if mode == "crossbar":
        # counters continue across the resume; the new process solves each array once more
        # (its g_eff cache starts cold): 13 x 2 arrays for fc1, 1 x 2 for fc2
        for layer, n_arrays in (("fc1", 26), ("fc2", 2)):
            r, f = resumed["solver"][layer], full["solver"][layer]
            assert r["n_solves"] == f["n_solves"] + n_arrays, (layer, r, f)
            assert r["max_iter"] == f["max_iter"] and r["n_fallbacks"] == f["n_fallbacks"]


def test_resume_refuses_without_checkpoint_or_with_another_config(configs, tmp_path):
    result = invoke("run", configs["software"], "--out", tmp_path / "r.h5", "--resume")
    assert_input_error(result, "r.ckpt.h5", "no checkpoint")
    run_ok(configs["software"], "--out", tmp_path / "r.h5", "--set", "train.epochs=1")
    result = invoke("run", configs["software"], "--out", tmp_path / "r.h5", "--resume",
                    "--set", "train.lr=0.2")
    assert_input_error(result, "train.lr (0.1 in the checkpoint, 0.2 now)")
    # more epochs are allowed: training continues
    result = run_ok(configs["software"], "--out", tmp_path / "r.h5", "--resume",
                    "--set", "train.epochs=2")
    assert_array_equal(hdf5.read_run(tmp_path / "r.h5")["history"]["epoch"], [1, 2])


def test_existing_output_needs_force(configs, tmp_path):
    out = tmp_path / "run.h5"
    out.write_bytes(b"precious")
    result = invoke("run", configs["software"], "--out", out)
    assert_input_error(result, str(out), "--force")
    assert out.read_bytes() == b"precious"
    run_ok(configs["software"], "--out", out, "--force", "--set", "train.epochs=1")
    assert hdf5.read_run(out)["attrs"]["status"] == "completed"


def test_evaluate_only_deploys_saved_weights_on_other_hardware(configs, tmp_path):
    trained = tmp_path / "software.h5"
    run_ok(configs["software"], "--out", trained)
    soft = hdf5.read_run(trained)
    acc_soft = soft["attrs"]["test_acc"]
    deploy = ["--set", "train.evaluate_only=true", f"train.weights={str(trained)!r}"]
    # the same weights on an exact digital model: the same accuracy
    run_ok(configs["software"], "--out", tmp_path / "same.h5", *deploy)
    assert hdf5.read_run(tmp_path / "same.h5")["attrs"]["test_acc"] == acc_soft
    # on ideal crossbars (ideal solver and converters, analog devices): nearly the same
    ideal = ["hardware.solver.method=ideal", "hardware.forward.dac.bits=null",
             "hardware.forward.adc.bits=null", "train.mode=crossbar"]
    run_ok(configs["crossbar"], "--out", tmp_path / "ideal.h5", *deploy, *ideal)
    ideal_run = hdf5.read_run(tmp_path / "ideal.h5")
    assert abs(ideal_run["attrs"]["test_acc"] - acc_soft) <= 2 / 256
    np.testing.assert_allclose(ideal_run["layers"]["fc1"]["weights"],
                               soft["layers"]["fc1"]["weights"], rtol=0, atol=1e-9)
    # on 2-bit devices the programmed weights are quantised: accuracy drops
    result = run_ok(configs["crossbar"], "--out", tmp_path / "ni.h5", *deploy,
                    "hardware.device.bits=2")
    ni = hdf5.read_run(tmp_path / "ni.h5")
    assert "status: evaluated" in result.output
    a = ni["attrs"]
    assert a["status"] == "evaluated" and a["weights_source"] == str(trained)
    assert a["test_acc"] < acc_soft - 0.05
    assert ni["history"]["epoch"].shape == (0,)
    assert "g" in ni["layers"]["fc1"] and a["calibration_batches_used"] > 0
    # weights of another architecture are refused, naming the key
    result = invoke("run", configs["software"], "--out", tmp_path / "bad.h5", *deploy,
                    "model.hidden=[16]")
    assert_input_error(result, "train.weights", "model.hidden")


def test_divergence_is_reported_cleanly_with_nonzero_exit(configs, tmp_path):
    out = tmp_path / "div.h5"
    result = invoke("run", configs["software"], "--out", out, "--set", "train.lr=1.0e+6",
                    "--no-progress")
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.output
    assert "diverged in epoch 1" in result.output and "lower the learning rate" in result.output
    run = hdf5.read_run(out)
    assert run["attrs"]["status"] == "diverged" and run["attrs"]["diverged_epoch"] == 1
    assert "diverged" in run["attrs"]["message"]
    assert run["history"]["train_loss"].shape == (0,)
    assert np.all(np.isfinite(run["layers"]["fc1"]["weights"]))   # initial, not blown-up


@pytest.mark.parametrize("args, fragments", [
    (["--set", "train.epoch=3"], ["train.epoch", "did you mean 'train.epochs'"]),
    (["--set", "train.lr=1e-3"], ["train.lr", "1.0e-3"]),
    (["--set", "hardware.crossbar.r_row=-1.0"], ["hardware.crossbar.r_row"]),
    (["--set", "model.dropout=0.5"], ["model.dropout"]),
    (["not-an-override"], ["not-an-override", "KEY=VALUE"]),
])
def test_config_errors_exit_2_naming_the_key(configs, tmp_path, args, fragments):
    result = invoke("run", configs["software"], "--out", tmp_path / "x.h5", *args)
    assert_input_error(result, *fragments)
    assert not (tmp_path / "x.h5").exists()


def test_check_config(configs, tmp_path):
    result = invoke("check-config", configs["crossbar"])
    assert result.exit_code == 0 and result.output.startswith("ok"), result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {lr: 1e-3, epochs: 0}\nmodle: {}\n")
    result = invoke("check-config", bad)
    assert_input_error(result, "train.lr", "train.epochs", "modle", "did you mean 'model'")
    assert not result.output.startswith("ok")


def test_validate_is_a_deprecated_hidden_alias_of_check_config(configs, tmp_path):
    result = invoke("validate", configs["crossbar"])
    assert result.exit_code == 0, result.output
    assert "ok: " in result.output          # the note goes to stderr (mixed in with click 8.1)
    assert "'xbarsim validate' is deprecated" in result.output
    assert "use 'xbarsim check-config'" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("modle: {}\n")
    assert_input_error(invoke("validate", bad), "modle", "did you mean 'model'")
    listing = invoke("--help").output
    assert "check-config" in listing and "golden" in listing
    assert not re.search(r"^\s+validate\b", listing, re.MULTILINE)


@pytest.mark.parametrize("example", ["lenet.yaml", "lenet_ideal.yaml", "lenet_software.yaml",
                                     "mlp.yaml"])
def test_show_config_round_trips(example):
    path = Path(__file__).resolve().parents[1] / "examples" / example
    result = invoke("show-config", path, "--set", "train.lr=0.05", "seed=7")
    assert result.exit_code == 0, result.output
    shown = load_config(yaml.safe_load(result.output))
    assert shown == load_config(path, ["train.lr=0.05", "seed=7"])
    assert shown.train.lr == 0.05 and shown.seed == 7


@pytest.mark.skipif(not HAVE_MPL, reason="matplotlib not installed")
def test_plot_writes_training_curves(configs, tmp_path):
    result = run_ok(configs["software"], "--out", tmp_path / "p.h5", "--plot",
                    tmp_path / "figs", "--set", "train.epochs=1")
    png = tmp_path / "figs" / "p_training.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {png}" in result.output


def test_cli_is_thin(tmp_path):
    """The command parses options and calls runner.run once (the CLI stays thin)."""
    from xbarsim import runner

    cfg = tmp_path / "c.yaml"
    cfg.write_text(textwrap.dedent("""\
        data: {dataset: synthetic, n_train: 8, n_test: 8}
        train: {mode: software}
        """))
    fake = runner.RunResult(status="completed", out=tmp_path / "o.h5", test_acc=0.5)
    with mock.patch("xbarsim.runner.run", autospec=True, return_value=fake) as run:
        result = CliRunner().invoke(main, ["run", str(cfg), "--out", str(tmp_path / "o.h5"),
                                           "--seed", "9", "--resume", "--data-dir",
                                           str(tmp_path), "--no-progress"],
                                    catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (cfg_arg,), kwargs = run.call_args
    assert cfg_arg.seed == 9 and cfg_arg.output.out == str(tmp_path / "o.h5")
    assert kwargs["resume"] is True and kwargs["progress"] is False
    assert kwargs["data_dir"] == tmp_path and kwargs["out"] == tmp_path / "o.h5"
    assert "status: completed; test acc 50.00%" in result.output
