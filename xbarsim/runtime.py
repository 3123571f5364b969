"""Process-wide settings that applications (the CLI, the benchmarks) opt into.

Nothing here runs on import: the library never changes process state by itself.

Memory allocator
----------------
A training step allocates tens to hundreds of MB of temporaries (im2col rows, DAC voltages,
products), frees them and allocates them again in the next step. glibc's ``malloc`` hands such
blocks back to the kernel -- above its ``mmap`` threshold (128 kB, rising to at most 32 MiB) at
once, below it when the free top of the heap exceeds the trim threshold -- so every step faults
the same pages in again, 4 kB at a time for arrays Numba allocates (NumPy's own large arrays
ask for huge pages). On the 2-core VMs this project runs on one fault costs about 3.6 us:
LeNet-5 Cross-NI took 10-11 thousand faults (about 40 ms) per training step, and evaluating
1000 test images at once about 150 thousand. :func:`tune_allocator` serves every block from the
heap and keeps up to ``trim_threshold`` of free heap: a training step then takes a few hundred
faults and an evaluation batch none (``benchmarks/bench_train.py`` has the step times). Peak
memory is unchanged (788 against 813 MB for that evaluation); what the process once had is
kept until exit instead of being returned to the OS.

Idle BLAS threads
-----------------
After a threaded product OpenBLAS keeps its worker threads spinning for ``2**28`` CPU cycles
(about 0.1 s) before they sleep. xbarsim's own threads -- the arrays of a tile refreshed in
parallel, the halves of a direct solve -- start right after such products (the weight
gradient, the update) and then share the two cores with a spinning worker: the 124 exact
64 x 64 refreshes of an MLP 784-256-128-10 Cross-NI step took 130 ms instead of 93 ms.
:func:`tune_blas_idle` sets ``OPENBLAS_THREAD_TIMEOUT`` so that the workers sleep after
``2**20`` cycles (a fraction of a millisecond), long enough to stay awake between the
products of one layer. OpenBLAS reads the variable once, when NumPy or SciPy first loads it,
so it must run before NumPy is imported. ``benchmarks/bench_blas_idle.py`` measures both
settings side by side.

Waiting OpenMP threads
----------------------
Numba's parallel kernels (the device update of large tiles) run on GNU OpenMP threads, which
by default spin at the end of a parallel region while they wait for the others. When another
process holds one of the two cores, the thread that finished first spins for as long as the
other one waits for the CPU: the update of the MLP's 784x256 tile took 16 ms of wall and 8 ms
of CPU time on two threads against 8 and 4 ms on one. :func:`tune_omp_wait` sets
``OMP_WAIT_POLICY=passive`` (waiting threads sleep): the same update then took 8 ms of wall
and 4.2 ms of CPU time on two threads, the work split evenly. OpenMP reads the variable when
Numba first starts its threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

__all__ = ["ALLOCATOR_ENV", "BLAS_IDLE_WAIT_LOG2", "BLAS_TIMEOUT_ENV", "OMP_WAIT_ENV",
           "tune_allocator", "tune_blas_idle", "tune_omp_wait"]

logger = logging.getLogger(__name__)

#: Set this environment variable to ``0`` to leave the allocator alone.
ALLOCATOR_ENV = "XBARSIM_TUNE_MALLOC"

#: OpenBLAS's idle wait of its worker threads, log2 of CPU cycles (clamped to 4..30; default 28).
BLAS_TIMEOUT_ENV = "OPENBLAS_THREAD_TIMEOUT"

#: OpenMP's wait policy of idle threads (``active``: spin, ``passive``: sleep).
OMP_WAIT_ENV = "OMP_WAIT_POLICY"

#: The idle wait :func:`tune_blas_idle` sets by default (log2 of CPU cycles).
BLAS_IDLE_WAIT_LOG2 = 20

# glibc's mallopt parameter codes (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4

_MIB = 1 << 20


def tune_allocator(*, trim_threshold: int = 1024 * _MIB, mmap_threshold: int | None = None
                   ) -> bool:
    """Keep freed large blocks in the heap (glibc only; a no-op elsewhere).

    Parameters
    ----------
    trim_threshold : int
        Free memory at the top of the heap [B] kept before it is returned to the OS.
    mmap_threshold : int, optional
        ``None`` (default): no block is served by ``mmap``, so none is returned on ``free``.
        Else allocations of at least this many bytes [B] are (glibc accepts at most 32 MiB
        on 64-bit systems); blocks above it then fault in again at every allocation.

    Returns
    -------
    bool
        Whether every setting took effect (False on non-glibc systems or when the environment
        variable ``XBARSIM_TUNE_MALLOC`` is ``0``).
    """
    if trim_threshold < 0 or (mmap_threshold is not None and mmap_threshold < 0):
        raise ValueError(f"trim_threshold, mmap_threshold: expected sizes >= 0 bytes, got "
                         f"{trim_threshold!r}, {mmap_threshold!r}")
    if os.environ.get(ALLOCATOR_ENV, "1").strip() == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    if not hasattr(libc, "gnu_get_libc_version"):    # musl's mallopt does nothing
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success; 0 e.g. for an mmap threshold above glibc's limit
    if mmap_threshold is None:
        ok_mmap = mallopt(_M_MMAP_MAX, 0) == 1
    else:
        ok_mmap = mallopt(_M_MMAP_THRESHOLD, min(mmap_threshold, 2**31 - 1)) == 1
    ok_trim = mallopt(_M_TRIM_THRESHOLD, min(trim_threshold, 2**31 - 1)) == 1
    ok = ok_mmap and ok_trim
    logger.debug("glibc malloc tuned: mmap %s, trim threshold %d B (%s)",
                 "off" if mmap_threshold is None else f"from {mmap_threshold} B",
                 trim_threshold, "ok" if ok else "refused")
    return ok


def tune_blas_idle(timeout_log2: int = BLAS_IDLE_WAIT_LOG2) -> bool:
    """Let idle OpenBLAS worker threads sleep after ``2**timeout_log2`` CPU cycles.

    Sets ``OPENBLAS_THREAD_TIMEOUT`` for OpenBLAS to read when it loads (see the module notes).

    Parameters
    ----------
    timeout_log2 : int
        log2 of the idle wait [CPU cycles], 4 to 30 (OpenBLAS's default is 28).

    Returns
    -------
    bool
        Whether OpenBLAS will use it: False when the environment already sets the variable
        (that value is kept, so ``OPENBLAS_THREAD_TIMEOUT=28`` restores OpenBLAS's default)
        or when NumPy or SciPy is already imported (OpenBLAS has read its setting).
    """
    if isinstance(timeout_log2, bool) or not isinstance(timeout_log2, int) \
            or not 4 <= timeout_log2 <= 30:
        raise ValueError(f"timeout_log2: expected an integer in 4..30, got {timeout_log2!r}")
    if BLAS_TIMEOUT_ENV in os.environ:
        return False
    if "numpy" in sys.modules or "scipy" in sys.modules:
        logger.debug("BLAS idle wait not tuned: NumPy is already imported")
        return False
    os.environ[BLAS_TIMEOUT_ENV] = str(timeout_log2)
    return True


def tune_omp_wait() -> bool:
    """Let OpenMP threads that wait for others sleep instead of spinning.

    Sets ``OMP_WAIT_POLICY=passive`` for Numba's OpenMP threading layer (see the module
    notes); call it before the first parallel kernel runs.

    Returns
    -------
    bool
        False when the environment already sets the variable (that value is kept).
    """
    if OMP_WAIT_ENV in os.environ:
        return False
    os.environ[OMP_WAIT_ENV] = "passive"
    return True
