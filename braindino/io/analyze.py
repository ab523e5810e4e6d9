"""Analyze 7.5 (``.hdr``/``.img``) files carry no orientation: the voxel axes' directions are a
convention of each dataset, given as three axis codes (``ASL``: axis 0 runs to Anterior, axis 1
to Superior, axis 2 to Left).

``KNOWN_CONVENTIONS`` holds the datasets whose convention is published; any other Analyze file
needs ``read_volume(path, orientation=CODES)`` (``orientation:`` in a data config's dataset
entry), else it is refused rather than sliced along a guessed axis.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from braindino.errors import VolumeError

_UNIT = {
    "R": (1, 0, 0),
    "L": (-1, 0, 0),
    "A": (0, 1, 0),
    "P": (0, -1, 0),
    "S": (0, 0, 1),
    "I": (0, 0, -1),
}

#: (file-name regex, axis codes, source). OASIS-1's RAW scans (``OAS1_0001_MR1_mpr-1_anon.hdr``)
#: are sagittal: the published conversion to NIfTI (A. Winkler, "Converting OASIS brains to
#: NIfTI", brainder.org, 2011) sets the sform to x = -1.25 k, y = i, z = j, i.e. voxel axis 0
#: runs to Anterior, axis 1 to Superior and axis 2 (1.25 mm) to Left.
KNOWN_CONVENTIONS: tuple[tuple[re.Pattern, str, str], ...] = (
    (
        re.compile(r"^OAS1_\d{4}_MR\d+_mpr-\d+_anon\.(hdr|img)$"),
        "ASL",
        "OASIS-1 RAW (brainder.org)",
    ),
)


def check_axis_codes(codes: str, where: str | Path) -> str:
    """``codes`` upper-cased, or a VolumeError unless it names each of the three axes once."""
    text = str(codes).strip().upper()
    axes = sorted({"R": 0, "L": 0, "A": 1, "P": 1, "S": 2, "I": 2}.get(c, -1) for c in text)
    if len(text) != 3 or axes != [0, 1, 2]:
        raise VolumeError(
            f"orientation '{codes}' is not three axis codes (one of R/L, A/P, S/I each)",
            path=where,
            fix="write the voxel axes' directions, e.g. orientation: ASL (OASIS-1 RAW)",
        )
    return text


def convention_for(path: str | Path) -> str | None:
    """The published axis codes of a known dataset's Analyze file, or None."""
    name = Path(path).name
    return next((codes for regex, codes, _ in KNOWN_CONVENTIONS if regex.match(name)), None)


def analyze_affine(codes: str, zooms: tuple[float, ...], path: str | Path) -> np.ndarray:
    """The voxel -> RAS mm affine of voxel axes running along ``codes`` with sizes ``zooms``."""
    codes = check_axis_codes(codes, path)
    affine = np.eye(4)
    for axis, code in enumerate(codes):
        affine[:3, axis] = np.asarray(_UNIT[code], float) * float(zooms[axis])
    return affine


def unknown_orientation(path: str | Path) -> VolumeError:
    """The error for an Analyze file of no known convention read without ``orientation``."""
    return VolumeError(
        "Analyze 7.5 files carry no orientation, and this file's dataset convention is unknown",
        path=path,
        fix="give the voxel axes' directions (read_volume(path, orientation='ASL'), or "
        "orientation: ASL in the data config's dataset entry), or convert it to NIfTI",
    )
