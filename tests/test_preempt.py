"""Stopping a pretraining run the way launchers, SLURM, ``timeout`` and a terminal do: a signal to
the whole process group, with DataLoader workers on. The run checkpoints, exits with its own
status, and starts again from where it stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_pretrain import _cfg, _overrides, shards  # noqa: F401  (the module's shard folder fixture)

from braindino.engine.checkpoint import find_latest_checkpoint, load_checkpoint
from braindino.engine.signals import EXIT_INTERRUPTED, install_signal_handlers
from braindino.ssl.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
WORKERS = 2
# Long enough never to finish before the signal; a checkpoint every 2 steps shows it is training.
LONG = ("schedule.epochs=100", "schedule.iters_per_epoch=4", "run.checkpoint_every=2")


def launch(shard_dir: Path, run: Path, *extra: str) -> subprocess.Popen:
    """pretrain/run.py (the _cfg settings, ``WORKERS`` DataLoader workers) in its own process
    group, as a launcher or SLURM starts it."""
    args = _overrides(shard_dir, run, f"data.num_workers={WORKERS}", *LONG, *extra)
    cmd = [sys.executable, str(ROOT / "pretrain/run.py"), "--config", "tiny", *args]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Wait until ``path`` exists (the run is training), failing with the run's output."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"run did not reach {path.name}: rc={proc.returncode}\n{err[-3000:]}")
        time.sleep(0.1)


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is still there."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_the_process_group_with_workers_checkpoints_and_resumes(
    shards,  # noqa: F811
    tmp_path,
    signum,
):
    run = tmp_path / "run"
    proc = launch(shards, run)
    wait_for(run / "checkpoint-000002.pt", proc)
    os.killpg(proc.pid, signum)  # what timeout, scancel, requeue and Ctrl-C do
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == EXIT_INTERRUPTED, err[-3000:]
    assert "killed by signal" not in err and "Traceback" not in err, err[-3000:]
    assert "interrupted, checkpointed" in out
    stops = [line for line in (run / "log.txt").read_text().splitlines() if "checkpointing" in line]
    assert len(stops) == 1 and signal.Signals(signum).name in stops[0], stops
    stopped_at = int(stops[0].rsplit(" ", 1)[1])
    state = load_checkpoint(find_latest_checkpoint(run))
    assert state["step"] == stopped_at >= 2
    deadline = time.monotonic() + 15
    while group_alive(proc.pid) and time.monotonic() < deadline:  # workers end with the run
        time.sleep(0.1)
    assert not group_alive(proc.pid)

    resumed = Trainer(_cfg(shards, run, *LONG))  # the same run, started again
    try:
        assert resumed.step == stopped_at
    finally:
        resumed.close()


def test_second_ctrl_c_stops_without_waiting_for_a_checkpoint():
    with install_signal_handlers((signal.SIGINT,)) as stop:
        os.kill(os.getpid(), signal.SIGINT)
        deadline = time.monotonic() + 5
        while not stop.requested and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stop.should_exit()  # first Ctrl-C: checkpoint, then stop
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
