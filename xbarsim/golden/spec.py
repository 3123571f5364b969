"""Specification of a golden suite (YAML): which tile, layer and MLP cases to make.

:func:`load_spec` reads a strict YAML file (or the shipped default,
``xbarsim/golden/data/default.yaml``) into a :class:`SuiteSpec`; every problem is reported at
once with the case and key, like a run configuration. docs/golden.md documents the keys.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from xbarsim.errors import ConfigError

__all__ = ["DEFAULT_SPEC", "REGIMES", "BACK_VECTORS", "VECTORS", "LayerSpec", "MLPSpec",
           "SuiteSpec", "TileSpec", "default_spec_text", "load_spec"]

DEFAULT_SPEC = "default.yaml"
"""File name of the default specification inside ``xbarsim/golden/data``."""

REGIMES: dict[str, dict[str, Any]] = {
    "txsim": {"g": (1.0e-6, 1.0e-5), "r_source": 100.0, "r_sense": 100.0, "r_row": 1.0,
              "r_col": 4.6},
    "harsh": {"g": (50.0e-6, 500.0e-6), "r_source": 100.0, "r_sense": 100.0, "r_row": 10.0,
              "r_col": 10.0},
    "ideal": {"g": (1.0e-6, 1.0e-5), "r_source": 0.0, "r_sense": 0.0, "r_row": 0.0,
              "r_col": 0.0},
}
"""Named device and parasitic regimes of tile cases (the TxSim regime of docs/circuit.md, the
harsh one, and no parasitics)."""

VECTORS = ("ones", "uniform", "signed", "one_hot", "cancelling")
"""Forward drive vectors a tile case may use (docs/golden.md, "Tile cases")."""

BACK_VECTORS = ("ones", "signed", "cancelling")
"""Backward drive vectors a tile case may use."""

_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")
_TILE_KEYS = ("name", "regime", "shape", "g", "open_fraction", "r_source", "r_sense", "r_row",
              "r_col", "terminals", "vectors", "back_vectors", "node_voltages")
_LAYER_KEYS = ("name", "n_in", "n_out", "batch", "lr", "hardware")
_MLP_KEYS = ("name", "sizes", "batch", "lr", "hardware")
_TOP_KEYS = ("seed", "ngspice", "tiles", "layers", "mlp")

#: Node voltages are stored by default for tiles of at most this many cells (they are
#: 2 x n_vectors x cells numbers: 0.3 MB at 64 x 64).
NODE_VOLTAGE_CELLS = 64 * 64


@dataclass(frozen=True)
class TileSpec:
    """One tile case (see docs/golden.md for the keys)."""

    name: str
    shape: tuple[int, int]
    g: tuple[float, float]
    open_fraction: float
    r_source: Any            # float, list of floats, or {"uniform": [lo, hi]}
    r_sense: Any
    r_row: float
    r_col: float
    regime: str
    vectors: tuple[str, ...]
    back_vectors: tuple[str, ...]
    node_voltages: bool


@dataclass(frozen=True)
class LayerSpec:
    """One layer case: a weight matrix on crossbar hardware, forward, backward and update."""

    name: str
    n_in: int
    n_out: int
    batch: int
    lr: float
    hardware: dict[str, Any]


@dataclass(frozen=True)
class MLPSpec:
    """One training step of an MLP on crossbar hardware."""

    name: str
    sizes: tuple[int, ...]
    batch: int
    lr: float
    hardware: dict[str, Any]


@dataclass(frozen=True)
class SuiteSpec:
    """A whole suite specification (:func:`load_spec`)."""

    seed: int
    ngspice: bool
    tiles: tuple[TileSpec, ...] = ()
    layers: tuple[LayerSpec, ...] = ()
    mlp: tuple[MLPSpec, ...] = ()
    text: str = ""
    source: str = ""
    names: tuple[str, ...] = field(default_factory=tuple)


def default_spec_text() -> str:
    """Return the YAML text of the default suite (``xbarsim/golden/data/default.yaml``)."""
    return resources.files("xbarsim.golden").joinpath("data", DEFAULT_SPEC).read_text("utf-8")


def _suggest(key: Any, valid: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(key), valid, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Errors(list):
    def unknown(self, where: str, raw: Mapping[str, Any], valid: tuple[str, ...]) -> None:
        for key in raw:
            if key not in valid:
                self.append(f"{where}: unknown key {key!r}{_suggest(key, valid)}; valid keys: "
                            f"{', '.join(valid)}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _positive_int(errors: _Errors, where: str, x: Any, minimum: int = 1,
                  maximum: int | None = None) -> int:
    if not _is_int(x) or x < minimum or (maximum is not None and x > maximum):
        top = f", at most {maximum}" if maximum is not None else ""
        errors.append(f"{where}: expected an integer >= {minimum}{top}, got {x!r}")
        return minimum
    return int(x)


def _number(errors: _Errors, where: str, x: Any, *, minimum: float = 0.0,
            strict: bool = False) -> float:
    if isinstance(x, str):
        try:
            float(x)
        except ValueError:
            pass
        else:
            errors.append(f"{where}: expected a number, got the string {x!r}: YAML reads "
                          f"numbers in exponent form without a dot as strings; write "
                          f"{x.replace('e', '.0e', 1) if '.' not in x else x}")
            return minimum
    if not _is_num(x) or x != x or x in (float("inf"), float("-inf")) \
            or (x <= minimum if strict else x < minimum):
        op = ">" if strict else ">="
        errors.append(f"{where}: expected a finite number {op} {minimum:g}, got {x!r}")
        return minimum
    return float(x)


def _resistance(errors: _Errors, where: str, x: Any) -> Any:
    """Read a resistance: a scalar, a list (one per line) or {uniform: [lo, hi]} [Ohm]."""
    if isinstance(x, Mapping):
        if set(x) != {"uniform"} or not isinstance(x["uniform"], list) \
                or len(x["uniform"]) != 2:
            errors.append(f"{where}: expected a number, a list with one value per line, or "
                          f"{{uniform: [low, high]}}, got {x!r}")
            return 0.0
        lo = _number(errors, f"{where}.uniform[0]", x["uniform"][0])
        hi = _number(errors, f"{where}.uniform[1]", x["uniform"][1])
        if hi < lo:
            errors.append(f"{where}.uniform: high {hi:g} is below low {lo:g}")
        return {"uniform": (lo, hi)}
    if isinstance(x, list):
        return [_number(errors, f"{where}[{k}]", v) for k, v in enumerate(x)]
    return _number(errors, where, x)


def _tile(errors: _Errors, where: str, raw: Any) -> TileSpec | None:
    if not isinstance(raw, Mapping):
        errors.append(f"{where}: expected a mapping of tile keys ({', '.join(_TILE_KEYS)}), "
                      f"got {raw!r}")
        return None
    errors.unknown(where, raw, _TILE_KEYS)
    name = raw.get("name")
    regime_name = raw.get("regime", "txsim")
    if regime_name not in REGIMES:
        errors.append(f"{where}.regime: expected one of {', '.join(REGIMES)}, got "
                      f"{regime_name!r}")
        regime_name = "txsim"
    regime = REGIMES[regime_name]
    shape_raw = raw.get("shape")
    if not isinstance(shape_raw, list) or len(shape_raw) != 2:
        errors.append(f"{where}.shape: expected [n_rows, n_cols], got {shape_raw!r}")
        shape = (1, 1)
    else:
        shape = (_positive_int(errors, f"{where}.shape[0]", shape_raw[0], maximum=1024),
                 _positive_int(errors, f"{where}.shape[1]", shape_raw[1], maximum=1024))
    g_raw = raw.get("g", list(regime["g"]))
    if not isinstance(g_raw, list) or len(g_raw) != 2:
        errors.append(f"{where}.g: expected [g_low, g_high] in S, got {g_raw!r}")
        g = regime["g"]
    else:
        g = (_number(errors, f"{where}.g[0]", g_raw[0], strict=True),
             _number(errors, f"{where}.g[1]", g_raw[1], strict=True))
        if g[1] < g[0]:
            errors.append(f"{where}.g: g_high {g[1]:g} S is below g_low {g[0]:g} S")
    open_fraction = _number(errors, f"{where}.open_fraction", raw.get("open_fraction", 0.0))
    if open_fraction >= 1.0:
        errors.append(f"{where}.open_fraction: expected a fraction in [0, 1), got "
                      f"{open_fraction:g}")
    r_row = _number(errors, f"{where}.r_row", raw.get("r_row", regime["r_row"]))
    r_col = _number(errors, f"{where}.r_col", raw.get("r_col", regime["r_col"]))
    terminals = raw.get("terminals", "regime")
    if terminals not in ("regime", "segment"):
        errors.append(f"{where}.terminals: expected 'regime' or 'segment' (r_source = r_row, "
                      f"r_sense = r_col), got {terminals!r}")
    if terminals == "segment":
        for key in ("r_source", "r_sense"):
            if key in raw:
                errors.append(f"{where}.{key}: not with terminals: segment (which sets it to "
                              f"the wire resistance)")
        r_source: Any = r_row
        r_sense: Any = r_col
    else:
        r_source = _resistance(errors, f"{where}.r_source",
                               raw.get("r_source", regime["r_source"]))
        r_sense = _resistance(errors, f"{where}.r_sense", raw.get("r_sense", regime["r_sense"]))
        for key, value, n in (("r_source", r_source, shape[0]), ("r_sense", r_sense, shape[1])):
            if isinstance(value, list) and len(value) != n:
                errors.append(f"{where}.{key}: expected {n} values (one per line), got "
                              f"{len(value)}")
    vectors = _names(errors, f"{where}.vectors", raw.get("vectors", list(VECTORS)), VECTORS)
    back = _names(errors, f"{where}.back_vectors", raw.get("back_vectors", list(BACK_VECTORS)),
                  BACK_VECTORS)
    node_voltages = raw.get("node_voltages", shape[0] * shape[1] <= NODE_VOLTAGE_CELLS)
    if not isinstance(node_voltages, bool):
        errors.append(f"{where}.node_voltages: expected true or false, got {node_voltages!r}")
        node_voltages = False
    return TileSpec(name=str(name), shape=shape, g=g, open_fraction=open_fraction,
                    r_source=r_source, r_sense=r_sense, r_row=r_row, r_col=r_col,
                    regime=str(regime_name), vectors=vectors, back_vectors=back,
                    node_voltages=node_voltages)


def _names(errors: _Errors, where: str, raw: Any, valid: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(x, str) for x in raw):
        errors.append(f"{where}: expected a non-empty list of names from {', '.join(valid)}, "
                      f"got {raw!r}")
        return valid
    for x in raw:
        if x not in valid:
            errors.append(f"{where}: unknown vector {x!r}{_suggest(x, valid)}; valid: "
                          f"{', '.join(valid)}")
    return tuple(x for x in raw if x in valid)


def _hardware(errors: _Errors, where: str, raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        errors.append(f"{where}: expected a hardware section (as in a run configuration), "
                      f"got {raw!r}")
        return {}
    from xbarsim.config import load_config

    try:
        load_config({"hardware": dict(raw)})
    except ConfigError as exc:
        errors.extend(f"{where}: {e}" for e in exc.errors)
    return dict(raw)


def _layer(errors: _Errors, where: str, raw: Any) -> LayerSpec | None:
    if not isinstance(raw, Mapping):
        errors.append(f"{where}: expected a mapping ({', '.join(_LAYER_KEYS)}), got {raw!r}")
        return None
    errors.unknown(where, raw, _LAYER_KEYS)
    return LayerSpec(name=str(raw.get("name")),
                     n_in=_positive_int(errors, f"{where}.n_in", raw.get("n_in"), maximum=4096),
                     n_out=_positive_int(errors, f"{where}.n_out", raw.get("n_out"),
                                         maximum=4096),
                     batch=_positive_int(errors, f"{where}.batch", raw.get("batch", 4),
                                         maximum=1024),
                     lr=_number(errors, f"{where}.lr", raw.get("lr", 0.1), strict=True),
                     hardware=_hardware(errors, f"{where}.hardware", raw.get("hardware")))


def _mlp(errors: _Errors, where: str, raw: Any) -> MLPSpec | None:
    if not isinstance(raw, Mapping):
        errors.append(f"{where}: expected a mapping ({', '.join(_MLP_KEYS)}), got {raw!r}")
        return None
    errors.unknown(where, raw, _MLP_KEYS)
    sizes_raw = raw.get("sizes")
    if not isinstance(sizes_raw, list) or len(sizes_raw) < 2:
        errors.append(f"{where}.sizes: expected [n_in, hidden..., n_classes], got {sizes_raw!r}")
        sizes: tuple[int, ...] = (2, 2)
    else:
        sizes = tuple(_positive_int(errors, f"{where}.sizes[{k}]", s, maximum=4096)
                      for k, s in enumerate(sizes_raw))
        if sizes[-1] < 2:
            errors.append(f"{where}.sizes: the last entry is the number of classes, >= 2")
    return MLPSpec(name=str(raw.get("name")), sizes=sizes,
                   batch=_positive_int(errors, f"{where}.batch", raw.get("batch", 8),
                                       maximum=1024),
                   lr=_number(errors, f"{where}.lr", raw.get("lr", 0.1), strict=True),
                   hardware=_hardware(errors, f"{where}.hardware", raw.get("hardware")))


def load_spec(path: str | Path | None = None) -> SuiteSpec:
    """Read and validate a suite specification.

    Parameters
    ----------
    path : str or Path, optional
        A YAML file; None reads the default suite's specification.

    Returns
    -------
    SuiteSpec

    Raises
    ------
    ConfigError
        Every problem found (unknown keys with suggestions, wrong types or ranges, duplicate
        case names, bad hardware sections), naming the file, the case and the key.
    OSError
        The file cannot be read.
    """
    from xbarsim.config.loader import parse_yaml

    if path is None:
        text, source = default_spec_text(), f"(default suite: {DEFAULT_SPEC})"
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise OSError(f"{path}: cannot read the suite specification "
                          f"({exc.strerror or exc})") from None
    raw = parse_yaml(text, source=source)
    errors = _Errors()
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError([f"top level: expected a mapping with keys {', '.join(_TOP_KEYS)}"],
                          source=source)
    errors.unknown("top level", raw, _TOP_KEYS)
    seed = _positive_int(errors, "seed", raw.get("seed", 0), minimum=0)
    ngspice = raw.get("ngspice", False)
    if not isinstance(ngspice, bool):
        errors.append(f"ngspice: expected true or false, got {ngspice!r}")
        ngspice = False
    parsed: dict[str, list[Any]] = {"tiles": [], "layers": [], "mlp": []}
    for section, parse in (("tiles", _tile), ("layers", _layer), ("mlp", _mlp)):
        items = raw.get(section) or []
        if not isinstance(items, list):
            errors.append(f"{section}: expected a list of cases, got {type(items).__name__}")
            continue
        for k, item in enumerate(items):
            label = f"{section}[{k}]"
            if isinstance(item, Mapping) and isinstance(item.get("name"), str):
                label += f" ({item['name']})"
            case = parse(errors, label, item)
            if case is not None:
                parsed[section].append(case)
    names: list[str] = []
    for section, cases in parsed.items():
        for k, case in enumerate(cases):
            if case.name in ("None", "") or not _NAME.match(case.name):
                errors.append(f"{section}[{k}].name: expected a name of letters, digits and "
                              f"_ . + -, got {case.name!r}")
            elif case.name in names or (case.name.startswith("ngspice_") and ngspice):
                errors.append(f"{section}[{k}].name: {case.name!r} is used twice (names "
                              f"ngspice_* are taken by the shipped tiles)")
            names.append(case.name)
    if not any(parsed.values()) and not ngspice:
        errors.append("the suite has no cases: give tiles, layers or mlp, or ngspice: true")
    if errors:
        raise ConfigError(list(errors), source=source)
    return SuiteSpec(seed=seed, ngspice=ngspice, tiles=tuple(parsed["tiles"]),
                     layers=tuple(parsed["layers"]), mlp=tuple(parsed["mlp"]), text=text,
                     source=source, names=tuple(names))
