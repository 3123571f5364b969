"""The life of a run, end to end: locks, output checks, resume, signals, warnings, progress.

Real MNIST (``mnist_path``; skipped when absent), 256 training and 256 test images and a
784-32-10 MLP, as in ``test_cli_run.py``; runs go through click's CliRunner, or through a
subprocess where a second process or a signal is involved.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from numpy.testing import assert_array_equal

from xbarsim.cli import main
from xbarsim.io import hdf5
from xbarsim.io.locks import lock_path

SOFTWARE = """\
seed: 3
data: {dataset: mnist, n_train: 256, n_test: 256}
model: {name: mlp, hidden: [32]}
train: {mode: software, epochs: 2, batch_size: 32, lr: 0.1}
"""

# small crossbars with layer-level 8-bit ADCs (about a second an epoch)
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

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def configs(tmp_path: Path, mnist_path: Path) -> dict[str, Path]:
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


def dead_pid() -> int:
    """The id of a process that has just ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def xbarsim_process(*args: object, stdout=subprocess.PIPE, stderr=subprocess.PIPE):
    """``python -m xbarsim ARGS`` in a subprocess that imports this checkout."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "xbarsim", *map(str, args)],
                            stdout=stdout, stderr=stderr, env=env, text=True)


def wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the process ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def readonly_dir(tmp_path: Path):
    """A folder that the test process cannot write into, even as root."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    # root ignores permission bits; the immutable attribute (ext4, xfs, ...) stops root too
    made = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0 \
        if _have("chattr") else False
    try:
        (folder / "probe").touch()
    except OSError:
        pass
    else:
        (folder / "probe").unlink()
        if made:
            subprocess.run(["chattr", "-i", str(folder)], check=False)
        pytest.skip("running as root on a file system without the immutable attribute: no "
                    "read-only folder can be made")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=False)


def _have(tool: str) -> bool:
    import shutil

    return shutil.which(tool) is not None


# ---------------------------------------------------------------------------------------------
# one run per output


def test_second_run_on_the_same_out_is_refused_naming_the_first(configs, tmp_path):
    out = tmp_path / "dup.h5"
    # a long first run (stopped with SIGTERM once the second one has been refused)
    first = xbarsim_process("run", configs["software"], "--out", out, "--no-progress",
                            "--set", "train.epochs=1000")
    try:
        wait_for(lambda: out.exists(), first, "the first run's first epoch")
        second = invoke("run", configs["software"], "--out", out, "--no-progress", "--force",
                        "--set", "train.epochs=1")
        assert_input_error(second, str(out), "in use by another xbarsim run",
                           f"pid {first.pid}")
        assert first.poll() is None
        first.send_signal(signal.SIGTERM)
    finally:
        stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 143, stderr
    run = hdf5.read_run(out)          # the first run's own result, untouched by the second
    assert run["attrs"]["status"] == "interrupted"
    assert run["attrs"]["epochs_done"] == hdf5.read_attrs(tmp_path / "dup.ckpt.h5")["epoch"]
    assert yaml.safe_load(run["attrs"]["config_yaml"])["train"]["epochs"] == 1000
    assert not lock_path(out).exists() and not lock_path(tmp_path / "dup.ckpt.h5").exists()


def test_checkpoint_locked_by_another_run_is_refused(configs, tmp_path):
    """Two different --out with one output.checkpoint: the checkpoint is locked too."""
    shared = tmp_path / "shared.ckpt.h5"
    first = xbarsim_process("run", configs["software"], "--out", tmp_path / "a.h5",
                            "--no-progress", "--set", "train.epochs=1000",
                            f"output.checkpoint={str(shared)!r}")
    try:
        wait_for(shared.exists, first, "the first run's first checkpoint")
        second = invoke("run", configs["software"], "--out", tmp_path / "b.h5",
                        "--no-progress", "--set", f"output.checkpoint={str(shared)!r}")
        assert_input_error(second, "checkpoint is in use by another xbarsim run",
                           f"pid {first.pid}")
        first.send_signal(signal.SIGTERM)
    finally:
        first.communicate(timeout=300)
    assert first.returncode == 143
    assert not (tmp_path / "b.h5").exists() and not lock_path(tmp_path / "b.h5").exists()


