"""pretrain/prepare.py: inputs, bad volumes, --strict, configs, determinism, kill + resume."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.testing import data_path

from braindino.data.cli import main as prepare_main
from braindino.data.inputs import discover_inputs, find_volumes, read_manifest
from braindino.data.path_names import modality_from_path, subject_from_path
from braindino.data.prepare import collect_inputs, load_prepare_config, prepare_shards
from braindino.data.shards import SliceShardReader
from braindino.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "pretrain" / "prepare.py"
FAST = ["preprocess.spacing=null", "preprocess.slices.size=32"]


def _run_cli(*args, timeout=120):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


@lru_cache(maxsize=1)
def _mni():
    from nilearn.datasets import load_mni152_template

    img = load_mni152_template(resolution=2)
    return np.asarray(img.get_fdata(), np.float32), img.affine


def _save_scan(path, k=0):
    """A distinct real-anatomy volume: a slab of the MNI152 template, rescaled by ``k``."""
    data, affine = _mni()
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data[:, :, 4 * k : 4 * k + 60] * (1 + 0.25 * k), affine), path)


def _save_bad_files(folder):
    folder.mkdir(parents=True, exist_ok=True)
    good = gzip.compress(nib.load(os.path.join(data_path, "anatomical.nii")).to_bytes())
    (folder / "truncated.nii.gz").write_bytes(good[: len(good) // 2])
    (folder / "text.nii.gz").write_text("not an image\n", encoding="utf-8")
    data, affine = _mni()
    nan = data[:, :, :40].copy()
    nan[40:50, 40:50, 10:20] = np.nan
    nib.save(nib.Nifti1Image(nan, affine), folder / "nan.nii.gz")
    nib.save(nib.Nifti1Image(np.full((20, 20, 20), 3.0, np.float32), affine), folder / "const.nii")


def _files(root):
    """Relative path -> bytes of every published file (shards and index)."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for sub in ("shards", "index")
        for p in sorted((root / sub).iterdir())
    }


# ---------------------------------------------------------------- input discovery


def test_subject_ids_from_common_layouts(tmp_path):
    root = tmp_path / "BraTS2021"
    assert subject_from_path(root / "BraTS2021_00001/BraTS2021_00001_t1ce.nii.gz", root) == (
        "BraTS2021_00001"
    )
    # IXI's own subject id is IXI<ID> (IXI.csv's IXI_ID), not the file stem with the site
    assert subject_from_path(tmp_path / "IXI002-Guys-0828-T1.nii.gz", tmp_path) == "IXI002"
    assert subject_from_path(tmp_path / "scan3-T1.nii.gz", tmp_path) == "scan3"
    ixi = subject_from_path(tmp_path / "IXI002-Guys-0828-T1.nii.gz", tmp_path, r"(IXI\d+)")
    assert ixi == "IXI002"
    bids = tmp_path / "data/sub-r001s001/ses-1/anat/sub-r001s001_ses-1_T1w.nii.gz"
    assert subject_from_path(bids, tmp_path) == "sub-r001s001"
    adni = tmp_path / "ADNI/002_S_0295/MPRAGE/2006-04-18/I45108/scan.nii"
    assert subject_from_path(adni, tmp_path / "ADNI") == "002_S_0295"
    assert subject_from_path("/x/UCSF-PDGM-0004_FLAIR.nii.gz") == "UCSF-PDGM-0004"


def test_modality_guessed_from_file_names():
    cases = {
        "BraTS2021_00001_t1ce.nii.gz": "T1c",
        "BraTS-GLI-00000-000-t2f.nii.gz": "FLAIR",
        "BraTS-GLI-00000-000-t1n.nii.gz": "T1",
        "IXI002-Guys-0828-T2.nii.gz": "T2",
        "sub-01_T1w.nii.gz": "T1",
        "UPENN-GBM-00001_11_T1GD.nii.gz": "T1c",
        "scan.nii": "unknown",
    }
    assert {name: modality_from_path(name) for name in cases} == cases


def test_folder_search_finds_volumes_dicom_series_and_skips_label_maps(tmp_path):
    _save_scan(tmp_path / "a" / "case1" / "case1_t1.nii.gz")
    (tmp_path / "a" / "case1" / "case1_seg.nii.gz").write_bytes(b"")
    (tmp_path / "a" / "case1" / "notes.txt").write_text("x", encoding="utf-8")
    series = tmp_path / "a" / "case2" / "series1"
    series.mkdir(parents=True)
    for name in ("0.dcm", "1.dcm"):
        shutil.copy(os.path.join(data_path, name), series / name)
    found = find_volumes(tmp_path / "a")
    assert found == [str(tmp_path / "a" / "case1" / "case1_t1.nii.gz"), str(series)]
    inputs = discover_inputs([str(tmp_path / "a")])
    assert [i.subject for i in inputs] == ["case1", "case2"]
    assert [i.modality for i in inputs] == ["T1", "unknown"]
    globbed = discover_inputs([str(tmp_path / "a" / "*" / "*_t1.nii.gz")], modality="T2")
    assert [(i.subject, i.modality) for i in globbed] == [("case1", "T2")]


