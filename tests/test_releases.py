"""Task loaders on fixtures laid out like the real tumour releases (UPENN-GBM, UCSF-PDGM, BraTS)
and pretraining's folder discovery on their real file names.

Fixture builders and the hand-written expected values: tests/fixtures/releases_tumour.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from fixtures.releases import (
    build_brats2023_men,
    build_brats2024_goat,
    build_ucsf_pdgm,
    build_upenn_v10,
    build_upenn_v21,
)
from fixtures.releases_tumour import (
    GOAT_CASES,
    UCSF_EXPECTED,
    UPENN_UNCERTAIN,
    UPENN_V10_SURVIVAL,
    UPENN_V21_CLASSES,
    UPENN_V21_SURVIVAL,
)

from braindino.tasks import load_manifest, load_task, make_splits


def by_patient(frame: pd.DataFrame) -> dict[str, dict]:
    """Manifest rows keyed by their ``patient`` (one row per patient expected)."""
    assert frame["patient"].is_unique, frame[["subject", "patient"]]
    return {row["patient"]: row for row in frame.to_dict("records")}


def excluded_subjects(frame: pd.DataFrame) -> dict[str, str]:
    """``frame.attrs['excluded']`` as subject -> reason; every reason is counted in dropped."""
    excluded = frame.attrs["excluded"]
    dropped = frame.attrs["dropped"]
    for entry in excluded:
        assert set(entry) >= {"subject", "reason"}, entry
        assert dropped.get(entry["reason"], 0) >= 1, (entry, dropped)
    return {entry["subject"]: entry["reason"] for entry in excluded}


@pytest.fixture(scope="module")
def upenn(tmp_path_factory) -> Path:
    return build_upenn_v21(tmp_path_factory.mktemp("upenn"))


# ------------------------------------------------------------------ UPENN-GBM survival


def test_upenn_cox_censored_patients_take_survival_censor(upenn):
    frame = load_manifest(load_task("upenn_cox"), root=upenn)
    rows = by_patient(frame)
    assert set(rows) == set(UPENN_V21_SURVIVAL)
    for patient, (time, event) in UPENN_V21_SURVIVAL.items():
        assert rows[patient]["time"] == pytest.approx(time), patient
        assert int(rows[patient]["event"]) == event, patient


def test_upenn_cox_uses_baseline_structural_images(upenn):
    frame = load_manifest(load_task("upenn_cox"), root=upenn)
    for row in frame.to_dict("records"):
        scan = f"{row['patient']}_11"
        assert row["subject"] == scan
        assert row["image"] == str(
            upenn / f"NIfTI-files/images_structural/{scan}/{scan}_T1GD.nii.gz"
        )
        assert row["image2"] == str(
            upenn / f"NIfTI-files/images_structural/{scan}/{scan}_FLAIR.nii.gz"
        )


def test_upenn_uncertain_death_date_is_dropped_and_reported(upenn):
    frame = load_manifest(load_task("upenn_cox"), root=upenn)
    assert UPENN_UNCERTAIN not in set(frame["subject"])
    excluded = excluded_subjects(frame)
    assert UPENN_UNCERTAIN in excluded
    assert sum(frame.attrs["dropped"].values()) >= 1


def test_upenn_survival_cls_labels_censored_patients_past_threshold(upenn):
    frame = load_manifest(load_task("upenn_survival_cls"), root=upenn)
    rows = by_patient(frame)
    assert {p: r["label"] for p, r in rows.items()} == UPENN_V21_CLASSES
    excluded = excluded_subjects(frame)
    assert "UPENN-GBM-00003_11" in excluded  # Lost to Follow-up at day 210 < 365
    assert UPENN_UNCERTAIN in excluded


def test_upenn_v10_table_every_time_is_a_death(tmp_path):
    root = build_upenn_v10(tmp_path)
    frame = load_manifest(load_task("upenn_cox"), root=root)
    rows = by_patient(frame)
    assert set(rows) == set(UPENN_V10_SURVIVAL)
    for patient, (time, event) in UPENN_V10_SURVIVAL.items():
        assert rows[patient]["time"] == pytest.approx(time)
        assert int(rows[patient]["event"]) == event
    assert "UPENN-GBM-00002_11" in excluded_subjects(frame)  # Not Available


# ------------------------------------------------------------------ follow-up scans


def test_upenn_default_keeps_the_baseline_of_each_patient(upenn):
    frame = load_manifest(load_task("upenn_cox"), root=upenn)
    assert {"patient", "timepoint"} <= set(frame.columns)
    row = by_patient(frame)["UPENN-GBM-00002"]
    assert row["subject"] == "UPENN-GBM-00002_11"
    assert "UPENN-GBM-00002_21" not in set(frame["subject"])


def test_upenn_timepoint_all_keeps_follow_ups(upenn):
    frame = load_manifest(load_task("upenn_cox", ["data.timepoint=all"]), root=upenn)
    scans = frame[frame["patient"] == "UPENN-GBM-00002"]
    assert sorted(scans["subject"]) == ["UPENN-GBM-00002_11", "UPENN-GBM-00002_21"]
    assert scans["timepoint"].nunique() == 2
    follow_up = scans[scans["subject"] == "UPENN-GBM-00002_21"].iloc[0]
    assert follow_up["image"].endswith("images_structural/UPENN-GBM-00002_21/"
                                       "UPENN-GBM-00002_21_T1GD.nii.gz")  # fmt: skip
    assert follow_up["time"] == pytest.approx(930.0)


def test_splits_never_separate_timepoints_of_one_patient(tmp_path):
    root = build_upenn_v21(tmp_path, extra_patients=30, extra_followups=12)
    frame = load_manifest(load_task("upenn_cox", ["data.timepoint=all"]), root=root)
    assert (frame.groupby("patient")["subject"].nunique() > 1).sum() >= 13
    for seed in range(5):
        splits = make_splits(frame, "survival", [0.6, 0.2, 0.2], seed)
        joined = frame[["subject", "patient"]].merge(splits[["subject", "split"]], on="subject")
        assert len(joined) == len(frame)
        per_patient = joined.groupby("patient")["split"].nunique()
        assert (per_patient == 1).all(), per_patient[per_patient > 1]
        assert set(joined["split"]) == {"train", "val", "test"}


def test_brats2023_timepoints_of_one_patient(tmp_path):
    root = build_brats2023_men(tmp_path)
    task = load_task("brats2023_men", ["data.timepoint=baseline"])
    frame = load_manifest(task, root=root)
    rows = by_patient(frame)
    assert set(rows) == {"BraTS-MEN-00004", "BraTS-MEN-00008"}
    assert rows["BraTS-MEN-00004"]["subject"] == "BraTS-MEN-00004-000"
    assert rows["BraTS-MEN-00004"]["image"].endswith("BraTS-MEN-00004-000-t1n.nii.gz")
    # the segmentation task's default: every timepoint is a labelled case, one patient's cases
    # share a split
    assert str(load_task("brats2023_men").data.timepoint) == "all"
    every = load_manifest(load_task("brats2023_men"), root=root)
    assert sorted(every["subject"]) == ["BraTS-MEN-00004-000", "BraTS-MEN-00004-001",
                                        "BraTS-MEN-00008-000"]  # fmt: skip
    assert set(every["patient"]) == {"BraTS-MEN-00004", "BraTS-MEN-00008"}


# ------------------------------------------------------------------ UCSF-PDGM v5


def test_ucsf_idh_reads_metadata_not_glossary(tmp_path):
    root = build_ucsf_pdgm(tmp_path)
    frame = load_manifest(load_task("ucsf_idh"), root=root)
    labels = dict(zip(frame["subject"], frame["label"]))
    assert labels == UCSF_EXPECTED
    for row in frame.to_dict("records"):
        folder = root / "UCSF-PDGM-v5" / f"{row['subject']}_nifti"
        assert row["image"] == str(folder / f"{row['subject']}_T1c.nii.gz")
        assert row["image2"] == str(folder / f"{row['subject']}_FLAIR.nii.gz")


def test_ucsf_follow_up_exam_is_a_timepoint(tmp_path):
    root = build_ucsf_pdgm(tmp_path)
    every = load_manifest(load_task("ucsf_idh", ["data.timepoint=all"]), root=root)
    exams = every[every["patient"].map(lambda p: str(p).endswith("0433"))]
    assert len(exams) == 2
    assert any("UCSF-PDGM-0433_FU007d_nifti" in path for path in exams["image"])


# ------------------------------------------------------------------ BraTS 2024 GoAT


def test_brats2024_goat_cases_without_timepoint(tmp_path):
    root = build_brats2024_goat(tmp_path)
    frame = load_manifest(load_task("brats2024_goat"), root=root)
    assert sorted(frame["subject"]) == list(GOAT_CASES)
    row = frame[frame["subject"] == "BraTS-GoAT-00001"].iloc[0]
    ends = ["-t1n", "-t1c", "-t2w", "-t2f", "-seg"]
    for col, end in zip(["image", "image2", "image3", "image4", "image5"], ends):
        assert row[col].endswith(f"BraTS-GoAT-00001{end}.nii.gz"), col


def test_brats_sequence_finds_goat_volumes(tmp_path):
    root = build_brats2024_goat(tmp_path)
    frame = load_manifest(load_task("brats_sequence"), root=root)
    assert len(frame) == 8
    suffix_class = {"t1n": "T1", "t1c": "T1c", "t2w": "T2", "t2f": "FLAIR"}
    for row in frame.to_dict("records"):
        suffix = Path(row["image"]).name.split("-")[-1].removesuffix(".nii.gz")
        assert row["label"] == suffix_class[suffix]
        assert not math.isnan(row["target"])


# ------------------------------------------------------------------ pretraining discovery


def test_find_volumes_skips_real_label_maps_and_unstripped_copies(tmp_path):
    from braindino.data.inputs import find_volumes

    upenn = build_upenn_v21(tmp_path / "upenn")
    ucsf = build_ucsf_pdgm(tmp_path / "ucsf")
    found = {Path(p).name for p in find_volumes(tmp_path)}
    scan = "UPENN-GBM-00001_11"
    for mod in ("T1", "T1GD", "T2", "FLAIR"):
        assert f"{scan}_{mod}.nii.gz" in found
        assert f"{scan}_{mod}_unstripped.nii.gz" not in found
    assert f"{scan}_segm.nii.gz" not in found
    assert f"{scan}_automated_approx_segm.nii.gz" not in found
    exam = "UCSF-PDGM-0004"
    for kind in ("T1", "T1c", "T2", "FLAIR"):
        assert f"{exam}_{kind}.nii.gz" in found
    for kind in ("tumor_segmentation", "brain_segmentation", "brain_parenchyma_segmentation"):
        assert f"{exam}_{kind}.nii.gz" not in found
    assert not any(name.endswith(("_segm.nii.gz", "_segmentation.nii.gz")) for name in found)
    assert (upenn / "NIfTI-files").is_dir() and ucsf.is_dir()
