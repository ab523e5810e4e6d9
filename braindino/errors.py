"""The one exception type for problems a user can fix, and its few subclasses."""

from __future__ import annotations

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
