"""Separable sampling: values of an array at fractional positions along one axis at a time.

Every geometric step of preprocessing (resampling, the slice zoom's inverse, label mapping) is an
axis-aligned scale + shift in voxel-index space, so it factors into one 1D sampling per axis.
Positions follow nibabel's convention: index ``i`` is the centre of voxel ``i``; positions
outside ``[0, n - 1]`` take the edge value.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from braindino.errors import VolumeError

GAUSS_TRUNCATE = 4.0  # Gaussian kernels reach this many sigmas on each side


def check_order(order: int) -> None:
    """Raise ``VolumeError`` unless ``order`` is 0 (nearest, labels) or 1 (linear, images)."""
    if order not in (0, 1):
        raise VolumeError(
            f"order must be 0 (nearest, labels) or 1 (linear, images), got {order}",
            path="order",
            fix="pass order=0 for label maps or order=1 for images",
        )


def sample_along_axis(
    array: np.ndarray, axis: int, positions: np.ndarray, order: int
) -> np.ndarray:
    """``array`` sampled at fractional ``positions`` along ``axis`` (0 nearest, 1 linear).

    Nearest keeps the dtype (labels stay labels); linear returns float32. Positions are clamped
    to ``[0, n - 1]`` (edge values). A run of consecutive integer positions is returned as a view.
    """
    n = array.shape[axis]
    positions = np.clip(np.asarray(positions, dtype=np.float64), 0.0, n - 1)
    if positions.size and _is_integer_run(positions):
        start = int(positions[0])
        index = [slice(None)] * array.ndim
        index[axis] = slice(start, start + positions.size)
        view = array[tuple(index)]
        return view if order == 0 else view.astype(np.float32, copy=False)
    if order == 0:
        return np.take(array, np.floor(positions + 0.5).astype(np.intp), axis=axis)
    if order != 1:
        raise ValueError(f"order must be 0 (nearest) or 1 (linear), got {order}")
    if n == 1:
        return np.take(array, np.zeros(positions.size, np.intp), axis=axis).astype(np.float32)
    low = np.minimum(np.floor(positions).astype(np.intp), n - 2)
    weight = (positions - low).astype(np.float32)
    shape = [1] * array.ndim
    shape[axis] = -1
    weight = weight.reshape(shape)
    below = np.take(array, low, axis=axis).astype(np.float32, copy=False)
    above = np.take(array, low + 1, axis=axis).astype(np.float32, copy=False)
    above -= below
    above *= weight
    above += below
    return above


def _is_integer_run(positions: np.ndarray) -> bool:
    first = positions[0]
    if first != np.floor(first):
        return False
    return bool(np.array_equal(positions, first + np.arange(positions.size)))


def antialias_sigma(step: float) -> float:
    """Gaussian sigma (in source voxels) applied before sampling every ``step`` voxels (0: none)."""
    return max(0.0, (step - 1.0) / 2.0)


def gaussian_reach(sigma: float) -> int:
    """How many voxels a Gaussian pre-filter of ``sigma`` reads on each side."""
    return int(GAUSS_TRUNCATE * sigma + 0.5) if sigma > 0 else 0


def smooth_along_axis(array: np.ndarray, axis: int, sigma: float) -> np.ndarray:
    """Gaussian low-pass along one axis (edge values extended), float32 out."""
    data = array.astype(np.float32, copy=False)
    if sigma <= 0:
        return data
    return gaussian_filter1d(data, sigma, axis=axis, mode="nearest", truncate=GAUSS_TRUNCATE)
