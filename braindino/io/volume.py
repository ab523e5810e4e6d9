"""The in-memory volume every layer passes around: RAS+ float32 voxels and their affine."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Volume:
    """A 3D image in canonical RAS+ voxel order.

    ``data[i, j, k]``: axis 0 runs towards Right, axis 1 towards Anterior, axis 2 towards
    Superior, so ``data[:, :, z]`` is an axial slice. ``affine`` maps voxel indices to RAS
    millimetres and always agrees with ``data``. ``path`` is where it came from (or ``None``).
    ``meta`` carries small extras (e.g. the source orientation code).
    """

    data: np.ndarray
    affine: np.ndarray
    path: str | None = None
    meta: dict = field(default_factory=dict)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the three array axes (column norms of the affine)."""
        norms = np.sqrt((np.asarray(self.affine)[:3, :3] ** 2).sum(axis=0))
        return (float(norms[0]), float(norms[1]), float(norms[2]))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape (X, Y, Z)."""
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    def with_data(self, data: np.ndarray, affine: np.ndarray | None = None) -> Volume:
        """A copy sharing path and meta, with new voxels (and optionally a new affine)."""
        return Volume(
            data=data,
            affine=self.affine.copy() if affine is None else affine,
            path=self.path,
            meta=dict(self.meta),
        )
