"""The golden suite's schema: every dataset of every kind of case, and the error metric.

This module is plain data and NumPy (it imports no other part of xbarsim), so that the
adapters (:mod:`xbarsim.golden.adapters`) and other tools can use it without the solvers.
docs/golden.md is the user documentation of the same tables; a test keeps the two in step.

A suite holds *cases*. Each case has a *kind* (:data:`CASE_KINDS`) and datasets, each with a
*role*:

``input``
    What another tool is given (conductances, drives, parasitics, weights, and every random
    draw a case used).
``output``
    What another tool computes and :func:`compare` checks, each with a *scale* (what an error
    is relative to, :data:`SCALES`) and a *tolerance*.
``info``
    Stored for reference, not compared (e.g. ngspice's own currents of the shipped tiles).

Names of the datasets of an MLP case's layers start with the layer name: ``fc1/weights``;
the tables below write them ``<layer>/weights``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["CASE_KINDS", "DATASETS", "DEFAULT_TOLERANCE", "LAYOUT_VERSION", "RESULTS_KIND",
           "SCALES", "SUITE_KIND", "Comparison", "DatasetSpec", "compare", "dataset_spec",
           "outputs_of"]

SUITE_KIND = "golden_suite"
"""Root attribute ``kind`` of a suite file."""

RESULTS_KIND = "golden_results"
"""Root attribute ``kind`` of another tool's results in the suite's schema (THEIRS)."""

LAYOUT_VERSION = 1
"""Version of the layout documented in docs/golden.md; bumped on incompatible changes."""

CASE_KINDS = ("tile", "layer", "mlp_step")
"""Kinds of case: one crossbar's circuit, one layer on crossbar hardware, one MLP training step."""