def test_missing_or_empty_inputs_fail_with_the_path(tmp_path):
    with pytest.raises(DataError, match="input not found") as err:
        discover_inputs([str(tmp_path / "nope")])
    assert str(tmp_path / "nope") in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no volumes found"):
        discover_inputs([str(tmp_path / "empty")])
    with pytest.raises(DataError, match="glob matches no volume"):
        discover_inputs([str(tmp_path / "*.nii.gz")])


def test_manifest_columns_and_errors(tmp_path):
    _save_scan(tmp_path / "imgs" / "x.nii.gz")
    manifest = tmp_path / "list.csv"
    manifest.write_text(
        "image,subject,dataset,modality\nimgs/x.nii.gz,S7,cohortA,T2\n", encoding="utf-8"
    )
    (item,) = read_manifest(manifest)
    assert (item.subject, item.dataset, item.modality) == ("S7", "cohortA", "T2")
    four_d = tmp_path / "four_d.tsv"
    four_d.write_text(f"image\tvolume_index\n{data_path}/example4d.nii.gz\t1\n", encoding="utf-8")
    (picked,) = read_manifest(four_d)
    assert picked.volume_index == 1 and picked.subject == "example4d"
    assert Path(item.path) == tmp_path / "imgs" / "x.nii.gz"
    bad = tmp_path / "bad.csv"
    bad.write_text("file,subject\nimgs/x.nii.gz,S7\n", encoding="utf-8")
    with pytest.raises(DataError, match="'image' column") as err:
        read_manifest(bad)
    assert "bad.csv" in str(err.value)


# ---------------------------------------------------------------- the command line


