"""BLAS threads of the calling thread, for kernels that xbarsim already runs in parallel.

Numba compiles ``np.dot`` inside a kernel to a call into the BLAS that SciPy links (OpenBLAS in
the SciPy wheels), and OpenBLAS runs every large enough product on all cores. When xbarsim runs
independent solves in its own threads (the two halves of a direct ``g_eff`` solve, the arrays of
a tile), each of those BLAS calls then starts its own workers: 2 x 2 threads on a 2-core machine,
and the threaded direct solve of a 256 x 256 array measured 0.8x the serial one instead of
1.6x. :func:`one_blas_thread` runs a task with one BLAS thread.

It uses ``openblas_set_num_threads_local`` (OpenBLAS >= 0.3.27, the SciPy >= 1.13 wheels).
Despite its name, that setting is process-wide in the pthreads builds of the NumPy and SciPy
wheels (measured with scipy-openblas 0.3.31: while a worker holds 1, the main thread's GEMM
runs on one core), so save-and-restore in each worker is a race: two workers that overlap
can leave the whole process on one BLAS thread (it did: every later NumPy product of a
training run ran at half speed). :func:`blas_setting_is_process_wide` tells the two kinds of
build apart once per library; for process-wide ones the setting is counted, set to 1 when the
first wrapped task starts and restored when the last one ends, so the calling thread, which
waits for its workers, gets its setting back. Other threads' BLAS calls made meanwhile also
run on one thread. Where no OpenBLAS with the function is loaded (other BLAS, non-Linux
systems) the task runs unchanged.
"""

from __future__ import annotations

import ctypes
import functools
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["blas_setting_is_process_wide", "idle_wait_log2", "local_thread_setters",
           "one_blas_thread"]

T = TypeVar("T")


@functools.cache
def _openblas_libraries() -> tuple[Any, ...]:
    """Every OpenBLAS loaded in this process (NumPy's and SciPy's), as ctypes libraries."""
    import scipy.linalg.cython_blas  # noqa: F401  (loads the BLAS that compiled kernels call)

    if not sys.platform.startswith("linux"):
        return ()
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = sorted({line.split(maxsplit=5)[-1].strip() for line in maps
                            if "openblas" in line.lower() and ".so" in line})
    except OSError:
        return ()
    libraries = []
    for path in paths:
        try:
            libraries.append(ctypes.CDLL(path))
        except OSError:
            continue
    return tuple(libraries)


@functools.cache
def local_thread_setters() -> tuple[Any, ...]:
    """``openblas_set_num_threads_local`` of every OpenBLAS loaded in this process.

    Returns
    -------
    tuple of ctypes functions
        Each takes the thread count for the calling thread and returns the previous one;
        empty where none is found (non-Linux, or a BLAS without the function).
    """
    setters = []
    for library in _openblas_libraries():
        try:
            setter = library.openblas_set_num_threads_local
        except AttributeError:
            continue
        setter.argtypes = [ctypes.c_int]
        setter.restype = ctypes.c_int
        setters.append(setter)
    return tuple(setters)


def idle_wait_log2() -> tuple[int, ...]:
    """How long each loaded OpenBLAS lets idle workers spin: log2 of CPU cycles.

    The value OpenBLAS read from ``OPENBLAS_THREAD_TIMEOUT`` when it loaded, clamped to 4..30
    as OpenBLAS clamps it, or its default 28 (see :func:`xbarsim.runtime.tune_blas_idle`).

    Returns
    -------
    tuple of int
        One entry per OpenBLAS that has the getter; empty where none is found.
    """
    waits = []
    for library in _openblas_libraries():
        try:
            getter = library.openblas_thread_timeout
        except AttributeError:
            continue
        getter.argtypes = []
        getter.restype = ctypes.c_int
        value = getter()
        waits.append(28 if value <= 0 else min(max(value, 4), 30))
    return tuple(waits)


_GUARD = threading.RLock()         # probing and the counted process-wide setting
_ACTIVE = 0                        # wrapped tasks running now (process-wide settings)
_SAVED: list[int] = []             # the process-wide settings before the first of them


def blas_setting_is_process_wide() -> tuple[bool, ...]:
    """Whether each of :func:`local_thread_setters` acts on the whole process.

    Found by experiment, once: a helper thread sets one thread and holds it while the calling
    thread reads its own setting. A calling thread already at one thread cannot tell the two
    apart; it is then taken as process-wide (counting is correct for both kinds of build).

    Returns
    -------
    tuple of bool
        One entry per setter, in the same order.
    """
    with _GUARD:                   # two probes at once would race like the tasks they guard
        return _probe()


@functools.cache
def _probe() -> tuple[bool, ...]:
    kinds = []
    for setter in local_thread_setters():
        held, release = threading.Event(), threading.Event()
        previous: list[int] = []

        def hold(setter: Any = setter, previous: list[int] = previous,
                 held: threading.Event = held, release: threading.Event = release) -> None:
            previous.append(setter(1))
            held.set()
            release.wait()
            setter(previous[0])

        helper = threading.Thread(target=hold, name="xbarsim-blas-probe")
        helper.start()
        held.wait()
        mine = setter(1)           # the calling thread's setting while the helper holds 1
        setter(mine)
        release.set()
        helper.join()
        kinds.append(mine == 1)
    return tuple(kinds)


def _enter() -> list[int | None]:
    """Set one BLAS thread; return what each per-thread setting was (None: process-wide)."""
    global _ACTIVE, _SAVED
    setters = local_thread_setters()
    with _GUARD:
        shared = blas_setting_is_process_wide()
        previous = [setter(1) for setter in setters]
        if _ACTIVE == 0:
            _SAVED = previous
        _ACTIVE += 1
    return [None if wide else n for wide, n in zip(shared, previous, strict=True)]


def _leave(previous: list[int | None]) -> None:
    """Undo :func:`_enter`: per-thread settings now, process-wide ones with the last task."""
    global _ACTIVE
    with _GUARD:
        _ACTIVE -= 1
        for i, (setter, n) in enumerate(zip(local_thread_setters(), previous, strict=True)):
            if n is not None:
                setter(n)
            elif _ACTIVE == 0:
                setter(_SAVED[i])


def one_blas_thread(task: Callable[..., T]) -> Callable[..., T]:
    """Wrap ``task`` so that its BLAS calls run on one thread (the calling one).

    Parameters
    ----------
    task : callable
        Runs in a worker thread alongside other workers.

    Returns
    -------
    callable
        Same arguments and result as ``task``. The previous BLAS setting is restored when it
        returns or raises (for a process-wide setting: when the last wrapped task running
        returns or raises).
    """
    @functools.wraps(task)
    def run(*args: Any, **kwargs: Any) -> T:
        previous = _enter()
        try:
            return task(*args, **kwargs)
        finally:
            _leave(previous)

    return run
