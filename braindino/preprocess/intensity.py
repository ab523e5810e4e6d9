"""Robust intensity normalisation (the BrainDINO recipe) and the uint8 storage mapping.

Recipe: take the non-zero voxels; clip the whole volume to their ``lower``/``upper``
percentiles; z-score by the mean and standard deviation of the non-zero voxels *after* clipping
(so the outliers the clip removes cannot inflate the spread). Background voxels are clipped
too, so every output lies in ``[z_low, z_high]``, the z-scores of the two clip values, and the
background of a skull-stripped image becomes ``z_low`` (uint8 0 in storage).

For speed, large volumes are summarised from an evenly strided subsample of at most
``max_samples`` voxels. With ``n`` non-zero samples, a percentile's rank is off by about
``sqrt(p (1 - p) / n)`` (~1e-4 for the 1st percentile at n = 1e6) and the mean by about
``std / sqrt(n)``; ``max_samples=0`` (or ``None``) uses every voxel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from braindino.errors import VolumeError

DEFAULT_MAX_SAMPLES = 1_000_000
UINT8_LEVELS = 255


@dataclass(frozen=True)
class IntensityStats:
    """Clip values (raw intensity units) and the mean/std that z-score the clipped data."""

    lower_value: float
    upper_value: float
    mean: float
    std: float

    @property
    def z_low(self) -> float:
        """z-score of the lower clip value: the smallest normalised intensity."""
        return (self.lower_value - self.mean) / self.std

    @property
    def z_high(self) -> float:
        """z-score of the upper clip value: the largest normalised intensity."""
        return (self.upper_value - self.mean) / self.std

    def threshold(self, fraction: float) -> float:
        """The raw intensity ``fraction`` of the way from the lower to the upper clip value."""
        return self.lower_value + fraction * (self.upper_value - self.lower_value)

    def apply(self, data: np.ndarray) -> np.ndarray:
        """Clip ``data`` to the clip values and z-score it (float32, new array)."""
        out = np.clip(data, self.lower_value, self.upper_value).astype(np.float32, copy=False)
        out -= np.float32(self.mean)
        out *= np.float32(1.0 / self.std)
        return out


def _nonzero_sample(data: np.ndarray, max_samples: int | None) -> np.ndarray:
    flat = np.ravel(data)
    if max_samples and flat.size > max_samples:
        flat = flat[:: -(-flat.size // max_samples)]
    return flat[flat != 0].astype(np.float64)


def intensity_stats(
    data: np.ndarray,
    lower: float = 1.0,
    upper: float = 99.0,
    max_samples: int | None = DEFAULT_MAX_SAMPLES,
    path: str | None = None,
) -> IntensityStats:
    """Clip values (``lower``/``upper`` percentiles of the non-zero voxels) and post-clip mean/std.

    Raises ``VolumeError`` (naming ``path``) for an empty (all zero) volume, non-finite voxels,
    or a volume whose non-zero voxels are constant between the two percentiles.
    """
    where = path or "data"
    if not 0.0 <= lower < upper <= 100.0:
        raise VolumeError(
            f"percentiles must satisfy 0 <= lower < upper <= 100, got {lower} and {upper}",
            path="lower/upper",
            fix="use e.g. lower=1.0, upper=99.0",
        )
    values = _nonzero_sample(data, max_samples)
    if values.size == 0:
        values = _nonzero_sample(data, None)  # a sparse volume may hide from the subsample
    if values.size == 0:
        raise VolumeError(
            "the volume is empty (every voxel is zero)",
            path=where,
            fix="check the file holds an image (not an empty mask) and re-export it",
        )
    if not np.isfinite(values).all():
        raise VolumeError(
            "the volume has NaN or infinite voxels",
            path=where,
            fix="replace them (e.g. with 0) or re-export the image",
        )
    low, high = np.percentile(values, [lower, upper])
    clipped = np.clip(values, low, high)
    mean, std = float(clipped.mean()), float(clipped.std())
    if not high > low or not std > 0:
        raise VolumeError(
            f"the volume's non-zero intensities are constant ({low:g}) between the "
            f"{lower:g}th and {upper:g}th percentiles",
            path=where,
            fix="check it is an image, not a mask or a blank series",
        )
    return IntensityStats(float(low), float(high), mean, std)


def robust_normalise(
    data: np.ndarray, *args: Any, **kwargs: Any
) -> tuple[np.ndarray, IntensityStats]:
    """Clip to the percentiles of the non-zero voxels and z-score by their post-clip mean/std.

    Takes the arguments of ``intensity_stats`` (``lower``, ``upper``, ``max_samples``, ``path``).
    Returns the float32 normalised array and the ``IntensityStats`` used. Raises
    ``VolumeError`` for empty, constant or non-finite input.
    """
    stats = intensity_stats(data, *args, **kwargs)
    return stats.apply(data), stats


def to_uint8(data: np.ndarray, value_range: tuple[float, float]) -> tuple[np.ndarray, float, float]:
    """Store ``data`` as uint8 over ``value_range``: returns ``(codes, scale, offset)``.

    ``data ~= codes * scale + offset`` with ``offset = value_range[0]`` and ``scale =
    (high - low) / 255``; the error is at most ``scale / 2`` inside the range, values outside
    it are clipped to its ends.
    """
    low, high = float(value_range[0]), float(value_range[1])
    if not (np.isfinite(low) and np.isfinite(high) and high > low):
        raise VolumeError(
            f"value_range must be finite with high > low, got {value_range!r}",
            path="value_range",
            fix="pass (stats.z_low, stats.z_high) from robust_normalise",
        )
    scale = (high - low) / UINT8_LEVELS
    codes = np.asarray(data, dtype=np.float32) - np.float32(low)
    codes *= np.float32(1.0 / scale)
    np.rint(codes, out=codes)
    np.clip(codes, 0, UINT8_LEVELS, out=codes)
    return codes.astype(np.uint8), scale, low


def from_uint8(codes: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """The float32 values that uint8 ``codes`` stand for: ``codes * scale + offset``."""
    return codes.astype(np.float32) * np.float32(scale) + np.float32(offset)
