"""The one atomic-write helper every writer uses: temporary file, usual mode, ``os.replace``.

A file is written under a hidden temporary name next to its final path (``.NAME.<pid>.tmp``, plus
a suffix for writers that pick the format from it) and renamed over the final path only when
complete, so readers see the old file or the whole new one, never half of one. Before the rename
the file gets the mode a plain ``open()`` would give (``0o666`` minus the umask): libraries that
create files 0600 (safetensors, ``mkstemp``) would otherwise leave exports unreadable to a lab
group. A failed write removes its temporary file, and its error names the final path: a library
error raised by a full disk (torch's "unexpected pos", safetensors' "I/O error") becomes
``OSError(ENOSPC)``, so the command line reports it in one line (``braindino.cli.run_cli``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

#: Free bytes below which a failed write is taken to have hit a full disk.
FULL_DISK_BYTES = 1 << 20


def _umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc: read it by setting it (and put it back at once)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The permission bits a new file gets from ``open()`` here: ``0o666`` minus the umask."""
    return 0o666 & ~_umask()


def disk_full(folder: str | Path) -> bool:
    """Whether the file system holding ``folder`` has (almost) no space left for this user."""
    try:
        stats = os.statvfs(folder)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < FULL_DISK_BYTES


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def storage_error(exc: BaseException, path: Path, tmp: Path | None = None) -> BaseException:
    """``exc`` as an ``OSError`` naming ``path`` when it is one without a file name (or naming the
    temporary file ``tmp``), or as ``OSError(ENOSPC)`` when a library error (numpy's "N requested
    and M written", torch's "unexpected pos") came from a full disk; else ``exc`` itself."""
    if isinstance(exc, OSError) and exc.errno is not None:
        if exc.filename in (None, "", str(tmp)):
            return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))
        return exc
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, OSError) and cause.errno is not None:  # e.g. torch.save's RuntimeError
        return OSError(cause.errno, cause.strerror or os.strerror(cause.errno), str(path))
    if isinstance(exc, Exception) and disk_full(path.parent):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return exc


class AtomicFile:
    """A temporary file ``tmp`` that becomes ``path`` on ``commit()``.

    As a context manager it commits when the block succeeds and discards the temporary file when
    it raises. ``suffix`` ends the temporary name (``.nii.gz`` for writers that choose the format
    from the name); ``fsync`` flushes the file and its folder to disk (checkpoints, shards).
    """

    def __init__(self, path: str | Path, suffix: str = "", fsync: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp{suffix}")
        self.fsync = fsync

    def commit(self) -> Path:
        """Give the temporary file the usual mode, (fsync it,) and rename it to ``path``."""
        try:
            os.chmod(self.tmp, file_mode())
            if self.fsync:
                _fsync(self.tmp)
            os.replace(self.tmp, self.path)
        except BaseException as exc:
            self.discard()
            error = storage_error(exc, self.path, self.tmp)
            if error is exc:
                raise
            raise error from exc
        if self.fsync:  # some file systems do not allow opening a folder
            with contextlib.suppress(OSError):
                _fsync(self.path.parent)
        return self.path

    def discard(self) -> None:
        """Remove the temporary file (if any)."""
        with contextlib.suppress(OSError):
            self.tmp.unlink()

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.commit()
            return
        error = storage_error(exc, self.path, self.tmp)  # before discarding: the disk is still full
        self.discard()
        if error is not exc:
            raise error from exc


def atomic_write(
    path: str | Path, write: Callable[[Any], None], mode: str = "wb", fsync: bool = False
) -> Path:
    """Write ``path`` through ``write(handle)`` (``mode`` ``"wb"`` or ``"w"``, UTF-8) atomically."""
    encoding = None if "b" in mode else "utf-8"
    with AtomicFile(path, fsync=fsync) as target, open(target.tmp, mode, encoding=encoding) as h:
        write(h)  # the handle closes before the file is committed
    return target.path


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as sorted, indented JSON, atomically."""
    text = json.dumps(obj, indent=1, sort_keys=True) + "\n"
    atomic_write(path, lambda handle: handle.write(text), mode="w")


def read_json(path: str | Path) -> Any:
    """The JSON value in ``path``, or ``None`` when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def save_npy_atomic(path: str | Path, array: np.ndarray) -> None:
    """``np.save`` into ``path``, atomically."""
    atomic_write(path, lambda handle: np.save(handle, array, allow_pickle=False))
