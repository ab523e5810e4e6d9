"""What a pretraining checkpoint holds and how a resume puts it back into a trainer.

The state is plain tensors, numbers, strings and containers: student, EMA teacher, Gram
teacher, optimiser, the sampler position, the step and its counters, and the config. With a
sharded (FSDP2) student the full tensors are gathered on save and loaded whole on resume.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from braindino.errors import ConfigError
from braindino.ssl.sharding import full_model_state, full_optimizer_state

COUNTERS = ("nonfinite_in_row", "skipped_steps", "gram_refreshes")  # the trainer's, besides step


def training_state(trainer: Any) -> dict:
    """Everything a resume of ``trainer`` (a :class:`~braindino.ssl.trainer.Trainer`) needs.

    With a sharded student every process must call it (the full tensors are gathered)."""
    meta, gram = trainer.meta, trainer.meta.gram_teacher
    if trainer.sharded:
        student = full_model_state(meta.student)
        optimizer = full_optimizer_state(meta.student, trainer.optimizer)
    else:
        student, optimizer = meta.student.state_dict(), trainer.optimizer.state_dict()
    consumed = (trainer.step - trainer.start_step) * trainer.batch_size
    return {
        "step": trainer.step,
        "student": student,
        "teacher": meta.teacher.state_dict(),
        "gram_teacher": None if gram is None else gram.state_dict(),
        "optimizer": optimizer,
        "sampler": trainer.sampler.state_dict(consumed=consumed),
        **{name: getattr(trainer, name) for name in COUNTERS},
        "config": OmegaConf.to_yaml(trainer.cfg),
        "arch": str(trainer.cfg.model.arch),
    }


def restore_training_state(trainer: Any, state: dict, path: Path) -> dict:
    """Load a checkpoint's ``state`` (read from ``path``) into ``trainer``; returns the sampler
    state. Weights that do not fit the configured model are one ConfigError."""
    meta = trainer.meta
    try:
        meta.student.load_state_dict(state["student"])
        meta.teacher.load_state_dict(state["teacher"])
        if state.get("gram_teacher") is not None:
            meta.set_gram_teacher()
            meta.gram_teacher.load_state_dict(state["gram_teacher"])
    except RuntimeError as exc:  # e.g. size mismatches: the model settings changed
        raise ConfigError(
            "the checkpoint's weights do not fit the configured model (model or heads "
            "settings changed)",
            path=path,
            fix="resume with the model settings it was trained with, or start a new run.out",
        ) from exc
    if trainer.optimizer is None:
        trainer._optimizer_state = state["optimizer"]  # loaded once the student is sharded
    else:
        trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.step = int(state["step"])
    for name in COUNTERS:
        setattr(trainer, name, int(state.get(name, 0)))
    return state["sampler"]
