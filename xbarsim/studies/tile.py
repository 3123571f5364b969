"""Single-tile study: ideal vs nodal vs FCM vs AAM currents of one crossbar, IR drop and rho.

:func:`run_tile_study` takes one crossbar (random conductances from a seed, or given arrays) and
its parasitics, and returns a :class:`TileStudy`: the sense currents of every method, their
errors against the golden nodal solve, the node-voltage maps, the largest IR drop and the a-priori
bound on the spectral radius that decides whether the path expansion (AAM) converges
(docs/circuit.md, 'The device-voltage formulation'). :func:`load_tile_config` reads the same
parameters from a strict YAML file. Nothing here prints or writes files; the CLI
(``xbarsim tile``) does that.
"""

from __future__ import annotations

import difflib
import logging
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xbarsim.checks import as_float_array, nonneg_scalar, positive_int
from xbarsim.errors import ConfigError

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

METHODS = ("ideal", "nodal", "fcm", "aam")
"""Methods a tile study can compare; ``ideal`` and ``nodal`` (the reference) always run."""

RHO_WARN = 0.5
"""rho bound at and above which AAM is reported as inaccurate (TxSim Fig. 6, cases b and c)."""
RHO_SKIP = 1.0
"""rho bound at and above which AAM may diverge and is skipped."""

#: Defaults: a 64x64 tile with TxSim's devices and wires (TxSim §V), 100 Ohm terminals.
DEFAULTS: dict[str, Any] = {
    "rows": 64, "cols": 64, "g_min": 1.0e-6, "g_max": 1.0e-5, "seed": 0, "batch": 4,
    "v_max": 1.0, "r_source": 100.0, "r_sense": 100.0, "r_row": 1.0, "r_col": 4.6,
    "aam_order": 2, "methods": METHODS,
}

#: YAML keys of a tile config: key -> (kind, description). ``g``/``v`` are file specs.
CONFIG_KEYS: dict[str, tuple[str, str]] = {
    "rows": ("int", "number of rows (word lines)"),
    "cols": ("int", "number of columns (bit lines)"),
    "g_min": ("float", "lower bound of the random conductances [S]"),
    "g_max": ("float", "upper bound of the random conductances [S]"),
    "seed": ("int", "seed of the random conductances and inputs"),
    "batch": ("int", "number of random input vectors"),
    "v_max": ("float", "random inputs are uniform in [0, v_max] [V]"),
    "r_source": ("float_or_list", "driver resistance, scalar or one per row [Ohm]"),
    "r_sense": ("float_or_list", "sense resistance, scalar or one per column [Ohm]"),
    "r_row": ("float", "row wire resistance per cell segment [Ohm]"),
    "r_col": ("float", "column wire resistance per cell segment [Ohm]"),
    "aam_order": ("int", "number of path terms K of the AAM"),
    "methods": ("str_list", "methods to compare, subset of " + ", ".join(METHODS)),
    "g": ("path", "conductance file (.npy, or .h5 with file.h5:dataset) [S]"),
    "v": ("path", "input file (.npy, or .h5 with file.h5:dataset) [V]"),
}


