"""Bring any voxel order to canonical RAS+ without resampling, and back again."""

from __future__ import annotations

import numpy as np
from nibabel import orientations as ornt_lib

RAS = ornt_lib.axcodes2ornt(("R", "A", "S"))


def to_canonical(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flip/permute the first three axes of ``data`` to RAS+.

    Returns ``(ras_data, ras_affine, transform)``; ``transform`` is the nibabel orientation
    transform applied, kept so that :func:`from_canonical` can undo it exactly. Oblique affines go
    to their closest canonical orientation; the affine stays exact (only axes are permuted/flipped).
    """
    source = ornt_lib.io_orientation(affine)
    transform = ornt_lib.ornt_transform(source, RAS)
    shape = data.shape[:3]
    ras = ornt_lib.apply_orientation(data, transform)
    ras_affine = affine @ ornt_lib.inv_ornt_aff(transform, shape)
    return np.ascontiguousarray(ras), ras_affine, transform


def from_canonical(ras_data: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """Undo :func:`to_canonical` on an array laid out on the canonical grid."""
    # Against RAS, the transform to RAS is the source orientation itself.
    inverse = ornt_lib.ornt_transform(RAS, transform)
    return np.ascontiguousarray(ornt_lib.apply_orientation(ras_data, inverse))


def axcodes(affine: np.ndarray) -> str:
    """The orientation code of an affine, e.g. ``'LPS'`` or ``'RAS'``."""
    return "".join(ornt_lib.aff2axcodes(affine))
