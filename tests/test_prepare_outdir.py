"""prepare.py into an existing --out: refuse other inputs/settings, --overwrite; --volume-index."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.testing import data_path

from braindino.data.shards import SliceShardReader

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "pretrain" / "prepare.py"
FAST = ["preprocess.spacing=null", "preprocess.slices.size=32"]


def _run(*args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )


def _scans(folder: Path, mni_2mm, n: int, first: int = 0) -> Path:
    data, affine = mni_2mm
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(first, first + n):
        slab = data[:, :, 20 + 2 * k : 70 + 2 * k]
        nib.save(nib.Nifti1Image(slab, affine), folder / f"s{k}_T1.nii.gz")
    return folder


def _published(out: Path) -> dict[str, bytes]:
    names = [*sorted((out / "shards").iterdir()), *sorted((out / "index").iterdir())]
    return {p.name: p.read_bytes() for p in [*names, out / "config.yaml", out / "report.json"]}


def test_other_inputs_or_settings_are_refused_in_one_line_and_change_nothing(tmp_path, mni_2mm):
    first, second = _scans(tmp_path / "a", mni_2mm, 2), _scans(tmp_path / "b", mni_2mm, 1, 5)
    out = tmp_path / "out"
    assert _run("--out", out, first, *FAST).returncode == 0
    before = _published(out)
    other = _run("--out", out, first, second, *FAST)
    assert other.returncode == 2, other.stderr
    (line,) = other.stderr.strip().splitlines()
    assert line.startswith(f"error: {out}: holds shards prepared from other inputs or settings")
    assert f"inputs: 1 added (first {second / 's5_T1.nii.gz'})" in line
    assert "--overwrite" in line and "new --out" in line
    resized = _run("--out", out, first, "preprocess.spacing=null", "preprocess.slices.size=48")
    assert resized.returncode == 2
    assert "preprocess.slices.size: 32 -> 48" in resized.stderr, resized.stderr
    assert _published(out) == before  # shards, index, config.yaml and report untouched
    assert _run("--out", out, first, *FAST).returncode == 0  # the same run: nothing to do
    assert _published(out) == before
    replaced = _run("--out", out, first, second, *FAST, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    reader = SliceShardReader(out)
    assert [Path(reader.volume(v)["path"]).name for v in range(reader.n_volumes)] == [
        "s0_T1.nii.gz", "s1_T1.nii.gz", "s5_T1.nii.gz",
    ]  # fmt: skip


def test_volume_index_flag_picks_a_volume_of_4d_inputs(tmp_path, mni_2mm):
    data, affine = mni_2mm
    series = np.stack([data[:, :, 20:70] * (1 + t) for t in range(3)], axis=-1)
    folder = tmp_path / "in"
    folder.mkdir()
    nib.save(nib.Nifti1Image(series, affine), folder / "series4d.nii.gz")
    nib.save(nib.Nifti1Image(data[:, :, 20:70], affine), folder / "anat_T1.nii.gz")
    out = tmp_path / "out"
    plain = _run("--out", out, folder, *FAST)
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    (skipped,) = report["volumes_skipped"]
    assert "--volume-index 0" in skipped["reason"], plain.stderr
    picked = _run("--out", tmp_path / "out2", folder, *FAST, "--volume-index", "2")
    assert picked.returncode == 0, picked.stderr
    reader = SliceShardReader(tmp_path / "out2")
    volumes = {Path(reader.volume(v)["path"]).name: reader.volume(v) for v in range(2)}
    assert volumes["series4d.nii.gz"]["volume_index"] == 2
    assert volumes["series4d.nii.gz"]["n_slices"] == volumes["anat_T1.nii.gz"]["n_slices"]
    manifest = tmp_path / "four_d.csv"
    manifest.write_text(f"image,volume_index\n{data_path}/example4d.nii.gz,1\n", encoding="utf-8")
    own = _run("--dry-run", manifest, "--volume-index", "7")  # the manifest's index wins
    assert own.returncode == 0 and "OK" in own.stdout, own.stdout + own.stderr