@dataclass(frozen=True, eq=False)
class TileStudy:
    """Results of :func:`run_tile_study` for one crossbar.

    Attributes
    ----------
    g : ndarray of shape (n_rows, n_cols)
        Device conductances [S].
    v : ndarray of shape (batch, n_rows)
        Row drive voltages [V].
    r_source : ndarray of shape (n_rows,)
        Driver resistance per row [Ohm].
    r_sense : ndarray of shape (n_cols,)
        Sense resistance per column [Ohm].
    r_row, r_col : float
        Wire resistance per cell segment [Ohm].
    aam_order : int
        Path terms K of the AAM.
    methods : tuple of str
        Methods that were run (AAM is dropped when it was skipped, see ``notes``).
    i_ideal : ndarray of shape (batch, n_cols)
        ``v @ g`` [A].
    i_nodal : ndarray of shape (batch, n_cols) or None
        The golden nodal sense currents [A]; None when the nodal solve was skipped.
    i_fcm, i_aam : ndarray of shape (batch, n_cols) or None
        Sense currents ``v @ g_eff`` of FCM / AAM [A]; None when not run.
    g_eff : ndarray of shape (n_rows, n_cols)
        Exact effective conductance from the reference solver [S].
    g_eff_fcm, g_eff_aam : ndarray of shape (n_rows, n_cols) or None
        Effective conductance of FCM / AAM [S].
    u, w : ndarray of shape (batch, n_rows, n_cols) or None
        Row-node and column-node voltages [V] (nodal solve; None when it was skipped).
    ir_drop : ndarray of shape (batch, n_rows, n_cols) or None
        Voltage lost by each device, ``v[b, i] - (u - w)[b, i, j]`` [V].
    ir_drop_max : float
        ``max |ir_drop|`` over all vectors and cells [V] (NaN without the nodal solve).
    ir_drop_rel : float
        ``max_b max_ij |ir_drop[b, i, j]| / max_i |v[b, i]|``: the largest drop relative to the
        full-scale (largest) drive of the same input vector (1). Normalising by ``v[b, i]`` of
        the cell's own row instead would be unbounded for rows driven near 0 V, whose devices
        still see the column-side voltage of the others. NaN without the nodal solve.
    ir_drop_argmax : tuple of int or None
        ``(b, i, j)`` of ``ir_drop_max`` (the figures show vector ``b``).
    rho_bound : float
        A-priori bound on the spectral radius of ``Z D``; AAM converges for < 1
        (docs/circuit.md, 'The device-voltage formulation').
    errors : dict of str to float
        Per method other than the reference, ``max |i_m - i_ref| / max |i_ref|`` (1).
    g_eff_errors : dict of str to float
        Per method other than the reference, ``max |g_eff_m - g_eff| / max |g_eff|`` (1).
    timings : dict of str to float
        Wall time of each method in this call [s], including any JIT compilation.
    notes : tuple of str
        Warnings and skipped steps, for the report.
    parameters : dict
        The inputs in SI units (``g``/``v`` file specs or the random-generation parameters).
    reference : str
        The exact solver the errors are measured against: ``"nodal"``, or ``"fcm"`` when the
        nodal solve was skipped.
    """

    g: FloatArray
    v: FloatArray
    r_source: FloatArray
    r_sense: FloatArray
    r_row: float
    r_col: float
    aam_order: int
    methods: tuple[str, ...]
    i_ideal: FloatArray
    i_nodal: FloatArray | None
    i_fcm: FloatArray | None
    i_aam: FloatArray | None
    g_eff: FloatArray
    g_eff_fcm: FloatArray | None
    g_eff_aam: FloatArray | None
    u: FloatArray | None
    w: FloatArray | None
    ir_drop: FloatArray | None
    ir_drop_max: float
    ir_drop_rel: float
    ir_drop_argmax: tuple[int, int, int] | None
    rho_bound: float
    errors: dict[str, float]
    g_eff_errors: dict[str, float]
    timings: dict[str, float]
    notes: tuple[str, ...]
    parameters: dict[str, Any] = field(default_factory=dict)
    reference: str = "nodal"

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_rows, n_cols)``."""
        return (int(self.g.shape[0]), int(self.g.shape[1]))

    def currents(self) -> dict[str, FloatArray]:
        """Sense currents [A] of every method that ran, keyed by method name."""
        out = {"ideal": self.i_ideal}
        if self.i_nodal is not None:
            out["nodal"] = self.i_nodal
        if self.i_fcm is not None:
            out["fcm"] = self.i_fcm
        if self.i_aam is not None:
            out["aam"] = self.i_aam
        return out

    def aam_cell_error(self) -> FloatArray | None:
        """Relative error of AAM per cell, ``|g_eff_aam - g_eff| / g_eff`` (1), NaN where 0.

        Returns None when AAM was not run. This is the map of TxSim Fig. 6.
        """
        if self.g_eff_aam is None:
            return None
        den = np.abs(self.g_eff)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 0, np.abs(self.g_eff_aam - self.g_eff) / den, np.nan)

    def hdf5_records(self) -> tuple[dict[str, tuple[FloatArray, str]], dict[str, Any]]:
        """Datasets ``{name: (array, units)}`` and root attributes for :mod:`xbarsim.io.hdf5`."""
        import yaml

        data: dict[str, tuple[FloatArray, str]] = {
            "g": (self.g, "S"), "v": (self.v, "V"),
            "r_source": (self.r_source, "Ohm"), "r_sense": (self.r_sense, "Ohm"),
            "i_ideal": (self.i_ideal, "A"), "g_eff": (self.g_eff, "S"),
        }
        for name, unit in (("i_nodal", "A"), ("u", "V"), ("w", "V"), ("ir_drop", "V")):
            arr = getattr(self, name)
            if arr is not None:
                data[name] = (arr, unit)
        for name in ("i_fcm", "i_aam"):
            arr = getattr(self, name)
            if arr is not None:
                data[name] = (arr, "A")
        for name in ("g_eff_fcm", "g_eff_aam"):
            arr = getattr(self, name)
            if arr is not None:
                data[name] = (arr, "S")
        cell_err = self.aam_cell_error()
        if cell_err is not None:
            data["aam_rel_error"] = (cell_err, "1")
        scalars = {k: v for k, v in self.parameters.items()
                   if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
        attrs: dict[str, Any] = {
            **scalars,
            "parameters_yaml": yaml.safe_dump(self.parameters, sort_keys=True),
            "n_rows": self.shape[0], "n_cols": self.shape[1], "batch": int(self.v.shape[0]),
            "r_row": self.r_row, "r_col": self.r_col, "aam_order": self.aam_order,
            "methods": list(self.methods),
            "rho_bound": self.rho_bound, "reference": self.reference,
            "error_definition": f"err_<m> = max|i_<m> - i_{self.reference}| / "
                                f"max|i_{self.reference}|; g_eff_err_<m> = "
                                f"max|g_eff_<m> - g_eff| / max|g_eff| (g_eff from "
                                f"{self.reference})",
            "notes": list(self.notes) if self.notes else "",
        }
        if self.ir_drop_argmax is not None:
            attrs.update({
                "ir_drop_max": self.ir_drop_max, "ir_drop_max_units": "V",
                "ir_drop_rel": self.ir_drop_rel,
                "ir_drop_argmax": np.array(self.ir_drop_argmax, dtype=np.int64),
                "ir_drop_definition": "ir_drop[b,i,j] = v[b,i] - (u - w)[b,i,j]; ir_drop_rel "
                                      "= max_b max_ij |ir_drop[b,i,j]| / max_i |v[b,i]|"})
        for m, e in self.errors.items():
            attrs[f"err_{m}"] = e
        for m, e in self.g_eff_errors.items():
            attrs[f"g_eff_err_{m}"] = e
        for m, t in self.timings.items():
            attrs[f"time_{m}_s"] = t
        return data, attrs


# ---------------------------------------------------------------------------------------------
# inputs


def load_array(spec: str | Path, name: str) -> FloatArray:
    """Read an array from ``file.npy`` or ``file.h5:dataset`` (or ``file.h5`` with one dataset).

    Parameters
    ----------
    spec : str or Path
        File specification.
    name : str
        What the array is (``"g"``, ``"v"``), quoted in error messages.

    Raises
    ------
    FileNotFoundError, OSError, ValueError
        Missing or unreadable file, unknown extension, missing dataset, non-numeric content.
    """
    text = str(spec)
    dataset: str | None = None
    for ext in (".h5", ".hdf5", ".hdf"):
        marker = ext + ":"
        if marker in text:
            cut = text.index(marker) + len(ext)
            text, dataset = text[:cut], text[cut + 1:]
            break
    path = Path(text)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise FileNotFoundError(f"{name}: file {path} not found")
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise OSError(f"{name}: cannot read {path} as .npy ({exc})") from None
    elif suffix in (".h5", ".hdf5", ".hdf"):
        from xbarsim.io import hdf5

        try:
            arr = hdf5.read_dataset(path, dataset)
        except (OSError, ValueError) as exc:
            raise type(exc)(f"{name}: {exc}") from None
    else:
        raise ValueError(f"{name}: {path} has unknown extension {suffix!r}; "
                         f"expected .npy or .h5 (file.h5:dataset)")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name}: {path} holds {arr.dtype} data, expected numbers")
    return np.asarray(arr, dtype=np.float64)


def _suggest(key: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _check_value(key: str, kind: str, value: Any) -> str | None:
    """Return an error message for a wrongly typed config value, or None."""
    def number_error(x: Any, where: str) -> str | None:
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            if isinstance(x, str):
                try:
                    float(x)
                except ValueError:
                    pass
                else:
                    dotted = x if "." in x else x.replace("e", ".0e", 1).replace("E", ".0E", 1)
                    return (f"{where}: expected a number, got {x!r} (str): PyYAML reads numbers "
                            f"in exponent form without a dot as strings; write {dotted}")
            return f"{where}: expected a number, got {x!r} ({type(x).__name__})"
        return None

    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{key}: expected an integer, got {value!r} ({type(value).__name__})"
    elif kind == "float":
        return number_error(value, key)
    elif kind == "float_or_list":
        if isinstance(value, list):
            for k, x in enumerate(value):
                err = number_error(x, f"{key}[{k}]")
                if err:
                    return err
            return None
        return number_error(value, key)
    elif kind == "str_list":
        if isinstance(value, str):
            return None
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            return f"{key}: expected a list of method names, got {value!r}"
    elif kind == "path" and not isinstance(value, str):
        return f"{key}: expected a file name, got {value!r} ({type(value).__name__})"
    return None


def load_tile_config(path: str | Path) -> dict[str, Any]:
    """Read a tile study description from a strict YAML file.

    Keys are those of :data:`CONFIG_KEYS` (the keyword arguments of :func:`run_tile_study`);
    ``g`` and ``v`` name array files relative to the YAML file. All problems are collected.

    Parameters
    ----------
    path : str or Path
        YAML file.

    Returns
    -------
    dict
        Validated keyword arguments (``g``/``v`` as resolved file specs).

    Raises
    ------
    ConfigError
        Unknown keys (with a "did you mean" suggestion), wrong types, or numbers that PyYAML
        read as strings (``1e-6``: write ``1.0e-6``).
    OSError
        The file cannot be read.
    """
    import yaml

    from xbarsim.config.loader import parse_yaml

    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"config file {path} not found") from None
    except OSError as exc:
        raise OSError(f"config file {path}: cannot read ({exc.strerror})") from None
    try:
        raw = parse_yaml(text, source=str(path))  # strict: a duplicate key is an error
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"], source=str(path)) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"expected a mapping of keys to values at the top level, "
                           f"got {type(raw).__name__}"], source=str(path))
    errors: list[str] = []
    out: dict[str, Any] = {}
    for key, value in raw.items():
        key = str(key)
        if key not in CONFIG_KEYS:
            errors.append(f"{key}: unknown key{_suggest(key, CONFIG_KEYS)} "
                          f"(valid keys: {', '.join(CONFIG_KEYS)})")
            continue
        kind = CONFIG_KEYS[key][0]
        err = _check_value(key, kind, value)
        if err:
            errors.append(err)
            continue
        if kind == "path":
            spec = Path(value)
            value = str(spec if spec.is_absolute() else path.parent / spec)
        out[key] = value
    if errors:
        raise ConfigError(errors, source=str(path))
    return out


def parse_methods(methods: str | Iterable[str]) -> tuple[str, ...]:
    """Normalise a method list (comma-separated string or iterable) to a tuple in METHODS order.

    ``ideal`` and ``nodal`` are always included (nodal is the reference).

    Raises
    ------
    ValueError
        An unknown method name (with a suggestion).
    """
    names = methods.split(",") if isinstance(methods, str) else list(methods)
    chosen = {"ideal", "nodal"}
    for name in names:
        name = name.strip().lower()
        if not name:
            continue
        if name not in METHODS:
            raise ValueError(f"methods: unknown method {name!r}{_suggest(name, METHODS)} "
                             f"(choose from {', '.join(METHODS)})")
        chosen.add(name)
    return tuple(m for m in METHODS if m in chosen)


# ---------------------------------------------------------------------------------------------
# the study


def _rel_err(a: FloatArray, ref: FloatArray) -> float:
    """``max|a - ref| / max|ref|`` (0 when both vanish)."""
    num = float(np.max(np.abs(a - ref)))
    den = float(np.max(np.abs(ref)))
    if den == 0.0:
        return 0.0 if num == 0.0 else float("inf")
    return num / den


#: Options that describe a random tile or random inputs, and what makes them meaningless.
_RANDOM_G_OPTIONS = ("rows", "cols", "g_min", "g_max")
_RANDOM_V_OPTIONS = ("batch", "v_max")


@dataclass(frozen=True, eq=False)
class TileInputs:
    """A validated tile study, ready to solve (:func:`prepare_tile_study`).

    Attributes
    ----------
    g : ndarray of shape (n_rows, n_cols)
        Device conductances [S].
    v : ndarray of shape (batch, n_rows)
        Row drive voltages [V].
    parasitics : xbarsim.hardware.circuit.Parasitics
        Terminal and wire resistances.
    methods : tuple of str
        Methods to run (``ideal`` always; ``nodal`` unless skipped; ``fcm`` whenever it is the
        reference).
    reference : str
        ``"nodal"``, or ``"fcm"`` when the nodal solve is skipped.
    aam_order : int
        Path terms K of the AAM.
    rho_bound : float
        A-priori bound on the spectral radius of ``Z D``
        (:func:`xbarsim.hardware.circuit.rho_bound`).
    parameters : dict
        The inputs in SI units, as recorded in the study.
    """

    g: FloatArray
    v: FloatArray
    parasitics: Any
    methods: tuple[str, ...]
    reference: str
    aam_order: int
    rho_bound: float
    parameters: dict[str, Any]

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_rows, n_cols)``."""
        return (int(self.g.shape[0]), int(self.g.shape[1]))

    def estimates(self) -> dict[str, Any]:
        """Estimated time and peak memory of each solve that will run.

        Returns
        -------
        dict of str to SolveCost
            ``"nodal"`` (factorization, ``g_eff`` and the input vectors), ``"fcm"`` (direct
            algorithm) and ``"aam"`` (when it will run: rho bound below 1), each a
            :class:`xbarsim.hardware.circuit.SolveCost`. Orders of magnitude for deciding
            whether to run; the speed depends on the machine and its load.
        """
        from xbarsim.hardware.circuit import SolveCost, nodal_cost

        n_rows, n_cols = self.shape
        cells = n_rows * n_cols
        batch = int(self.v.shape[0])
        out: dict[str, Any] = {}
        maps = 3 * 8 * batch * cells                         # u, w and the IR drop [B]
        if "nodal" in self.methods:
            cost = nodal_cost(n_rows, n_cols, min(n_rows, n_cols) + batch)
            out["nodal"] = SolveCost(cost.seconds, cost.bytes + maps)
        if "fcm" in self.methods:
            # the direct solver's work memory (its arena: 1137 B per cell at 256 x 256, 2217 B
            # at 4096 x 4096, growing with log2(cells)) and its g_eff
            per_cell = max(64.0, 135.0 * np.log2(max(cells, 2)) - 1023.0) + 16.0
            out["fcm"] = SolveCost(FCM_SECONDS_256 * (cells / 65536) ** 1.5,
                                   int(per_cell * cells))
        if "aam" in self.methods and self.rho_bound < RHO_SKIP:
            out["aam"] = SolveCost(AAM_SECONDS_128 * self.aam_order / 2 * (cells / 16384) ** 2,
                                   8 * cells * (4 + n_rows + n_cols))
        return out


