"""BLAS threads of xbarsim's worker tasks (xbarsim.kernels.blas)."""

from __future__ import annotations

import threading

import pytest

from xbarsim.kernels.blas import blas_setting_is_process_wide, local_thread_setters, one_blas_thread


@pytest.fixture
def setters():
    found = local_thread_setters()
    if not found:
        pytest.skip("no OpenBLAS with openblas_set_num_threads_local is loaded")
    return found


def _swap(setter, n):
    """Set the calling thread's BLAS threads to n; return what they were."""
    return setter(n)


def _peek(setters):
    """The calling thread's current settings, unchanged."""
    now = [_swap(s, 1) for s in setters]
    for s, n in zip(setters, now, strict=True):
        _swap(s, n)
    return now


def test_wrapped_task_sees_one_thread_and_the_setting_is_restored(setters):
    before = [_swap(s, 2) for s in setters]
    seen = []

    @one_blas_thread
    def task(x):
        seen.extend(_peek(setters))
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


def test_overlapping_workers_give_the_caller_its_setting_back(setters):
    """Two workers that overlap and end first-in first-out (the order that leaked before).

    With a process-wide setting, plain save-and-restore per worker leaves 1 behind: worker A
    saves 2 and sets 1, B saves 1, A restores 2, B restores 1.
    """
    before = [_swap(s, 2) for s in setters]
    both_in = threading.Barrier(2)
    a_done = threading.Event()
    inside: dict[str, list[int]] = {}

    def body(name):
        both_in.wait()
        inside[name] = _peek(setters)
        if name == "b":
            a_done.wait()

    def worker(name):
        one_blas_thread(body)(name)
        if name == "a":
            a_done.set()

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inside == {"a": [1] * len(setters), "b": [1] * len(setters)}
    assert [_swap(s, n) for s, n in zip(setters, before, strict=True)] == [2] * len(setters)


def test_process_wide_probe_matches_what_a_worker_does(setters):
    """The probe's verdict is what the caller sees while a worker holds one thread."""
    before = [_swap(s, 2) for s in setters]
    held, release = threading.Event(), threading.Event()

    def worker():
        saved = [_swap(s, 1) for s in setters]
        held.set()
        release.wait()
        for s, n in zip(setters, saved, strict=True):
            _swap(s, n)

    t = threading.Thread(target=worker)
    t.start()
    held.wait()
    seen = _peek(setters)
    release.set()
    t.join()
    assert tuple(n == 1 for n in seen) == blas_setting_is_process_wide()
    for s, n in zip(setters, before, strict=True):
        _swap(s, n)
