"""The one config system: defaults + override files + dotlist, strict about typos."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from braindino.config import load_config, save_config
from braindino.errors import ConfigError


@pytest.fixture()
def defaults(tmp_path):
    path = tmp_path / "defaults.yaml"
    path.write_text(
        "optim:\n  lr: 0.001\n  warmup: 10\ncrops:\n  size: 224\nextra: {}\n", encoding="utf-8"
    )
    return path


def test_overrides_merge_in_order(tmp_path, defaults):
    small = tmp_path / "small.yaml"
    small.write_text("optim:\n  lr: 0.01\n", encoding="utf-8")
    cfg = load_config(defaults, [small], ["optim.warmup=3", "crops.size=96"])
    assert cfg.optim.lr == 0.01 and cfg.optim.warmup == 3 and cfg.crops.size == 96


def test_override_file_may_start_from_another(tmp_path, defaults):
    base = tmp_path / "base.yaml"
    base.write_text("optim:\n  lr: 0.5\n", encoding="utf-8")
    child = tmp_path / "child.yaml"
    child.write_text(f"defaults: {base}\ncrops:\n  size: 128\n", encoding="utf-8")
    cfg = load_config(defaults, [child])
    assert cfg.optim.lr == 0.5 and cfg.crops.size == 128 and cfg.optim.warmup == 10


def test_typo_names_the_key_and_the_nearest_one(tmp_path, defaults):
    with pytest.raises(ConfigError) as typo:
        load_config(defaults, dotlist=["optim.warmpu=5"])
    expected = "command line: unknown config key 'optim.warmpu'. Fix: did you mean 'optim.warmup'?"
    assert str(typo.value) == expected  # one line, a question ends it (not "?.")
    bad = tmp_path / "bad.yaml"
    bad.write_text("crop:\n  size: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown config key 'crop'.*'crops'"):
        load_config(defaults, [bad])


def test_open_mappings_take_any_key(defaults):
    cfg = load_config(defaults, dotlist=["extra.anything=1"])
    assert cfg.extra.anything == 1


def test_missing_file_and_bad_yaml(tmp_path, defaults):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(defaults, [broken])


def test_save_config_round_trip(tmp_path, defaults):
    cfg = load_config(defaults, dotlist=["optim.lr=0.2"])
    save_config(cfg, tmp_path / "run" / "config.yaml")
    assert OmegaConf.load(tmp_path / "run" / "config.yaml") == cfg
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_open_mappings_stay_open_after_an_override_fills_them(tmp_path, defaults):
    filled = tmp_path / "filled.yaml"
    filled.write_text("extra:\n  first: 1\n", encoding="utf-8")
    cfg = load_config(defaults, [filled], ["extra.second=2"])
    assert cfg.extra.first == 1 and cfg.extra.second == 2


def test_settings_dataclasses_take_their_defaults_from_the_yaml_alone():
    """One source per default: the pretrain YAML's schedule and loss sections are what the
    dataclasses hold when nothing is given, and a typo names the nearest key."""
    from dataclasses import asdict

    from braindino.config import load_config
    from braindino.engine.schedules import ScheduleSettings
    from braindino.ssl.meta_arch import LossWeights

    cfg = load_config("pretrain/default")
    assert asdict(ScheduleSettings.from_mapping({})) == dict(cfg.schedule)
    assert asdict(LossWeights.from_mapping({})) == dict(cfg.loss)
    assert LossWeights.from_mapping({"koleo": 0.5}).koleo == 0.5
    with pytest.raises(ConfigError, match=r"unknown config key 'loss.kolea'.*loss.koleo"):
        LossWeights.from_mapping({"kolea": 0.5})
