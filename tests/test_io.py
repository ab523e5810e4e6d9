"""read_volume / write_volume: formats, orientations and bad input, on real shipped scans."""

from __future__ import annotations

import gzip
import locale

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from braindino import BrainDinoError, read_volume
from braindino.errors import VolumeError
from braindino.io import write_in_source_space, write_volume
from braindino.io.reader import keep_locale


def _save_nifti(data, affine, path, cls=nib.Nifti1Image):
    nib.save(cls(np.asarray(data), affine), str(path))
    return path


def _index_map(matrix_rows, shape_out):
    """Affine taking voxel indices of a reoriented array to indices of the RAS array."""
    m = np.eye(4)
    m[:3, :] = matrix_rows
    return m


# Orientation variants built independently: for each, the array and the matrix M such that
# RAS index = M @ variant index. The variant affine is then ras_affine @ M.
def _variants(data):
    X, Y, Z = data.shape
    return {
        "LPS": (data[::-1, ::-1, :], [[-1, 0, 0, X - 1], [0, -1, 0, Y - 1], [0, 0, 1, 0]]),
        "LAS": (data[::-1, :, :], [[-1, 0, 0, X - 1], [0, 1, 0, 0], [0, 0, 1, 0]]),
        # axes stored as (S, R, A): variant index (a, b, c) = (k, i, j)
        "SRA": (np.transpose(data, (2, 0, 1)), [[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0]]),
        # axes stored as (P, I, L)
        "PIL": (
            np.transpose(data, (1, 2, 0))[::-1, ::-1, ::-1],
            [[0, 0, -1, X - 1], [-1, 0, 0, Y - 1], [0, -1, 0, Z - 1]],
        ),
    }


@pytest.mark.parametrize("code", ["LPS", "LAS", "SRA", "PIL"])
def test_any_axis_order_reads_as_the_same_ras_volume(tmp_path, mni_2mm, code):
    data, affine = mni_2mm
    variant, rows = _variants(data)[code]
    m = _index_map(rows, variant.shape)
    path = _save_nifti(np.ascontiguousarray(variant), affine @ m, tmp_path / f"{code}.nii.gz")
    vol = read_volume(path)
    assert vol.meta["source_axcodes"] == code
    np.testing.assert_array_equal(vol.data, data)
    np.testing.assert_allclose(vol.affine, affine, atol=1e-6)
    np.testing.assert_allclose(vol.spacing, (2.0, 2.0, 2.0))
    assert vol.data.dtype == np.float32


def test_axial_slice_is_data_z(tmp_path, mni_2mm):
    data, affine = mni_2mm
    vol = read_volume(_save_nifti(data, affine, tmp_path / "t1.nii.gz"))
    # Superior is +z in world space: the world z of slice k increases with k.
    z0 = (vol.affine @ [0, 0, 0, 1])[2]
    z1 = (vol.affine @ [0, 0, 10, 1])[2]
    assert z1 - z0 == pytest.approx(20.0)


def test_oblique_affine_kept_exact_without_resampling(tmp_path, mni_2mm):
    data, affine = mni_2mm
    t = np.deg2rad(12.0)
    rot = np.eye(4)
    rot[:2, :2] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    variant, rows = _variants(data)["LPS"]
    oblique = rot @ affine @ _index_map(rows, variant.shape)
    vol = read_volume(_save_nifti(np.ascontiguousarray(variant), oblique, tmp_path / "obl.nii"))
    np.testing.assert_array_equal(vol.data, data)  # only flips, no interpolation
    np.testing.assert_allclose(vol.affine, rot @ affine, atol=1e-5)
    np.testing.assert_allclose(vol.spacing, (2.0, 2.0, 2.0), atol=1e-6)