def test_cli_prepares_good_volumes_and_reports_bad_ones(tmp_path, capsys):
    for k in range(3):
        _save_scan(tmp_path / "in" / f"s{k}" / f"s{k}_T1.nii.gz", k)
    _save_bad_files(tmp_path / "in" / "bad")
    out = tmp_path / "out"
    code = prepare_main(
        ["--out", str(out), str(tmp_path / "in"), "--quiet", *FAST, "shards.slices_per_shard=70"]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["volumes_ok"] == 3 and report["volumes_total"] == 7
    reasons = {Path(s["path"]).name: s["reason"] for s in report["volumes_skipped"]}
    assert set(reasons) == {"truncated.nii.gz", "text.nii.gz", "nan.nii.gz", "const.nii"}
    assert "cannot read image" in reasons["truncated.nii.gz"]
    assert "cannot read image" in reasons["text.nii.gz"]
    assert "NaN" in reasons["nan.nii.gz"]
    assert "constant" in reasons["const.nii"]
    reader = SliceShardReader(out)
    assert len(reader) == report["slices"] == report["datasets"]["default"]["slices"]
    assert [reader.volume(v)["subject"] for v in range(3)] == ["s0", "s1", "s2"]
    assert sum(reader.volume(v)["n_slices"] for v in range(3)) == len(reader)
    assert len(reader.meta["shards"]) > 1  # 70-slice shards: several files, none over the cap
    assert all(s["slices"] <= 70 for s in reader.meta["shards"])
    assert "slices_per_shard: 70" in (out / "config.yaml").read_text(encoding="utf-8")
    assert not (out / "work").exists()
    printed = capsys.readouterr()
    assert json.loads(printed.out.strip().splitlines()[-1])["volumes_skipped"] == 4
    # a second run with the same inputs finds the work done and changes nothing
    before = _files(out)
    assert prepare_main(["--out", str(out), str(tmp_path / "in"), "--quiet", *FAST,
                                "shards.slices_per_shard=70"]) == 0  # fmt: skip
    assert _files(out) == before


def test_cli_strict_and_start_errors_are_one_line(tmp_path):
    _save_scan(tmp_path / "in" / "good_T1.nii.gz")
    _save_bad_files(tmp_path / "in")
    out = tmp_path / "out"
    result = _run_cli("--out", out, tmp_path / "in", "--strict", "--quiet", *FAST)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--strict: 4 volume(s) skipped" in lines[0], result.stderr
    assert not (out / "index" / "meta.json").exists()
    missing = _run_cli("--out", out, tmp_path / "absent")
    assert missing.returncode != 0
    assert missing.stderr.strip().count("\n") == 0 and "absent" in missing.stderr
    typo = _run_cli("--out", out, tmp_path / "in", "shards.slice_per_shard=5")
    assert typo.returncode != 0 and "shards.slices_per_shard" in typo.stderr
    assert typo.stderr.strip().count("\n") == 0
    assert _run_cli("--help").returncode == 0


def test_config_typos_fail_at_start(tmp_path):
    config = tmp_path / "data.yaml"
    config.write_text(f"datasets:\n  a:\n    root: {tmp_path}\n    wieght: 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="did you mean 'weight'"):
        load_prepare_config(config)
    with pytest.raises(ConfigError, match="slices"):
        load_prepare_config(dotlist=["preprocess.slice.size=32"])
    with pytest.raises(ConfigError, match="'workers' must be a positive integer"):
        load_prepare_config(dotlist=["workers=0"])
    config.write_text(f"datasets:\n  a:\n    root: {tmp_path}\n    weight: -1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="positive"):
        load_prepare_config(config)


def test_example_config_documents_three_datasets():
    from braindino.data.inputs import dataset_table

    cfg = load_prepare_config(REPO / "configs" / "data" / "example.yaml")
    table = dataset_table(cfg)
    assert list(table) == ["ixi", "brats2021", "adni"]
    assert [table[k]["weight"] for k in table] == [1.0, 0.5, 2.0]
    assert subject_from_path("/d/IXI/T1/IXI002-Guys-0828-T1.nii.gz", "/d/IXI/T1",
                             table["ixi"]["subject_regex"]) == "IXI002"  # fmt: skip
    with pytest.raises(DataError, match="root is not a folder"):
        collect_inputs(cfg)  # the placeholder roots do not exist here


def test_dry_run_checks_without_writing(tmp_path, capsys):
    _save_scan(tmp_path / "in" / "good_T1.nii.gz")
    _save_bad_files(tmp_path / "in")
    code = prepare_main(["--dry-run", str(tmp_path / "in"), "--quiet"])
    assert code == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6 and lines[-1] == "5 volume(s) checked, 4 with problems"
    assert any(line.startswith("OK") and "good_T1" in line for line in lines)
    assert sorted(os.listdir(tmp_path)) == ["in"]


def test_config_with_named_datasets_weights_and_modalities(tmp_path):
    brats = tmp_path / "brats"
    for case in ("BraTS2021_00001", "BraTS2021_00002"):
        for k, seq in enumerate(("t1", "flair")):
            _save_scan(brats / case / f"{case}_{seq}.nii.gz", k)
        (brats / case / f"{case}_seg.nii.gz").write_bytes(b"label map, left out")
    ixi = tmp_path / "ixi"
    _save_scan(ixi / "IXI002-Guys-0828-T1.nii.gz", 2)
    _save_scan(ixi / "IXI012-HH-1211-T1.nii.gz", 3)
    config = tmp_path / "data.yaml"
    config.write_text(
        "datasets:\n"
        f"  brats_like:\n    root: {brats}\n    pattern: '*/*.nii.gz'\n    weight: 1.0\n"
        f"  ixi_like:\n    root: {ixi}\n    pattern: 'IXI*-T1.nii.gz'\n    modality: T1\n"
        "    weight: 2.0\n    subject_regex: '(IXI\\d+)'\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    args = ["--config", str(config), "--out", str(out), "--quiet", *FAST]
    assert prepare_main([*args, "datasets.brats_like.weight=0.5"]) == 0
    reader = SliceShardReader(out)
    assert reader.dataset_names == ["brats_like", "ixi_like"]
    np.testing.assert_array_equal(reader.dataset_weights, [0.5, 2.0])
    volumes = [reader.volume(v) for v in range(reader.n_volumes)]
    assert [(v["subject"], v["modality"]) for v in volumes] == [
        ("BraTS2021_00001", "FLAIR"), ("BraTS2021_00001", "T1"),
        ("BraTS2021_00002", "FLAIR"), ("BraTS2021_00002", "T1"),
        ("IXI002", "T1"), ("IXI012", "T1"),
    ]  # fmt: skip
    per_dataset = [sum(v["n_slices"] for v in volumes[:4]), sum(v["n_slices"] for v in volumes[4:])]
    np.testing.assert_array_equal(np.bincount(reader.dataset_ids), per_dataset)
    assert reader.modality_names == ["FLAIR", "T1"]
    assert "weight: 0.5" in (out / "config.yaml").read_text(encoding="utf-8")


def test_dataset_whose_volumes_all_fail_gets_no_sampling_weight(tmp_path):
    _save_scan(tmp_path / "a" / "good_T1.nii.gz")
    _save_bad_files(tmp_path / "b")
    config = tmp_path / "data.yaml"
    config.write_text(
        f"datasets:\n  a:\n    root: {tmp_path / 'a'}\n  b:\n    root: {tmp_path / 'b'}\n"
        "    weight: 3.0\n",
        encoding="utf-8",
    )
    cfg = load_prepare_config(config, FAST)
    inputs = collect_inputs(cfg)
    report = prepare_shards(inputs, tmp_path / "out", cfg, progress_bar=False)
    assert report["datasets"]["b"] == {"volumes": 0, "skipped": 4, "slices": 0}
    reader = SliceShardReader(tmp_path / "out")
    np.testing.assert_array_equal(reader.dataset_weights, [1.0, 3.0])
    np.testing.assert_array_equal(reader.sampling_weights, [1.0, 0.0])


# ---------------------------------------------------------------- determinism and resume


def test_output_does_not_depend_on_worker_count(tmp_path):
    for k in range(4):
        _save_scan(tmp_path / "in" / f"v{k}_T1.nii.gz", k)
    inputs = discover_inputs([str(tmp_path / "in")])
    cfg = load_prepare_config(dotlist=[*FAST, "shards.slices_per_shard=100"])
    prepare_shards(inputs, tmp_path / "one", cfg, workers=1, progress_bar=False)
    prepare_shards(inputs, tmp_path / "two", cfg, workers=2, progress_bar=False)
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert len([f for f in one if f.startswith("shards/")]) >= 2
    assert one == two


class _Killed(BaseException):
    """Stands in for the process dying: not an Exception, so nothing catches it."""


def _check_nothing_half_written(out):
    assert not (out / "index" / "meta.json").exists()
    with pytest.raises(DataError):
        SliceShardReader(out)
    (work,) = (out / "work").iterdir()
    progress = json.loads((work / "progress.json").read_text(encoding="utf-8"))
    visible = sorted(p.name for p in (out / "shards").glob("shard-*.u8"))
    assert visible == [f"shard-{i:05d}.u8" for i in range(len(progress["shards"]))]
    for name, entry in zip(visible, progress["shards"]):
        assert (out / "shards" / name).stat().st_size == entry["slices"] * 32 * 32


def test_interrupted_run_resumes_without_redoing_and_matches_a_clean_run(tmp_path, monkeypatch):
    import braindino.data.prepare as prepare_module

    for k in range(8):
        _save_scan(tmp_path / "in" / f"v{k}_T1.nii.gz", k)
    inputs = discover_inputs([str(tmp_path / "in")])
    cfg = load_prepare_config(dotlist=[*FAST, "shards.slices_per_shard=60"])
    real = prepare_module.prepare_volume
    calls = []

    def dies_at_sixth(task):
        calls.append(task[0].path)
        if len(calls) == 6:
            raise _Killed
        return real(task)

    monkeypatch.setattr(prepare_module, "prepare_volume", dies_at_sixth)
    with pytest.raises(_Killed):
        prepare_shards(inputs, tmp_path / "out", cfg, progress_bar=False)
    _check_nothing_half_written(tmp_path / "out")
    calls.clear()
    report = prepare_shards(inputs, tmp_path / "out", cfg, progress_bar=False)
    assert report["volumes_reused"] == 5 and calls == [i.path for i in inputs[5:]]
    monkeypatch.setattr(prepare_module, "prepare_volume", real)
    prepare_shards(inputs, tmp_path / "clean", cfg, progress_bar=False)
    assert _files(tmp_path / "out") == _files(tmp_path / "clean")


def test_process_killed_mid_run_resumes_to_the_same_bytes(tmp_path):
    src = tmp_path / "in"
    for k in range(10):
        _save_scan(src / f"v{k}_T1.nii.gz", k)
    out = tmp_path / "out"
    slow = ["preprocess.slices.size=32", "shards.slices_per_shard=100"]  # 1 mm resampling
    args = ["--out", out, src, "--quiet", *slow]
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), *map(str, args)], cwd=REPO, stderr=subprocess.PIPE
    )
    seen = 0
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:
        works = list((out / "work").glob("*/")) if (out / "work").is_dir() else []
        if works and (works[0] / "progress.json").is_file():
            seen = len(list(works[0].glob("*.json"))) - 1
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert seen >= 1, proc.stderr.read()
    _check_nothing_half_written(out)
    resumed = _run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert seen <= report["volumes_reused"] < 10 and report["volumes_ok"] == 10
    clean = tmp_path / "clean"
    cfg = load_prepare_config(dotlist=slow)
    prepare_shards(discover_inputs([str(src)]), clean, cfg, workers=2, progress_bar=False)
    assert _files(out) == _files(clean)
