"""python -m braindino.check: per-volume facts and problems, exit status."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.testing import data_path

from braindino.check import check_volume, format_check, main

REPO = Path(__file__).resolve().parent.parent


def _anatomical():
    img = nib.load(os.path.join(data_path, "anatomical.nii"))
    return np.asarray(img.dataobj, np.float32), img.affine


@pytest.fixture
def scans(tmp_path):
    data, affine = _anatomical()
    paths = {}
    # LPS storage with anisotropic voxels (1, 2, 3 mm), and a permuted (A, S, R) storage
    lps = np.diag([-1.0, -2.0, 3.0, 1.0])
    paths["lps"] = tmp_path / "lps.nii.gz"
    nib.save(nib.Nifti1Image(data, lps), paths["lps"])
    permuted = np.zeros((4, 4))
    permuted[0, 2], permuted[1, 0], permuted[2, 1], permuted[3, 3] = 2.0, 2.0, 2.0, 1.0
    paths["asr"] = tmp_path / "asr.nii"
    nib.save(nib.Nifti1Image(np.transpose(data, (1, 2, 0)), permuted), paths["asr"])
    nan = data.copy()
    nan[3:5, 3:5, 3:5] = np.nan
    paths["nan"] = tmp_path / "nan.nii.gz"
    nib.save(nib.Nifti1Image(nan, affine), paths["nan"])
    paths["const"] = tmp_path / "const.nii.gz"
    nib.save(nib.Nifti1Image(np.full((8, 8, 8), 5.0, np.float32), affine), paths["const"])
    blob = gzip.compress(nib.Nifti1Image(data, affine).to_bytes())
    paths["truncated"] = tmp_path / "truncated.nii.gz"
    paths["truncated"].write_bytes(blob[: len(blob) // 3])
    paths["4d"] = Path(data_path) / "example4d.nii.gz"
    return paths


def test_reports_source_orientation_spacing_shape_and_range(scans):
    data, _ = _anatomical()
    for key in ("lps", "asr"):
        img = nib.load(scans[key])
        result = check_volume(str(scans[key]))
        assert result.ok, result.problems
        assert result.orientation == "".join(nib.aff2axcodes(img.affine))
        np.testing.assert_allclose(result.spacing, img.header.get_zooms()[:3])
        assert result.shape == img.shape
        assert result.intensity == (float(data.min()), float(data.max()))
    assert check_volume(str(scans["lps"])).orientation == "LPS"
    assert check_volume(str(scans["asr"])).orientation == "ASR"
    assert any("not acquired axially" in n for n in check_volume(str(scans["asr"])).notes)
    line = format_check(check_volume(str(scans["lps"])))
    assert line.startswith("OK") and "orient=LPS" in line and "spacing=1x2x3mm" in line


def test_problems_name_what_is_wrong(scans):
    nan = check_volume(str(scans["nan"]))
    assert not nan.ok and "8 voxels are NaN" in nan.problems[0]
    finite = nib.load(scans["nan"]).get_fdata()
    assert nan.intensity == (np.nanmin(finite), np.nanmax(finite))
    assert "constant" in check_volume(str(scans["const"])).problems[0]
    assert "cannot read image" in check_volume(str(scans["truncated"])).problems[0]
    four_d = check_volume(str(scans["4d"]))
    assert "4D" in four_d.problems[0] and "volume_index" in four_d.problems[0]
    assert check_volume(str(scans["4d"]), volume_index=1).ok
    missing = check_volume("/no/such/file.nii.gz")
    assert "file not found" in missing.problems[0]


def test_main_exit_status_and_lines(scans, capsys):
    assert main([str(scans["lps"]), str(scans["asr"])]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 3 and out[-1] == "2 volume(s) checked, 0 with problems"
    assert main([str(scans["lps"]), str(scans["const"])]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out[1].startswith("FAIL") and "const.nii.gz" in out[1]


def test_command_line_module(scans, tmp_path):
    run = [sys.executable, "-m", "braindino.check"]
    bad = subprocess.run([*run, str(tmp_path)], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 1 and "with problems" in bad.stdout
    missing = subprocess.run([*run, str(tmp_path / "x")], capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "input not found" in missing.stderr
    assert subprocess.run([*run, "--help"], capture_output=True).returncode == 0