def test_real_nibabel_scans(nibabel_data):
    vol = read_volume(nibabel_data / "anatomical.nii")
    raw = nib.load(str(nibabel_data / "anatomical.nii"))
    assert vol.meta["source_axcodes"] == "LAS"
    # LAS -> RAS flips axis 0 only
    np.testing.assert_allclose(vol.data, raw.get_fdata()[::-1], rtol=1e-6)
    assert vol.shape == raw.shape
    nifti2 = read_volume(nibabel_data / "example_nifti2.nii.gz", volume_index=0)
    assert nifti2.data.ndim == 3


def test_four_d_needs_an_explicit_volume(nibabel_data):
    path = nibabel_data / "example4d.nii.gz"
    with pytest.raises(VolumeError, match=r"4D with 2 volumes.*volume_index"):
        read_volume(path)
    raw = nib.load(str(path)).get_fdata()
    vol = read_volume(path, volume_index=1)
    np.testing.assert_allclose(vol.data, raw[::-1, :, :, 1], rtol=1e-6)
    with pytest.raises(VolumeError, match="out of range"):
        read_volume(path, volume_index=5)


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".mhd", ".mgz", ".nii"])
def test_other_formats_give_the_same_volume(tmp_path, mni_2mm, suffix):
    data, affine = mni_2mm
    variant, rows = _variants(data)["LPS"]
    lps_affine = affine @ _index_map(rows, variant.shape)
    path = tmp_path / f"img{suffix}"
    if suffix == ".mgz":
        nib.save(nib.MGHImage(np.ascontiguousarray(variant), lps_affine), str(path))
    elif suffix == ".nii":
        _save_nifti(np.ascontiguousarray(variant), lps_affine, path, cls=nib.Nifti2Image)
    else:  # written independently with SimpleITK in its own LPS convention
        img = sitk.GetImageFromArray(np.transpose(variant, (2, 1, 0)).astype(np.float32))
        lps_world = np.diag([-1, -1, 1, 1]) @ lps_affine
        img.SetSpacing([2.0, 2.0, 2.0])
        img.SetDirection((lps_world[:3, :3] / 2.0).flatten().tolist())
        img.SetOrigin(lps_world[:3, 3].tolist())
        sitk.WriteImage(img, str(path))
    vol = read_volume(path)
    np.testing.assert_allclose(vol.data, data, atol=1e-5)
    np.testing.assert_allclose(vol.affine, affine, atol=1e-4)


def test_dicom_series_folder(tmp_path, mni_2mm):
    data, affine = mni_2mm
    sub = np.round(data[20:60, 30:70, 20:30]).astype(np.int16)
    sub_affine = affine.copy()
    sub_affine[:3, 3] = (affine @ [20, 30, 20, 1])[:3]
    folder = tmp_path / "dicom"
    folder.mkdir()
    lps = np.diag([-1, -1, 1, 1]) @ sub_affine
    for k in range(sub.shape[2]):
        sl = sitk.GetImageFromArray(sub[:, :, k].T[None])
        pos = lps @ [0, 0, k, 1]
        tags = {
            "0008|0060": "MR",
            "0020|000d": "1.2.3",
            "0020|000e": "1.2.3.4",
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.4f}" for v in pos[:3]),
            "0020|0037": "\\".join(f"{v:.6f}" for v in [*(lps[:3, 0] / 2.0), *(lps[:3, 1] / 2.0)]),
            "0028|0030": "2\\2",
            "0018|0050": "2",
        }
        for key, val in tags.items():
            sl.SetMetaData(key, val)
        sl.SetSpacing([2.0, 2.0, 2.0])
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        writer.SetFileName(str(folder / f"{k:03d}.dcm"))
        with keep_locale():  # GDCM sets the C locale; keep the test process as it was
            writer.Execute(sl)
    before = locale.setlocale(locale.LC_CTYPE)
    vol = read_volume(folder)
    # ITK's DICOM reader sets the C locale; ours restores it (else later text I/O turns ASCII)
    assert locale.setlocale(locale.LC_CTYPE) == before
    np.testing.assert_allclose(vol.data, sub.astype(np.float32))
    np.testing.assert_allclose(vol.affine, sub_affine, atol=1e-3)