DEFAULT_TOLERANCE = 1.0e-9
"""Tolerance of every compared quantity: largest error relative to the quantity's scale.

Two correct float64 implementations of the same model differ by round-off: exact circuit
solvers by 1e-16 to 1e-11 of the currents (xbarsim's nodal solve is within ~2e-16 of an
extended-precision solution; ngspice-39 within ~1e-13; badcrossbar 1.1.0 within 6e-12), so
1e-9 leaves two decades for another solver's own conditioning and still catches a current off
by 1e-6."""


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of a case kind.

    Attributes
    ----------
    name : str
        Name inside the case group (``<layer>/`` prefix for per-layer datasets).
    role : {"input", "output", "info"}
        See the module docstring.
    units : str
        SI units (``"1"`` for dimensionless).
    shape : str
        Shape in words, e.g. ``"(n_vectors, n_cols)"``.
    description : str
        What it is, with its sign convention.
    scale : str
        For outputs: the key of :data:`SCALES` the error is relative to.
    optional : bool
        Present only in some cases of the kind (the description says when).
    dtype : str
        ``"float64"`` or ``"int64"``.
    """

    name: str
    role: str
    units: str
    shape: str
    description: str
    scale: str = ""
    optional: bool = False
    dtype: str = "float64"


def _in(name: str, units: str, shape: str, description: str, *, optional: bool = False,
        dtype: str = "float64") -> DatasetSpec:
    return DatasetSpec(name, "input", units, shape, description, optional=optional, dtype=dtype)


def _out(name: str, units: str, shape: str, scale: str, description: str, *,
         optional: bool = False) -> DatasetSpec:
    return DatasetSpec(name, "output", units, shape, description, scale=scale,
                       optional=optional)


_DEVICES = "(n_blocks, n_arrays, rows, cols)"
_READS = "(n_blocks, n_read, rows, cols)"

TILE_DATASETS: tuple[DatasetSpec, ...] = (
    _in("g", "S", "(n_rows, n_cols)", "device conductances, >= 0 (0: open device)"),
    _in("v", "V", "(n_vectors, n_rows)", "row drive voltages of the forward solves"),
    _in("d", "V", "(n_back, n_cols)", "column drive voltages of the backward solves"),
    _in("r_source", "Ohm", "(n_rows,)", "driver resistance of each row (0: ideal)"),
    _in("r_sense", "Ohm", "(n_cols,)", "sense resistance of each column (0: ideal)"),
    _in("r_row", "Ohm", "()", "row (word-line) wire resistance per cell segment"),
    _in("r_col", "Ohm", "()", "column (bit-line) wire resistance per cell segment"),
    _out("i_sense", "A", "(n_vectors, n_cols)", "sense",
         "current into each column's virtual ground, positive for v > 0"),
    _out("g_eff", "S", "(n_rows, n_cols)", "max",
         "effective conductance: i_sense = v @ g_eff"),
    _out("u", "V", "(n_vectors, n_rows, n_cols)", "drive",
         "row-node voltages (word-line side of each device)", optional=True),
    _out("w", "V", "(n_vectors, n_rows, n_cols)", "drive",
         "column-node voltages (bit-line side of each device)", optional=True),
    _out("i_back", "A", "(n_back, n_rows)", "back",
         "backward pass: current into each row's virtual ground (through r_source) with the "
         "columns driven by d at their sense ends (through r_sense)"),
    DatasetSpec("i_spice", "info", "A", "(n_vectors, n_cols)",
                "ngspice-39's sense currents of the shipped netlist (ngspice_* cases)",
                optional=True),
)

LAYER_DATASETS: tuple[DatasetSpec, ...] = (
    _in("weights", "1", "(n_in, n_out)", "layer weights W, y = x @ W"),
    _in("x", "1", "(batch, n_in)", "layer inputs"),
    _in("delta", "1", "(batch, n_out)", "errors arriving from the next layer (backward input)"),
    _in("lr", "1", "()", "learning rate of the plain SGD step dW = -lr x^T delta"),
    _in("blocks", "1", "(n_blocks, 4)",
        "crossbar blocks: first row, end row, first column, end column of W", dtype="int64"),
    _in("step_gain", "1", _DEVICES,
        "device-to-device step gain max(0, 1 + sigma_d2d xi) of each master device "
        "(when sigma_d2d > 0)", optional=True),
    _in("pv_factor", "1", _DEVICES,
        "process-variation factor of each master device (when sigma_pv > 0)", optional=True),
    _in("xi_write", "1", _DEVICES,
        "standard normal of each master device's write noise in the update; 0 where the "
        "applied change is 0", optional=True),
    _in("xi_sense_forward", "1", "(batch, n_out)",
        "standard normals of the forward sense noise (when sense_noise > 0)", optional=True),
    _in("xi_sense_backward", "1", "(batch, n_in)",
        "standard normals of the backward sense noise (when sense_noise > 0)", optional=True),
    _out("w_scale", "1", "()", "max", "weight of full scale W_s (alpha = (g_max - g_min) / W_s)"),
    _out("g_programmed", "S", _DEVICES, "max",
         "master conductances after programming W (NaN pads partial blocks)"),
    _out("g_eff", "S", _READS, "max",
         "effective conductance of each read array (the masters without bit slicing)"),
    _out("adc_range_forward", "A", "(n_adcs,)", "max",
         "full-scale current of each forward ADC after calibrating on x", optional=True),
    _out("adc_range_backward", "A", "(n_adcs,)", "max",
         "full-scale current of each backward ADC after calibrating on delta", optional=True),
    _out("y_forward", "1", "(batch, n_out)", "forward",
         "forward outputs, x @ W through the hardware"),
    _out("y_backward", "1", "(batch, n_in)", "backward",
         "backward outputs, delta @ W^T through the hardware"),
    _out("dw", "1", "(n_in, n_out)", "max", "requested weight step -lr x^T delta"),
    _out("dg_request", "S", _DEVICES, "max",
         "conductance change requested of each master device by the mapping (before the step "
         "gain)"),
    _out("g_updated", "S", _DEVICES, "max", "master conductances after the update"),
    _out("weights_updated", "1", "(n_in, n_out)", "max",
         "weights the updated master conductances represent"),
)

MLP_DATASETS: tuple[DatasetSpec, ...] = (
    _in("x", "1", "(batch, n_in)", "network inputs"),
    _in("labels", "1", "(batch,)", "class labels", dtype="int64"),
    _in("lr", "1", "()", "learning rate of the plain SGD step"),
    _in("<layer>/weights", "1", "(n_in, n_out)", "initial weights of the layer"),
    _in("<layer>/bias", "1", "(n_out,)", "initial bias (digital)"),
    _in("<layer>/blocks", "1", "(n_blocks, 4)", "crossbar blocks of the layer", dtype="int64"),
    _in("<layer>/xi_write", "1", _DEVICES,
        "standard normals of the layer's write noise; 0 where the applied change is 0",
        optional=True),
    _out("<layer>/g_programmed", "S", _DEVICES, "max", "master conductances before the step"),
    _out("<layer>/y_forward", "1", "(batch, n_out)", "max", "layer output x @ W + b"),
    _out("<layer>/grad_output", "1", "(batch, n_out)", "max",
         "gradient of the loss with respect to the layer output"),
    _out("<layer>/y_backward", "1", "(batch, n_in)", "max",
         "gradient passed to the previous layer (absent for the first layer)", optional=True),
    _out("<layer>/g_updated", "S", _DEVICES, "max", "master conductances after the step"),
    _out("<layer>/weights_updated", "1", "(n_in, n_out)", "max", "weights after the step"),
    _out("<layer>/bias_updated", "1", "(n_out,)", "max", "bias after the step"),
    _out("logits", "1", "(batch, n_classes)", "max", "network outputs"),
    _out("loss", "1", "()", "max", "mean softmax cross-entropy of the batch"),
)

DATASETS: dict[str, tuple[DatasetSpec, ...]] = {
    "tile": TILE_DATASETS, "layer": LAYER_DATASETS, "mlp_step": MLP_DATASETS}
"""Datasets of each case kind."""

SCALES: dict[str, str] = {
    "max": "max |ref| over the dataset (finite entries)",
    "sense": "per drive vector b: max_j sum_i |v[b, i]| g[i, j], the largest current the "
             "drive could make in any column without parasitics",
    "back": "per backward vector b: max_i sum_j |d[b, j]| g[i, j]",
    "drive": "per drive vector b: max_i |v[b, i]|",
    "forward": "per sample b: max_j sum_i |x[b, i]| |W[i, j]|",
    "backward": "per sample b: max_i sum_j |delta[b, j]| |W[i, j]|",
}
"""What each output's error is relative to (docs/golden.md, "Error metrics")."""


def dataset_spec(kind: str, name: str) -> DatasetSpec | None:
    """Return the spec of dataset ``name`` of a ``kind`` case (layer prefixes matched) or None."""
    table = DATASETS.get(kind, ())
    generic = name
    if kind == "mlp_step" and "/" in name:
        generic = "<layer>/" + name.split("/", 1)[1]
    for spec in table:
        if spec.name == generic:
            return spec
    return None


def outputs_of(kind: str, names: list[str] | tuple[str, ...]) -> list[str]:
    """Return the compared datasets (role ``output``) among ``names`` of a ``kind`` case."""
    out = []
    for name in names:
        spec = dataset_spec(kind, name)
        if spec is not None and spec.role == "output":
            out.append(name)
    return out


@dataclass(frozen=True)
class Comparison:
    """The error of one output dataset of one case (:func:`compare`).

    Attributes
    ----------
    error : float
        ``max_k |theirs_k - ref_k| / scale_k`` (inf when theirs is not finite where the
        reference is).
    index : tuple of int
        Index of the worst element (``()`` for a scalar).
    ref_value, their_value : float
        The reference's and their value there.
    scale : float
        The scale of that element.
    tolerance : float
        The tolerance it is judged against.
    """

    error: float
    index: tuple[int, ...]
    ref_value: float
    their_value: float
    scale: float
    tolerance: float

    @property
    def passed(self) -> bool:
        """``error <= tolerance``."""
        return self.error <= self.tolerance


