"""The single place for Numba options.

``cache=True`` keeps compiled kernels on disk (``NUMBA_CACHE_DIR`` when set); ``fastmath`` stays
off so results are reproducible and comparable with the reference oracles.
"""

from __future__ import annotations

import functools

import numba

jit = functools.partial(numba.njit, cache=True, error_model="numpy")
jit_parallel = functools.partial(numba.njit, cache=True, error_model="numpy", parallel=True)
prange = numba.prange
