"""The single place for Numba options.

``cache=True`` keeps compiled kernels on disk (``NUMBA_CACHE_DIR`` when set); ``nogil=True``
lets the solvers run independent arrays or blocks of drives in Python threads; ``fastmath``
stays off so results are reproducible and comparable with the reference oracles.

There is deliberately no ``parallel=True`` variant: on the shared 2-core machines this project
targets, Numba's OpenMP-threaded loops measured 3-20x slower than serial ones whenever another
process used the cores; parallelism comes from threads over independent arrays instead
(:func:`xbarsim.hardware.parallel.shared_pool`).
"""

from __future__ import annotations

import functools

import numba

jit = functools.partial(numba.njit, cache=True, error_model="numpy", nogil=True)
