"""Training mode ``aware``: the AwareWeights backend, the chip sampler, the runner integration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from xbarsim.config import load_config
from xbarsim.errors import ConfigError
from xbarsim.hardware import aware as aware_mod
from xbarsim.hardware.aware import AWARE_GRADIENTS, AwareWeights, ChipSampler, check_config
from xbarsim.hardware.tile import Tile

FD_RTOL = 1e-6

HARSH = {"crossbar": {"r_row": 10.0, "r_col": 10.0, "r_source": 500.0, "r_sense": 300.0},
         "device": {"r_min": 2000.0, "r_max": 20000.0}}
TXSIM = {"crossbar": {"r_row": 1.0, "r_col": 4.6, "r_source": 300.0, "r_sense": 300.0}}
IDEAL = {"crossbar": {"r_row": 0.0, "r_col": 0.0, "r_source": 0.0, "r_sense": 0.0}}


def _cfg(hw=None, *, xbar=(32, 24), scheme="signed_split", sigma_pv=0.0, chip_seed=3,
         gradient="exact", quantize=False, resample_every=None, extra=None):
    hw = {k: dict(v) for k, v in (hw or {}).items()}
    hw.setdefault("crossbar", {}).update({"n_rows": xbar[0], "n_cols": xbar[1]})
    hw["mapping"] = {"scheme": scheme}
    hw["variation"] = {"sigma_pv": sigma_pv, "chip_seed": chip_seed}
    for key, value in (extra or {}).items():
        hw.setdefault(key, {}).update(value)
    return load_config({"hardware": hw, "train": {"mode": "aware", "aware": {
        "gradient": gradient, "quantize": quantize, "resample_every": resample_every}}})


def _backend(cfg, w, name="fc1", chips=None):
    chips = chips or ChipSampler(cfg.hardware.variation.chip_seed,
                                 cfg.train.aware.resample_every, np.random.default_rng(7))
    return AwareWeights(*w.shape, cfg.hardware, cfg.train.aware, chips=chips, name=name,
                        w_init=w)


def _loss(b, x, c):
    return float(np.sum(c * b.forward(x, calibrate=False)))


def _directional_fd(b, x, c, direction, h):
    w = b.get_weights()
    b.set_weights(w + h * direction, rescale=False)
    up = _loss(b, x, c)
    b.set_weights(w - h * direction, rescale=False)
    down = _loss(b, x, c)
    b.set_weights(w, rescale=False)
    return (up - down) / (2 * h)


# ------------------------------------------------------------------ the layer gradient

@pytest.mark.parametrize("scheme", ["signed_split", "differential", "offset"])
@pytest.mark.parametrize("regime", ["harsh", "txsim"])
def test_tiled_layer_exact_gradient_matches_central_differences(rng, scheme, regime):
    """70 x 40 on 32 x 24 arrays (3 x 2 blocks, partial edge blocks), chip variation on:
    dL/dW through mapping, variation, circuit and back agrees with central differences."""
    cfg = _cfg(HARSH if regime == "harsh" else TXSIM, scheme=scheme, sigma_pv=0.1)
    w = 0.1 * rng.standard_normal((70, 40))
    b = _backend(cfg, w)
    assert len(b.arrays) == 6 * b.mapping.n_arrays
    x, c = rng.standard_normal((6, 70)), rng.standard_normal((6, 40))
    b.forward(x)
    grad = b.weight_gradient(x, c)
    for _ in range(3):
        v = rng.standard_normal(w.shape)
        fd = _directional_fd(b, x, c, v, 1e-5)
        assert abs(np.sum(grad * v) - fd) <= FD_RTOL * abs(fd)
    for i, j in [(0, 0), (31, 23), (32, 24), (69, 39), (40, 10)]:   # block corners and edges
        e = np.zeros(w.shape)
        e[i, j] = 1.0
        fd = _directional_fd(b, x, c, e, 1e-6)
        assert abs(grad[i, j] - fd) <= FD_RTOL * np.abs(grad).max()


@pytest.mark.parametrize("batch", [3, 20])
@pytest.mark.parametrize("shape", [(8, 5), (5, 8)])
def test_exact_gradient_rank_b_and_unit_drive_forms(rng, shape, batch):
    """batch <= min(n_rows, n_cols): drives from x and delta; else unit drives on the shorter
    side. Every form gives dL/dW."""
    cfg = _cfg(HARSH, xbar=shape, sigma_pv=0.05)
    b = _backend(cfg, 0.1 * rng.standard_normal(shape))
    x, c = rng.standard_normal((batch, shape[0])), rng.standard_normal((batch, shape[1]))
    b.forward(x)
    grad = b.weight_gradient(x, c)
    for _ in range(2):
        v = rng.standard_normal(shape)
        fd = _directional_fd(b, x, c, v, 1e-5)
        assert abs(np.sum(grad * v) - fd) <= FD_RTOL * abs(fd)


def test_gradient_without_kept_factors_is_the_same(rng, monkeypatch):
    cfg = _cfg(HARSH, sigma_pv=0.1)
    w = 0.1 * rng.standard_normal((50, 30))
    x, c = rng.standard_normal((4, 50)), rng.standard_normal((4, 30))
    b = _backend(cfg, w)
    b.forward(x)
    kept = b.weight_gradient(x, c)
    monkeypatch.setattr(aware_mod, "FACTOR_BUDGET_BYTES", 0)
    b2 = _backend(cfg, w)
    b2.forward(x)
    assert all(arr.factors is None for arr in b2.arrays)
    assert_allclose(b2.weight_gradient(x, c), kept, rtol=1e-12, atol=1e-14 * np.abs(kept).max())


@pytest.mark.parametrize("gradient", AWARE_GRADIENTS)
@pytest.mark.parametrize("scheme", ["signed_split", "differential", "offset"])
def test_ideal_hardware_is_software(rng, gradient, scheme):
    """No parasitics, no variation: W_eff = W and every gradient choice is x.T @ delta."""
    cfg = _cfg(IDEAL, scheme=scheme, gradient=gradient)
    w = rng.standard_normal((40, 30))
    b = _backend(cfg, w)
    x, c = rng.standard_normal((5, 40)), rng.standard_normal((5, 30))
    assert_allclose(b.forward(x), x @ w, rtol=1e-10, atol=1e-12)
    assert_allclose(b.weight_gradient(x, c), x.T @ c, rtol=1e-10, atol=1e-12)
    assert_allclose(b.backward(c), c @ w.T, rtol=1e-10, atol=1e-12)


def test_straight_through_and_aam1_differ_from_exact_in_the_harsh_regime(rng):
    w = 0.1 * rng.standard_normal((30, 20))
    x, c = rng.standard_normal((4, 30)), rng.standard_normal((4, 20))
    grads = {}
    for gradient in AWARE_GRADIENTS:
        b = _backend(_cfg(TXSIM, gradient=gradient), w)
        y = b.forward(x)
        grads[gradient] = b.weight_gradient(x, c)
        if gradient == "exact":
            y_exact = y
        else:       # same forward (the configured exact solver), other circuit gradient
            assert_allclose(y, y_exact, rtol=1e-12)
    ex = np.linalg.norm(grads["exact"])
    err_st = np.linalg.norm(grads["straight_through"] - grads["exact"]) / ex
    err_aam = np.linalg.norm(grads["aam1"] - grads["exact"]) / ex
    assert 0 < err_aam < err_st        # the first-order model is closer than no model


def test_backward_and_forward_use_the_effective_weights(rng):
    cfg = _cfg(HARSH, sigma_pv=0.1)
    b = _backend(cfg, 0.1 * rng.standard_normal((70, 40)))
    w_eff = b.effective_weights()
    assert not np.allclose(w_eff, b.get_weights(), rtol=0.01)
    x, d = rng.standard_normal((3, 70)), rng.standard_normal((3, 40))
    assert_allclose(b.forward(x), x @ w_eff, rtol=1e-12)
    assert_allclose(b.backward(d), d @ w_eff.T, rtol=1e-12)


def test_optimizer_steps_are_exact_on_the_digital_weights(rng):
    cfg = _cfg(TXSIM)
    w = rng.standard_normal((10, 6))
    b = _backend(cfg, w)
    dw = rng.standard_normal((10, 6))
    b.apply_step(dw)
    assert_allclose(b.get_weights(), w + dw, rtol=0, atol=0)
    x, c = rng.standard_normal((2, 10)), rng.standard_normal((2, 6))
    b.forward(x)
    g = b.weight_gradient(x, c)
    b.update(x, c, 0.5)
    assert_allclose(b.get_weights(), w + dw - 0.5 * g, rtol=1e-14)


# ------------------------------------------------------------------ chips

@pytest.mark.parametrize("quantize", [False, True])
def test_aware_layer_sits_on_the_same_chip_as_a_tile(rng, quantize):
    """Same chip seed: the aware model's W_eff equals the crossbar tile's effective weights
    (same process-variation streams, mapping, levels and solver)."""
    extra = {"device": {"bits": 4}} if quantize else None
    cfg = _cfg(HARSH, sigma_pv=0.15, chip_seed=11, quantize=quantize, extra=extra)
    w = 0.1 * rng.standard_normal((70, 40))
    b = _backend(cfg, w, name="fc2")
    tile = Tile(70, 40, cfg.hardware, rng=np.random.default_rng(0), name="fc2", w_init=w)
    assert b.w_scale == tile.w_scale
    assert_allclose(b.effective_weights(), tile.effective_weights(), rtol=1e-12, atol=1e-15)


def test_chip_sampler_draws_a_fresh_chip_every_k_batches(rng):
    cfg = _cfg(TXSIM, sigma_pv=0.2, resample_every=2)
    chips = ChipSampler(3, 2, np.random.default_rng(5))
    b = _backend(cfg, 0.1 * rng.standard_normal((20, 10)), chips=chips)
    first = b.effective_weights()
    chips.after_batch()
    assert chips.version == 0
    assert_allclose(b.effective_weights(), first, rtol=0, atol=0)
    chips.after_batch()
    assert chips.version == 1 and chips.seed != 3
    second = b.effective_weights()
    assert not np.allclose(second, first, rtol=1e-3)
    again = ChipSampler(3, 2, np.random.default_rng(5))
    again.after_batch()
    again.after_batch()
    assert again.seed == chips.seed                # reproducible from the stream
    never = ChipSampler(3, None, np.random.default_rng(5))
    for _ in range(10):
        never.after_batch()
    assert never.version == 0 and never.seed == 3
    with pytest.raises(ValueError, match="resample_every"):
        ChipSampler(0, 0, np.random.default_rng(0))


def test_state_dict_round_trip(rng):
    cfg = _cfg(TXSIM, sigma_pv=0.1, resample_every=1, quantize=True)
    b = _backend(cfg, rng.standard_normal((20, 10)))
    x = rng.standard_normal((4, 20))
    b.forward(x)                                   # calibrates the ADC
    b.chips.after_batch()
    state = b.state_dict()
    assert state["g"].shape == (1, 2, 32, 24) and np.isnan(state["g"][0, 0, 20:]).all()
    b2 = _backend(_cfg(TXSIM, sigma_pv=0.1, resample_every=1, quantize=True),
                  np.zeros((20, 10)))
    b2.load_state_dict(state)
    assert b2.chips.seed == b.chips.seed and b2.w_scale == b.w_scale
    assert b2._adc.i_max == b._adc.i_max
    assert_allclose(b2.forward(x, calibrate=False), b.forward(x, calibrate=False), rtol=0,
                    atol=0)


# ------------------------------------------------------------------ quantisation

def test_quantize_with_ideal_converters_is_the_smooth_model(rng):
    extra = {"forward": {"dac": {"bits": None, "input_bits": None}, "adc": {"bits": None}}}
    w = rng.standard_normal((20, 10))
    smooth = _backend(_cfg(TXSIM), w)
    quant = _backend(_cfg(TXSIM, quantize=True, extra=extra), w)
    x = rng.standard_normal((5, 20))
    assert_allclose(quant.forward(x), smooth.forward(x), rtol=1e-12, atol=1e-12)


def test_quantize_calibrates_the_adc_on_training_passes_only(rng):
    extra = {"forward": {"adc": {"bits": 4, "calibration_batches": 2}}}
    b = _backend(_cfg(TXSIM, quantize=True, extra=extra), rng.standard_normal((20, 10)))
    x = rng.standard_normal((5, 20))
    with pytest.raises(RuntimeError, match="no range yet"):
        b.forward(x, calibrate=False)
    y = b.forward(x)
    assert b._adc.i_max is not None
    assert len(np.unique(np.round(y / np.abs(y).max(), 9))) <= 2 ** 5   # 4-bit bipolar codes
    c = rng.standard_normal((5, 10))
    # straight-through: the converters do not enter the weight gradient
    smooth = _backend(_cfg(TXSIM), b.get_weights())
    smooth.forward(x)
    assert_allclose(b.weight_gradient(x, c), smooth.weight_gradient(x, c), rtol=1e-12)


# ------------------------------------------------------------------ configuration

def test_check_config_rejects_what_aware_cannot_do():
    sliced = _cfg(TXSIM, extra={"mapping": {"weight_bits": 4, "slice_bits": 2},
                                "device": {"bits": 2}})
    assert any("slice_bits" in p for p in check_config(sliced.hardware, sliced.train.aware))
    aam = _cfg(TXSIM, extra={"solver": {"method": "aam"}})
    problems = check_config(aam.hardware, aam.train.aware)
    assert any("train.aware.gradient" in p and "'fcm'" in p for p in problems)
    ok = _cfg(TXSIM, gradient="aam1", extra={"solver": {"method": "aam"}})
    assert check_config(ok.hardware, ok.train.aware) == []


def test_build_model_reports_config_problems():
    from xbarsim import runner

    cfg = load_config({"model": {"name": "mlp", "hidden": [8]},
                       "hardware": {"solver": {"method": "interpolated"}},
                       "train": {"mode": "aware"}})
    with pytest.raises(ConfigError, match="train.aware.gradient"):
        runner.build_model(cfg, (12,), 3)


def test_build_model_puts_every_layer_on_one_chip():
    from xbarsim import runner

    cfg = load_config({"model": {"name": "mlp", "hidden": [8]},
                       "hardware": {"variation": {"sigma_pv": 0.1}},
                       "train": {"mode": "aware", "aware": {"resample_every": 4}}})
    model, rngs = runner.build_model(cfg, (12,), 3)
    backends = [p.backend for n, p in model.named_parameters() if n.endswith("weight")]
    assert all(isinstance(b, AwareWeights) for b in backends)
    assert len({id(b.chips) for b in backends}) == 1
    assert {"aware/chips", "aware/fc1", "aware/fc2"} <= set(rngs)
    assert aware_mod.find_chip_sampler(backends) is backends[0].chips


# ------------------------------------------------------------------ runs

def _run_cfg(tmp_path, data_dir, **train):
    t = {"mode": "aware", "epochs": 2, "batch_size": 64, "lr": 0.05, "momentum": 0.9,
         "aware": {"gradient": "exact", "resample_every": 3}, **train}
    return load_config({
        "seed": 2, "data": {"dataset": "mnist", "n_train": 384, "n_test": 200,
                            "data_dir": str(data_dir)},
        "model": {"name": "mlp", "hidden": [16]},
        "hardware": {"crossbar": {"n_rows": 64, "n_cols": 16, "r_source": 1000.0,
                                  "r_sense": 1000.0, "r_row": 1.0, "r_col": 4.6},
                     "variation": {"sigma_pv": 0.1}},
        "train": t, "output": {"out": str(tmp_path / "run.h5")}})


def test_aware_run_trains_and_resumes_bit_for_bit(tmp_path, mnist_path):
    from xbarsim import runner
    from xbarsim.io import hdf5

    cfg = _run_cfg(tmp_path, mnist_path)
    full = runner.run(cfg, out=tmp_path / "full.h5")
    assert full.status == "completed"
    assert full.history["train_loss"][-1] < full.history["train_loss"][0]
    run = hdf5.read_run(tmp_path / "full.h5")
    assert run["attrs"]["mode"] == "aware"
    assert {"weights", "bias", "g", "w_scale"} <= set(run["layers"]["fc1"])

    one = _run_cfg(tmp_path, mnist_path, epochs=1)
    runner.run(one, out=tmp_path / "part.h5")
    resumed = runner.run(cfg, out=tmp_path / "part.h5", resume=True)
    assert resumed.status == "completed"
    got = hdf5.read_run(tmp_path / "part.h5")
    for key in ("train_loss", "train_acc", "test_acc"):
        np.testing.assert_array_equal(got["history"][key], run["history"][key])
    for layer in ("fc1", "fc2"):
        np.testing.assert_array_equal(got["layers"][layer]["weights"],
                                      run["layers"][layer]["weights"])


def test_cnn_has_the_4096x512_classifier_layer(rng):
    from xbarsim import runner
    from xbarsim.nn.models import cnn

    model = cnn(seed=1)
    shapes = {n: p.value.shape for n, p in model.named_parameters() if n.endswith("weight")}
    assert shapes == {"conv1.weight": (25, 32), "conv2.weight": (800, 64),
                      "fc1.weight": (4096, 512), "fc2.weight": (512, 10)}
    assert model.forward(rng.standard_normal((2, 1, 28, 28)), training=False).shape == (2, 10)
    cfg = load_config({"model": {"name": "cnn"}, "train": {"mode": "software"}})
    built, _ = runner.build_model(cfg, (1, 28, 28), 10)
    assert [layer.name for layer in built][-3:] == ["fc1", "relu3", "fc2"]
    with pytest.raises(ValueError, match="too small"):
        cnn(input_size=12)


REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["aware.yaml", "chips.yaml"])
def test_examples_are_valid(name):
    cfg = load_config(REPO / "examples" / name)
    if name == "aware.yaml":
        assert cfg.train.mode == "aware" and cfg.hardware.crossbar.n_rows == 784


@pytest.mark.parametrize("study", ["chakraborty_fcn.yaml", "chakraborty_cnn.yaml"])
@pytest.mark.parametrize("smoke", [False, True])
def test_study_files_expand_to_valid_configurations(study, smoke):
    import importlib.util

    path = REPO / "examples" / "studies" / "chakraborty.py"
    spec = importlib.util.spec_from_file_location("chakraborty_study", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    s = mod.load_study(REPO / "examples" / "studies" / study, smoke)
    pts = mod.points(s, None)
    assert pts[0]["name"] == "base" and len({p["name"] for p in pts}) > 3
    for point in pts:
        for tspec in s["trainings"].values():
            cfg = mod.run_config(point, tspec, 0, REPO / "x.h5", None)
            assert cfg.train.mode in ("software", "aware", "crossbar")


def test_quantized_layer_counts_its_adc_conversions(rng):
    b = _backend(_cfg(TXSIM, quantize=True), np.abs(rng.standard_normal((20, 10))))
    x = np.zeros((5, 20))
    x[:, 0] = 1.0                                  # one input line driven
    b.forward(x)                                   # calibrates the range on this batch
    stats = b.adc_stats()
    assert set(stats) == {"forward"}
    assert stats["forward"]["conversions"] == 5 * 10 and stats["forward"]["clipped"] == 0
    b.forward(np.ones((5, 20)), calibrate=False)   # every line: currents beyond the range
    assert b.adc_stats()["forward"]["clipped"] > 0
    b.reset_adc_stats()
    assert all(v == 0 for v in b.adc_stats()["forward"].values())
    plain = _backend(_cfg(TXSIM), rng.standard_normal((20, 10)))
    plain.forward(x)
    assert plain.adc_stats()["forward"]["conversions"] == 0     # not quantized: no ADC


def test_aam1_is_refused_where_its_path_expansion_diverges(rng):
    from xbarsim.hardware.circuit import rho_bound

    w = 0.1 * rng.standard_normal((30, 20))
    _backend(_cfg(TXSIM, gradient="aam1"), w)                 # rho well below 1: accepted
    with pytest.raises(ConfigError, match="'aam1' .* rho bound .* >= 1") as err:
        _backend(_cfg(HARSH, gradient="aam1"), w)
    assert "'exact' or 'straight_through'" in str(err.value)
    # the refusal follows the bound: the same harsh arrays at g_max
    g_max = 1.0 / HARSH["device"]["r_min"]
    cb = HARSH["crossbar"]
    assert rho_bound(np.full((30, 20), g_max), r_source=cb["r_source"], r_sense=cb["r_sense"],
                     r_row=cb["r_row"], r_col=cb["r_col"]) >= 1.0
    _backend(_cfg(HARSH, gradient="straight_through"), w)     # other gradients unaffected
