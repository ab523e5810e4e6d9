"""Atomic checkpoints, keep-last pruning, the latest pointer, RNG round trip, signal flag."""

from __future__ import annotations

import os
import random
import signal
import time

import numpy as np
import pytest
import torch

from braindino.engine import checkpoint as ckpt
from braindino.engine.checkpoint import (
    capture_rng_state,
    find_latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from braindino.engine.signals import GracefulExit, install_signal_handlers
from braindino.errors import BrainDinoError
from braindino.io import atomic


def _state(step: int) -> dict:
    return {"step": step, "weights": torch.full((3,), float(step)), "opt": {"lr": [0.1, 0.2]}}


def test_save_names_keeps_last_k_and_points_latest(tmp_path):
    for step in (10, 20, 30, 40):
        path = save_checkpoint(_state(step), tmp_path, step, keep_last=2)
    assert path.name == "checkpoint-000040.pt"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint-000030.pt",
        "checkpoint-000040.pt",
        "latest",
    ]
    assert (tmp_path / "latest").read_text(encoding="utf-8").strip() == "checkpoint-000040.pt"
    assert find_latest_checkpoint(tmp_path) == path
    loaded = load_checkpoint(path)
    assert loaded["step"] == 40 and torch.equal(loaded["weights"], torch.full((3,), 40.0))


def test_crash_during_write_keeps_previous_checkpoint_and_latest(tmp_path, monkeypatch):
    good = save_checkpoint(_state(1), tmp_path, 1)

    def crashing_save(obj, handle):
        handle.write(b"half a checkpoint")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(ckpt.torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(_state(2), tmp_path, 2)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-000001.pt", "latest"]
    assert find_latest_checkpoint(tmp_path) == good
    assert load_checkpoint(good)["step"] == 1


def test_crash_while_updating_latest_leaves_a_valid_pointer(tmp_path, monkeypatch):
    save_checkpoint(_state(1), tmp_path, 1)
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(dst).endswith("latest"):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", failing_replace)  # where every writer renames
    with pytest.raises(OSError):
        save_checkpoint(_state(2), tmp_path, 2)
    monkeypatch.undo()
    assert (tmp_path / "latest").read_text(encoding="utf-8").strip() == "checkpoint-000001.pt"
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    assert load_checkpoint(find_latest_checkpoint(tmp_path))["step"] == 1


def test_find_latest_without_pointer_and_in_empty_folder(tmp_path):
    assert find_latest_checkpoint(tmp_path) is None
    assert find_latest_checkpoint(tmp_path / "missing") is None
    save_checkpoint(_state(5), tmp_path, 5, keep_last=None)
    save_checkpoint(_state(12), tmp_path, 12, keep_last=None)
    (tmp_path / "latest").unlink()
    (tmp_path / ".checkpoint-000099.pt.tmp-1").write_bytes(b"junk")  # left by a crash
    assert find_latest_checkpoint(tmp_path).name == "checkpoint-000012.pt"


def test_damaged_or_unsafe_checkpoint_gives_one_clear_error(tmp_path):
    bad = tmp_path / "checkpoint-000001.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(BrainDinoError, match=r"checkpoint-000001\.pt: .*damaged.*Fix:"):
        load_checkpoint(bad)
    whole = save_checkpoint(_state(3), tmp_path, 3).read_bytes()
    (tmp_path / "cut.pt").write_bytes(whole[: len(whole) // 2])  # truncated by a full disk
    with pytest.raises(BrainDinoError, match="damaged"):
        load_checkpoint(tmp_path / "cut.pt")
    with pytest.raises(BrainDinoError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    odd = save_checkpoint({"lr": np.float64(0.5)}, tmp_path, 2)  # numpy scalar: not "safe"
    with pytest.raises(BrainDinoError, match=r"numpy\S*scalar.*weights_only=False"):
        load_checkpoint(odd)
    assert load_checkpoint(odd, weights_only=False)["lr"] == 0.5


def _draws() -> tuple:
    return (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist())


def test_rng_states_round_trip_through_a_safe_checkpoint(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached gauss value in Python's generator
    np.random.standard_normal()
    path = save_checkpoint({"rng": capture_rng_state()}, tmp_path, 0)
    expected = _draws()
    _draws()  # move every generator on
    restore_rng_state(load_checkpoint(path)["rng"])  # weights_only=True loader
    assert _draws() == expected


def test_signal_sets_flag_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGUSR1)
    with install_signal_handlers((signal.SIGTERM, signal.SIGUSR1)) as stop:
        assert not stop.should_exit()
        os.kill(os.getpid(), signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not stop.requested and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stop.should_exit()
        assert stop.received == [signal.SIGUSR1]
        os.kill(os.getpid(), signal.SIGTERM)  # handled, the test process keeps running
        time.sleep(0.05)
        assert stop.received == [signal.SIGUSR1, signal.SIGTERM]
    assert signal.getsignal(signal.SIGUSR1) == before


def test_should_exit_is_agreed_across_a_process_group(tmp_path):
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        stop = GracefulExit(())
        assert stop.should_exit() is False
        stop.requested = True
        assert stop.should_exit() is True
    finally:
        dist.destroy_process_group()
