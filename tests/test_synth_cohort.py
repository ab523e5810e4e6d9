"""The synthetic cohort, checked from the written files: layouts, read-back, image content.

One small cohort (2 mm) is generated once per session. Every image-level check measures the
images (with atlas masks from nilearn's MNI152 maps, or the dataset's own label files), never
``truth.csv``, except to know who is who (age, diagnosis), as a real study's table would.
"""

from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from braindino import read_volume
from braindino.errors import ConfigError, DataError
from braindino.synth import generate_cohort
from braindino.synth.layouts import patterns

COUNTS = {
    "adni": 30,
    "oasis": 1,
    "abide": 1,
    "ixi": 30,
    "brats2021": 3,
    "brats2023": 1,
    "upenn": 1,
    "ucsf": 1,
    "atlas": 3,
}
SEED = 3

# the real releases' naming (REFERENCE.md §4), written here independently of the writers
REAL_NAMES = {
    "BraTS2021": [r"(BraTS2021_\d{5})/\1_(t1|t1ce|t2|flair|seg)\.nii\.gz$"],
    "BraTS2023": [r"(BraTS-GLI-\d{5}-\d{3})/\1-(t1n|t1c|t2w|t2f|seg)\.nii\.gz$"],
    "IXI": [
        r"IXI-T1/IXI\d{3}-(Guys|HH|IOP)-\d{4}-T1\.nii\.gz$",
        r"IXI-T2/IXI\d{3}-\w+-\d{4}-T2\.nii\.gz$",
    ],
    "UPENN-GBM": [
        r"images_structural/(UPENN-GBM-\d{5}_11)/\1_(T1|T1GD|T2|FLAIR)\.nii\.gz$",
        r"images_segm/UPENN-GBM-\d{5}_11_segm\.nii\.gz$",
    ],
    "UCSF-PDGM": [r"(UCSF-PDGM-\d{4})_nifti/\1_(T1|T1c|T2|FLAIR|tumor_segmentation)\.nii\.gz$"],
    "ATLAS_2": [
        r"(sub-[a-z0-9]+)/(ses-[a-z0-9]+)/anat/\1_\2_[^/]*_(T1w|label-L_desc-T1lesion_mask)\.nii\.gz$"
    ],
    "ADNI": [r"ADNI/(\d{3}_S_\d{4})/MPRAGE/[^/]+/S\d+/ADNI_\1_MR_MPRAGE_[^/]+_I\d+\.nii\.gz$"],
    "OASIS": [r"(OAS1_\d{4}_MR1)/RAW/\1_mpr-1_anon\.nii\.gz$"],
    "ABIDE": [r"/\d{7}/session_1/anat_1/mprage\.nii\.gz$"],
}
FOLDER = {
    "adni": "ADNI",
    "oasis": "OASIS",
    "abide": "ABIDE",
    "ixi": "IXI",
    "brats2021": "BraTS2021",
    "brats2023": "BraTS2023",
    "upenn": "UPENN-GBM",
    "ucsf": "UCSF-PDGM",
    "atlas": "ATLAS_2",
}


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("synth") / "cohort"
    return generate_cohort(
        out, subjects=COUNTS, seed=SEED, pool_subjects=2, baseline=False, progress=False
    )


@pytest.fixture(scope="session")
def atlas_masks():
    """WM core, cortical GM and the central (ventricle) box from nilearn's MNI152 maps (2 mm)."""
    from nilearn import datasets

    gm = datasets.load_mni152_gm_template(resolution=2).get_fdata()
    wm = datasets.load_mni152_wm_template(resolution=2).get_fdata()
    brain = datasets.load_mni152_brain_mask(resolution=2).get_fdata() > 0
    i, j, k = np.indices(gm.shape)
    x, y, z = 2 * i - 98, 2 * j - 134, 2 * k - 72
    return {
        "wm": ndi.binary_erosion(wm > 0.95, iterations=2),
        "gm": (gm > 0.75) & (z > 0),
        "central": brain & (np.abs(x) < 25) & (y > -40) & (y < 25) & (z > 0) & (z < 28),
    }


