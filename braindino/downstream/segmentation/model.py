"""Segmentation over a frozen encoder: modality mixer -> encoder blocks -> decoder (x16).

``ModalityMixer``: a learned 1x1 convolution from the case's M modalities to the encoder's input
channels, initialised to their average, so a 1-channel encoder takes multi-modal input.
``decoder`` head: patch features of several blocks (default 4 evenly spaced, [2, 5, 8, 11] of 12)
concatenated, a 1x1 projection, then four x2 transposed-convolution stages back to pixels (plus a
coarse linear path from the same features; see ``PatchDecoder``).
``linear`` head (the minimal baseline): norm + 1x1 convolution on the last block's patch
features, upsampled bilinearly. The encoder is frozen (eval mode, no parameter gradients) unless
``unfreeze_encoder`` is set, or ``adapted`` (an ``add_lora`` encoder: its adapters alone train).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from braindino.downstream.options import SEGMENTATION_HEADS as HEADS
from braindino.errors import ConfigError
from braindino.models import MaskableViT, adapter_parameters, set_adapter_dropout


def even_blocks(depth: int, count: int = 4) -> list[int]:
    """``count`` evenly spaced block indices ending at the last block (12 blocks -> 2, 5, 8, 11)."""
    count = min(count, depth)
    return sorted({round((i + 1) * depth / count) - 1 for i in range(count)})


class ModalityMixer(nn.Module):
    """1x1 convolution from M modalities to C encoder channels, initialised to the average."""

    def __init__(self, modalities: int, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(modalities, channels, kernel_size=1)
        nn.init.constant_(self.conv.weight, 1.0 / modalities)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        """``[B, M, H, W]`` -> ``[B, C, H, W]``."""
        return self.conv(x)


def _up_stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, kernel_size=2, stride=2),
        nn.BatchNorm2d(c_out),
        nn.GELU(),
    )


class PatchDecoder(nn.Module):
    """Concatenated block features ``[B, k*D, h, w]`` -> logits ``[B, K, 16h, 16w]``.

    A 1x1 projection, ``stages`` x2 transposed-convolution stages (BatchNorm, GELU) halving the
    width, and a 3x3 classifier; a coarse path (1x1 convolution of the same features, upsampled
    bilinearly) is added to the logits, so training starts from a multi-block linear read-out
    that the upsampling stages refine (it learns far faster than the stages alone).
    """

    def __init__(self, in_dim: int, num_classes: int, width: int = 128, stages: int = 4):
        super().__init__()
        self.project = nn.Sequential(
            nn.Conv2d(in_dim, width, kernel_size=1), nn.BatchNorm2d(width), nn.GELU()
        )
        chans = [max(width >> i, 16) for i in range(stages + 1)]
        self.up = nn.Sequential(*[_up_stage(chans[i], chans[i + 1]) for i in range(stages)])
        self.classify = nn.Conv2d(chans[-1], num_classes, kernel_size=3, padding=1)
        self.coarse = nn.Conv2d(in_dim, num_classes, kernel_size=1)

    def forward(self, features: Tensor) -> Tensor:
        """Upsample ``2**stages`` times and classify every pixel."""
        fine = self.classify(self.up(self.project(features)))
        coarse = F.interpolate(
            self.coarse(features), size=fine.shape[-2:], mode="bilinear", align_corners=False
        )
        return fine + coarse


class LinearProbe(nn.Module):
    """BatchNorm + 1x1 convolution on patch features, bilinear upsampling to the input size."""

    def __init__(self, in_dim: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_dim)
        self.classify = nn.Conv2d(in_dim, num_classes, kernel_size=1)

    def forward(self, features: Tensor, size: tuple[int, int]) -> Tensor:
        """Per-patch logits, upsampled to ``size``."""
        logits = self.classify(self.norm(features))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


class SegmentationModel(nn.Module):
    """Mixer + encoder + head; ``forward(images [B, M, H, W]) -> logits [B, K, H, W]``."""

    def __init__(
        self,
        encoder: MaskableViT,
        modalities: int,
        num_classes: int,
        head: str = "decoder",
        blocks: list[int] | None = None,
        width: int = 128,
        unfreeze_encoder: bool = False,
        adapted: bool = False,
    ):
        super().__init__()
        if head not in HEADS:
            raise ConfigError(
                f"unknown segmentation head {head!r}", path="--head", fix="use decoder or linear"
            )
        patch = encoder.patch_size[0]
        if head == "decoder" and patch != 16:
            raise ConfigError(
                f"the decoder upsamples x16 but the encoder's patch is {patch}",
                path="--encoder",
                fix="use a patch-16 encoder or the linear head",
            )
        self.head_name = head
        self.encoder = encoder
        self.unfreeze_encoder = bool(unfreeze_encoder)
        self.adapted = bool(adapted)  # an add_lora encoder: its adapters train, nothing else
        self.mixer = ModalityMixer(modalities, encoder.in_chans)
        # one modality into a one-channel encoder: the mixer is the identity and stays fixed
        self.mixer.requires_grad_(not (modalities == 1 and encoder.in_chans == 1))
        if head == "linear":
            self.blocks = [encoder.depth - 1]
            self.head: nn.Module = LinearProbe(encoder.embed_dim, num_classes)
        else:
            self.blocks = encoder.block_indices(blocks or even_blocks(encoder.depth))
            self.head = PatchDecoder(encoder.embed_dim * len(self.blocks), num_classes, width)
        if not self.adapted:  # add_lora froze all but the adapters
            encoder.requires_grad_(self.unfreeze_encoder)
        encoder.eval()

    def train(self, mode: bool = True) -> SegmentationModel:
        """Train mode for mixer and head; the encoder stays in eval mode (no drop path), its
        LoRA adapters' dropout (when adapted) follows ``mode``."""
        super().train(mode)
        self.encoder.eval()
        if self.adapted:
            set_adapter_dropout(self.encoder, mode)
        return self

    @property
    def encoder_trains(self) -> bool:
        """Whether any encoder parameter trains (unfrozen, or LoRA adapters)."""
        return self.unfreeze_encoder or self.adapted

    def trainable_groups(self, lr: float, encoder_lr: float) -> list[dict]:
        """Optimiser parameter groups: head + mixer at ``lr``, the encoder (unfrozen) or its
        LoRA adapters (adapted) at ``encoder_lr``."""
        own = [p for p in [*self.head.parameters(), *self.mixer.parameters()] if p.requires_grad]
        groups = [{"params": own, "lr": lr}]
        if self.unfreeze_encoder:
            groups.append({"params": list(self.encoder.parameters()), "lr": encoder_lr})
        if self.adapted:
            groups.append({"params": adapter_parameters(self.encoder), "lr": encoder_lr})
        return groups

    def features(self, images: Tensor) -> Tensor:
        """Concatenated patch-feature maps ``[B, k*D, h, w]`` of the chosen blocks."""
        x = self.mixer(images)
        need_grad = torch.is_grad_enabled() and (
            self.encoder_trains or any(p.requires_grad for p in self.mixer.parameters())
        )
        with torch.set_grad_enabled(need_grad):
            layers = self.encoder.get_intermediate_layers(x, self.blocks, reshape=True)
        return torch.cat([layer["patches"] for layer in layers], dim=1)

    def forward(self, images: Tensor) -> Tensor:
        """Per-pixel class logits."""
        feats = self.features(images)
        if self.head_name == "linear":
            return self.head(feats, tuple(images.shape[-2:]))
        return self.head(feats)
