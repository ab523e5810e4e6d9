"""The foreground bounding box of a volume, with a margin given in millimetres."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from braindino.errors import VolumeError

Box = tuple[tuple[int, int, int], tuple[int, int, int]]


def foreground_box(
    data: np.ndarray,
    threshold: float = 0.0,
    margin: float = 0.0,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    min_plane_fraction: float = 0.0,
) -> Box:
    """``(start, stop)`` voxel indices (stop exclusive) of the voxels brighter than ``threshold``.

    ``margin`` is in millimetres: each side grows by ``ceil(margin / spacing)`` voxels on that
    axis (with the default unit spacing, millimetres and voxels agree), clipped to the volume.
    A plane (along any axis) whose foreground count is below ``min_plane_fraction`` times the
    fullest plane's does not widen the box, so isolated bright specks in the background of a
    non-skull-stripped image are ignored. For a skull-stripped image use ``threshold=0``.
    Raises ``VolumeError`` when no voxel is above ``threshold``.
    """
    if np.ndim(data) != 3:
        raise VolumeError(
            f"expected a 3D array, got shape {np.shape(data)}",
            path="data",
            fix="pass one 3D volume",
        )
    mask = data > threshold
    in_plane = np.count_nonzero(mask, axis=2)  # (X, Y) counts, then reduced further
    counts = (
        in_plane.sum(axis=1),
        in_plane.sum(axis=0),
        np.count_nonzero(mask, axis=(0, 1)),
    )
    start, stop = [], []
    for axis in range(3):
        min_count = max(1.0, min_plane_fraction * float(counts[axis].max(initial=0)))
        kept = np.flatnonzero(counts[axis] >= min_count)
        if kept.size == 0:
            raise VolumeError(
                f"no voxel is above the foreground threshold {threshold:g}",
                path="data",
                fix="lower the foreground threshold or check the image is not blank",
            )
        pad = math.ceil(margin / float(spacing[axis]) - 1e-9) if margin > 0 else 0
        start.append(max(0, int(kept[0]) - pad))
        stop.append(min(data.shape[axis], int(kept[-1]) + 1 + pad))
    return (start[0], start[1], start[2]), (stop[0], stop[1], stop[2])