#: Time of FCM's direct solve of a 256 x 256 tile [s], for estimates (the time grows about
#: like cells**1.5): 0.05 s on an idle machine (``xbarsim bench tile``), 0.75-0.85 s on the
#: shared 2-core machine under load, where the nodal constants were measured
#: (:func:`xbarsim.hardware.circuit.nodal_cost`); 1024 x 1024 took 15-30 s there.
FCM_SECONDS_256 = 0.5
#: Time of AAM with K = 2 on a 128 x 128 tile [s], for estimates (grows like cells**2): 0.01 s
#: idle (``xbarsim bench tile``).
AAM_SECONDS_128 = 0.05


def prepare_tile_study(g: ArrayLike | None = None, v: ArrayLike | None = None, *,
                       rows: int | None = None, cols: int | None = None,
                       g_min: float | None = None, g_max: float | None = None,
                       seed: int | None = None, batch: int | None = None,
                       v_max: float | None = None,
                       r_source: ArrayLike = DEFAULTS["r_source"],
                       r_sense: ArrayLike = DEFAULTS["r_sense"],
                       r_row: float = DEFAULTS["r_row"], r_col: float = DEFAULTS["r_col"],
                       aam_order: int = DEFAULTS["aam_order"],
                       methods: str | Iterable[str] = DEFAULTS["methods"],
                       nodal: bool = True,
                       sources: Mapping[str, str] | None = None) -> TileInputs:
    """Validate the inputs of a tile study and draw the random ones (no solve).

    Takes the arguments of :func:`run_tile_study`; see there. Options left at None take the
    values of :data:`DEFAULTS`.

    Raises
    ------
    ValueError
        Invalid shapes or values, or options that contradict given arrays: ``rows``,
        ``cols``, ``g_min``, ``g_max`` with ``g``; ``batch``, ``v_max`` with ``v``; ``seed``
        with both.
    """
    from xbarsim import rng as rng_mod
    from xbarsim.hardware.circuit import Parasitics, check_conductance, rho_bound

    given = {"rows": rows, "cols": cols, "g_min": g_min, "g_max": g_max, "seed": seed,
             "batch": batch, "v_max": v_max}
    unused = [k for k in _RANDOM_G_OPTIONS if g is not None and given[k] is not None]
    unused += [k for k in _RANDOM_V_OPTIONS if v is not None and given[k] is not None]
    if g is not None and v is not None and seed is not None:
        unused.append("seed")
    if unused:
        what = {"rows": "g", "cols": "g", "g_min": "g", "g_max": "g", "batch": "v",
                "v_max": "v", "seed": "g and v"}
        raise ValueError("; ".join(
            f"{k}: has no effect when {what[k]} {'are' if k == 'seed' else 'is'} given (it "
            f"describes random {'inputs' if what[k] == 'v' else 'data'})" for k in unused)
            + "; leave it out")
    rows, cols, g_min, g_max, seed, batch, v_max = (
        DEFAULTS[k] if given[k] is None else given[k] for k in given)
    method_list = parse_methods(methods)
    if not nodal:
        method_list = tuple(m for m in METHODS if m in method_list and m != "nodal"
                            or m == "fcm")
    aam_order = positive_int("aam_order", aam_order)
    params: dict[str, Any] = {"aam_order": aam_order, "methods": list(method_list)}
    sources = dict(sources or {})
    if g is None:
        rows = positive_int("rows", rows)
        cols = positive_int("cols", cols)
        g_min = nonneg_scalar("g_min", g_min)
        g_max = nonneg_scalar("g_max", g_max)
        if g_max < g_min:
            raise ValueError(f"g_max: must be >= g_min = {g_min:g} S, got {g_max:g} S")
        seed = positive_int("seed", seed, minimum=0)
        g_arr = rng_mod.stream(seed, "tile.g").uniform(g_min, g_max, size=(rows, cols))
        g_arr = check_conductance(g_arr)
        params.update(g_min=g_min, g_max=g_max, seed=seed)
    else:
        g_arr = check_conductance(g)
        params["g"] = sources.get("g", "array")
    n_rows, n_cols = g_arr.shape
    params.update(rows=int(n_rows), cols=int(n_cols))
    if v is None:
        batch = positive_int("batch", batch)
        v_max = float(as_float_array("v_max", v_max, ndim=0, positive=True))
        seed = positive_int("seed", seed, minimum=0)
        v_arr = rng_mod.stream(seed, "tile.v").uniform(0.0, v_max, size=(batch, n_rows))
        params.update(batch=batch, v_max=v_max, seed=seed)
    else:
        v_arr = as_float_array("v", v, ndim=(1, 2))
        if v_arr.shape[-1] != n_rows:
            raise ValueError(f"v: expected shape ({n_rows},) or (batch, {n_rows}) to match g of "
                             f"shape {g_arr.shape}, got {v_arr.shape}")
        v_arr = np.atleast_2d(v_arr)
        params.update(v=sources.get("v", "array"), batch=int(v_arr.shape[0]))
    par = Parasitics.build(n_rows, n_cols, r_source=r_source, r_sense=r_sense, r_row=r_row,
                           r_col=r_col)
    for name in ("r_source", "r_sense"):
        arr = getattr(par, name)
        params[name] = float(arr[0]) if np.all(arr == arr[0]) else arr.tolist()
    params.update(r_row=par.r_row, r_col=par.r_col)
    reference = "nodal" if "nodal" in method_list else "fcm"
    params["reference"] = reference
    if reference == "nodal":
        from xbarsim.hardware.circuit import check_nodal_range

        check_nodal_range(g_arr, par)
    rho = rho_bound(g_arr, r_source=par.r_source, r_sense=par.r_sense, r_row=par.r_row,
                    r_col=par.r_col)
    return TileInputs(g=g_arr, v=v_arr, parasitics=par, methods=method_list,
                      reference=reference, aam_order=aam_order, rho_bound=rho,
                      parameters=params)


