"""Exclusive lock files for output paths, and the clean-up of orphan temporary files.

A run owns its output file and its checkpoint for its whole lifetime: before it writes
anything it creates ``<path>.lock`` next to each of them, atomically and exclusively (the lock
file is written in full under a temporary name, then hard-linked to its final name, which fails
when it exists), holding the owner's process id, host name, start time and, on Linux, the
process start time from ``/proc`` (so that a recycled process id is not mistaken for the
owner). A second run that wants the same path finds the lock and is refused with
:class:`LockedError`, which names the owner. A lock whose owner is a process of this host
that no longer exists (a killed run) is stale: it is taken over, with a warning. A lock of
another host cannot be checked and is never taken over; the message says how to remove it.

Writers replace files through temporary siblings ``.<name>.tmp-<pid>``
(:mod:`xbarsim.io.hdf5`); a killed writer leaves its temporary file behind.
:func:`remove_orphan_temporaries` deletes those of processes that no longer exist.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import socket
import sys
import warnings
from pathlib import Path
from typing import Any

__all__ = ["LockedError", "PathLock", "check_writable", "lock_path", "pid_alive",
           "remove_orphan_temporaries"]

logger = logging.getLogger(__name__)


class LockedError(OSError):
    """The path is locked by another live process (or by a process of another host).

    Attributes
    ----------
    path : Path
        The locked output path.
    owner : dict
        The lock's content: ``pid``, ``host``, ``started_utc`` (and ``proc_start``).
    """

    def __init__(self, message: str, path: Path, owner: dict[str, Any]) -> None:
        super().__init__(message)
        self.path, self.owner = path, owner


_HELD: set[str] = set()
"""Lock files held by this process (absolute paths)."""


def lock_path(path: str | os.PathLike[str]) -> Path:
    """Return the lock file of ``path``: ``<path>.lock`` in the same folder."""
    path = Path(path)
    return path.with_name(path.name + ".lock")


def _proc_start(pid: int) -> str | None:
    """Start time of process ``pid`` in clock ticks since boot (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ")"
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (True when that cannot be told)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True          # exists, owned by another user
    except OSError:
        return True
    return True


def _owner_alive(owner: dict[str, Any]) -> bool:
    """Whether the process that wrote a lock of this host still runs."""
    pid = owner.get("pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return False
    recorded = owner.get("proc_start")
    if recorded is not None:
        now = _proc_start(pid)
        if now is not None and now != recorded:
            return False     # the pid was recycled by another process
    return True


def _describe(owner: dict[str, Any]) -> str:
    return (f"pid {owner.get('pid', '?')} on host {owner.get('host', '?')}, started "
            f"{owner.get('started_utc', '?')}")


def _read_owner(lock: Path) -> dict[str, Any] | None:
    """Read a lock file: its content; None when it has gone, {} when unreadable."""
    try:
        text = lock.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class PathLock:
    """An exclusive lock on an output path, held by this process (a context manager).

    Parameters
    ----------
    path : path-like
        The output file to protect; the lock file is :func:`lock_path` of it.
    what : str
        What the path is ("output file", "checkpoint"), for messages.
    info : dict, optional
        More JSON-serialisable facts about the owner, stored in the lock (e.g. the command).

    Raises
    ------
    LockedError
        (from :meth:`acquire`) another live process of this host, or a process of another
        host, holds the lock.
    OSError
        The lock file cannot be created (e.g. the folder is not writable).
    """

    def __init__(self, path: str | os.PathLike[str], what: str = "output file",
                 info: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.lock = lock_path(self.path)
        self.what = what
        self.info = dict(info or {})
        self.held = False

    def _content(self) -> dict[str, Any]:
        pid = os.getpid()
        return {"pid": pid, "host": socket.gethostname(), "proc_start": _proc_start(pid),
                "started_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "command": sys.argv, **self.info}

    def _try_create(self) -> bool:
        """Create the lock file with our content; False when it exists."""
        tmp = self.lock.with_name(f".{self.lock.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(self._content()), encoding="utf-8")
        try:
            os.link(tmp, self.lock)
            return True
        except FileExistsError:
            return False
        except OSError:
            # a file system without hard links: exclusive creation, then the content
            try:
                fd = os.open(self.lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(self._content()))
            return True
        finally:
            tmp.unlink(missing_ok=True)

    def acquire(self) -> PathLock:
        """Take the lock (taking over a stale one with a warning); return self."""
        for _ in range(3):
            if self._try_create():
                self.held = True
                _HELD.add(os.path.abspath(self.lock))
                return self
            owner = _read_owner(self.lock)
            if owner is None:
                continue                      # released meanwhile: try again
            if os.path.abspath(self.lock) in _HELD:
                raise LockedError(f"{self.path}: this process already holds {self.lock}; "
                                  f"one file cannot serve twice at once", self.path, owner)
            if not owner:
                raise LockedError(
                    f"{self.path}: the {self.what} is locked by {self.lock}, which cannot be "
                    f"read; if no other run writes {self.path.name}, delete {self.lock}",
                    self.path, owner)
            if owner.get("host") != socket.gethostname():
                raise LockedError(
                    f"{self.path}: the {self.what} is in use by another xbarsim run "
                    f"({_describe(owner)}); its host cannot be checked from here: if that "
                    f"run is gone, delete {self.lock}", self.path, owner)
            if owner.get("pid") != os.getpid() and _owner_alive(owner):
                raise LockedError(
                    f"{self.path}: the {self.what} is in use by another xbarsim run "
                    f"({_describe(owner)}); wait for it to end or use another --out",
                    self.path, owner)
            self._take_over(owner)
        raise LockedError(f"{self.path}: could not take the lock {self.lock} (other runs keep "
                          "taking it); try again", self.path, {})

    def _take_over(self, owner: dict[str, Any]) -> None:
        """Remove a stale lock (of a dead process of this host), unless it changed meanwhile."""
        aside = self.lock.with_name(f".{self.lock.name}.stale-{os.getpid()}")
        try:
            os.replace(self.lock, aside)
        except FileNotFoundError:
            return
        if _read_owner(aside) != owner:
            # another run replaced the stale lock with its own just now: put it back
            try:
                os.link(aside, self.lock)
            except OSError:
                pass
            aside.unlink(missing_ok=True)
            return
        aside.unlink(missing_ok=True)
        warnings.warn(f"{self.path}: took over the stale lock {self.lock} of a run that no "
                      f"longer exists ({_describe(owner)})", stacklevel=4)

    def release(self) -> None:
        """Remove the lock file if this process holds it."""
        if not self.held:
            return
        self.held = False
        _HELD.discard(os.path.abspath(self.lock))
        owner = _read_owner(self.lock)
        if owner and owner.get("pid") == os.getpid() \
                and owner.get("host") == socket.gethostname():
            self.lock.unlink(missing_ok=True)

    def __enter__(self) -> PathLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


_TMP_PID = re.compile(r"\.tmp-(\d+)$")


def remove_orphan_temporaries(path: str | os.PathLike[str]) -> list[Path]:
    """Delete ``.<name>.tmp-<pid>`` siblings of ``path`` left by processes that are gone.

    Only temporary files of ``path`` itself are considered, and only those whose process id
    does not exist on this host (a live writer's file is left alone).

    Returns
    -------
    list of Path
        The files removed.
    """
    path = Path(path)
    removed = []
    prefix = f".{path.name}.tmp-"
    try:
        candidates = [p for p in path.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return removed
    for tmp in candidates:
        m = _TMP_PID.search(tmp.name)
        if m is None or tmp.name != prefix + m.group(1):
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or pid_alive(pid):
            continue
        try:
            tmp.unlink()
        except FileNotFoundError:
            continue
        removed.append(tmp)
        logger.info("removed %s, left by process %d, which no longer exists", tmp, pid)
    return removed


def check_writable(folder: str | os.PathLike[str], what: str) -> None:
    """Create and remove a probe file in ``folder``: fail now rather than after hours of work.

    Parameters
    ----------
    folder : path-like
        An existing folder.
    what : str
        What is to be written there, for the message (e.g. ``"run.h5: the output file"``).

    Raises
    ------
    PermissionError
        The folder is not writable (read-only, no permission, a read-only file system); the
        message names ``what`` and the folder.
    """
    folder = Path(folder)
    probe = folder / f".xbarsim-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PermissionError(f"{what} cannot be written: folder {folder} is not writable "
                              f"({reason}); make it writable or choose another location"
                              ) from None
