"""``write_volume``: save arrays on a RAS affine as NIfTI (or NRRD/MHA), and in source space."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from braindino.errors import VolumeError
from braindino.io.atomic import AtomicFile
from braindino.io.orientation import from_canonical
from braindino.io.reader import LPS_TO_RAS, SITK_SUFFIXES, keep_locale, suffix_of
from braindino.io.volume import Volume


def write_volume(
    volume: Volume | np.ndarray,
    path: str | Path,
    affine: np.ndarray | None = None,
    dtype: np.dtype | type | None = None,
) -> Path:
    """Write a volume (or an array with ``affine``) to ``path``; the format follows the suffix.

    ``.nii``/``.nii.gz`` via nibabel (qform and sform both set to the affine); ``.nrrd``/``.mha``
    via SimpleITK (the RAS affine converted to ITK's LPS). ``dtype`` defaults to the array's
    (use an integer type for label maps). The file is written to a temporary name then moved into
    place (with the usual umask mode), so an interrupted write never leaves a partial file.
    """
    path = Path(path)
    if isinstance(volume, Volume):
        data, affine = volume.data, volume.affine if affine is None else affine
    else:
        data = np.asarray(volume)
        if affine is None:
            raise VolumeError("no affine given for a bare array", path=path, fix="pass affine=")
    data = np.asarray(data, dtype=dtype)
    affine = np.asarray(affine, dtype=np.float64)
    suffix = suffix_of(path)
    if suffix not in (".nii", ".nii.gz", *SITK_SUFFIXES):
        raise VolumeError(
            f"cannot write '{suffix}' files",
            path=path,
            fix=f"use one of .nii, .nii.gz, {', '.join(SITK_SUFFIXES)}",
        )
    with AtomicFile(path, suffix=suffix) as target:
        _write(data, affine, target.tmp, suffix)
    return path


def _write(data: np.ndarray, affine: np.ndarray, tmp: Path, suffix: str) -> None:
    if suffix in (".nii", ".nii.gz"):
        import nibabel as nib

        img = nib.Nifti1Image(data, affine)
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
        nib.save(img, str(tmp))
    elif suffix in SITK_SUFFIXES:
        import SimpleITK as sitk

        lps = LPS_TO_RAS @ affine
        spacing = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
        image = sitk.GetImageFromArray(np.transpose(data, (2, 1, 0)))
        image.SetSpacing(spacing.tolist())
        image.SetDirection((lps[:3, :3] / spacing).flatten().tolist())
        image.SetOrigin(lps[:3, 3].tolist())
        with keep_locale():
            sitk.WriteImage(image, str(tmp))


def write_in_source_space(
    data: np.ndarray, like: Volume, path: str | Path, dtype: np.dtype | type | None = None
) -> Path:
    """Write an array laid out on ``like``'s canonical grid in ``like``'s original orientation.

    The file gets the source image's axis order and affine, so it overlays the input exactly in a
    viewer (e.g. a segmentation predicted on RAS slices, saved beside an LPS input).
    """
    if tuple(data.shape[:3]) != like.shape:
        raise VolumeError(
            f"array shape {data.shape} does not match the volume's {like.shape}",
            path=path,
            fix="map predictions back to the source grid first (preprocess.slices_to_volume)",
        )
    transform = like.meta.get("orientation_transform")
    source_affine = like.meta.get("source_affine")
    if transform is None or source_affine is None:
        return write_volume(data, path, affine=like.affine, dtype=dtype)
    return write_volume(from_canonical(data, transform), path, affine=source_affine, dtype=dtype)
