"""``xbarsim.io.locks``: exclusive output locks, stale-lock take-over, orphan clean-up, probes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from xbarsim.io import locks
from xbarsim.io.locks import LockedError, PathLock, lock_path, remove_orphan_temporaries


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(path, **fields) -> None:
    content = {"host": socket.gethostname(), "started_utc": "2026-01-01T00:00:00+00:00",
               **fields}
    lock_path(path).write_text(json.dumps(content))


def test_lock_is_exclusive_and_released(tmp_path):
    out = tmp_path / "r.h5"
    with PathLock(out) as lock:
        content = json.loads(lock_path(out).read_text())
        assert content["pid"] == os.getpid() and content["host"] == socket.gethostname()
        assert content["started_utc"].endswith("+00:00")
        with pytest.raises(LockedError, match="already holds"):
            PathLock(out).acquire()
        assert lock.held
    assert not lock_path(out).exists()
    assert [p.name for p in tmp_path.iterdir()] == []     # no temporary file left


def test_lock_of_a_live_process_is_refused_naming_it(tmp_path):
    out = tmp_path / "r.h5"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        write_lock(out, pid=live.pid, proc_start=locks._proc_start(live.pid))
        with pytest.raises(LockedError, match=f"in use by another xbarsim run \\(pid {live.pid} "
                                              f"on host {socket.gethostname()}") as info:
            PathLock(out, "checkpoint").acquire()
        assert info.value.owner["pid"] == live.pid and "the checkpoint" in str(info.value)
    finally:
        live.kill()
        live.wait()
    # the owner is gone now: the lock is stale and taken over, with a warning
    with pytest.warns(UserWarning, match=f"took over the stale lock .*\\(pid {live.pid} "):
        lock = PathLock(out).acquire()
    assert json.loads(lock_path(out).read_text())["pid"] == os.getpid()
    lock.release()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")
def test_a_recycled_pid_is_not_mistaken_for_the_owner(tmp_path):
    out = tmp_path / "r.h5"
    parent = os.getppid()            # a live process, but not the one that wrote the lock
    write_lock(out, pid=parent, proc_start="1")
    with pytest.warns(UserWarning, match="stale lock"):
        PathLock(out).acquire().release()


def test_locks_of_other_hosts_and_unreadable_locks_are_never_taken_over(tmp_path):
    out = tmp_path / "r.h5"
    write_lock(out, pid=dead_pid(), host="elsewhere.example")
    with pytest.raises(LockedError, match="elsewhere.example.*cannot be checked"):
        PathLock(out).acquire()
    lock_path(out).write_text("not json")
    with pytest.raises(LockedError, match="cannot be read"):
        PathLock(out).acquire()
    assert lock_path(out).read_text() == "not json"


def test_release_leaves_a_lock_of_another_process_alone(tmp_path):
    out = tmp_path / "r.h5"
    lock = PathLock(out).acquire()
    write_lock(out, pid=12345678)    # replaced behind our back
    lock.release()
    assert json.loads(lock_path(out).read_text())["pid"] == 12345678


def test_orphan_temporaries_of_dead_processes_only(tmp_path):
    out = tmp_path / "r.h5"
    dead = dead_pid()
    gone = [tmp_path / f".r.h5.tmp-{dead}"]
    kept = [tmp_path / f".r.h5.tmp-{os.getppid()}", tmp_path / f".r.h5.tmp-{os.getpid()}",
            tmp_path / f".rr.h5.tmp-{dead}", tmp_path / f".r.h5.tmp-{dead}x",
            tmp_path / "r.h5"]
    for p in gone + kept:
        p.write_bytes(b"x")
    assert remove_orphan_temporaries(out) == gone
    assert not gone[0].exists() and all(p.exists() for p in kept)
    assert remove_orphan_temporaries(tmp_path / "missing" / "r.h5") == []


def test_check_writable(tmp_path):
    locks.check_writable(tmp_path, "x.h5: the output file")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(PermissionError, match="x.h5: the output file cannot be written: folder "
                                              ".*missing is not writable"):
        locks.check_writable(tmp_path / "missing", "x.h5: the output file")
    if os.path.isdir("/sys"):
        with pytest.raises(PermissionError, match="folder /sys is not writable"):
            locks.check_writable("/sys", "x")
