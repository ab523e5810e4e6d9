"""Backbone names BrainDINO understands, and the timm model (plus overrides) behind each.

Every backbone is a timm model, so weights move to and from timm unchanged:

* any timm DINOv3 ViT (``vit_{small,base,large}_patch16_dinov3`` ...; timm's ``Eva`` class: RoPE,
  4 register tokens, LayerScale) or DINOv2-style ViT (``vit_small_patch14_reg4_dinov2`` ...;
  timm's ``VisionTransformer``), used as timm defines it;
* BrainDINO's own small members of the DINOv3 family for CPU tests and the demo, defined as a
  timm DINOv3 model with a few architecture overrides (``embed_dim``, ``num_heads``, ``depth``).
  They are not registered with timm: an export records the timm name and the overrides, and
  ``timm.create_model(timm_name, **timm_kwargs)`` re-creates them anywhere.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from braindino.errors import ConfigError


@dataclass(frozen=True)
class ArchSpec:
    """A backbone name and how timm builds it."""

    name: str
    timm_name: str
    timm_kwargs: dict[str, Any] = field(default_factory=dict)


BRAINDINO_ARCHS: dict[str, ArchSpec] = {
    # DINOv3 S/16 layout (no qkv bias, RoPE, 4 registers, LayerScale 1e-5) scaled down.
    "vit_tiny_patch16_dinov3": ArchSpec(
        "vit_tiny_patch16_dinov3",
        "vit_small_patch16_dinov3",
        {"embed_dim": 192, "num_heads": 3, "depth": 6},
    ),
    "vit_micro_patch16_dinov3": ArchSpec(
        "vit_micro_patch16_dinov3",
        "vit_small_patch16_dinov3",
        {"embed_dim": 96, "num_heads": 2, "depth": 4},
    ),
}

# Keyword arguments that only change training behaviour (they are no-ops in eval mode), so an
# export leaves them out of what timm needs to rebuild the encoder.
TRAIN_ONLY_KWARGS = frozenset(
    {
        "drop_path_rate",
        "drop_rate",
        "proj_drop_rate",
        "attn_drop_rate",
        "pos_drop_rate",
        "rope_shift_coords",
        "rope_jitter_coords",
        "rope_rescale_coords",
    }
)

# Keyword arguments the backbone sets itself; a caller giving them would break its contract.
RESERVED_KWARGS = frozenset(
    {
        "num_classes",
        "global_pool",
        "dynamic_img_size",
        "dynamic_img_pad",
        "class_token",
        "patch_drop_rate",
        "features_only",
        "pretrained",
        "pretrained_cfg",
        "pretrained_cfg_overlay",
    }
)


def timm_dino_archs() -> list[str]:
    """timm model names of the DINOv3 / DINOv2 ViT families available in this timm install."""
    import timm

    return sorted(set(timm.list_models("*dinov3*")) | set(timm.list_models("*dinov2*")))


def available_archs() -> list[str]:
    """Every backbone name ``create_backbone`` accepts by default (ours first, then timm's)."""
    return [*BRAINDINO_ARCHS, *timm_dino_archs()]


def resolve_arch(arch: str) -> ArchSpec:
    """Map a backbone name to the timm model and overrides that build it.

    Raises ``ConfigError`` for a name that is neither ours nor a timm model, or that carries a
    pretrained tag (``arch.tag``: the tag belongs in ``pretrained=``).
    """
    import timm

    if not isinstance(arch, str) or not arch:
        raise ConfigError(
            f"backbone architecture must be a non-empty name, got {arch!r}",
            path="arch",
            fix="use e.g. 'vit_base_patch16_dinov3' or 'vit_tiny_patch16_dinov3'",
        )
    if arch in BRAINDINO_ARCHS:
        return BRAINDINO_ARCHS[arch]
    base, dot, tag = arch.partition(".")
    if dot and timm.is_model(base):
        raise ConfigError(
            f"architecture {arch!r} carries a weight tag ({tag!r})",
            path="arch",
            fix=f"pass arch='{base}' and pretrained='{arch}' to initialise from those weights",
        )
    if timm.is_model(arch):
        return ArchSpec(arch, arch, {})
    close = difflib.get_close_matches(arch, available_archs(), n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ConfigError(
        f"unknown backbone architecture {arch!r}",
        path="arch",
        fix=f"{hint}use one of {', '.join(BRAINDINO_ARCHS)} or a timm DINOv3/DINOv2 ViT name "
        "(braindino.models.available_archs() lists them)",
    )
