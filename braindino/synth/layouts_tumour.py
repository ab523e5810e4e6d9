"""Glioma dataset layouts: BraTS 2021, BraTS 2023 (GLI), UPENN-GBM, UCSF-PDGM.

BraTS 2021, UPENN-GBM and UCSF-PDGM number the tumour labels 1 necrotic core, 2 oedema,
4 enhancing; BraTS 2023 uses 1, 2, 3. All four are released skull-stripped and stored LPS.
"""

from __future__ import annotations

from typing import ClassVar

from braindino.synth.layout_base import Layout

LEGACY_LABELS = {1: 1, 2: 2, 3: 4}  # BraTS 2021 / UPENN / UCSF
BRATS2023_LABELS = {1: 1, 2: 2, 3: 3}


def case_files(template: str, case: str, suffix: dict[str, str]) -> dict[str, str]:
    """Role -> relative path: ``template`` with ``{case}`` and each role's file ``{suffix}``."""
    return {role: template.format(case=case, suffix=end) for role, end in suffix.items()}


class BraTS2021Layout(Layout):
    """``BraTS2021_Training_Data/BraTS2021_XXXXX/BraTS2021_XXXXX_{t1,t1ce,t2,flair,seg}``."""

    cohort = "brats2021"
    seg_values = LEGACY_LABELS
    patterns = (r"BraTS2021_Training_Data/(BraTS2021_\d{5})/\1_(t1|t1ce|t2|flair|seg)\.nii\.gz",)
    suffix: ClassVar[dict[str, str]] = dict(T1="t1", T1c="t1ce", T2="t2", FLAIR="flair", seg="seg")

    def paths(self, index: int, truth: dict) -> tuple[str, dict[str, str]]:
        case = f"BraTS2021_{index:05d}"
        return case, case_files(
            "BraTS2021_Training_Data/{case}/{case}_{suffix}.nii.gz", case, self.suffix
        )


class BraTS2023Layout(Layout):
    """``…-GLI-Challenge-TrainingData/BraTS-GLI-XXXXX-YYY/…-{t1n,t1c,t2w,t2f,seg}``."""

    cohort = "brats2023"
    seg_values = BRATS2023_LABELS
    folder = "ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData"
    patterns = (rf"{folder}/(BraTS-GLI-\d{{5}}-\d{{3}})/\1-(t1n|t1c|t2w|t2f|seg)\.nii\.gz",)
    suffix: ClassVar[dict[str, str]] = dict(T1="t1n", T1c="t1c", T2="t2w", FLAIR="t2f", seg="seg")

    def paths(self, index: int, truth: dict) -> tuple[str, dict[str, str]]:
        case = f"BraTS-GLI-{index:05d}-000"
        return case, case_files(self.folder + "/{case}/{case}-{suffix}.nii.gz", case, self.suffix)


class UpennLayout(Layout):
    """``NIfTI-files/images_structural/UPENN-GBM-XXXXX_11/…_{T1,T1GD,T2,FLAIR}`` + segm + CSV."""

    cohort = "upenn"
    seg_values = LEGACY_LABELS
    table = "UPENN-GBM_clinical_info_v2.1.csv"
    patterns = (
        r"NIfTI-files/images_structural/(UPENN-GBM-\d{5}_11)/\1_(T1|T1GD|T2|FLAIR)\.nii\.gz",
        r"NIfTI-files/images_segm/UPENN-GBM-\d{5}_11_segm\.nii\.gz",
    )
    suffix: ClassVar[dict[str, str]] = {"T1": "T1", "T1c": "T1GD", "T2": "T2", "FLAIR": "FLAIR"}

    def paths(self, index: int, truth: dict) -> tuple[str, dict[str, str]]:
        case = f"UPENN-GBM-{index + 1:05d}_11"
        files = case_files(
            "NIfTI-files/images_structural/{case}/{case}_{suffix}.nii.gz", case, self.suffix
        )
        files["seg"] = f"NIfTI-files/images_segm/{case}_segm.nii.gz"
        return case, files

    def rows(self, index: int, subject: str, truth: dict) -> dict[str, dict]:
        died = bool(truth["event"])
        days = int(truth["observed_days"])
        censored = ("Alive", "Lost to Follow-up")[index % 2]
        return {
            self.table: {
                "ID": subject,
                "Gender": truth["sex"],
                "Age_at_scan_years": round(truth["age"], 2),
                # as in v2.1: a time here only for the deceased; the censored patients'
                # follow-up time is in Survival_Censor
                "Survival_from_surgery_days_UPDATED": days if died else "Not Available",
                "Survival_Status": "Deceased" if died else censored,
                "Survival_Censor": "Not Available" if died else days,
                "IDH1": "Mutated" if truth["glioma_idh_mutant"] else "Wildtype",
                "MGMT": "Not Available",
                "KPS": "Not Available",
                "GTR_over90percent": "Not Available",
            }
        }


class UcsfLayout(Layout):
    """``UCSF-PDGM-v3/UCSF-PDGM-XXXX_nifti/UCSF-PDGM-XXXX_{T1,T1c,T2,FLAIR,tumor_segmentation}``.

    As in the real metadata CSV, its ``ID`` column writes the number with three digits
    (``UCSF-PDGM-004``) while folders and files use four (``UCSF-PDGM-0004``).
    """

    cohort = "ucsf"
    seg_values = LEGACY_LABELS
    table = "UCSF-PDGM-metadata_v2.csv"
    patterns = (
        r"UCSF-PDGM-v3/(UCSF-PDGM-\d{4})_nifti/\1_(T1|T1c|T2|FLAIR|tumor_segmentation)\.nii\.gz",
    )
    suffix: ClassVar[dict[str, str]] = dict(
        T1="T1", T1c="T1c", T2="T2", FLAIR="FLAIR", seg="tumor_segmentation"
    )

    def paths(self, index: int, truth: dict) -> tuple[str, dict[str, str]]:
        case = f"UCSF-PDGM-{index + 4:04d}"
        return case, case_files(
            "UCSF-PDGM-v3/{case}_nifti/{case}_{suffix}.nii.gz", case, self.suffix
        )

    def rows(self, index: int, subject: str, truth: dict) -> dict[str, dict]:
        mutant = bool(truth["glioma_idh_mutant"])
        grade = (2, 3, 4)[index % 3] if mutant else 4
        if mutant:
            idh = "IDH1 p.R132H" if index % 4 else "mutated (NOS)"
            diagnosis = "Astrocytoma, IDH-mutant"
        else:
            idh, diagnosis = "wildtype", "Glioblastoma, IDH-wildtype"
        return {
            self.table: {
                "ID": f"UCSF-PDGM-{index + 4:03d}",
                "Sex": truth["sex"],
                "Age at MRI": int(truth["age"]),
                "WHO CNS Grade": grade,
                "Final pathologic diagnosis (WHO 2021)": diagnosis,
                "MGMT status": "unknown",
                "1p/19q": "unknown",
                "IDH": idh,
                "1-dead 0-alive": int(truth["event"]),
                "OS": int(truth["observed_days"]),
            }
        }


TUMOUR_LAYOUTS = {
    "brats2021": BraTS2021Layout,
    "brats2023": BraTS2023Layout,
    "upenn": UpennLayout,
    "ucsf": UcsfLayout,
}
