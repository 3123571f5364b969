r"""A layer's weights on crossbar hardware: DAC -> arrays -> ADC, tiling, and the analog update.

Forward (``y = x @ W``; docs/physics.md, 'Converters' and 'From weights to conductances')::

    x --(per-batch scale s = max|x|)--> u = x / s --stream--> bit-planes --DAC--> row volts V_p
    for every crossbar block and physical array a (polarity x slice):
        I_ap = V_p @ g_eff_a                        (one BLAS product for all planes)
        out += coef_a * sum_p w_p * ADC_a(I_ap)      (fused kernel, kernels.mvm)
    y = s * out / (v_read * alpha)                   alpha = (g_max - g_min) / W_s

Partial sums of blocks in the same tile column are added digitally after their ADCs
(``granularity="tile"``). With ``granularity="layer"`` the arrays' ``g_eff`` are stitched into
one effective layer matrix and the ADC acts once on the layer output (TxSim-like, faster).

Backward (``delta_in = delta @ W.T``): columns are driven with the backward DAC (signed errors
by two passes or two's complement), rows sensed with the backward ADC, through ``g_eff.T``
(reciprocity, see :mod:`xbarsim.hardware`).

Update: the requested weight step ``dW`` (``-lr x.T @ delta`` for plain SGD, or any optimizer
step) is split by the mapping into per-device conductance requests, which each device realises
with its non-linear, noisy update model (:class:`~xbarsim.hardware.device.Device`); the arrays'
``g_eff`` are then refreshed by their solvers on the next product. The write noise is drawn
inside the update kernel from Philox4x32-10 keyed on (the tile's ``update_key``, its
``update_step`` counter, array, device), one kernel call per tile and step, parallel over
devices for large tiles (:mod:`xbarsim.kernels.update`); devices whose request is zero (the
idle device of a signed-split pair) are skipped. Key and counter are part of
:meth:`Tile.state_dict`.

Bit slicing (``mapping.slice_bits``): the update acts on one analog master conductance per
weight and polarity (our choice: TxSim does not say how its updates reach its 2-bit devices;
docs/physics.md, 'From weights to conductances'); the read path quantises the master weights
to ``weight_bits`` and programs ``ceil(weight_bits / slice_bits)`` slice arrays of
``2**slice_bits``-level devices, recombined with shifts ``2**(k s)``.

Input scaling is digital and per batch (block floating point): ``u = x / max|x|``; the ADC
ranges are calibrated on the normalised currents (running max or percentile over the first
``calibration_batches`` conversions, then frozen).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
from numpy.typing import NDArray

from xbarsim.checks import InputTypeError, as_float_array
from xbarsim.config.schema import HardwareConfig, PeripheryConfig
from xbarsim.hardware import parallel
from xbarsim.hardware.circuit import Parasitics
from xbarsim.hardware.converters import ADC, DAC, stream_inputs
from xbarsim.hardware.crossbar import Crossbar
from xbarsim.hardware.device import Device
from xbarsim.hardware.mapping import (
    MAPPINGS,
    TileBlock,
    quantize_weights,
    slice_shifts,
    slice_to_conductance,
    slice_weights,
    tile_slices,
    weight_scale,
)
from xbarsim.hardware.parallel import over_batch
from xbarsim.hardware.solvers import CircuitSolver, g_eff_many, make_solver
from xbarsim.kernels import adcstats, mvm
from xbarsim.kernels import update as update_kernels
from xbarsim.kernels.blas import one_blas_thread

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]


def _solver_for(hw: HardwareConfig, parasitics: Parasitics) -> CircuitSolver:
    s = hw.solver
    if s.method == "fcm":
        # one thread per solve: a tile refreshes its arrays in parallel instead
        return make_solver("fcm", parasitics, algorithm=s.algorithm, rtol=s.rtol, n_threads=1)
    if s.method == "aam":
        return make_solver("aam", parasitics, order=s.aam_order, n_threads=1)
    if s.method == "interpolated":
        exact_opts: dict[str, Any] = ({"algorithm": s.algorithm, "rtol": s.rtol, "n_threads": 1}
                                      if s.refresh_method == "fcm"
                                      else {"order": s.aam_order, "n_threads": 1})
        return make_solver("interpolated", parasitics, refresh_every=s.refresh_every,
                           refresh_threshold=s.refresh_threshold, exact=s.refresh_method,
                           **exact_opts)
    return make_solver(s.method, parasitics)


def _dac(cfg: PeripheryConfig) -> DAC:
    d = cfg.dac
    return DAC(d.bits, d.v_read, nonlinearity=d.nonlinearity, bow=d.bow, lut=d.lut)


def _adc(cfg: PeripheryConfig, *, bipolar: bool = False) -> ADC:
    a = cfg.adc
    i_max = None if a.range == "calibrated" else float(a.range)
    return ADC(a.bits, i_max, nonlinearity=a.nonlinearity, bow=a.bow, tanh_beta=a.tanh_beta,
               lut=a.lut, sense_noise=a.sense_noise, bipolar=bipolar,
               calibration=a.calibration, percentile=a.percentile,
               calibration_window=a.calibration_batches)


def _plane_weights(input_bits: int, dac_bits: int | None, signed: str | None) -> FloatArray:
    """Shift-and-add weights of the DAC planes (exactly those of ``stream_inputs``)."""
    return stream_inputs(np.zeros(1), input_bits, dac_bits, signed).plane_weights


@dataclass
class _Stack:
    """Arrays driven by the same block of lines, as one concatenated product."""

    src: slice                 # driven lines (rows forward, columns backward)
    g_cat: FloatArray          # (n_driven, total width) [S]: g_eff (or g_eff.T) side by side
    seg_start: NDArray[np.int64]   # (n_seg + 1,) column offsets of the arrays in g_cat
    seg_dst: NDArray[np.int64]     # (n_seg,) first output line of each array
    seg_coef: FloatArray       # (n_seg,) signed shift-and-add coefficient
    adcs: list[ADC]


@dataclass
class _Block:
    """One crossbar-sized block: master arrays (update path) and read arrays (products)."""

    block: TileBlock
    masters: list[Crossbar]
    reads: list[Crossbar]
    coefs: FloatArray          # (n_read,) signed shift-and-add coefficient of each read array
    adc_fwd: list[ADC]
    adc_bwd: list[ADC]
    slices_stale: bool = True


#: Rows of currents (one bit-plane of one sample each) per product of a block of arrays that
#: the ADC statistics of per-array converters count (:meth:`Tile.adc_stats`), spread over the
#: bit-planes and the batch from a position that moves from call to call. The fused conversion
#: never holds the currents, so these rows are recomputed: 4 of the 2048 rows of a batch of
#: 128 with 16 bit-planes.
ADC_STATS_ROWS = 4

#: Rough serial cost of the bit-plane products with per-array converters [ns per flop] (about
#: 20 GFlop/s with their conversion on one core), to decide when a batch is split over threads.
PRODUCT_NS_PER_FLOP = 0.05

#: Largest drive voltages or bit-planes of one product pass [bytes]: a larger input (the
#: unfolded evaluation batch of a convolution: 784,000 rows x 25 for LeNet-5's first layer
#: at 1000 images) is converted in row chunks of at least :data:`PRODUCT_CHUNK_MIN_ROWS`
#: when that changes no result (see ``Tile._chunk_rows``).
PRODUCT_CHUNK_BYTES = 16 << 20

#: Fewest rows of a product chunk.
PRODUCT_CHUNK_MIN_ROWS = 1024

#: Names of the ADC counters (:mod:`xbarsim.kernels.adcstats`).
ADC_STAT_NAMES = ("conversions", "sensed", "clipped", "lost")


@dataclass
class _UpdatePlan:
    """What :meth:`Tile.apply_step` passes to the update kernels (fixed after construction).

    The master arrays are laid out flat, block after block and in each block array after
    array (the order of ``Tile.masters``); the counter index of an array is its position.
    """

    offsets: list[int]             # flat offset of each master array
    sizes: list[int]               # its number of devices
    arrays: NDArray[np.int64]      # (n_masters, 3): offset, size, counter index
    tasks: NDArray[np.int64]       # prange tasks of ``arrays`` (update_kernels.update_tasks)
    split_blocks: NDArray[np.int64]  # (n_blocks, 5) for the fused signed-split kernel
    split_tasks: NDArray[np.int64]   # (n_tasks, 3): block, first row, one-past-last row
    v: FloatArray                  # (n,) or (1,) non-linearity per device
    one_m_ev: FloatArray           # its 1 - exp(-v)
    step_gain: FloatArray          # (n,) device-to-device gain, or (0,)
    params: FloatArray             # the devices' shared kernel parameters
    model_code: int
    noisy: bool


def _abs_max_min(x: FloatArray) -> tuple[float, float]:
    """Compute :func:`xbarsim.kernels.mvm.abs_max_min` of a non-empty (B, n) array.

    Over row slices in threads; exact whatever the slicing (a maximum or minimum does not
    round), NaN as in the kernel.
    """
    parts = over_batch(lambda b0, b1: mvm.abs_max_min(x[b0:b1]), x.shape[0], x.size)
    tops, lows = zip(*parts, strict=True)
    if any(math.isnan(t) for t in tops):
        return math.nan, math.nan
    return max(tops), min(lows)


class Tile:
    """Weights ``W`` (n_in, n_out) of one layer held on simulated crossbars.

    Implements the weight-backend protocol of :mod:`xbarsim.nn.base` (``forward``,
    ``backward``, ``update``, ``apply_step``, ``get_weights``, ``set_weights``).

    Parameters
    ----------
    n_in, n_out : int
        Layer shape; ``W`` is tiled onto ``crossbar.n_rows x crossbar.n_cols`` arrays.
    hw : HardwareConfig
        Crossbar, device, periphery, mapping, solver and variation settings.
    rng : numpy.random.Generator
        This tile's own stream (device-to-device draws, write noise, sense noise).
    name : str
        Layer name, used to name the process-variation streams of its arrays.
    w_init : ndarray of shape (n_in, n_out), optional
        Initial weights, programmed at construction (zeros if omitted, with ``w_scale`` 1).

    Raises
    ------
    ValueError
        Impossible settings (naming the setting), or a bad ``w_init`` shape.
    """

    def __init__(self, n_in: int, n_out: int, hw: HardwareConfig, *,
                 rng: np.random.Generator, name: str = "tile",
                 w_init: FloatArray | None = None) -> None:
        if any(isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer))
               for n in (n_in, n_out)):
            raise InputTypeError(f"tile shape: n_in and n_out must be integers, got "
                                 f"({n_in!r}, {n_out!r})")
        if n_in < 1 or n_out < 1:
            raise ValueError(f"tile shape: n_in and n_out must be >= 1, got ({n_in}, {n_out})")
        self.n_in, self.n_out = int(n_in), int(n_out)
        self.hw = hw
        self.name = name
        self.rng = rng
        dev = hw.device
        self.g_min, self.g_max = 1.0 / dev.r_max, 1.0 / dev.r_min
        self.mapping = MAPPINGS[hw.mapping.scheme](self.g_min, self.g_max)
        self.slice_bits = hw.mapping.slice_bits
        self.weight_bits = hw.mapping.weight_bits
        if self.slice_bits is not None:
            if hw.mapping.scheme != "signed_split":
                raise ValueError(f"mapping.slice_bits: bit slicing is implemented for the "
                                 f"signed_split scheme, got scheme {hw.mapping.scheme!r}; set "
                                 f"mapping.slice_bits to null")
            if self.weight_bits is None:
                raise ValueError("mapping.weight_bits: bit slicing needs an integer weight "
                                 "precision, got null")
            self.n_slices = math.ceil(self.weight_bits / self.slice_bits)
        else:
            self.n_slices = 1
        self.dac_fwd, self.dac_bwd = _dac(hw.forward), _dac(hw.backward)
        self._adc_layer_fwd = _adc(hw.forward, bipolar=True)
        self._adc_layer_bwd = _adc(hw.backward, bipolar=True)
        self.w_scale = 1.0
        self._stacks: dict[str, tuple[tuple[int, ...], list[_Stack]]] = {}
        self._w_eff_cache: tuple[tuple[int, ...], FloatArray] | None = None
        #: products (of the layer matrix, or per array with frozen ranges) run in batch slices
        #: on the pool's threads (one BLAS thread each) when there is enough work; False: one
        #: call, BLAS's own threads (the results are the same bit for bit)
        self.split_products = True
        #: when True, evaluation passes (``calibrate=False``) calibrate too; set it only
        #: through :func:`calibrating_adcs` (calibration of a deployed network on training data)
        self.calibrate_in_evaluation = False
        #: ADC statistics per direction (True: forward), see :meth:`adc_stats`
        self._adc_counts = {True: np.zeros(adcstats.N_COUNTS, dtype=np.int64),
                            False: np.zeros(adcstats.N_COUNTS, dtype=np.int64)}
        self._stat_offset = 0
        self.blocks = [self._make_block(b) for b in
                       tile_slices(self.n_in, self.n_out, hw.crossbar.n_rows, hw.crossbar.n_cols)]
        #: master arrays (the update path), block after block: their flat layout and counter
        #: indices in the update kernels
        self.masters = [x for blk in self.blocks for x in blk.masters]
        #: 64-bit key of the write noise, drawn once from this tile's stream when the devices
        #: are noisy (0 otherwise: nothing is drawn, the stream is left as it was)
        self.update_key = (int(self.rng.integers(0, 2**64, dtype=np.uint64))
                           if self.masters[0].device.noisy else 0)
        #: number of :meth:`apply_step` calls so far: the step word of the noise counter
        self.update_step = 0
        self._update_plan: _UpdatePlan | None = None
        # the flat conductances the masters view after the last update, and their versions
        self._g_flat: FloatArray | None = None
        self._g_flat_versions: list[int] = []
        self.set_weights(np.zeros((self.n_in, self.n_out)) if w_init is None else w_init,
                         rescale=w_init is not None)

    # ------------------------------------------------------------------ construction
    def _device(self, shape: tuple[int, int], stream: str, bits: int | None) -> Device:
        dev, var = self.hw.device, self.hw.variation
        return Device(g_min=self.g_min, g_max=self.g_max, bits=bits,
                      update_model=dev.update_model, nl=dev.nl, nl_label=dev.nl_label,
                      gamma=dev.gamma, write_noise=dev.write_noise, sigma_c2c=dev.sigma_c2c,
                      sigma_d2d=dev.sigma_d2d, sigma_pv=var.sigma_pv,
                      pv_distribution=var.distribution, pv_seed=var.chip_seed,
                      pv_stream=stream, n_pulses_max=dev.n_pulses_max, shape=shape,
                      rng=self.rng)

    def _make_block(self, block: TileBlock) -> _Block:
        cb = self.hw.crossbar
        shape = (block.rows.stop - block.rows.start, block.cols.stop - block.cols.start)
        par = Parasitics.build(*shape, r_source=cb.r_source, r_sense=cb.r_sense,
                               r_row=cb.r_row, r_col=cb.r_col)
        tag = f"{self.name}/block{block.tile_row}.{block.tile_col}"
        n_arrays = self.mapping.n_arrays
        sliced = self.slice_bits is not None
        masters = [Crossbar(np.full(shape, self.g_min),
                            self._device(shape, f"{tag}/master{a}",
                                         None if sliced else self.hw.device.bits),
                            _solver_for(self.hw, par))
                   for a in range(n_arrays)]
        # combine() of every mapping is linear: coefficient +1 / -1 per polarity (offset: 2)
        base = {"signed_split": [1.0, -1.0], "differential": [1.0, -1.0], "offset": [2.0]}
        base_coef = base[self.mapping.name]
        if sliced:
            assert self.slice_bits is not None and self.weight_bits is not None
            k = self.slice_bits
            shifts = slice_shifts(k, self.n_slices) * ((1 << k) - 1) / ((1 << self.weight_bits) - 1)
            reads, coefs = [], []
            for a in range(n_arrays):
                for s in range(self.n_slices):
                    reads.append(Crossbar(np.full(shape, self.g_min),
                                          self._device(shape, f"{tag}/slice{a}.{s}", k),
                                          _solver_for(self.hw, par)))
                    coefs.append(base_coef[a] * shifts[s])
        else:
            reads, coefs = masters, list(base_coef)
        n_read = len(reads)
        return _Block(block, masters, reads, np.array(coefs),
                      [_adc(self.hw.forward) for _ in range(n_read)],
                      [_adc(self.hw.backward) for _ in range(n_read)])

    # ------------------------------------------------------------------ protocol
    @property
    def shape(self) -> tuple[int, int]:
        """``(n_in, n_out)``."""
        return self.n_in, self.n_out

    @property
    def alpha(self) -> float:
        """Conductance per weight unit ``(g_max - g_min) / w_scale`` [S]."""
        return self.mapping.alpha(self.w_scale)

    def set_weights(self, w: FloatArray, *, rescale: bool = True) -> None:
        """Program weights ``w`` (n_in, n_out); ``rescale`` recomputes ``w_scale`` from them.

        ``w_scale = headroom * max|W|`` (or the configured percentile): weights up to
        ``+-w_scale`` are representable, larger ones saturate at ``g_max``.
        """
        w = as_float_array("w", w, shape=self.shape)  # real, finite, (n_in, n_out)
        if rescale and np.any(w != 0):
            up = self.hw.update
            self.w_scale = up.headroom * weight_scale(w, up.scale, up.percentile)
        for blk in self.blocks:
            targets = self.mapping.to_conductance(w[blk.block.rows, blk.block.cols],
                                                  self.w_scale)
            for a, xbar in enumerate(blk.masters):
                xbar.program(targets[a])
            blk.slices_stale = True

    def get_weights(self) -> FloatArray:
        """Weights represented by the programmed (master) conductances, (n_in, n_out)."""
        w = np.empty(self.shape)
        for blk in self.blocks:
            g = np.stack([x.g for x in blk.masters])
            w[blk.block.rows, blk.block.cols] = self.mapping.to_weight(g, self.w_scale)
        return w

    def apply_step(self, dw: FloatArray) -> None:
        """Realise a requested weight step ``dw`` (n_in, n_out) through the devices.

        One kernel call for the whole tile (:mod:`xbarsim.kernels.update`; on Numba's threads
        from ``PARALLEL_MIN_DEVICES`` master devices): the mapping's requests, each device's
        update model and its write noise, drawn from Philox4x32-10 keyed on
        ``(update_key, update_step, array, device)``; then ``update_step`` advances. Devices
        with a zero request keep their conductance and draw nothing. The result does not
        depend on the number of threads.
        """
        dw = np.ascontiguousarray(dw, dtype=np.float64)
        if dw.shape != self.shape:
            raise ValueError(f"dw: expected shape {self.shape}, got {dw.shape}")
        if not np.all(np.isfinite(dw)):
            raise ValueError("dw: the requested weight step must be finite")
        plan = self._plan()
        g = self._master_flat()
        k0, k1 = self.update_key & 0xFFFFFFFF, self.update_key >> 32
        parallel = g.size >= update_kernels.PARALLEL_MIN_DEVICES and numba.get_num_threads() > 1
        if self.mapping.name == "signed_split":
            kernel = (update_kernels.signed_split_update_keyed if parallel
                      else update_kernels.signed_split_update_keyed_serial)
            g_new = kernel(
                plan.model_code, g, dw, self.alpha, plan.split_blocks, plan.split_tasks,
                plan.v, plan.one_m_ev, plan.step_gain, plan.params, k0, k1, self.update_step,
                plan.noisy)
        else:
            requests = np.empty_like(g)
            n_arrays = self.mapping.n_arrays
            for b, blk in enumerate(self.blocks):
                req = self.mapping.split_update_trusted(dw[blk.block.rows, blk.block.cols],
                                                        [x.g for x in blk.masters], self.w_scale)
                start = plan.offsets[b * n_arrays]
                requests[start:start + req.size] = req.reshape(-1)
            kernel = (update_kernels.apply_update_keyed if parallel
                      else update_kernels.apply_update_keyed_serial)
            g_new = kernel(
                plan.model_code, g, requests, plan.v, plan.one_m_ev, plan.step_gain,
                plan.params, k0, k1, self.update_step, plan.arrays, plan.tasks, plan.noisy)
        self.update_step += 1
        for x, off, size in zip(self.masters, plan.offsets, plan.sizes, strict=True):
            x.adopt(g_new[off:off + size].reshape(x.shape))
        for blk in self.blocks:
            blk.slices_stale = True
        self._g_flat = g_new
        self._g_flat_versions = [x.version for x in self.masters]

    def _master_flat(self) -> FloatArray:
        """Return the masters' conductances, flat in plan order.

        No copy when the masters view the last update's output and nothing changed them since.
        """
        if self._g_flat is not None and self._g_flat_versions == [x.version for x in self.masters]:
            return self._g_flat
        return np.concatenate([x.g.reshape(-1) for x in self.masters])

    def _plan(self) -> _UpdatePlan:
        """Build (once) the kernel inputs of :meth:`apply_step`."""
        if self._update_plan is not None:
            return self._update_plan
        devices = [x.device for x in self.masters]
        first = devices[0]
        for d in devices[1:]:
            if d.model_code != first.model_code or not np.array_equal(d.params, first.params) \
                    or d.noisy != first.noisy:
                raise AssertionError("the master arrays of a tile share one device model")
        sizes = [x.g.size for x in self.masters]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        arrays = np.stack([offsets[:-1], sizes, np.arange(len(sizes))], axis=1).astype(np.int64)
        per_device = [d.update_arrays(x.shape) for d, x in zip(devices, self.masters, strict=True)]
        if any(d.v_device is not None for d in devices):
            v = np.concatenate([p[0] for p in per_device])
            sat = np.concatenate([p[1] for p in per_device])
        else:
            v, sat = per_device[0][0], per_device[0][1]
        gain = (np.concatenate([p[2] for p in per_device])
                if any(d.step_gain is not None for d in devices) else np.empty(0))
        blocks, tasks = [], []
        if self.mapping.name == "signed_split":
            rows_per_task = max(1, update_kernels.TASK_DEVICES // self.hw.crossbar.n_cols)
            for b, blk in enumerate(self.blocks):
                n_rows, n_cols = blk.masters[0].shape
                blocks.append([blk.block.rows.start, blk.block.cols.start, n_rows, n_cols,
                               offsets[2 * b]])
                tasks += [[b, r, min(r + rows_per_task, n_rows)]
                          for r in range(0, n_rows, rows_per_task)]
        self._update_plan = _UpdatePlan(
            offsets=[int(o) for o in offsets[:-1]], sizes=sizes, arrays=arrays,
            tasks=update_kernels.update_tasks(arrays, update_kernels.TASK_DEVICES),
            split_blocks=np.array(blocks, dtype=np.int64).reshape(-1, 5),
            split_tasks=np.array(tasks, dtype=np.int64).reshape(-1, 3),
            v=v, one_m_ev=sat, step_gain=gain, params=first.params,
            model_code=first.model_code, noisy=first.noisy)
        return self._update_plan

    def update(self, x: FloatArray, delta: FloatArray, lr: float) -> None:
        """Plain-SGD outer-product update: ``dW = -lr * x.T @ delta``, realised by the devices."""
        self.apply_step(-lr * (np.asarray(x).T @ np.asarray(delta)))

    def forward(self, x: FloatArray, *, calibrate: bool = True) -> FloatArray:
        """``x @ W`` through DAC, arrays and ADC: (batch, n_in) -> (batch, n_out).

        Parameters
        ----------
        x : (batch, n_in) ndarray
        calibrate : bool, default True
            Training pass: ADCs still calibrating widen their ranges with this batch's currents
            first. ``False`` (evaluation) converts with the present ranges and changes no state,
            so evaluating never leaks test data into the ranges (unless
            :attr:`calibrate_in_evaluation` is set, see :func:`calibrating_adcs`).

        Raises
        ------
        RuntimeError
            ``calibrate=False`` while a calibrating ADC has never seen data (no range yet):
            train first, or calibrate on training data with :func:`calibrating_adcs`.
        """
        x = self._check(x, self.n_in, "x")
        return self._product(x, forward=True, calibrate=calibrate)

    def backward(self, delta: FloatArray, *, calibrate: bool = True) -> FloatArray:
        """``delta @ W.T`` via the backward DAC, ``g_eff.T`` and ADC: (B, n_out) -> (B, n_in).

        ``calibrate`` as in :meth:`forward` (backward passes belong to training).
        """
        delta = self._check(delta, self.n_out, "delta")
        return self._product(delta, forward=False, calibrate=calibrate)

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _check(x: Any, n: int, name: str) -> FloatArray:
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != n:
            raise ValueError(f"{name}: expected shape (batch, {n}), got {arr.shape}")
        return np.ascontiguousarray(arr)

    def _refresh_slices(self, blk: _Block) -> None:
        """Program the slice arrays from the master conductances (bit-sliced read path)."""
        assert self.slice_bits is not None and self.weight_bits is not None
        g = np.stack([x.g for x in blk.masters])
        mags = (g - self.g_min) / self.alpha                      # (n_arrays, rows, cols) >= 0
        k = 0
        for a in range(len(blk.masters)):
            q = quantize_weights(np.maximum(mags[a], 0.0), self.w_scale, self.weight_bits)
            digits = slice_weights(q, self.slice_bits, self.n_slices)   # (n_slices, rows, cols)
            targets = slice_to_conductance(digits, self.slice_bits, self.g_min, self.g_max)
            for s in range(self.n_slices):
                blk.reads[k].program(targets[s])
                k += 1
        blk.slices_stale = False

    def read_arrays(self, blk: _Block) -> list[Crossbar]:
        """The arrays used by products (slices refreshed from the masters when stale)."""
        if self.slice_bits is not None and blk.slices_stale:
            self._refresh_slices(blk)
        return blk.reads

    def effective_weights(self) -> FloatArray:
        """The layer matrix the hardware computes without converters: stitched ``g_eff`` / alpha.

        (n_in, n_out); equals :meth:`get_weights` for ideal arrays.
        """
        w = np.zeros(self.shape)
        for blk in self.blocks:
            acc = w[blk.block.rows, blk.block.cols]
            for coef, xbar in zip(blk.coefs, self.read_arrays(blk), strict=True):
                acc += coef * xbar.g_eff()
            if self.mapping.name == "offset":
                acc -= 2.0 * self.mapping.g_mid   # the reference column (docs/physics.md)
        return w / self.alpha

    def _product(self, x: FloatArray, *, forward: bool, calibrate: bool) -> FloatArray:
        periphery = self.hw.forward if forward else self.hw.backward
        dac = self.dac_fwd if forward else self.dac_bwd
        n_out = self.n_out if forward else self.n_in
        # the DAC kernels normalise on the fly: x / scale in [-1, 1]
        scale, x_min = _abs_max_min(x) if x.size else (0.0, 0.0)
        if scale == 0.0:
            return np.zeros((x.shape[0], n_out))
        signed = periphery.dac.signed if x_min < 0 else None
        input_bits = periphery.dac.input_bits
        if input_bits is None:        # no streaming: the DAC converts the input in one go
            input_bits = max(dac.bits or 52, 2 if signed else 1)
        if signed == "twos_complement" and dac.bits is None:
            signed = "two_pass"       # an ideal DAC has no bits to hold a two's complement
        mode = {None: mvm.MODE_UNSIGNED, "two_pass": mvm.MODE_TWO_PASS,
                "twos_complement": mvm.MODE_TWOS_COMPLEMENT}[signed]
        weights = _plane_weights(input_bits, dac.bits, signed)      # (P,)
        dac_args = (x, scale, input_bits, dac.bits or 0, mode, *dac.transfer, dac.v_max)
        self.refresh()
        calibrate = calibrate or self.calibrate_in_evaluation
        layer = periphery.adc.granularity == "layer"
        rows = self._chunk_rows(x.shape, len(weights), forward, calibrate)
        if rows >= x.shape[0]:
            out = self._convert_rows(x, dac_args, weights, forward, calibrate, layer)
        else:
            # a large input (a convolution's unfolded evaluation batch) in row chunks: the
            # drives and bit-planes of one chunk at a time, with the scale of the whole input;
            # every output row is computed as in one pass (no converter calibrates here)
            out = np.empty((x.shape[0], n_out))
            for r0 in range(0, x.shape[0], rows):
                part = x[r0:r0 + rows]
                out[r0:r0 + rows] = self._convert_rows(part, (part, *dac_args[1:]), weights,
                                                       forward, calibrate, layer)
        return out * (scale / (dac.v_max * self.alpha))

    def _chunk_rows(self, shape: tuple[int, ...], n_planes: int, forward: bool,
                    calibrate: bool) -> int:
        """Rows of the input converted at once (all of them unless chunking changes nothing).

        Chunks keep the drive voltages (granularity "layer") or bit-planes ("tile") of one
        pass under :data:`PRODUCT_CHUNK_BYTES`. Not while a converter of this direction still
        calibrates (it sees the whole batch's currents first), nor with per-array sense noise
        (drawn plane by plane over the whole batch).
        """
        periphery = self.hw.forward if forward else self.hw.backward
        layer = periphery.adc.granularity == "layer"
        per_row = 8 * shape[1] * (1 if layer else n_planes)
        rows = max(PRODUCT_CHUNK_MIN_ROWS, PRODUCT_CHUNK_BYTES // max(per_row, 1))
        if rows >= shape[0]:
            return shape[0]
        if layer:
            adcs = [self._adc_layer_fwd if forward else self._adc_layer_bwd]
        else:
            adcs = [a for blk in self.blocks for a in (blk.adc_fwd if forward else blk.adc_bwd)]
            if periphery.adc.sense_noise > 0:
                return shape[0]
        if calibrate and any(a.bits is not None and a.calibrating for a in adcs):
            return shape[0]
        return rows

    def _convert_rows(self, x: FloatArray, dac_args: tuple[Any, ...], weights: FloatArray,
                      forward: bool, calibrate: bool, layer: bool) -> FloatArray:
        """DAC, arrays and ADC of rows ``x`` (``dac_args`` as for the DAC kernels), unscaled."""
        if layer:
            # no ADC between the planes: the arrays see their weighted sum (B, n) [V]
            v = np.empty(x.shape)
            over_batch(lambda b0, b1: mvm.dac_effective_into(x[b0:b1], *dac_args[1:], weights,
                                                             v[b0:b1]), x.shape[0], x.size)
            return self._layer_product(v, forward, calibrate)
        return self._tile_product(mvm.dac_planes(*dac_args), weights, forward, calibrate)

    def refresh(self) -> None:
        """Recompute every stale ``g_eff`` (the exact solves batched, in parallel threads).

        Every product does this first; call it to pay for the refresh at a moment of your
        choosing (or to time it apart, as the benchmarks do). :func:`refresh_tiles` refreshes
        several tiles together (arrays of equal shape in one batch).
        """
        refresh_tiles([self])

    def _layer_product(self, v: FloatArray, forward: bool, calibrate: bool) -> FloatArray:
        """Stitched effective matrix, one product, one (bipolar) ADC on the layer output.

        ``v`` (B, n) [V] is the plane-weighted drive; the stitched matrix is cached until a
        conductance changes (forward and backward of a batch share it).
        """
        versions = self._versions()
        if self._w_eff_cache is None or self._w_eff_cache[0] != versions:
            self._w_eff_cache = (versions, self.effective_weights() * self.alpha)
        g_layer = self._w_eff_cache[1]                           # (n_in, n_out) [S]
        g_dir = g_layer if forward else g_layer.T
        i = np.empty((v.shape[0], g_dir.shape[1]))                # (B, n) [A]

        def product(b0: int, b1: int) -> None:
            np.matmul(v[b0:b1], g_dir, out=i[b0:b1])

        work = int(PRODUCT_NS_PER_FLOP * 2 * v.size * g_dir.shape[1])
        if self.split_products and parallel.splits(v.shape[0], work):
            # batch slices on the pool's threads with one BLAS thread each (bit-identical: a
            # row of a product does not depend on the others); a two-thread BLAS call
            # synchronises inside and stalls whenever another process holds a core
            parallel.over_batch(one_blas_thread(product), v.shape[0], work)
        else:
            product(0, v.shape[0])
        adc = self._adc_layer_fwd if forward else self._adc_layer_bwd
        noise = (self.rng.standard_normal(i.shape) if adc.sense_noise > 0 else None)
        out = adc(i, noise, calibrate=calibrate)
        if adc.bits is not None and i.size:
            sensed = i if noise is None else i + adc.sense_noise * noise
            adcstats.count_conversions(sensed, np.array([0, i.shape[1]]),
                                       np.array([adc.i_max or 0.0]), adc.n_steps, True,
                                       self._adc_counts[forward])
        return out

    def _versions(self) -> tuple[int, ...]:
        """Change counters of every read array (keys of the product caches)."""
        return tuple(x.version for blk in self.blocks for x in self.read_arrays(blk))

    def _stack(self, forward: bool) -> list[_Stack]:
        """Products grouped by driven line block: concatenated ``g_eff`` (cached by version)."""
        key = "fwd" if forward else "bwd"
        versions = self._versions()
        cached = self._stacks.get(key)
        if cached is not None and cached[0] == versions:
            return cached[1]
        groups: dict[int, list[tuple[_Block, int]]] = {}
        for blk in self.blocks:
            lead = blk.block.tile_row if forward else blk.block.tile_col
            for a in range(len(blk.reads)):
                groups.setdefault(lead, []).append((blk, a))
        stacks = []
        for members in groups.values():
            blk0 = members[0][0]
            src = blk0.block.rows if forward else blk0.block.cols
            mats, starts, dsts, coefs, adcs = [], [0], [], [], []
            for blk, a in members:
                g_eff = blk.reads[a].g_eff()
                mats.append(g_eff if forward else g_eff.T)
                starts.append(starts[-1] + mats[-1].shape[1])
                dsts.append((blk.block.cols if forward else blk.block.rows).start)
                coefs.append(blk.coefs[a])
                adcs.append((blk.adc_fwd if forward else blk.adc_bwd)[a])
            stacks.append(_Stack(src, np.ascontiguousarray(np.hstack(mats)),
                                 np.array(starts, dtype=np.int64),
                                 np.array(dsts, dtype=np.int64), np.array(coefs), adcs))
        self._stacks[key] = (versions, stacks)
        return stacks

    def _tile_product(self, volts: FloatArray, weights: FloatArray, forward: bool,
                      calibrate: bool) -> FloatArray:
        """Per-array products (one GEMM per driven block), per-array ADCs, digital partial sums."""
        n_planes, batch = volts.shape[:2]
        out = np.zeros((batch, self.n_out if forward else self.n_in))
        for st in self._stack(forward):
            adc0 = st.adcs[0]
            if adc0.bits is not None and any(a.calibrating for a in st.adcs) and calibrate:
                self._convert_calibrating(st, volts, weights, out, forward)
            else:
                if adc0.bits is not None and any(a.i_max is None for a in st.adcs):
                    raise RuntimeError(
                        f"{self.name}: an ADC has no range yet (never calibrated) and this is "
                        "an evaluation pass (calibrate=False); train first, or calibrate on "
                        "training data inside xbarsim.hardware.tile.calibrating_adcs(...)")
                self._convert_per_plane(st, volts, weights, out, forward)
            if self.mapping.name == "offset":
                # reference column of g_mid devices per block, computed digitally (docs/physics.md)
                ref = 2.0 * self.mapping.g_mid * (weights @ volts[:, :, st.src].sum(axis=2))
                for d0, s0, s1 in zip(st.seg_dst, st.seg_start[:-1], st.seg_start[1:], strict=True):
                    out[:, d0:d0 + s1 - s0] -= ref[:, None]
        return out

    def _convert_calibrating(self, st: _Stack, volts: FloatArray, weights: FloatArray,
                             out: FloatArray, forward: bool) -> None:
        """All planes in one GEMM; the ADC ranges first see this batch's largest currents."""
        n_planes, batch = volts.shape[:2]
        v = np.ascontiguousarray(volts[:, :, st.src]).reshape(n_planes * batch, -1)
        i = v @ st.g_cat                                          # (P*B, width) [A]
        adc0 = st.adcs[0]
        if adc0.sense_noise > 0:
            i += adc0.sense_noise * self.rng.standard_normal(i.shape)
        if adc0.calibration == "max":
            for a, stat in zip(st.adcs, mvm.segment_max(i, st.seg_start), strict=True):
                a.observe_max(stat)
        else:
            for s, a in enumerate(st.adcs):
                a.calibrate(i[:, st.seg_start[s]:st.seg_start[s + 1]])
        i_max = np.array([a.i_max or 0.0 for a in st.adcs])
        mvm.adc_shift_add_segments(i, n_planes, st.seg_start, st.seg_dst, st.seg_coef, i_max,
                                   weights, adc0.n_steps, *adc0.transfer, out)
        planes, rows = self._stat_rows(weights, batch)
        adcstats.count_conversions(i[planes * batch + rows], st.seg_start, i_max, adc0.n_steps,
                                   adc0.bipolar, self._adc_counts[forward])

    def _convert_per_plane(self, st: _Stack, volts: FloatArray, weights: FloatArray,
                           out: FloatArray, forward: bool) -> None:
        """Frozen ranges: one GEMM per bit-plane into a cache-sized buffer, converted at once.

        Same result as one stacked GEMM (sense noise is drawn plane by plane, in the same order
        as the stacked draw); the (batch, width) buffer stays in cache between the product and
        its conversion. Planes whose drives are all 0 V skip the product; without sense noise
        they skip the conversion too (it gives 0), with noise they are converted like any
        other (their ADCs still see the noise, whatever the other samples of the batch).
        """
        adc0 = st.adcs[0]
        i_max = np.array([a.i_max or 0.0 for a in st.adcs])
        v_src = np.ascontiguousarray(volts[:, :, st.src])        # (P, B, n_src) [V]
        kind, param, table_x, table_y = adc0.transfer
        if adc0.bits is not None:
            self._count_sampled(st, v_src, weights, i_max, forward)
        if adc0.sense_noise > 0:
            # noisy sensing: the noise is added between product and conversion, plane by plane
            buf = np.empty((volts.shape[1], st.g_cat.shape[1]))
            for p in range(volts.shape[0]):
                if weights[p] == 0.0:
                    continue
                if v_src[p].any():
                    np.matmul(v_src[p], st.g_cat, out=buf)           # (B, width) [A]
                else:
                    buf.fill(0.0)                                    # undriven plane: 0 A
                buf += adc0.sense_noise * self.rng.standard_normal(buf.shape)
                mvm.adc_shift_add_segments(buf, 1, st.seg_start, st.seg_dst, st.seg_coef,
                                           i_max, weights[p:p + 1], adc0.n_steps, kind, param,
                                           table_x, table_y, out)
            return
        adc = np.array([adc0.n_steps, kind, param])

        def convert(b0: int, b1: int) -> None:
            # a slice of the batch: its own rows of the drives and of the output (the rows
            # of a product and of its conversion do not depend on the other rows)
            mvm.planes_product_convert(np.ascontiguousarray(v_src[:, b0:b1]), st.g_cat,
                                       st.seg_start, st.seg_dst, st.seg_coef, i_max, weights,
                                       adc, table_x, table_y, out[b0:b1])

        batch = v_src.shape[1]
        work = int(PRODUCT_NS_PER_FLOP * 2 * v_src.size * st.g_cat.shape[1])
        if self.split_products and parallel.splits(batch, work):
            # batch slices in threads, one BLAS thread each: the small bit-plane products
            # (K = 64) gain little from a two-thread BLAS call each
            parallel.over_batch(one_blas_thread(convert), batch, work)
        else:
            convert(0, batch)

    def _stat_rows(self, weights: FloatArray, batch: int) -> tuple[NDArray[np.int64],
                                                                   NDArray[np.int64]]:
        """(bit-plane, sample) pairs whose currents the ADC statistics count in this call."""
        used = np.flatnonzero(weights)          # planes of weight 0 are not converted
        total = used.size * batch
        if total == 0:
            return used, used
        n = min(ADC_STATS_ROWS, total)
        self._stat_offset = (self._stat_offset + 7919) % total
        flat = (self._stat_offset + np.arange(n) * (total // n)) % total
        return used[flat // batch], flat % batch

    def _count_sampled(self, st: _Stack, v_src: FloatArray, weights: FloatArray,
                       i_max: FloatArray, forward: bool) -> None:
        """ADC statistics of a fused conversion: the currents of a few rows, recomputed.

        The fused kernel never holds the currents of a batch; those of
        :data:`ADC_STATS_ROWS` (plane, sample) rows are recomputed without sense noise.
        """
        planes, rows = self._stat_rows(weights, v_src.shape[1])
        v = v_src[planes, rows]                                   # (n, n_src) [V]
        adc0 = st.adcs[0]
        adcstats.count_products(v, st.g_cat, st.seg_start, i_max, adc0.n_steps, adc0.bipolar,
                                self._adc_counts[forward])

    def adc_stats(self) -> dict[str, dict[str, int]]:
        """Return the running totals of this tile's ADC conversions, per direction.

        Returns
        -------
        dict
            ``{"forward": {...}, "backward": {...}}``, each with the counters
            ``conversions``, ``sensed`` (non-zero current), ``clipped`` (beyond full scale, the
            output saturates) and ``lost`` (sensed but below half a code step: code 0), see
            :mod:`xbarsim.kernels.adcstats`. Ideal ADCs (``bits: null``) count nothing. With
            ``granularity: layer`` every conversion is counted; per-array converters count
            :data:`ADC_STATS_ROWS` rows of currents of every product (a sample; once ranges
            are frozen, recomputed without sense noise). Fractions (``clipped / sensed``)
            are what to look at: a range far too small clips nearly everything, one far too
            large loses nearly everything.
        """
        return {direction: dict(zip(ADC_STAT_NAMES, (int(c) for c in self._adc_counts[flag]),
                                    strict=True))
                for direction, flag in (("forward", True), ("backward", False))}

    def reset_adc_stats(self) -> None:
        """Set the counters of :meth:`adc_stats` to zero."""
        for counts in self._adc_counts.values():
            counts[:] = 0

    # ------------------------------------------------------------------ state
    def solver_stats(self) -> dict[str, float]:
        """Totals over the tile's arrays: exact solves, calls, fallbacks, max iterations."""
        solvers = [x.solver for blk in self.blocks for x in blk.reads]
        return {"n_solves": float(sum(s.stats.n_solves for s in solvers)),
                "n_calls": float(sum(s.stats.n_calls for s in solvers)),
                "n_fallbacks": float(sum(s.stats.n_fallbacks for s in solvers)),
                "max_iter": float(max((s.stats.n_iter for s in solvers), default=0))}

    def conductances(self) -> FloatArray:
        """Master conductances [S], shape (n_blocks, n_arrays, rows, cols) padded with NaN."""
        hw = self.hw.crossbar
        out = np.full((len(self.blocks), self.mapping.n_arrays, hw.n_rows, hw.n_cols), np.nan)
        for b, blk in enumerate(self.blocks):
            for a, x in enumerate(blk.masters):
                out[b, a, :x.shape[0], :x.shape[1]] = x.g
        return out

    def freeze_adcs(self) -> None:
        """End the range calibration of every ADC that has seen data (later ranges stay)."""
        for adc in self._adcs():
            if adc.bits is not None and adc.i_max is not None:
                adc.freeze()

    def _adcs(self) -> list[ADC]:
        """Every ADC of the tile, in a fixed order (state dicts)."""
        adcs = [a for blk in self.blocks for a in (*blk.adc_fwd, *blk.adc_bwd)]
        return adcs + [self._adc_layer_fwd, self._adc_layer_bwd]

    def state_dict(self) -> dict[str, FloatArray]:
        """Everything needed to resume.

        Conductances, weight scale, ADC ranges and counters, and the key and step counter of
        the write noise.
        """
        adcs = self._adcs()
        return {"g": self.conductances(), "w_scale": np.array(self.w_scale),
                "update_key": np.array(self.update_key, dtype=np.uint64),
                "update_step": np.array(self.update_step, dtype=np.uint64),
                "adc_i_max": np.array([np.nan if a.i_max is None else a.i_max for a in adcs]),
                "adc_calibrating": np.array([a.calibrating for a in adcs]),
                "adc_n_calls": np.array([a.n_calibration_calls for a in adcs], dtype=np.int64)}

    def load_state_dict(self, state: dict[str, FloatArray]) -> None:
        """Restore :meth:`state_dict` exactly (no device physics applied).

        States saved before the keyed write noise existed have no ``update_key`` and
        ``update_step``; the tile then keeps its own key and counts steps from 0.
        """
        self.w_scale = float(state["w_scale"])
        if "update_key" in state:
            self.update_key = int(np.asarray(state["update_key"], dtype=np.uint64))
        self.update_step = int(np.asarray(state.get("update_step", 0), dtype=np.uint64))
        g = state["g"]
        for b, blk in enumerate(self.blocks):
            for a, x in enumerate(blk.masters):
                x.set_state(g[b, a, :x.shape[0], :x.shape[1]])
            blk.slices_stale = True
        adcs = self._adcs()
        n_calls = state.get("adc_n_calls", np.zeros(len(adcs), dtype=np.int64))
        for a, i_max, cal, n in zip(adcs, state["adc_i_max"], state["adc_calibrating"], n_calls,
                                    strict=True):
            a.i_max = None if np.isnan(i_max) else float(i_max)
            a.calibrating = bool(cal)
            a.n_calibration_calls = int(n)

    def __repr__(self) -> str:
        return (f"Tile({self.n_in}x{self.n_out}, blocks={len(self.blocks)}, "
                f"mapping={self.mapping.name}, slices={self.n_slices}, "
                f"solver={self.hw.solver.method})")


def refresh_tiles(tiles: Iterable[Tile]) -> None:
    """Recompute every stale ``g_eff`` of ``tiles`` at once.

    The exact direct solves of all stale arrays (of every tile) are batched by shape and
    parasitics and split over threads (:func:`xbarsim.hardware.solvers.g_eff_many`); the
    results are those of refreshing array by array, bit for bit. A model refreshes its tiles
    together after an update with ``refresh_tiles(model_tiles)`` (otherwise each tile
    refreshes its own arrays at its next product).
    """
    stale = [x for tile in tiles for blk in tile.blocks for x in tile.read_arrays(blk)
             if x.stale]
    if not stale:
        return
    results = g_eff_many([x.solver for x in stale], [x.g for x in stale])
    for xbar, g_eff in zip(stale, results, strict=True):
        xbar.accept_g_eff(g_eff)


@contextmanager
def calibrating_adcs(tiles: Iterable[Tile]) -> Iterator[None]:
    """Let evaluation passes calibrate the ADCs of ``tiles`` inside the ``with`` block.

    For deploying a trained network on new hardware without training it: run forward passes
    of *training* batches in evaluation mode (no dropout, batch-norm running statistics)
    inside the block, then evaluate outside it, where ranges only change in training passes.
    Restores the previous setting on exit.
    """
    tiles = list(tiles)
    before = [t.calibrate_in_evaluation for t in tiles]
    for t in tiles:
        t.calibrate_in_evaluation = True
    try:
        yield
    finally:
        for t, flag in zip(tiles, before, strict=True):
            t.calibrate_in_evaluation = flag
