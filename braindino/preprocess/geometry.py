"""Coordinate maps between slice pixels, the resampled grid and the source grid."""

from __future__ import annotations

import numpy as np

from braindino.errors import BrainDinoError
from braindino.preprocess.resample import ResampledGrid
from braindino.preprocess.types import SliceGeometry


def resampled_grid_of(geometry: SliceGeometry) -> ResampledGrid:
    """The resampled grid of ``geometry`` in source voxel indices (from its two affines)."""
    transform = np.linalg.solve(
        np.asarray(geometry.source_affine, np.float64),
        np.asarray(geometry.resampled_affine, np.float64),
    )
    linear = transform[:3, :3]
    step = np.diag(linear).copy()
    if np.abs(linear - np.diag(step)).max() > 1e-6 * np.abs(step).max() or (step <= 0).any():
        raise BrainDinoError(
            "the resampled grid is not an axis-aligned zoom of the source grid",
            path="geometry",
            fix="use the SliceGeometry that preprocess_volume returned, unmodified",
        )
    shift = transform[:3, 3]
    return ResampledGrid(
        shape=tuple(int(s) for s in geometry.resampled_shape),  # type: ignore[arg-type]
        affine=np.asarray(geometry.resampled_affine, np.float64),
        step=(float(step[0]), float(step[1]), float(step[2])),
        shift=(float(shift[0]), float(shift[1]), float(shift[2])),
    )


def pixel_to_resampled(geometry: SliceGeometry, axis: int, pixels: np.ndarray) -> np.ndarray:
    """Resampled-grid positions of slice pixel indices along in-plane ``axis`` (0 or 1)."""
    pixels = np.asarray(pixels, dtype=np.float64)
    origin = geometry.crop_start[axis] - geometry.pad_before[axis]
    return origin + (pixels + 0.5) / geometry.slice_scale - 0.5


def resampled_to_pixel(geometry: SliceGeometry, axis: int, positions: np.ndarray) -> np.ndarray:
    """Slice pixel positions of resampled-grid positions along in-plane ``axis`` (0 or 1)."""
    positions = np.asarray(positions, dtype=np.float64)
    origin = geometry.crop_start[axis] - geometry.pad_before[axis]
    return (positions - origin + 0.5) * geometry.slice_scale - 0.5


def inside_crop(geometry: SliceGeometry, axis: int, positions: np.ndarray) -> np.ndarray:
    """Whether the resampled voxel nearest to each position lies inside the crop box."""
    nearest = np.floor(np.asarray(positions, dtype=np.float64) + 0.5)
    return (nearest >= geometry.crop_start[axis]) & (nearest < geometry.crop_stop[axis])


def slice_pixel_affine(geometry: SliceGeometry, z: int) -> np.ndarray:
    """4x4 affine taking (row, column, 0) of the slice at resampled index ``z`` to RAS mm.

    Useful to save a slice (or a per-slice prediction) as a correctly placed 2D image, or to
    look up the physical position of any pixel.
    """
    inverse_scale = 1.0 / geometry.slice_scale
    to_grid = np.eye(4)
    for axis in (0, 1):
        to_grid[axis, axis] = inverse_scale
        to_grid[axis, 3] = float(pixel_to_resampled(geometry, axis, np.zeros(1))[0])
    to_grid[2, 3] = float(z)
    return np.asarray(geometry.resampled_affine, np.float64) @ to_grid
