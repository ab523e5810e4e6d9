"""The one exception type for problems a user can fix, and its few subclasses."""

from __future__ import annotations

import errno
from pathlib import Path


class BrainDinoError(Exception):
    """A user-facing problem: what went wrong, where (file or key), and how to fix it.

    ``str(err)`` is a single line: ``"<where>: <problem>. Fix: <fix>"``. CLIs print it and exit
    non-zero instead of showing a traceback.
    """

    def __init__(self, problem: str, path: str | Path | None = None, fix: str | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        self.fix = fix
        super().__init__(self._line())

    def _line(self) -> str:
        text = " ".join(self.problem.split()).rstrip(".")  # always one line
        if self.path:
            text = f"{self.path}: {text}"
        if self.fix:
            fix = self.fix.rstrip(".")
            text = f"{text}. Fix: {fix}{'' if fix.endswith(('?', '!')) else '.'}"
        return text


class VolumeError(BrainDinoError):
    """A volume that cannot be read or used (corrupt, wrong dimensionality, bad voxels)."""


class ConfigError(BrainDinoError):
    """A configuration problem: an unknown key, a wrong type, a missing file."""


class DataError(BrainDinoError):
    """A data-set problem: a missing column, label, folder or shard."""


class StorageError(BrainDinoError):
    """A file that cannot be written: read-only file system, no permission, disk or quota full."""


#: errno -> (what happened, what to do) for the storage problems a user can fix.
_STORAGE = {
    errno.EROFS: (
        "cannot write: the file system is read-only",
        "write to a folder on a writable disk (another output folder)",
    ),
    errno.EACCES: (
        "permission denied",
        "use a path you have access to, or fix its permissions (ls -ld shows the owner)",
    ),
    errno.EPERM: (
        "operation not permitted",
        "use a path you have access to, or fix its permissions (ls -ld shows the owner)",
    ),
    errno.ENOSPC: (
        "no space left on device",
        "free space on that disk (df -h) or write elsewhere, then run the command again: "
        "files finished before were kept",
    ),
    errno.EDQUOT: (
        "disk quota exceeded",
        "free space within your quota (quota -s) or write elsewhere, then run the command "
        "again: files finished before were kept",
    ),
}


def storage_problem(exc: BaseException) -> StorageError | None:
    """The one-line ``StorageError`` for ``exc`` when it is (or was caused by) an ``OSError`` of
    a read-only file system, a missing permission or a full disk/quota; else ``None``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _STORAGE:
            problem, fix = _STORAGE[current.errno]
            path = current.filename if current.filename not in (None, "") else None
            return StorageError(problem, path=path, fix=fix)
        current = current.__cause__ or current.__context__
    return None
