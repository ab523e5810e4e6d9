"""Resuming a run folder: a changed config is refused (one line naming the keys) unless allowed,
a damaged newest checkpoint falls back to the newest readable one, and partial files a kill left
are removed; options and key=value overrides go in any order on the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from test_pretrain import _cfg, _overrides, _weights, shards  # noqa: F401  (fixture)

from braindino.errors import ConfigError
from braindino.ssl.trainer import Trainer, pretrain

ROOT = Path(__file__).resolve().parents[1]


def test_changed_config_is_refused_naming_the_keys_unless_allowed(shards, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    assert pretrain(_cfg(shards, run)) == "done"
    saved = (run / "config.yaml").read_text(encoding="utf-8")

    with pytest.raises(ConfigError) as longer:
        Trainer(_cfg(shards, run, "schedule.epochs=4", "optim.clip_grad=1.0"))
    line = str(longer.value)
    assert "optim.clip_grad: 3.0 -> 1.0; schedule.epochs: 3 -> 4" in line
    assert "--allow-config-change" in line and "run.out=NEW" in line and "\n" not in line
    with pytest.raises(ConfigError, match=r"model\.arch: vit_micro_patch16_dinov3 -> vit_tiny"):
        Trainer(_cfg(shards, run, "model.arch=vit_tiny_patch16_dinov3"))  # no size-mismatch dump
    assert (run / "config.yaml").read_text(encoding="utf-8") == saved  # left as it was

    # how the run is watched and fed may change freely
    same = Trainer(_cfg(shards, run, "run.log_every=3", "data.num_workers=1", "run.progress=true"))
    assert same.step == 6
    same.close()

    assert pretrain(_cfg(shards, run, "schedule.epochs=4"), allow_config_change=True) == "done"
    assert _weights(run)  # trained on to the new end
    assert OmegaConf.load(run / "config.yaml").schedule.epochs == 4
    assert "config changed on resume (--allow-config-change): schedule.epochs: 3 -> 4" in (
        run / "log.txt"
    ).read_text(encoding="utf-8")


def test_allowed_model_change_that_cannot_load_is_one_line(shards, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    pretrain(_cfg(shards, run, "schedule.epochs=2"))
    changed = _cfg(shards, run, "schedule.epochs=2", "heads.dino.out_dim=32")
    with pytest.raises(ConfigError, match="weights do not fit the configured model") as err:
        Trainer(changed, allow_config_change=True)
    assert "\n" not in str(err.value) and len(str(err.value)) < 400


def test_damaged_newest_checkpoint_falls_back_and_partial_files_go(shards, tmp_path):  # noqa: F811
    from braindino.engine import load_checkpoint

    run = tmp_path / "run"
    cfg = ("run.checkpoint_every=2",)
    assert pretrain(_cfg(shards, run, *cfg)) == "done"
    full = load_checkpoint(run / "checkpoint-000006.pt")
    newest = run / "checkpoint-000006.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # cut short (a full disk, a bad copy)
    junk = [run / ".checkpoint-000008.pt.tmp-4242", run / ".latest.4242.tmp"]  # left by a kill
    for path in junk:
        path.write_bytes(b"half")

    assert pretrain(_cfg(shards, run, *cfg)) == "done"  # resumes from step 4, no error
    log = (run / "log.txt").read_text(encoding="utf-8")
    assert "checkpoint-000006.pt cannot be loaded" in log
    assert "resuming from checkpoint-000004.pt" in log and "training iterations 4..5" in log
    assert (run / "checkpoint-000006.pt.damaged").is_file()  # kept aside, never picked again
    assert not any(path.exists() for path in junk) and "removed 2 partial file(s)" in log
    again = load_checkpoint(run / "checkpoint-000006.pt")
    for part in ("student", "teacher"):
        for key, value in full[part].items():
            assert torch.equal(value, again[part][key]), (part, key)


def test_options_anywhere_and_allow_config_change_on_the_command_line(shards, tmp_path):  # noqa: F811
    run = tmp_path / "run"
    script = [sys.executable, str(ROOT / "pretrain/run.py"), "--config", "tiny"]
    items = _overrides(shards, run)
    first = subprocess.run(  # an option after key=value overrides, then more overrides
        [*script, *items, "--resume", "never", "schedule.epochs=2"], capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr[-2000:]
    saved = OmegaConf.load(run / "config.yaml")
    assert saved.run.resume == "never" and saved.schedule.epochs == 2
    longer = subprocess.run(
        [*script, *items, "schedule.epochs=3", "--allow-config-change"],
        capture_output=True,
        text=True,
    )
    assert longer.returncode == 0, longer.stderr[-2000:]
    assert "schedule.epochs: 2 -> 3" in (run / "log.txt").read_text(encoding="utf-8")
