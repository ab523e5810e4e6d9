"""Shared fixtures: real volumes that installed packages ship."""

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
