"""``xbarsim.runner.run`` and ``xbarsim.train.checkpoint`` as a library (no CLI).

Most tests use the seeded synthetic dataset (no files needed); the divergence test uses real
MNIST through the ``mnist_path`` fixture.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from xbarsim import runner
from xbarsim.config import load_config
from xbarsim.errors import ConfigError
from xbarsim.io import hdf5
from xbarsim.nn.losses import SoftmaxCrossEntropy
from xbarsim.train import checkpoint

SYNTH = {"seed": 1,
         "data": {"dataset": "synthetic", "n_train": 200, "n_test": 100,
                  "synthetic_shape": [1, 8, 8], "synthetic_classes": 4},
         "model": {"name": "mlp", "hidden": [16]},
         "train": {"mode": "software", "epochs": 2, "batch_size": 20, "lr": 0.1}}


def cfg_of(*overrides: str, base: dict | None = None):
    return load_config(base or SYNTH, list(overrides))


def test_load_data_standardises_with_training_statistics_and_splits():
    cfg = cfg_of("data.validation_fraction=0.25")
    d = runner.load_data(cfg)
    assert d.x_train.shape == (150, 1, 8, 8) and d.x_val.shape == (50, 1, 8, 8)
    assert d.x_test.shape == (100, 1, 8, 8) and d.n_classes == 4
    assert_allclose(d.x_train.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    assert_allclose(d.x_train.std(axis=(0, 2, 3)), 1.0, rtol=1e-12)
    raw = runner.load_data(cfg_of("data.validation_fraction=0.25", "data.normalize=false"))
    assert raw.normalization == {}
    m, s = d.normalization["mean"], d.normalization["std"]
    assert_allclose(d.x_test, (raw.x_test - m[None, :, None, None]) / s[None, :, None, None])
    # given statistics are used as they are (deployment of saved weights)
    given = {"mean": np.array([0.5]), "std": np.array([2.0])}
    d2 = runner.load_data(cfg, normalization=given)
    assert_allclose(d2.x_test, (raw.x_test - 0.5) / 2.0)


@pytest.mark.parametrize("override, key", [
    ("model.dropout=0.5", "model.dropout"),
    ("model.bias=false", "model.bias"),
    ("model.batch_norm=true", "model.batch_norm"),
])
def test_unsupported_model_options_are_config_errors(override, key):
    with pytest.raises(ConfigError, match=key):
        runner.build_model(cfg_of(override), (1, 8, 8), 4)


def test_lenet_needs_28x28_images():
    with pytest.raises(ConfigError, match="model.name: 'lenet5' is built for 28x28"):
        cfg_of("model.name=lenet5")  # the config's own 8x8 synthetic data: validation says so
    lenet = cfg_of("model.name=lenet5", "data.synthetic_shape=[1, 28, 28]")
    with pytest.raises(ConfigError, match="model.name: 'lenet5' is built for 28x28"):
        runner.build_model(lenet, (1, 8, 8), 4)
    model, rngs = runner.build_model(lenet, (1, 28, 28), 10)
    assert rngs == {} and model.state_dict()["conv1.weight"].shape == (25, 6)


def test_run_with_validation_split_and_result(tmp_path):
    res = runner.run(cfg_of("data.validation_fraction=0.2"), out=tmp_path / "v.h5")
    assert res.status == "completed" and res.epochs_done == 2 and res.diverged_epoch is None
    assert res.checkpoint == tmp_path / "v.ckpt.h5" and res.checkpoint.is_file()
    assert set(res.history) == {"epoch", "train_loss", "train_acc", "test_acc", "lr",
                                "seconds", "collapsed_fraction", "val_acc"}
    run = hdf5.read_run(tmp_path / "v.h5")
    assert_array_equal(run["history"]["val_acc"], res.history["val_acc"])
    assert 0.0 <= res.history["val_acc"][-1] <= 1.0
    assert run["normalization"]["mean"].shape == (1,)
    assert res.test_acc == run["attrs"]["test_acc"] == res.history["test_acc"][-1]


def test_checkpoint_round_trip_restores_every_state(tmp_path):
    cfg = cfg_of("train.momentum=0.9")
    res = runner.run(cfg, out=tmp_path / "r.h5")
    tree, attrs = hdf5.read_checkpoint(res.checkpoint)
    assert attrs["epoch"] == 2 and attrs["kind"] == "checkpoint"
    states = json.loads(attrs["rng_states"])
    assert set(states) == {"data/shuffle"}
    # a fresh model and optimizer take the saved state exactly
    from xbarsim.nn.optim import SGD
    from xbarsim.rng import stream

    d = runner.load_data(cfg)
    model, _ = runner.build_model(cfg, d.x_train.shape[1:], d.n_classes)
    opt = SGD(model.parameters(), 0.1, momentum=0.9)
    g = stream(0, "other")
    epoch, history, extra, _ = checkpoint.restore({**tree, "attrs": attrs}, model, opt,
                                                  rngs={"data/shuffle": g})
    assert epoch == 2 and history.epoch == [1, 2] and extra == {}
    assert_array_equal(history.train_loss, res.history["train_loss"])
    for key, value in tree["model"].items():
        assert_array_equal(model.state_dict()[key], value)
    assert g.bit_generator.state == states["data/shuffle"]
    velocity = opt.state_dict()["velocity"]
    assert len(velocity) == len(opt.params)
    for i, v in velocity.items():
        assert_array_equal(v, tree["optimizer"]["velocity"][str(i)])
    # the run file and the checkpoint hold the same weights
    w_run, norm = hdf5.read_weights(tmp_path / "r.h5")
    w_ckpt, _ = hdf5.read_weights(res.checkpoint)
    assert w_run.keys() == w_ckpt.keys() == model.state_dict().keys()
    for key in w_run:
        assert_array_equal(w_run[key], w_ckpt[key])
    assert set(norm) == {"mean", "std"}


def test_restore_rejects_a_checkpoint_of_another_model(tmp_path):
    res = runner.run(cfg_of("train.epochs=1"), out=tmp_path / "r.h5")
    tree, attrs = hdf5.read_checkpoint(res.checkpoint)
    model, _ = runner.build_model(cfg_of("model.hidden=[8]"), (1, 8, 8), 4)
    with pytest.raises(ValueError, match="does not fit the model"):
        checkpoint.restore({**tree, "attrs": attrs}, model, None, rngs={})


def test_divergence_in_epoch_2_keeps_epoch_1(tmp_path, monkeypatch, mnist_path):
    """A NaN loss in epoch 2: status 'diverged', history and weights of epoch 1 kept."""
    cfg = load_config({"seed": 2, "data": {"dataset": "mnist", "data_dir": str(mnist_path),
                                           "n_train": 256, "n_test": 256},
                       "model": {"name": "mlp", "hidden": [32]},
                       "train": {"mode": "software", "epochs": 3, "batch_size": 32}})
    original = SoftmaxCrossEntropy.forward
    calls = {"n": 0}

    def flaky(self, y, labels):
        calls["n"] += 1
        value = original(self, y, labels)
        return float("nan") if calls["n"] == 8 + 3 else value   # 8 batches per epoch

    monkeypatch.setattr(SoftmaxCrossEntropy, "forward", flaky)
    res = runner.run(cfg, out=tmp_path / "d.h5")
    assert res.status == "diverged" and res.diverged_epoch == 2 and res.epochs_done == 1
    assert "epoch 2, batch 2" in res.message   # 0-based batch index and "nan" in res.message
    run = hdf5.read_run(tmp_path / "d.h5")
    assert run["attrs"]["status"] == "diverged" and run["attrs"]["diverged_epoch"] == 2
    assert run["attrs"]["epochs_done"] == 1
    assert_array_equal(run["history"]["epoch"], [1])
    # the stored weights are those of epoch 1 (the checkpoint), not the partial epoch 2
    tree, attrs = hdf5.read_checkpoint(tmp_path / "d.ckpt.h5")
    assert attrs["epoch"] == 1
    assert_array_equal(run["layers"]["fc1"]["weights"], tree["model"]["fc1.weight"])
    assert run["attrs"]["test_acc"] == run["history"]["test_acc"][0]


def test_outputs_are_not_overwritten_without_force(tmp_path):
    out = tmp_path / "o.h5"
    runner.run(cfg_of("train.epochs=1"), out=out)
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="--force"):
        runner.run(cfg_of("train.epochs=1"), out=out)
    assert out.read_bytes() == before
    out.unlink()   # the checkpoint of the earlier run remains: still refused
    with pytest.raises(FileExistsError, match="o.ckpt.h5.*--resume"):
        runner.run(cfg_of("train.epochs=1"), out=out)
    assert not out.exists()
    runner.run(cfg_of("train.epochs=1"), out=out, force=True)
    with h5py.File(out, "r") as f:
        assert f.attrs["status"] == "completed"
    assert not list(tmp_path.glob(".*tmp*"))          # no temporary files left behind


# calibrating 6-bit ADCs on small ideal-circuit crossbars (fast; the ranges are what matters)
CALIBRATING = ["train.mode=crossbar", "hardware.solver.method=ideal", "hardware.device.bits=null",
               "hardware.mapping.slice_bits=null", "hardware.forward.adc.bits=6",
               "hardware.backward.adc.bits=6", "hardware.forward.adc.calibration_batches=500",
               "hardware.forward.dac.input_bits=4", "hardware.backward.dac.input_bits=4"]


def _adc_states(model):
    return {f"{name}/{k}": v.copy() for name, tile in checkpoint.hardware_layers(model).items()
            for k, v in tile.state_dict().items() if "adc" in k}


def test_evaluation_never_calibrates_and_does_not_depend_on_earlier_evaluations():
    from xbarsim.train import evaluate

    cfg = cfg_of(*CALIBRATING)
    data = runner.load_data(cfg)
    model, _ = runner.build_model(cfg, data.x_train.shape[1:], data.n_classes)
    model.forward(data.x_train[:20], training=True)        # a training pass calibrates
    trained = _adc_states(model)
    assert trained and any(v.any() for v in trained.values())
    acc = evaluate(model, data.x_test, data.y_test)
    evaluate(model, 30.0 * data.x_train, data.y_train)     # far larger inputs, other data
    assert evaluate(model, data.x_test, data.y_test) == acc
    after = _adc_states(model)
    for k, v in trained.items():
        assert_array_equal(after[k], v, err_msg=k)
    model.forward(30.0 * data.x_train[:20], training=True)  # but training still calibrates
    assert any(not np.array_equal(_adc_states(model)[k], v) for k, v in trained.items())


def test_deployment_calibrates_on_training_batches_only():
    from xbarsim.hardware.tile import calibrating_adcs
    from xbarsim.train import evaluate

    cfg = cfg_of(*CALIBRATING, "hardware.forward.adc.calibration_batches=3")
    data = runner.load_data(cfg)
    shape = data.x_train.shape[1:]
    deployed, _ = runner.build_model(cfg, shape, data.n_classes)
    assert runner._calibrate_adcs(deployed, cfg, data.x_train) == 3
    # the same as three evaluation-mode passes of the first training batches, by hand
    by_hand, _ = runner.build_model(cfg, shape, data.n_classes)
    with calibrating_adcs(checkpoint.hardware_layers(by_hand).values()):
        for i in range(3):
            by_hand.forward(data.x_train[20 * i:20 * (i + 1)], training=False)
    want = _adc_states(by_hand)
    got = _adc_states(deployed)
    for k, v in want.items():
        assert_array_equal(got[k], v, err_msg=k)
    evaluate(deployed, data.x_test, data.y_test)          # evaluating the test set: no change
    for k, v in want.items():
        assert_array_equal(_adc_states(deployed)[k], v, err_msg=k)