def _truth(cohort: dict, name: str) -> pd.DataFrame:
    return pd.read_csv(cohort["cohorts"][name]["truth"])


def _ras(path: Path) -> np.ndarray:
    return read_volume(path).data


def _rel_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.nii.gz"))


def test_layouts_match_real_naming(cohort):
    for name, n in COUNTS.items():
        root = Path(cohort["cohorts"][name]["root"])
        assert root.name == FOLDER[name]
        files = _rel_files(root)
        real = [re.compile(p) for p in REAL_NAMES[FOLDER[name]]]
        own = [re.compile(p) for p in patterns(name)]
        for rel in files:
            assert any(r.search(rel) for r in real), f"{FOLDER[name]}: {rel} has no real name"
            assert any(r.fullmatch(rel) for r in own), f"{rel} breaks the documented pattern"
        truth = _truth(cohort, name)
        assert len(truth) == n and truth["subject"].is_unique
        roles = [c for c in truth.columns if c.startswith("file_")]
        assert len(files) == n * len(roles)  # every subject has every file, nothing extra


def test_subject_tables_use_real_columns(cohort):
    root = Path(cohort["root"])
    adni = pd.read_csv(root / "ADNI/ADNIMERGE.csv")
    assert set(adni["DX"]) <= {"CN", "MCI", "Dementia"} and "PTID" in adni
    assert set(pd.read_csv(root / "ADNI/ADNI_collection.csv")["Group"]) <= {"CN", "MCI", "AD"}
    assert set(pd.read_csv(root / "OASIS/oasis_cross-sectional.csv")["CDR"]) <= {0, 0.5, 1, 2}
    abide = pd.read_csv(root / "ABIDE/Phenotypic_V1_0b_preprocessed1.csv")
    assert set(abide["DX_GROUP"]) <= {1, 2} and {"SUB_ID", "SITE_ID", "AGE_AT_SCAN"} <= set(abide)
    ixi = pd.read_csv(root / "IXI/IXI.csv")
    assert {"IXI_ID", "AGE"} <= set(ixi) and ixi["AGE"].between(20, 90).all()
    upenn = pd.read_csv(root / "UPENN-GBM/UPENN-GBM_clinical_info_v2.1.csv")
    assert set(upenn["Survival_Status"]) <= {"Deceased", "Alive", "Lost to Follow-up"}
    dead = upenn["Survival_Status"] == "Deceased"
    # v2.1: the time of the deceased in _UPDATED, of the censored in Survival_Censor
    assert (pd.to_numeric(upenn.loc[dead, "Survival_from_surgery_days_UPDATED"]) > 0).all()
    assert (upenn.loc[~dead, "Survival_from_surgery_days_UPDATED"] == "Not Available").all()
    assert (pd.to_numeric(upenn.loc[~dead, "Survival_Censor"]) > 0).all()
    ucsf = pd.read_csv(root / "UCSF-PDGM/UCSF-PDGM-metadata_v2.csv")
    assert ucsf["ID"].str.fullmatch(r"UCSF-PDGM-\d{3}").all() and "IDH" in ucsf
    atlas = pd.read_csv(root / "ATLAS_2/Training/participants.tsv", sep="\t")
    assert (atlas["days_since_stroke"] > 0).all()
    # tables and truth agree on who is who
    truth = _truth(cohort, "adni").set_index("subject")
    dx = adni.set_index("PTID")["DX"].map({"CN": "CN", "MCI": "MCI", "Dementia": "AD"})
    assert (dx == truth.loc[dx.index, "diagnosis"]).all()


