"""Axial slice extraction: foreground-fraction selection and a batched square resize."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from braindino.errors import VolumeError


class AxialSlices(NamedTuple):
    """Selected axial slices of a 3D array, zoomed and padded to ``size`` x ``size``.

    ``slices[k]`` is ``data[:, :, z[k]]`` (rows along axis 0, columns along axis 1), padded in
    front by ``pad_before`` (voxels, per axis) with the fill value to a square of side
    ``max(X, Y)`` and zoomed by ``scale = size / max(X, Y)``.
    """

    slices: np.ndarray  # float32 [n, size, size]
    z: np.ndarray  # int32 [n]
    foreground: np.ndarray  # float32 [n], foreground fraction of each selected slice
    scale: float
    pad_before: tuple[int, int]


def square_layout(shape_xy: tuple[int, int], size: int) -> tuple[float, tuple[int, int]]:
    """Zoom factor and front padding (voxels) that fit an X x Y slice centred in size x size."""
    side = max(shape_xy)
    pad = ((side - shape_xy[0]) // 2, (side - shape_xy[1]) // 2)
    return size / side, pad


def axial_slices(
    data: np.ndarray,
    size: int = 224,
    min_foreground: float = 0.05,
    foreground: np.ndarray | None = None,
    fill_value: float | None = None,
    antialias: bool = True,
) -> AxialSlices:
    """The axial slices ``data[:, :, z]`` whose foreground fraction is ``>= min_foreground``.

    The foreground fraction is the share of a slice's pixels that are set in ``foreground``
    (a boolean array shaped like ``data``; default ``data != 0``). Each kept slice is padded,
    centred, to a square with ``fill_value`` (default: the minimum of ``data``) and zoomed
    bilinearly to ``size`` x ``size``, so the longer side spans ``size`` and the aspect is kept;
    all slices go through one batched resize (anti-aliased when shrinking). Returns an empty
    stack when no slice qualifies. Use ``volume_to_slices`` for label maps.
    """
    import torch
    import torch.nn.functional as F

    if np.ndim(data) != 3:
        raise VolumeError(
            f"expected a 3D array, got shape {np.shape(data)}", path="data", fix="pass a 3D array"
        )
    if foreground is None:
        foreground = data != 0
    elif foreground.shape != data.shape:
        raise VolumeError(
            f"foreground mask shape {foreground.shape} differs from data shape {data.shape}",
            path="foreground",
            fix="pass a mask computed on the same array",
        )
    nx, ny, _ = data.shape
    fractions = np.count_nonzero(foreground, axis=(0, 1)) / float(nx * ny)
    z = np.flatnonzero(fractions >= min_foreground).astype(np.int32)
    scale, pad = square_layout((nx, ny), size)
    if z.size == 0:
        empty = np.zeros((0, size, size), np.float32)
        return AxialSlices(empty, z, np.zeros(0, np.float32), scale, pad)
    fill = float(np.min(data)) if fill_value is None else float(fill_value)
    side = max(nx, ny)
    chosen = torch.from_numpy(np.take(data, z, axis=2).astype(np.float32, copy=False))
    square = torch.empty((z.size, side, side), dtype=torch.float32)
    square[:, : pad[0]] = fill  # only the padding needs the fill value
    square[:, pad[0] + nx :] = fill
    square[:, :, : pad[1]] = fill
    square[:, :, pad[1] + ny :] = fill
    square[:, pad[0] : pad[0] + nx, pad[1] : pad[1] + ny] = chosen.permute(2, 0, 1)
    if side != size:
        square = F.interpolate(
            square[:, None],
            size=(size, size),
            mode="bilinear",
            align_corners=False,
            antialias=antialias and side > size,
        )[:, 0]
    return AxialSlices(
        square.numpy(), z, fractions[z].astype(np.float32), scale, (int(pad[0]), int(pad[1]))
    )
