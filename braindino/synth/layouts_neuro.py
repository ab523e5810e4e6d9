"""Neuro dataset layouts: ADNI, OASIS-1, ABIDE I, IXI (with skull) and ATLAS v2 (BIDS, MNI).

Subject tables use the real releases' column names: ADNI ``DX``/``DX_bl`` (ADNIMERGE) and
``Group`` (IDA collection export); OASIS ``CDR``; ABIDE ``DX_GROUP`` (1 autism, 2 control);
IXI ``AGE``. ATLAS lesion masks are 0/1 and the days since stroke are in ``participants.tsv``.
"""

from __future__ import annotations

import datetime as dt

from braindino.synth.layout_base import Layout

EPOCH = dt.datetime(2006, 1, 2, 8, 0, 0)


def _scan_time(index: int, step_days: int = 3) -> dt.datetime:
    """A deterministic acquisition time for subject ``index``."""
    return EPOCH + dt.timedelta(days=step_days * index, minutes=37 * (index % 11))


class AdniLayout(Layout):
    """``ADNI/<PTID>/MPRAGE/<date>/S<n>/ADNI_<PTID>_MR_MPRAGE_br_raw_<stamp>_1_S<n>_I<m>``."""

    cohort = "adni"
    patterns = (
        r"ADNI/(\d{3}_S_\d{4})/MPRAGE/\d{4}-\d{2}-\d{2}_\d{2}_\d{2}_\d{2}\.0/(S\d+)/"
        r"ADNI_\1_MR_MPRAGE_br_raw_\d{17}_1_\2_I\d+\.nii\.gz",
    )
    sites = (2, 5, 11, 23, 35, 100, 128, 136)

    def paths(self, index: int, truth: dict) -> tuple[str, dict[str, str]]:
        ptid = f"{self.sites[index % len(self.sites)]:03d}_S_{index + 10:04d}"
        when = _scan_time(index)
        series, image = 10000 + 7 * index, 40000 + 13 * index
        folder = f"ADNI/{ptid}/MPRAGE/{when:%Y-%m-%d_%H_%M_%S}.0/S{series}"
        name = f"ADNI_{ptid}_MR_MPRAGE_br_raw_{when:%Y%m%d%H%M%S}000_1_S{series}_I{image}.nii.gz"
        return ptid, {"T1": f"{folder}/{name}"}

    def rows(self, index: int, subject: str, truth: dict) -> dict[str, dict]:
        dx = truth["diagnosis"]
        when = _scan_time(index)
        return {
            "ADNIMERGE.csv": {
                "RID": index + 10,
                "PTID": subject,
                "VISCODE": "bl",
                "EXAMDATE": f"{when:%Y-%m-%d}",
                "IMAGEUID": 40000 + 13 * index,  # the baseline scan: ..._I<IMAGEUID>.nii.gz
                "DX_bl": {"CN": "CN", "MCI": "LMCI", "AD": "AD"}[dx],
                "DX": {"CN": "CN", "MCI": "MCI", "AD": "Dementia"}[dx],
                "AGE": round(truth["age"], 1),
                "PTGENDER": "Male" if truth["sex"] == "M" else "Female",
            },
            "ADNI_collection.csv": {
                "Image Data ID": f"I{40000 + 13 * index}",
                "Subject": subject,
                "Group": dx,
                "Sex": truth["sex"],
                "Age": int(truth["age"]),
                "Visit": "sc",
                "Modality": "MRI",
                "Description": "MPRAGE",
                "Type": "Original",
                "Acq Date": f"{when.month}/{when.day}/{when.year}",
                "Format": "NiFTI",
            },
        }


class OasisLayout(Layout):
    """``disc<k>/OAS1_XXXX_MR1/RAW/OAS1_XXXX_MR1_mpr-1_anon`` + ``oasis_cross-sectional.csv``."""

    cohort = "oasis"
    patterns = (r"disc\d+/(OAS1_\d{4}_MR1)/RAW/\1_mpr-1_anon\.nii\.gz",)

    def paths(self, index: int, truth: dict) -> tuple[str, dict[str, str]]:
        case = f"OAS1_{index + 1:04d}_MR1"
        return case, {"T1": f"disc{index // 40 + 1}/{case}/RAW/{case}_mpr-1_anon.nii.gz"}

    def rows(self, index: int, subject: str, truth: dict) -> dict[str, dict]:
        return {
            "oasis_cross-sectional.csv": {
                "ID": subject,
                "M/F": truth["sex"],
                "Hand": "R",
                "Age": int(truth["age"]),
                "Educ": 1 + index % 5,
                "SES": 1 + (index * 3) % 5,
                "CDR": truth["cdr"],
            }
        }


