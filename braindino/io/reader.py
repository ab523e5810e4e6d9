"""``read_volume``: NIfTI-1/2, MGZ (nibabel), NRRD, MHA/MHD and DICOM series (SimpleITK).

Every format comes out the same way: float32 voxels in canonical RAS+ order, an exact affine, and
clear one-line errors for files that cannot serve as a 3D brain image.
"""

from __future__ import annotations

import contextlib
import locale
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from braindino.errors import VolumeError
from braindino.io.analyze import analyze_affine, convention_for, unknown_orientation
from braindino.io.orientation import axcodes, to_canonical
from braindino.io.volume import Volume

NIBABEL_SUFFIXES = (".nii", ".nii.gz", ".mgz", ".mgh", ".hdr", ".img")
SITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
SUPPORTED = NIBABEL_SUFFIXES + SITK_SUFFIXES + ("<DICOM series folder>",)
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def suffix_of(path: str | Path) -> str:
    """The lower-case image suffix, with ``.nii.gz`` treated as one suffix."""
    name = Path(path).name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return Path(name).suffix


def is_volume_path(path: str | Path) -> bool:
    """Whether a file name looks like a volume this module reads (DICOM folders aside)."""
    return suffix_of(path) in NIBABEL_SUFFIXES + SITK_SUFFIXES


def _read_nibabel(path: Path, orientation: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise VolumeError(
            f"cannot read image ({type(exc).__name__}: {exc})",
            path=path,
            fix="check the file is a complete NIfTI/MGZ (re-download or re-export it)",
        ) from exc
    if isinstance(img, nib.AnalyzeImage) and not isinstance(img, nib.Nifti1Pair):
        codes = orientation or convention_for(path)  # plain Analyze: no orientation stored
        if codes is None:
            raise unknown_orientation(path)
        return data, analyze_affine(codes, img.header.get_zooms()[:3], path)
    return data, np.asarray(img.affine, dtype=np.float64)


def _sitk_to_arrays(image, path: Path) -> tuple[np.ndarray, np.ndarray]:
    import SimpleITK as sitk

    dim = image.GetDimension()
    array = sitk.GetArrayFromImage(image).astype(np.float32, copy=False)
    n_comp = image.GetNumberOfComponentsPerPixel()
    if n_comp > 1:  # vector pixels: (z, y, x, c) -> components become the 4th axis
        spatial = array.ndim - 1
        array = np.moveaxis(array, -1, 0)
    else:
        spatial = array.ndim
    # SimpleITK orders axes (…, z, y, x); reverse the spatial axes to (x, y, z, …).
    order = list(range(array.ndim - spatial, array.ndim))[::-1] + list(range(array.ndim - spatial))
    array = np.transpose(array, order)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(dim, dim)[:3, :3]
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)[:3]
    origin = np.asarray(image.GetOrigin(), dtype=np.float64)[:3]
    if dim < 3:
        raise VolumeError(
            f"image is {dim}D, a 3D volume is needed",
            path=path,
            fix="give a 3D (or 4D with volume_index) image, not a single slice",
        )
    lps = np.eye(4)
    lps[:3, :3] = direction @ np.diag(spacing)
    lps[:3, 3] = origin
    return np.ascontiguousarray(array), LPS_TO_RAS @ lps


@contextlib.contextmanager
def keep_locale() -> Iterator[None]:
    """Restore the C-library locale afterwards: ITK's DICOM reader (GDCM) sets it to "C", which
    would turn every later text file this process writes into ASCII."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def _read_sitk(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import SimpleITK as sitk

    with keep_locale():
        image = _sitk_read(lambda: sitk.ReadImage(str(path)), "image", path, "NRRD/MHA/MHD image")
    return _sitk_to_arrays(image, path)


def _sitk_read(read, what: str, path: Path, complete: str):
    """``read()``; SimpleITK's exception becomes one VolumeError with its last line."""
    try:
        return read()
    except Exception as exc:
        raise VolumeError(
            f"cannot read {what} ({str(exc).strip().splitlines()[-1]})",
            path=path,
            fix=f"check the file is a complete {complete}",
        ) from exc


