"""Effective-conductance solvers: one object per physical crossbar.

Each solver maps the conductances ``g`` (n_rows, n_cols) [S] of one crossbar to ``g_eff`` with
``i = v @ g_eff`` (forward) and, by reciprocity, ``i_back = d @ g_eff.T`` (backward; see
:mod:`xbarsim.hardware`). Solvers may keep state between calls (a warm start, a stored
distortion), so a Tile holds one solver per array.

========================  =======================================================  ==========
name                      what                                                     exact?
========================  =======================================================  ==========
``"ideal"``               ``g`` itself                                             no
``"nodal"``               sparse LU of the nodal system, refined (golden)          yes
``"fcm"``                 direct nested dissection (default), or Chebyshev / CG    yes /
                          iteration on the device voltages                         ``rtol``
``"aam"``                 path expansion of order K (docs/physics.md)              no (bound)
``InterpolatedSolver``    exact refresh every L calls, stored distortion between   no
========================  =======================================================  ==========
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from xbarsim.errors import ConvergenceError
from xbarsim.hardware import parallel, schur
from xbarsim.hardware.circuit import NodalSystem, Parasitics, check_conductance, flip
from xbarsim.hardware.parallel import default_threads, shared_pool
from xbarsim.kernels import aam as aam_kernels
from xbarsim.kernels import fcm as fcm_kernels
from xbarsim.kernels.blas import one_blas_thread

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]


@dataclass
class SolverStats:
    """Counters of one solver (reported in studies and stored in run files).

    Attributes
    ----------
    n_solves : int — exact solves performed.
    n_iter : int — iterations of the last iterative solve (0 for direct methods).
    residual : float — error bound of the last solve relative to max(g) (0 for direct).
    n_fallbacks : int — iterative solves that fell back to the direct solver.
    n_calls : int — calls of ``g_eff`` (interpolated solver: refreshes are ``n_solves``).
    """

    n_solves: int = 0
    n_iter: int = 0
    residual: float = 0.0
    n_fallbacks: int = 0
    n_calls: int = 0


class CircuitSolver(ABC):
    """Computes ``g_eff`` of one crossbar with fixed parasitics.

    Parameters
    ----------
    parasitics : Parasitics
        Terminal and wire resistances; their per-line vectors fix the crossbar shape.
    """

    name: ClassVar[str]
    exact: ClassVar[bool] = False

    def __init__(self, parasitics: Parasitics) -> None:
        self.parasitics = parasitics
        self.shape = (parasitics.r_source.size, parasitics.r_sense.size)
        self.stats = SolverStats()

    def _check(self, g: Any) -> FloatArray:
        g_arr = check_conductance(g)
        if g_arr.shape != self.shape:
            raise ValueError(f"g: expected shape {self.shape} (fixed by the parasitics), "
                             f"got {g_arr.shape}")
        return g_arr

    @abstractmethod
    def g_eff(self, g: FloatArray) -> FloatArray:
        """Effective conductance [S], shape (n_rows, n_cols), for conductances ``g`` [S]."""

    def reset(self) -> None:  # noqa: B027  (stateless solvers keep nothing to forget)
        """Forget any state kept between calls (warm starts, stored distortion)."""


class IdealSolver(CircuitSolver):
    """No parasitics: ``g_eff = g``."""

    name = "ideal"

    def g_eff(self, g: FloatArray) -> FloatArray:
        """Return a copy of ``g``."""
        self.stats.n_calls += 1
        return self._check(g).copy()


class NodalSolver(CircuitSolver):
    """Golden reference: the full nodal system, ``min(n_rows, n_cols)`` refined solves.

    Sparse LU with a nested-dissection ordering, iterative refinement on a double-double
    Kirchhoff residual (:class:`~xbarsim.hardware.circuit.NodalSystem`): every entry of
    ``g_eff`` to about one float64 rounding (docs/circuit.md). Refuses conductances whose
    product with the series resistance exceeds
    :data:`~xbarsim.hardware.circuit.NODAL_MAX_COUPLING` (use "fcm" there).
    """

    name = "nodal"
    exact = True

    def g_eff(self, g: FloatArray) -> FloatArray:
        """Exact ``g_eff`` [S] (direct solve, refined to float64 rounding)."""
        g_arr = self._check(g)
        self.stats.n_calls += 1
        self.stats.n_solves += 1
        return NodalSystem(g_arr, self.parasitics).g_eff()


def _cg_iterations(rho: float, rtol: float) -> int:
    """Iterations CG needs on a spectrum in [1, 1 + rho] to reduce the error by ``rtol``."""
    kappa = 1.0 + max(rho, 0.0)
    q = (math.sqrt(kappa) - 1.0) / (math.sqrt(kappa) + 1.0)
    if q <= 0.0:
        return 1
    return max(1, math.ceil(math.log(rtol / 2.0) / math.log(q)))


class FCMSolver(CircuitSolver):
    """Exact structured solver ("fast crossbar model"): direct, or iterative to a tolerance.

    Two algorithms compute the same ``g_eff``:

    * ``algorithm="direct"`` (default): sign-preserving nested dissection onto the terminals
      (:mod:`xbarsim.hardware.schur`). No iteration and no tolerance: every entry of ``g_eff``
      is exact to a small multiple of the unit round-off relative to itself, whatever the
      conductance range (the TxSim and the harsh regime cost the same). About 40 ``n^3``
      flops for ``n x n`` (64 x 64), three quarters of them in BLAS products. Keeps no state
      between calls (work memory is per thread, see :func:`xbarsim.hardware.schur.work_arena`).
    * ``algorithm="iterative"``: the device-voltage system ``(I + Z D) x_m = e_m 1^T``
      (docs/circuit.md, 'The device-voltage formulation') for every drive, on its symmetric
      form ``(I + S Z S) y = S e_m 1^T`` with ``S = sqrt(D)``; ``Z`` is applied with running
      sums along each line (O(n_rows n_cols) per drive and iteration, no matrix is formed).
      All drives are iterated together (contiguous in memory) in blocks that run in parallel
      threads. Two iterations are available:
      conjugate gradients (adaptive, about fourteen passes over the fields per iteration) and
      Chebyshev semi-iteration on an upper bound of the spectrum (one sweep per step, which
      also yields the exact residual of the step's input, but not adaptive); Chebyshev wins
      when the bound is small, as in the TxSim regime. The bound is the Collatz-Wielandt bound
      of :attr:`spectral_iterations` power iterates, a few per cent above the spectral radius.
      The matrix is symmetric positive definite with eigenvalues >= 1, so the error of ``y`` is
      at most the residual; the solver stops when this bound guarantees
      ``max |g_eff - g_eff_exact| <= rtol * max(g)``. It can start from the previous call's
      device voltages (warm start).

    Parameters
    ----------
    parasitics : Parasitics
    algorithm : {"direct", "iterative"}, default "direct"
        See above. The remaining parameters except ``n_threads`` apply to "iterative" only.
    rtol : float, default 1e-10
        Guaranteed error bound relative to ``max(g)`` ("iterative"; "direct" is exact to
        round-off, far below any admissible ``rtol``).
    max_iter : int, optional
        Iteration limit; default three times the a-priori estimate from the rho bound (+10).
    fallback : {"nodal", None}, default "nodal"
        What to do when ``max_iter`` is reached: solve directly (and log a warning), or raise
        :class:`~xbarsim.errors.ConvergenceError` stating iterations and residual.
    warm_start : bool, default True
        Start from the device voltages of the previous call (kept in memory: the solver holds
        two (Chebyshev) or four (CG) fields of ``8 * n_rows * n_cols * min(n_rows, n_cols)``
        bytes).
    n_threads : int, optional
        Threads; default ``NUMBA_NUM_THREADS`` or the CPU count. "direct" runs the root's two
        subtrees in two threads when ``n_threads >= 2`` and the array has at least
        :attr:`direct_parallel_min_cells` cells; "iterative" runs independent drive blocks in
        parallel.
    iteration : {"auto", "cg", "chebyshev"}, default "auto"
        "auto" takes Chebyshev when the array has at least :attr:`chebyshev_any_rho_cells`
        cells, or at least :attr:`chebyshev_min_cells` cells and a rho bound of at most
        :attr:`chebyshev_max_rho`, else conjugate gradients (crossover measured with
        ``benchmarks/bench_fcm_iteration.py``).
    """

    name = "fcm"
    exact = True
    #: "auto": fewest cells for Chebyshev. Measured in two runs (TxSim devices, one array on two
    #: threads): 1.8-3.2x faster than CG cold and 1.8-3.4x warm from 64 x 64 to 256 x 256,
    #: 2.1-2.3x for eight 64 x 64 arrays refreshed warm on two threads as a Tile does; at
    #: 32 x 32 0.85-0.9x cold but 1.35-1.6x warm, at 16 x 16 0.9-1.3x cold.
    chebyshev_min_cells: ClassVar[int] = 32 * 32
    #: "auto": largest rho bound for Chebyshev below :attr:`chebyshev_any_rho_cells` cells (the
    #: bound is not adaptive: in the harsh regime it takes 1.4-2.2x CG's iterations; measured
    #: 0.84-1.23x CG's speed cold at 32 x 32, 0.95-1.0x at 64 x 64, 1.4-1.9x at 128 x 128 and
    #: 256 x 256)
    chebyshev_max_rho: ClassVar[float] = 2.0
    #: "auto": from this many cells Chebyshev whatever the rho bound (see above)
    chebyshev_any_rho_cells: ClassVar[int] = 128 * 128
    #: Fewest drives per Chebyshev block (see ``_layout``), measured with one 64 x 64 sweep.
    chebyshev_min_drives: ClassVar[int] = 28
    #: Power iterates of the Collatz-Wielandt bound on the spectral radius
    #: (:func:`~xbarsim.kernels.fcm.spectral_bound`); four bring the TxSim bound from 25-35 %
    #: above the spectral radius to 2-7 %, one Chebyshev step fewer in eight to eighteen. A
    #: warm start takes the bound from the previous call's last iterate without iterating.
    spectral_iterations: ClassVar[int] = 4
    #: Fewest cells for which the direct algorithm runs the root's two subtrees in two threads.
    #: One TxSim-regime solve, two threads against one (one run): 3.2x slower at 16 x 16, 1.8x
    #: at 24 x 24, 1.6x at 32 x 32, even at 48 x 48, 0.74x at 64 x 64, 0.6x at 96-128.
    direct_parallel_min_cells: ClassVar[int] = 48 * 48

    def __init__(self, parasitics: Parasitics, *, algorithm: str = "direct",
                 rtol: float = 1e-10, max_iter: int | None = None,
                 fallback: str | None = "nodal", warm_start: bool = True,
                 n_threads: int | None = None, iteration: str = "auto") -> None:
        super().__init__(parasitics)
        if algorithm not in ("direct", "iterative"):
            raise ValueError(f"algorithm: expected 'direct' or 'iterative', got {algorithm!r}")
        self.algorithm = algorithm
        if not (0.0 < rtol < 1.0):
            raise ValueError(f"rtol: expected 0 < rtol < 1, got {rtol!r}")
        if fallback not in ("nodal", None):
            raise ValueError(f"fallback: expected 'nodal' or None, got {fallback!r}")
        if iteration not in ("auto", "cg", "chebyshev"):
            raise ValueError(f"iteration: expected 'auto', 'cg' or 'chebyshev', "
                             f"got {iteration!r}")
        self.iteration = iteration
        if max_iter is not None and max_iter < 1:
            raise ValueError(f"max_iter: expected an integer >= 1, got {max_iter!r}")
        self.rtol = rtol
        self.max_iter = max_iter
        self.fallback = fallback
        self.warm_start = warm_start
        self.n_threads = n_threads or default_threads()
        # orientation with fewer drives: the flipped circuit drives the columns (reciprocity)
        n_rows, n_cols = self.shape
        self._flip = n_cols < n_rows
        self._par = parasitics.flipped() if self._flip else parasitics
        self._blocks: list[tuple[int, int]] = []
        self._work: list[list[FloatArray]] = []
        self._layout_kind = ""                     # iteration the drive blocks are laid out for
        self._g_prev: FloatArray | None = None
        self._state_kind = ""                      # iteration that left the warm state
        self._perron: FloatArray | None = None     # last power iterate of the rho bound

    def reset(self) -> None:
        """Drop the warm-start state."""
        self._g_prev = None

    def _layout(self, n_rows: int, n_cols: int, kind: str) -> None:
        """Split the drives into blocks (one per thread) for iteration ``kind``."""
        n_drv = n_rows  # drives of the (possibly flipped) circuit
        mem_cap = (2 << 20) // max(1, n_rows * n_cols)   # ~16 MB per workspace array
        if kind == "chebyshev":
            # the sweep's drive loop is vectorised only from about 28 drives per block (3-4.5
            # ns per cell and drive below, 1.2-1.6 ns above): fewer, fuller blocks beat one per
            # thread (40 drives: one block 0.9-1.05 ms against two 1.6-2.2 ms), and large tiles
            # take 28-drive blocks over the memory cap (384 x 384: 1.5 s against 3.9 s)
            n_blocks = max(1, min(self.n_threads, n_drv // self.chebyshev_min_drives))
            n_blocks = max(n_blocks, math.ceil(n_drv / max(self.chebyshev_min_drives, mem_cap)))
            per_block = math.ceil(n_drv / n_blocks)
        else:
            # one block per thread under the memory cap, at least 8 drives
            per_block = max(min(math.ceil(n_drv / self.n_threads), mem_cap), min(n_drv, 8))
        self._blocks = [(d0, min(n_drv, d0 + per_block)) for d0 in range(0, n_drv, per_block)]
        # fields per block: two for Chebyshev, four for CG (allocated on first use)
        self._work = [[np.empty((n_rows, n_cols, d1 - d0)) for _ in range(2)]
                      for d0, d1 in self._blocks]
        self._layout_kind = kind
        self._g_prev = None

    def _choose_iteration(self, n_cells: int, rho: float) -> str:
        if self.iteration != "auto":
            return self.iteration
        if n_cells >= self.chebyshev_any_rho_cells or (
                n_cells >= self.chebyshev_min_cells and rho <= self.chebyshev_max_rho):
            return "chebyshev"
        return "cg"

    def g_eff(self, g: FloatArray, *, warm: bool | None = None) -> FloatArray:
        """``g_eff`` [S], exact ("direct") or to the guaranteed tolerance ("iterative").

        ``warm`` overrides ``warm_start`` (iterative only; the direct algorithm keeps no state).
        """
        g_arr = self._check(g)
        self.stats.n_calls += 1
        if self.algorithm == "direct":
            return self._g_eff_direct(g_arr)
        gs = flip(g_arr) if self._flip else g_arr
        n_rows, n_cols = gs.shape
        par = self._par
        s = np.sqrt(gs)
        col_norm = float(np.sqrt(gs.sum(axis=0)).max())
        g_max = float(gs.max())
        if g_max == 0.0:
            return np.zeros_like(g_arr)
        # |g_eff - exact| <= max_j |s_:j| * |r_m|   (eigenvalues >= 1)
        tol_res = self.rtol * g_max / col_norm
        use_warm = ((self.warm_start if warm is None else warm) and self._g_prev is not None)
        if not use_warm or self._perron is None:
            self._perron = np.ones_like(gs)
        rho = fcm_kernels.spectral_bound(gs, par.r_source, par.r_sense, par.r_row, par.r_col,
                                         self._perron, 0 if use_warm else self.spectral_iterations)
        max_iter = self.max_iter or 3 * _cg_iterations(rho, self.rtol) + 10
        kind = self._choose_iteration(gs.size, rho)
        use_warm = use_warm and self._state_kind == kind
        if self._layout_kind != kind:     # the shape is fixed by the parasitics
            self._layout(n_rows, n_cols, kind)
            use_warm = False
        ratio = s    # not read on a cold start
        if use_warm:
            assert self._g_prev is not None
            # keep the device voltages x = y / sqrt(g)
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(self._g_prev > 0, np.sqrt(gs / self._g_prev), 0.0)

        def run(k: int) -> tuple[int, float, FloatArray]:
            d0, d1 = self._blocks[k]
            work = self._work[k]
            if kind == "chebyshev":
                _, n_it, res, out, in_b = fcm_kernels.fcm_chebyshev(
                    s, d0, par.r_source, par.r_sense, par.r_row, par.r_col, rho, work[0],
                    work[1], use_warm, ratio, tol_res, max_iter)
                if in_b:    # keep the certified iterate first, for the next warm start
                    work[0], work[1] = work[1], work[0]
                return n_it, float(res.max()), out
            while len(work) < 4:
                work.append(np.empty_like(work[0]))
            y, r, p, ap = work
            if use_warm:
                y *= ratio[:, :, None]
                fcm_kernels.seed_unconnected(s, d0, y)
            else:
                fcm_kernels.ideal_guess(s, d0, y)
            tol = np.full(d1 - d0, tol_res)
            n_it, res_cg = fcm_kernels.fcm_cg(gs, y, d0, par.r_source, par.r_sense, par.r_row,
                                              par.r_col, tol, max_iter, r, p, ap)
            return n_it, float(res_cg.max()), fcm_kernels.collect_g_eff(s, y)

        if len(self._blocks) == 1 or self.n_threads == 1:
            results = [run(k) for k in range(len(self._blocks))]
        else:
            results = list(shared_pool().map(run, range(len(self._blocks))))
        n_iter = max(r[0] for r in results)
        residual = max(r[1] for r in results)
        self.stats.n_iter = n_iter
        self.stats.residual = residual * col_norm / g_max
        if residual > tol_res:
            self._g_prev = None
            msg = (f"FCM did not converge: error bound {residual * col_norm / g_max:.3e} "
                   f"> rtol {self.rtol:.1e} after {n_iter} iterations (shape {self.shape}, "
                   f"rho bound {rho:.3g})")
            if self.fallback is None:
                raise ConvergenceError(msg, n_iter=n_iter, residual=residual * col_norm / g_max)
            logger.warning("%s; falling back to the direct nodal solve", msg)
            self.stats.n_fallbacks += 1
            self.stats.n_solves += 1
            return NodalSystem(g_arr, self.parasitics).g_eff()
        self.stats.n_solves += 1
        self._g_prev = gs.copy()
        self._state_kind = kind
        out = np.concatenate([r[2] for r in results], axis=0)   # (n_drives, n_cols)
        return flip(out) if self._flip else out

    def _g_eff_direct(self, g: FloatArray) -> FloatArray:
        """Sign-preserving nested dissection (:func:`xbarsim.hardware.schur.g_eff`)."""
        run_parallel = None
        if self.n_threads >= 2 and g.size >= self.direct_parallel_min_cells:
            def run_parallel(tasks: list[Any]) -> None:
                # BLAS in the calling thread only: two solves x all-core BLAS oversubscribe
                for future in [shared_pool().submit(one_blas_thread(task)) for task in tasks]:
                    future.result()
        out = schur.g_eff(g, self.parasitics, run_parallel=run_parallel)
        self._record_direct()
        return out

    def _record_direct(self) -> None:
        """Count one direct solve (done here or, batched with other arrays, by the caller)."""
        self.stats.n_solves += 1
        self.stats.n_iter = 0
        self.stats.residual = 0.0


class AAMSolver(CircuitSolver):
    """TxSim's approximate analytical model as the path expansion of order K.

    Before expanding, the a-priori bound ``rho_hat >= rho(Z D)`` (max row sum) is computed:
    the series converges iff ``rho < 1`` with error ``O(rho^(K+1) / (1 - rho))``. A warning is
    issued when ``rho_hat >= 0.5``; ``rho_hat >= 1`` raises ``ValueError`` (use "fcm"). The
    model: docs/physics.md, 'Approximate analytical model (AAM)'.

    Parameters
    ----------
    parasitics : Parasitics
    order : int, default 2
        Number K of path terms beyond the direct one (0 = ideal, 1 = closed form).
    """

    name = "aam"

    def __init__(self, parasitics: Parasitics, *, order: int = 2, n_threads: int | None = None
                 ) -> None:
        super().__init__(parasitics)
        if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 0:
            raise ValueError(f"order: expected an integer >= 0, got {order!r}")
        self.order = int(order)
        self.n_threads = n_threads or default_threads()
        self.rho_bound = float("nan")

    def g_eff(self, g: FloatArray) -> FloatArray:
        """Approximate ``g_eff`` [S]; see the class notes for the error bound."""
        g_arr = self._check(g)
        self.stats.n_calls += 1
        par = self.parasitics
        rowsum = fcm_kernels.z_apply(g_arr, np.ones_like(g_arr), par.r_source, par.r_sense,
                                     par.r_row, par.r_col)
        self.rho_bound = rho = float(rowsum.max())
        if rho >= 1.0:
            raise ValueError(f"AAM cannot be used here: the path expansion diverges (rho bound "
                             f"{rho:.3g} >= 1; device conductances too high for the "
                             f"parasitics). Use method 'fcm' (exact) instead.")
        if rho >= 0.5:
            warnings.warn(f"AAM is inaccurate here: rho bound {rho:.3g} >= 0.5, the order-"
                          f"{self.order} error can reach {rho ** (self.order + 1) / (1 - rho):.2g}"
                          f" relative; consider method 'fcm'", stacklevel=2)
        self.stats.n_solves += 1
        if self.order == 0:
            return g_arr.copy()
        if self.order == 1:
            return g_arr * (1.0 - rowsum)
        n_rows = g_arr.shape[0]
        per_block = max(1, math.ceil(n_rows / self.n_threads))
        blocks = [(d0, min(n_rows, d0 + per_block)) for d0 in range(0, n_rows, per_block)]

        def run(block: tuple[int, int]) -> FloatArray:
            d0, d1 = block
            return aam_kernels.aam_series(g_arr, self.order, d0, d1 - d0, par.r_source,
                                          par.r_sense, par.r_row, par.r_col)

        if len(blocks) == 1:
            parts = [run(blocks[0])]
        else:
            parts = list(shared_pool().map(run, blocks))
        return np.concatenate(parts, axis=0)


class InterpolatedSolver(CircuitSolver):
    """TxSim's interpolated FCM: refresh exactly every L calls, interpolate in between.

    The scheme and its accuracy: docs/physics.md, 'Interpolated FCM'.

    At a refresh the distortion ``delta = (g - g_eff) / g`` is computed with the exact solver
    and stored; between refreshes ``g_eff = g * (1 - delta)`` for the current ``g``. Cells with
    ``g == 0`` keep the absolute difference of the last refresh.

    Parameters
    ----------
    parasitics : Parasitics
    refresh_every : int, default 10
        L: calls between exact refreshes (1 = always exact).
    refresh_threshold : float, optional
        Also refresh when ``|g - g_ref|_F / |g_ref|_F`` exceeds this (for an all-open
        ``g_ref = 0``: when ``g`` changed at all).
    exact : CircuitSolver or str, default "fcm"
        The solver used at refreshes (an instance, or a name from ``SOLVERS``).
    **options
        Passed to the exact solver when it is given by name.
    """

    name = "interpolated"

    def __init__(self, parasitics: Parasitics, *, refresh_every: int = 10,
                 refresh_threshold: float | None = None, exact: CircuitSolver | str = "fcm",
                 **options: Any) -> None:
        super().__init__(parasitics)
        if isinstance(refresh_every, bool) or not isinstance(refresh_every, (int, np.integer)) \
                or refresh_every < 1:
            raise ValueError(f"refresh_every: expected an integer >= 1, got {refresh_every!r}")
        if refresh_threshold is not None and not refresh_threshold > 0:
            raise ValueError(f"refresh_threshold: expected a number > 0 or None, "
                             f"got {refresh_threshold!r}")
        self.refresh_every = int(refresh_every)
        self.refresh_threshold = refresh_threshold
        if isinstance(exact, str):
            if exact not in SOLVERS or exact == "interpolated":
                raise ValueError(f"exact: expected one of fcm, nodal, aam, got {exact!r}")
            exact = SOLVERS[exact](parasitics, **options)
        self.exact_solver = exact
        self._g_ref: FloatArray | None = None
        self._delta: FloatArray | None = None
        self._keep: FloatArray | None = None       # 1 - delta, kept for the interpolation
        self._offset: FloatArray | None = None
        self._since_refresh = 0

    def reset(self) -> None:
        """Forget the stored distortion (the next call refreshes)."""
        self._g_ref = None
        self._delta = None
        self._keep = None
        self._offset = None
        self._since_refresh = 0
        self.exact_solver.reset()

    def needs_refresh(self, g: FloatArray) -> bool:
        """True when the next call with ``g`` will run the exact solver."""
        if self._g_ref is None or self._since_refresh >= self.refresh_every:
            return True
        if self.refresh_threshold is not None:
            num = float(np.linalg.norm(g - self._g_ref))
            den = float(np.linalg.norm(self._g_ref))
            # an all-open reference (g_ref = 0): any change is an infinite relative change,
            # no change is none (0 / 0 would refresh an unchanged array at every call)
            change = num / den if den > 0 else (math.inf if num > 0 else 0.0)
            return change > self.refresh_threshold
        return False

    def g_eff(self, g: FloatArray) -> FloatArray:
        """``g_eff`` [S]: exact at a refresh, ``g * (1 - delta)`` in between."""
        g_arr = self._check(g)
        self.stats.n_calls += 1
        if self.needs_refresh(g_arr):
            return self._store_refresh(g_arr, self.exact_solver.g_eff(g_arr))
        assert self._keep is not None and self._offset is not None
        self._since_refresh += 1
        out = np.multiply(g_arr, self._keep)
        out += self._offset
        return out


    def _store_refresh(self, g: FloatArray, g_eff: FloatArray) -> FloatArray:
        """Keep the distortion of an exact refresh (``g_eff`` exact for ``g``); return g_eff."""
        positive = g > 0
        self._delta = np.where(positive, (g - g_eff) / np.where(positive, g, 1.0), 0.0)
        self._keep = 1.0 - self._delta
        self._offset = np.where(positive, 0.0, g_eff)
        self._g_ref = g.copy()
        self._since_refresh = 1
        self.stats.n_solves += 1
        return g_eff


SOLVERS: dict[str, type[CircuitSolver]] = {
    "ideal": IdealSolver,
    "nodal": NodalSolver,
    "fcm": FCMSolver,
    "aam": AAMSolver,
    "interpolated": InterpolatedSolver,
}


def make_solver(method: str, parasitics: Parasitics, **options: Any) -> CircuitSolver:
    """Build the solver registered as ``method`` (see ``SOLVERS``)."""
    try:
        cls = SOLVERS[method]
    except KeyError:
        raise ValueError(f"method: expected one of {', '.join(SOLVERS)}, got {method!r}") from None
    return cls(parasitics, **options)


#: Rough serial cost of one direct ``g_eff`` per cell and per cell of the longer side [ns]
#: (about 1.2 ms for 64 x 64 on one core), to decide when batched solves are split over threads.
DIRECT_NS_PER_CELL = 5


def _direct_solver(solver: CircuitSolver, g: FloatArray) -> FCMSolver | None:
    """Return the direct FCM solver that ``solver.g_eff(g)`` would run now, or None."""
    if isinstance(solver, InterpolatedSolver):
        if not solver.needs_refresh(g):
            return None
        solver = solver.exact_solver
    if isinstance(solver, FCMSolver) and solver.algorithm == "direct":
        return solver
    return None


def g_eff_many(solvers: Sequence[CircuitSolver], gs: Sequence[FloatArray]) -> list[FloatArray]:
    """``[s.g_eff(g) for s, g in zip(solvers, gs)]`` with the exact direct solves batched.

    The direct FCM solves these calls run (an :class:`FCMSolver` with ``algorithm="direct"``,
    or the refresh of an :class:`InterpolatedSolver` whose exact solver is one) are grouped by
    shape and parasitics and solved together (:func:`xbarsim.hardware.schur.g_eff_batch`), the
    groups split over the threads of :func:`~xbarsim.hardware.parallel.shared_pool` with one
    BLAS thread each; every other call runs as it would alone. Results and solver states,
    statistics included, equal those of the loop bit for bit: the arithmetic of each array
    does not depend on the others.

    Parameters
    ----------
    solvers : sequence of CircuitSolver
    gs : sequence of ndarray
        Conductances [S] of each solver's array (shape fixed by its parasitics).

    Returns
    -------
    list of ndarray
        ``g_eff`` [S] of each array, in order.
    """
    if len(solvers) != len(gs):
        raise ValueError(f"g_eff_many: {len(solvers)} solvers but {len(gs)} conductance arrays")
    out: list[FloatArray | None] = [None] * len(solvers)
    checked: list[FloatArray] = [np.empty(0)] * len(solvers)   # the batched ones, checked
    groups: dict[tuple[Any, ...], list[int]] = {}
    for k, (solver, g_in) in enumerate(zip(solvers, gs, strict=True)):
        direct = _direct_solver(solver, np.asarray(g_in))
        if direct is None:
            out[k] = solver.g_eff(g_in)       # checks its input itself
            continue
        g = checked[k] = solver._check(g_in)
        par = direct.parasitics
        key = (g.shape, par.r_row, par.r_col, par.r_source.tobytes(), par.r_sense.tobytes())
        groups.setdefault(key, []).append(k)
    if sum(len(members) for members in groups.values()) == 1:   # one solve: its own threads
        (k,), = groups.values()
        groups = {}
        out[k] = solvers[k].g_eff(checked[k])
    chunks: list[list[int]] = []
    for members in groups.values():
        size = schur.group_size(*checked[members[0]].shape)
        chunks += [members[i:i + size] for i in range(0, len(members), size)]

    def cost(chunk: list[int]) -> int:
        return sum(DIRECT_NS_PER_CELL * checked[k].size * max(checked[k].shape) for k in chunk)

    # dearest first, dealt alternately to the two halves that over_batch hands out
    chunks.sort(key=cost, reverse=True)
    chunks = chunks[0::2] + chunks[1::2]
    solved: list[list[FloatArray]] = [[] for _ in chunks]

    def run(c0: int, c1: int) -> None:
        for c in range(c0, c1):
            chunk = chunks[c]
            direct = _direct_solver(solvers[chunk[0]], checked[chunk[0]])
            assert direct is not None
            solved[c] = list(schur.g_eff_batch(np.stack([checked[k] for k in chunk]),
                                               direct.parasitics))

    work = sum(cost(chunk) for chunk in chunks)
    if parallel.splits(len(chunks), work):
        parallel.over_batch(one_blas_thread(run), len(chunks), work)
    else:
        run(0, len(chunks))
    for chunk, results in zip(chunks, solved, strict=True):
        for k, g_eff in zip(chunk, results, strict=True):
            solver = solvers[k]
            solver.stats.n_calls += 1
            if isinstance(solver, InterpolatedSolver):
                exact = solver.exact_solver
                exact.stats.n_calls += 1
                assert isinstance(exact, FCMSolver)
                exact._record_direct()
                out[k] = solver._store_refresh(checked[k], g_eff)
            else:
                assert isinstance(solver, FCMSolver)
                solver._record_direct()
                out[k] = g_eff
    return out  # type: ignore[return-value]


def _line_key(value: Any) -> tuple[Any, ...] | None:
    """Return a hashable key for a scalar or per-line resistance (None: it has none)."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return ("scalar", float(value))
    if isinstance(value, np.ndarray) and value.dtype.kind in "fiu" and value.ndim == 1:
        return ("vector", value.dtype.str, value.tobytes())
    return None


@functools.lru_cache(maxsize=64)
def _cached_parasitics(n_rows: int, n_cols: int, *keys: Any) -> Parasitics:
    """Parasitics built from hashable keys (see :func:`parasitics_for`); arrays read-only."""
    def value(key: tuple[Any, ...]) -> Any:
        if key[0] == "scalar":
            return key[1]
        return np.frombuffer(key[2], dtype=np.dtype(key[1]))

    r_source, r_sense, r_row, r_col = (value(k) for k in keys)
    par = Parasitics.build(n_rows, n_cols, r_source=r_source, r_sense=r_sense, r_row=r_row,
                           r_col=r_col)
    par.r_source.flags.writeable = False
    par.r_sense.flags.writeable = False
    return par


def parasitics_for(shape: tuple[int, int], r_source: Any = 0.0, r_sense: Any = 0.0,
                   r_row: Any = 0.0, r_col: Any = 0.0) -> Parasitics:
    """Return the validated, expanded parasitics of a crossbar shape, cached across calls.

    The public one-array functions (:func:`xbarsim.effective_conductance`) call this on every
    call: the parasitics of a shape are validated and expanded once and kept (a
    least-recently-used cache of 64 entries keyed on the shape and the values; thread-safe,
    its arrays read-only). Inputs that cannot be keyed (lists, other types) are built each
    time, with the same checks and errors.
    """
    keys = tuple(_line_key(v) for v in (r_source, r_sense, r_row, r_col))
    if any(k is None for k in keys):
        return Parasitics.build(*shape, r_source=r_source, r_sense=r_sense, r_row=r_row,
                                r_col=r_col)
    return _cached_parasitics(int(shape[0]), int(shape[1]), *keys)