def test_checkpoint_equal_to_out_is_refused_up_front(configs, tmp_path):
    same = tmp_path / "same.h5"
    result = invoke("run", configs["software"], "--out", same, "--no-progress",
                    "--set", f"output.checkpoint={str(same)!r}")
    assert_input_error(result, "output.checkpoint", "is the run file itself")
    assert "epoch" not in result.output.split("Error")[0]
    assert list(tmp_path.iterdir()) == [configs["software"], configs["crossbar"]]


def test_stale_lock_of_a_killed_run_is_taken_over_with_a_warning(configs, tmp_path):
    out = tmp_path / "r.h5"
    pid = dead_pid()
    lock_path(out).write_text(f'{{"pid": {pid}, "host": "{socket.gethostname()}", '
                              f'"started_utc": "2026-01-01T00:00:00+00:00"}}')
    result = run_ok(configs["software"], "--out", out, "--set", "train.epochs=1")
    assert "took over the stale lock" in result.output and f"pid {pid}" in result.output
    assert hdf5.read_run(out)["attrs"]["status"] == "completed"
    assert not lock_path(out).exists()


def test_lock_of_another_host_is_never_taken_over(configs, tmp_path):
    out = tmp_path / "r.h5"
    lock_path(out).write_text('{"pid": 1, "host": "elsewhere.example", '
                              '"started_utc": "2026-01-01T00:00:00+00:00"}')
    result = invoke("run", configs["software"], "--out", out, "--no-progress")
    assert_input_error(result, "pid 1 on host elsewhere.example", f"delete {lock_path(out)}")
    assert lock_path(out).exists() and not out.exists()


# ---------------------------------------------------------------------------------------------
# outputs checked before any work


def test_readonly_output_folder_fails_before_training(configs, readonly_dir):
    out = readonly_dir / "r.h5"
    result = invoke("run", configs["software"], "--out", out, "--no-progress")
    assert_input_error(result, str(out), f"folder {readonly_dir} is not writable")
    assert ".tmp-" not in result.output            # names the output, not a temporary file
    assert "train acc" not in result.output        # no epoch ran
    assert list(readonly_dir.iterdir()) == []


def test_readonly_checkpoint_folder_fails_before_training(configs, tmp_path, readonly_dir):
    ckpt = readonly_dir / "r.ckpt.h5"
    result = invoke("run", configs["software"], "--out", tmp_path / "r.h5", "--no-progress",
                    "--set", f"output.checkpoint={str(ckpt)!r}")
    assert_input_error(result, str(ckpt), "the checkpoint", "not writable")
    assert not (tmp_path / "r.h5").exists()


@pytest.mark.parametrize("sub", ["", "figs"])
def test_readonly_plot_folder_fails_before_training(configs, tmp_path, readonly_dir, sub):
    pytest.importorskip("matplotlib")
    out = tmp_path / "r.h5"
    result = invoke("run", configs["software"], "--out", out, "--no-progress",
                    "--plot", readonly_dir / sub if sub else readonly_dir)
    assert_input_error(result, "--plot", "not writable")
    assert "train acc" not in result.output
    assert not out.exists()                         # nothing written, exit 2


def test_orphan_temporaries_of_killed_runs_are_removed_by_force_and_resume(configs, tmp_path):
    out = tmp_path / "r.h5"
    run_ok(configs["software"], "--out", out, "--set", "train.epochs=1")
    dead, alive = dead_pid(), os.getppid()
    orphans = [tmp_path / f".r.h5.tmp-{dead}", tmp_path / f".r.ckpt.h5.tmp-{dead}"]
    kept = [tmp_path / f".r.h5.tmp-{alive}",          # a live process's file
            tmp_path / f".other.h5.tmp-{dead}",       # another output's file
            tmp_path / f".r.h5.tmp-{dead}.bak"]       # not a temporary file name
    for path in orphans + kept:
        path.write_bytes(b"half-written")
    run_ok(configs["software"], "--out", out, "--force", "--set", "train.epochs=1")
    assert not any(p.exists() for p in orphans)
    assert all(p.exists() for p in kept)
    # --resume cleans up too
    orphans[0].write_bytes(b"half-written")
    run_ok(configs["software"], "--out", out, "--resume", "--set", "train.epochs=2")
    assert not orphans[0].exists() and all(p.exists() for p in kept)


