"""Shared fixtures: real volumes that installed packages ship, and small synthetic cohorts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def nibabel_data() -> Path:
    """Folder of nibabel's small real test scans."""
    from nibabel.testing import data_path

    return Path(data_path)


@pytest.fixture(scope="session")
def mni_2mm():
    """The MNI152 (ICBM 2009) T1 template at 2 mm as (data float32, affine), from nilearn."""
    from nilearn.datasets import load_mni152_template

    img = load_mni152_template(resolution=2)
    return np.asarray(img.get_fdata(dtype=np.float32)), np.asarray(img.affine, dtype=np.float64)


@pytest.fixture(scope="session")
def make_cohort(tmp_path_factory):
    """``make_cohort(subjects, seed=0)``: a labelled synthetic cohort in a new folder (datasets in
    their native layouts, no pretraining pool, no baseline numbers); returns the folder."""
    from braindino.synth.generate import generate_cohort

    def make(subjects: dict[str, int], seed: int = 0) -> Path:
        out = tmp_path_factory.mktemp("cohort")
        generate_cohort(
            out, subjects=subjects, seed=seed, pool_subjects=0, baseline=False, progress=False
        )
        return out

    return make
