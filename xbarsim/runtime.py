"""Process-wide settings that applications (the CLI, the benchmarks) opt into.

Nothing here runs on import: the library never changes process state by itself.

Memory allocator
----------------
A training step allocates tens of MB of temporaries (im2col rows, DAC voltages, products),
frees them and allocates them again in the next step. glibc's ``malloc`` hands such blocks
back to the kernel -- above its ``mmap`` threshold at once, below it when the free top of the
heap exceeds the trim threshold -- so every step faults the same pages in again. On the 2-core
VMs this project runs on one fault costs about 3.6 us: LeNet-5 Cross-NI took 10-11 thousand
faults (about 40 ms) per step. :func:`tune_allocator` keeps freed blocks up to
``mmap_threshold`` in the heap and the heap's free top up to ``trim_threshold``: the faults
drop to a few hundred per step (``benchmarks/bench_train.py`` has the step times). Peak memory
is unchanged; what the process already had is simply not returned to the OS until exit.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

__all__ = ["ALLOCATOR_ENV", "tune_allocator"]

logger = logging.getLogger(__name__)

#: Set this environment variable to ``0`` to leave the allocator alone.
ALLOCATOR_ENV = "XBARSIM_TUNE_MALLOC"

# glibc's mallopt parameter codes (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_MIB = 1 << 20


def tune_allocator(*, mmap_threshold: int = 32 * _MIB, trim_threshold: int = 1024 * _MIB
                   ) -> bool:
    """Keep freed large blocks in the heap (glibc only; a no-op elsewhere).

    Parameters
    ----------
    mmap_threshold : int
        Allocations of at least this many bytes [B] are served by ``mmap`` and returned on
        ``free``; glibc accepts at most 32 MiB on 64-bit systems.
    trim_threshold : int
        Free memory at the top of the heap [B] kept before it is returned to the OS.

    Returns
    -------
    bool
        Whether both settings took effect (False on non-glibc systems or when the environment
        variable ``XBARSIM_TUNE_MALLOC`` is ``0``).
    """
    if mmap_threshold < 0 or trim_threshold < 0:
        raise ValueError(f"mmap_threshold, trim_threshold: expected sizes >= 0 bytes, got "
                         f"{mmap_threshold!r}, {trim_threshold!r}")
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
    ok_mmap = mallopt(_M_MMAP_THRESHOLD, min(mmap_threshold, 2**31 - 1)) == 1
    ok_trim = mallopt(_M_TRIM_THRESHOLD, min(trim_threshold, 2**31 - 1)) == 1
    ok = ok_mmap and ok_trim
    logger.debug("glibc malloc tuned: mmap threshold %d B, trim threshold %d B (%s)",
                 mmap_threshold, trim_threshold, "ok" if ok else "refused")
    return ok
