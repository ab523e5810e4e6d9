"""Irregular blob shapes for lesions: a local box, a bumpy distance, soft inside/outside."""

from __future__ import annotations

import numpy as np

from braindino.synth.anatomy import Anatomy
from braindino.synth.fields import smooth_field


def local_box(anat: Anatomy, centre_mm, reach_mm: float) -> tuple[slice, slice, slice]:
    """Slices of the template grid covering ``reach_mm`` around ``centre_mm`` (clipped)."""
    out = []
    for i in range(3):
        c = (centre_mm[i] - anat.affine[i, 3]) / anat.affine[i, i]
        r = reach_mm / anat.spacing
        out.append(slice(max(int(c - r), 0), min(int(c + r) + 2, anat.shape[i])))
    return tuple(out)  # type: ignore[return-value]


def irregular_distance(
    rng: np.random.Generator, anat: Anatomy, box, centre_mm, irregularity: float
) -> np.ndarray:
    """Distance (mm) from the centre on ``box``, randomly stretched per axis and made bumpy.

    The bumps are a smooth random field (scale 9 mm) multiplying the distance by
    ``1 + irregularity * field``, so a threshold on it gives an irregular blob.
    """
    axes = []
    stretch = rng.uniform(0.8, 1.25, size=3)
    for i in range(3):
        idx = np.arange(box[i].start, box[i].stop, dtype=np.float32)
        mm = anat.affine[i, i] * idx + anat.affine[i, 3] - centre_mm[i]
        view = [1, 1, 1]
        view[i] = len(idx)
        axes.append((mm / np.float32(stretch[i])).reshape(view))
    dist = np.sqrt(axes[0] ** 2 + axes[1] ** 2 + axes[2] ** 2)
    field = smooth_field(rng, dist.shape, anat.spacing, 9.0)[0]
    return (dist * (1.0 + irregularity * field)).astype(np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function in float32, without overflow warnings."""
    return (1.0 / (1.0 + np.exp(-np.clip(x, -40.0, 40.0)))).astype(np.float32)


def soft_inside(dist: np.ndarray, radius: float, edge_mm: float = 1.0) -> np.ndarray:
    """1 well inside ``radius``, 0 well outside, a logistic ramp of width ``edge_mm`` between."""
    return sigmoid((radius - dist) / edge_mm)
