"""The process's thread pool, and element-wise kernels over slices of the batch in it.

:func:`shared_pool` runs the nogil solver kernels of independent arrays (and the halves of a
direct solve). The digital work around a product -- im2col / col2im, max pooling, the layout
changes of a convolution, the input scale and DAC drive of a tile, ADC range statistics and
conversion -- is one serial Numba kernel per call that releases the GIL (``nogil``). For a
LeNet-5 batch it is about as much time as the products themselves, which BLAS already runs on
every core. :func:`over_batch` splits the batch into one contiguous slice per thread of
:func:`shared_pool`, runs the first slice in the calling thread and the
others in the pool, and returns when all are done. Each task writes only its own slice of
preallocated outputs, and every output entry is computed by the same operations as in the
serial kernel, so the results are bit-identical to it whatever the number of threads.

Small work stays serial (:data:`MIN_SPLIT_WORK`), and so does work started from a pool thread
(no nested waits on the same pool): :func:`splits` decides.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["MIN_SPLIT_WORK", "POOL_THREAD_PREFIX", "batch_slices", "default_threads",
           "over_batch", "shared_pool", "splits"]

T = TypeVar("T")

_POOL: ThreadPoolExecutor | None = None

#: Name prefix of the threads of :func:`shared_pool` (tasks check it to avoid nested waits).
POOL_THREAD_PREFIX = "xbarsim-pool"


_CPU_COUNT = os.cpu_count() or 1     # read once: os.cpu_count() takes tens of microseconds


def default_threads() -> int:
    """Threads for parallel work: ``NUMBA_NUM_THREADS`` if set, else the CPU count."""
    return int(os.environ.get("NUMBA_NUM_THREADS") or _CPU_COUNT)


def shared_pool() -> ThreadPoolExecutor:
    """One process-wide thread pool for nogil kernels: solves, batch slices (made on first use)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=default_threads(),
                                   thread_name_prefix=POOL_THREAD_PREFIX)
    return _POOL


#: Split only work estimated at this many nanoseconds or more. Handing a slice to a sleeping
#: pool thread and waiting for it costs about 60 us on the 2-core VMs; the element-wise kernels
#: take 0.5-1.5 ns per element (their callers pass element counts): ADC conversion of 2**17
#: currents took 84 us serial, 107 us split, of 2**18 166 against 154 us, of 2**20 663
#: against 402 us.
MIN_SPLIT_WORK = 1 << 18


def batch_slices(n_batch: int, n_parts: int) -> list[tuple[int, int]]:
    """``n_parts`` contiguous half-open slices ``(start, stop)`` covering ``range(n_batch)``.

    Slices differ in length by at most one; empty slices are dropped.
    """
    n_parts = max(1, min(n_parts, n_batch))
    edges = [n_batch * k // n_parts for k in range(n_parts + 1)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def splits(n_batch: int, work: int) -> bool:
    """Whether :func:`over_batch` runs a job of ``n_batch`` items and ``work`` ns in threads.

    Not when there is one thread or one item, when the work is below :data:`MIN_SPLIT_WORK`,
    or when called from a pool thread (no nested waits on the same pool).
    """
    return (default_threads() >= 2 and n_batch >= 2 and work >= MIN_SPLIT_WORK
            and not threading.current_thread().name.startswith(POOL_THREAD_PREFIX))


def over_batch(task: Callable[[int, int], T], n_batch: int, work: int) -> list[T]:
    """Run ``task(start, stop)`` over ``range(n_batch)`` in contiguous slices, one per thread.

    Parameters
    ----------
    task : callable
        ``task(start, stop)`` handles batch items ``start:stop``; it must write only outputs of
        those items (slices of arrays the caller allocated) and should release the GIL (a
        ``nogil`` Numba kernel), or the threads gain nothing.
    n_batch : int
        Batch size.
    work : int
        Estimated serial time of the whole job [ns] (for the element-wise kernels, about one
        per element, so their callers pass element counts): unless :func:`splits`, the task
        runs once, serially, in the calling thread.

    Returns
    -------
    list
        The tasks' return values in slice order (one entry when it ran serially), for
        reductions that combine per-slice results.

    Notes
    -----
    Exceptions of any slice are raised after every slice has finished, so no thread still
    writes into the outputs when the caller sees the error.
    """
    if not splits(n_batch, work):
        return [task(0, n_batch)]
    first, *rest = batch_slices(n_batch, default_threads())
    pool = shared_pool()
    futures = [pool.submit(task, a, b) for a, b in rest]
    try:
        head = task(*first)
    finally:
        for f in futures:
            f.exception()          # waits; the first error is raised below
    return [head] + [f.result() for f in futures]