def run_tile_study(g: ArrayLike | None = None, v: ArrayLike | None = None, *,
                   rows: int | None = None, cols: int | None = None,
                   g_min: float | None = None, g_max: float | None = None,
                   seed: int | None = None, batch: int | None = None,
                   v_max: float | None = None,
                   r_source: ArrayLike = DEFAULTS["r_source"],
                   r_sense: ArrayLike = DEFAULTS["r_sense"],
                   r_row: float = DEFAULTS["r_row"], r_col: float = DEFAULTS["r_col"],
                   aam_order: int = DEFAULTS["aam_order"],
                   methods: str | Iterable[str] = DEFAULTS["methods"],
                   nodal: bool = True,
                   sources: Mapping[str, str] | None = None) -> TileStudy:
    """Compare ideal, nodal, FCM and AAM sense currents of one crossbar.

    Parameters
    ----------
    g : array_like of shape (n_rows, n_cols), optional
        Device conductances [S]. When None, drawn uniformly in ``[g_min, g_max]`` with shape
        ``(rows, cols)`` from the named stream ``"tile.g"`` of ``seed``.
    v : array_like of shape (n_rows,) or (batch, n_rows), optional
        Row drive voltages [V]. When None, ``batch`` vectors uniform in ``[0, v_max]`` from the
        stream ``"tile.v"`` of ``seed``.
    rows, cols : int, optional
        Tile shape when ``g`` is drawn (default 64 x 64; an error together with ``g``).
    g_min, g_max : float, optional
        Conductance range of random ``g`` [S], ``0 <= g_min <= g_max`` (default 1 uS to
        10 uS; an error together with ``g``).
    seed : int, optional
        Seed of the random ``g`` and ``v`` (:func:`xbarsim.rng.stream`; default 0; an error
        when both ``g`` and ``v`` are given).
    batch : int, optional
        Number of random input vectors (default 4; an error together with ``v``).
    v_max : float, optional
        Largest random drive voltage [V], > 0 (default 1 V; an error together with ``v``).
    r_source : float or array_like of shape (n_rows,)
        Driver resistance [Ohm], >= 0.
    r_sense : float or array_like of shape (n_cols,)
        Sense resistance [Ohm], >= 0.
    r_row, r_col : float
        Wire resistance per cell segment [Ohm], >= 0.
    aam_order : int
        Path terms K of the AAM, >= 1.
    methods : str or iterable of str
        Subset of ``("ideal", "nodal", "fcm", "aam")``; ideal and nodal always run.
    nodal : bool
        Run the golden nodal solve (default). When False, FCM's direct solver (exact to
        round-off) is the reference instead and always runs; there are no node voltages and
        no IR drop then. For tiles whose nodal solve is too slow or too large
        (:meth:`TileInputs.estimates`).
    sources : mapping, optional
        Where ``g`` / ``v`` came from (file specs), recorded in ``parameters``.

    Returns
    -------
    TileStudy
        Currents, effective conductances, node maps, errors, IR drop and rho bound.

    Raises
    ------
    ValueError
        Invalid shapes or values; the message names the argument and the expected range.

    Warns
    -----
    UserWarning
        When the rho bound is >= 0.5 (AAM inaccurate) or >= 1 (AAM skipped).

    Notes
    -----
    The nodal system is factorized once and gives ``g_eff``, the nodal currents and the node
    maps ``u``, ``w``. The IR drop of device (i, j) for input vector b is
    ``v[b, i] - (u - w)[b, i, j]`` [V]: the part of the drive that does not reach the device.
    :func:`prepare_tile_study` and :func:`solve_tile_study` are the two halves of this
    function (the CLI checks :meth:`TileInputs.estimates` in between).
    """
    return solve_tile_study(prepare_tile_study(
        g, v, rows=rows, cols=cols, g_min=g_min, g_max=g_max, seed=seed, batch=batch,
        v_max=v_max, r_source=r_source, r_sense=r_sense, r_row=r_row, r_col=r_col,
        aam_order=aam_order, methods=methods, nodal=nodal, sources=sources))


