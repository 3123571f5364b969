r"""Technology-aware training: digital weights trained through a model of the crossbar hardware.

Chakraborty, Roy and Roy (IEEE TETCI 2018) put "the mathematical models of the non-idealities
in the standard training algorithm". :class:`AwareWeights` is the weight backend of that
training mode (``train.mode: aware``; user documentation in ``docs/aware.md``). The weights
``W`` (n_in, n_out) stay digital float64 and the optimiser updates them exactly as in software
mode; every product uses the effective weights the configured hardware realises::

    W --mapping (signed split / differential / offset, weight scale W_s, alpha = R / W_s)-->
      g_nom (per block of n_rows x n_cols, per array; clipped to [g_min, g_max])
      --[device levels, quantize only]--> --chip: g * pv factor, clipped--> g_chip
      --solver: g_eff(g_chip) (source, sense and wire resistances)-->
    W_eff = sum_a coef_a g_eff_a / alpha  (offset mapping: minus the g_mid reference)

Forward ``y = x @ W_eff`` (with ``quantize``: DAC, product, ADC as a tile of granularity
``layer``); backward ``dL/dx = delta @ W_eff.T`` (exact for the model); ``dL/dW`` follows the
chain ``W -> g_nom -> g_chip -> g_eff -> W_eff`` from ``dL/dW_eff = x.T @ delta``
(:meth:`AwareWeights.weight_gradient`). The circuit step ``dL/dg_eff -> dL/dg`` is one of
:data:`AWARE_GRADIENTS`:

* ``"exact"``: the adjoint method (:mod:`xbarsim.hardware.adjoint`), exact to round-off;
* ``"aam1"``: the derivative of the first-order analytical model
  ``g_eff ~ g * (1 - Z g)`` (docs/aware.md, 'Gradients'):
  ``dL/dg = Gamma * (1 - Z g) - Z(Gamma * g)``;
* ``"straight_through"``: ``dL/dg = dL/dg_eff``.

Quantisers (device levels, DAC, ADC) pass the gradient straight through; clipping of the
mapping and of the process variation passes none (the conductance does not move there).

The chip (the process-variation factors of every array) is drawn from the named streams the
crossbar :class:`~xbarsim.hardware.tile.Tile` uses for the same chip seed
(``xbarsim.rng.stream(chip_seed, "<layer>/block<r>.<c>/master<a>")``), so an aware layer and a
tile with equal ``hardware.variation.chip_seed`` sit on the same chip. A :class:`ChipSampler`
shared by all layers of a model holds the present chip seed and draws a new one every
``resample_every`` batches.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from xbarsim.config.schema import AWARE_GRADIENTS as _SCHEMA_GRADIENTS
from xbarsim.config.schema import AwareConfig, HardwareConfig
from xbarsim.errors import ConfigError
from xbarsim.hardware import schur, schur_factored
from xbarsim.hardware.adjoint import gradient_from_factors
from xbarsim.hardware.circuit import Parasitics
from xbarsim.hardware.device import Device
from xbarsim.hardware.mapping import MAPPINGS, TileBlock, tile_slices, weight_scale
from xbarsim.hardware.parallel import default_threads, over_batch, shared_pool
from xbarsim.hardware.solvers import CircuitSolver, FCMSolver

# the tile's own constructors of solvers and converters and its input-scale reduction, so
# that an aware layer is configured exactly like a crossbar tile (private to the package)
from xbarsim.hardware.tile import (
    ADC_STAT_NAMES,
    _abs_max_min,
    _adc,
    _dac,
    _plane_weights,
    _solver_for,
)
from xbarsim.kernels import adcstats, mvm
from xbarsim.kernels import fcm as fcm_kernels
from xbarsim.kernels.blas import one_blas_thread

FloatArray = NDArray[np.float64]

__all__ = ["AWARE_GRADIENTS", "AwareWeights", "ChipSampler", "FACTOR_BUDGET_BYTES",
           "aam1_gradient", "check_config", "find_chip_sampler"]

AWARE_GRADIENTS: tuple[str, ...] = ("exact", "aam1", "straight_through")
"""Circuit-gradient choices of ``train.aware.gradient`` (module notes)."""
assert AWARE_GRADIENTS == _SCHEMA_GRADIENTS  # the config literal lists exactly these

#: Largest total size of the elimination factors an aware layer keeps from its forward pass
#: for the exact gradient [bytes]; above it the gradient factorizes each array again (one more
#: exact solve per array and step, but only one array's factors in memory at a time).
FACTOR_BUDGET_BYTES = 3 << 30

#: Largest direct-solver work memory (``schur.plan(...).arena_size``) for which the arrays of
#: a layer are solved in parallel threads, one work memory per thread [bytes]; larger arrays
#: are solved one after the other, each on two threads (its two subtrees).
PARALLEL_ARENA_BYTES = 256 << 20

_COEFS = {"signed_split": (1.0, -1.0), "differential": (1.0, -1.0), "offset": (2.0,)}

#: Per-thread work memory of the direct solver, by array shape (see ``AwareWeights._arena``).
_ARENAS = threading.local()


def check_config(hw: HardwareConfig, aware: AwareConfig) -> list[str]:
    """Problems of a configuration for aware training (empty when it is usable).

    Each message names the key and how to fix it (the runner raises them as one
    :class:`~xbarsim.errors.ConfigError`).
    """
    problems = []
    if hw.mapping.slice_bits is not None:
        problems.append("hardware.mapping.slice_bits: bit slicing is not supported by "
                        "train.mode 'aware' (the sliced read path is piecewise constant in W); "
                        "set hardware.mapping.slice_bits to null")
    if aware.gradient == "exact" and hw.solver.method not in ("fcm", "nodal", "ideal"):
        problems.append(f"train.aware.gradient: 'exact' differentiates the exact circuit, but "
                        f"hardware.solver.method is {hw.solver.method!r}; set "
                        f"hardware.solver.method to 'fcm' or use gradient 'aam1' or "
                        f"'straight_through'")
    return problems


def aam1_gradient(g: FloatArray, parasitics: Parasitics, gamma: FloatArray) -> FloatArray:
    """``dL/dg`` of the first-order analytical model for ``dL/dg_eff = gamma``.

    AAM K = 1 (docs/physics.md, 'Approximate analytical model (AAM)'):
    ``g_eff ~ g * (1 - Z g)`` with ``(Z c)[i, j] = sum_l P_row[j, l] c[i, l] + sum_k P_col[i, k]
    c[k, j]`` (``P_row``, ``P_col`` the shared path resistances of the row and column,
    symmetric), so

        dL/dg = gamma * (1 - Z g) - Z (gamma * g)

    in two O(n_rows n_cols) sweeps (:func:`xbarsim.kernels.fcm.z_apply`). Exact for the model,
    approximate for the circuit (its error grows with the spectral radius of ``Z diag(g)``).

    Parameters
    ----------
    g : ndarray of shape (n_rows, n_cols)
        Device conductances [S].
    parasitics : Parasitics
        Of the same shape.
    gamma : ndarray of shape (n_rows, n_cols)
        ``dL/dg_eff``.
    """
    p = parasitics
    ones = np.ones(g.shape)
    return (gamma * (1.0 - fcm_kernels.z_apply(g, ones, p.r_source, p.r_sense, p.r_row, p.r_col))
            - fcm_kernels.z_apply(gamma, g, p.r_source, p.r_sense, p.r_row, p.r_col))


class ChipSampler:
    """The chip seen by every aware layer of a model, and its resampling schedule.

    Parameters
    ----------
    first_seed : int
        Chip seed of the first chip (``hardware.variation.chip_seed``).
    resample_every : int or None
        Draw a new chip after every this many training batches (:meth:`after_batch`);
        ``None`` = never.
    rng : numpy.random.Generator
        Stream the new chip seeds come from (``aware/chips`` of the run seed).

    Attributes
    ----------
    seed : int — present chip seed.
    version : int — incremented at every new chip (layers rebuild their chip on a change).
    n_batches : int — training batches seen.
    """

    def __init__(self, first_seed: int, resample_every: int | None,
                 rng: np.random.Generator) -> None:
        if resample_every is not None and resample_every < 1:
            raise ValueError(f"resample_every: expected an int >= 1 or None, got "
                             f"{resample_every!r}")
        self.seed = int(first_seed)
        self.resample_every = resample_every
        self.rng = rng
        self.version = 0
        self.n_batches = 0

    def after_batch(self) -> None:
        """Count a training batch; draw a fresh chip when ``resample_every`` batches are done."""
        self.n_batches += 1
        if self.resample_every is not None and self.n_batches % self.resample_every == 0:
            self.seed = int(self.rng.integers(1 << 62))
            self.version += 1

    def state(self) -> dict[str, FloatArray]:
        """``{"chip_seed", "chip_version", "chip_batches"}`` as int64 scalars (checkpoints)."""
        return {"chip_seed": np.array(self.seed, dtype=np.int64),
                "chip_version": np.array(self.version, dtype=np.int64),
                "chip_batches": np.array(self.n_batches, dtype=np.int64)}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state` (the stream's state is restored with the run's streams)."""
        self.seed = int(state["chip_seed"])
        self.version = int(state["chip_version"])
        self.n_batches = int(state["chip_batches"])

    def __repr__(self) -> str:
        return (f"ChipSampler(seed={self.seed}, resample_every={self.resample_every}, "
                f"version={self.version})")


