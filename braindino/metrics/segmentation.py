"""Segmentation overlap and surface-distance metrics on boolean masks, BraTS conventions.

Empty masks are scored the way the BraTS challenge scores them:

- prediction and truth both empty (the region is absent and the model says so):
  Dice 1, HD95 0;
- exactly one of them empty: Dice 0, HD95 = :data:`HD95_EMPTY_MM` (373.13 mm, the diagonal of
  BraTS's 240 × 240 × 155 mm image, ``sqrt(240² + 240² + 155²)``) — the worst distance possible
  in that image, so a missed or hallucinated region is not silently dropped from the mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from braindino.metrics._inputs import require, to_numpy

HD95_EMPTY_MM = 373.13


def _mask(values: Any, where: str) -> np.ndarray:
    array = to_numpy(values)
    if array.dtype != bool:
        require(
            np.issubdtype(array.dtype, np.number) and bool(np.all(np.isin(array, (0, 1)))),
            where,
            f"expected a boolean mask, got {array.dtype} values other than 0/1",
            "pass one region as a mask, e.g. label == 4 (or np.isin(label, (1, 2, 4)) for WT)",
        )
        array = array.astype(bool)
    require(
        array.ndim in (2, 3) and array.size > 0,
        where,
        f"expected a 3-D (or 2-D) mask, got shape {array.shape}",
        "pass the volume's mask as an array shaped like the image",
    )
    return array


def _masks(pred: Any, target: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    predicted = _mask(pred, f"{name}(pred)")
    truth = _mask(target, f"{name}(target)")
    require(
        predicted.shape == truth.shape,
        f"{name}(pred)",
        f"shape {predicted.shape} differs from target's {truth.shape}",
        "resample the prediction onto the ground-truth grid first",
    )
    return predicted, truth


def dice(pred: Any, target: Any) -> float:
    """Dice 2|P∩T| / (|P| + |T|) of two boolean masks; 1 when both are empty (BraTS)."""
    predicted, truth = _masks(pred, target, "dice")
    total = int(predicted.sum()) + int(truth.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(predicted, truth).sum()) / total


def _surface(mask: np.ndarray) -> np.ndarray:
    """Mask voxels with a face neighbour outside the mask (the image edge counts as outside)."""
    face_neighbours = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=face_neighbours, border_value=0)


def _spacing(spacing: Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    values = tuple(float(s) for s in to_numpy(spacing).reshape(-1))
    require(
        len(values) == ndim and all(np.isfinite(values)) and all(v > 0 for v in values),
        "hd95(spacing)",
        f"expected {ndim} positive voxel sizes in mm (one per array axis), got {values}",
        "pass volume.spacing of the image the masks come from",
    )
    return values


def hd95(
    pred: Any,
    target: Any,
    spacing: Sequence[float] | None = None,
    percentile: float = 95.0,
    empty_distance: float = HD95_EMPTY_MM,
) -> float:
    """95th percentile of the symmetric surface distances between two boolean masks, in mm.

    Surfaces are the mask voxels with a face neighbour outside the mask. Every surface voxel of
    each mask gets its Euclidean distance (voxel size ``spacing`` per array axis, in mm; default
    1) to the nearest surface voxel of the other mask; the result is the ``percentile`` of the
    pooled distances of both directions (``percentile=100`` is the Hausdorff distance). Both
    masks empty: 0; exactly one empty: ``empty_distance`` (BraTS: 373.13 mm; see the module
    docstring).
    """
    predicted, truth = _masks(pred, target, "hd95")
    voxel_size = _spacing(spacing, predicted.ndim)
    require(
        isinstance(percentile, (int, float)) and 0 <= percentile <= 100,
        "hd95(percentile)",
        f"must be in [0, 100], got {percentile!r}",
        "use 95 (BraTS) or 100 (Hausdorff distance)",
    )
    has_pred, has_truth = bool(predicted.any()), bool(truth.any())
    if not has_pred and not has_truth:
        return 0.0
    if not (has_pred and has_truth):
        return float(empty_distance)
    # Work inside the bounding box of both masks, one voxel wider: all surface voxels and
    # their nearest partners lie inside it, so distances are unchanged and far cheaper.
    occupied = np.argwhere(predicted | truth)
    low = np.maximum(occupied.min(axis=0) - 1, 0)
    high = np.minimum(occupied.max(axis=0) + 2, predicted.shape)
    box = tuple(slice(a, b) for a, b in zip(low, high))
    pred_surface, truth_surface = _surface(predicted[box]), _surface(truth[box])
    to_truth = ndimage.distance_transform_edt(~truth_surface, sampling=voxel_size)
    to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=voxel_size)
    distances = np.concatenate([to_truth[pred_surface], to_pred[truth_surface]])
    return float(np.percentile(distances, percentile))
