"""Backbone (timm DINOv3/DINOv2 ViT + iBOT mask token), DINO/iBOT projection heads, encoder
export and loading, LoRA adapters (``add_lora``, through peft)."""

from braindino.models.archs import BRAINDINO_ARCHS, available_archs, resolve_arch
from braindino.models.backbone import MaskableViT
from braindino.models.encoder_io import (
    load_encoder,
    random_like,
    read_encoder_config,
    save_encoder,
)
from braindino.models.factory import create_backbone
from braindino.models.lora import (
    LORA_TARGETS,
    adapter_counts,
    adapter_parameters,
    add_lora,
    set_adapter_dropout,
)
from braindino.models.projection import DINOHead, PrototypeLayer

__all__ = [
    "BRAINDINO_ARCHS",
    "LORA_TARGETS",
    "DINOHead",
    "MaskableViT",
    "PrototypeLayer",
    "adapter_counts",
    "adapter_parameters",
    "add_lora",
    "available_archs",
    "create_backbone",
    "load_encoder",
    "random_like",
    "read_encoder_config",
    "resolve_arch",
    "save_encoder",
    "set_adapter_dropout",
]
