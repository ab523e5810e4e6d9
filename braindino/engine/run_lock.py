"""One trainer per run folder: an exclusive lock on ``RUN_DIR/run.lock``.

The lock is an ``flock`` on the file, which holds the holder's host, pid and start time. The
operating system releases it when the holder exits or dies (nothing stale to clean up); processes
forked by the holder (DataLoader workers) close their copy at once, so they never keep it after
their parent's death. On a file system without ``flock`` (some Lustre or NFS mounts) the run goes
unlocked and :attr:`RunLock.unsupported` says why.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path

from braindino.errors import ConfigError

LOCK_NAME = "run.lock"
_HELD: set[int] = set()  # lock descriptors this process holds


def _close_held_in_child() -> None:
    for fd in _HELD:  # the parent's lock stays: it holds its own descriptor
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_held_in_child)


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError):
        text = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
        if text:
            return text
    return "another process"


class RunLock:
    """An exclusive lock on a run folder; :meth:`acquire` fails with one line naming the holder.

    Use as a context manager, or :meth:`acquire` then :meth:`release` (also at garbage collection).
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.unsupported: str | None = None
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock (no waiting); ``ConfigError`` naming the holder if another has it."""
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise ConfigError(
                f"run folder is in use by {holder}",
                path=self.path,
                fix="wait for that run to end or stop it (the lock goes with its process), "
                "or give this run another run.out",
            ) from None
        except OSError as exc:  # no flock on this file system: run unlocked
            os.close(fd)
            self.unsupported = exc.strerror or type(exc).__name__
            return self
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        line = f"pid {os.getpid()} on host {socket.gethostname()} since {started}\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, line.encode(), 0)
        self._fd = fd
        _HELD.add(fd)
        return self

    def release(self) -> None:
        """Give the lock up (the file stays; it names the last holder)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            _HELD.discard(fd)
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit the modules may be gone
            self.release()
