"""Tests of xbarsim.config: schema validation, strict YAML loading, overrides, presets."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from xbarsim.config import (
    PRESETS,
    ADCConfig,
    CrossbarConfig,
    DeviceConfig,
    HardwareConfig,
    OutputConfig,
    RunConfig,
    config_to_dict,
    dump_config,
    field_docs,
    load_config,
    schema,
)
from xbarsim.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
# the run configs (other examples, e.g. tile-study files, have their own schema)
RUN_EXAMPLES = ("lenet.yaml", "lenet_ideal.yaml", "lenet_software.yaml", "mlp.yaml")
EXAMPLES = [REPO / "examples" / name for name in RUN_EXAMPLES]


def errors_of(source, overrides=()) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(source, overrides)
    return info.value.errors


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------
# round trip and examples
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip(name):
    cfg = PRESETS[name]()
    assert isinstance(cfg, RunConfig)
    assert load_config(yaml.safe_load(dump_config(cfg))) == cfg


def test_default_round_trip_and_dict():
    cfg = RunConfig()
    assert load_config(yaml.safe_load(dump_config(cfg))) == cfg
    d = config_to_dict(cfg)
    assert d["hardware"]["crossbar"]["r_col"] == 4.6
    assert d["model"]["hidden"] == [256, 128]  # tuples become lists
    assert load_config(d) == cfg
    assert load_config({}) == cfg


@given(r_row=st.just(0.0) | st.floats(1e-9, 1e12),  # 0 or in [MIN_RESISTANCE, 1 TOhm]
       r_col=st.just(0.0) | st.floats(1e-9, 2e-9),
       rtol=st.floats(1e-300, 0.999), n_rows=st.integers(1, 10**12),
       hidden=st.lists(st.integers(1, 4096), max_size=4))
def test_round_trip_is_exact_for_any_floats(r_row, r_col, rtol, n_rows, hidden):
    cfg = load_config({"model": {"hidden": hidden},
                       "hardware": {"crossbar": {"r_row": r_row, "r_col": r_col,
                                                 "n_rows": n_rows},
                                    "solver": {"rtol": rtol}}})
    text = dump_config(cfg)
    assert load_config(yaml.safe_load(text)) == cfg


def test_dump_writes_floats_pyyaml_reads_as_floats():
    cfg = load_config({"hardware": {"solver": {"rtol": 1.0e-10},
                                    "forward": {"adc": {"range": 1.0e-4}}}})
    text = dump_config(cfg)
    assert "rtol: 1.0e-10" in text
    assert isinstance(yaml.safe_load(text)["hardware"]["forward"]["adc"]["range"], float)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_loads_and_round_trips(path):
    cfg = load_config(path)
    assert load_config(yaml.safe_load(dump_config(cfg))) == cfg
    assert cfg.data.data_dir is None  # the data loader's lookup order applies
    text = path.read_text(encoding="utf-8")
    # the YAML float gotcha: no undotted exponent anywhere in the examples
    raw = yaml.safe_load(text)

    def strings(node):
        if isinstance(node, dict):
            for v in node.values():
                yield from strings(v)
        elif isinstance(node, list):
            for v in node:
                yield from strings(v)
        elif isinstance(node, str):
            yield node

    assert not [s for s in strings(raw) if schema._FLOAT_STRING.fullmatch(s)]


def test_examples_match_their_presets():
    lenet = load_config(REPO / "examples" / "lenet.yaml")
    ideal = load_config(REPO / "examples" / "lenet_ideal.yaml")
    soft = load_config(REPO / "examples" / "lenet_software.yaml")
    assert lenet.hardware == PRESETS["txsim"]().hardware
    assert lenet.train.mode == "crossbar" and lenet.model.name == "lenet5"
    assert ideal.hardware == PRESETS["cross_ideal"]().hardware
    assert soft.train.mode == "software"
    # Cross-Ideal and software differ from Cross-NI only in hardware / mode
    assert lenet.train == ideal.train
    assert dataclasses.replace(soft.train, mode="crossbar") == lenet.train
    assert lenet.model == ideal.model == soft.model and lenet.data == ideal.data == soft.data
    mlp = load_config(REPO / "examples" / "mlp.yaml")
    assert mlp.model.name == "mlp" and mlp.model.hidden == (256, 128)


# ------------------------------------------------------------------------------------------
# strict keys and types
# ------------------------------------------------------------------------------------------


def test_unknown_key_suggests_the_closest():
    errs = errors_of({"hardware": {"crossbar": {"r_rwo": 1.0}}, "trian": {}})
    assert "hardware.crossbar.r_rwo: unknown key; did you mean 'r_row'?" in errs
    assert "trian: unknown key; did you mean 'train'?" in errs


def test_unknown_key_without_close_match_lists_the_valid_keys():
    (err,) = errors_of({"hardware": {"update": {"zzzzzz": 1}}})
    assert err.startswith("hardware.update.zzzzzz: unknown key; valid keys here:")
    assert "scale" in err and "percentile" in err


@pytest.mark.parametrize(("section", "value", "fragment"), [
    ({"hardware": {"crossbar": {"n_rows": "64"}}}, "'64'",
     "hardware.crossbar.n_rows: expected int >= 1, got '64' (str)"),
    ({"hardware": {"crossbar": {"n_rows": 64.0}}}, "64.0",
     "hardware.crossbar.n_rows: expected int >= 1, got 64.0 (float)"),
    ({"hardware": {"crossbar": {"r_row": [1.0]}}}, "[1.0]",
     "hardware.crossbar.r_row: expected float in [0, 1e+12], got [1.0] (list)"),
    ({"train": {"evaluate_only": 1}}, "1", "train.evaluate_only: expected bool"),
    ({"train": {"lr": True}}, "True", "a boolean is not a number"),
    ({"hardware": {"device": {"bits": 2.5}}}, "2.5",
     "hardware.device.bits: expected int in [1, 52] or null, got 2.5 (float); write a whole "
     "number without a decimal point"),
    ({"hardware": {"solver": {"method": "fmc"}}}, "'fmc'", "did you mean 'fcm'?"),
    ({"hardware": "fast"}, "'fast'", "hardware: expected a mapping of keys"),
    ({"hardware": {"crossbar": {"r_row": float("nan")}}}, "nan", "non-finite"),
])
def test_wrong_types_are_reported_with_path_and_value(section, value, fragment):
    (err,) = errors_of(section)
    assert fragment in err
    assert value in err


def test_int_is_coerced_to_float_and_nothing_else_is():
    cfg = load_config({"hardware": {"crossbar": {"r_row": 2, "r_col": 0}}})
    assert type(cfg.hardware.crossbar.r_row) is float and cfg.hardware.crossbar.r_row == 2.0
    assert type(cfg.hardware.crossbar.r_col) is float
    assert type(cfg.hardware.crossbar.n_rows) is int


def test_the_pyyaml_exponent_string_gets_the_dotted_hint(tmp_path):
    path = write(tmp_path, """\
        train:
          lr: 1e-4
        hardware:
          device:
            r_min: 1.0e5
    """)
    errs = errors_of(path)
    assert any(e.startswith("train.lr: expected float > 0, got '1e-4' (str); write 1.0e-4 "
                            "(PyYAML reads 1e-4 as a string") for e in errs), errs
    assert any("hardware.device.r_min" in e and "write 1.0e+5" in e for e in errs), errs
    assert load_config(write(tmp_path, "train:\n  lr: 1.0e-4\n", "ok.yaml")).train.lr == 1e-4


@pytest.mark.parametrize(("text", "fixed"), [
    ("1e-4", "1.0e-4"), ("1.0e5", "1.0e+5"), ("2E3", "2.0e+3"), (".5", "0.5"), ("-3", "-3.0"),
])
def test_yaml_float_spelling_is_read_back_as_the_float(text, fixed):
    assert schema.yaml_float(text) == fixed
    assert yaml.safe_load(fixed) == float(text)


# ------------------------------------------------------------------------------------------
# ranges and cross-field rules
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("section", "expected"), [
    ({"hardware": {"crossbar": {"r_row": -1.0}}},
     "hardware.crossbar.r_row: expected float in [0, 1e+12], got -1.0: resistance [Ohm]; above "
     "1 TOhm a line is an open circuit, and the tiny conductance 1/r underflows the circuit "
     "solvers"),
    ({"hardware": {"device": {"r_min": 1.0e+6, "r_max": 1.0e+6}}},
     "hardware.device.r_min: expected r_min < r_max = 1000000.0 Ohm, got 1000000.0 (r_min is "
     "the ON resistance; swap the values?)"),
    ({"hardware": {"forward": {"dac": {"bits": 0}}}},
     "hardware.forward.dac.bits: expected int in [1, 52] or null, got 0: DAC resolution [bits]: "
     "the 2**bits - 1 steps are rounded in float64, exact only up to its 52-bit mantissa; "
     "null = ideal DAC"),
    ({"hardware": {"backward": {"adc": {"bits": -8}}}},
     "hardware.backward.adc.bits: expected int in [1, 52] or null, got -8: ADC resolution "
     "[bits]: the 2**bits - 1 steps are rounded in float64, exact only up to its 52-bit "
     "mantissa; null = ideal ADC"),
    ({"hardware": {"forward": {"adc": {"sense_noise": -1.0e-9}}}},
     "hardware.forward.adc.sense_noise: expected float in [0, 1], got -1e-09: input-referred "
     "noise std [A]; crossbar currents are far below 1 A, and huge values overflow the noisy "
     "currents to inf/NaN"),
    ({"hardware": {"device": {"gamma": -5.0}}},
     "hardware.device.gamma: expected float >= 0, got -5.0"),
    ({"hardware": {"device": {"sigma_c2c": -0.1}}},
     "hardware.device.sigma_c2c: expected float >= 0, got -0.1"),
    ({"hardware": {"variation": {"sigma_pv": -0.1}}},
     "hardware.variation.sigma_pv: expected float >= 0, got -0.1"),
    ({"hardware": {"forward": {"adc": {"percentile": 100.5}}}},
     "hardware.forward.adc.percentile: expected float in (0, 100], got 100.5"),
    ({"hardware": {"forward": {"adc": {"range": -1.0e-4}}}},
     "hardware.forward.adc.range: expected float >= 1e-15 or one of 'calibrated', got -0.0001: "
     "full-scale current [A]: below 1 fA the code step underflows and every output saturates"),
    ({"hardware": {"solver": {"refresh_every": 0}}},
     "hardware.solver.refresh_every: expected int >= 1, got 0"),
    ({"model": {"hidden": [100, 0]}}, "model.hidden: expected list of int >= 1, got [100, 0]"),
    ({"train": {"momentum": 1.0}}, "train.momentum: expected float in [0, 1), got 1.0"),
    ({"seed": -1}, "seed: expected int >= 0, got -1"),
])
def test_bad_ranges_name_the_dotted_key_and_value(section, expected):
    assert errors_of(section) == [expected]


@pytest.mark.parametrize(("section", "fragment"), [
    ({"hardware": {"mapping": {"slice_bits": 3, "weight_bits": 16}, "device": {"bits": 2}}},
     "hardware.mapping.slice_bits: a 3-bit slice needs devices with at least 3 bits"),
    ({"hardware": {"mapping": {"weight_bits": None, "slice_bits": 2}, "device": {"bits": 2}}},
     "hardware.mapping.slice_bits: bit slicing needs a finite weight precision"),
    ({"hardware": {"forward": {"dac": {"bits": 4, "input_bits": 2}}}},
     "hardware.forward.dac.input_bits: expected input_bits >= bits = 4, got 2"),
    ({"hardware": {"forward": {"adc": {"nonlinearity": "lut"}}}},
     "hardware.forward.adc.lut: required when nonlinearity is 'lut'"),
    ({"hardware": {"device": {"update_model": "neurosim"}}},
     "hardware.device.nl_label: required when update_model is 'neurosim'"),
    ({"train": {"evaluate_only": True}}, "train.weights: required when evaluate_only is true"),
    ({"data": {"dataset": "synthetic", "n_train": 100}},
     "data.n_test: required when dataset is 'synthetic'"),
])
def test_cross_field_rules(section, fragment):
    (err,) = errors_of(section)
    assert err.startswith(fragment), err


def test_all_errors_are_collected_in_one_config_error(tmp_path):
    path = write(tmp_path, """\
        seeed: 1
        hardware:
          crossbar: {r_row: -1.0, n_rows: 0}
          device: {r_min: 2.0e+6, gamma: '5'}
          solver: {method: exact}
        train: {lr: 0, schedule: cosin}
    """)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert err.source == str(path) and str(path) in str(err)
    keys = {e.split(":", 1)[0] for e in err.errors}
    assert keys == {"seeed", "hardware.crossbar.r_row", "hardware.crossbar.n_rows",
                    "hardware.device.r_min", "hardware.device.gamma", "hardware.solver.method",
                    "train.lr", "train.schedule"}
    assert all(e in str(err) for e in err.errors)


def test_python_construction_validates_too():
    with pytest.raises(ConfigError, match=r"r_row: expected float in \[0, 1e\+12\], got -1.0"):
        CrossbarConfig(r_row=-1.0)
    with pytest.raises(ConfigError, match="r_min: expected r_min < r_max"):
        DeviceConfig(r_min=1.0e6, r_max=1.0e5)
    assert ADCConfig(range=2.0e-4).range == 2.0e-4
    assert dataclasses.replace(CrossbarConfig(), r_row=3).r_row == 3.0


# ------------------------------------------------------------------------------------------
# --set overrides
# ------------------------------------------------------------------------------------------


def test_overrides_set_nested_values_parsed_as_yaml(tmp_path):
    path = REPO / "examples" / "lenet.yaml"
    cfg = load_config(path, ["hardware.crossbar.r_row=2.5", "hardware.device.bits=null",
                             "model.hidden=[10, 20]", "train.epochs=3",
                             "hardware.forward.adc.range=1.0e-4", "hardware.mapping.slice_bits=",
                             "output.out=x.h5"])
    assert cfg.hardware.crossbar.r_row == 2.5
    assert cfg.hardware.device.bits is None
    assert cfg.hardware.mapping.slice_bits is None  # empty value = null
    assert cfg.model.hidden == (10, 20)
    assert cfg.train.epochs == 3
    assert cfg.hardware.forward.adc.range == 1e-4
    assert cfg.output.out == "x.h5"


def test_overrides_create_missing_sections_and_merge_mappings():
    cfg = load_config({}, ["hardware.crossbar={n_rows: 32}", "hardware.crossbar.n_cols=16"])
    assert (cfg.hardware.crossbar.n_rows, cfg.hardware.crossbar.n_cols) == (32, 16)
    assert cfg.hardware.crossbar.r_col == 4.6
    assert load_config({}, "train.epochs=2").train.epochs == 2  # a lone string is one override


def test_override_of_unknown_path_suggests():
    errs = errors_of({}, ["hardware.crossbar.r_rw=1.0", "hardwre.device.nl=0.1",
                          "train.lr.x=1", "train.lr", "hardware.crossbar.r_row=[1"])
    assert errs[0] == ("--set 'hardware.crossbar.r_rw=1.0': unknown key "
                       "'hardware.crossbar.r_rw'; did you mean 'hardware.crossbar.r_row'?")
    assert "did you mean 'hardware'?" in errs[1]
    assert "'train.lr' is a value (float), not a section" in errs[2]
    assert "expected KEY=VALUE" in errs[3]
    assert "not valid YAML" in errs[4]


def test_override_values_are_type_checked_with_the_hint():
    (err,) = errors_of({}, ["train.lr=1e-3"])
    assert err.startswith("train.lr: expected float > 0, got '1e-3' (str); write 1.0e-3")


# ------------------------------------------------------------------------------------------
# presets
# ------------------------------------------------------------------------------------------


def test_top_level_preset_with_explicit_keys_merged():
    cfg = load_config({"preset": "chakraborty", "train": {"epochs": 2},
                       "hardware": {"crossbar": {"r_sense": 500.0}}})
    ref = PRESETS["chakraborty"]()
    assert cfg.train.epochs == 2 and cfg.train.lr == ref.train.lr
    assert cfg.hardware.crossbar.r_sense == 500.0
    assert cfg.hardware.crossbar.r_source == ref.hardware.crossbar.r_source
    assert cfg.hardware.crossbar.n_rows == 784 and cfg.model.hidden == (500,)


def test_section_preset_with_overrides():
    cfg = load_config({"hardware": {"device": {"preset": "txsim", "nl": 0.1}}})
    assert cfg.hardware.device == dataclasses.replace(PRESETS["txsim"]().hardware.device,
                                                      nl=0.1)
    cfg = load_config({"hardware": {"preset": "cross_ideal", "solver": {"method": "nodal"}}})
    assert cfg.hardware.solver.method == "nodal"
    assert cfg.hardware.device == PRESETS["cross_ideal"]().hardware.device


def test_inner_preset_wins_over_outer_and_overrides_win_over_both():
    raw = {"preset": "txsim", "hardware": {"device": {"preset": "cross_ideal", "gamma": 1.0}}}
    cfg = load_config(raw, ["hardware.device.nl=0.5"])
    ideal_dev = PRESETS["cross_ideal"]().hardware.device
    assert cfg.hardware.device == dataclasses.replace(ideal_dev, gamma=1.0, nl=0.5)
    assert cfg.hardware.crossbar == PRESETS["txsim"]().hardware.crossbar
    assert load_config({"preset": "txsim"}, ["preset=software"]) == PRESETS["software"]()
    assert raw["hardware"]["device"]["preset"] == "cross_ideal"  # the input is not mutated


def test_unknown_preset_suggests():
    (err,) = errors_of({"hardware": {"device": {"preset": "txsm"}}})
    assert err.startswith("hardware.device.preset: unknown preset 'txsm'; did you mean 'txsim'?")


def test_presets_cite_their_sources_and_are_as_documented():
    for name, factory in PRESETS.items():
        doc = factory.__doc__ or ""
        assert "Source" in doc, name
    assert "[M]" in PRESETS["chakraborty"].__doc__
    tx = PRESETS["txsim"]()
    hw = tx.hardware
    assert (hw.crossbar.n_rows, hw.crossbar.n_cols) == (64, 64)
    assert (hw.crossbar.r_row, hw.crossbar.r_col) == (1.0, 4.6)
    # one analog device per weight and polarity (TxSim's slicing is an override away)
    assert (hw.device.r_min, hw.device.r_max, hw.device.bits) == (1.0e5, 1.0e6, None)
    assert (hw.mapping.slice_bits, hw.mapping.weight_bits) == (None, None)
    assert (hw.device.nl, hw.device.gamma, hw.device.update_model) == (0.01, 5.0, "txsim")
    assert (hw.forward.dac.bits, hw.forward.dac.input_bits, hw.forward.adc.bits) == (1, 8, 8)
    assert hw.forward.adc.range == "calibrated" and hw.mapping.scheme == "signed_split"
    assert tx.train.batch_size == 64 and tx.train.mode == "crossbar"
    assert (tx.train.schedule, tx.train.warmup_epochs) == ("cosine", 1.0)
    ideal = PRESETS["cross_ideal"]().hardware
    assert ideal.crossbar.n_rows == 64 and ideal.mapping == hw.mapping
    assert ideal.solver.method == "ideal" and ideal.device.update_model == "linear"
    assert ideal.forward.dac.bits is None and ideal.forward.adc.bits is None
    assert ideal.backward.adc.bits is None and ideal.device.gamma == 0.0
    assert PRESETS["software"]().train.mode == "software"
    ch = PRESETS["chakraborty"]()
    assert ch.model.name == "mlp" and ch.model.hidden == (500,) and ch.data.dataset == "mnist"
    assert ch.hardware.crossbar.r_source > 0 and ch.hardware.crossbar.r_sense > 0
    assert ch.hardware.variation.sigma_pv > 0


def test_schema_defaults_are_the_txsim_hardware():
    assert HardwareConfig() == PRESETS["txsim"]().hardware


# ------------------------------------------------------------------------------------------
# files, immutability, documentation, import isolation
# ------------------------------------------------------------------------------------------


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, "train:\n  lr: 0.1\n  epochs: [1, 2\nmodel: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert str(path) in text and "line " in text and "YAML syntax error" in text


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config file") as info:
        load_config(tmp_path / "nope.yaml")
    assert str(tmp_path / "nope.yaml") in str(info.value)


def test_empty_file_and_empty_sections_give_defaults(tmp_path):
    assert load_config(write(tmp_path, "# nothing\n")) == RunConfig()
    assert load_config(write(tmp_path, "hardware:\n  device:\n", "b.yaml")) == RunConfig()
    (err,) = errors_of(write(tmp_path, "- 1\n- 2\n", "c.yaml"))
    assert err.startswith("top level: expected a mapping")


def test_configs_are_frozen_slotted_and_keyword_only():
    cfg = RunConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.hardware.crossbar.r_row = 0.0  # type: ignore[misc]
    assert not hasattr(cfg.hardware.crossbar, "__dict__")
    with pytest.raises(TypeError):
        CrossbarConfig(64, 64)  # type: ignore[misc]
    assert hash(cfg) == hash(load_config(config_to_dict(cfg)))


def test_every_field_has_a_docstring():
    for cls in schema.SECTIONS:
        docs = field_docs(cls)
        missing = [f.name for f in dataclasses.fields(cls) if not docs.get(f.name)]
        assert not missing, f"{cls.__name__}: {missing}"
    assert "[Ohm]" in field_docs(CrossbarConfig)["r_row"]


def test_every_enumerated_field_has_an_exported_tuple():
    tuples = {v for k, v in vars(schema).items() if k.isupper() and isinstance(v, tuple)}
    for cls in schema.SECTIONS:
        for name, tp in typing.get_type_hints(cls).items():
            literals = [a for a in typing.get_args(tp) if typing.get_origin(a) is typing.Literal]
            if typing.get_origin(tp) is typing.Literal:
                literals.append(tp)
            for lit in literals:
                values = typing.get_args(lit)
                if values == ("calibrated",):
                    assert schema.ADC_RANGE_CALIBRATED == "calibrated"
                    continue
                assert values in tuples, f"{cls.__name__}.{name}"
    assert schema.SOLVER_METHODS == ("ideal", "nodal", "fcm", "aam", "interpolated")
    assert "txsim" in schema.UPDATE_MODELS and "soft_bounds" in schema.UPDATE_MODELS


def test_derived_values():
    dev = DeviceConfig()
    assert dev.g_min == pytest.approx(1e-6) and dev.g_max == pytest.approx(1e-5)
    assert OutputConfig(out="runs/a.h5").checkpoint_path == str(Path("runs/a.ckpt.h5"))
    assert OutputConfig(checkpoint="c.h5").checkpoint_path == "c.h5"


def test_import_does_not_pull_numba_h5py_or_hardware():
    code = ("import sys, xbarsim.config\n"
            "bad = [m for m in ('numba', 'h5py', 'xbarsim.hardware', 'xbarsim.kernels')"
            " if m in sys.modules]\n"
            "assert not bad, bad\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr
