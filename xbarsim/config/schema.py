"""Typed, frozen configuration of one xbarsim run.

Every section is a frozen, keyword-only, slotted dataclass. Each field carries a docstring
(the string literal right below it) that gives its unit and meaning; :func:`field_docs` reads
them back. Every section validates itself in ``__post_init__``: each field is type-checked
against its annotation (the only coercion is ``int -> float``; ``bool`` is not a number), then
range-checked, then cross-field rules are applied. All problems of a section are collected and
raised together as one :class:`xbarsim.errors.ConfigError` whose messages start with the field
name (``"r_row: expected float >= 0, got -1.0"``); :mod:`xbarsim.config.loader` prefixes them
with the dotted path of the section.

Units are SI base units (Ohm, V, A, S, s) throughout. ``None`` always means "ideal / absent"
(an ideal converter, an analog device, no limit) and is documented as such on each field;
no field uses 0 or -1 as a sentinel.

The default values are those of the TxSim Cross-NI reproduction (the ``txsim`` preset); see
:mod:`xbarsim.config.presets` for their sources and docs/physics.md for the models.

Every enumerated field has a ``Literal`` alias and a module-level tuple of its allowed values
(``SOLVER_METHODS``, ``UPDATE_MODELS``, ...), so that the registries of the hardware, nn and
train layers can be checked against them by a test.
"""

from __future__ import annotations

import ast
import difflib
import inspect
import math
import re
import textwrap
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import PurePath
from typing import Any, Literal, Union, get_args, get_origin

from xbarsim.errors import ConfigError

# --------------------------------------------------------------------------------------------
# Enumerations: one Literal alias and one tuple of allowed values per enumerated field
# --------------------------------------------------------------------------------------------

DatasetName = Literal["mnist", "cifar10", "synthetic"]
ModelName = Literal["mlp", "lenet5", "cnn", "vgg_small", "resnet20"]
ActivationName = Literal["relu", "sigmoid", "tanh"]
InitName = Literal["he_normal", "he_uniform", "glorot_normal", "glorot_uniform"]
LossName = Literal["cross_entropy", "mse"]
ScheduleName = Literal["constant", "step", "cosine"]
TrainMode = Literal["software", "crossbar", "aware"]
AwareGradient = Literal["exact", "aam1", "straight_through"]
UpdateModel = Literal["txsim", "txsim_printed", "linear", "neurosim", "soft_bounds"]
WriteNoiseModel = Literal["sqrt", "txsim_literal"]
SignedInputMode = Literal["two_pass", "twos_complement"]
DACNonlinearity = Literal["none", "bow", "lut"]
ADCNonlinearity = Literal["none", "bow", "tanh", "lut"]
ADCCalibration = Literal["max", "percentile"]
ADCGranularity = Literal["tile", "layer"]
UpdateScale = Literal["max", "percentile"]
MappingScheme = Literal["signed_split", "differential", "offset"]
SolverMethod = Literal["ideal", "nodal", "fcm", "aam", "interpolated"]
RefreshMethod = Literal["fcm", "aam"]
FCMAlgorithm = Literal["direct", "iterative"]
VariationDistribution = Literal["normal", "lognormal"]

DATASET_NAMES: tuple[str, ...] = get_args(DatasetName)
MODEL_NAMES: tuple[str, ...] = get_args(ModelName)
ACTIVATION_NAMES: tuple[str, ...] = get_args(ActivationName)
INIT_NAMES: tuple[str, ...] = get_args(InitName)
LOSS_NAMES: tuple[str, ...] = get_args(LossName)
SCHEDULE_NAMES: tuple[str, ...] = get_args(ScheduleName)
TRAIN_MODES: tuple[str, ...] = get_args(TrainMode)
AWARE_GRADIENTS: tuple[str, ...] = get_args(AwareGradient)
UPDATE_MODELS: tuple[str, ...] = get_args(UpdateModel)
WRITE_NOISE_MODELS: tuple[str, ...] = get_args(WriteNoiseModel)
SIGNED_INPUT_MODES: tuple[str, ...] = get_args(SignedInputMode)
DAC_NONLINEARITIES: tuple[str, ...] = get_args(DACNonlinearity)
ADC_NONLINEARITIES: tuple[str, ...] = get_args(ADCNonlinearity)
ADC_CALIBRATIONS: tuple[str, ...] = get_args(ADCCalibration)
ADC_GRANULARITIES: tuple[str, ...] = get_args(ADCGranularity)
UPDATE_SCALES: tuple[str, ...] = get_args(UpdateScale)
MAPPING_SCHEMES: tuple[str, ...] = get_args(MappingScheme)
SOLVER_METHODS: tuple[str, ...] = get_args(SolverMethod)
REFRESH_METHODS: tuple[str, ...] = get_args(RefreshMethod)
FCM_ALGORITHMS: tuple[str, ...] = get_args(FCMAlgorithm)
VARIATION_DISTRIBUTIONS: tuple[str, ...] = get_args(VariationDistribution)

ADC_RANGE_CALIBRATED = "calibrated"

# --------------------------------------------------------------------------------------------
# Limits the hardware and nn layers impose (checked here, so that `xbarsim check-config` rejects
# what a run would reject; tests/test_config_limits.py builds and trains a model at each limit)
# --------------------------------------------------------------------------------------------

MAX_BITS = 52
"""Largest resolution [bits] of a converter, an input, a device or a weight: the
``2**bits - 1`` steps of a code are computed and rounded in float64, exact only up to its
52-bit mantissa (and ``2**64 - 1`` no longer fits the int64 kernels)."""

_BITS_WHY = (f"{{what}} [bits]: the 2**bits - 1 steps are rounded in float64, exact only up to "
             f"its {MAX_BITS}-bit mantissa{{null}}")


def _bits(what: str, null: str = "") -> tuple[str, str]:
    return f"in [1, {MAX_BITS}]", _BITS_WHY.format(what=what, null=null)


NEUROSIM_NL_MAX = 9.99
"""Largest NeuroSim non-linearity label NL [1]. NL sets the largest distance of the update curve
from the linear diagonal to 0.07*sqrt(2)*NL of the full range; the exponential curve's distance
tends to 1 only as v -> infinity (NL -> 10.10), and xbarsim.hardware.device finds v by root
finding up to v = 700 (exp(700) is near the float64 limit), i.e. NL < 9.9926."""

MIN_RESISTANCE = 1.0e-9
"""Smallest non-zero wire, source or sense resistance [Ohm] (= xbarsim.checks.MIN_RESISTANCE):
below it 1/r overflows the conductance matrices of the circuit solvers."""

MAX_LINE_RESISTANCE = 1.0e12
"""Largest wire, source or sense resistance [Ohm]: an open line; 1e50 Ohm made the iterative
solver divide by an underflowed conductance."""

MAX_DEVICE_RESISTANCE = 1.0e15
"""Largest device OFF resistance r_max [Ohm]: an open device; at 1e200 Ohm the weight steps of
sliced devices were no longer finite."""

SIGMA_PV_MAX = {"normal": 1.0 / 3.0, "lognormal": 1.0}
"""Process-variation limits [1] by distribution: 'normal' needs sigma_pv < 1/3 (the clip range
g_min*(1 - 3 sigma_pv) must stay positive); 'lognormal' is limited to sigma_pv <= 1 (module
docstring of VariationConfig)."""

# --------------------------------------------------------------------------------------------
# Validation helpers (shared with the loader)
# --------------------------------------------------------------------------------------------

_FLOAT_STRING = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_HINT_CACHE: dict[type, dict[str, Any]] = {}


def type_hints(cls: type) -> dict[str, Any]:
    """Return the resolved annotations of a config dataclass (cached)."""
    hints = _HINT_CACHE.get(cls)
    if hints is None:
        hints = typing.get_type_hints(cls)
        _HINT_CACHE[cls] = hints
    return hints


def section_fields(cls: type) -> dict[str, type]:
    """Names and classes of the fields of ``cls`` that are themselves config sections."""
    return {n: t for n, t in type_hints(cls).items() if isinstance(t, type) and is_dataclass(t)}


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def coerce(tp: Any, value: Any) -> tuple[bool, Any]:
    """Check ``value`` against annotation ``tp``; return ``(ok, value)``.

    The only conversions are ``int -> float`` (never ``bool``) and ``list -> tuple`` for
    ``tuple[X, ...]`` fields. Floats must be finite.
    """
    if _is_union(tp):
        for arg in get_args(tp):
            ok, out = coerce(arg, value)
            if ok:
                return True, out
        return False, value
    if tp is type(None):
        return value is None, value
    origin = get_origin(tp)
    if origin is Literal:
        return (isinstance(value, str) and value in get_args(tp)), value
    if origin is tuple:
        (item_tp, _ellipsis) = get_args(tp)
        if not isinstance(value, (list, tuple)):
            return False, value
        out = []
        for item in value:
            ok, item = coerce(item_tp, item)
            if not ok:
                return False, value
            out.append(item)
        return True, tuple(out)
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, bool):
            return False, value
        if isinstance(value, int):
            return True, float(value)
        return isinstance(value, float) and math.isfinite(value), value
    if tp is str:
        return isinstance(value, str), value
    if isinstance(tp, type):
        return isinstance(value, tp), value
    raise TypeError(f"unsupported config annotation {tp!r}")  # pragma: no cover - schema bug


def describe(tp: Any, constraint: str = "") -> str:
    """Human-readable form of annotation ``tp`` with an optional range, for error messages."""
    suffix = f" {constraint}" if constraint else ""
    if _is_union(tp):
        return " or ".join(describe(a, constraint) for a in get_args(tp))
    if tp is type(None):
        return "null"
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin is tuple:
        return f"list of {describe(get_args(tp)[0], constraint)}"
    if tp is bool:
        return "bool (true or false)"
    if isinstance(tp, type):
        if is_dataclass(tp):
            return f"a mapping ({tp.__name__} section)"
        return tp.__name__ + suffix
    return repr(tp)  # pragma: no cover


def _short(value: Any) -> str:
    text = repr(list(value)) if isinstance(value, tuple) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def type_error(name: str, tp: Any, value: Any, constraint: str = "") -> str:
    """Build the message for a value of the wrong type, with a fix where one is known."""
    msg = (f"{name}: expected {describe(tp, constraint)}, got {_short(value)} "
           f"({type(value).__name__})")
    literals = [a for a in _flat_args(tp) if isinstance(a, str)]
    numeric = any(a in (int, float) for a in _flat_args(tp))
    if isinstance(value, str) and literals:
        close = difflib.get_close_matches(value, literals, n=1, cutoff=0.6)
        if close:
            msg += f"; did you mean {close[0]!r}?"
    if isinstance(value, str) and numeric and _FLOAT_STRING.fullmatch(value.strip()):
        text = value.strip()
        if float in _flat_args(tp):
            fixed = yaml_float(text)
        else:  # an int field
            number = float(text)
            fixed = str(int(number)) if number.is_integer() else "a whole number"
        if "e" in text.lower():
            why = ": a YAML float needs a dot in the mantissa and a sign in the exponent" \
                if float in _flat_args(tp) else ""
            msg += f"; write {fixed} (PyYAML reads {text} as a string{why})"
        else:
            msg += f"; write {fixed} without quotes so that YAML reads a number"
    elif isinstance(value, bool) and numeric:
        msg += "; a boolean is not a number"
    elif isinstance(value, float) and not math.isfinite(value):
        msg += "; non-finite values are not allowed (use null where the field allows it)"
    elif isinstance(value, float) and int in _flat_args(tp) and float not in _flat_args(tp):
        msg += "; write a whole number without a decimal point"
    return msg


def yaml_float(text: str) -> str:
    """Spell numeric string ``text`` so that PyYAML (YAML 1.1) reads it as a float.

    ``'1e-4'`` -> ``'1.0e-4'``, ``'1.0e5'`` -> ``'1.0e+5'``, ``'.5'`` -> ``'0.5'``.
    """
    m = re.fullmatch(r"([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?)(\d+))?", text.strip())
    if m is None:
        raise ValueError(f"not a number: {text!r}")
    sign, whole, frac, esign, exp = m.groups()
    out = f"{sign}{whole or '0'}.{frac or '0'}"
    if exp is not None:
        out += f"e{esign or '+'}{exp}"
    return out


def _flat_args(tp: Any) -> list[Any]:
    if _is_union(tp):
        return [x for a in get_args(tp) for x in _flat_args(a)]
    if get_origin(tp) is Literal:
        return list(get_args(tp))
    if get_origin(tp) is tuple:
        return _flat_args(get_args(tp)[0])
    return [tp]


_OPS = {
    ">=": lambda x, a: x >= a,
    ">": lambda x, a: x > a,
    "<=": lambda x, a: x <= a,
    "<": lambda x, a: x < a,
}


def in_range(value: float, constraint: str) -> bool:
    """Whether ``value`` satisfies ``constraint`` (``">= 0"``, ``"> 0"``, ``"in (0, 100]"``)."""
    c = constraint.strip()
    if c.startswith("in "):
        body = c[3:].strip()
        lo_open, hi_open = body[0] == "(", body[-1] == ")"
        lo, hi = (float(s) for s in body[1:-1].split(","))
        ok_lo = value > lo if lo_open else value >= lo
        ok_hi = value < hi if hi_open else value <= hi
        return ok_lo and ok_hi
    op, number = c.split()
    return _OPS[op](value, float(number))


class Problems(list):
    """Messages of one section, plus the names of the fields that already failed."""

    def __init__(self) -> None:
        super().__init__()
        self.bad: set[str] = set()

    def clean(self, *names: str) -> bool:
        """Whether none of ``names`` failed its own check (so cross-field rules may run)."""
        return not self.bad.intersection(names)


def check_fields(obj: Any, **constraints: str | tuple[str, str]) -> Problems:
    """Type-check every field of dataclass ``obj``, then apply the range ``constraints``.

    A constraint is a range string (``">= 0"``, ``"in [1, 52]"``) or a pair ``(range, why)``
    whose ``why`` (the unit and the reason for the limit) is appended to the message when the
    value is out of range. Coerced values (``int -> float``, ``list -> tuple``) are written
    back into the frozen instance. Returns the messages, each starting with the field name;
    ``.bad`` holds the fields that failed, so cross-field rules run only on fields that passed.
    """
    errors = Problems()
    hints = type_hints(type(obj))
    for f in fields(obj):
        tp = hints[f.name]
        value = getattr(obj, f.name)
        constraint = constraints.get(f.name, "")
        why = ""
        if isinstance(constraint, tuple):
            constraint, why = constraint
        ok, coerced = coerce(tp, value)
        if not ok:
            errors.append(type_error(f.name, tp, value, constraint))
            errors.bad.add(f.name)
            continue
        if coerced is not value:
            object.__setattr__(obj, f.name, coerced)
        if constraint and coerced is not None:
            items = coerced if isinstance(coerced, tuple) else (coerced,)
            for item in items:
                if isinstance(item, (int, float)) and not in_range(item, constraint):
                    errors.append(f"{f.name}: expected {describe(tp, constraint)}, got "
                                  f"{_short(coerced)}" + (f": {why}" if why else ""))
                    errors.bad.add(f.name)
                    break
    return errors


def _finish(obj: Any, errors: list[str]) -> None:
    if errors:
        raise ConfigError(errors, source=type(obj).__name__)