def find_chip_sampler(backends: Iterable[Any]) -> ChipSampler | None:
    """Return the :class:`ChipSampler` shared by the aware backends among ``backends`` (or None)."""
    for b in backends:
        chips = getattr(b, "chips", None)
        if isinstance(chips, ChipSampler):
            return chips
    return None


@dataclass
class _Array:
    """One physical array of one block: its model state for the present weights and chip."""

    block: TileBlock
    index: int                       # polarity / array index of the mapping
    coef: float                      # signed shift-and-add coefficient (W units * alpha)
    parasitics: Parasitics
    solver: CircuitSolver | None     # configured solver (not used for the exact gradient)
    device: Device | None = None     # levels and this chip's process variation (None: neither)
    g_nom: FloatArray | None = None       # mapped conductances [S]
    g_chip: FloatArray | None = None      # after levels and process variation [S]
    g_eff: FloatArray | None = None
    factors: schur_factored.SchurFactors | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (self.block.rows.stop - self.block.rows.start,
                self.block.cols.stop - self.block.cols.start)


class AwareWeights:
    """Digital weights whose products go through a differentiable model of the hardware.

    Implements the weight-backend protocol of :mod:`xbarsim.nn.base` plus
    :meth:`weight_gradient` (``dL/dW`` through the hardware model, used by the layer instead of
    ``x.T @ delta``).

    Parameters
    ----------
    n_in, n_out : int
        Weight shape; ``W`` is tiled onto ``hw.crossbar.n_rows x n_cols`` arrays like a tile.
    hw : HardwareConfig
        Crossbar, device range and levels, mapping, weight scale, solver, variation and (with
        ``quantize``) the forward converters.
    aware : AwareConfig
        Gradient choice and quantisation switch (``resample_every`` lives in ``chips``).
    chips : ChipSampler
        The model's chip (shared by its layers).
    name : str
        Layer name (names the process-variation streams, as a tile does).
    w_init : ndarray of shape (n_in, n_out), optional
        Initial weights; ``w_scale`` is derived from them as by a tile (zeros: scale 1).
    rng : numpy.random.Generator, optional
        Sense-noise stream (``quantize`` with ``adc.sense_noise > 0``).

    Notes
    -----
    The arrays are solved in the threads of :func:`xbarsim.hardware.parallel.shared_pool`
    (one array per task; large arrays one after the other, each on two threads). With the
    exact gradient the forward pass of a training batch keeps every array's elimination
    factors (up to :data:`FACTOR_BUDGET_BYTES`) for :meth:`weight_gradient`.

    Raises
    ------
    ValueError
        A configuration :func:`check_config` rejects, or a bad ``w_init``.
    """

    native_outer_update = False

    def __init__(self, n_in: int, n_out: int, hw: HardwareConfig, aware: AwareConfig, *,
                 chips: ChipSampler, name: str = "aware", w_init: FloatArray | None = None,
                 rng: np.random.Generator | None = None) -> None:
        problems = check_config(hw, aware)
        if problems:
            raise ValueError("; ".join(problems))
        if n_in < 1 or n_out < 1:
            raise ValueError(f"shape: n_in and n_out must be >= 1, got ({n_in}, {n_out})")
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.hw, self.aware, self.chips, self.name = hw, aware, chips, name
        self.gradient = aware.gradient
        self.quantize = aware.quantize
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.g_min, self.g_max = 1.0 / hw.device.r_max, 1.0 / hw.device.r_min
        # exact g_eff by the direct solver: 'fcm' (either algorithm: the exact gradient needs
        # the direct factorization, and the iterative one agrees to its tolerance) or 'nodal'
        # with the exact gradient; 'fcm' direct otherwise
        s = hw.solver
        self._direct = (s.method in ("fcm", "nodal") and self.gradient == "exact") or (
            s.method == "fcm" and s.algorithm == "direct")
        self.mapping = MAPPINGS[hw.mapping.scheme](self.g_min, self.g_max)
        cb = hw.crossbar
        self.arrays: list[_Array] = []
        for blk in tile_slices(self.n_in, self.n_out, cb.n_rows, cb.n_cols):
            shape = (blk.rows.stop - blk.rows.start, blk.cols.stop - blk.cols.start)
            par = Parasitics.build(*shape, r_source=cb.r_source, r_sense=cb.r_sense,
                                   r_row=cb.r_row, r_col=cb.r_col)
            for a, coef in enumerate(_COEFS[self.mapping.name]):
                # the exact direct solver runs here (schur.g_eff / schur_factored.factorize on
                # shared work memory); other methods through their solver object, as in a tile
                solver = None
                if not self._direct:
                    solver = _solver_for(hw, par)
                self.arrays.append(_Array(blk, a, coef, par, solver))
        if self.gradient == "aam1" and hw.solver.method != "ideal":
            self._check_aam1(name)
        self._serial = (len(self.arrays) == 1 or 8 * max(
            schur.plan(*a.shape).arena_size for a in self.arrays) > PARALLEL_ARENA_BYTES)
        if self._serial:
            # arrays one after the other: each solve may use every thread
            for arr in self.arrays:
                if isinstance(arr.solver, FCMSolver):
                    arr.solver.n_threads = default_threads()
        self._dac = _dac(hw.forward)
        self._adc = _adc(hw.forward, bipolar=True)
        #: running ADC counters of the forward products (the backward pass is digital)
        self._adc_counts = np.zeros(adcstats.N_COUNTS, dtype=np.int64)
        #: let evaluation passes calibrate the ADC (deployment, see ``tile.calibrating_adcs``)
        self.calibrate_in_evaluation = False
        self._factor_bytes: int | None = None
        self._chip_version = -1
        self._w_version = 0
        self._cache_key: tuple[int, int, bool] | None = None
        self._w_eff: FloatArray | None = None
        self.n_solves = 0
        self.n_gradients = 0
        #: wall time spent in g_eff refreshes and in circuit gradients [s] (benchmarks)
        self.seconds = {"refresh": 0.0, "gradient": 0.0}
        self.w_scale = 1.0
        self.w = np.zeros((self.n_in, self.n_out))
        self.set_weights(self.w if w_init is None else w_init, rescale=w_init is not None)

    def _check_aam1(self, name: str) -> None:
        """Refuse ``gradient: aam1`` where its path expansion diverges (rho bound >= 1).

        The bound is taken with every device at ``g_max`` (the worst the weights can reach);
        beyond 1 the first-order model's gradient is wrong in sign (docs/aware.md).
        """
        worst, shape = 0.0, (0, 0)
        for arr in self.arrays:
            p = arr.parasitics
            g_full = np.full(arr.shape, self.g_max)
            rho = float(np.max(fcm_kernels.z_apply(g_full, np.ones(arr.shape), p.r_source,
                                                   p.r_sense, p.r_row, p.r_col)))
            if rho > worst:
                worst, shape = rho, arr.shape
        if worst >= 1.0:
            raise ConfigError([
                f"train.aware.gradient: 'aam1' differentiates a path expansion that diverges "
                f"on this hardware (layer {name!r}: rho bound {worst:.3g} >= 1 for its "
                f"{shape[0]} x {shape[1]} arrays at g_max; its gradient points the wrong way, "
                f"docs/aware.md); use 'exact' or 'straight_through', or hardware with a "
                f"smaller rho (smaller arrays, lower source / sense / wire resistance, less "
                f"conductive devices)"])

    # ------------------------------------------------------------------ weights
    @property
    def shape(self) -> tuple[int, int]:
        """``(n_in, n_out)``."""
        return self.n_in, self.n_out

    @property
    def alpha(self) -> float:
        """Conductance per weight unit ``(g_max - g_min) / w_scale`` [S]."""
        return self.mapping.alpha(self.w_scale)

    def get_weights(self) -> FloatArray:
        """Return the digital weights ``W`` (n_in, n_out) the optimiser updates (a copy)."""
        return self.w.copy()

    def set_weights(self, w: FloatArray, *, rescale: bool = True) -> None:
        """Set ``W`` (n_in, n_out); ``rescale`` derives ``w_scale`` from it as a tile does.

        ``w_scale = headroom * max|W|`` (or the configured percentile); weights beyond
        ``+-w_scale`` saturate in the mapping.
        """
        w = np.asarray(w, dtype=np.float64)
        if w.shape != self.shape:
            raise ValueError(f"w: expected shape {self.shape}, got {w.shape}")
        if not np.all(np.isfinite(w)):
            raise ValueError("w: weights must be finite")
        if rescale and np.any(w != 0):
            up = self.hw.update
            self.w_scale = up.headroom * weight_scale(w, up.scale, up.percentile)
        self.w = np.array(w, dtype=np.float64, order="C")
        self._w_version += 1

    def apply_step(self, dw: FloatArray) -> None:
        """``W += dw`` (exact, as in software mode)."""
        dw = np.asarray(dw, dtype=np.float64)
        if dw.shape != self.shape:
            raise ValueError(f"dw: expected shape {self.shape}, got {dw.shape}")
        self.w += dw
        self._w_version += 1

    def update(self, x: FloatArray, delta: FloatArray, lr: float) -> None:
        """Plain SGD step ``W -= lr * dL/dW`` with the gradient through the hardware model."""
        self.apply_step(-lr * self.weight_gradient(x, delta))

    # ------------------------------------------------------------------ the model
    def _devices(self) -> None:
        """(Re)build each array's device model for the present chip (levels, variation)."""
        var, dev = self.hw.variation, self.hw.device
        bits = dev.bits if self.quantize else None
        for arr in self.arrays:
            if var.sigma_pv == 0.0 and bits is None:
                arr.device = None
                continue
            b = arr.block
            arr.device = Device(g_min=self.g_min, g_max=self.g_max, bits=bits,
                                sigma_pv=var.sigma_pv, pv_distribution=var.distribution,
                                pv_seed=self.chips.seed,
                                pv_stream=f"{self.name}/block{b.tile_row}.{b.tile_col}/"
                                          f"master{arr.index}",
                                shape=arr.shape)
        self._chip_version = self.chips.version

    @staticmethod
    def _arena(shape: tuple[int, int]) -> FloatArray:
        """Return the calling thread's direct-solver work memory for ``shape``.

        Kept per thread and shape for the whole process and shared by every aware layer
        (a 4096 x 512 array needs 3.7 GB; one per layer would not fit).
        """
        arenas = getattr(_ARENAS, "by_shape", None)
        if arenas is None:
            arenas = _ARENAS.by_shape = {}
        arena = arenas.get(shape)
        if arena is None:
            arena = arenas[shape] = np.empty(schur.plan(*shape).arena_size)
        return arena

    def _solve(self, arr: _Array, keep: bool, run_parallel: Any = None) -> None:
        """``g_eff`` of one array (and its factors when ``keep``)."""
        assert arr.g_chip is not None
        previous, arr.factors = arr.factors, None
        if self.hw.solver.method == "ideal":
            arr.g_eff = arr.g_chip.copy()
        elif arr.solver is not None:
            arr.g_eff = arr.solver.g_eff(arr.g_chip)
        elif keep:
            arr.factors = schur_factored.factorize(arr.g_chip, arr.parasitics,
                                                   arena=self._arena(arr.shape),
                                                   run_parallel=run_parallel, reuse=previous)
            arr.g_eff = arr.factors.g_eff
        else:
            arr.g_eff = schur.g_eff(arr.g_chip, arr.parasitics, arena=self._arena(arr.shape),
                                    run_parallel=run_parallel)

    def factor_bytes(self) -> int:
        """Memory the exact gradient's factors of all arrays would take [bytes]."""
        if self._factor_bytes is not None:
            return self._factor_bytes
        total = 0
        for arr in self.arrays:
            pl = schur.plan(*arr.shape)
            size = schur_factored.step_factor_starts(pl)[1]
            for part in pl.parts:
                meta = schur_factored.level_factor_layout(pl, part.cell_row.size)
                if len(meta):
                    size += int(meta[-1, 0] + (meta[-1, 2] + meta[-1, 3]) * meta[-1, 2]
                                * meta[-1, 4])
            total += 8 * size
        self._factor_bytes = total
        return total

    def _for_arrays(self, task: Any) -> None:
        """Run ``task(arr, run_parallel)`` for every array: in threads or one after the other."""
        if self._serial:
            def run_parallel(tasks: list[Any]) -> None:
                for future in [shared_pool().submit(one_blas_thread(t)) for t in tasks]:
                    future.result()
            for arr in self.arrays:
                task(arr, run_parallel if arr.g_chip is not None and arr.g_chip.size >= 48 * 48
                     else None)
            return

        def run(k0: int, k1: int) -> None:
            for arr in self.arrays[k0:k1]:
                task(arr, None)

        work = sum(6 * a.shape[0] * a.shape[1] * max(a.shape) for a in self.arrays)
        over_batch(one_blas_thread(run), len(self.arrays), work)

    def _refresh(self, keep: bool) -> FloatArray:
        """``W_eff`` for the present weights and chip (cached; factors when ``keep``)."""
        exact = self.gradient == "exact" and self.hw.solver.method != "ideal"
        keep = keep and exact and self.factor_bytes() <= FACTOR_BUDGET_BYTES
        if self._chip_version != self.chips.version:
            self._devices()
        key = (self._w_version, self._chip_version, keep)
        if self._cache_key is not None and self._w_eff is not None and (
                self._cache_key == key or (self._cache_key[:2] == key[:2] and not keep)):
            return self._w_eff
        w_eff = np.zeros(self.shape)
        targets = np.empty(0)
        for arr in self.arrays:         # the arrays of a block are consecutive, index 0 first
            b = arr.block
            if arr.index == 0:
                targets = self.mapping.to_conductance(self.w[b.rows, b.cols], self.w_scale)
            arr.g_nom = targets[arr.index]
            g = arr.g_nom
            if arr.device is not None:
                g = arr.device.quantize(g) if arr.device.n_levels is not None else g
                g = arr.device.apply_process_variation(g)
            arr.g_chip = np.ascontiguousarray(g)
        t0 = time.perf_counter()
        self._for_arrays(lambda arr, rp: self._solve(arr, keep, rp))
        self.seconds["refresh"] += time.perf_counter() - t0
        self.n_solves += len(self.arrays)
        for arr in self.arrays:
            b = arr.block
            assert arr.g_eff is not None
            w_eff[b.rows, b.cols] += arr.coef * arr.g_eff
        if self.mapping.name == "offset":
            for arr in self.arrays:
                w_eff[arr.block.rows, arr.block.cols] -= 2.0 * self.mapping.g_mid
        w_eff /= self.alpha
        self._w_eff = w_eff
        self._cache_key = key
        return w_eff

    def effective_weights(self) -> FloatArray:
        """``W_eff`` (n_in, n_out): the matrix the modelled hardware computes (no converters)."""
        return self._refresh(False).copy()

    # ------------------------------------------------------------------ products
    def forward(self, x: FloatArray, *, calibrate: bool = True) -> FloatArray:
        """``x @ W_eff`` (through DAC and ADC with ``quantize``): (batch, n_in) -> (batch, n_out).

        ``calibrate`` (training passes) keeps the solver factors for :meth:`weight_gradient`
        and lets a calibrating ADC learn its range.
        """
        x = _check(x, self.n_in, "x")
        w_eff = self._refresh(calibrate)
        if not self.quantize:
            return x @ w_eff
        return self._quantized_product(x, w_eff, calibrate or self.calibrate_in_evaluation)

    def _quantized_product(self, x: FloatArray, w_eff: FloatArray, calibrate: bool
                           ) -> FloatArray:
        """Convert: DAC -> ``v @ (alpha W_eff)`` -> bipolar ADC on the layer output.

        As a tile with ``adc.granularity: layer`` (:meth:`xbarsim.hardware.tile.Tile._product`).
        """
        periphery = self.hw.forward
        dac = self._dac
        scale, x_min = _abs_max_min(x) if x.size else (0.0, 0.0)
        if scale == 0.0 or math.isnan(scale):
            return x @ w_eff if math.isnan(scale) else np.zeros((x.shape[0], self.n_out))
        signed = periphery.dac.signed if x_min < 0 else None
        input_bits = periphery.dac.input_bits
        if input_bits is None:
            input_bits = max(dac.bits or 52, 2 if signed else 1)
        if signed == "twos_complement" and dac.bits is None:
            signed = "two_pass"
        mode = {None: mvm.MODE_UNSIGNED, "two_pass": mvm.MODE_TWO_PASS,
                "twos_complement": mvm.MODE_TWOS_COMPLEMENT}[signed]
        weights = _plane_weights(input_bits, dac.bits, signed)
        v = np.empty(x.shape)
        over_batch(lambda b0, b1: mvm.dac_effective_into(
            x[b0:b1], scale, input_bits, dac.bits or 0, mode, *dac.transfer, dac.v_max,
            weights, v[b0:b1]), x.shape[0], x.size)
        i = v @ (w_eff * self.alpha)                                # (B, n_out) [A]
        noise = self.rng.standard_normal(i.shape) if self._adc.sense_noise > 0 else None
        adc = self._adc
        out = adc(i, noise, calibrate=calibrate)
        if adc.bits is not None and i.size:
            sensed = i if noise is None else i + adc.sense_noise * noise
            adcstats.count_conversions(sensed, np.array([0, i.shape[1]]),
                                       np.array([adc.i_max or 0.0]), adc.n_steps, True,
                                       self._adc_counts)
        return out * (scale / (dac.v_max * self.alpha))

    def adc_stats(self) -> dict[str, dict[str, int]]:
        """Return the running totals of the layer's ADC conversions (as :meth:`Tile.adc_stats`).

        Only ``"forward"``: an aware layer converts its forward products (one layer-wide
        bipolar ADC when ``train.aware.quantize`` is on); its backward pass is digital. Ideal
        ADCs and unquantized layers count nothing.
        """
        return {"forward": dict(zip(ADC_STAT_NAMES, (int(c) for c in self._adc_counts),
                                    strict=True))}

    def reset_adc_stats(self) -> None:
        """Set the counters of :meth:`adc_stats` to zero."""
        self._adc_counts[:] = 0

    def backward(self, delta: FloatArray, *, calibrate: bool = True) -> FloatArray:
        """``dL/dx = delta @ W_eff.T`` (B, n_out) -> (B, n_in), digital (exact for the model)."""
        delta = _check(delta, self.n_out, "delta")
        return delta @ self._refresh(False).T

    def weight_gradient(self, x: FloatArray, delta: FloatArray) -> FloatArray:
        """Compute ``dL/dW`` (n_in, n_out) through the hardware model.

        ``x`` (B, n_in) are the inputs and ``delta = dL/dy`` (B, n_out) the output errors of
        the last training forward.

        ``dL/dW_eff = x.T @ delta`` is carried back array by array: to ``dL/dg_eff`` (times
        ``coef / alpha``), through the circuit (``train.aware.gradient``), the process
        variation (its factor where not clipped) and the mapping (``dg/dW`` where not clipped).
        """
        x = _check(x, self.n_in, "x")
        delta = _check(delta, self.n_out, "delta")
        if x.shape[0] != delta.shape[0]:
            raise ValueError(f"x, delta: batch sizes differ ({x.shape[0]} and "
                             f"{delta.shape[0]})")
        self._refresh(True)
        t0 = time.perf_counter()
        gamma_w = x.T @ delta                                       # dL/dW_eff (n_in, n_out)
        grad = np.zeros(self.shape)
        inv_alpha = 1.0 / self.alpha
        parts: dict[int, FloatArray] = {}

        def circuit(arr: _Array, run_parallel: Any) -> None:
            b = arr.block
            gamma = (arr.coef * inv_alpha) * gamma_w[b.rows, b.cols]    # dL/dg_eff
            assert arr.g_chip is not None
            if self.hw.solver.method == "ideal" or self.gradient == "straight_through":
                dg = gamma
            elif self.gradient == "aam1":
                dg = aam1_gradient(arr.g_chip, arr.parasitics, gamma)
            else:
                factors = arr.factors
                if factors is None:       # not kept (memory budget): factorize again
                    factors = schur_factored.factorize(arr.g_chip, arr.parasitics,
                                                       arena=self._arena(arr.shape),
                                                       run_parallel=run_parallel)
                n_r, n_c = arr.shape
                if x.shape[0] <= min(n_r, n_c):       # rank-B factors of gamma
                    p_drive = x[:, b.rows].T
                    q_drive = (arr.coef * inv_alpha) * delta[:, b.cols].T
                elif n_r <= n_c:                      # unit row drives
                    p_drive, q_drive = np.eye(n_r), gamma.T
                else:                                 # unit column drives
                    p_drive, q_drive = gamma, np.eye(n_c)
                dg = gradient_from_factors(factors, p_drive, q_drive,
                                           n_threads=1 if run_parallel is None else None)
            parts[id(arr)] = dg

        self._for_arrays(circuit)
        self.n_gradients += 1
        alpha = self.alpha
        for arr in self.arrays:
            b = arr.block
            dg = parts[id(arr)]
            if arr.device is not None and arr.device.pv_factor is not None:
                # g_chip = clip(g * f, lo, hi): d g_chip / d g = f where not clipped
                assert arr.g_nom is not None
                dev = arr.device
                raw = (arr.device.quantize(arr.g_nom) if dev.n_levels is not None
                       else arr.g_nom) * dev.pv_factor
                lo = dev.g_min * (1.0 - 3.0 * dev.sigma_pv)
                hi = dev.g_max * (1.0 + 3.0 * dev.sigma_pv)
                dg = dg * np.where((raw > lo) & (raw < hi), dev.pv_factor, 0.0)
            grad[b.rows, b.cols] += dg * self._mapping_slope(arr, alpha)
        self.seconds["gradient"] += time.perf_counter() - t0
        return grad

    def _mapping_slope(self, arr: _Array, alpha: float) -> FloatArray:
        """``d g_nom / d W`` of one array [S per weight unit]: zero where the target is clipped."""
        w = self.w[arr.block.rows, arr.block.cols]
        name = self.mapping.name
        if name == "signed_split":
            # g+ = g_min + alpha max(W, 0), g- = g_min + alpha max(-W, 0), clipped at g_max
            mag = np.abs(w)
            inside = self.g_min + alpha * mag < self.g_max
            side = w > 0 if arr.index == 0 else w < 0
            return np.where(side & inside, alpha if arr.index == 0 else -alpha, 0.0)
        half = 0.5 * alpha
        target = self.mapping.g_mid + (half if arr.index == 0 else -half) * w
        inside = (target > self.g_min) & (target < self.g_max)
        return np.where(inside, half if arr.index == 0 else -half, 0.0)

    # ------------------------------------------------------------------ state
    def conductances(self) -> FloatArray:
        """Return the mapped conductances [S] (before levels and variation).

        Shape (n_blocks, n_arrays, n_rows, n_cols), padded with NaN, as ``Tile.conductances``.
        """
        cb = self.hw.crossbar
        n_arrays = len(_COEFS[self.mapping.name])
        n_blocks = len(self.arrays) // n_arrays
        out = np.full((n_blocks, n_arrays, cb.n_rows, cb.n_cols), np.nan)
        for k, arr in enumerate(self.arrays):
            b = arr.block
            g = self.mapping.to_conductance(self.w[b.rows, b.cols], self.w_scale)[arr.index]
            out[k // n_arrays, arr.index, :g.shape[0], :g.shape[1]] = g
        return out

    def solver_stats(self) -> dict[str, float]:
        """Exact solves (``g_eff`` refreshes of all arrays) and gradient computations."""
        return {"n_solves": float(self.n_solves), "n_calls": float(self.n_solves),
                "n_fallbacks": 0.0, "max_iter": 0.0, "n_gradients": float(self.n_gradients)}

    def state_dict(self) -> dict[str, FloatArray]:
        """Everything needed to resume: weights, weight scale, chip, ADC range."""
        a = self._adc
        return {"g": self.conductances(), "w": self.w.copy(),
                "w_scale": np.array(self.w_scale), **self.chips.state(),
                "adc_i_max": np.array([np.nan if a.i_max is None else a.i_max]),
                "adc_calibrating": np.array([a.calibrating]),
                "adc_n_calls": np.array([a.n_calibration_calls], dtype=np.int64)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` exactly (also the shared chip sampler's state)."""
        w = np.asarray(state["w"], dtype=np.float64)
        if w.shape != self.shape:
            raise ValueError(f"w: expected shape {self.shape}, got {w.shape}")
        self.w = np.array(w, order="C")
        self.w_scale = float(state["w_scale"])
        self._w_version += 1
        self.chips.load_state(state)
        i_max = float(np.asarray(state["adc_i_max"]).reshape(-1)[0])
        self._adc.i_max = None if math.isnan(i_max) else i_max
        self._adc.calibrating = bool(np.asarray(state["adc_calibrating"]).reshape(-1)[0])
        self._adc.n_calibration_calls = int(np.asarray(state["adc_n_calls"]).reshape(-1)[0])

    def __repr__(self) -> str:
        return (f"AwareWeights({self.n_in}x{self.n_out}, arrays={len(self.arrays)}, "
                f"mapping={self.mapping.name}, gradient={self.gradient!r}, "
                f"solver={self.hw.solver.method})")


def _check(x: Any, n: int, name: str) -> FloatArray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != n:
        raise ValueError(f"{name}: expected shape (batch, {n}), got {arr.shape}")
    return np.ascontiguousarray(arr)