class AbideLayout(Layout):
    """``<SITE>/<SUB_ID>/session_1/anat_1/mprage`` + ``Phenotypic_V1_0b_preprocessed1.csv``."""

    cohort = "abide"
    patterns = (r"(NYU|UM_1|USM|UCLA_1|PITT|KKI)/\d{7}/session_1/anat_1/mprage\.nii\.gz",)
    sites = ("NYU", "UM_1", "USM", "UCLA_1", "PITT", "KKI")

    def paths(self, index: int, truth: dict) -> tuple[str, dict[str, str]]:
        site = self.sites[index % len(self.sites)]
        sub_id = 50002 + index
        return f"{sub_id:07d}", {"T1": f"{site}/{sub_id:07d}/session_1/anat_1/mprage.nii.gz"}

    def rows(self, index: int, subject: str, truth: dict) -> dict[str, dict]:
        site = self.sites[index % len(self.sites)]
        autism = bool(truth["autism"])
        return {
            "Phenotypic_V1_0b_preprocessed1.csv": {
                "SUB_ID": int(subject),
                "SITE_ID": site,
                "FILE_ID": f"{site}_{subject}",
                "DX_GROUP": 1 if autism else 2,
                "DSM_IV_TR": (1 + index % 3) if autism else 0,
                "AGE_AT_SCAN": round(truth["age"], 2),
                "SEX": 1 if truth["sex"] == "M" else 2,
            }
        }


class IxiLayout(Layout):
    """``IXI-T1/IXI<ID>-<site>-<num>-T1``, ``IXI-T2/…-T2`` + ``IXI.csv`` (demographics)."""

    cohort = "ixi"
    patterns = (r"IXI-(T1|T2)/IXI\d{3}-(Guys|HH|IOP)-\d{4}-\1\.nii\.gz",)
    sites = ("Guys", "HH", "Guys", "IOP", "HH", "Guys")

    def paths(self, index: int, truth: dict) -> tuple[str, dict[str, str]]:
        ixi_id = index + 2
        site = self.sites[index % len(self.sites)]
        stem = f"IXI{ixi_id:03d}-{site}-{(800 + 37 * index) % 10000:04d}"
        return f"IXI{ixi_id:03d}", {seq: f"IXI-{seq}/{stem}-{seq}.nii.gz" for seq in ("T1", "T2")}

    def rows(self, index: int, subject: str, truth: dict) -> dict[str, dict]:
        study = _scan_time(index, step_days=2).date()
        born = study - dt.timedelta(days=round(truth["age"] * 365.25))
        return {
            "IXI.csv": {
                "IXI_ID": index + 2,
                "SEX_ID (1=m, 2=f)": 1 if truth["sex"] == "M" else 2,
                "DOB": born.isoformat(),
                "DATE_AVAILABLE": 1,
                "STUDY_DATE": study.isoformat(),
                "AGE": round(truth["age"], 2),
            }
        }


class AtlasLayout(Layout):
    """BIDS: ``Training/R<site>/sub-r<site>s<n>/ses-1/anat/…_T1w`` and ``…T1lesion_mask``."""

    cohort = "atlas"
    space_code = 4  # released registered to MNI152NLin2009aSym
    patterns = (
        r"Training/R(\d{3})/(sub-r\1s\d{3})/ses-1/anat/\2_ses-1_space-MNI152NLin2009aSym_"
        r"(T1w|label-L_desc-T1lesion_mask)\.nii\.gz",
    )

    def paths(self, index: int, truth: dict) -> tuple[str, dict[str, str]]:
        site = index % 9 + 1
        sub = f"sub-r{site:03d}s{index // 9 + 1:03d}"
        stem = f"Training/R{site:03d}/{sub}/ses-1/anat/{sub}_ses-1_space-MNI152NLin2009aSym"
        return sub, {"T1": f"{stem}_T1w.nii.gz", "seg": f"{stem}_label-L_desc-T1lesion_mask.nii.gz"}

    def rows(self, index: int, subject: str, truth: dict) -> dict[str, dict]:
        return {
            "Training/participants.tsv": {
                "participant_id": subject,
                "session": "ses-1",
                "site": f"R{index % 9 + 1:03d}",
                "age": int(truth["age"]),
                "sex": truth["sex"],
                "days_since_stroke": round(truth["days_since_stroke"], 1),
            }
        }


NEURO_LAYOUTS = {
    "adni": AdniLayout,
    "oasis": OasisLayout,
    "abide": AbideLayout,
    "ixi": IxiLayout,
    "atlas": AtlasLayout,
}
