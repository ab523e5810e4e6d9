"""Per-subject geometry: a small affine and a smooth non-linear deformation of the template.

``random_warp`` returns, for every voxel of the subject grid, the template voxel it samples
(the pull-back map); ``warp`` applies it to any template-space map with
``scipy.ndimage.map_coordinates``. One warp is drawn per subject and reused for every contrast
and the label map, so all of a subject's images stay aligned.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from braindino.synth.anatomy import Anatomy, world_axes
from braindino.synth.fields import smooth_field
from braindino.synth.knobs import SynthKnobs


@dataclass(frozen=True)
class Push:
    """A local expansion around ``centre_mm`` (template MNI mm): a tumour's mass effect."""

    centre_mm: tuple[float, float, float]
    radius_mm: float
    fraction: float  # 0..0.3: how much the core region expands


def _rotation(angles_rad: np.ndarray) -> np.ndarray:
    ax, ay, az = angles_rad
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_warp(
    rng: np.random.Generator,
    anatomy: Anatomy,
    knobs: SynthKnobs,
    pushes: tuple[Push, ...] = (),
) -> tuple[np.ndarray, float]:
    """Draw one subject's pull-back map: template voxel coordinates ``(3, X, Y, Z)`` (float64).

    Subject point ``p`` (mm) samples the template at ``A^-1 (p - t) + u(p)`` (then any mass-effect
    pushes), with ``A`` a rotation times a head-size scale and ``u`` a smooth displacement.
    Returns the map and the head-size scale factor.
    """
    shape = anatomy.shape
    scale = float(np.clip(1.0 + knobs.head_size_sd * rng.standard_normal(), 0.8, 1.2))
    aniso = 1.0 + 0.015 * rng.standard_normal(3)
    rot = _rotation(np.deg2rad(knobs.rotation_deg * rng.standard_normal(3)))
    trans = knobs.translation_mm * rng.standard_normal(3)
    inverse = np.linalg.inv(rot @ np.diag(scale * aniso))
    disp = smooth_field(rng, shape, anatomy.spacing, knobs.warp_correlation_mm, channels=3)
    disp *= knobs.warp_mm / np.sqrt(3.0)

    x, y, z = world_axes(anatomy.affine, shape)
    centred = (x - float(trans[0]), y - float(trans[1]), z - float(trans[2]))
    template_mm = []
    for i in range(3):
        a, b, c = (float(v) for v in inverse[i])
        q = a * centred[0] + b * centred[1] + c * centred[2]
        template_mm.append(q + disp[i])
    for push in pushes:
        _apply_push(template_mm, push)
    coords = np.empty((3, *shape), dtype=np.float64)
    for i in range(3):
        coords[i] = (template_mm[i] - anatomy.affine[i, 3]) / anatomy.affine[i, i]
    return coords, scale


def _apply_push(template_mm: list[np.ndarray], push: Push) -> None:
    """Sample closer to the centre near it, so content there appears expanded (in place)."""
    offsets = [template_mm[i] - np.float32(push.centre_mm[i]) for i in range(3)]
    dist2 = offsets[0] ** 2 + offsets[1] ** 2 + offsets[2] ** 2
    reach = 1.5 * push.radius_mm
    weight = (push.fraction * np.exp(-0.5 * dist2 / reach**2)).astype(np.float32)
    for i in range(3):
        template_mm[i] -= weight * offsets[i]


def warp(volume: np.ndarray, coords: np.ndarray, order: int = 1) -> np.ndarray:
    """Resample a template-space map on the subject grid (0 outside the template)."""
    out = ndi.map_coordinates(
        volume, coords, order=order, mode="constant", cval=0.0, prefilter=False
    )
    return out.astype(volume.dtype if order == 0 else np.float32, copy=False)
