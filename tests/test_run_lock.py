"""One trainer per run folder: a second start fails naming the holder; the lock goes with the
holder's process, also when it is killed with its DataLoader workers still running."""

from __future__ import annotations

import os
import signal

import pytest
from test_preempt import LONG, group_alive, launch, wait_for
from test_pretrain import _cfg, shards  # noqa: F401  (the module's shard folder fixture)

from braindino.errors import ConfigError
from braindino.ssl.trainer import Trainer, pretrain


def test_second_trainer_on_a_run_folder_fails_until_the_holder_dies(shards, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    holder = launch(shards, run)
    try:
        wait_for(run / "checkpoint-000002.pt", holder)
        held = rf"run\.lock: run folder is in use by pid {holder.pid} on host "
        with pytest.raises(ConfigError, match=held):
            Trainer(_cfg(shards, run, *LONG))
        holder.kill()  # SIGKILL to the trainer only: its workers outlive it for a while
        holder.wait()
        trainer = Trainer(_cfg(shards, run, *LONG))  # the dead holder's lock is gone at once
        trainer.close()
    finally:
        if group_alive(holder.pid):
            os.killpg(holder.pid, signal.SIGKILL)
        holder.communicate()


def test_lock_is_released_when_a_run_ends_or_fails_to_start(shards, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    assert pretrain(_cfg(shards, run)) == "done"
    with pytest.raises(ConfigError, match=r"schedule\.epochs"):
        Trainer(_cfg(shards, run, "schedule.epochs=4"))  # refused: the lock must not stay
    assert pretrain(_cfg(shards, run)) == "done"  # "schedule already complete", not "in use"