def solve_tile_study(inputs: TileInputs) -> TileStudy:
    """Run the solves of a prepared tile study (see :func:`run_tile_study`)."""
    from xbarsim.hardware.circuit import NodalSystem, effective_conductance

    g_arr, v_arr, par = inputs.g, inputs.v, inputs.parasitics
    method_list = inputs.methods
    aam_order = inputs.aam_order
    rho = inputs.rho_bound
    notes: list[str] = []
    timings: dict[str, float] = {}
    kw = dict(r_source=par.r_source, r_sense=par.r_sense, r_row=par.r_row, r_col=par.r_col)

    i_ideal = v_arr @ g_arr                                  # (batch, n_cols)
    i_nodal = u = w = ir_drop = None
    g_eff_nodal = None
    ir_max = ir_rel = float("nan")
    argmax: tuple[int, int, int] | None = None
    if "nodal" in method_list:
        t0 = time.perf_counter()
        system = NodalSystem(g_arr, par)                     # one factorization for all below
        g_eff_nodal = system.g_eff()
        i_nodal = system.currents(v_arr)
        u, w = system.node_maps(v_arr)                       # each (batch, n_rows, n_cols)
        timings["nodal"] = time.perf_counter() - t0
        ir_drop = v_arr[:, :, None] - (u - w)                # (batch, n_rows, n_cols)
        abs_drop = np.abs(ir_drop)
        flat = np.unravel_index(int(np.argmax(abs_drop)), abs_drop.shape)
        argmax = (int(flat[0]), int(flat[1]), int(flat[2]))
        ir_max = float(abs_drop[argmax])
        full_scale = np.max(np.abs(v_arr), axis=1)           # (batch,)
        per_vector = abs_drop.reshape(abs_drop.shape[0], -1).max(axis=1)
        driven = full_scale > 0
        ir_rel = (float(np.max(per_vector[driven] / full_scale[driven])) if driven.any()
                  else 0.0)

    warned = rho >= RHO_WARN and "aam" in method_list
    if rho >= RHO_SKIP and "aam" in method_list:
        msg = (f"rho bound {rho:.3g} >= {RHO_SKIP:g}: the AAM path expansion may diverge; "
               f"AAM skipped (use fcm or nodal for this tile)")
        notes.append(msg)
        warnings.warn(msg, UserWarning, stacklevel=2)
        method_list = tuple(m for m in method_list if m != "aam")
    elif rho >= RHO_WARN and "aam" in method_list:
        msg = (f"rho bound {rho:.3g} >= {RHO_WARN:g}: AAM is inaccurate for this tile "
               f"(errors decay only like rho**(K+1))")
        notes.append(msg)
        warnings.warn(msg, UserWarning, stacklevel=2)

    results: dict[str, FloatArray] = {}
    for method in ("fcm", "aam"):
        if method not in method_list:
            continue
        options = {"order": aam_order} if method == "aam" else {}
        t0 = time.perf_counter()
        refused: ValueError | None = None
        with warnings.catch_warnings(record=True) as caught:
            # the rho warning was issued once above; record the solver's own warnings as notes
            warnings.simplefilter("always")
            try:
                results[method] = effective_conductance(g_arr, method=method, **kw, **options)
            except ValueError as exc:
                if method != "aam":
                    raise
                refused = exc   # inputs are validated above: AAM's own refusal (rho check)
        if refused is not None:
            msg = f"AAM skipped: {refused}"
            notes.append(msg)
            warnings.warn(msg, UserWarning, stacklevel=2)
            warned = True
            method_list = tuple(m for m in method_list if m != "aam")
            continue
        timings[method] = time.perf_counter() - t0
        for item in caught:
            text = f"{method}: {item.message}"
            if text not in notes:
                notes.append(text)
                if not warned:     # pass the solver's warning on unless ours said it already
                    warnings.warn(text, UserWarning, stacklevel=2)
                    warned = True

    g_eff_fcm = results.get("fcm")
    g_eff_aam = results.get("aam")
    i_fcm = None if g_eff_fcm is None else v_arr @ g_eff_fcm
    i_aam = None if g_eff_aam is None else v_arr @ g_eff_aam
    if inputs.reference == "nodal":
        assert g_eff_nodal is not None and i_nodal is not None
        g_eff, i_ref = g_eff_nodal, i_nodal
    else:
        assert g_eff_fcm is not None and i_fcm is not None
        g_eff, i_ref = g_eff_fcm, i_fcm
        notes.append("nodal solve skipped: errors are against FCM (direct, exact to "
                     "round-off); no node voltages or IR drop")
    currents = {"ideal": i_ideal, "fcm": i_fcm, "aam": i_aam}
    errors = {m: _rel_err(i, i_ref) for m, i in currents.items()
              if i is not None and m != inputs.reference}
    g_effs = {"ideal": g_arr, "fcm": g_eff_fcm, "aam": g_eff_aam}
    g_eff_errors = {m: _rel_err(x, g_eff) for m, x in g_effs.items()
                    if x is not None and m != inputs.reference}
    return TileStudy(
        g=g_arr, v=v_arr, r_source=par.r_source, r_sense=par.r_sense, r_row=par.r_row,
        r_col=par.r_col, aam_order=aam_order, methods=method_list, i_ideal=i_ideal,
        i_nodal=i_nodal, i_fcm=i_fcm, i_aam=i_aam, g_eff=g_eff, g_eff_fcm=g_eff_fcm,
        g_eff_aam=g_eff_aam, u=u, w=w, ir_drop=ir_drop, ir_drop_max=ir_max,
        ir_drop_rel=ir_rel, ir_drop_argmax=argmax, rho_bound=rho,
        errors=errors, g_eff_errors=g_eff_errors, timings=timings, notes=tuple(notes),
        parameters=dict(inputs.parameters), reference=inputs.reference,
    )


