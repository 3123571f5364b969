"""Numba kernels: pure functions of arrays and scalars.

No config objects, no RNG (noise arrives as arrays), no I/O. Inputs are validated and made
contiguous float64 by the caller (the ``hardware`` layer). Options live in ``_jit``.
"""
