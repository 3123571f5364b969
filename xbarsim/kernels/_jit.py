"""The single place for Numba options.

``cache=True`` keeps compiled kernels on disk (``NUMBA_CACHE_DIR`` when set); ``nogil=True``
lets the solvers run independent blocks of drives in threads; ``fastmath`` stays off so results
are reproducible and comparable with the reference oracles.
"""

from __future__ import annotations

import functools

import numba

jit = functools.partial(numba.njit, cache=True, error_model="numpy", nogil=True)
jit_parallel = functools.partial(numba.njit, cache=True, error_model="numpy", nogil=True,
                                 parallel=True)
prange = numba.prange
