"""``xbarsim deploy``: trained weights on many simulated chips (library and CLI, end to end)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from xbarsim.cli import main
from xbarsim.config import load_config
from xbarsim.io import hdf5

HW = {"crossbar": {"n_rows": 64, "n_cols": 16, "r_source": 1000.0, "r_sense": 1000.0,
                   "r_row": 1.0, "r_col": 4.6},
      "variation": {"sigma_pv": 0.15, "chip_seed": 40}}

IDEAL_HW = {"crossbar": {"n_rows": 64, "n_cols": 16, "r_source": 0.0, "r_sense": 0.0,
                         "r_row": 0.0, "r_col": 0.0},
            "solver": {"method": "ideal"},
            "forward": {"dac": {"bits": None, "input_bits": None}, "adc": {"bits": None}},
            "backward": {"dac": {"bits": None, "input_bits": None}, "adc": {"bits": None}}}


def _train(tmp_path, mode, name, **aware):
    from xbarsim import runner

    train = {"mode": mode, "epochs": 1, "batch_size": 64, "lr": 0.05}
    if mode == "aware":
        train["aware"] = {"gradient": "straight_through", **aware}
    from tests.conftest import mnist_dir

    cfg = load_config({"seed": 3, "data": {"dataset": "mnist", "n_train": 256, "n_test": 150,
                                           "data_dir": str(mnist_dir())},
                       "model": {"name": "mlp", "hidden": [16]}, "hardware": HW,
                       "train": train})
    out = tmp_path / f"{name}.h5"
    result = runner.run(cfg, out=out)
    assert result.status == "completed"
    return out, result


@pytest.fixture(scope="module")
def software_run(tmp_path_factory, mnist_dir_module):
    return _train(tmp_path_factory.mktemp("sw"), "software", "sw")


@pytest.fixture(scope="module")
def mnist_dir_module():
    from tests.conftest import mnist_dir

    path = mnist_dir()
    if path is None:
        pytest.skip("MNIST not found: set XBARSIM_DATA to a folder with the IDX files")
    return path


def _hw_file(tmp_path, hw):
    path = tmp_path / "hw.yaml"
    path.write_text(yaml.safe_dump({"hardware": hw}))
    return path


def test_cli_deploys_on_n_chips_end_to_end(tmp_path, software_run):
    run_file, trained = software_run
    hw = _hw_file(tmp_path, HW)
    out = tmp_path / "deploy.h5"
    res = CliRunner().invoke(main, ["deploy", str(run_file), "--chips", "3", "--config",
                                    str(hw), "--out", str(out), "--plot", str(tmp_path)])
    assert res.exit_code == 0, res.output
    # click < 8.2 mixes the progress lines (stderr) into the output: find the table
    lines = [line for line in res.output.splitlines()
             if not re.match(r"chip \d+/\d+: ", line)]
    head = lines.index(next(line for line in lines if line.split()[:2] == ["chip", "seed"]))
    assert lines[head].split() == ["chip", "seed", "test", "acc", "time", "[s]"]
    assert [line.split()[1] for line in lines[head + 2:head + 5]] == ["40", "41", "42"]
    assert "3 chips: mean" in res.output and "worst" in res.output
    assert f"digital weights (software-trained): {100 * trained.test_acc:.2f}%" in res.output
    dep = hdf5.read_deployment(out)
    acc = dep["data"]["test_acc"]
    assert acc.shape == (3,) and np.all((acc >= 0) & (acc <= 1))
    np.testing.assert_array_equal(dep["data"]["chip_seed"], [40, 41, 42])
    assert dep["attrs"]["n_chips"] == 3 and dep["attrs"]["source_mode"] == "software"
    assert dep["attrs"]["mean_acc"] == pytest.approx(acc.mean())
    assert dep["attrs"]["worst_acc"] == acc.min()
    assert dep["attrs"]["ideal_acc"] == trained.test_acc
    cfg = load_config(yaml.safe_load(dep["attrs"]["config_yaml"]))
    assert cfg.hardware.variation.sigma_pv == 0.15 and cfg.model.hidden == (16,)
    assert (tmp_path / "deploy_deploy.png").stat().st_size > 0
    # an existing output is not overwritten without --force
    again = CliRunner().invoke(main, ["deploy", str(run_file), "--config", str(hw), "--out",
                                      str(out)])
    assert again.exit_code == 2 and "file exists" in again.output
    assert hdf5.read_deployment(out)["data"]["test_acc"].tolist() == acc.tolist()


def test_ideal_chips_reproduce_the_digital_accuracy(tmp_path, software_run):
    from xbarsim.deploy import deploy

    run_file, trained = software_run
    hw = load_config({"hardware": IDEAL_HW}).hardware
    result = deploy(run_file, hw, chips=2)
    assert result.ideal_acc == trained.test_acc
    np.testing.assert_array_equal(result.accuracies, [trained.test_acc] * 2)


def test_chips_are_reproducible_and_differ(tmp_path, software_run):
    from xbarsim.deploy import deploy

    run_file, _ = software_run
    hw = load_config({"hardware": {**HW, "variation": {"sigma_pv": 0.3, "chip_seed": 7}},
                      }).hardware
    a = deploy(run_file, hw, chips=3, overrides=["hardware.forward.adc.bits=null"])
    b = deploy(run_file, hw, chips=1, overrides=["hardware.forward.adc.bits=null"])
    assert a.accuracies[0] == b.accuracies[0]
    assert len(set(a.accuracies.tolist())) > 1
    noisy = deploy(run_file, hw, chips=1, sigma_program=0.2,
                   overrides=["hardware.forward.adc.bits=null"])
    assert noisy.accuracies[0] != a.accuracies[0]


def test_aware_run_deploys_with_its_trained_weight_scale(tmp_path, mnist_dir_module):
    from xbarsim.deploy import deploy, read_source

    run_file, trained = _train(tmp_path, "aware", "aware", resample_every=2)
    source = read_source(run_file)
    assert source.mode == "aware" and set(source.w_scales) == {"fc1", "fc2"}
    ckpt = run_file.with_name("aware.ckpt.h5")
    assert read_source(ckpt).w_scales == source.w_scales
    hw = load_config({"hardware": HW}).hardware
    from_run = deploy(run_file, hw, chips=1)
    from_ckpt = deploy(ckpt, hw, chips=1)
    assert from_run.source_mode == "aware"
    np.testing.assert_array_equal(from_run.accuracies, from_ckpt.accuracies)
    rescaled = deploy(run_file, hw, chips=1, rescale=True)
    assert rescaled.ideal_acc == from_run.ideal_acc


def test_crossbar_run_stores_its_weight_scale(tmp_path, mnist_dir_module):
    from xbarsim.deploy import read_source

    run_file, _ = _train(tmp_path, "crossbar", "xbar")
    source = read_source(run_file)
    assert source.mode == "crossbar" and set(source.w_scales) == {"fc1", "fc2"}


def test_software_run_has_no_weight_scale(software_run):
    from xbarsim.deploy import read_source

    assert read_source(software_run[0]).w_scales == {}


def test_cli_input_errors(tmp_path, software_run):
    run_file, _ = software_run
    hw = _hw_file(tmp_path, HW)
    runner = CliRunner()
    res = runner.invoke(main, ["deploy", str(run_file)])
    assert res.exit_code == 2 and "--config" in res.output
    res = runner.invoke(main, ["deploy", str(hw), "--config", str(hw)])
    assert res.exit_code == 2 and "cannot open as HDF5" in res.output
    other = hdf5.write_deployment(tmp_path / "other.h5", attrs={}, datasets={})
    res = runner.invoke(main, ["deploy", str(other), "--config", str(hw)])
    assert res.exit_code == 2 and "not an xbarsim run or checkpoint file" in res.output
    res = runner.invoke(main, ["deploy", str(run_file), "--config", str(hw), "--chips", "0"])
    assert res.exit_code == 2
    res = runner.invoke(main, ["deploy", str(run_file), "--config", str(hw),
                               "--set", "hardware.crossbar.r_row=-1.0"])
    assert res.exit_code == 2 and "hardware.crossbar.r_row" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("hardware: {crossbar: {n_rowz: 3}}\n")
    res = runner.invoke(main, ["deploy", str(run_file), "--config", str(bad)])
    assert res.exit_code == 2 and "n_rowz" in res.output
    res = runner.invoke(main, ["deploy", str(run_file), "--config", str(hw), "stray"])
    assert res.exit_code == 2 and "KEY=VALUE" in res.output
