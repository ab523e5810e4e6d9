"""What the public brain-MRI releases name their files: label maps, duplicates, subjects.

Folder and glob inputs of ``pretrain/prepare.py`` leave out the files ``DEFAULT_EXCLUDE`` names
(tumour and tissue label maps, UPENN-GBM's skull-on duplicates, bundled templates) and list them
with the reason in ``report.json``; ``label_map_problem`` catches the label maps no name gives
away, by content. ``SUBJECT_PATTERNS`` are the releases' own subject ids, the same ones the task
configs (``configs/tasks/*.yaml``) match, so that a release's top folder
(``NIfTI-files``, ``UCSF-PDGM-v3``, ABIDE's site folders) is never taken for a subject.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import Path

import numpy as np

_LABEL_MAP = "label map, not an image"
#: File-name globs (matched case-insensitively) left out by default, with the reason reported.
EXCLUDE_REASONS: dict[str, str] = {
    "*_seg.*": _LABEL_MAP,  # BraTS 2021
    "*-seg.*": _LABEL_MAP,  # BraTS 2023+
    "*_segm.*": _LABEL_MAP,  # UPENN-GBM images_segm
    "*_automated_approx_segm.*": _LABEL_MAP,  # UPENN-GBM automated_segm
    "*segmentation*": _LABEL_MAP,  # UCSF-PDGM tumor_/brain_/brain_parenchyma_segmentation
    "*_fseg.*": _LABEL_MAP,  # OASIS-1 FSL_SEG
    "*mask*": "mask or masked derivative, not a source image",  # ATLAS *_T1lesion_mask, OASIS
    "*label*": _LABEL_MAP,
    "*_dseg.*": _LABEL_MAP,  # BIDS derivatives
    "*_probseg.*": "probability map, not an image",  # BIDS derivatives
    "*_unstripped.*": "skull-on duplicate of a skull-stripped image",  # UPENN-GBM
    "*_bias.*": "bias-corrected duplicate of an image",  # UCSF-PDGM <ID>_<type>_bias
    "*_bold.*": "functional (BOLD) series, not a structural image",  # BIDS func (ABIDE)
    "mni152*": "bundled template, not a subject",  # ATLAS v2.0 MNI152NLin2009aSym.nii.gz
    "mni_icbm152*": "bundled template, not a subject",
    "tpl-*": "bundled template, not a subject",  # TemplateFlow
}
DEFAULT_EXCLUDE = tuple(EXCLUDE_REASONS)

#: The releases' subject ids (regex group ``subject``), searched in the path below the input.
SUBJECT_PATTERNS = (
    r"(?:^|/)(?P<subject>BraTS2021_\d{5})(?:/|_)",
    r"(?:^|/)(?P<subject>BraTS-[A-Za-z]+-\d{5}(?:-\d{3})?)(?:/|-)",
    r"(?:^|/)(?P<subject>UPENN-GBM-\d{5}_\d+)(?:/|_)",
    r"(?:^|/)(?P<subject>UCSF-PDGM-\d+)(?:/|_)",
    r"(?:^|/)(?P<subject>sub-[A-Za-z0-9]+)(?:/|_)",  # BIDS: ATLAS v2, ABIDE's BIDS release
    r"(?:^|/)(?P<subject>OAS1_\d{4}_MR\d)(?:/|_)",  # OASIS-1: the CSV's ID (OAS1_0001_MR1)
    r"(?:^|/)(?P<subject>\d{3}_S_\d{4})/",  # ADNI PTID
    r"(?:^|/)(?P<subject>\d{5,7})/session_\d+/",  # ABIDE I
    r"(?:^|/)(?P<subject>IXI\d{3})-",  # IXI
)

#: What to do about a label map found by content (prepare skips it, check reports it).
LABEL_MAP_FIX = (
    "leave label maps out of pretraining inputs: add a pattern for their names to "
    "dataset_defaults.exclude (or datasets.NAME.exclude) in the data config"
)
#: A volume whose voxels are all integers with at most this many distinct values is a label map.
MAX_LABEL_VALUES = 64


def exclude_reason(path: str | Path, exclude: Sequence[str]) -> str | None:
    """Why ``path`` is left out (``"label map, not an image ('*_segm.*')"``), or ``None``."""
    name = Path(path).name.lower()
    for pattern in exclude:
        if fnmatch.fnmatch(name, pattern.lower()):
            reason = EXCLUDE_REASONS.get(pattern, "matches an exclude pattern")
            return f"{reason} ('{pattern}')"
    return None


def label_map_problem(data: np.ndarray, limit: int = MAX_LABEL_VALUES) -> str | None:
    """``"label map (values 0, 1, 2, 4), not an image"`` when every voxel is an integer and at most
    ``limit`` values occur, else ``None``. Images have hundreds of grey levels; a quick subsample
    settles most volumes, a larger one confirms a suspected label map."""
    flat = np.asarray(data).reshape(-1)
    for size in (100_000, 4_000_000):
        sample = flat[:: max(1, flat.size // size)]
        finite = sample[np.isfinite(sample)]
        if finite.size == 0 or not np.array_equal(finite, np.round(finite)):
            return None
        distinct = np.unique(finite)
        if len(distinct) > limit:
            return None
    shown = ", ".join(f"{v:g}" for v in distinct[:8]) + (", …" if len(distinct) > 8 else "")
    return f"label map (values {shown}), not an image"
