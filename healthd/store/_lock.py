"""One daemon per database file: an exclusive lock on `<db>.lock`, which names its holder.

Two daemons on one SQLite file would both page every incident and each requeue the other's
in-flight outbox rows as if left by a crash. So the store takes this lock before it touches
the file, and a second daemon refuses to start, naming the file and the process that holds
it (the pid and host written into the lock file).

The lock is a POSIX record lock (`lockf`), held by the process: the kernel drops it when the
process dies, SIGKILL included, so a crash never leaves a stale lock to clean up by hand.
Being per process, it does not stop one process from opening the same file twice (tests
that play a restart in one process do); it stops a second process. The lock file is never
deleted: removing it while another process waits on it would let two hold "the" lock.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from healthd.errors import StoreError


class FileLock:
    """`acquire()` or raise StoreError naming the holder; `release()` at close."""

    def __init__(self, database: Path, label: str) -> None:
        self.path = database.with_name(database.name + ".lock")
        self._database = database
        self._label = label
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(
                f"{self._label}: cannot create the lock file {self.path}: {exc.strerror}"
            ) from None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise StoreError(
                f"{self._database} is in use by another healthd ({holder}, lock file "
                f"{self.path}): stop it, or give this one its own store"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Closing the descriptor drops the lock; the file stays (see the module's note)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_holder(fd: int) -> str:
    text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    return text or "pid unknown"
