"""The whole preprocessing chain of one volume: RAS volume in, stored axial slices out.

resample -> robust z-score -> foreground crop -> axial slices -> uint8. For speed the order
of work differs from the order of meaning: intensity statistics come from the source voxels
(a strided subsample), the crop box is found on the source grid, and only the cropped region
is resampled; the result equals resampling everything and cropping afterwards.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from omegaconf import DictConfig

from braindino.errors import VolumeError
from braindino.io.volume import Volume
from braindino.preprocess.crop import foreground_box
from braindino.preprocess.intensity import intensity_stats, to_uint8
from braindino.preprocess.resample import ResampledGrid, resample_block, resampled_grid
from braindino.preprocess.settings import PreprocessSettings, resolve_settings
from braindino.preprocess.slices import axial_slices
from braindino.preprocess.types import SliceGeometry, SliceStack


def source_box_to_grid(
    grid: ResampledGrid, start: tuple[int, ...], stop: tuple[int, ...]
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """The grid voxels whose centres fall inside the source voxel box ``[start, stop)``."""
    first, last = [], []
    for axis in range(3):
        step, shift = grid.step[axis], grid.shift[axis]
        low = math.ceil((start[axis] - 0.5 - shift) / step - 1e-9)
        high = math.ceil((stop[axis] - 0.5 - shift) / step - 1e-9)
        low = min(max(low, 0), grid.shape[axis] - 1)
        high = min(max(high, low + 1), grid.shape[axis])
        first.append(low)
        last.append(high)
    return (first[0], first[1], first[2]), (last[0], last[1], last[2])


def preprocess_volume(
    volume: Volume, cfg: DictConfig | Mapping | PreprocessSettings | None = None
) -> SliceStack:
    """Resample, normalise, crop and slice ``volume``; the slices stored as ``cfg`` says.

    ``cfg``: a preprocessing config (``preprocess_config(...)``), a partial mapping of
    overrides, or ``None`` for the defaults of ``configs/data/preprocess.yaml``. Returns a
    ``SliceStack`` whose ``geometry`` maps every slice back to the source grid. Raises
    ``VolumeError`` naming the file for empty, constant or non-finite volumes and for volumes
    without any slice above the foreground threshold.
    """
    settings = resolve_settings(cfg)
    data = volume.data
    if np.ndim(data) != 3 or min(np.shape(data)) < 1:
        raise VolumeError(
            f"expected a 3D volume, got shape {np.shape(data)}",
            path=volume.path,
            fix="pick one volume of a 4D series: read_volume(path, volume_index=N), or "
            "--volume-index N (pretrain/prepare.py, python -m braindino.check)",
        )
    stats = intensity_stats(
        data,
        settings.lower_percentile,
        settings.upper_percentile,
        settings.max_samples,
        path=volume.path,
    )
    threshold = stats.threshold(settings.foreground_threshold)
    grid = resampled_grid(volume.shape, volume.affine, settings.spacing, settings.spacing_tolerance)
    if settings.crop:
        src_start, src_stop = foreground_box(
            data, threshold, settings.margin_mm, volume.spacing, settings.min_plane_fraction
        )
        start, stop = source_box_to_grid(grid, src_start, src_stop)
    else:
        start, stop = (0, 0, 0), grid.shape
    block = resample_block(data, grid, start, stop, order=1, antialias=settings.antialias)
    slices = axial_slices(
        stats.apply(block),
        size=settings.size,
        min_foreground=settings.min_foreground,
        foreground=block > threshold,
        fill_value=stats.z_low,
        antialias=settings.antialias,
    )
    if slices.z.size == 0:
        raise VolumeError(
            f"no axial slice has a foreground fraction >= {settings.min_foreground:g}",
            path=volume.path,
            fix="lower slices.min_foreground or foreground.threshold, or check the image",
        )
    if not np.isfinite(slices.slices).all():
        raise VolumeError(
            "the volume has NaN or infinite voxels",
            path=volume.path,
            fix="replace them (e.g. with 0) or re-export the image",
        )
    if settings.storage_dtype == "uint8":
        stored, scale, offset = to_uint8(slices.slices, (stats.z_low, stats.z_high))
    else:
        stored, scale, offset = slices.slices.astype(np.float16), 1.0, 0.0
    geometry = SliceGeometry(
        source_shape=volume.shape,
        source_affine=np.asarray(volume.affine, np.float64).copy(),
        resampled_shape=grid.shape,
        resampled_affine=grid.affine,
        crop_start=start,
        crop_stop=stop,
        slice_scale=slices.scale,
        pad_before=slices.pad_before,
        size=settings.size,
    )
    return SliceStack(
        slices=stored,
        z=(slices.z + start[2]).astype(np.int32),
        scale=float(scale),
        offset=float(offset),
        foreground=slices.foreground,
        geometry=geometry,
    )