def format_summary(study: TileStudy) -> str:
    """Format a compact plain-text report of a tile study (for the CLI).

    Returns
    -------
    str
        Multi-line table: per method the current range, error vs the reference and time; then
        the IR drop, the rho bound and any notes.
    """
    from xbarsim.units import format_si

    n_rows, n_cols = study.shape
    ref = study.reference
    lines = [
        f"tile {n_rows} x {n_cols}, batch {study.v.shape[0]}; "
        f"r_source {_fmt_r(study.r_source)}, r_sense {_fmt_r(study.r_sense)}, "
        f"r_row {format_si(study.r_row, 'Ohm')}, r_col {format_si(study.r_col, 'Ohm')}",
        f"g in [{format_si(float(study.g.min()), 'S')}, {format_si(float(study.g.max()), 'S')}],"
        f" v in [{format_si(float(study.v.min()), 'V')}, {format_si(float(study.v.max()), 'V')}]",
        "",
        f"{'method':<10}{'max |i| [A]':>14}{'err vs ' + ref:>15}{'g_eff err':>12}"
        f"{'time [s]':>11}",
    ]
    for method, i_out in study.currents().items():
        label = f"aam K={study.aam_order}" if method == "aam" else method
        err = "reference" if method == ref else f"{study.errors[method]:.3e}"
        gerr = "-" if method == ref else f"{study.g_eff_errors[method]:.3e}"
        t = study.timings.get(method)
        lines.append(f"{label:<10}{float(np.max(np.abs(i_out))):>14.4e}{err:>15}{gerr:>12}"
                     f"{'-' if t is None else f'{t:.3g}':>11}")
    lines += [
        "",
        f"errors: max|i - i_{ref}| / max|i_{ref}| over the batch; g_eff err likewise for g_eff",
    ]
    if study.ir_drop_argmax is not None:
        b, i, j = study.ir_drop_argmax
        lines.append(f"largest IR drop v_i - (u - w)_ij: {format_si(study.ir_drop_max, 'V')} at "
                     f"vector {b}, row {i}, column {j}; {100 * study.ir_drop_rel:.3g} % of the "
                     f"vector's largest drive")
    else:
        lines.append("IR drop: not computed (it needs the nodal solve)")
    lines.append(f"rho bound (AAM converges for < 1): {study.rho_bound:.4g}")
    lines += [f"note: {n}" for n in study.notes]
    return "\n".join(lines)


def _fmt_r(r: FloatArray) -> str:
    from xbarsim.units import format_si

    if np.all(r == r[0]):
        return format_si(float(r[0]), "Ohm")
    return f"{format_si(float(r.min()), 'Ohm')}..{format_si(float(r.max()), 'Ohm')}"


def available_memory() -> int | None:
    """Memory available to a new allocation [B] (Linux ``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import os

        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None
