"""The self-distillation meta-architecture and its optimiser set-up."""

from braindino.ssl.param_groups import (
    ParamSettings,
    apply_schedule_values,
    build_param_groups,
    clip_gradients,
    param_settings,
)

__all__ = [
    "ParamSettings",
    "apply_schedule_values",
    "build_param_groups",
    "clip_gradients",
    "param_settings",
]
