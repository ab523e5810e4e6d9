"""Byte-reproducible NIfTI writing in a chosen storage orientation.

The same array and affine always give the same file: the header is built from scratch with fixed
fields, and nibabel compresses ``.nii.gz`` with a zero gzip timestamp. Arrays are given in RAS+
order and stored in the cohort's axis order (e.g. LPS like the real BraTS files), with an affine
that keeps every voxel at the same place in the world, so readers must reorient.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform

DESCRIPTION = b"BrainDINO synthetic cohort"


def to_storage(data: np.ndarray, affine: np.ndarray, storage: str) -> tuple[np.ndarray, np.ndarray]:
    """Reorder RAS+ ``data`` into ``storage`` axis codes; returns (data, matching affine)."""
    if storage == "RAS":
        return data, affine
    transform = ornt_transform(axcodes2ornt("RAS"), axcodes2ornt(tuple(storage)))
    stored = apply_orientation(data, transform)
    return np.ascontiguousarray(stored), affine @ inv_ornt_aff(transform, data.shape)


def image_to_int16(image: np.ndarray) -> np.ndarray:
    """Round a non-negative float image to int16 scanner units (clipped to the int16 range)."""
    return np.clip(np.rint(image), 0, 32767).astype(np.int16)


def save_nifti(
    data: np.ndarray,
    affine: np.ndarray,
    path: str | Path,
    storage: str = "RAS",
    space_code: int = 1,
) -> Path:
    """Write ``data`` (RAS+ order, its dtype kept) to ``path`` in ``storage`` orientation.

    ``space_code`` is the NIfTI qform/sform code: 1 scanner, 4 MNI (used for ATLAS, which is
    released in MNI space).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stored, stored_affine = to_storage(data, np.asarray(affine, dtype=np.float64), storage)
    header = nib.Nifti1Header()
    header.set_data_dtype(stored.dtype)
    header["descrip"] = DESCRIPTION
    header.set_xyzt_units("mm", "sec")
    img = nib.Nifti1Image(stored, stored_affine, header=header)
    img.set_qform(stored_affine, code=space_code)
    img.set_sform(stored_affine, code=space_code)
    nib.save(img, str(path))
    return path
