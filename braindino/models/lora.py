"""LoRA adapters on an encoder's timm ViT blocks, through ``peft``.

``add_lora`` copies an encoder, freezes every weight of the copy and injects LoRA layers
(``peft.inject_adapter_in_model`` on the plain timm model in ``.vit``) into the named linear
layers of its transformer blocks: W x becomes W x + (alpha / rank) B A x, with A ``[rank, in]``
random and B ``[out, rank]`` zero at initialisation, so the adapted encoder starts exactly as the
frozen one. Only A and B train; the original encoder is never modified.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any

from torch import nn

from braindino.errors import ConfigError

LORA_TARGETS = ("qkv", "proj")  # the attention's linear layers of a timm DINOv3 / DINOv2 block
ADAPTER_MARK = "lora_"  # peft's parameter names: ...qkv.lora_A.default.weight


def block_linear_names(vit: nn.Module) -> list[str]:
    """Leaf names of the linear layers inside the ViT's transformer blocks (``qkv``, ``proj``,
    ``fc1``, ``fc2`` for timm's DINOv3 and DINOv2 models), sorted."""
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in vit.blocks.named_modules()
        if isinstance(module, nn.Linear)
    }
    return sorted(names)


def check_lora_settings(rank: Any, alpha: Any, dropout: Any, targets: Sequence[str]) -> None:
    """One-line ``ConfigError`` for a rank that is not an integer >= 1, an alpha <= 0, a dropout
    outside [0, 1) or an empty target list (the names themselves are checked by ``add_lora``)."""
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ConfigError(
            f"must be an integer >= 1, got {rank!r}", path="--lora-rank", fix="e.g. 8"
        )
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ConfigError(f"must be > 0, got {alpha!r}", path="--lora-alpha", fix="e.g. 16")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ConfigError(
            f"must be in [0, 1), got {dropout!r}", path="--lora-dropout", fix="e.g. 0"
        )
    if not targets:
        raise ConfigError("no target modules given", path="--lora-targets", fix="e.g. qkv,proj")


def add_lora(
    encoder: nn.Module,
    rank: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    targets: Sequence[str] = LORA_TARGETS,
) -> nn.Module:
    """A copy of ``encoder`` (a ``MaskableViT``) with LoRA adapters of ``rank`` on the linear
    layers named ``targets`` in every transformer block of its ``.vit``.

    Every original weight of the copy is frozen; the adapters' A and B are its only trainable
    parameters (scaling ``alpha / rank``, ``dropout`` on the adapter input while training).
    Random draws (A's initialisation) come from the global RNG: seed it for a reproducible copy.
    Raises ``ConfigError`` naming the flag for bad settings or a target no block layer has.
    """
    targets = [str(t) for t in targets]
    check_lora_settings(rank, alpha, dropout, targets)
    available = block_linear_names(encoder.vit)
    unknown = [t for t in targets if t not in available]
    if unknown:
        raise ConfigError(
            f"unknown LoRA target module(s) {', '.join(unknown)}",
            path="--lora-targets",
            fix=f"use linear layers of the encoder's blocks: {', '.join(available)}",
        )
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError as exc:
        raise ConfigError(
            "LoRA adapters need the peft package, which is not installed",
            path="--adapter",
            fix="pip install 'braindino[lora]' (or pip install peft), or use --adapter none",
        ) from exc

    adapted = copy.deepcopy(encoder)
    adapted.requires_grad_(False)
    names = "|".join(re.escape(t) for t in targets)
    config = LoraConfig(
        r=rank,
        lora_alpha=float(alpha),
        lora_dropout=float(dropout),
        target_modules=rf"blocks\.\d+\.(?:.+\.)?(?:{names})",  # full match: block layers only
        bias="none",
    )
    inject_adapter_in_model(config, adapted.vit)
    return adapted


def set_adapter_dropout(encoder: nn.Module, mode: bool) -> None:
    """Train (``mode=True``) or eval mode for the LoRA dropout of an ``add_lora`` encoder
    alone, for a model that keeps the encoder itself in eval mode while its adapters train."""
    for name, module in encoder.named_modules():
        if name.endswith("lora_dropout"):
            module.train(mode)


def adapter_parameters(adapted: nn.Module) -> list[nn.Parameter]:
    """The LoRA parameters (A and B of every adapted layer) of an ``add_lora`` encoder."""
    return [p for name, p in adapted.named_parameters() if ADAPTER_MARK in name]


def adapter_counts(adapted: nn.Module) -> dict[str, Any]:
    """``adapter`` (LoRA parameters), ``encoder`` (the timm backbone's own parameters, what an
    export holds) and ``adapter_percent`` (100 x adapter / encoder) of an ``add_lora`` encoder."""
    adapter = sum(p.numel() for p in adapter_parameters(adapted))
    base = sum(p.numel() for n, p in adapted.vit.named_parameters() if ADAPTER_MARK not in n)
    return {"adapter": adapter, "encoder": base, "adapter_percent": 100.0 * adapter / base}
