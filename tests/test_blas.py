"""BLAS threads of the calling thread (xbarsim.kernels.blas)."""

from __future__ import annotations

import threading

import pytest

from xbarsim.kernels.blas import local_thread_setters, one_blas_thread


@pytest.fixture
def setters():
    found = local_thread_setters()
    if not found:
        pytest.skip("no OpenBLAS with openblas_set_num_threads_local is loaded")
    return found


def _swap(setter, n):
    """Set the calling thread's BLAS threads to n; return what they were."""
    return setter(n)


def test_wrapped_task_sees_one_thread_and_the_setting_is_restored(setters):
    before = [_swap(s, 2) for s in setters]
    seen = []

    @one_blas_thread
    def task(x):
        seen.extend(_swap(s, 1) for s in setters)   # 1 if the wrapper set it
        return 2 * x

    assert task(21) == 42
    assert seen == [1] * len(setters)
    assert [_swap(s, n) for s, n in zip(setters, before, strict=True)] == [2] * len(setters)


def test_setting_is_restored_when_the_task_raises(setters):
    before = [_swap(s, 2) for s in setters]

    @one_blas_thread
    def task():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        task()
    assert [_swap(s, n) for s, n in zip(setters, before, strict=True)] == [2] * len(setters)


def test_the_setting_is_local_to_the_worker_thread(setters):
    before = [_swap(s, 2) for s in setters]
    inside = []

    def worker():
        one_blas_thread(lambda: inside.extend(_swap(s, 1) for s in setters))()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert inside == [1] * len(setters)
    # the main thread kept its own setting
    assert [_swap(s, n) for s, n in zip(setters, before, strict=True)] == [2] * len(setters)
