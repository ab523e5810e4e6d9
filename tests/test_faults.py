"""Read-only folders and full disks: one line naming the path and the fix, earlier files intact.

The tests run as root, which ignores permission bits, so they use real file systems instead: a
tmpfs remounted read-only (EROFS even for root) and a tiny tmpfs (ENOSPC). They skip, saying
why, where mounting is not allowed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
ARCH = "vit_micro_patch16_dinov3"


@pytest.fixture
def tmpfs(tmp_path):
    """``tmpfs(folder, size, readonly=False)`` mounts a tmpfs there; ``tmpfs.remount(folder, opts)``
    changes its options. Everything is unmounted at teardown."""
    mounted: list[Path] = []

    def mount(folder: Path, size: str = "16m", readonly: bool = False) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        options = f"size={size}" + (",ro" if readonly else "")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): {done.stderr}")
        mounted.append(folder)
        return folder

    def remount(folder: Path, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)

    mount.remount = remount  # type: ignore[attr-defined]
    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _cli(*args: object, timeout: int = 300, env: dict | None = None):
    return subprocess.run(
        [sys.executable, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


def _one_line_error(result, path: Path, what: str) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {path}"), result.stderr
    assert what in line and "Fix: " in line, line
    return line


def _scans(folder: Path, mni_2mm, n: int) -> Path:
    data, affine = mni_2mm
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        nib.save(nib.Nifti1Image(data * (1 + 0.1 * k), affine), folder / f"s{k}_T1.nii.gz")
    return folder


def _published(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for sub in ("shards", "index")
        for p in sorted((root / sub).iterdir())
    }


# ---------------------------------------------------------------- prepare


def test_prepare_into_a_read_only_folder_is_one_line(tmp_path, tmpfs, mni_2mm):
    scans = _scans(tmp_path / "in", mni_2mm, 1)
    readonly = tmpfs(tmp_path / "ro", readonly=True)
    result = _cli("pretrain/prepare.py", "--out", readonly / "out", scans, "--quiet")
    line = _one_line_error(result, readonly / "out", "read-only")
    assert "writable disk" in line
    debug = _cli("pretrain/prepare.py", "--out", readonly / "out", scans, "--quiet", "--debug")
    assert "Traceback" in debug.stderr and debug.stderr.strip().endswith(line.split("error: ")[1])
    debug_env = {"BRAINDINO_DEBUG": "1"}
    env = _cli("pretrain/prepare.py", "--out", readonly / "out", scans, env=debug_env)
    assert "Traceback" in env.stderr and env.returncode == 2


def test_prepare_on_a_full_disk_is_one_line_and_resumes_to_the_same_shards(
    tmp_path, tmpfs, mni_2mm
):
    scans = _scans(tmp_path / "in", mni_2mm, 6)
    settings = ["preprocess.spacing=null", "preprocess.slices.size=32"]
    settings += ["shards.slices_per_shard=100", "--quiet"]
    disk = tmpfs(tmp_path / "disk", size="300k")  # ~2 of the 6 volumes' shards fit
    out = disk / "out"
    full = _cli("pretrain/prepare.py", "--out", out, scans, *settings)
    line = _one_line_error(full, out, "no space left on device")
    assert "free space" in line
    committed = sorted(p.name for p in (out / "shards").iterdir())
    assert committed and all(not name.startswith(".") for name in committed)  # no partial shard
    tmpfs.remount(disk, "size=64m")
    resumed = _cli("pretrain/prepare.py", "--out", out, scans, *settings)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["volumes_ok"] == 6 and report["volumes_reused"] >= 1
    clean = _cli("pretrain/prepare.py", "--out", tmp_path / "clean", scans, *settings)
    assert clean.returncode == 0, clean.stderr
    assert _published(out) == _published(tmp_path / "clean")


# ---------------------------------------------------------------- export, pretraining, synth


def _fake_run(folder: Path, seed: int) -> Path:
    """A run folder with one checkpoint as the trainer writes it (config, EMA teacher, step)."""
    from braindino.engine import save_checkpoint
    from braindino.models import create_backbone

    torch.manual_seed(seed)
    backbone = create_backbone(ARCH, img_size=64, in_chans=1)
    model = {"arch": ARCH, "img_size": 64, "in_chans": 1, "kwargs": {}}
    state = {
        "config": {"model": model, "data": {"shards": None}},
        "teacher": {f"backbone.{k}": v for k, v in backbone.state_dict().items()},
        "step": seed,
    }
    save_checkpoint(state, folder, seed)
    return folder


def test_export_on_a_full_disk_is_one_line_and_keeps_the_previous_export(tmp_path, tmpfs):
    from braindino.models import load_encoder

    first, second = _fake_run(tmp_path / "run1", 1), _fake_run(tmp_path / "run2", 2)
    size = (first / "checkpoint-000001.pt").stat().st_size
    disk = tmpfs(tmp_path / "disk", size=f"{size * 3 // 2 // 1024}k")
    out = disk / "encoder"
    assert _cli("pretrain/export.py", first, out).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    full = _cli("pretrain/export.py", second, out)
    _one_line_error(full, out / "model.safetensors", "no space left on device")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temporary file left
    assert load_encoder(out).extra["step"] == 1


def test_pretraining_checkpoint_on_a_full_disk_is_one_line_and_keeps_the_last_one(
    tmp_path, tmpfs, mni_2mm
):
    from braindino.engine import find_latest_checkpoint, load_checkpoint

    shards = tmp_path / "shards"
    scans = _scans(tmp_path / "in", mni_2mm, 2)
    settings = ["preprocess.spacing=[2.0,2.0,2.0]", "preprocess.slices.size=64", "--quiet"]
    prepared = _cli("pretrain/prepare.py", "--out", shards, scans, *settings)
    assert prepared.returncode == 0, prepared.stderr
    run = tmpfs(tmp_path / "disk", size="16m") / "run"  # one 11 MB checkpoint fits, two do not
    result = _cli(
        "pretrain/run.py", "--config", "tiny", f"data.shards={shards}", f"run.out={run}",
        "run.progress=false", f"model.arch={ARCH}", "data.batch_size_per_device=4",
        "schedule.epochs=1", "schedule.iters_per_epoch=2", "schedule.warmup_epochs=0",
        "schedule.teacher_temp_warmup_epochs=0", "schedule.freeze_last_layer_epochs=0",
        "run.checkpoint_every=1", "augment.local_crops.number=2",
    )  # fmt: skip
    _one_line_error(result, run / "checkpoint-000002.pt", "no space left on device")
    latest = find_latest_checkpoint(run)
    assert latest is not None and latest.name == "checkpoint-000001.pt"
    assert load_checkpoint(latest)["step"] == 1
    assert not [p for p in run.iterdir() if ".tmp" in p.name]


def test_atomic_save_on_a_full_disk_raises_enospc_naming_the_file(tmp_path, tmpfs):
    import errno

    from braindino.engine import atomic_save

    disk = tmpfs(tmp_path / "disk", size="256k")
    with pytest.raises(OSError) as err:  # torch.save alone says "unexpected pos 704 vs 598"
        atomic_save({"weights": torch.zeros(200_000)}, disk / "state.pt")
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(disk / "state.pt")
    assert list(disk.iterdir()) == []


def test_synthetic_cohort_into_a_read_only_folder_is_one_line(tmp_path, tmpfs):
    readonly = tmpfs(tmp_path / "ro", readonly=True)
    result = _cli("-m", "braindino.synth", "--out", readonly / "cohort", "--subjects", "2",
                  "--tasks", "ixi", "--no-baseline", "--quiet")  # fmt: skip
    _one_line_error(result, readonly / "cohort", "read-only")


def test_write_volume_on_a_full_disk_names_the_file_and_leaves_nothing(tmp_path, tmpfs, mni_2mm):
    import errno

    from braindino.io import write_volume

    data, affine = mni_2mm
    disk = tmpfs(tmp_path / "disk", size="64k")
    noise = np.random.default_rng(0).random(data.shape).astype(np.float32)
    with pytest.raises(OSError) as err:
        write_volume(noise, disk / "pred.nii.gz", affine=affine)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(disk / "pred.nii.gz")
    assert list(disk.iterdir()) == []
