"""The frozen teacher of distillation into a smaller student (``distill:``, DINOv3's ViT-S/B/L).

The teacher is the EMA teacher of a finished training run, backbone *and* DINO/iBOT heads: an
export (``pretrain/export.py``) holds the backbone alone, and the targets are the Sinkhorn–Knopp
assignments of the teacher's heads, so distillation reads the run folder or checkpoint. The
student is trained against those targets with DINO + iBOT + KoLeo; its own EMA is kept as in
self-distillation and is what ``pretrain/export.py`` writes afterwards.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from braindino.engine.checkpoint import load_checkpoint
from braindino.errors import ConfigError
from braindino.models.encoder_io import CONFIG_FILE
from braindino.ssl.build import build_student, resolve_checkpoint
from braindino.ssl.meta_arch import StudentNetwork

# The teacher is rebuilt from its run's saved config with the training-only options off.
_FROZEN_MODEL = {
    "pretrained": None,
    "init_from": None,
    "drop_path_rate": 0.0,
    "rope_rescale_coords": None,
}


def _teacher_path(path: str | Path | None) -> Path:
    """The teacher checkpoint named by ``distill.teacher`` (one clear error when unusable)."""
    if not path:
        raise ConfigError(
            "distillation needs a teacher",
            path="distill.teacher",
            fix="set distill.teacher=RUN_DIR (the teacher's training run folder or checkpoint)",
        )
    folder = Path(path)
    if folder.is_dir() and (folder / CONFIG_FILE).is_file():
        raise ConfigError(
            "an exported encoder holds the backbone only, not the DINO/iBOT heads that give "
            "the distillation targets",
            path=folder,
            fix="set distill.teacher to the teacher's training run folder or checkpoint",
        )
    return resolve_checkpoint(folder, "distill.teacher")


def load_distill_teacher(path: str | Path | None, student: StudentNetwork) -> StudentNetwork:
    """The EMA teacher (backbone + DINO and iBOT heads) of the run or checkpoint ``path``, in
    eval mode with no gradients, checked to fit ``student``: the same patch size and input
    channels (iBOT matches patch tokens position by position) and the same prototype counts
    (the student's heads learn the teacher's assignments)."""
    checkpoint = _teacher_path(path)
    state = load_checkpoint(checkpoint)
    cfg = OmegaConf.create(state["config"])
    cfg.model = OmegaConf.merge(cfg.model, _FROZEN_MODEL)
    teacher = build_student(cfg)
    teacher.load_state_dict(state["teacher"])
    _check_fits(teacher, student, checkpoint)
    return teacher.requires_grad_(False).eval()


def _check_fits(teacher: StudentNetwork, student: StudentNetwork, where: Path) -> None:
    t, s = teacher.backbone, student.backbone
    if tuple(t.patch_size) != tuple(s.patch_size) or t.in_chans != s.in_chans:
        raise ConfigError(
            f"the teacher ({t.arch}, patch {t.patch_size[0]}, {t.in_chans} channel(s)) and the "
            f"student ({s.arch}, patch {s.patch_size[0]}, {s.in_chans}) differ in patch size "
            "or input channels",
            path=where,
            fix="pick a model.arch with the teacher's patch size and model.in_chans",
        )
    for name in ("dino", "ibot"):
        t_k = getattr(teacher, f"{name}_head").last_layer.weight.shape[0]
        s_k = getattr(student, f"{name}_head").last_layer.weight.shape[0]
        if t_k != s_k:
            raise ConfigError(
                f"the teacher's {name} head has {t_k} prototypes, the student's {s_k}",
                path=f"heads.{name}.out_dim",
                fix=f"set heads.{name}.out_dim={t_k}",
            )
