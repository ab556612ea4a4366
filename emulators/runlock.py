"""Who runs what from a stack folder (``.localstack``): the local host's lock, the start-up lock, live PIDs.

``HostLock`` is an ``flock`` on ``<folder>/host.lock`` held by the process that runs the local Functions host
(``make run`` / ``make host``) for as long as it runs. The kernel drops it when that process ends, however it
ends, so a lock left by a crashed or killed host never blocks the next one: the PID written in the file is only
believed while the lock is held. ``startup_lock`` serialises ``python -m emulators up`` so two of them started
at once cannot both start a stack.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import sys
from pathlib import Path


def pid_alive(pid: int, expect: str | None = None) -> bool:
    """Whether ``pid`` runs, and (where /proc tells) runs a command line containing ``expect``: a PID reused by
    an unrelated process after a crash does not count."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: alive, and certainly not ours
    if expect:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return True  # no /proc (macOS): trust the PID
        return expect.encode() in cmdline
    return True


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return False
    except ProcessLookupError:
        return True
    except PermissionError:
        return False


def pid_exited(pid: int) -> bool:
    """The process has ended: gone, or a zombie its parent has not reaped yet (the stack's parent, the `up` that
    started it, has exited long before; whoever adopted it reaps it in its own time)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


class HostLock:
    def __init__(self, folder: str | os.PathLike) -> None:
        self.path = Path(folder) / "host.lock"
        self._fd: int | None = None

    def acquire(self, what: str) -> bool:
        """Take the lock for this process; False when another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        record = {"pid": os.getpid(), "what": what, "cwd": os.getcwd(), "argv": sys.argv,
                  "started": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd
        return True

    def holder(self) -> dict | None:
        """The record of the process holding the lock, or None when nobody does (a stale file included)."""
        if self._fd is not None:
            return json.loads(self.path.read_text())
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                try:
                    return json.loads(self.path.read_text() or "{}") or {"pid": None}
                except ValueError:
                    return {"pid": None}  # the holder is still writing its record
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "HostLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


@contextlib.contextmanager
def startup_lock(folder: str | os.PathLike):
    """Held while ``up`` checks for a running stack and starts one: the check and the start are one step."""
    path = Path(folder) / "up.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
