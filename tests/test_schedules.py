"""Per-iteration schedules: values at chosen iterations against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from braindino.engine.schedules import (
    ScheduleSettings,
    TrainingSchedules,
    cosine_schedule,
    linear_warmup_then_constant,
)
from braindino.errors import ConfigError


def test_cosine_schedule_freeze_warmup_cosine_by_hand():
    values = cosine_schedule(1.0, 0.0, 10, warmup_iters=4, start_warmup=0.0, freeze_iters=1)
    c = math.cos(math.pi / 4)
    expected = [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, (1 + c) / 2, 0.5, (1 - c) / 2, 0.0]
    assert values.dtype == np.float64
    np.testing.assert_allclose(values, expected, atol=1e-12)


def test_cosine_schedule_without_warmup_starts_at_base_and_ends_at_final():
    values = cosine_schedule(0.992, 1.0, 7)
    assert len(values) == 7
    assert values[0] == pytest.approx(0.992)
    assert values[3] == pytest.approx((0.992 + 1.0) / 2)  # cosine midpoint
    assert values[-1] == pytest.approx(1.0)
    assert np.all(np.diff(values) > 0)


def test_cosine_schedule_rejects_warmup_filling_the_run():
    with pytest.raises(ConfigError, match="warmup_iters"):
        cosine_schedule(1.0, 0.0, 5, warmup_iters=4, freeze_iters=1)


def test_linear_warmup_then_constant_and_truncated_ramp():
    temp = linear_warmup_then_constant(0.04, 0.07, warmup_iters=3, total_iters=6)
    np.testing.assert_allclose(temp, [0.04, 0.05, 0.06, 0.07, 0.07, 0.07], atol=1e-12)
    cut = linear_warmup_then_constant(0.04, 0.07, warmup_iters=30, total_iters=4)
    np.testing.assert_allclose(cut, [0.04, 0.041, 0.042, 0.043], atol=1e-12)


def _settings(**kw) -> ScheduleSettings:
    base = dict(
        epochs=4,
        iters_per_epoch=5,
        warmup_epochs=1,
        teacher_temp_warmup_epochs=2,
        gram_weight=2.0,
        gram_start_iter=12,
    )
    base.update(kw)
    return ScheduleSettings.from_mapping(base)


def test_training_schedules_recipe_values():
    sched = TrainingSchedules.build(_settings(), global_batch_size=256)
    assert len(sched) == 20
    peak = 4e-3 * math.sqrt(256 / 1024)  # = 2e-3
    # lr: linear warm-up 0 -> peak over 5 iterations, then cosine over 15 iterations to 1e-6
    assert sched.lr[0] == 0.0
    assert sched.lr[4] == pytest.approx(peak * 4 / 5)
    assert sched.lr[5] == pytest.approx(peak)
    assert sched.lr[12] == pytest.approx((peak + 1e-6) / 2)  # midpoint of 15 cosine steps
    assert sched.lr[19] == pytest.approx(1e-6)
    # weight decay 0.04 -> 0.4 over all 20 iterations
    assert sched.weight_decay[0] == pytest.approx(0.04)
    hand = 0.4 + (0.04 - 0.4) * (1 + math.cos(math.pi * 5 / 19)) / 2
    assert sched.weight_decay[5] == pytest.approx(hand)
    assert sched.weight_decay[19] == pytest.approx(0.4)
    # teacher momentum 0.992 -> 1
    assert sched.momentum[0] == pytest.approx(0.992)
    assert sched.momentum[19] == pytest.approx(1.0)
    # teacher temperature: 0.04 -> 0.07 over 10 iterations, then constant
    assert sched.teacher_temp[5] == pytest.approx(0.055)
    np.testing.assert_allclose(sched.teacher_temp[10:], 0.07)
    # last layer frozen during the first epoch only
    assert sched.freeze_last_layer[:5].all() and not sched.freeze_last_layer[5:].any()
    # Gram weight 0 before its start iteration
    np.testing.assert_array_equal(sched.gram_weight, [0.0] * 12 + [2.0] * 8)


def test_at_returns_one_iteration_and_rejects_outside():
    sched = TrainingSchedules.build(_settings(), global_batch_size=1024)
    values = sched.at(3)
    assert values["lr"] == pytest.approx(4e-3 * 3 / 5)
    assert values["freeze_last_layer"] is True
    assert isinstance(values["momentum"], float)
    with pytest.raises(ConfigError, match="outside the schedule"):
        sched.at(20)


def test_from_config_uses_defaults_and_names_unknown_keys():
    cfg = {"epochs": 3, "iters_per_epoch": 2, "warmup_epochs": 1}
    sched = TrainingSchedules.from_config(cfg, global_batch_size=1024)
    assert len(sched) == 6
    assert sched.lr[2] == pytest.approx(4e-3)
    with pytest.raises(ConfigError, match=r"schedule\.base_lrr"):
        TrainingSchedules.from_config({"base_lrr": 1.0}, global_batch_size=8)
    with pytest.raises(ConfigError, match=r"schedule\.warmup_epochs"):
        TrainingSchedules.from_config({"epochs": 2, "warmup_epochs": 2}, global_batch_size=8)
