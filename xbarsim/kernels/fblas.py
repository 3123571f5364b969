"""A Fortran BLAS level-3 routine callable from Numba kernels: ``dgemm``.

Numba's ``np.dot`` inside a kernel allocates its result, needs contiguous operands and cannot
accumulate (``C <- alpha A B + beta C``), so a kernel that updates a block of a larger matrix
in place pays for copies in and out. The direct solver's merges (:mod:`xbarsim.kernels.schur`)
update sub-blocks of their work matrices in place; they call the BLAS that SciPy links (the
same library Numba's ``np.dot`` calls) through this declaration.

The routine is taken from :mod:`scipy.linalg.cython_blas` and registered with LLVM under the
name ``xbarsim_dgemm`` when this module is imported (before any kernel that calls it is
compiled or loaded from Numba's cache: cached code refers to it by name, not by
address, so caching stays valid across processes).

Every argument is a pointer (Fortran calling convention, 32-bit integers as in SciPy's LP64
BLAS); :func:`gemm` wraps it for kernels, column-major as BLAS sees memory.
A C-ordered ``(r, c)`` block with row stride ``ld`` is, to BLAS, the column-major ``(c, r)``
block with leading dimension ``ld``: the kernels state their products in that form.
"""

from __future__ import annotations

import llvmlite.binding as llvm
import numpy as np
from numba import types
from numba.extending import get_cython_function_address

from xbarsim.kernels._jit import jit

__all__ = ["gemm"]

_PTR = types.voidptr

llvm.add_symbol("xbarsim_dgemm", get_cython_function_address("scipy.linalg.cython_blas", "dgemm"))

# dgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
_dgemm = types.ExternalFunction("xbarsim_dgemm", types.void(*([_PTR] * 13)))
_N, _T = ord("N"), ord("T")


@jit
def gemm(trans_a, trans_b, m, n, k, alpha, a, a_off, lda, b, b_off, ldb, beta, c, c_off, ldc):
    """``C <- alpha op(A) op(B) + beta C`` on column-major blocks of flat float64 arrays.

    Parameters
    ----------
    trans_a, trans_b : bool — use the transpose of A / B.
    m, n, k : int — ``op(A)`` is ``m x k``, ``op(B)`` is ``k x n``, ``C`` is ``m x n``; a call
        with any of them 0 only scales C by beta (BLAS semantics), ``m`` or ``n`` 0 does nothing.
    alpha, beta : float
    a, b, c : 1-D float64 arrays (C-contiguous); the blocks start at ``a_off`` / ``b_off`` /
        ``c_off`` with leading dimensions ``lda`` / ``ldb`` / ``ldc`` (>= 1).
    """
    if m <= 0 or n <= 0:
        return
    ints = np.empty(6, dtype=np.int32)
    ints[0], ints[1], ints[2] = m, n, k
    ints[3], ints[4], ints[5] = max(lda, 1), max(ldb, 1), max(ldc, 1)
    flags = np.empty(2, dtype=np.uint8)
    flags[0] = _T if trans_a else _N
    flags[1] = _T if trans_b else _N
    scalars = np.empty(2)
    scalars[0], scalars[1] = alpha, beta
    _dgemm(flags[0:].ctypes, flags[1:].ctypes, ints[0:].ctypes, ints[1:].ctypes,
           ints[2:].ctypes, scalars[0:].ctypes, a[a_off:].ctypes, ints[3:].ctypes,
           b[b_off:].ctypes, ints[4:].ctypes, scalars[1:].ctypes, c[c_off:].ctypes,
           ints[5:].ctypes)
