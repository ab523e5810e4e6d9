"""Training-loop pieces shared by pretraining and downstream: schedules, checkpoints, signals."""

from braindino.engine.checkpoint import (
    atomic_save,
    capture_rng_state,
    checkpoint_name,
    find_latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from braindino.engine.schedules import (
    ScheduleSettings,
    TrainingSchedules,
    cosine_schedule,
    linear_warmup_then_constant,
)
from braindino.engine.signals import GracefulExit, install_signal_handlers

__all__ = [
    "GracefulExit",
    "ScheduleSettings",
    "TrainingSchedules",
    "atomic_save",
    "capture_rng_state",
    "checkpoint_name",
    "cosine_schedule",
    "find_latest_checkpoint",
    "install_signal_handlers",
    "linear_warmup_then_constant",
    "list_checkpoints",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]