def test_every_file_reads_back_in_ras(cohort):
    root = Path(cohort["root"])
    seen_orientations = set()
    for path in sorted(root.rglob("*.nii.gz")):
        img = nib.load(path)
        seen_orientations.add(nib.aff2axcodes(img.affine))
        vol = read_volume(path)
        assert vol.shape == (99, 117, 95) and np.allclose(vol.spacing, 2.0)
        assert nib.aff2axcodes(vol.affine) == ("R", "A", "S")
        assert np.isfinite(vol.data).all() and vol.data.max() > 0
    assert len(seen_orientations) >= 4  # stored like the real releases, not all RAS
    # nibabel's own reorientation gives the same voxels as read_volume (one file per dataset)
    for name in COUNTS:
        rel = _truth(cohort, name)["file_T1"].iloc[0]
        path = Path(cohort["cohorts"][name]["root"]) / rel
        canonical = nib.as_closest_canonical(nib.load(path))
        assert np.array_equal(canonical.get_fdata(dtype=np.float32), _ras(path))


def _medians(image: np.ndarray, masks: dict) -> dict[str, float]:
    return {tissue: float(np.median(image[m])) for tissue, m in masks.items()}


def _healthy_side(seg_path: Path | None, masks: dict) -> dict:
    """The masks restricted to the hemisphere without the tumour (all of them if none)."""
    if seg_path is None:
        return masks
    seg = _ras(seg_path) > 0
    x = np.arange(seg.shape[0])
    tumour_right = x[seg.any(axis=(1, 2))].mean() > seg.shape[0] / 2
    side = (x < seg.shape[0] // 2 - 2) if tumour_right else (x > seg.shape[0] // 2 + 2)
    return {tissue: m & side[:, None, None] & ~seg for tissue, m in masks.items()}


def _fluid_from(image: np.ndarray, central: np.ndarray, bright: bool) -> np.ndarray:
    """Ventricular fluid as seen by another contrast: its extreme 4 % in the central box."""
    values = image[central]
    if bright:
        return central & (image > np.percentile(values, 96))
    return central & (image < np.percentile(values, 4)) & (image > 0)


def test_tissue_intensity_order_per_contrast(cohort, atlas_masks):
    """WM/GM from the MNI atlas; ventricular CSF located by a *different* contrast (T2 for
    T1/T1c/FLAIR, T1 for T2), so each contrast's CSF signal is checked independently."""
    root = Path(cohort["root"])
    cases = []  # (role -> path, segmentation path or None)
    for name in ("brats2021", "ixi"):
        base = Path(cohort["cohorts"][name]["root"])
        for _, row in _truth(cohort, name).head(3).iterrows():
            files = [c for c in row.index if c.startswith("file_") and c != "file_seg"]
            seg = base / row["file_seg"] if "file_seg" in row else None
            cases.append(({c[5:]: base / row[c] for c in files}, seg))
    pool = pd.read_csv(cohort["pool_manifest"])
    for _, group in pool.groupby("subject"):
        cases.append(({m: root / p for m, p in zip(group["modality"], group["image"])}, None))
    assert sum("FLAIR" in roles for roles, _ in cases) >= 4
    for roles, seg_path in cases:
        images = {r: _ras(path) for r, path in roles.items()}
        masks = _healthy_side(seg_path, {**atlas_masks, "box": atlas_masks["central"]})
        fluid = {
            "by_t2": _fluid_from(images["T2"], masks["box"], bright=True),
            "by_t1": _fluid_from(images["T1"], masks["box"], bright=False),
        }
        for r, image in images.items():
            med = _medians(image, {"wm": masks["wm"], "gm": masks["gm"]})
            med["csf"] = float(np.median(image[fluid["by_t1" if r == "T2" else "by_t2"]]))
            if r in ("T1", "T1c"):
                assert med["wm"] > med["gm"] > med["csf"], (roles[r], med)
            elif r == "T2":
                assert med["csf"] > med["gm"] > med["wm"], (roles[r], med)
            else:  # FLAIR: CSF dark
                assert min(med["gm"], med["wm"]) > 1.5 * med["csf"], (roles[r], med)


def _ventricle_csf_ml(t1: np.ndarray) -> float:
    """CSF-like voxels (below 40 % of the 98th-percentile brain signal) in a central box."""
    i, j, k = np.indices(t1.shape)
    x, y, z = 2 * i - 98, 2 * j - 134, 2 * k - 72
    central = (np.abs(x) < 28) & (y > -45) & (y < 30) & (z > -4) & (z < 30)
    core = (np.abs(x) < 50) & (y > -80) & (y < 40) & (z > -20) & (z < 50)
    reference = np.percentile(t1[core], 98)
    return float((central & (t1 < 0.4 * reference)).sum() * 8 / 1000)


def test_ventricles_grow_with_age_and_dementia(cohort):
    ixi = _truth(cohort, "ixi")
    root = Path(cohort["cohorts"]["ixi"]["root"])
    vent = np.array([_ventricle_csf_ml(_ras(root / f)) for f in ixi["file_T1"]])
    assert np.corrcoef(vent, ixi["age"])[0, 1] > 0.5

    adni = _truth(cohort, "adni")
    adni = adni[adni["diagnosis"].isin(["CN", "AD"])].reset_index(drop=True)
    root = Path(cohort["cohorts"]["adni"]["root"])
    vent = np.array([_ventricle_csf_ml(_ras(root / f)) for f in adni["file_T1"]])
    # ventricle volume ~ 1 + age + AD: the AD coefficient is positive at equal age
    design = np.column_stack([np.ones(len(adni)), adni["age"], adni["diagnosis"] == "AD"])
    coef, *_ = np.linalg.lstsq(design.astype(float), vent, rcond=None)
    residual = vent - design.astype(float) @ coef
    se = np.sqrt(residual.var(ddof=3) * np.linalg.inv(design.T.astype(float) @ design)[2, 2])
    assert coef[2] > 1.75 * se, (coef, se)  # one-sided 5 % level


def test_tumour_labels_inside_brain_with_contrast_signature(cohort, atlas_masks):
    label_sets = {
        "brats2021": {1, 2, 4},
        "brats2023": {1, 2, 3},
        "upenn": {1, 2, 4},
        "ucsf": {1, 2, 4},
    }
    enhancing_label = {"brats2021": 4, "brats2023": 3, "upenn": 4, "ucsf": 4}
    for name, labels in label_sets.items():
        root = Path(cohort["cohorts"][name]["root"])
        for _, row in _truth(cohort, name).iterrows():
            seg = np.rint(_ras(root / row["file_seg"])).astype(int)
            img = {r: _ras(root / row[f"file_{r}"]) for r in ("T1", "T1c", "T2", "FLAIR")}
            assert set(np.unique(seg)) - {0} <= labels and (seg > 0).sum() > 100
            assert (img["T1"][seg > 0] > 0).all()  # inside the (skull-stripped) brain
            wm = atlas_masks["wm"] & (seg == 0)
            oedema = seg == 2
            assert np.median(img["FLAIR"][oedema]) > 1.3 * np.median(img["FLAIR"][wm])
            assert np.median(img["T2"][oedema]) > 1.3 * np.median(img["T2"][wm])
            et = seg == enhancing_label[name]
            if et.sum() >= 20:
                t1c_ratio = np.median(img["T1c"][et]) / np.median(img["T1c"][wm])
                t1_ratio = np.median(img["T1"][et]) / np.median(img["T1"][wm])
                assert t1c_ratio > 1.2 and t1c_ratio > t1_ratio + 0.3


def test_stroke_masks_cover_hypointense_t1(cohort, atlas_masks):
    root = Path(cohort["cohorts"]["atlas"]["root"])
    for _, row in _truth(cohort, "atlas").iterrows():
        mask = _ras(root / row["file_seg"]) > 0.5
        t1 = _ras(root / row["file_T1"])
        assert set(np.unique(_ras(root / row["file_seg"]))) <= {0.0, 1.0} and mask.sum() > 10
        wm_median = np.median(t1[atlas_masks["wm"] & ~mask])
        assert np.median(t1[mask]) < 0.8 * wm_median
        assert (t1[mask] < wm_median).mean() > 0.8


def test_pretrain_pool_lists_healthy_volumes(cohort):
    root = Path(cohort["root"])
    manifest = pd.read_csv(cohort["pool_manifest"])
    assert list(manifest.columns) == ["image", "subject", "dataset", "modality"]
    assert manifest["subject"].nunique() == 2 and len(manifest) >= 3
    for rel in manifest["image"]:
        assert read_volume(root / rel).data.max() > 0
    pool = pd.read_csv(cohort["pool_truth"])
    assert pool["diagnosis"].isna().all() and "glioma_pattern" not in pool
    task_subjects = {s for n in COUNTS for s in _truth(cohort, n)["subject"]}
    assert not task_subjects & set(manifest["subject"])


def test_readme_and_config_describe_the_cohort(cohort):
    text = Path(cohort["readme"]).read_text(encoding="utf-8")
    for needle in ("ADNI", "BraTS 2023", "pretrain_pool.csv", "`hippocampal_atrophy`", "Knobs"):
        assert needle in text
    assert "{{" not in text


def test_same_seed_same_bytes_other_seed_other_subjects(cohort, tmp_path):
    small = {"adni": 1, "brats2021": 1, "atlas": 1}
    again = generate_cohort(
        tmp_path / "c", small, seed=SEED, pool_subjects=0, baseline=False, progress=False
    )
    for name in small:
        big_root, small_root = (
            Path(cohort["cohorts"][name]["root"]),
            Path(again["cohorts"][name]["root"]),
        )
        row = _truth(cohort, name).iloc[0]
        for role in [c for c in row.index if c.startswith("file_")]:
            assert (big_root / row[role]).read_bytes() == (small_root / row[role]).read_bytes()
        assert _truth(again, name).iloc[0].equals(row)
    # the same folder again with another seed: replaced, and different people
    other = generate_cohort(
        tmp_path / "c", small, seed=SEED + 1, pool_subjects=0, baseline=False, progress=False
    )
    row, new = _truth(cohort, "adni").iloc[0], _truth(other, "adni").iloc[0]
    assert row["age"] != new["age"]
    old_t1 = _ras(Path(cohort["cohorts"]["adni"]["root"]) / row["file_T1"])
    new_t1 = _ras(Path(other["cohorts"]["adni"]["root"]) / new["file_T1"])
    assert np.abs(old_t1 - new_t1).mean() > 0.05 * old_t1.mean()


def test_baseline_beats_chance_but_not_perfect(cohort):
    from braindino.synth.baseline import run_baseline

    scores = run_baseline(cohort["root"], tasks=["adni", "brain_age"])
    assert 0.6 < scores["adni"]["macro_auc"] < 0.95, scores["adni"]
    age = scores["brain_age"]
    assert age["mae"] < 0.9 * age["mae_chance"] and age["mae"] > 3.0, age
    assert age["pearson_r"] > 0.4


def test_bad_requests_fail_with_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"tasks: unknown task or cohort 'adnii'"):
        generate_cohort(tmp_path / "a", 10, tasks=["adnii"])
    with pytest.raises(ConfigError, match="resolution"):
        generate_cohort(tmp_path / "a", 10, resolution=3)
    with pytest.raises(ConfigError, match="did you mean 'noise'"):
        generate_cohort(tmp_path / "a", 10, knobs={"noize": 0.1})
    with pytest.raises(ConfigError, match="subjects"):
        generate_cohort(tmp_path / "a", 3)  # fewer subjects than cohorts
    with pytest.raises(ConfigError, match="outside the chosen tasks: ixi"):
        generate_cohort(tmp_path / "a", {"ixi": 2}, tasks=["adni"])
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(DataError, match="not empty"):
        generate_cohort(tmp_path / "busy", {"adni": 1})
    assert (tmp_path / "busy" / "notes.txt").read_text(encoding="utf-8") == "mine"
