"""Parameter groups on the real timm DINOv3 ViT (tiny) plus heads, per-step lr/wd, clipping."""

from __future__ import annotations

import math

import pytest
import timm
import torch
from torch import nn

from braindino.errors import ConfigError
from braindino.ssl.param_groups import (
    apply_schedule_values,
    build_param_groups,
    clip_gradients,
    param_settings,
)

DEPTH = 2


class _Head(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, 16), nn.GELU(), nn.Linear(16, 8))
        self.last_layer = nn.Linear(8, 12, bias=False)


class _Student(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = timm.create_model(
            "vit_small_patch16_dinov3",
            pretrained=False,
            in_chans=1,
            img_size=32,
            embed_dim=32,
            depth=DEPTH,
            num_heads=2,
        )
        self.mask_token = nn.Parameter(torch.zeros(1, 32))
        self.dino_head = _Head(32)
        self.ibot_head = _Head(32)


@pytest.fixture(scope="module")
def student() -> _Student:
    torch.manual_seed(0)
    return _Student()


def test_named_parameters_get_the_recipe_multipliers(student):
    s = param_settings(student, layer_decay=0.9, patch_embed_lr_mult=0.2)
    top = DEPTH + 1  # layer id of the final norm and heads
    expect = {  # name: (lr multiplier, wd multiplier, is_last_layer)
        "backbone.patch_embed.proj.weight": (0.9**top * 0.2, 1.0, False),
        "backbone.patch_embed.proj.bias": (0.9**top * 0.2, 0.0, False),
        "backbone.cls_token": (0.9**top, 0.0, False),
        "backbone.reg_token": (0.9**top, 0.0, False),
        "mask_token": (0.9**top, 0.0, False),
        "backbone.blocks.0.attn.qkv.weight": (0.9**2, 1.0, False),
        "backbone.blocks.0.gamma_1": (0.9**2, 0.0, False),
        "backbone.blocks.0.norm1.weight": (0.9**2, 0.0, False),
        "backbone.blocks.1.mlp.fc1.weight": (0.9, 1.0, False),
        "backbone.blocks.1.mlp.fc1.bias": (0.9, 0.0, False),
        "backbone.norm.weight": (1.0, 0.0, False),
        "dino_head.mlp.0.weight": (1.0, 1.0, False),
        "dino_head.mlp.2.bias": (1.0, 0.0, False),
        "dino_head.last_layer.weight": (1.0, 1.0, True),
        "ibot_head.last_layer.weight": (1.0, 1.0, True),
    }
    for name, (lr, wd, last) in expect.items():
        assert s[name].lr_multiplier == pytest.approx(lr), name
        assert s[name].wd_multiplier == wd, name
        assert s[name].is_last_layer is last, name


def test_every_parameter_in_exactly_one_fused_group(student):
    groups = build_param_groups(student, base_lr=1e-3, weight_decay=0.04)
    seen = [id(p) for g in groups for p in g["params"]]
    assert len(seen) == len(set(seen))
    assert set(seen) == {id(p) for p in student.parameters()}
    keys = [(g["lr_multiplier"], g["wd_multiplier"], g["is_last_layer"]) for g in groups]
    assert len(keys) == len(set(keys))  # fused: one group per distinct setting
    # layers 0..DEPTH+1 x (decay, no decay) + patch-embed x 2 + last layer -> at most 2*(D+2)+3
    assert len(groups) <= 2 * (DEPTH + 2) + 3
    for g in groups:
        assert g["lr"] == pytest.approx(1e-3 * g["lr_multiplier"])
        assert g["weight_decay"] == pytest.approx(0.04 * g["wd_multiplier"])


def test_frozen_parameters_are_left_out():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 2))
    model[0].weight.requires_grad_(False)
    groups = build_param_groups(model, base_lr=1.0, weight_decay=0.1)
    ids = {id(p) for g in groups for p in g["params"]}
    assert id(model[0].weight) not in ids and id(model[1].weight) in ids


def test_schedule_values_applied_and_last_layer_frozen(student):
    groups = build_param_groups(student, base_lr=0.0, weight_decay=0.0)
    opt = torch.optim.AdamW(groups)
    apply_schedule_values(opt, lr=0.01, weight_decay=0.2, freeze_last_layer=True)
    for g in opt.param_groups:
        lr = 0.0 if g["is_last_layer"] else 0.01 * g["lr_multiplier"]
        assert g["lr"] == pytest.approx(lr)
        assert g["weight_decay"] == pytest.approx(0.2 * g["wd_multiplier"])
    before = student.dino_head.last_layer.weight.detach().clone()
    qkv_before = student.backbone.blocks[0].attn.qkv.weight.detach().clone()
    out = student.backbone(torch.randn(2, 1, 32, 32))
    out = student.dino_head.last_layer(student.dino_head.mlp(out))
    out.square().mean().backward()
    opt.step()
    opt.zero_grad()
    assert torch.equal(student.dino_head.last_layer.weight, before)
    assert not torch.equal(student.backbone.blocks[0].attn.qkv.weight, qkv_before)


def test_clip_gradients_per_module_against_hand_norms():
    a, b, idle = nn.Linear(2, 2), nn.Linear(3, 1), nn.Linear(1, 1)
    for p in [*a.parameters(), *b.parameters()]:
        p.grad = torch.full_like(p, 2.0)
    norms = clip_gradients({"a": a, "b": b, "idle": idle}, max_norm=1.0)
    assert norms["a"].item() == pytest.approx(math.sqrt(6 * 4.0))  # 4 weights + 2 biases
    assert norms["b"].item() == pytest.approx(math.sqrt(4 * 4.0))  # 3 weights + 1 bias
    assert norms["idle"].item() == 0.0
    for module in (a, b):
        clipped = math.sqrt(sum(float(p.grad.double().square().sum()) for p in module.parameters()))
        assert clipped == pytest.approx(1.0, rel=1e-5)
    measured = clip_gradients({"a": a}, max_norm=None)
    assert measured["a"].item() == pytest.approx(1.0, rel=1e-5)


def test_bad_settings_name_the_key():
    with pytest.raises(ConfigError, match=r"optim\.layer_decay"):
        param_settings(nn.Linear(2, 2), layer_decay=0.0)
    with pytest.raises(ConfigError, match=r"optim\.clip_grad"):
        clip_gradients({"m": nn.Linear(2, 2)}, max_norm=-1.0)