def field_docs(cls: type) -> dict[str, str]:
    """Return the docstring written under each field of config dataclass ``cls``."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[node.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


_config = dataclass(frozen=True, kw_only=True, slots=True)

# --------------------------------------------------------------------------------------------
# Data, model, training, output
# --------------------------------------------------------------------------------------------


@_config
class DataConfig:
    """Dataset selection and splitting."""

    dataset: DatasetName = "mnist"
    """Dataset: 'mnist' (IDX files), 'cifar10' (binary batches) or 'synthetic' (generated)."""
    data_dir: str | None = None
    """Folder holding the dataset files (or an mnist/ sub-folder); a folder given that does not
    hold them is an error. The CLI's --data-dir replaces it. None = $XBARSIM_DATA if set (which
    must then hold them), else the user cache directory."""
    download: bool = True
    """Download missing MNIST files from the standard public mirrors (md5-checked) into the
    cache; used only when neither data_dir nor $XBARSIM_DATA names a folder."""
    n_train: int | None = None
    """Number of training samples used (the first n after the fixed file order). None = all.
    Required for 'synthetic'."""
    n_test: int | None = None
    """Number of test samples used. None = all. Required for 'synthetic'."""
    validation_fraction: float = 0.0
    """Fraction of the training samples held out for validation, in [0, 1). 0 = no split."""
    shuffle: bool = True
    """Reshuffle the training samples every epoch (stream 'data' of the run seed)."""
    normalize: bool = True
    """Standardise inputs per channel with the training-set mean and standard deviation;
    False = raw intensities scaled to [0, 1]."""
    synthetic_shape: tuple[int, ...] = (1, 28, 28)
    """Shape of one synthetic sample: (channels, height, width) or (features,)."""
    synthetic_classes: int = 10
    """Number of classes of the synthetic dataset, >= 2."""

    def __post_init__(self) -> None:
        errors = check_fields(self, n_train=">= 1", n_test=">= 1",
                              validation_fraction="in [0, 1)", synthetic_shape=">= 1",
                              synthetic_classes=">= 2")
        if errors.clean("dataset", "n_train", "n_test") and self.dataset == "synthetic":
            for name in ("n_train", "n_test"):
                if getattr(self, name) is None:
                    errors.append(f"{name}: required when dataset is 'synthetic' "
                                  f"(the number of samples to generate), got null")
        if errors.clean("synthetic_shape") and len(self.synthetic_shape) not in (1, 3):
            errors.append(f"synthetic_shape: expected [features] or [channels, height, "
                          f"width], got {list(self.synthetic_shape)}")
        _finish(self, errors)


@_config
class ModelConfig:
    """Network architecture. Input shape and class count come from the dataset."""

    name: ModelName = "lenet5"
    """Architecture: 'mlp', 'lenet5', 'cnn' (two 5x5 convolutions, a 4096 x 512 classifier layer
    on MNIST: Chakraborty et al.), 'vgg_small' or 'resnet20' (CIFAR shape)."""
    hidden: tuple[int, ...] = (256, 128)
    """Hidden layer widths of 'mlp' [units], input to output; [] = a single linear layer.
    Ignored by the other models."""
    activation: ActivationName = "relu"
    """Hidden-layer activation (digital, unimpaired as in TxSim)."""
    batch_norm: bool = False
    """Insert batch normalisation (digital, running statistics) after each weighted layer
    except the last."""
    dropout: float = 0.0
    """Dropout probability before each fully connected layer except the first, in [0, 1);
    the model builders implement only 0.0 so far."""
    init: InitName = "he_normal"
    """Weight initialisation: He (Kaiming) or Glorot (Xavier), normal or uniform."""
    bias: bool = True
    """Learnable per-output bias in each weighted layer (kept digital, updated in NumPy); the
    model builders implement only true so far."""

    def __post_init__(self) -> None:
        # what the model builders (xbarsim.nn.models via xbarsim.runner.build_model) implement
        errors = check_fields(self, hidden=">= 1", dropout="in [0, 1)")
        if errors.clean("dropout") and self.dropout != 0.0:
            errors.append(f"dropout: {self.dropout} is not supported by the model builders yet; "
                          f"set it to 0.0")
        if errors.clean("bias") and not self.bias:
            errors.append("bias: false is not supported by the model builders yet; set it to "
                          "true")
        if errors.clean("name", "batch_norm") and self.batch_norm \
                and self.name in ("mlp", "lenet5"):
            errors.append(f"batch_norm: not available for model {self.name!r} (only "
                          f"vgg_small; resnet20 always has it); set it to false")
        if errors.clean("name", "activation") and self.activation != "relu" \
                and self.name != "mlp":
            errors.append(f"activation: {self.activation!r} is only configurable for 'mlp'; "
                          f"{self.name!r} uses relu")
        _finish(self, errors)


@_config
class AwareConfig:
    """Technology-aware training (train.mode 'aware'; Chakraborty et al. 2018, docs/aware.md).

    The weights stay digital (float64) and are updated by the optimiser as in software mode;
    the forward pass of every weighted layer uses the effective weights the configured
    hardware realises (mapping, tiling, the chip's process variation, g_eff of every array),
    and the gradient flows through that model back to the weights.
    """

    gradient: AwareGradient = "exact"
    """dL/dg of every device: 'exact' (adjoint method through the circuit; needs
    hardware.solver.method 'fcm', 'nodal' or 'ideal'), 'aam1' (closed-form derivative of the
    first-order analytical model, cheap and approximate) or 'straight_through' (dL/dg taken
    equal to dL/dg_eff, the baseline)."""
    resample_every: int | None = None
    """Draw a fresh chip (process variation of hardware.variation, seeds from the named stream
    'aware/chips' of the run seed) every this many training batches, >= 1, so the network
    learns the distribution of chips. None = train on the one chip of
    hardware.variation.chip_seed."""
    quantize: bool = False
    """Include the forward DAC and ADC (hardware.forward, applied to the whole layer as with
    adc.granularity 'layer') and the device levels (hardware.device.bits) in the forward
    pass, with straight-through gradients (quantisers treated as the identity backwards).
    False = the smooth analog model."""

    def __post_init__(self) -> None:
        _finish(self, check_fields(self, resample_every=">= 1"))


@_config
class TrainConfig:
    """Optimiser, schedule, training mode and run control."""

    mode: TrainMode = "crossbar"
    """'software': every weighted layer holds a digital float64 weight (hardware section
    ignored); 'crossbar': every weighted layer is a crossbar Tile configured by `hardware`;
    'aware': digital weights trained through a model of the `hardware` (section `aware`)."""
    aware: AwareConfig = field(default_factory=AwareConfig)
    """Technology-aware training settings (used when mode is 'aware')."""
    loss: LossName = "cross_entropy"
    """Loss: softmax cross-entropy or mean squared error on one-hot targets."""
    epochs: int = 10
    """Number of passes over the training set, >= 1."""
    batch_size: int = 128
    """Samples per SGD step, >= 1 (TxSim: 128)."""
    lr: float = 0.1
    """Learning rate [1] (initial value when a schedule is used), > 0."""
    momentum: float = 0.0
    """SGD momentum coefficient in [0, 1); 0 = plain SGD (TxSim)."""
    weight_decay: float = 0.0
    """L2 penalty coefficient [1], >= 0; added to the gradient digitally."""
    schedule: ScheduleName = "constant"
    """Learning-rate schedule over epochs: 'constant', 'step' (times `gamma` every `step_size`
    epochs) or 'cosine' (from `lr` down to `lr_min` over `epochs`)."""
    step_size: int = 5
    """Epochs between learning-rate drops of the 'step' schedule, >= 1."""
    gamma: float = 0.1
    """Multiplicative learning-rate drop of the 'step' schedule, in (0, 1]."""
    lr_min: float = 0.0
    """Final learning rate of the 'cosine' schedule, in [0, lr]."""
    warmup_epochs: float = 0.0
    """'cosine' only: epochs of linear warm-up from ~0 to `lr` before the cosine decay,
    in [0, epochs)."""
    evaluate_only: bool = False
    """Do not train: load `weights` onto the configured hardware and evaluate the test set
    (deploy an ideally trained network on non-ideal crossbars)."""
    weights: str | None = None
    """Saved model (a run's HDF5 file or a checkpoint) to start from; required when
    `evaluate_only`. None = fresh initialisation."""
    divergence_threshold: float | None = 1.0e3
    """Training stops cleanly (with what was done saved) when the mean batch loss exceeds this
    value [loss units]; a NaN or infinite loss always stops. None = stop on NaN/inf only."""
    checkpoint_every_epoch: bool = True
    """Write a checkpoint (output.checkpoint_path) after every epoch, for --resume."""

    def __post_init__(self) -> None:
        errors = check_fields(self, epochs=">= 1", batch_size=">= 1", lr="> 0",
                              momentum="in [0, 1)", weight_decay=">= 0", step_size=">= 1",
                              gamma="in (0, 1]", lr_min=">= 0", divergence_threshold="> 0",
                              warmup_epochs=">= 0")
        if errors.clean("lr", "lr_min") and self.lr_min > self.lr:
            errors.append(f"lr_min: expected lr_min <= lr = {self.lr!r}, got {self.lr_min!r}")
        if errors.clean("epochs", "warmup_epochs") and self.warmup_epochs >= self.epochs \
                and self.warmup_epochs > 0:
            errors.append(f"warmup_epochs: expected warmup_epochs < epochs = {self.epochs!r}, "
                          f"got {self.warmup_epochs!r}")
        if errors.clean("evaluate_only", "weights") and self.evaluate_only \
                and self.weights is None:
            errors.append("weights: required when evaluate_only is true; give the path of a "
                          "saved run (.h5) or checkpoint")
        _finish(self, errors)


@_config
class OutputConfig:
    """Where results go. Relative paths are relative to the working directory."""

    out: str = "run.h5"
    """HDF5 result file: resolved config, per-epoch history, final weights and conductances."""
    plot_dir: str | None = None
    """Folder for training-curve PNGs. None = no plots."""
    checkpoint: str | None = None
    """Checkpoint file. None = next to `out`, named '<out stem>.ckpt.h5'
    (see `checkpoint_path`)."""

    @property
    def checkpoint_path(self) -> str:
        """The checkpoint file actually used: `checkpoint`, or derived from `out`."""
        if self.checkpoint is not None:
            return self.checkpoint
        p = PurePath(self.out)
        return str(p.with_name(p.stem + ".ckpt.h5"))

    def __post_init__(self) -> None:
        errors = check_fields(self)
        for name in ("out", "plot_dir", "checkpoint"):
            value = getattr(self, name)
            if isinstance(value, str) and not value.strip():
                errors.append(f"{name}: expected a non-empty path, got {value!r}")
        _finish(self, errors)


# --------------------------------------------------------------------------------------------
# Hardware
# --------------------------------------------------------------------------------------------


@_config
class CrossbarConfig:
    """Geometry and parasitic resistances of one crossbar (docs/circuit.md, 'The circuit')."""

    n_rows: int = 64
    """Word lines per crossbar (forward inputs), >= 1; larger weight matrices are tiled."""
    n_cols: int = 64
    """Bit lines per crossbar (forward outputs), >= 1."""
    r_row: float = 1.0
    """Word-line wire resistance per cell segment [Ohm], 0 or in [1e-9, 1e12] (TxSim: 1 Ohm).
    0 = no row IR drop."""
    r_col: float = 4.6
    """Bit-line wire resistance per cell segment [Ohm], 0 or in [1e-9, 1e12] (TxSim: 4.6 Ohm)."""
    r_source: float = 0.0
    """Row driver output resistance [Ohm], 0 or in [1e-9, 1e12]; 0 = ideal driver."""
    r_sense: float = 0.0
    """Column sense ('neuron') input resistance into the virtual ground [Ohm], 0 or in
    [1e-9, 1e12]; 0 = ideal virtual ground."""

    def __post_init__(self) -> None:
        open_line = (f"in [0, {MAX_LINE_RESISTANCE:g}]",
                     "resistance [Ohm]; above 1 TOhm a line is an open circuit, and the tiny "
                     "conductance 1/r underflows the circuit solvers")
        errors = check_fields(self, n_rows=">= 1", n_cols=">= 1", r_row=open_line,
                              r_col=open_line, r_source=open_line, r_sense=open_line)
        for name in ("r_row", "r_col", "r_source", "r_sense"):
            value = getattr(self, name)
            if errors.clean(name) and 0.0 < value < MIN_RESISTANCE:
                errors.append(f"{name}: expected 0 (ideal) or a resistance >= "
                              f"{MIN_RESISTANCE:g} Ohm, got {value!r}: below it 1/r overflows "
                              f"the conductance matrices of the circuit solvers; write 0.0 for "
                              f"an ideal connection")
        _finish(self, errors)


@_config
class DeviceConfig:
    """Resistive device: conductance range, precision, update model and noise.

    The models are in docs/physics.md, 'Device updates'.
    """

    r_min: float = 1.0e5
    """Low-resistance (ON) state [Ohm], >= 1e-9; g_max = 1/r_min (TxSim: 100 kOhm)."""
    r_max: float = 1.0e6
    """High-resistance (OFF) state [Ohm], > r_min and <= 1e15; g_min = 1/r_max (TxSim:
    1 MOhm)."""
    bits: int | None = None
    """Device precision [bits], in [1, 52]: 2**bits evenly spaced conductance levels in
    [g_min, g_max], the
    capacity of one bit slice (TxSim: 2 with slicing). None = analog
    (continuous), the txsim preset's choice (one device per weight and polarity)."""
    update_model: UpdateModel = "txsim"
    """Conductance response to an update request: 'txsim' (corrected TxSim eq. (1)),
    'txsim_printed' (eq. (1) as printed, for ablation), 'linear', 'neurosim' (non-linearity
    label `nl_label`), 'soft_bounds' (step shrinks linearly to 0 at the bounds); see
    docs/physics.md, 'Device updates'."""
    nl: float = 0.01
    """TxSim update non-linearity factor v [1], >= 0, of 'txsim'/'txsim_printed'; the ratio of
    the first to the last step over the full range is e**v. 0 = linear (TxSim: 0.01)."""
    nl_label: float | None = None
    """NeuroSim non-linearity label NL [1], in (0, 9.99], of 'neurosim' (v found by root finding,
    docs/physics.md, 'Device updates'). Required when update_model is 'neurosim'; None
    otherwise."""
    write_noise: WriteNoiseModel = "sqrt"
    """Write-noise model: 'sqrt' sigma = (gamma/100)*sqrt((g_max-g_min)*|dg|) in conductances
    normalised by g_max (our reading, docs/physics.md); 'txsim_literal' sigma =
    gamma*sqrt(g_max-g_min)*|dg| (TxSim §IV as printed)."""
    gamma: float = 5.0
    """Write-noise factor gamma [1], >= 0 (TxSim: 5). 0 = no write noise."""
    sigma_c2c: float = 0.0
    """Cycle-to-cycle write variation [1], >= 0: std of the random part of each update relative
    to the device's deterministic (non-linear) change, drawn per update; defined with and
    without pulse quantisation. 0 = none."""
    sigma_d2d: float = 0.0
    """Device-to-device variation of the update step [1], >= 0: each device's step is scaled by
    (1 + sigma_d2d*xi), xi ~ N(0, 1) drawn once per device (aihwkit dw_min_dtod). 0 = none."""
    n_pulses_max: int | None = None
    """Pulse quantisation, >= 1: pulses that cross the full range, so every conductance request
    is rounded to whole pulses of (g_max - g_min) / n_pulses_max (NeuroSim's maxNumLevel;
    applied in closed form). None = unquantised (analog) updates."""

    @property
    def g_min(self) -> float:
        """Minimum conductance 1/r_max [S]."""
        return 1.0 / self.r_max

    @property
    def g_max(self) -> float:
        """Maximum conductance 1/r_min [S]."""
        return 1.0 / self.r_min

    def __post_init__(self) -> None:
        errors = check_fields(
            self, r_min=(f">= {MIN_RESISTANCE}", "ON resistance [Ohm]: g_max = 1/r_min "
                         "must stay finite and within the circuit solvers' range"),
            r_max=(f"<= {MAX_DEVICE_RESISTANCE:g}", "OFF resistance [Ohm]: above 1 POhm the "
                   "device is an open circuit, and the tiny g_min = 1/r_max underflows the "
                   "update arithmetic"),
            bits=_bits("device precision", "; null = analog device"), nl=">= 0",
            nl_label=(f"in (0, {NEUROSIM_NL_MAX}]",
                      "NeuroSim non-linearity label [1]: the update curve's largest distance "
                      "from the linear diagonal is 0.07*sqrt(2)*NL of the range, which the "
                      "exponential device reaches only below NL = 9.9926"),
            gamma=">= 0", sigma_c2c=">= 0", sigma_d2d=">= 0", n_pulses_max=">= 1")
        if errors.clean("r_min", "r_max") and self.r_min >= self.r_max:
            errors.append(f"r_min: expected r_min < r_max = {self.r_max!r} Ohm, got "
                          f"{self.r_min!r} (r_min is the ON resistance; swap the values?)")
        if errors.clean("update_model", "nl_label") and self.update_model == "neurosim" \
                and self.nl_label is None:
            errors.append("nl_label: required when update_model is 'neurosim' (NeuroSim "
                          "non-linearity label, e.g. 1.0), got null")
        _finish(self, errors)


@_config
class DACConfig:
    """Digital-to-analog converter driving the crossbar inputs (docs/physics.md, 'Converters')."""

    bits: int | None = 1
    """DAC resolution d [bits], in [1, 52] (TxSim: 1). None = ideal analog drive (no
    quantisation, no streaming)."""
    v_read: float = 1.0
    """Full-scale drive voltage V_max [V], >= 1e-6; a digital full-scale input maps to v_read
    (TxSim: inputs in 0-1 V)."""
    input_bits: int | None = 8
    """Precision b of the digital input [bits], in [bits, 52], and >= 2 where the inputs are
    signed (the backward errors; standardised first-layer inputs); it is streamed through the
    d-bit DAC in ceil(b/d) bit-planes, each digitised separately by the ADC. None = the input is
    applied in one pass at the DAC resolution."""
    signed: SignedInputMode = "two_pass"
    """How signed inputs (e.g. backward errors) are applied: 'two_pass' (positive and negative
    parts in separate passes, subtracted digitally) or 'twos_complement' (MSB plane weighted
    -2**(b-1))."""
    nonlinearity: DACNonlinearity = "none"
    """Transfer curve: 'none' (linear), 'bow' V = v_read*(u + bow*u*(1-u)), or 'lut'
    (monotone table in `lut`)."""
    bow: float = 0.0
    """Bow (INL) coefficient a_dac [1] of the 'bow' curve, in [-1, 1] (monotone)."""
    lut: str | None = None
    """Lookup-table file (CSV or YAML: normalised input code -> normalised output, monotone) of
    the 'lut' curve. Required when nonlinearity is 'lut'."""

    def __post_init__(self) -> None:
        errors = check_fields(self, bits=_bits("DAC resolution", "; null = ideal DAC"),
                              v_read=(">= 1e-6", "full-scale drive [V]: below 1 uV the read "
                                      "signal is beneath any sense amplifier's noise, and "
                                      "vanishing drives underflow the current scale"),
                              input_bits=_bits("input precision", "; null = no streaming"),
                              bow="in [-1, 1]")
        if (errors.clean("bits", "input_bits") and self.bits is not None
                and self.input_bits is not None and self.input_bits < self.bits):
            errors.append(f"input_bits: expected input_bits >= bits = {self.bits}, got "
                          f"{self.input_bits} (or set input_bits: null)")
        if errors.clean("nonlinearity", "lut") and self.nonlinearity == "lut" \
                and self.lut is None:
            errors.append("lut: required when nonlinearity is 'lut'; give the path of a CSV "
                          "or YAML table")
        _finish(self, errors)


@_config
class ADCConfig:
    """Sense amplifier and ADC of the crossbar outputs (docs/physics.md, 'Converters')."""

    bits: int | None = 8
    """ADC resolution [bits], in [1, 52] (8 is lossless for 64 rows, 2-bit devices and a 1-bit DAC,
    PUMA rule). None = ideal (no clipping, no quantisation)."""
    range: float | Literal["calibrated"] = "calibrated"
    """Full-scale current I_max [A], >= 1e-15, or 'calibrated': learned from the output statistics
    of the first `calibration_batches` batches, then frozen (TxSim §IV-B)."""
    calibration: ADCCalibration = "max"
    """Statistic of the calibration window: running 'max' of |I| or its 'percentile'."""
    percentile: float = 99.99
    """Percentile [%] of the 'percentile' calibration, in (0, 100]."""
    calibration_batches: int = 500
    """Batches in the calibration window, >= 1 (training batches; when evaluating only, the
    runner calibrates on training batches too). TxSim collects the output statistics "over
    multiple training epochs" [V]: 500 is about 5 epochs of the 6k MNIST subset at batch 64. A
    short window freezes the range while the outputs are still growing; with strongly
    attenuating crossbars this stalled training (README, Results)."""
    nonlinearity: ADCNonlinearity = "none"
    """Transfer curve: 'none' (linear), 'bow' u + bow*u*(1-u), 'tanh' tanh(beta*u)/tanh(beta)
    with beta = `tanh_beta`, or 'lut' (monotone table in `lut`)."""
    bow: float = 0.0
    """Bow coefficient a_adc [1] of the 'bow' curve, in [-1, 1] (monotone)."""
    tanh_beta: float = 1.0
    """Compression beta [1] of the 'tanh' curve, >= 1e-6."""
    lut: str | None = None
    """Lookup-table file (CSV or YAML, monotone) of the 'lut' curve. Required when nonlinearity
    is 'lut'."""
    sense_noise: float = 0.0
    """Input-referred Gaussian current noise std added to every column current before the ADC
    [A], in [0, 1]. 0 = noiseless sensing."""
    granularity: ADCGranularity = "layer"
    """'tile': one conversion per crossbar column, bit-plane and slice, partial sums added
    digitally (physical); 'layer': tiles stitched into one effective layer matrix and the ADC
    applied once to the layer output (fast, TxSim-like)."""

    def __post_init__(self) -> None:
        errors = check_fields(self, bits=_bits("ADC resolution", "; null = ideal ADC"),
                              range=(">= 1e-15", "full-scale current [A]: below 1 fA the code "
                                     "step underflows and every output saturates"),
                              percentile="in (0, 100]",
                              calibration_batches=">= 1", bow="in [-1, 1]",
                              tanh_beta=(">= 1e-6", "compression [1]; below 1e-6 the curve is "
                                         "linear to 1e-12 (use nonlinearity: none), and "
                                         "vanishing values underflow tanh(beta*u) to 0"),
                              sense_noise=("in [0, 1]", "input-referred noise std [A]; crossbar "
                                           "currents are far below 1 A, and huge values "
                                           "overflow the noisy currents to inf/NaN"))
        if errors.clean("nonlinearity", "lut") and self.nonlinearity == "lut" \
                and self.lut is None:
            errors.append("lut: required when nonlinearity is 'lut'; give the path of a CSV or "
                          "YAML table")
        _finish(self, errors)


@_config
class PeripheryConfig:
    """The converters of one direction (forward or backward) of every tile."""

    dac: DACConfig = field(default_factory=DACConfig)
    """Input DAC of this direction."""
    adc: ADCConfig = field(default_factory=ADCConfig)
    """Output sense amplifier and ADC of this direction."""

    def __post_init__(self) -> None:
        _finish(self, check_fields(self))


@_config
class UpdateConfig:
    """Gradient -> conductance scaling (TxSim Scale_Layer-k).

    See docs/physics.md, 'From weights to conductances'.
    """

    scale: UpdateScale = "max"
    """Per-layer weight scale W_s from the weight statistics: 'max' |W| or its 'percentile';
    alpha = (g_max - g_min)/W_s converts a weight change to a conductance change."""
    percentile: float = 99.9
    """Percentile [%] of |W| used when scale is 'percentile', in (0, 100]."""
    headroom: float = 2.0
    """W_s = headroom x the statistic of the weights being programmed, in [1, 1000]: weights
    may grow to headroom times their initial scale before they saturate at g_max."""

    def __post_init__(self) -> None:
        _finish(self, check_fields(
            self, percentile="in (0, 100]",
            headroom=("in [1, 1000]", "ratio [1] of the full-scale weight to the initial "
                      "weights, which then span 1/headroom of the conductance range: beyond "
                      "1000 less than 0.1 % of it, and huge values overflow the weight steps")))


@_config
class MappingConfig:
    """Signed weight -> conductance mapping and bit slicing.

    See docs/physics.md, 'From weights to conductances'.
    """

    scheme: MappingScheme = "signed_split"
    """'signed_split' (W+ and W- on two crossbars, TxSim), 'differential' (pair around g_mid)
    or 'offset' (one array, g_mid reference subtracted)."""
    weight_bits: int | None = None
    """Precision B_w of the weight magnitude on the read path [bits], in [1, 52]: |W|/W_s is
    quantised to 2**B_w - 1 levels (TxSim: 32-bit data). None = unquantised."""
    slice_bits: int | None = None
    """Bits k per device slice, >= 1 and <= device.bits: the B_w-bit magnitude is split into
    ceil(B_w/k) slices on separate columns, recombined by shift-and-add (TxSim: 2). None = no
    slicing (one device per weight and polarity)."""

    def __post_init__(self) -> None:
        errors = check_fields(self, weight_bits=_bits("weight precision",
                                                      "; null = unquantised"),
                              slice_bits=_bits("slice width"))
        if errors.clean("weight_bits", "slice_bits") and self.slice_bits is not None:
            if self.weight_bits is None:
                errors.append("slice_bits: bit slicing needs a finite weight precision; set "
                              "weight_bits or set slice_bits: null")
            elif self.slice_bits > self.weight_bits:
                errors.append(f"slice_bits: expected slice_bits <= weight_bits = "
                              f"{self.weight_bits}, got {self.slice_bits}")
        _finish(self, errors)


@_config
class SolverConfig:
    """How the effective conductance g_eff of each crossbar is obtained (docs/circuit.md)."""

    method: SolverMethod = "fcm"
    """'ideal' (g_eff = g, parasitics ignored), 'nodal' (sparse nodal solve, golden),
    'fcm' (exact fast crossbar model), 'aam' (approximate analytical model of order
    `aam_order`), 'interpolated' (TxSim interpolated FCM: exact refresh every
    `refresh_every` updates, stored distortion in between)."""
    algorithm: FCMAlgorithm = "direct"
    """How 'fcm' (and the 'fcm' refreshes of 'interpolated') compute the exact g_eff: 'direct'
    (sign-preserving nested dissection, exact to round-off, no state) or 'iterative'
    (Chebyshev / conjugate gradients to `rtol`, warm-started from the previous solution)."""
    rtol: float = 1.0e-10
    """Guaranteed error bound of the 'iterative' algorithm relative to max(g) [1], in (0, 1)."""
    aam_order: int = 2
    """Order K of the AAM path expansion, in [1, 64]."""
    refresh_every: int = 10
    """Interval L [updates] between exact refreshes of 'interpolated', >= 1 (TxSim gives no L)."""
    refresh_threshold: float | None = None
    """'interpolated' also refreshes early when the relative change ||g - g_ref|| / ||g_ref||
    (Frobenius norms, g_ref = the conductances of the last refresh) exceeds this [1], > 0.
    None = refresh every `refresh_every` updates only."""
    refresh_method: RefreshMethod = "fcm"
    """Model evaluated at the refresh points of 'interpolated': 'fcm' (exact) or 'aam'."""

    def __post_init__(self) -> None:
        _finish(self, check_fields(
            self, rtol="in (0, 1)",
            aam_order=("in [1, 64]", "order K of the path expansion, one pass over the array "
                       "per order; where AAM is valid (rho < 0.5) the error rho**(K+1) reaches "
                       "float64 round-off by K = 52: for exact values use method fcm"),
            refresh_every=">= 1", refresh_threshold="> 0"))


@_config
class VariationConfig:
    """Process (chip-to-chip) variation of programmed conductances.

    See docs/physics.md, 'From weights to conductances'.
    """

    sigma_pv: float = 0.0
    """Relative std of the per-device conductance factor [1]: g <- g*(1 + sigma_pv*xi),
    xi drawn once per simulated chip; < 1/3 for 'normal', <= 1 for 'lognormal'. 0 = no process
    variation (TxSim gives no value)."""
    distribution: VariationDistribution = "normal"
    """'normal' g*(1 + sigma*xi) or 'lognormal' g*exp(sigma*xi - sigma**2/2)."""
    chip_seed: int = 0
    """Seed of the simulated chip, >= 0; a new value draws a new chip, independent of the run
    seed."""

    def __post_init__(self) -> None:
        # Why the limits: a normal factor 1 + sigma*xi is clipped to [1 - 3 sigma, 1 + 3 sigma]
        # and must stay positive, so sigma < 1/3. A log-normal factor exp(sigma*xi - sigma^2/2)
        # has mean 1 but median exp(-sigma^2/2): beyond sigma = 1 (median 0.61) most devices
        # sit far below the programmed value and the mean is carried by a few outliers, which
        # the clip at g_max*(1 + 3 sigma) cuts; at sigma = 1000 every factor underflows to 0
        # and the network trains at chance. That is no longer a variation of the programmed
        # conductance, so it is refused rather than simulated.
        errors = check_fields(self, sigma_pv=">= 0", chip_seed=">= 0")
        if errors.clean("sigma_pv", "distribution"):
            limit = SIGMA_PV_MAX[self.distribution]
            if self.distribution == "normal" and self.sigma_pv >= limit:
                errors.append(f"sigma_pv: expected float in [0, 1/3) for the 'normal' "
                              f"distribution, got {self.sigma_pv!r}: relative std [1] of the "
                              f"factor 1 + sigma_pv*xi, clipped to 1 +- 3 sigma_pv, which must "
                              f"stay positive (use distribution: lognormal for a wider spread)")
            elif self.distribution == "lognormal" and self.sigma_pv > limit:
                errors.append(f"sigma_pv: expected float in [0, 1] for the 'lognormal' "
                              f"distribution, got {self.sigma_pv!r}: std [1] of ln(factor); "
                              f"beyond 1 the median factor exp(-sigma_pv**2/2) falls below "
                              f"0.61 and the mean is carried by a few outliers (at 1000 every "
                              f"factor underflows to 0), which is not a variation of the "
                              f"programmed conductance")
        _finish(self, errors)


@_config
class HardwareConfig:
    """Everything a crossbar Tile needs; forward and backward converters are separate."""

    crossbar: CrossbarConfig = field(default_factory=CrossbarConfig)
    """Array geometry and parasitics."""
    device: DeviceConfig = field(default_factory=DeviceConfig)
    """Device range, precision, update model and noise."""
    forward: PeripheryConfig = field(default_factory=PeripheryConfig)
    """Converters of the forward pass (rows driven, columns sensed)."""
    backward: PeripheryConfig = field(default_factory=PeripheryConfig)
    """Converters of the backward pass (columns driven, rows sensed)."""
    update: UpdateConfig = field(default_factory=UpdateConfig)
    """Gradient -> conductance scaling."""
    mapping: MappingConfig = field(default_factory=MappingConfig)
    """Signed mapping and bit slicing."""
    solver: SolverConfig = field(default_factory=SolverConfig)
    """Effective-conductance solver."""
    variation: VariationConfig = field(default_factory=VariationConfig)
    """Process (chip-to-chip) variation."""

    def __post_init__(self) -> None:
        errors = check_fields(self)
        if not errors and self.backward.dac.input_bits == 1:
            errors.append("backward.dac.input_bits: expected >= 2 or null, got 1: the backward "
                          "errors are signed, and a signed input needs a sign bit and at least "
                          "one magnitude bit")
        if not errors:
            k, b = self.mapping.slice_bits, self.device.bits
            if k is not None and b is not None and k > b:
                errors.append(f"mapping.slice_bits: a {k}-bit slice needs devices with at least "
                              f"{k} bits, but device.bits = {b}; lower slice_bits or raise "
                              f"device.bits")
        _finish(self, errors)


@_config
class RunConfig:
    """One complete run: seed, data, model, hardware, training and output."""

    seed: int = 0
    """Master seed of every named random stream (xbarsim.rng), >= 0."""
    data: DataConfig = field(default_factory=DataConfig)
    """Dataset."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Network architecture."""
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    """Crossbar hardware (used when train.mode is 'crossbar' or 'aware')."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Optimiser, schedule and run control."""
    output: OutputConfig = field(default_factory=OutputConfig)
    """Result, checkpoint and plot locations."""

    def input_shape(self) -> tuple[int, ...]:
        """Shape of one sample of ``data`` (MNIST (1, 28, 28), CIFAR-10 (3, 32, 32), synthetic)."""
        return {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}.get(
            self.data.dataset, self.data.synthetic_shape)

    def __post_init__(self) -> None:
        errors = check_fields(self, seed=">= 0")
        if not errors:
            errors.extend(_model_fits_data(self))
            fwd = self.hardware.forward.dac
            negative = ("data.normalize standardises the inputs of the first layer to zero "
                        "mean" if self.data.normalize else
                        "model.activation 'tanh' gives negative hidden activations"
                        if self.model.activation == "tanh" and self.model.name == "mlp"
                        else "")
            if self.train.mode != "software" and fwd.input_bits == 1 and negative:
                errors.append(f"hardware.forward.dac.input_bits: expected >= 2 or null, got 1: "
                              f"{negative}, and a signed input needs a sign bit and at least "
                              f"one magnitude bit")
        _finish(self, errors)


def _model_fits_data(cfg: RunConfig) -> list[str]:
    """Shape rules of the model builders, checked against the dataset's sample shape."""
    shape, name = cfg.input_shape(), cfg.model.name
    where = f"data.dataset {cfg.data.dataset!r}" + (
        f" with synthetic_shape {list(shape)}" if cfg.data.dataset == "synthetic" else "")
    if name == "mlp":
        return []
    if len(shape) != 3:
        return [f"model.name: {name!r} needs image inputs (channels, height, width), but "
                f"{where} gives samples of shape {list(shape)}; use 'mlp' or image data"]
    if name == "lenet5" and shape[1:] != (28, 28):
        return [f"model.name: 'lenet5' is built for 28x28 images, {where} gives "
                f"{shape[1]}x{shape[2]}; use vgg_small or resnet20"]
    if name == "vgg_small" and (shape[1] != shape[2] or shape[1] < 8):
        return [f"model.name: 'vgg_small' needs square images of at least 8x8 (three 2x2 "
                f"poolings), {where} gives {shape[1]}x{shape[2]}"]
    return []


SECTIONS: tuple[type, ...] = (
    RunConfig, DataConfig, ModelConfig, TrainConfig, AwareConfig, OutputConfig, HardwareConfig,
    CrossbarConfig, DeviceConfig, PeripheryConfig, DACConfig, ADCConfig, UpdateConfig,
    MappingConfig, SolverConfig, VariationConfig,
)
"""Every config section class, for tests and documentation tools."""