def test_write_in_source_space_overlays_the_input(tmp_path, mni_2mm):
    data, affine = mni_2mm
    variant, rows = _variants(data)["PIL"]
    src = _save_nifti(
        np.ascontiguousarray(variant), affine @ _index_map(rows, None), tmp_path / "s.nii.gz"
    )
    vol = read_volume(src)
    labels = (vol.data > 5000).astype(np.uint8)  # a mask computed on the RAS grid
    out = write_in_source_space(labels, vol, tmp_path / "pred.nii.gz", dtype=np.uint8)
    back = nib.load(str(out))
    original = nib.load(str(src))
    np.testing.assert_allclose(back.affine, original.affine, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(back.dataobj), (original.get_fdata() > 5000))


def test_write_volume_round_trip(tmp_path, mni_2mm):
    data, affine = mni_2mm
    for name in ("a.nii.gz", "b.nrrd"):
        path = write_volume(data, tmp_path / name, affine=affine)
        vol = read_volume(path)
        np.testing.assert_allclose(vol.data, data)
        np.testing.assert_allclose(vol.affine, affine, atol=1e-5)


def _bad_cases(tmp_path, mni_2mm):
    data, affine = mni_2mm
    good = tmp_path / "good.nii.gz"
    _save_nifti(data, affine, good)
    blob = good.read_bytes()
    (tmp_path / "truncated.nii.gz").write_bytes(blob[: len(blob) // 3])
    raw = tmp_path / "good.nii"
    _save_nifti(data, affine, raw)
    (tmp_path / "truncated.nii").write_bytes(raw.read_bytes()[:10000])
    with gzip.open(tmp_path / "text.nii.gz", "wb") as fh:
        fh.write(b"subject,age\n1,23\n")
    (tmp_path / "plain.nii.gz").write_text("not an image", encoding="utf-8")
    nan = data.copy()
    nan[10, 10, 10] = np.nan
    inf = data.copy()
    inf[5, 5, 5] = np.inf
    _save_nifti(nan, affine, tmp_path / "nan.nii.gz")
    _save_nifti(inf, affine, tmp_path / "inf.nii.gz")
    _save_nifti(np.zeros((8, 8, 8), np.float32), affine, tmp_path / "empty.nii.gz")
    _save_nifti(np.full((8, 8, 8), 3.0, np.float32), affine, tmp_path / "constant.nii.gz")
    _save_nifti(np.ones((16, 16), np.float32), np.eye(4), tmp_path / "two_d.nii.gz")
    _save_nifti(np.ones((16, 16, 1), np.float32), np.eye(4), tmp_path / "one_slice.nii.gz")
    _save_nifti(np.ones((4, 4, 4, 2, 2), np.float32), np.eye(4), tmp_path / "five_d.nii.gz")
    (tmp_path / "photo.png").write_bytes(b"\x89PNG")
    (tmp_path / "no_dicom").mkdir()
    return {
        "truncated.nii.gz": "cannot read",
        "truncated.nii": "cannot read",
        "text.nii.gz": "cannot read",
        "plain.nii.gz": "cannot read",
        "nan.nii.gz": "1 voxels are NaN or Inf",
        "inf.nii.gz": "NaN or Inf",
        "empty.nii.gz": "empty",
        "constant.nii.gz": "constant",
        "two_d.nii.gz": "3D volume is needed",
        "one_slice.nii.gz": "single slice",
        "five_d.nii.gz": "5 dimensions",
        "photo.png": "unsupported file type",
        "no_dicom": "no DICOM series",
        "missing.nii.gz": "not found",
    }


def test_bad_input_gives_one_clear_error(tmp_path, mni_2mm):
    for name, problem in _bad_cases(tmp_path, mni_2mm).items():
        with pytest.raises(BrainDinoError) as info:
            read_volume(tmp_path / name)
        message = str(info.value)
        assert name in message, message
        assert problem in message, message
        assert "Fix:" in message and "\n" not in message, message
