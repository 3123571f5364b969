"""What passes validation runs: every numeric hardware field walked to its limits.

``xbarsim check-config`` must reject whatever ``xbarsim run`` would reject. These tests take every
numeric field of the hardware section to the extremes its range check allows (and beyond it),
build a small crossbar network with those settings and train it two steps; the values beyond
the limits must be refused by the configuration loader, naming the dotted key. Every preset
and example configuration must build its crossbar model (without data) as well.

The extremes were found by a walk over every numeric field with values from 0 and 5e-324 to
1e300 and 2**70 on three hardware variants: before the range checks, 64-bit converters
overflowed the int64 kernels, 2**70-bit devices never finished computing 2**bits, sub-nano-Ohm
wires overflowed 1/r, 1e50-Ohm wires and subnormal drive voltages divided by zero, and
1e300-fold weight headroom made the weight steps infinite.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import fields, is_dataclass
from pathlib import Path

import numpy as np
import pytest

from xbarsim.checks import MIN_RESISTANCE
from xbarsim.config import PRESETS, load_config, schema
from xbarsim.errors import ConfigError
from xbarsim.nn.losses import LOSSES
from xbarsim.nn.optim import SGD
from xbarsim.runner import build_model

REPO = Path(__file__).resolve().parents[1]
RUN_EXAMPLES = ("lenet.yaml", "lenet_ideal.yaml", "lenet_software.yaml", "mlp.yaml")

SMALL = {"seed": 0,
         "data": {"dataset": "synthetic", "n_train": 16, "n_test": 8, "synthetic_shape": [12],
                  "synthetic_classes": 3},
         "model": {"name": "mlp", "hidden": [6]},
         "hardware": {"crossbar": {"n_rows": 8, "n_cols": 4}},   # 12-6-3: 2 x 2 and 1 x 1 blocks
         "train": {"mode": "crossbar", "batch_size": 8, "lr": 0.1}}

# the three hardware variants the walk runs on (all the read, update and solver paths)
BASES = {
    # analog devices, exact FCM (direct), layer-level ADCs: the txsim preset's hardware
    "analog": [],
    # 2-bit devices, 16-bit weights in 2-bit slices, per-array ADCs, interpolated FCM
    "sliced": ["hardware.device.bits=2", "hardware.mapping.weight_bits=16",
               "hardware.mapping.slice_bits=2", "hardware.forward.adc.granularity=tile",
               "hardware.backward.adc.granularity=tile", "hardware.solver.method=interpolated",
               "hardware.solver.refresh_every=2"],
    # iterative FCM (warm-started CG), pulse-quantised soft-bounds devices, variation
    "iterative": ["hardware.solver.algorithm=iterative", "hardware.device.n_pulses_max=100",
                  "hardware.device.update_model=soft_bounds", "hardware.device.sigma_d2d=0.1",
                  "hardware.device.sigma_c2c=0.1", "hardware.variation.sigma_pv=0.1"],
}

NL = "hardware.device.update_model=neurosim"
LOGNORMAL = "hardware.variation.distribution=lognormal"
AAM = "hardware.solver.method=aam"

# key -> [(accepted values, rejected values, base, extra overrides), ...]; every numeric field
# of the hardware section appears (test_every_numeric_hardware_field_is_walked)
LIMITS: dict[str, list[tuple[list, list, str, list[str]]]] = {
    "crossbar.n_rows": [([1, 2**40], [0], "analog", [])],
    "crossbar.n_cols": [([1, 2**40], [0], "sliced", [])],
    **{f"crossbar.{r}": [([0.0, MIN_RESISTANCE, 1.0e12], [1.0e-12, 1.0e-300, 1.0e13, 1.0e300],
                          base, [])]
       for r, base in (("r_row", "iterative"), ("r_col", "analog"), ("r_source", "iterative"),
                       ("r_sense", "sliced"))},
    "device.r_min": [([MIN_RESISTANCE], [1.0e-10, 5.0e-324], "analog", [])],
    "device.r_max": [([1.0e15], [1.0e16, 1.0e300], "sliced", [])],
    "device.bits": [([1, 52], [0, 53, 64, 2**70], "analog", [])],
    "device.nl": [([0.0, 1.0e300], [-1.0], "analog", [])],
    "device.nl_label": [([1.0e-9, 9.99], [0.0, 10.0, 1.0e6], "analog", [NL])],
    "device.gamma": [([0.0, 1.0e300], [-1.0], "analog", [])],
    "device.sigma_c2c": [([0.0, 1.0e300], [-1.0], "iterative", [])],
    "device.sigma_d2d": [([0.0, 1.0e300], [-1.0], "iterative", [])],
    "device.n_pulses_max": [([1, 2**70], [0], "iterative", [])],
    "update.percentile": [([1.0e-9, 100.0], [0.0, 100.5], "sliced",
                           ["hardware.update.scale=percentile"])],
    "update.headroom": [([1.0, 1000.0], [0.5, 1001.0, 1.0e300], "sliced", [])],
    "mapping.weight_bits": [([2, 52], [0, 53], "sliced", [])],
    "mapping.slice_bits": [([1, 2], [0, 3], "sliced", [])],   # <= device.bits = 2
    "solver.rtol": [([1.0e-300, 0.99], [0.0, 1.0], "iterative", [])],
    "solver.aam_order": [([1, 64], [0, 65, 2**70], "analog", [AAM])],
    "solver.refresh_every": [([1, 2**70], [0], "sliced", [])],
    "solver.refresh_threshold": [([1.0e-300, 1.0e300], [0.0], "sliced", [])],
    "variation.sigma_pv": [([0.0, 0.333], [0.34, 1.0e3], "analog", []),
                           ([1.0e-3, 1.0], [1.01, 1.0e3], "analog", [LOGNORMAL])],
    "variation.chip_seed": [([0, 2**70], [-1], "iterative", [])],
}
for _d in ("forward", "backward"):
    _tile = "sliced"
    LIMITS.update({
        f"{_d}.dac.bits": [([1, 52], [0, 53, 64], "analog",
                            [f"hardware.{_d}.dac.input_bits=null"])],
        f"{_d}.dac.v_read": [([1.0e-6, 1.0e300], [1.0e-7, 5.0e-324], "analog", [])],
        f"{_d}.dac.input_bits": [([2, 52], [1, 53, 64], "analog", [])],
        f"{_d}.dac.bow": [([-1.0, 1.0], [-1.5, 1.5], "analog",
                           [f"hardware.{_d}.dac.nonlinearity=bow"])],
        f"{_d}.adc.bits": [([1, 52], [0, 53, 64, 2**70], _tile, [])],
        f"{_d}.adc.range": [([1.0e-15, 1.0e300], [0.0, 1.0e-16, 5.0e-324], _tile, [])],
        f"{_d}.adc.percentile": [([1.0e-9, 100.0], [0.0, 101.0], _tile,
                                  [f"hardware.{_d}.adc.calibration=percentile"])],
        f"{_d}.adc.calibration_batches": [([1, 2**70], [0], _tile, [])],
        f"{_d}.adc.bow": [([-1.0, 1.0], [-1.01, 1.01], _tile,
                           [f"hardware.{_d}.adc.nonlinearity=bow"])],
        f"{_d}.adc.tanh_beta": [([1.0e-6, 1.0e300], [0.0, 1.0e-7, 5.0e-324], _tile,
                                 [f"hardware.{_d}.adc.nonlinearity=tanh"])],
        f"{_d}.adc.sense_noise": [([0.0, 1.0], [-1.0e-9, 1.5, 1.0e300], _tile, [])],
    })


def yaml_value(v: object) -> str:
    """Spell ``v`` for a ``--set`` override (PyYAML reads ``1e-9`` as a string)."""
    if isinstance(v, float) and math.isfinite(v):
        text = repr(abs(v))
        return ("-" if v < 0 else "") + (schema.yaml_float(text) if "e" in text else text)
    return repr(v)


def small_config(base: str, *overrides: str):
    return load_config(SMALL, [*BASES[base], *overrides])


def train_two_steps(cfg) -> np.ndarray:
    """Build the crossbar model of ``cfg`` (no data), train two SGD steps, return the output."""
    model, _ = build_model(cfg, cfg.input_shape(), cfg.data.synthetic_classes, hardware=True)
    loss = LOSSES[cfg.train.loss]()
    optimizer = SGD(model.parameters(), cfg.train.lr)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, *cfg.input_shape()))  # standardised inputs: signed
    if not cfg.data.normalize:
        x = np.abs(x) / np.abs(x).max()
    y = rng.integers(0, cfg.data.synthetic_classes, size=8)
    with warnings.catch_warnings():
        # e.g. "AAM is inaccurate here", "FCM did not converge ... falling back": they say so
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(2):
            out = model.forward(x, training=True)
            loss.forward(out, y)
            model.backward(loss.backward(), input_grad=False)
            optimizer.step()
        return model.forward(x, training=False)


def numeric_leaves(cls: type, prefix: str = "") -> list[str]:
    out = []
    hints = schema.type_hints(cls)
    for f in fields(cls):
        tp = hints[f.name]
        if isinstance(tp, type) and is_dataclass(tp):
            out += numeric_leaves(tp, f"{prefix}{f.name}.")
        elif {int, float} & set(schema._flat_args(tp)):
            out.append(prefix + f.name)
    return out


CASES = [(key, v, base, extra) for key, entries in LIMITS.items()
         for accepted, _, base, extra in entries for v in accepted]
BEYOND = [(key, v, base, extra) for key, entries in LIMITS.items()
          for _, rejected, base, extra in entries for v in rejected]


def test_every_numeric_hardware_field_is_walked():
    assert sorted(numeric_leaves(schema.HardwareConfig)) == sorted(LIMITS)


@pytest.mark.parametrize("key, value, base, extra", CASES,
                         ids=[f"{k}={v}" for k, v, _, _ in CASES])
def test_values_at_the_limits_build_and_train(key, value, base, extra):
    cfg = small_config(base, *extra, f"hardware.{key}={yaml_value(value)}")
    out = train_two_steps(cfg)
    assert out.shape == (8, 3) and np.all(np.isfinite(out))


@pytest.mark.parametrize("key, value, base, extra", BEYOND,
                         ids=[f"{k}={v}" for k, v, _, _ in BEYOND])
def test_values_beyond_the_limits_are_refused_naming_the_dotted_key(key, value, base, extra):
    with pytest.raises(ConfigError) as err:
        small_config(base, *extra, f"hardware.{key}={yaml_value(value)}")
    assert any(m.startswith(f"hardware.{key}: ") for m in err.value.errors), \
        err.value.errors


def test_the_issue_cases_name_the_key_the_unit_and_the_reason():
    cases = {
        "hardware.forward.adc.bits=64": ["hardware.forward.adc.bits: expected int in [1, 52]",
                                         "ADC resolution [bits]", "52-bit mantissa"],
        "hardware.forward.dac.input_bits=64": ["hardware.forward.dac.input_bits: expected int "
                                               "in [1, 52]", "input precision [bits]"],
        "hardware.device.nl_label=1.0e+6": ["hardware.device.nl_label: expected float in "
                                            "(0, 9.99]", "NeuroSim non-linearity label [1]"],
        "hardware.variation.sigma_pv=1.0e+3": ["hardware.variation.sigma_pv: expected float "
                                               "in [0, 1/3)", "relative std [1]"],
    }
    for override, needles in cases.items():
        extra = [NL] if "nl_label" in override else []
        with pytest.raises(ConfigError) as err:
            load_config(REPO / "examples" / "mlp.yaml", [*extra, override])
        text = str(err.value)
        assert str(REPO / "examples" / "mlp.yaml") in text
        for needle in needles:
            assert needle in text, (needle, text)
    with pytest.raises(ConfigError, match="lognormal' distribution, got 1000.0: std .* every "
                                          "factor underflows to 0"):
        load_config(SMALL, [LOGNORMAL, "hardware.variation.sigma_pv=1.0e+3"])


def test_one_bit_inputs_only_where_the_inputs_are_not_negative():
    with pytest.raises(ConfigError, match=r"hardware.forward.dac.input_bits: expected >= 2 or "
                                          r"null, got 1: data.normalize standardises"):
        small_config("analog", "hardware.forward.dac.input_bits=1")
    with pytest.raises(ConfigError, match="tanh"):
        small_config("analog", "hardware.forward.dac.input_bits=1", "data.normalize=false",
                     "model.activation=tanh")
    # non-negative inputs and relu: a 1-bit input DAC with 1-bit inputs is a valid design
    cfg = small_config("analog", "hardware.forward.dac.input_bits=1", "data.normalize=false")
    assert np.all(np.isfinite(train_two_steps(cfg)))
    # software mode ignores the hardware section's periphery
    small_config("analog", "hardware.forward.dac.input_bits=1", "train.mode=software")


@pytest.mark.parametrize("overrides, message", [
    (["model.name=lenet5"], "model.name: 'lenet5' needs image inputs (channels, height, "
                            "width), but data.dataset 'synthetic' with synthetic_shape [12] "
                            "gives samples of shape [12]"),
    (["model.name=lenet5", "data.synthetic_shape=[1, 8, 8]"],
     "model.name: 'lenet5' is built for 28x28 images, data.dataset 'synthetic' with "
     "synthetic_shape [1, 8, 8] gives 8x8"),
    (["model.name=vgg_small", "data.synthetic_shape=[1, 6, 6]"],
     "model.name: 'vgg_small' needs square images of at least 8x8"),
    (["model.name=lenet5", "data.dataset=cifar10"],
     "model.name: 'lenet5' is built for 28x28 images, data.dataset 'cifar10' gives 32x32"),
    (["model.dropout=0.5"], "model.dropout: 0.5 is not supported by the model builders"),
    (["model.bias=false"], "model.bias: false is not supported"),
    (["model.batch_norm=true"], "model.batch_norm: not available for model 'mlp'"),
    (["model.name=resnet20", "data.synthetic_shape=[3, 8, 8]", "model.activation=tanh"],
     "model.activation: 'tanh' is only configurable for 'mlp'"),
])
def test_model_options_the_builders_refuse_are_refused_by_validation(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(SMALL, overrides)
    assert any(m.startswith(message) for m in err.value.errors), err.value.errors


def test_limits_agree_with_the_layers_that_need_them():
    from xbarsim.hardware import converters, device

    assert schema.MIN_RESISTANCE == MIN_RESISTANCE
    assert schema.MAX_BITS == converters._MAX_INPUT_BITS == converters._MAX_BITS
    nl_max = device.neurosim_nl_from_v(device._V_LARGE)   # 9.9926: the root finder's end
    assert schema.NEUROSIM_NL_MAX < nl_max < schema.NEUROSIM_NL_MAX + 0.01
    assert schema.SIGMA_PV_MAX["normal"] == 1.0 / 3.0
    with pytest.raises(ValueError, match="bits: expected at most 52"):
        converters.ADC(64, 1.0e-4)
    with pytest.raises(ValueError, match="bits: expected at most 52"):
        converters.DAC(53)
    with pytest.raises(ValueError, match="bits: expected at most 52"):
        device.Device(g_min=1e-6, g_max=1e-5, bits=2**70)   # refused, not computed
    with pytest.raises(ValueError, match="levels: expected at most 2\\*\\*52"):
        device.Device(g_min=1e-6, g_max=1e-5, levels=2**60)


SOURCES = [("preset", name) for name in sorted(PRESETS)] + \
          [("example", name) for name in RUN_EXAMPLES]


@pytest.mark.parametrize("kind, name", SOURCES, ids=[n for _, n in SOURCES])
def test_every_preset_and_example_builds_its_crossbar_model_without_data(kind, name):
    cfg = PRESETS[name]() if kind == "preset" else load_config(REPO / "examples" / name)
    n_classes = cfg.data.synthetic_classes if cfg.data.dataset == "synthetic" else 10
    # the hardware section is validated in software mode too, so it must build there as well
    model, rngs = build_model(cfg, cfg.input_shape(), n_classes, hardware=True)
    assert rngs and all(k.startswith("tile/") for k in rngs)
    assert model.state_dict()