# ---------------------------------------------------------------------------------------------
# resume


def _lrs(path: Path) -> np.ndarray:
    return hdf5.read_run(path)["history"]["lr"]


@pytest.mark.parametrize("first, then", [(3, 6), (6, 4)])
def test_resume_with_other_epochs_refuses_a_changed_cosine_schedule(configs, tmp_path, first,
                                                                    then):
    opts = ["--set", "train.schedule=cosine", "train.momentum=0.9", "train.lr_min=1.0e-5"]
    out = tmp_path / "r.h5"
    if first > then:          # a run of 6 epochs interrupted after 3
        _interrupted_run(configs["software"], out, opts, first, 3)
    else:                     # a completed run of 3 epochs
        run_ok(configs["software"], "--out", out, *opts, f"train.epochs={first}")
    before = out.read_bytes()
    result = invoke("run", configs["software"], "--out", out, "--resume", "--no-progress",
                    *opts, f"train.epochs={then}")
    assert_input_error(result, "cosine learning-rate schedule depends on train.epochs",
                       "--allow-schedule-change")
    assert out.read_bytes() == before                 # nothing written
    # allowed: the remaining epochs get exactly the rates of a run of the new length
    result = run_ok(configs["software"], "--out", out, "--resume", "--allow-schedule-change",
                    *opts, f"train.epochs={then}")
    run_ok(configs["software"], "--out", tmp_path / "long.h5", *opts, f"train.epochs={then}")
    resumed, reference = _lrs(out), _lrs(tmp_path / "long.h5")
    assert resumed.shape == (then,)
    assert_array_equal(resumed[3:], reference[3:])
    assert not np.array_equal(resumed[:3], reference[:3])   # the completed epochs differ
    attrs = hdf5.read_run(out)["attrs"]
    assert attrs["status"] == "completed_with_warnings"
    assert any("schedule changed on resume after epoch 3" in w for w in attrs["warnings"])
    assert "warning: learning-rate schedule changed" in result.output


def _interrupted_run(config: Path, out: Path, opts: list[str], epochs: int, keep: int) -> None:
    """Run `epochs` epochs into `out`, interrupted (Ctrl-C) after `keep` epochs."""
    from unittest import mock

    from xbarsim.data import BatchIterator

    original = BatchIterator.__iter__
    passes = {"n": 0}

    def interrupted(self):
        passes["n"] += 1
        if passes["n"] == keep + 1:
            raise KeyboardInterrupt
        yield from original(self)

    with mock.patch.object(BatchIterator, "__iter__", interrupted):
        result = invoke("run", config, "--out", out, "--no-progress", *opts,
                        f"train.epochs={epochs}")
    assert result.exit_code == 130, result.output
    assert hdf5.read_attrs(out.with_name(out.stem + ".ckpt.h5"))["epoch"] == keep


def test_resume_with_more_epochs_of_a_step_schedule_equals_the_longer_run(configs, tmp_path):
    opts = ["--set", "train.schedule=step", "train.step_size=2", "train.gamma=0.5",
            "train.momentum=0.9"]
    run_ok(configs["software"], "--out", tmp_path / "r.h5", *opts, "train.epochs=3")
    run_ok(configs["software"], "--out", tmp_path / "r.h5", "--resume", *opts,
           "train.epochs=5")
    run_ok(configs["software"], "--out", tmp_path / "long.h5", *opts, "train.epochs=5")
    resumed, longer = hdf5.read_run(tmp_path / "r.h5"), hdf5.read_run(tmp_path / "long.h5")
    for key in ("lr", "train_loss", "test_acc"):
        assert_array_equal(resumed["history"][key], longer["history"][key], err_msg=key)
    assert_array_equal(resumed["layers"]["fc1"]["weights"], longer["layers"]["fc1"]["weights"])
    assert resumed["attrs"]["status"] == "completed" and resumed["attrs"]["warnings"] == []


def test_resume_refuses_fewer_epochs_than_done(configs, tmp_path):
    run_ok(configs["software"], "--out", tmp_path / "r.h5", "--set", "train.epochs=2")
    result = invoke("run", configs["software"], "--out", tmp_path / "r.h5", "--resume",
                    "--set", "train.epochs=1")
    assert_input_error(result, "already holds 2 completed epochs", "train.epochs >= 2")


