"""The single place for Numba options.

``cache=True`` keeps compiled kernels on disk (``NUMBA_CACHE_DIR`` when set); ``nogil=True``
lets the solvers run independent arrays or blocks of drives in Python threads; ``fastmath``
stays off so results are reproducible and comparable with the reference oracles.

``jit_parallel`` (``parallel=True``, loops over ``numba.prange``) is for kernels whose
iterations are independent and whose every output entry is computed by the same operations
whatever the number of threads (so results are bit-identical for any
``numba.set_num_threads``), and only for long loops: Numba's OpenMP-threaded loops measured
3-20x slower than serial ones on the shared 2-core machines whenever another process used the
cores, so most parallelism comes from threads over independent arrays instead
(:func:`xbarsim.hardware.parallel.shared_pool`). The device update
(:mod:`xbarsim.kernels.update`) is the user: one call per tile and step, with a serial twin for
small tiles. A parallel and a serial kernel must be compiled from differently named Python
functions: Numba's disk cache keys a function by name, first line and bytecode, not by its
options, so twins of one function would load each other's machine code. Waiting OpenMP threads
should sleep (:func:`xbarsim.runtime.tune_omp_wait`, which the CLI calls).
"""

from __future__ import annotations

import functools

import numba

jit = functools.partial(numba.njit, cache=True, error_model="numpy", nogil=True)

jit_parallel = functools.partial(numba.njit, cache=True, error_model="numpy", nogil=True,
                                 parallel=True)
