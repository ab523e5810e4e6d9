"""The SLURM integration suite: a real one-node cluster (slurm/local_cluster.sh) on loopback.

Run by ``make integration`` (``.ci/run`` runs it after ``make test``), which sets
``BRAINDINO_INTEGRATION=1``; plain ``make test`` / ``pytest`` reports these tests as skipped.
With the variable set, a cluster that cannot start is an error, never a skip.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "slurm" / "local_cluster.sh"
ENABLED = os.environ.get("BRAINDINO_INTEGRATION") == "1"


def pytest_collection_modifyitems(config, items):
    """Skip this folder's tests unless BRAINDINO_INTEGRATION=1 (make integration sets it)."""
    if ENABLED:
        return
    skip = pytest.mark.skip(reason="SLURM integration suite: run `make integration` (as root)")
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(skip)


class Cluster:
    """A started local cluster: its state folder and the environment its clients need."""

    def __init__(self, state: Path, cache: Path, scratch: Path):
        self.state = state
        self.env = {
            **os.environ,
            "SLURM_CONF": str(state / "slurm.conf"),
            "BRAINDINO_CACHE": str(cache),
            "TMPDIR": str(scratch),  # torchrun leaves a torchelastic_* folder per job in TMPDIR
            "OMP_NUM_THREADS": "1",
        }

    def run(self, *cmd: str, check: bool = True) -> str:
        """Run a client command (sbatch, scontrol, ...) against this cluster; its stdout."""
        done = subprocess.run(cmd, env=self.env, capture_output=True, text=True, cwd=ROOT)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed: {done.stderr or done.stdout}")
        return done.stdout

    def sbatch(self, *args: str) -> str:
        """Submit a job; its id."""
        return self.run("sbatch", "--parsable", *args).strip().split(";")[0]

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` fields of a job (the first array element for arrays)."""
        text = self.run("scontrol", "show", "job", "-o", job_id)
        fields = {}
        for token in text.splitlines()[0].split():
            key, _, value = token.partition("=")
            fields[key] = value
        return fields

    def wait(self, job_id: str, timeout: float, log: Path | None = None) -> None:
        """Wait until the job (all its array elements) leaves the queue."""
        deadline = time.monotonic() + timeout
        while self.run("squeue", "-h", "-j", job_id, check=False).strip():
            if time.monotonic() > deadline:
                text = log.read_text() if log and log.exists() else "(no log)"
                raise AssertionError(f"job {job_id} still queued after {timeout}s:\n{text}")
            time.sleep(1)

    def stop(self) -> None:
        """Stop the cluster (cancels its jobs first)."""
        subprocess.run(["bash", str(CLUSTER), "stop", str(self.state)], check=True)

    def leftovers(self) -> list[str]:
        """Pids of processes that still belong to this cluster."""
        out = subprocess.run(
            ["bash", str(CLUSTER), "pids", str(self.state)], capture_output=True, text=True
        ).stdout
        return out.split()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    """A running one-node cluster for the session; stopped at the end whatever happened."""
    if not ENABLED:
        pytest.skip("SLURM integration suite disabled")
    state = tmp_path_factory.mktemp("slurm")
    cache = tmp_path_factory.mktemp("cache")
    scratch = tmp_path_factory.mktemp("jobtmp")
    started = subprocess.run(
        ["bash", str(CLUSTER), "start", str(state)], capture_output=True, text=True
    )
    handle = Cluster(state, cache, scratch)
    if started.returncode != 0:
        handle.stop()
        raise RuntimeError(f"the local SLURM cluster did not start:\n{started.stderr}")
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def cohort(cluster) -> Path:
    """A small synthetic cohort (15 ADNI + 15 IXI subjects) where the tasks look for it."""
    from braindino.synth.generate import generate_cohort

    folder = Path(cluster.env["BRAINDINO_CACHE"]) / "cohort"
    generate_cohort(
        folder,
        subjects={"adni": 15, "ixi": 15},
        seed=0,
        tasks=["adni", "ixi"],
        pool_subjects=0,
        baseline=False,
        progress=False,
    )
    return folder


@pytest.fixture(scope="session")
def shards(cohort, tmp_path_factory) -> Path:
    """Pretraining slice shards from the cohort's ADNI T1 volumes (64-pixel slices)."""
    out = tmp_path_factory.mktemp("shards") / "shards"
    cmd = [sys.executable, str(ROOT / "pretrain/prepare.py"), "--out", str(out)]
    cmd += [str(cohort / "ADNI"), "--quiet", "preprocess.spacing=[3.0,3.0,3.0]"]
    cmd += ["preprocess.slices.size=64"]
    subprocess.run(cmd, check=True, capture_output=True)
    return out
