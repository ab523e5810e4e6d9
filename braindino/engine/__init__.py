"""Training-loop pieces shared by pretraining and downstream: schedules, checkpoints, signals,
the run folder lock and resume checks."""

from braindino.engine.checkpoint import (
    atomic_save,
    capture_rng_state,
    checkpoint_name,
    find_latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_newest_readable,
    remove_partial_files,
    restore_rng_state,
    save_checkpoint,
)
from braindino.engine.run_lock import RunLock
from braindino.engine.schedules import (
    ScheduleSettings,
    TrainingSchedules,
    cosine_schedule,
    linear_warmup_then_constant,
)
from braindino.engine.signals import EXIT_INTERRUPTED, GracefulExit, install_signal_handlers

__all__ = [
    "EXIT_INTERRUPTED",
    "GracefulExit",
    "RunLock",
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
    "load_newest_readable",
    "remove_partial_files",
    "restore_rng_state",
    "save_checkpoint",
]
