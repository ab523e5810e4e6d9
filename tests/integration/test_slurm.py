"""slurm/*.sbatch on a real one-node SLURM cluster: pretraining with 2 CPU processes (DataLoader
workers on), preemption (USR1 warning signal and requeue) ending with the weights of an
uninterrupted run, a downstream job array collected into one table, and a cluster that leaves
nothing running.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from braindino.engine import find_latest_checkpoint, load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
EPOCHS, ITERS = 15, 8
STEPS = EPOCHS * ITERS
# The preemption is sent once this checkpoint is on disk. The job then still has most of its
# steps (about 15 s) to run: at 40 steps (5 s left) a requeue once arrived after the run had
# already finished, and the job completed without being interrupted.
SIGNAL_AT = 4
WORKERS = 2  # DataLoader workers per process, as real runs have (the default is 4)


def _pretrain_args(shards: Path, out: Path) -> list[str]:
    return [
        "--config", "tiny", f"data.shards={shards}", f"run.out={out}", "run.progress=false",
        "model.arch=vit_micro_patch16_dinov3", "data.batch_size_per_device=4",
        f"schedule.epochs={EPOCHS}", f"schedule.iters_per_epoch={ITERS}",
        "schedule.warmup_epochs=1", "schedule.teacher_temp_warmup_epochs=1",
        f"run.checkpoint_every={SIGNAL_AT}",
        "run.log_every=1", "augment.local_crops.number=2",
        f"data.num_workers={WORKERS}",  # preemption signals reach the workers too
    ]  # fmt: skip


def _submit_pretrain(cluster, shards: Path, run: Path) -> tuple[str, Path]:
    log = run.parent / f"{run.name}.out"
    job = cluster.sbatch(
        "--ntasks-per-node=2",
        f"--output={log}",
        "slurm/pretrain.sbatch",
        *_pretrain_args(shards, run),
    )
    return job, log


def _weights(run: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(find_latest_checkpoint(run))
    flat = {f"student.{k}": v for k, v in state["student"].items()}
    flat.update({f"teacher.{k}": v for k, v in state["teacher"].items()})
    return flat | {"step": torch.tensor(state["step"])}


@pytest.fixture(scope="module")
def reference(cluster, shards, tmp_path_factory):
    """An uninterrupted 2-process pretraining job: (run folder, job fields, log)."""
    run = tmp_path_factory.mktemp("pretrain") / "full"
    job, log = _submit_pretrain(cluster, shards, run)
    cluster.wait(job, 600, log)
    return run, cluster.job(job), log


def test_pretrain_job_leaves_checkpoint_and_tensorboard_logs(reference):
    run, job, log = reference
    assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", log.read_text()
    text = log.read_text()
    assert "1 node(s) x 2 process(es), torchrun" in text
    assert (run / f"checkpoint-{STEPS:06d}.pt").is_file()
    assert load_checkpoint(find_latest_checkpoint(run))["step"] == STEPS
    events = list((run / "tb").rglob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)
    assert f"training iterations 0..{STEPS - 1} on 2 process(es)" in (run / "log.txt").read_text()


@pytest.mark.parametrize("how", ["usr1", "requeue"])
def test_preempted_job_resumes_to_the_uninterrupted_weights(cluster, shards, reference, how):
    run = reference[0].parent / f"preempted-{how}"
    job, log = _submit_pretrain(cluster, shards, run)
    deadline = time.monotonic() + 300
    while not (run / f"checkpoint-{SIGNAL_AT:06d}.pt").exists():
        assert time.monotonic() < deadline, log.read_text() if log.exists() else "no log"
        time.sleep(0.2)
    if how == "usr1":  # what SLURM does before the time limit (--signal=B:USR1@300)
        cluster.run("scancel", "--batch", "--signal=USR1", job)
    else:
        cluster.run("scontrol", "requeue", job)
    cluster.wait(job, 600, log)
    fields = cluster.job(job)
    assert fields["JobState"] == "COMPLETED", log.read_text()
    assert int(fields["Restarts"]) == 1, log.read_text()
    assert "killed by signal" not in log.read_text()  # the workers ignored the signal

    lines = (run / "log.txt").read_text().splitlines()
    stops = [line for line in lines if "checkpointing at" in line]
    assert len(stops) == 1, lines
    stopped_at = int(stops[0].rsplit(" ", 1)[1])
    assert SIGNAL_AT <= stopped_at < STEPS  # interrupted mid-run
    # resumed exactly where it stopped: no lost and no repeated step
    assert any(f"training iterations {stopped_at}..{STEPS - 1}" in line for line in lines), lines

    full, resumed = _weights(reference[0]), _weights(run)
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key


def test_downstream_array_collects_four_rows(cluster, cohort, tmp_path):
    sweep = tmp_path / "sweep"
    grid = ["--tasks", "adni,brain_age", "--seeds", "0,1", "--label-fraction", "1.0"]
    count = subprocess.run(
        [sys.executable, "-m", "braindino.downstream.array", "--count", *grid],
        check=True, capture_output=True, text=True, env=cluster.env,
    ).stdout.strip()  # fmt: skip
    assert count == "4"
    job = cluster.sbatch(
        "--array=0-3",
        f"--output={tmp_path}/array-%A_%a.out",
        "slurm/downstream.sbatch",
        *grid,
        "--out", str(sweep), "--encoder", "random:vit_micro_patch16_dinov3",
        "--set", "slices=8", "--preprocess", "spacing=4.0", "--preprocess", "slices.size=32",
        "--epochs", "3", "--bootstrap", "50", "--batch-size", "8",
        "--cache", str(tmp_path / "features"),
    )  # fmt: skip
    cluster.wait(job, 900)
    logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("array-*.out")))
    assert len(list(sweep.rglob("metrics.json"))) == 4, logs

    done = subprocess.run(
        [sys.executable, str(ROOT / "downstream/collect.py"), str(sweep)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    assert "4 rows" in done.stdout
    with open(sweep / "results.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    cells = {(r["task"], r["seed"]) for r in rows}
    assert cells == {("adni", "0"), ("adni", "1"), ("brain_age", "0"), ("brain_age", "1")}
    assert {r["metric"] for r in rows} == {"macro_auc", "mae"}
    assert all(r["value"] not in ("", "nan") for r in rows)


def test_gpu_nodes_get_one_accelerate_launcher_per_node(cluster):
    """The multi-node GPU launch line, from SLURM's variables (dry run: nothing is trained)."""
    env = {
        **cluster.env,
        "SLURM_JOB_NUM_NODES": "4",
        "SLURM_GPUS_ON_NODE": "8",
        "SLURM_JOB_NODELIST": "localnode",
        "BRAINDINO_DRY_RUN": "1",
    }
    done = subprocess.run(
        ["bash", "slurm/pretrain.sbatch", "--config", "vitl16", "data.shards=/data/a b"],
        env=env, cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    line = done.stdout.splitlines()[-1]
    for part in (
        "accelerate.commands.launch --num_machines 4 --num_processes 32",
        "--main_process_ip 127.0.0.1",  # the first node's NodeAddr
        "--config_file configs/accelerate/fsdp.yaml --machine_rank $SLURM_NODEID",  # ViT-L
        "pretrain/run.py --config vitl16 data.shards=/data/a\\ b run.fsdp=true",
    ):
        assert part in line, line
    ddp = subprocess.run(
        ["bash", "slurm/pretrain.sbatch", "--config", "vitb16"],
        env=env, cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "--config_file configs/accelerate/ddp_bf16.yaml" in ddp.stdout
    assert "run.fsdp" not in ddp.stdout


def test_zz_stopped_cluster_leaves_nothing_running(cluster):
    """Last in the module: stopping the cluster ends every process it started."""
    pid_files = [
        cluster.state / "slurmctld.pid",
        cluster.state / "slurmd.pid",
        cluster.state / "munge" / "munged.pid",
    ]
    pids = [int(p.read_text()) for p in pid_files]
    cluster.stop()
    assert cluster.leftovers() == []
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), pid


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except OSError:
        return True