def _read_dicom_folder(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import SimpleITK as sitk

    with keep_locale():
        series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path))
        if not series:
            raise VolumeError(
                "folder holds no DICOM series",
                path=path,
                fix="point to a DICOM series folder or an image file "
                f"({', '.join(SUPPORTED[:-1])})",
            )
        if len(series) > 1:
            raise VolumeError(
                f"folder holds {len(series)} DICOM series ({', '.join(series[:3])}…)",
                path=path,
                fix="move each series into its own folder and give one folder per volume",
            )
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), series[0]))
        image = _sitk_read(reader.Execute, "DICOM series", path, "DICOM series")
    return _sitk_to_arrays(image, path)


def _select_3d(data: np.ndarray, path: Path, volume_index: int | None) -> np.ndarray:
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 4:
        n = data.shape[3]
        if volume_index is None:
            raise VolumeError(
                f"image is 4D with {n} volumes",
                path=path,
                fix=f"pick one with volume_index (0..{n - 1}), e.g. --volume-index 0",
            )
        if not -n <= volume_index < n:
            raise VolumeError(
                f"volume_index {volume_index} out of range for {n} volumes",
                path=path,
                fix=f"use 0..{n - 1}",
            )
        data = data[..., volume_index]
    elif data.ndim > 4:
        raise VolumeError(
            f"image has {data.ndim} dimensions {data.shape}",
            path=path,
            fix="give a 3D volume (or a 4D series with volume_index)",
        )
    if data.ndim < 3 or min(data.shape) == 0:
        raise VolumeError(
            f"image has shape {data.shape}, a 3D volume is needed",
            path=path,
            fix="give a 3D volume, not a single slice or an empty image",
        )
    if min(data.shape) == 1:
        raise VolumeError(
            f"image is a single slice (shape {data.shape})",
            path=path,
            fix="give a 3D volume with more than one slice along each axis",
        )
    return np.ascontiguousarray(data)


def check_voxels(data: np.ndarray, path: str | Path | None) -> None:
    """Raise VolumeError for non-finite voxels or an empty/constant volume."""
    finite = np.isfinite(data)
    if not finite.all():
        bad = int(data.size - finite.sum())
        raise VolumeError(
            f"{bad} voxels are NaN or Inf",
            path=path,
            fix="replace non-finite voxels (e.g. with 0) or re-export the scan",
        )
    lo, hi = float(data.min()), float(data.max())
    if lo == hi:
        what = "empty (all voxels zero)" if lo == 0 else f"constant (all voxels = {lo:g})"
        raise VolumeError(
            f"volume is {what}", path=path, fix="check the scan; it holds no image content"
        )


def read_volume(
    path: str | Path,
    volume_index: int | None = None,
    check: bool = True,
    orientation: str | None = None,
) -> Volume:
    """Read a 3D image into a canonical RAS+ float32 :class:`Volume`.

    ``path``: a NIfTI-1/2 (``.nii``, ``.nii.gz``), MGZ, Analyze 7.5 (``.hdr``/``.img``), NRRD,
    MHA/MHD file or a folder holding one DICOM series. ``volume_index`` picks one volume of a 4D
    image (required for 4D input). ``check`` rejects NaN/Inf voxels and empty/constant volumes.
    ``orientation``: the voxel axes' directions of an Analyze file (``"ASL"``), which stores
    none; known datasets' conventions (OASIS-1) apply without it (``braindino.io.analyze``).
    Any problem raises :class:`~braindino.errors.VolumeError` naming the file and the fix.
    """
    path = Path(path)
    if not path.exists():
        raise VolumeError("file not found", path=path, fix="check the path")
    if path.is_dir():
        data, affine = _read_dicom_folder(path)
    elif suffix_of(path) in SITK_SUFFIXES:
        data, affine = _read_sitk(path)
    elif suffix_of(path) in NIBABEL_SUFFIXES:
        data, affine = _read_nibabel(path, orientation)
    else:
        raise VolumeError(
            f"unsupported file type '{suffix_of(path) or path.name}'",
            path=path,
            fix=f"convert it to NIfTI or use one of: {', '.join(SUPPORTED)}",
        )
    data = _select_3d(data, path, volume_index)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise VolumeError(
            "image affine is singular or non-finite",
            path=path,
            fix="repair the header (qform/sform or direction/spacing) with your conversion tool",
        )
    if check:
        check_voxels(data, path)
    source_code = axcodes(affine)
    ras, ras_affine, transform = to_canonical(data.astype(np.float32, copy=False), affine)
    meta = {
        "source_axcodes": source_code,
        "source_shape": tuple(int(s) for s in data.shape),
        "source_affine": affine,
        "orientation_transform": transform,
    }
    return Volume(data=ras, affine=ras_affine, path=str(path), meta=meta)
