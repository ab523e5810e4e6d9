"""What a volume's path says: its stem, its MRI modality and its subject id.

Release conventions (BIDS ``sub-XXX`` folders, a known release's own subject ids in
``conventions.SUBJECT_PATTERNS``) come first; otherwise the first folder below the root, or the
file name without its modality token.
"""

from __future__ import annotations

import re
from pathlib import Path

from braindino.data.conventions import SUBJECT_PATTERNS

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".mgz", ".hdr", ".nrrd", ".mha", ".mhd")  # .hdr: Analyze

_MODALITY_TOKENS = (
    (("t1c", "t1ce", "t1gd", "t1post", "t1-gd", "t1_gd"), "T1c"),
    (("t1", "t1w", "t1n", "mprage", "mpr", "spgr"), "T1"),
    (("flair", "t2f"), "FLAIR"),
    (("t2", "t2w"), "T2"),
    (("pd", "pdw"), "PD"),
    (("dwi", "adc"), "DWI"),
)


def volume_stem(path: str | Path) -> str:
    """The file or folder name without its volume extension (``a/b/x.nii.gz`` -> ``x``)."""
    name = Path(path).name
    for suffix in sorted(VOLUME_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def modality_from_path(path: str | Path) -> str:
    """Guess the MRI modality tag from a file name's tokens (``..._t1ce.nii.gz`` -> ``T1c``)."""
    stem = re.sub(r"mp[-_]rage", "mprage", volume_stem(path), flags=re.IGNORECASE)  # ADNI MP-RAGE
    tokens = [t.lower() for t in re.split(r"[_\-.\s]+", stem) if t]
    for token in reversed(tokens):
        for names, tag in _MODALITY_TOKENS:
            if token in names:
                return tag
    return "unknown"


def _strip_modality_suffix(stem: str) -> str:
    parts = re.split(r"([_\-.])", stem)
    while len(parts) >= 3 and modality_from_path(parts[-1]) != "unknown":
        parts = parts[:-2]
    return "".join(parts)


def subject_from_path(
    path: str | Path, root: str | Path | None = None, subject_regex: str | None = None
) -> str:
    """Derive a subject id from a volume path.

    In order: the first group (or whole match) of ``subject_regex`` searched in the path
    relative to ``root``; a BIDS ``sub-XXX`` folder; a known release's own subject id
    (``conventions.SUBJECT_PATTERNS``: ``UPENN-GBM-00001_11``, ``UCSF-PDGM-0004``, ABIDE's
    ``0050002``, ``IXI002``, ...); the first folder below ``root`` when the file lies deeper than
    ``root`` (``case1/case1_t1.nii.gz``); else the file name without extension and without a
    trailing modality token (``scan3-T1.nii.gz`` -> ``scan3``).
    """
    path = Path(path)
    rel, below_root = path, False
    if root is not None:
        resolved, base = path.resolve(), Path(root).resolve()
        if resolved.is_relative_to(base):
            rel, below_root = resolved.relative_to(base), True
    if subject_regex:
        found = re.search(subject_regex, rel.as_posix())
        if found:
            return found.group(1) if found.groups() else found.group(0)
    for part in rel.parts[:-1]:
        if re.fullmatch(r"sub-[A-Za-z0-9]+", part):
            return part
    for pattern in SUBJECT_PATTERNS:
        found = re.search(pattern, rel.as_posix())
        if found:
            return found.group("subject")
    if below_root and len(rel.parts) >= 2:
        return rel.parts[0]
    return _strip_modality_suffix(volume_stem(path)) or volume_stem(path)
