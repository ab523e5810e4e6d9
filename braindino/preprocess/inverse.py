"""Mapping arrays between the source grid and a volume's preprocessed slices, both ways.

``volume_to_slices`` puts any array on the source grid (a label map, a probability map) onto
the same [n, size, size] slices that ``preprocess_volume`` made of the image;
``slices_to_volume`` writes per-slice arrays (e.g. a predicted segmentation) back onto the source
canonical RAS grid. Both compose resampling, crop, padding and zoom into one sampling per axis,
so a label goes through a single nearest-neighbour lookup each way.
"""

from __future__ import annotations

import numpy as np

from braindino.errors import BrainDinoError
from braindino.preprocess.geometry import (
    inside_crop,
    pixel_to_resampled,
    resampled_grid_of,
    resampled_to_pixel,
)
from braindino.preprocess.interpolate import check_order, sample_along_axis
from braindino.preprocess.types import SliceGeometry


def _check_z(z: np.ndarray, geometry: SliceGeometry) -> np.ndarray:
    z = np.asarray(z).astype(np.int64).ravel()
    low, high = geometry.crop_start[2], geometry.crop_stop[2]
    if z.size and (z.min() < low or z.max() >= high):
        raise BrainDinoError(
            f"slice indices must lie in the crop range [{low}, {high}), got {z.min()}..{z.max()}",
            path="z",
            fix="pass the z array of the SliceStack these slices came from",
        )
    return z


def _run(mask: np.ndarray) -> slice:
    """The contiguous run of True values in a monotone validity mask."""
    hits = np.flatnonzero(mask)
    return slice(int(hits[0]), int(hits[-1]) + 1) if hits.size else slice(0, 0)


def volume_to_slices(
    data: np.ndarray, z: np.ndarray, geometry: SliceGeometry, order: int = 0
) -> np.ndarray:
    """``data`` (on the source grid) as the [n, size, size] slices at resampled indices ``z``.

    Pixels outside the crop box (the padding) are 0. ``order=0`` (nearest, dtype kept) for
    label maps, ``order=1`` (linear, float32, no anti-aliasing) for continuous maps.
    """
    check_order(order)
    if tuple(np.shape(data)) != tuple(geometry.source_shape):
        raise BrainDinoError(
            f"array shape {np.shape(data)} differs from the source shape {geometry.source_shape}",
            path="data",
            fix="pass an array on the source (canonical RAS) grid of the preprocessed volume",
        )
    z = _check_z(z, geometry)
    grid = resampled_grid_of(geometry)
    size = geometry.size
    dtype = data.dtype if order == 0 else np.float32
    out = np.zeros((z.size, size, size), dtype=dtype)
    pixels = np.arange(size)
    runs, positions = [], []
    for axis in (0, 1):
        grid_pos = pixel_to_resampled(geometry, axis, pixels)
        run = _run(inside_crop(geometry, axis, grid_pos))
        runs.append(run)
        positions.append(grid.source_positions(axis, grid_pos[run]))
    if z.size == 0 or runs[0].stop == 0 or runs[1].stop == 0:
        return out
    block = sample_along_axis(np.asarray(data), 2, grid.source_positions(2, z), order)
    block = sample_along_axis(block, 0, positions[0], order)
    block = sample_along_axis(block, 1, positions[1], order)
    out[:, runs[0], runs[1]] = np.moveaxis(block, 2, 0)
    return out


def _stack_at_source_z(
    slices: np.ndarray, z: np.ndarray, geometry: SliceGeometry, order: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per source axial index: the slice values (interpolated in z); and which indices have any."""
    grid = resampled_grid_of(geometry)
    depth = grid.shape[2]
    lookup = np.full(depth + 1, len(z), dtype=np.int64)  # len(z) -> the all-zero slice
    lookup[z] = np.arange(len(z))
    padded = np.concatenate([slices, np.zeros((1, *slices.shape[1:]), slices.dtype)])
    position = np.clip(grid.grid_positions(2, np.arange(geometry.source_shape[2])), 0, depth - 1)
    if order == 0:
        nearest = lookup[np.floor(position + 0.5).astype(np.int64)]
        has = nearest < len(z)
        return padded[nearest[has]], has
    below = np.floor(position).astype(np.int64)
    weight = (position - below).astype(np.float32)
    first, second = lookup[below], lookup[np.minimum(below + 1, depth)]
    has = (first < len(z)) | (second < len(z))
    weight = weight[has][:, None, None]
    stack = padded[first[has]].astype(np.float32) * (1 - weight)
    stack += padded[second[has]].astype(np.float32) * weight
    return stack, has


def slices_to_volume(
    slice_arrays: np.ndarray, z: np.ndarray, geometry: SliceGeometry, order: int = 0
) -> np.ndarray:
    """Per-slice arrays [n, size, size] at resampled indices ``z`` back on the source grid.

    Returns an array of ``geometry.source_shape`` (the canonical RAS grid the volume was read
    on): voxels outside the crop box or nearest to no given slice are 0. ``order=0`` (nearest,
    dtype kept) for label maps, ``order=1`` (linear in-plane and between slices, float32; a
    missing neighbour slice counts as 0) for images and probabilities.
    """
    check_order(order)
    slice_arrays = np.asarray(slice_arrays)
    z = _check_z(z, geometry)
    size = geometry.size
    if slice_arrays.shape != (z.size, size, size):
        raise BrainDinoError(
            f"slice arrays have shape {slice_arrays.shape}, expected ({z.size}, {size}, {size})",
            path="slice_arrays",
            fix="pass one size x size array per entry of z",
        )
    grid = resampled_grid_of(geometry)
    dtype = slice_arrays.dtype if order == 0 else np.float32
    out = np.zeros(tuple(geometry.source_shape), dtype=dtype)
    if z.size == 0:
        return out
    stack, has = _stack_at_source_z(slice_arrays, z, geometry, order)
    runs, pixel_positions = [], []
    for axis in (0, 1):
        grid_pos = grid.grid_positions(axis, np.arange(geometry.source_shape[axis]))
        run = _run(inside_crop(geometry, axis, grid_pos))
        runs.append(run)
        pixel_positions.append(resampled_to_pixel(geometry, axis, grid_pos[run]))
    if not has.any() or runs[0].stop == 0 or runs[1].stop == 0:
        return out
    block = sample_along_axis(stack, 1, pixel_positions[0], order)
    block = sample_along_axis(block, 2, pixel_positions[1], order)
    out[runs[0], runs[1], np.flatnonzero(has)] = np.moveaxis(block, 0, 2)
    return out
