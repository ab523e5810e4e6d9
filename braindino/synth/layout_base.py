"""The shared machinery of the synthetic layout writers: ``Layout`` (one dataset's folder and file
names, label numbering and subject tables) and writing the subject tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from braindino.synth.cohort_specs import COHORTS
from braindino.synth.nifti import image_to_int16, save_nifti
from braindino.synth.subject import SubjectData
from braindino.synth.tables import write_csv


@dataclass
class WrittenSubject:
    """What a layout wrote for one subject: its id, files (role -> path) and table rows."""

    subject: str
    files: dict[str, str]  # role (T1, T1c, T2, FLAIR, seg) -> path relative to the cohort folder
    rows: dict[str, dict] = field(default_factory=dict)  # table file name -> row


class Layout:
    """Base class: subclasses set ``cohort`` and ``patterns`` and implement ``paths``/``rows``."""

    cohort: str = ""
    patterns: tuple[str, ...] = ()
    # synth label (1 core, 2 oedema, 3 enhancing) -> dataset's
    seg_values: ClassVar[dict[int, int]] = {}
    space_code: int = 1

    def paths(self, index: int, truth: dict) -> tuple[str, dict[str, str]]:
        """The subject id and role -> relative path of each file."""
        raise NotImplementedError

    def rows(self, index: int, subject: str, truth: dict) -> dict[str, dict]:
        """Table file name (relative to the cohort folder) -> this subject's row."""
        return {}

    def write_subject(self, root: Path, index: int, data: SubjectData) -> WrittenSubject:
        """Write one subject's volumes under ``root`` (the cohort folder)."""
        subject, files = self.paths(index, data.truth)
        storage = COHORTS[self.cohort].storage
        for role, rel in files.items():
            if role == "seg":
                seg = data.segmentation
                assert seg is not None, f"{self.cohort} writes a segmentation but has none"
                out = np.zeros_like(seg)
                for source, target in (self.seg_values or {1: 1}).items():
                    out[seg == source] = target
                save_nifti(out, data.affine, root / rel, storage, self.space_code)
            else:
                image = image_to_int16(data.images[role])
                save_nifti(image, data.affine, root / rel, storage, self.space_code)
        return WrittenSubject(subject, files, self.rows(index, subject, data.truth))


def write_tables(root: Path, subjects: list[WrittenSubject]) -> list[Path]:
    """Write every subject table under ``root`` (one row per subject)."""
    tables: dict[str, list[dict]] = {}
    for written in subjects:
        for name, row in written.rows.items():
            tables.setdefault(name, []).append(row)
    return [write_csv(root / name, rows) for name, rows in tables.items()]
