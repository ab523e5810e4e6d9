"""The package as users install it: a wheel, installed without -e into a fresh virtual
environment, away from the checkout, loads its configs and runs its commands."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, **kwargs
    )
    assert done.returncode == 0, (cmd, done.stdout[-2000:], done.stderr[-3000:])
    return done


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    """A new venv holding the built wheel; the dependencies come from this test's environment
    (a .pth line: no download), but braindino itself only from the wheel."""
    tmp = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "--no-build-isolation",
          "-w", tmp / "dist", "-q"], cwd=tmp)  # fmt: skip
    wheel = next((tmp / "dist").glob("braindino-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=tmp)
    python = venv / "bin" / "python"
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                   cwd=tmp).stdout.strip()  # fmt: skip
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(purelib) / "deps.pth").write_text("\n".join(deps) + "\n")
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", wheel], cwd=tmp)
    return venv


def test_the_wheel_is_what_runs(fresh, tmp_path):
    where = _run([fresh / "bin/python", "-c", "import braindino; print(braindino.__file__)"],
                 cwd=tmp_path).stdout.strip()  # fmt: skip
    assert where.startswith(str(fresh)) and not where.startswith(str(ROOT))


def test_defaults_load_from_the_installed_package(fresh, tmp_path):
    code = (
        "from braindino.config import load_config; from braindino.tasks import load_task, "
        "available_tasks; c = load_config('pretrain/default', ['pretrain/tiny']); "
        "print(c.model.arch, load_task('adni').name, len(available_tasks()))"
    )
    arch, task, count = _run([fresh / "bin/python", "-c", code], cwd=tmp_path).stdout.split()
    assert task == "adni" and int(count) >= 17 and arch


@pytest.mark.parametrize("name", ["", "prepare", "pretrain", "export", "classify", "segment"])
def test_console_command_answers_help(fresh, tmp_path, name):
    done = subprocess.run([fresh / "bin/braindino", *([name] if name else []), "--help"],
                          cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    text = done.stdout + done.stderr
    assert text.startswith(f"usage: braindino {name}".rstrip()), text[:200]


def test_installed_prepare_writes_shards(fresh, tmp_path):
    i, j, k = np.indices((40, 44, 36))
    head = ((i - 20) / 16) ** 2 + ((j - 22) / 18) ** 2 + ((k - 18) / 14) ** 2 < 1
    voxels = head * (300.0 + 3 * i) + np.random.default_rng(0).normal(0, 4, head.shape)
    image = tmp_path / "sub-01_T1w.nii.gz"
    nib.save(nib.Nifti1Image(voxels.astype(np.float32), np.diag([2.0, 2, 2, 1])), image)
    out = tmp_path / "shards"
    done = _run([fresh / "bin/braindino", "prepare", "--out", out, image, "--quiet"],
                cwd=tmp_path)  # fmt: skip
    assert json.loads(done.stdout.splitlines()[-1])["volumes_ok"] == 1
    report = json.loads((out / "report.json").read_text())
    assert report["slices"] > 0 and list((out / "shards").glob("*"))
