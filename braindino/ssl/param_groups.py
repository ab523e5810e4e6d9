"""Optimiser parameter groups for the DINOv3 ViT + heads, and the per-step optimiser helpers.

Rules (DINOv2/DINOv3 recipe, REFERENCE.md §2), decided from parameter names so that they work
whether the ViT is the model itself or sits under a prefix (``backbone.blocks.3.…``):

- layer id: tokens (``cls_token``, ``reg_token``, ``mask_token``, ``pos_embed``) and
  ``patch_embed.*`` are layer 0; ``blocks.{i}.*`` is layer ``i + 1``; everything else (the final
  ``norm``, DINO/iBOT heads, any extra module) is the last layer ``depth + 1``;
- ``lr_multiplier = layer_decay ** (depth + 1 - layer_id)`` (so heads and the final norm get 1),
  times ``patch_embed_lr_mult`` for ``patch_embed.*``;
- ``wd_multiplier = 0`` for biases, norms, LayerScale gammas, tokens and any 1-D parameter;
- ``is_last_layer`` for the prototype layer (a name containing ``last_layer``): its lr is held at
  0 while the schedule freezes it.

Parameters sharing the same three values are fused into one group, so a ViT-B gives ~30 groups.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from braindino.errors import ConfigError

_BLOCK = re.compile(r"(?:^|\.)blocks\.(\d+)\.")
_TOKENS = ("cls_token", "reg_token", "register_tokens", "mask_token", "pos_embed")
_NO_DECAY_WORDS = ("norm", "gamma", ".ls1.", ".ls2.", *_TOKENS)


@dataclass(frozen=True)
class ParamSettings:
    """What the optimiser does to one parameter: lr and weight-decay multipliers, prototype flag."""

    lr_multiplier: float
    wd_multiplier: float
    is_last_layer: bool


def _layer_id(name: str, depth: int) -> int:
    if any(token in name for token in _TOKENS) or "patch_embed" in name:
        return 0
    match = _BLOCK.search(name)
    if match:
        return int(match.group(1)) + 1
    return depth + 1


def param_settings(
    model: nn.Module,
    layer_decay: float = 0.9,
    patch_embed_lr_mult: float = 0.2,
    last_layer_keywords: Sequence[str] = ("last_layer",),
    depth: int | None = None,
) -> dict[str, ParamSettings]:
    """Return the optimiser settings of every trainable parameter of ``model``, by name.

    ``depth`` (the number of ViT blocks) is read from the ``blocks.{i}`` names unless given.
    """
    if not 0.0 < layer_decay <= 1.0:
        raise ConfigError(
            f"layer_decay must be in (0, 1], got {layer_decay}",
            path="optim.layer_decay",
            fix="use 0.9 (recipe) or 1.0 to switch layer-wise decay off",
        )
    if patch_embed_lr_mult < 0.0:
        raise ConfigError(
            f"patch_embed_lr_mult must be >= 0, got {patch_embed_lr_mult}",
            path="optim.patch_embed_lr_mult",
            fix="use 0.2 (recipe) or 1.0",
        )
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if depth is None:
        ids = [int(m.group(1)) for name, _ in named if (m := _BLOCK.search(name))]
        depth = max(ids) + 1 if ids else 0
    settings: dict[str, ParamSettings] = {}
    for name, param in named:
        lr_mult = layer_decay ** (depth + 1 - _layer_id(name, depth))
        if "patch_embed" in name:
            lr_mult *= patch_embed_lr_mult
        no_decay = (
            param.ndim <= 1 or name.endswith(".bias") or any(w in name for w in _NO_DECAY_WORDS)
        )
        settings[name] = ParamSettings(
            lr_multiplier=lr_mult,
            wd_multiplier=0.0 if no_decay else 1.0,
            is_last_layer=any(word in name for word in last_layer_keywords),
        )
    return settings


def build_param_groups(
    model: nn.Module,
    base_lr: float,
    weight_decay: float,
    layer_decay: float = 0.9,
    patch_embed_lr_mult: float = 0.2,
    last_layer_keywords: Sequence[str] = ("last_layer",),
    depth: int | None = None,
) -> list[dict[str, Any]]:
    """Return fused AdamW parameter groups for ``model`` (a ViT, or a module holding ViT + heads).

    Each group holds ``params``, ``lr_multiplier``, ``wd_multiplier``, ``is_last_layer``, plus
    initial ``lr = base_lr * lr_multiplier`` and ``weight_decay = weight_decay * wd_multiplier``.
    Frozen parameters (``requires_grad=False``) are left out. Groups come in a fixed order, so an
    optimiser state saved by one process loads in another.
    """
    settings = param_settings(model, layer_decay, patch_embed_lr_mult, last_layer_keywords, depth)
    params = dict(model.named_parameters())
    groups: dict[ParamSettings, list[nn.Parameter]] = {}
    for name, setting in settings.items():
        groups.setdefault(setting, []).append(params[name])
    return [
        {
            "params": members,
            "lr_multiplier": s.lr_multiplier,
            "wd_multiplier": s.wd_multiplier,
            "is_last_layer": s.is_last_layer,
            "lr": base_lr * s.lr_multiplier,
            "weight_decay": weight_decay * s.wd_multiplier,
        }
        for s, members in groups.items()
    ]


def apply_schedule_values(
    optimizer: torch.optim.Optimizer,
    lr: float,
    weight_decay: float,
    freeze_last_layer: bool = False,
) -> None:
    """Set every group's lr and weight decay for this step from the schedules' values.

    ``lr * lr_multiplier`` and ``weight_decay * wd_multiplier`` per group; groups flagged
    ``is_last_layer`` get lr 0 while ``freeze_last_layer`` is true. Groups without multipliers
    (built elsewhere) count as multiplier 1.
    """
    for group in optimizer.param_groups:
        frozen = freeze_last_layer and group.get("is_last_layer", False)
        group["lr"] = 0.0 if frozen else lr * group.get("lr_multiplier", 1.0)
        group["weight_decay"] = weight_decay * group.get("wd_multiplier", 1.0)


def clip_gradients(
    modules: Mapping[str, nn.Module], max_norm: float | None
) -> dict[str, torch.Tensor]:
    """Clip each module's gradients to ``max_norm`` separately; return the pre-clip norms.

    DINOv2 clips the backbone and each head on its own. Norms are 0-d tensors on the gradients'
    device (call ``.item()`` only when logging, to avoid a device sync every step); a module
    without gradients reports 0. ``max_norm`` of ``None`` or ``inf`` only measures.
    """
    if max_norm is not None and not max_norm > 0:
        raise ConfigError(
            f"gradient clip max_norm must be > 0, got {max_norm}",
            path="optim.clip_grad",
            fix="use 3.0 (recipe), or null to measure without clipping",
        )
    limit = math.inf if max_norm is None else float(max_norm)
    norms: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        params = [p for p in module.parameters() if p.grad is not None]
        norms[name] = torch.nn.utils.clip_grad_norm_(params, limit) if params else torch.zeros(())
    return norms
