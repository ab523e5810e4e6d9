"""Distillation into a smaller student (configs/pretrain/distill.yaml): a frozen teacher run's
heads give the targets, the student trains on them and exports like any encoder."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from test_pretrain import _overrides, shards  # noqa: F401  (the module's shard folder fixture)

from braindino.config import load_config
from braindino.errors import ConfigError
from braindino.models import DINOHead, create_backbone
from braindino.ssl.build import build_meta_arch
from braindino.ssl.meta_arch import SelfDistillation, StudentNetwork
from braindino.ssl.trainer import Trainer, pretrain

TEMP = 0.02  # the tiny recipe's teacher temperature (its teacher is trained with it)


def _distill_cfg(folder, out, *extra):
    return load_config(
        "pretrain/default",
        ["pretrain/tiny", "pretrain/distill"],
        _overrides(folder, out, f"schedule.teacher_temp={TEMP}", *extra),
    )


def _network(arch: str, seed: int, prototypes: int = 64) -> StudentNetwork:
    torch.manual_seed(seed)
    backbone = create_backbone(arch, img_size=64, init_values=1.0)
    heads = [DINOHead(backbone.embed_dim, prototypes, 64, 32) for _ in range(2)]
    return StudentNetwork(backbone, *heads)


def _sinkhorn_float64(logits: torch.Tensor, temperature: float, iterations: int) -> torch.Tensor:
    """Textbook Sinkhorn-Knopp (SwAV): Q = exp(s / t)^T, columns then rows, in float64."""
    q = torch.exp(logits.double() / temperature).T  # [K, N]
    q = q / q.sum()
    k, n = q.shape
    for _ in range(iterations):
        q = q / q.sum(dim=1, keepdim=True) / k
        q = q / q.sum(dim=0, keepdim=True) / n
    return (q * n).T


@pytest.mark.parametrize("fused", [True, False])
def test_targets_are_the_sinkhorn_of_the_frozen_teachers_heads(fused):
    student = _network("vit_micro_patch16_dinov3", seed=0)
    teacher = _network("vit_tiny_patch16_dinov3", seed=1)
    meta = SelfDistillation(student, fused=fused)
    meta.set_distill_teacher(teacher, mask_student=False)
    torch.manual_seed(2)
    crops = torch.randn(6, 1, 64, 64)
    masks = torch.rand(6, 16) < 0.4
    targets = meta._teacher_targets(crops, masks, TEMP)

    reference = copy.deepcopy(teacher).double()
    with torch.no_grad():
        feats = reference.backbone.forward_features(crops.double())
        cls_logits = reference.dino_head(feats["cls"])
        patch_logits = reference.ibot_head(feats["patches"][masks])
    iters = meta.weights.sinkhorn_iterations
    for name, logits in (("dino", cls_logits), ("ibot", patch_logits)):
        expected = _sinkhorn_float64(logits, TEMP, iters)
        np.testing.assert_allclose(targets[name].double(), expected, atol=2e-5, err_msg=name)

    out = meta.student(crops, None, masks, mask_input=False)  # students unmasked
    plain = student.backbone.forward_features(crops)
    torch.testing.assert_close(out["cls_global"], plain["cls"])
    assert all(p.requires_grad is False for p in teacher.parameters()) and not teacher.training


def test_tiny_teacher_distils_into_a_micro_student_that_exports(shards, tmp_path):  # noqa: F811
    from braindino import load_encoder
    from braindino.engine import find_latest_checkpoint, load_checkpoint
    from braindino.ssl.export import export_run

    teacher_run = tmp_path / "teacher"
    teacher_cfg = load_config(
        "pretrain/default",
        ["pretrain/tiny"],
        _overrides(shards, teacher_run, "model.arch=vit_tiny_patch16_dinov3"),
    )
    assert pretrain(teacher_cfg) == "done"
    saved = load_checkpoint(find_latest_checkpoint(teacher_run))["teacher"]

    run = tmp_path / "student"
    trainer = Trainer(_distill_cfg(shards, run, f"distill.teacher={teacher_run}"))
    assert trainer.meta.distill_teacher.backbone.arch == "vit_tiny_patch16_dinov3"
    assert trainer.meta.student.backbone.arch == "vit_micro_patch16_dinov3"
    assert trainer.fit() == "done"

    for key, value in trainer.meta.distill_teacher.state_dict().items():
        assert torch.equal(value, saved[key]), key  # the teacher is frozen: bit for bit
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    for tag in ("loss/dino_global", "loss/dino_local", "loss/ibot", "loss/koleo", "loss/total"):
        values = [e.value for e in events.Scalars(tag)]
        assert values and all(np.isfinite(values)), tag

    out = export_run(run, tmp_path / "export")  # the student's EMA, like any run
    encoder = load_encoder(out)
    assert json.loads((out / "config.json").read_text())["arch"] == "vit_micro_patch16_dinov3"
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        expected = trainer.meta.teacher.backbone.eval().forward_features(x)["cls"]
        torch.testing.assert_close(encoder(x), expected, atol=1e-5, rtol=1e-5)


def test_distill_config_errors_name_the_key_and_the_fix(tmp_path):
    cfg = _distill_cfg(tmp_path, tmp_path / "run")
    with pytest.raises(ConfigError, match=r"distill\.teacher.*needs a teacher"):
        build_meta_arch(cfg)
    export = tmp_path / "export"
    export.mkdir()
    (export / "config.json").write_text("{}")
    cfg = _distill_cfg(tmp_path, tmp_path / "run", f"distill.teacher={export}")
    with pytest.raises(ConfigError, match=r"backbone only.*run folder or checkpoint"):
        build_meta_arch(cfg)
    with pytest.raises(ConfigError, match="checkpoint not found"):
        build_meta_arch(_distill_cfg(tmp_path, tmp_path / "r", f"distill.teacher={tmp_path}/no"))
