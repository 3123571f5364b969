"""Numba kernels: pure functions of arrays and scalars.

No config objects, no RNG state (noise arrives as arrays, or is drawn from the counter-based
generator of ``philox``: a pure function of an explicit key and counter), no I/O. Inputs are
validated and made contiguous float64 by the caller (the ``hardware`` layer). Options live in
``_jit``.
"""