def test_resume_refuses_a_checkpoint_without_optimizer_state(configs, tmp_path):
    opts = ["--set", "train.momentum=0.9"]
    run_ok(configs["software"], "--out", tmp_path / "r.h5", *opts, "train.epochs=1")
    with h5py.File(tmp_path / "r.ckpt.h5", "a") as f:
        del f["optimizer"]
    result = invoke("run", configs["software"], "--out", tmp_path / "r.h5", "--resume", *opts,
                    "train.epochs=2")
    assert_input_error(result, "no optimizer state", "momentum")
    run_ok(configs["software"], "--out", tmp_path / "s.h5", *opts, "train.epochs=1")
    with h5py.File(tmp_path / "s.ckpt.h5", "a") as f:     # one momentum buffer missing
        del f["optimizer/velocity/0"]
    result = invoke("run", configs["software"], "--out", tmp_path / "s.h5", "--resume", *opts,
                    "train.epochs=2")
    assert_input_error(result, "momentum buffers for 3 of the 4 parameters")


# ---------------------------------------------------------------------------------------------
# signals, progress and the log of a run in a subprocess


def test_sigterm_exits_like_ctrl_c_with_a_valid_checkpoint_and_the_command(configs, tmp_path):
    out = tmp_path / "t.h5"
    # long enough (hundreds of short epochs) for the signal to arrive mid-run
    opts = ["--set", "train.epochs=400", "train.momentum=0.9", "data.n_train=512"]
    log, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with log.open("w") as fout, err.open("w") as ferr:
        # no --no-progress: stderr is a file, so there must be no progress bar
        proc = xbarsim_process("run", configs["software"], "--out", out, *opts, "--seed", 3,
                               stdout=fout, stderr=ferr)
        # the table line of epoch 1 is in the log as soon as the epoch ends
        wait_for(lambda: "\n    2  " in log.read_text(), proc, "the line of epoch 2")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    stdout, stderr = log.read_text(), err.read_text()
    assert proc.returncode == 143, stderr
    assert "\r" not in stderr and "batch/s" not in stderr      # no tqdm bar in a log file
    assert "terminated (SIGTERM)" in stderr and "Traceback" not in stderr
    tree, attrs = hdf5.read_checkpoint(tmp_path / "t.ckpt.h5")  # a valid checkpoint
    done = int(attrs["epoch"])
    assert done >= 2 and f"holds epoch {done}" in stderr
    run = hdf5.read_run(out)
    assert run["attrs"]["status"] == "interrupted" and run["attrs"]["epochs_done"] == done
    for k in range(1, done + 1):
        assert f"\n{k:>5}  " in stdout
    assert not lock_path(out).exists()
    # the printed command continues the run (here for two more epochs only)
    command = shlex.split(stderr.rsplit("Continue with:", 1)[1].strip())
    assert command[-1] == "--resume" and "--seed" in command and "data.n_train=512" in command
    run_ok(*command[2:], f"train.epochs={done + 2}")
    run = hdf5.read_run(out)
    assert run["attrs"]["status"] == "completed" and run["attrs"]["epochs_done"] == done + 2


