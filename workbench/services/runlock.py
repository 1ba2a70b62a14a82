"""One process per run folder: an exclusive, advisory lock on ``<run>/.lock``.

The trainer holds it from the moment it takes a folder until the run ends, so a second ``train`` on the
same ``--out``, or a ``--resume`` of a run whose process is alive, is refused instead of interleaving
two runs' rows.  The operating system drops the lock when the process dies (kill -9 included), so a
crashed run never stays locked.  The file itself is left in place (removing it would race with the
next taker) and holds the pid of the last holder.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path

from workbench.core.errors import ConfigError
from .rundir import LOCK

try:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
except ImportError:  # Windows
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


class RunLock:
    """``RunLock(folder).acquire()`` or a :class:`ConfigError` naming the process that holds it."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.fd: int | None = None

    @property
    def held(self) -> bool:
        return self.fd is not None

    def acquire(self) -> "RunLock":
        path = self.run_dir / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            try:
                holder = os.read(fd, 200).decode("utf-8", "replace").strip()
            except OSError:
                holder = ""
            os.close(fd)
            who = f" (process {holder})" if holder else ""
            raise ConfigError(f"{self.run_dir}: in use by another workbench process{who}; wait for it to end or "
                              f"choose another folder")
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} on {socket.gethostname()}".encode())
        except OSError:
            pass  # a full disk: the lock holds all the same
        self.fd = fd
        return self

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            try:
                _unlock(fd)
            finally:
                os.close(fd)

    def __del__(self):
        try:
            self.release()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def is_locked(run_dir: str | Path) -> bool:
    """Whether a live process holds the run folder's lock now (False when there is no lock file)."""
    path = Path(run_dir) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        if _try_lock(fd):
            _unlock(fd)
            return False
        return True
    finally:
        os.close(fd)
