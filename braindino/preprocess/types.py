"""What preprocessing hands to storage and back to inverse mapping."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SliceGeometry:
    """Everything needed to map per-slice arrays back onto the source (RAS) voxel grid.

    ``source_shape``/``source_affine``: the canonical RAS volume before preprocessing.
    ``resampled_shape``/``resampled_affine``: after resampling to the target spacing.
    ``crop_start``/``crop_stop``: the foreground box in resampled voxel indices (stop exclusive).
    ``pad_before``: (axis 0, axis 1) padding, in resampled voxels, added in front of the cropped
    slice to make it square (side ``max`` of the crop's in-plane extents, centred);
    ``slice_scale``: the zoom from that square to ``size`` x ``size`` pixels (``size / side``).
    So slice pixel ``u`` along axis ``a`` (0 or 1) has its centre at resampled index
    ``crop_start[a] - pad_before[a] + (u + 0.5) / slice_scale - 0.5``; the resampled grid relates
    to the source grid through the two affines (``inv(source_affine) @ resampled_affine``).
    """

    source_shape: tuple[int, int, int]
    source_affine: np.ndarray
    resampled_shape: tuple[int, int, int]
    resampled_affine: np.ndarray
    crop_start: tuple[int, int, int]
    crop_stop: tuple[int, int, int]
    slice_scale: float
    pad_before: tuple[int, int]
    size: int


@dataclass
class SliceStack:
    """The preprocessed axial slices of one volume.

    ``slices``: uint8 ``[n, size, size]``; the robust z-scored intensity of a pixel is
    ``slices * scale + offset``. ``z``: int32 ``[n]``, each slice's index along axis 2 of the
    resampled, uncropped volume (so ``crop_start[2] <= z < crop_stop[2]``).
    ``foreground``: float32 ``[n]``, each slice's foreground fraction.
    """

    slices: np.ndarray
    z: np.ndarray
    scale: float
    offset: float
    foreground: np.ndarray
    geometry: SliceGeometry