def test_sigterm_during_a_write_is_delivered_after_it(tmp_path):
    """The runner holds SIGTERM/SIGINT back while it writes, then delivers them."""
    from xbarsim import runner

    delivered = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: delivered.append(signum))
    try:
        with runner._signals_held():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            assert delivered == []
        assert delivered == [signal.SIGTERM]
        with pytest.raises(KeyboardInterrupt), runner._signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            delivered.append("still writing")
        assert delivered[-1] == "still writing"
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_progress_covers_the_evaluation_and_kernel_compilation_is_announced(tmp_path, capsys):
    import numba

    from xbarsim import runner
    from xbarsim.config import load_config

    said = []
    bars = runner._Progress(False, said.append)
    with runner._compile_notice(bars):
        @numba.njit
        def fresh(x):
            return x + 1

        @numba.njit
        def fresh2(x):
            return x * 2

        fresh(1)
        fresh2(1)
    assert len(said) == 1 and "compiling Numba kernels" in said[0]
    fresh(2.0)                                  # a new signature, outside: nothing said
    assert len(said) == 1
    # a bar on stderr counts the test-set batches too
    spec = {"data": {"dataset": "synthetic", "n_train": 64, "n_test": 3000,
                     "synthetic_shape": [1, 4, 4], "synthetic_classes": 3},
            "model": {"name": "mlp", "hidden": [8]},
            "train": {"mode": "software", "epochs": 1, "batch_size": 32}}
    cfg = load_config(spec)
    pytest.importorskip("tqdm")
    runner.run(cfg, out=tmp_path / "p.h5", progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/1: test set" in err and "/3 " in err
    deployed = load_config(spec, ["train.evaluate_only=true",
                                  f"train.weights={str(tmp_path / 'p.h5')!r}"])
    runner.run(deployed, out=tmp_path / "e.h5", progress=True)
    assert "evaluate-only: test set" in capsys.readouterr().err


def test_epoch_lines_are_printed_as_epochs_end(configs, tmp_path):
    from xbarsim import runner

    seen = []

    def spy(history):
        seen.append(len(history["epoch"]))

    from xbarsim.config import load_config

    cfg = load_config(configs["software"], ["train.epochs=3"])
    runner.run(cfg, out=tmp_path / "r.h5", on_epoch=spy)
    assert seen == [1, 2, 3]


# ---------------------------------------------------------------------------------------------
# silent garbage


@pytest.mark.parametrize("setting, expected", [
    ("hardware.forward.adc.range=1.0e-12",
     ["fc1: 100.0 % of the forward ADC conversions were clipped at full scale",
      "predicted one class for all the samples"]),
    ("hardware.forward.adc.range=1.0e+3",
     ["fc1: 100.0 % of the forward ADC conversions of non-zero currents gave code 0"]),
])
def test_stuck_adc_and_collapsed_output_are_reported(configs, tmp_path, setting, expected):
    out = tmp_path / "g.h5"
    result = run_ok(configs["crossbar"], "--out", out, "--set", setting)
    assert "status: completed_with_warnings" in result.output
    attrs = hdf5.read_run(out)["attrs"]
    assert attrs["status"] == "completed_with_warnings"
    for text in expected:
        assert any(text in w for w in attrs["warnings"]), (text, attrs["warnings"])
        assert any(line.startswith("warning: ") and text in line
                   for line in result.output.splitlines()), result.output
    # the same run with calibrated ranges: no warning at all
    result = run_ok(configs["crossbar"], "--out", tmp_path / "ok.h5")
    ok = hdf5.read_run(tmp_path / "ok.h5")["attrs"]
    assert ok["status"] == "completed" and ok["warnings"] == [] and "warning" not in \
        result.output


def test_evaluate_only_refuses_the_initial_weights_of_a_diverged_run(configs, tmp_path):
    diverged = tmp_path / "div.h5"
    result = invoke("run", configs["software"], "--out", diverged, "--no-progress",
                    "--set", "train.lr=1.0e+6")
    assert result.exit_code == 3
    assert hdf5.read_run(diverged)["attrs"]["weights_epoch"] == 0
    deploy = ["--set", "train.evaluate_only=true", f"train.weights={str(diverged)!r}"]
    result = invoke("run", configs["software"], "--out", tmp_path / "e.h5", "--no-progress",
                    *deploy)
    assert_input_error(result, "diverged in epoch 1 before completing an epoch",
                       "initial, untrained weights")
    assert not (tmp_path / "e.h5").exists()


def test_evaluate_only_warns_about_weights_of_a_run_that_diverged_later(configs, tmp_path):
    from unittest import mock

    from xbarsim.nn.losses import SoftmaxCrossEntropy

    original = SoftmaxCrossEntropy.forward
    calls = {"n": 0}

    def flaky(self, y, labels):
        calls["n"] += 1
        return float("nan") if calls["n"] == 8 + 3 else original(self, y, labels)

    src = tmp_path / "d.h5"
    with mock.patch.object(SoftmaxCrossEntropy, "forward", flaky):
        assert invoke("run", configs["software"], "--out", src, "--no-progress").exit_code == 3
    assert hdf5.read_run(src)["attrs"]["weights_epoch"] == 1
    result = run_ok(configs["software"], "--out", tmp_path / "e.h5", "--set",
                    "train.evaluate_only=true", f"train.weights={str(src)!r}")
    attrs = hdf5.read_run(tmp_path / "e.h5")["attrs"]
    assert attrs["status"] == "evaluated_with_warnings" and attrs["weights_epoch"] == 1
    assert "diverged in epoch 2; its weights are those of epoch 1" in attrs["warnings"][0]
    assert "warning: train.weights" in result.output


# ---------------------------------------------------------------------------------------------
# records


def test_run_file_and_checkpoint_record_the_versions(configs, tmp_path):
    run_ok(configs["crossbar"], "--out", tmp_path / "r.h5", "--set", "train.epochs=1")
    run_attrs = hdf5.read_run(tmp_path / "r.h5")["attrs"]
    _, ckpt_attrs = hdf5.read_checkpoint(tmp_path / "r.ckpt.h5")
    import platform

    import numba
    import scipy

    for attrs in (run_attrs, ckpt_attrs):
        for key in hdf5.PROVENANCE_KEYS:
            assert isinstance(attrs[key], str) and attrs[key], key
        assert attrs["numpy_version"] == np.__version__
        assert attrs["scipy_version"] == scipy.__version__
        assert attrs["numba_version"] == numba.__version__
        assert attrs["h5py_version"] == h5py.__version__
        assert attrs["python_version"].startswith(platform.python_version())
        assert attrs["platform"] == platform.platform()
    assert run_attrs["hardware_label"].startswith("Cross-NI (IR drop (aam)")


def test_training_curves_are_titled_with_the_hardware(configs, tmp_path):
    pytest.importorskip("matplotlib")
    from unittest import mock

    from xbarsim import plot

    titles = []
    real = plot.training_curves

    def spy(history, path, *, title=None):
        titles.append(title)
        return real(history, path, title=title)

    ideal = ["hardware.solver.method=ideal", "hardware.forward.dac.input_bits=null",
             "hardware.backward.dac.input_bits=null", "hardware.forward.dac.bits=null",
             "hardware.backward.dac.bits=null", "hardware.forward.adc.bits=null",
             "hardware.backward.adc.bits=null", "hardware.device.update_model=linear",
             "hardware.device.gamma=0.0"]
    with mock.patch.object(plot, "training_curves", spy):
        run_ok(configs["crossbar"], "--out", tmp_path / "ni.h5", "--plot", tmp_path,
               "--set", "train.epochs=1")
        run_ok(configs["crossbar"], "--out", tmp_path / "id.h5", "--plot", tmp_path,
               "--set", "train.epochs=1", *ideal)
        run_ok(configs["software"], "--out", tmp_path / "sw.h5", "--plot", tmp_path,
               "--set", "train.epochs=1")
    assert titles[0].startswith("mlp on mnist, Cross-NI (IR drop (aam), non-linear updates, "
                                "write noise")
    assert "8-bit ADC" in titles[0]
    assert titles[1] == "mlp on mnist, Cross-Ideal"
    assert titles[2] == "mlp on mnist, software"
    assert (tmp_path / "id_training.png").is_file()


@pytest.mark.parametrize("example, label", [
    ("lenet_ideal.yaml", "Cross-Ideal"),
    ("lenet_software.yaml", "software"),
    ("lenet.yaml", "Cross-NI (IR drop (fcm), non-linear updates, write noise, 8-bit inputs, "
                   "1-bit DAC, 8-bit ADC)"),
])
def test_hardware_label_of_the_examples(example, label):
    from xbarsim.config import load_config
    from xbarsim.runner import hardware_label

    assert hardware_label(load_config(REPO / "examples" / example)) == label


def test_interrupted_run_without_a_completed_epoch_says_so(configs, tmp_path):
    from unittest import mock

    from xbarsim.data import BatchIterator

    def interrupted(self):
        raise KeyboardInterrupt
        yield  # pragma: no cover

    with mock.patch.object(BatchIterator, "__iter__", interrupted):
        result = invoke("run", configs["software"], "--out", tmp_path / "r.h5",
                        "--no-progress")
    assert result.exit_code == 130
    assert "no epoch was completed, so there is nothing to resume" in result.output
    assert not (tmp_path / "r.h5").exists() and not lock_path(tmp_path / "r.h5").exists()
