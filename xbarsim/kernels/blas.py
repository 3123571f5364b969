"""BLAS threads of the calling thread, for kernels that xbarsim already runs in parallel.

Numba compiles ``np.dot`` inside a kernel to a call into the BLAS that SciPy links (OpenBLAS in
the SciPy wheels), and OpenBLAS runs every large enough product on all cores. When xbarsim runs
independent solves in its own threads (the two halves of a direct ``g_eff`` solve, the arrays of
a tile), each of those BLAS calls then starts its own workers: 2 x 2 threads on a 2-core machine,
and the threaded direct solve of a 256 x 256 array measured 0.8x the serial one instead of
1.6x. :func:`one_blas_thread` runs a task with BLAS restricted to the calling thread.

It uses ``openblas_set_num_threads_local`` (OpenBLAS >= 0.3.27, the SciPy >= 1.13 wheels),
which changes the setting of the calling thread only and is restored afterwards, so nothing
outside the task is affected. Where no OpenBLAS with that function is loaded (other BLAS,
non-Linux systems) the task runs unchanged.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["local_thread_setters", "one_blas_thread"]

T = TypeVar("T")


@functools.cache
def local_thread_setters() -> tuple[Any, ...]:
    """``openblas_set_num_threads_local`` of every OpenBLAS loaded in this process.

    Returns
    -------
    tuple of ctypes functions
        Each takes the thread count for the calling thread and returns the previous one;
        empty where none is found (non-Linux, or a BLAS without the function).
    """
    import scipy.linalg.cython_blas  # noqa: F401  (loads the BLAS that compiled kernels call)

    if not sys.platform.startswith("linux"):
        return ()
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = sorted({line.split(maxsplit=5)[-1].strip() for line in maps
                            if "openblas" in line.lower() and ".so" in line})
    except OSError:
        return ()
    setters = []
    for path in paths:
        try:
            setter = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        setter.argtypes = [ctypes.c_int]
        setter.restype = ctypes.c_int
        setters.append(setter)
    return tuple(setters)


def one_blas_thread(task: Callable[..., T]) -> Callable[..., T]:
    """Wrap ``task`` so that its BLAS calls run in the calling thread only.

    Parameters
    ----------
    task : callable
        Runs in a worker thread alongside other workers.

    Returns
    -------
    callable
        Same arguments and result as ``task``; the thread's previous BLAS setting is restored
        when it returns or raises.
    """
    @functools.wraps(task)
    def run(*args: Any, **kwargs: Any) -> T:
        setters = local_thread_setters()
        previous = [setter(1) for setter in setters]
        try:
            return task(*args, **kwargs)
        finally:
            for setter, n in zip(setters, previous, strict=True):
                setter(n)

    return run
