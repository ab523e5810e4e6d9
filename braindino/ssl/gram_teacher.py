"""When the stage-2 Gram teacher is set and refreshed (``gram:`` section, DINOv3 Gram anchoring).

The Gram teacher is frozen at the first step with a positive Gram weight: a copy of the EMA
teacher (``gram.teacher: ema``) or the teacher backbone of a checkpoint / run folder; then,
every ``gram.refresh_every`` iterations after ``schedule.gram_start_iter``, it is refreshed from
the EMA teacher, at most ``gram.max_refreshes`` times.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from braindino.engine.checkpoint import load_checkpoint
from braindino.ssl.build import resolve_checkpoint, teacher_backbone_weights
from braindino.ssl.meta_arch import SelfDistillation


def update_gram_teacher(
    meta: SelfDistillation,
    cfg: DictConfig,
    step: int,
    refreshes: int,
    gram_weight: float,
    device: torch.device,
) -> tuple[int, str | None]:
    """Set or refresh ``meta``'s Gram teacher as the config asks at ``step``; returns the
    refresh count and a log line (None when nothing changed)."""
    g = cfg.gram
    if gram_weight <= 0:
        return refreshes, None
    if meta.gram_teacher is None:
        meta.set_gram_teacher()  # the EMA teacher's backbone, or a checkpoint's teacher backbone
        if str(g.teacher) != "ema":
            state = load_checkpoint(resolve_checkpoint(g.teacher, "gram.teacher"))
            meta.gram_teacher.load_state_dict(teacher_backbone_weights(state))
        meta.gram_teacher.to(device)
        return refreshes, f"gram teacher set at iteration {step}"
    start = int(cfg.schedule.gram_start_iter)
    every, most = int(g.refresh_every), int(g.max_refreshes)
    due = every > 0 and step > start and (step - start) % every == 0
    if due and refreshes < most:
        meta.set_gram_teacher()
        meta.gram_teacher.to(device)
        return refreshes + 1, f"gram teacher refreshed ({refreshes + 1}/{most})"
    return refreshes, None
