"""Bad input through the command line: one ``Error:`` line naming the file, key or folder, exit 2.

Data folders that do not hold the data, duplicate YAML keys, configuration values that
``validate`` let through and ``run`` then refused, impossible benchmark options, a batch larger
than the training set; and the run file's record of the data actually read. Real MNIST through
the ``mnist_path`` fixture (256 images, a small software MLP: about a second per run).
"""

from __future__ import annotations

import gzip
import hashlib
import textwrap
from pathlib import Path
from unittest import mock

import pytest
from click.testing import CliRunner

from xbarsim.cli import main
from xbarsim.io import hdf5

SOFTWARE = """\
seed: 3
data: {dataset: mnist, n_train: 256, n_test: 256}
model: {name: mlp, hidden: [16]}
train: {mode: software, epochs: 1, batch_size: 32, lr: 0.1}
"""


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_input_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.output.count("Error:") == 1, result.output
    for frag in fragments:
        assert frag in result.output, (frag, result.output)


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def env_data(monkeypatch, tmp_path, mnist_path):
    """``$XBARSIM_DATA`` holds real MNIST and the cache is private and empty."""
    monkeypatch.setenv("XBARSIM_DATA", str(mnist_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    return mnist_path


# ------------------------------------------------------------------------------ data folders
@pytest.mark.parametrize("how", ["--data-dir", "data.data_dir"])
def test_a_mistyped_data_folder_is_an_error_not_a_fall_back(env_data, tmp_path, how):
    """$XBARSIM_DATA holds MNIST, but the folder asked for is a typo: exit 2 naming it."""
    cfg = write(tmp_path, SOFTWARE)
    typo = tmp_path / "mnsit"
    out = tmp_path / "o.h5"
    args = ["--data-dir", typo] if how == "--data-dir" else ["--set", f"data.data_dir='{typo}'"]
    result = invoke("run", cfg, "--out", out, "--no-progress", *args)
    assert_input_error(result, f"{how} {typo}: no complete MNIST set there",
                       "the folder does not exist", "t10k-images-idx3-ubyte")
    assert not out.exists() and not (tmp_path / "xdg").exists()   # no download was tried


def test_xbarsim_data_without_the_data_is_an_error(env_data, tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("XBARSIM_DATA", str(tmp_path / "empty"))
    result = invoke("run", write(tmp_path, SOFTWARE), "--out", tmp_path / "o.h5",
                    "--no-progress")
    assert_input_error(result, f"$XBARSIM_DATA {tmp_path / 'empty'}: no complete MNIST set",
                       "it is empty", "unset XBARSIM_DATA")


def test_the_run_file_records_the_data_folder_and_the_md5_of_every_file(env_data, tmp_path):
    out = tmp_path / "o.h5"
    # --data-dir replaces data.data_dir (which points nowhere), like --out replaces output.out
    cfg = write(tmp_path, SOFTWARE.replace("dataset: mnist,", "dataset: mnist, data_dir: nowhere,"))
    result = invoke("run", cfg, "--out", out, "--no-progress", "--data-dir", env_data)
    assert result.exit_code == 0, result.output
    attrs = hdf5.read_run(out)["attrs"]
    names = ["train-6k-images-idx3-ubyte.gz", "train-6k-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert attrs["data_dir"] == str(env_data.resolve())
    assert list(attrs["data_files"]) == names
    assert list(attrs["data_md5"]) == [hashlib.md5((env_data / n).read_bytes()).hexdigest()
                                       for n in names]
    assert list(attrs["data_known_as"])[2:] == ["official MNIST test images (10,000)",
                                                "official MNIST test labels (10,000)"]


def test_corrupt_data_under_a_valid_header_is_exit_2(env_data, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    for name in ("train-6k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz"):
        (folder / name).symlink_to(env_data / name)
    labels = bytes.fromhex("00000801") + (6000).to_bytes(4, "big") + bytes(6000)  # all zeros
    (folder / "train-6k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    result = invoke("run", write(tmp_path, SOFTWARE), "--out", tmp_path / "o.h5",
                    "--no-progress", "--data-dir", folder)
    assert_input_error(result, "train-6k-labels-idx1-ubyte.gz: not MNIST training labels",
                       "implausible class balance")


def test_a_batch_larger_than_the_training_set_warns_with_the_numbers(env_data, tmp_path):
    cfg = write(tmp_path, SOFTWARE.replace("n_train: 256", "n_train: 100"))
    result = invoke("run", cfg, "--out", tmp_path / "o.h5", "--no-progress",
                    "--set", "train.batch_size=128")
    assert result.exit_code == 0, result.output
    assert ("warning: train.batch_size = 128 is larger than the 100 training samples: every "
            "epoch is one step on a single partial batch of 100") in result.output


# -------------------------------------------------------------------------- check-config = run
ISSUE_CASES = [
    (["hardware.forward.adc.bits=64"], "hardware.forward.adc.bits: expected int in [1, 52]"),
    (["hardware.backward.dac.input_bits=64"],
     "hardware.backward.dac.input_bits: expected int in [1, 52]"),
    (["hardware.device.update_model=neurosim", "hardware.device.nl_label=1.0e+6"],
     "hardware.device.nl_label: expected float in (0, 9.99]"),
    (["hardware.variation.sigma_pv=1.0e+3"],
     "hardware.variation.sigma_pv: expected float in [0, 1/3)"),
    (["hardware.variation.distribution=lognormal", "hardware.variation.sigma_pv=1.0e+3"],
     "hardware.variation.sigma_pv: expected float in [0, 1] for the 'lognormal'"),
    (["hardware.device.bits=1180591620717411303424"], "hardware.device.bits: expected int"),
    (["hardware.crossbar.r_row=1.0e-12"], "hardware.crossbar.r_row: expected 0 (ideal) or"),
    (["hardware.backward.dac.input_bits=1"], "hardware.backward.dac.input_bits: expected >= 2"),
    (["model.name=lenet5"], "model.name: 'lenet5' needs image inputs"),
    (["model.dropout=0.5"], "model.dropout: 0.5 is not supported"),
]


@pytest.mark.parametrize("overrides, message", ISSUE_CASES,
                         ids=[o[-1].split("=")[0] for o, _ in ISSUE_CASES])
def test_check_config_rejects_what_run_rejects_before_any_data_is_read(tmp_path, overrides,
                                                                    message):
    cfg = write(tmp_path, """\
        seed: 0
        data: {dataset: synthetic, n_train: 32, n_test: 16, synthetic_shape: [12]}
        model: {name: mlp, hidden: [6]}
        train: {mode: crossbar, epochs: 1, batch_size: 8}
        """)
    sets = [a for o in overrides for a in ("--set", o)]
    assert_input_error(invoke("check-config", cfg, *sets), message, str(cfg))
    with mock.patch("xbarsim.data.synthetic", side_effect=AssertionError("data was read")):
        result = invoke("run", cfg, "--out", tmp_path / "o.h5", "--no-progress", *sets)
    assert_input_error(result, message, str(cfg))
    assert not (tmp_path / "o.h5").exists()


def test_check_config_accepts_the_limits_themselves(tmp_path):
    cfg = write(tmp_path, "preset: txsim\n")
    result = invoke("check-config", cfg, "--set", "hardware.forward.adc.bits=52",
                    "hardware.forward.dac.input_bits=52", "hardware.variation.sigma_pv=0.3")
    assert result.exit_code == 0 and result.output.startswith("ok: "), result.output


# ------------------------------------------------------------------------------ duplicate keys
def test_duplicate_keys_in_a_run_config_name_the_key_and_both_lines(tmp_path):
    cfg = write(tmp_path, """\
        seed: 0
        train:
          lr: 0.1
          lr: 0.2
        """)
    assert_input_error(invoke("check-config", cfg), f"invalid configuration in {cfg}",
                       "train.lr: duplicate key at line 4 (first defined at line 3)")
    cfg = write(tmp_path, """\
        train:
          lr: 0.1
        model: {name: mlp}
        train:
          epochs: 2
        """)
    assert_input_error(invoke("run", cfg, "--no-progress"),
                       "train: duplicate key at line 4 (first defined at line 1)")
    assert_input_error(invoke("check-config", write(tmp_path, "seed: 0\n"),
                              "--set", "train={lr: 0.1, lr: 0.2}"),
                       "--set 'train={lr: 0.1, lr: 0.2}': the value is not valid YAML",
                       "lr: duplicate key at line 1, column 11 (first defined at line 1, "
                       "column 2)")


def test_duplicate_keys_in_a_tile_config_are_refused(tmp_path):
    cfg = write(tmp_path, """\
        rows: 8
        cols: 8
        r_row: 1.0
        r_row: 2.0
        """, "tile.yaml")
    assert_input_error(invoke("tile", "--config", cfg), str(cfg),
                       "r_row: duplicate key at line 4 (first defined at line 3)")


# ------------------------------------------------------------------------------ bench options
@pytest.mark.parametrize("args", [["tile", "--repeats", "0"], ["layer", "--repeats", "0"],
                                  ["train", "--repeats", "0"], ["train", "--rounds", "0"],
                                  ["tile", "--seed", "-1"], ["tile", "--nodal-max-size", "-1"]])
def test_bench_refuses_zero_repeats_and_rounds(args):
    result = invoke("bench", *args)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{args[1]}'" in result.output
