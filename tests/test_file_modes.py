"""Written files get the mode a plain open() gives (0o666 minus the umask), not 0600."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import nibabel as nib
import pytest
import torch

from braindino.data.inputs import discover_inputs
from braindino.data.prepare import load_prepare_config, prepare_shards
from braindino.engine import save_checkpoint
from braindino.io import write_volume
from braindino.models import create_backbone, save_encoder


@pytest.fixture(params=[0o027, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_exports_shards_volumes_and_checkpoints_respect_the_umask(tmp_path, umask, mni_2mm):
    expected = 0o666 & ~umask  # e.g. 0o644, or 0o640 / 0o664 for a lab group
    save_encoder(create_backbone("vit_micro_patch16_dinov3"), tmp_path / "encoder")
    written = sorted((tmp_path / "encoder").iterdir())
    assert [p.name for p in written] == ["config.json", "model.safetensors"]

    data, affine = mni_2mm
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "s0_T1.nii.gz")
    cfg = load_prepare_config(dotlist=["preprocess.spacing=null", "preprocess.slices.size=32"])
    inputs = discover_inputs([str(tmp_path / "s0_T1.nii.gz")])
    prepare_shards(inputs, tmp_path / "shards", cfg, progress_bar=False)
    written += [p for p in (tmp_path / "shards").rglob("*") if p.is_file()]
    written.append(write_volume(data, tmp_path / "pred.nii.gz", affine=affine))
    written.append(save_checkpoint({"w": torch.zeros(3)}, tmp_path / "run", 1))
    assert {p.relative_to(tmp_path).as_posix(): oct(_mode(p)) for p in written} == {
        p.relative_to(tmp_path).as_posix(): oct(expected) for p in written
    }
