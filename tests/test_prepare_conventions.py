"""prepare.py on the public releases' own layouts: their subjects, label maps, duplicates."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from braindino.data.cli import main as prepare_main
from braindino.data.conventions import label_map_problem
from braindino.data.prepare import collect_inputs, load_prepare_config
from braindino.synth.layouts import layout_for

REPO = Path(__file__).resolve().parent.parent
FAST = ["preprocess.spacing=null", "preprocess.slices.size=32"]
COHORTS = ("brats2021", "brats2023", "upenn", "ucsf", "adni", "oasis", "abide", "ixi", "atlas")
#: Files the real releases ship that the synthetic layouts leave out (relative to their folder).
EXTRA_FILES = {
    "upenn": {
        "NIfTI-files/images_structural_unstripped/UPENN-GBM-00001_11/"
        "UPENN-GBM-00001_11_T1_unstripped.nii.gz": "skull-on duplicate",
        "NIfTI-files/automated_segm/UPENN-GBM-00001_11_automated_approx_segm.nii.gz": "label map",
    },
    "ucsf": {
        "UCSF-PDGM-v3/UCSF-PDGM-0004_nifti/UCSF-PDGM-0004_brain_segmentation.nii.gz": "label map",
        "UCSF-PDGM-v3/UCSF-PDGM-0004_nifti/UCSF-PDGM-0004_brain_parenchyma_segmentation.nii.gz": (
            "label map"
        ),
        "UCSF-PDGM-v3/UCSF-PDGM-0004_nifti/UCSF-PDGM-0004_T1c_bias.nii.gz": "bias-corrected",
    },
    "atlas": {"MNI152NLin2009aSym.nii.gz": "bundled template"},
}
MODALITIES = {"T1": "T1", "T1c": "T1c", "T2": "T2", "FLAIR": "FLAIR"}


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


@pytest.mark.parametrize("cohort", COHORTS)
def test_folder_input_uses_the_release_subjects_and_leaves_out_label_maps(tmp_path, cohort):
    layout = layout_for(cohort)
    expected = {}
    for index in range(3):
        subject, files = layout.paths(index, {})
        for role, rel in files.items():
            _touch(tmp_path / rel)
            if role != "seg":
                expected[str(tmp_path / rel)] = (subject, MODALITIES[role])
    for rel in EXTRA_FILES.get(cohort, {}):
        _touch(tmp_path / rel)
    excluded: list[dict[str, str]] = []  # what prepare.py does: configs/data/default.yaml's exclude
    inputs = collect_inputs(load_prepare_config(), [str(tmp_path)], excluded=excluded)
    assert {i.path: (i.subject, i.modality) for i in inputs} == expected
    reasons = {Path(e["path"]).relative_to(tmp_path).as_posix(): e["reason"] for e in excluded}
    segs = {layout.paths(i, {})[1].get("seg") for i in range(3)} - {None}
    assert set(reasons) == segs | set(EXTRA_FILES.get(cohort, {}))
    for rel, reason in reasons.items():
        assert reason.startswith(EXTRA_FILES.get(cohort, {}).get(rel, ("label map", "mask"))), (
            rel,
            reason,
        )


def test_abide_bids_and_adni_series_names(tmp_path):
    """ABIDE's BIDS release: T1w under sub-<id>, resting-state BOLD left out; ADNI's MP-RAGE."""
    abide = tmp_path / "RawDataBIDS" / "Pitt" / "sub-0050002"
    _touch(abide / "anat" / "sub-0050002_T1w.nii.gz")
    _touch(abide / "func" / "sub-0050002_task-rest_run-1_bold.nii.gz")
    adni = tmp_path / "ADNI" / "002_S_0295" / "MP-RAGE" / "2006-04-18_08_20_30.0" / "S13408"
    _touch(adni / "ADNI_002_S_0295_MR_MP-RAGE_br_raw_20060418193713091_2_S13408_I45108.nii")
    excluded: list[dict[str, str]] = []
    inputs = collect_inputs(load_prepare_config(), [str(tmp_path)], excluded=excluded)
    assert [(i.subject, i.modality) for i in inputs] == [
        ("002_S_0295", "T1"),
        ("sub-0050002", "T1"),
    ]
    ((bold),) = excluded
    assert bold["path"].endswith("_bold.nii.gz") and bold["reason"].startswith("functional")


def test_label_map_recognised_by_content():
    rng = np.random.default_rng(0)
    labels = np.zeros((40, 40, 30), np.float32)
    labels[10:20, 10:20, 5:15] = 2
    labels[12:14, 12:14, 8:9] = 4
    assert label_map_problem(labels) == "label map (values 0, 2, 4), not an image"
    scan = np.round(rng.normal(300, 80, labels.shape)).clip(0)  # integer-valued, like int16 MRI
    assert label_map_problem(scan) is None
    assert label_map_problem(scan + 0.5 * rng.random(labels.shape)) is None


def test_prepare_skips_unnamed_label_maps_and_reports_every_left_out_file(tmp_path, mni_2mm):
    data, affine = mni_2mm
    case = tmp_path / "in" / "NIfTI-files" / "images_structural" / "UPENN-GBM-00001_11"
    case.mkdir(parents=True)
    nib.save(nib.Nifti1Image(data, affine), case / "UPENN-GBM-00001_11_FLAIR.nii.gz")
    tumour = np.zeros(data.shape, np.int16)
    tumour[40:60, 50:70, 30:50] = 2
    tumour[45:55, 55:65, 35:45] = 4
    segm = tmp_path / "in" / "NIfTI-files" / "images_segm" / "UPENN-GBM-00001_11_segm.nii.gz"
    segm.parent.mkdir(parents=True)
    nib.save(nib.Nifti1Image(tumour, affine), segm)
    nib.save(nib.Nifti1Image(tumour, affine), case / "UPENN-GBM-00001_11_tumour.nii.gz")
    out = tmp_path / "out"
    assert prepare_main(["--out", str(out), str(tmp_path / "in"), "--quiet", *FAST]) == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["volumes_ok"] == 1
    ((skipped),) = report["volumes_skipped"]
    assert skipped["path"].endswith("_tumour.nii.gz")
    assert skipped["reason"].startswith("label map (values 0, 2, 4), not an image. Fix: ")
    assert report["excluded"] == [
        {"path": str(segm), "reason": "label map, not an image ('*_segm.*')"}
    ]
    volume = json.loads((out / "index" / "volumes.jsonl").read_text().splitlines()[0])
    assert (volume["subject"], volume["modality"]) == ("UPENN-GBM-00001_11", "FLAIR")


def test_check_reports_a_label_map(tmp_path, mni_2mm):
    from braindino.check import check_volume

    _, affine = mni_2mm
    mask = np.zeros((30, 30, 30), np.uint8)
    mask[5:20, 5:20, 5:20] = 1
    nib.save(nib.Nifti1Image(mask, affine), tmp_path / "brain.nii.gz")
    (problem,) = check_volume(str(tmp_path / "brain.nii.gz")).problems
    assert problem.startswith("label map (values 0, 1), not an image")
