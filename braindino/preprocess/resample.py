"""Resampling a RAS volume to a target voxel spacing with exact affine bookkeeping.

The new grid covers the same field of view, starting at the same edge: along each axis, new
voxel ``j`` has its centre at source index ``x = step * j + (step - 1) / 2`` (``step`` = new
spacing / old spacing), i.e. voxel edges line up at the start of the axis. The new affine is
``source_affine @ T`` with ``T`` that scale + shift, so both grids map to the same physical space
(voxel centres as nibabel defines them). Axes whose spacing already matches are left untouched.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from braindino.errors import VolumeError
from braindino.io.volume import Volume
from braindino.preprocess.interpolate import (
    antialias_sigma,
    check_order,
    gaussian_reach,
    sample_along_axis,
    smooth_along_axis,
)

DEFAULT_TOLERANCE = 1e-3  # relative spacing difference below which an axis is not resampled


@dataclass(frozen=True)
class ResampledGrid:
    """A target grid expressed in source voxel indices: ``x = step * j + shift`` per axis."""

    shape: tuple[int, int, int]
    affine: np.ndarray
    step: tuple[float, float, float]
    shift: tuple[float, float, float]

    @property
    def is_identity(self) -> bool:
        """True when the grid is the source grid itself (nothing to interpolate)."""
        return all(s == 1.0 for s in self.step) and all(t == 0.0 for t in self.shift)

    def source_positions(self, axis: int, indices: np.ndarray) -> np.ndarray:
        """Source voxel positions (fractional indices) of grid ``indices`` along ``axis``."""
        return self.step[axis] * np.asarray(indices, dtype=np.float64) + self.shift[axis]

    def grid_positions(self, axis: int, source_indices: np.ndarray) -> np.ndarray:
        """Grid positions (fractional indices) of source voxel ``source_indices`` along ``axis``."""
        return (np.asarray(source_indices, dtype=np.float64) - self.shift[axis]) / self.step[axis]


def _target_spacing(spacing: float | Sequence[float] | None) -> tuple[float, ...] | None:
    if spacing is None:
        return None
    items = [spacing] * 3 if np.isscalar(spacing) else list(spacing)  # type: ignore[list-item]
    if len(items) != 3 or not all(np.isfinite(v) and v > 0 for v in items):
        raise VolumeError(
            f"target spacing must be three positive numbers, got {spacing!r}",
            path="spacing",
            fix="pass e.g. spacing=(1.0, 1.0, 1.0), or None to keep the source spacing",
        )
    return tuple(float(v) for v in items)


def resampled_grid(
    shape: Sequence[int],
    affine: np.ndarray,
    spacing: float | Sequence[float] | None = (1.0, 1.0, 1.0),
    tolerance: float = DEFAULT_TOLERANCE,
) -> ResampledGrid:
    """The grid with voxel size ``spacing`` (mm) over the field of view of (shape, affine).

    Axes whose spacing is within ``tolerance`` (relative) of the target keep the source grid.
    ``spacing=None`` returns the source grid itself.
    """
    affine = np.asarray(affine, dtype=np.float64)
    source_spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    target = _target_spacing(spacing)
    steps, shifts, sizes = [], [], []
    for axis in range(3):
        n, old = int(shape[axis]), float(source_spacing[axis])
        new = old if target is None else target[axis]
        keep = abs(new - old) <= tolerance * new  # this axis keeps the source grid
        step = 1.0 if keep else new / old
        steps.append(step)
        shifts.append((step - 1.0) / 2.0)
        sizes.append(n if keep else max(1, round(n / step)))
    transform = np.diag([*steps, 1.0])
    transform[:3, 3] = shifts
    return ResampledGrid(
        shape=(sizes[0], sizes[1], sizes[2]),
        affine=affine @ transform,
        step=(steps[0], steps[1], steps[2]),
        shift=(shifts[0], shifts[1], shifts[2]),
    )


def resample_block(
    data: np.ndarray,
    grid: ResampledGrid,
    start: Sequence[int],
    stop: Sequence[int],
    order: int = 1,
    antialias: bool = True,
) -> np.ndarray:
    """The grid voxels ``[start, stop)`` of ``data`` resampled onto ``grid``.

    Reads only the source region those voxels need (plus the anti-aliasing filter's reach), so
    cropping first and resampling the crop gives the same values as cropping the full result.
    ``order`` 1 (linear, float32 out, Gaussian pre-filter on downsampled axes when
    ``antialias``) for images, 0 (nearest, dtype kept) for label maps.
    """
    positions, sigmas, region = [], [], []
    for axis in range(3):
        pos = grid.source_positions(axis, np.arange(start[axis], stop[axis]))
        sigma = antialias_sigma(grid.step[axis]) if (antialias and order == 1) else 0.0
        reach = gaussian_reach(sigma)
        low = max(0, math.floor(pos.min()) - reach)
        region.append(slice(low, min(data.shape[axis], math.floor(pos.max()) + 2 + reach)))
        positions.append(pos - low)  # relative to the region read
        sigmas.append(sigma)
    block = data[tuple(region)]
    # Shrinking axes first keeps the intermediate arrays small.
    for axis in sorted(range(3), key=lambda a: -grid.step[a]):
        block = smooth_along_axis(block, axis, sigmas[axis]) if sigmas[axis] > 0 else block
        block = sample_along_axis(block, axis, positions[axis], order)
    if order == 1:
        block = block.astype(np.float32, copy=False)
    return block


def resample(
    volume: Volume,
    spacing: float | Sequence[float] | None = (1.0, 1.0, 1.0),
    order: int = 1,
    antialias: bool = True,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Volume:
    """``volume`` on a grid of voxel size ``spacing`` mm, same physical space, exact affine.

    ``order=1`` (linear, float32) for images, ``order=0`` (nearest, dtype kept) for label maps.
    When every axis already matches within ``tolerance`` (relative), ``volume`` is returned
    as it is, without copying.
    """
    if np.ndim(volume.data) != 3:
        raise VolumeError(
            f"expected a 3D volume, got shape {np.shape(volume.data)}",
            path=volume.path,
            fix="pick one volume of a 4D series before resampling",
        )
    check_order(order)
    grid = resampled_grid(volume.shape, volume.affine, spacing, tolerance)
    if grid.is_identity:
        return volume
    data = resample_block(volume.data, grid, (0, 0, 0), grid.shape, order, antialias)
    return volume.with_data(np.ascontiguousarray(data), affine=grid.affine)
