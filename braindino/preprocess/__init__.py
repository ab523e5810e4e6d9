"""Preprocessing: resample, robust intensity normalisation, crop, axial slices, and the inverse.

``preprocess_volume(volume, cfg)`` runs the whole chain (defaults in
``configs/data/preprocess.yaml``); the steps are public for use on their own, and
``slices_to_volume`` / ``volume_to_slices`` map arrays between a volume's slices and its source
grid.
"""

from braindino.preprocess.crop import foreground_box
from braindino.preprocess.geometry import slice_pixel_affine
from braindino.preprocess.intensity import (
    IntensityStats,
    from_uint8,
    intensity_stats,
    robust_normalise,
    to_uint8,
)
from braindino.preprocess.inverse import slices_to_volume, volume_to_slices
from braindino.preprocess.pipeline import preprocess_volume
from braindino.preprocess.resample import resample, resampled_grid
from braindino.preprocess.settings import PreprocessSettings, preprocess_config
from braindino.preprocess.slices import AxialSlices, axial_slices
from braindino.preprocess.types import SliceGeometry, SliceStack

__all__ = [
    "AxialSlices",
    "IntensityStats",
    "PreprocessSettings",
    "SliceGeometry",
    "SliceStack",
    "axial_slices",
    "foreground_box",
    "from_uint8",
    "intensity_stats",
    "preprocess_config",
    "preprocess_volume",
    "resample",
    "resampled_grid",
    "robust_normalise",
    "slice_pixel_affine",
    "slices_to_volume",
    "to_uint8",
    "volume_to_slices",
]
