"""Per-iteration training schedules, precomputed once as numpy arrays and indexed by iteration.

Every schedule is built from one generic shape, :func:`cosine_schedule`: an optional frozen
phase (value 0), an optional linear warm-up, then a half-cosine from ``base`` to ``final``.
A constant is a cosine from a value to itself, so the teacher temperature (linear warm-up then
constant) and the Gram weight (0, then constant) are the same function with other arguments.
Resuming a run just continues the iteration index: nothing in here carries state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from braindino.config import section_with_defaults
from braindino.errors import ConfigError

REFERENCE_BATCH_SIZE = 1024


def _check_count(value: int, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(
            f"{name} must be an integer >= {minimum}, got {value!r}",
            path=name,
            fix=f"set {name} to a whole number >= {minimum}",
        )
    return int(value)


def cosine_schedule(
    base: float,
    final: float,
    total_iters: int,
    warmup_iters: int = 0,
    start_warmup: float = 0.0,
    freeze_iters: int = 0,
) -> np.ndarray:
    """Return ``total_iters`` float64 values: frozen zeros, linear warm-up, then cosine.

    - iterations ``[0, freeze_iters)``: 0 (e.g. a learning rate held at zero);
    - the next ``warmup_iters``: ``start_warmup + (base - start_warmup) * i / warmup_iters``
      for ``i = 0 … warmup_iters-1``, so the warm-up ends one step short of ``base``;
    - the remaining ``n`` iterations: ``final + (base - final) * (1 + cos(pi * i / (n-1))) / 2``,
      which starts exactly at ``base`` and reaches exactly ``final`` at the last iteration.
    """
    total = _check_count(total_iters, "total_iters", minimum=1)
    warmup = _check_count(warmup_iters, "warmup_iters")
    freeze = _check_count(freeze_iters, "freeze_iters")
    n_cosine = total - warmup - freeze
    if n_cosine < 1:
        raise ConfigError(
            f"warm-up ({warmup}) plus frozen ({freeze}) iterations leave no room in a schedule "
            f"of {total} iterations",
            path="warmup_iters",
            fix="shorten the warm-up/freeze or train for more iterations",
        )
    frozen = np.zeros(freeze, dtype=np.float64)
    ramp = start_warmup + (base - start_warmup) * np.arange(warmup, dtype=np.float64) / max(
        warmup, 1
    )
    progress = np.arange(n_cosine, dtype=np.float64) / max(n_cosine - 1, 1)
    cosine = final + 0.5 * (base - final) * (1.0 + np.cos(math.pi * progress))
    return np.concatenate([frozen, ramp, cosine])


def linear_warmup_then_constant(
    start: float, end: float, warmup_iters: int, total_iters: int
) -> np.ndarray:
    """Return ``total_iters`` values rising linearly from ``start`` to ``end``, then constant.

    Used for the DINO teacher temperature (0.04 → 0.07). The ramp has ``warmup_iters`` steps and
    ``end`` is first reached at iteration ``warmup_iters``; a ramp longer than the run is cut at
    ``total_iters`` (the temperature then never reaches ``end``).
    """
    total = _check_count(total_iters, "total_iters", minimum=1)
    warmup = _check_count(warmup_iters, "warmup_iters")
    length = total if warmup < total else warmup + 1  # a longer ramp is built whole, then cut
    return cosine_schedule(end, end, length, warmup_iters=warmup, start_warmup=start)[:total]


@dataclass(frozen=True)
class ScheduleSettings:
    """The schedule knobs of a pretraining config (the ``schedule:`` section), in epochs.

    The one source of their defaults (the DINOv2/DINOv3 recipe) is the ``schedule:`` section of
    ``configs/pretrain/default.yaml``: :meth:`from_mapping` fills what a mapping leaves out from
    it. ``base_lr`` is scaled by ``sqrt(global_batch / 1024)``; ``min_lr`` is not scaled.
    """

    epochs: int
    iters_per_epoch: int
    base_lr: float
    min_lr: float
    warmup_epochs: int
    weight_decay: float
    weight_decay_end: float
    momentum_teacher: float
    momentum_teacher_end: float
    teacher_temp_start: float
    teacher_temp: float
    teacher_temp_warmup_epochs: int
    freeze_last_layer_epochs: int
    gram_weight: float
    gram_start_iter: int

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ScheduleSettings:
        """``values`` over the recipe defaults; an unknown key raises ``ConfigError`` naming
        it."""
        return cls(**section_with_defaults("pretrain/default", "schedule", values))


@dataclass(frozen=True)
class TrainingSchedules:
    """All per-iteration schedules of a run; ``schedules.at(it)`` gives one iteration's values.

    Arrays (length ``total_iters``): ``lr``, ``weight_decay``, ``momentum`` (teacher EMA),
    ``teacher_temp``, ``freeze_last_layer`` (bool: prototype-layer lr is 0), ``gram_weight``.
    The trainer sets the optimiser groups from them with ``ssl.param_groups.apply_schedule_values``.
    """

    lr: np.ndarray
    weight_decay: np.ndarray
    momentum: np.ndarray
    teacher_temp: np.ndarray
    freeze_last_layer: np.ndarray
    gram_weight: np.ndarray

    @property
    def total_iters(self) -> int:
        """Number of iterations the schedules cover."""
        return len(self.lr)

    def __len__(self) -> int:
        return self.total_iters

    def at(self, iteration: int) -> dict[str, float | bool]:
        """Return every schedule's value at ``iteration`` as plain Python numbers."""
        if not 0 <= iteration < self.total_iters:
            raise ConfigError(
                f"iteration {iteration} is outside the schedule (0 … {self.total_iters - 1})",
                path="schedule.epochs",
                fix="resume with the same schedule settings or raise schedule.epochs",
            )
        values = {f.name: getattr(self, f.name)[iteration] for f in fields(self)}
        return {k: bool(v) if k == "freeze_last_layer" else float(v) for k, v in values.items()}

    @classmethod
    def build(cls, settings: ScheduleSettings, global_batch_size: int) -> TrainingSchedules:
        """Precompute every schedule from ``settings`` for a run with this global batch size."""
        batch = _check_count(global_batch_size, "global_batch_size", minimum=1)
        per_epoch = _check_count(settings.iters_per_epoch, "schedule.iters_per_epoch", minimum=1)
        epochs = _check_count(settings.epochs, "schedule.epochs", minimum=1)
        total = epochs * per_epoch

        def iters(name: str) -> int:  # an epoch count of ``settings``, in iterations
            return _check_count(getattr(settings, name), f"schedule.{name}") * per_epoch

        warmup = iters("warmup_epochs")
        if warmup >= total:
            raise ConfigError(
                f"warmup_epochs ({settings.warmup_epochs}) must be fewer than epochs ({epochs})",
                path="schedule.warmup_epochs",
                fix="lower schedule.warmup_epochs or raise schedule.epochs",
            )
        temp_warmup = iters("teacher_temp_warmup_epochs")
        freeze = iters("freeze_last_layer_epochs")
        gram_start = _check_count(settings.gram_start_iter, "schedule.gram_start_iter")
        peak_lr = settings.base_lr * math.sqrt(batch / REFERENCE_BATCH_SIZE)
        lr = cosine_schedule(peak_lr, settings.min_lr, total, warmup_iters=warmup)
        wd = cosine_schedule(settings.weight_decay, settings.weight_decay_end, total)
        momentum = cosine_schedule(settings.momentum_teacher, settings.momentum_teacher_end, total)
        temp = linear_warmup_then_constant(
            settings.teacher_temp_start, settings.teacher_temp, temp_warmup, total
        )
        frozen = np.arange(total) < freeze
        gram = (np.arange(total) >= gram_start) * float(settings.gram_weight)
        return cls(lr, wd, momentum, temp, frozen, gram.astype(np.float64))

    @classmethod
    def from_config(
        cls, schedule_cfg: Mapping[str, Any], global_batch_size: int
    ) -> TrainingSchedules:
        """Build from a config mapping whose keys are :class:`ScheduleSettings` field names.

        Missing keys take the recipe defaults; an unknown key raises ``ConfigError`` naming it.
        """
        return cls.build(ScheduleSettings.from_mapping(schedule_cfg), global_batch_size)