def _row_scale(ref: NDArray[np.float64], per_row: NDArray[np.float64]) -> NDArray[np.float64]:
    """Broadcast one scale per leading index over the remaining axes of ``ref``."""
    return np.broadcast_to(per_row.reshape((-1,) + (1,) * (ref.ndim - 1)), ref.shape)


def element_scale(scale: str, ref: NDArray[np.float64],
                  case: Mapping[str, NDArray[Any]], prefix: str = "") -> NDArray[np.float64]:
    """Scale of every element of ``ref`` (shape of ``ref``), from the case's inputs.

    Parameters
    ----------
    scale : str
        A key of :data:`SCALES`.
    ref : ndarray
        The reference dataset.
    case : mapping of str to ndarray
        The reference case's datasets (``v``, ``g``, ``d``, ``x``, ``weights``, ``delta``).
    prefix : str
        Layer prefix (``"fc1/"``) of per-layer datasets.
    """
    if scale == "max":
        finite = np.abs(ref[np.isfinite(ref)])
        return np.broadcast_to(np.float64(finite.max() if finite.size else 0.0), ref.shape)
    if scale == "sense":
        per_row = np.max(np.abs(case["v"]) @ case["g"], axis=1)
    elif scale == "back":
        per_row = np.max(np.abs(case["d"]) @ case["g"].T, axis=1)
    elif scale == "drive":
        per_row = np.max(np.abs(case["v"]), axis=1)
    elif scale == "forward":
        per_row = np.max(np.abs(case["x"]) @ np.abs(case[prefix + "weights"]), axis=1)
    elif scale == "backward":
        per_row = np.max(np.abs(case["delta"]) @ np.abs(case[prefix + "weights"]).T, axis=1)
    else:
        raise ValueError(f"scale: unknown scale {scale!r}; expected one of {', '.join(SCALES)}")
    return _row_scale(ref, np.asarray(per_row, dtype=np.float64))


def compare(ref: NDArray[Any], theirs: NDArray[Any], scale: NDArray[np.float64],
            tolerance: float) -> Comparison:
    """Error of ``theirs`` against ``ref``, relative to ``scale`` element by element.

    Elements where ``ref`` is NaN (padding of partial crossbar blocks) are not compared.
    Where ``ref`` is finite and ``theirs`` is not, the error is inf. Where the scale is 0
    (a zero drive), the error is 0 when the values are equal and inf otherwise.

    Parameters
    ----------
    ref, theirs : ndarray of the same shape
    scale : ndarray of that shape
        From :func:`element_scale`.
    tolerance : float
        Largest accepted error.

    Returns
    -------
    Comparison
    """
    ref = np.asarray(ref, dtype=np.float64)
    theirs = np.asarray(theirs, dtype=np.float64)
    if ref.shape != theirs.shape:
        raise ValueError(f"shape {theirs.shape} does not match the reference's {ref.shape}")
    diff = np.abs(theirs - ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0),
                       np.where(diff == 0, 0.0, np.inf))
    err = np.where(np.isfinite(ref) & ~np.isfinite(theirs), np.inf, err)
    err = np.where(np.isnan(ref), -1.0, err)               # not compared
    if err.size == 0 or float(err.max()) < 0:
        return Comparison(0.0, (), math.nan, math.nan, math.nan, tolerance)
    flat = int(np.argmax(err))
    index = tuple(int(k) for k in np.unravel_index(flat, err.shape))
    return Comparison(error=float(err.flat[flat]), index=index, ref_value=float(ref.flat[flat]),
                      their_value=float(theirs.flat[flat]), scale=float(scale.flat[flat]),
                      tolerance=float(tolerance))
