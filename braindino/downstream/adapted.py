"""Volume heads trained together with LoRA adapters on the encoder (``--adapter lora``).

When the encoder trains its features change every step, so no feature cache applies: each
volume's slices are preprocessed once (``encoder_slices``, the cached path's own first step)
and kept in memory, and the head's every step encodes its batch's slices through the adapted
encoder (``forward_slice_features``, the same computation as ``encode_slices``). The head and
the adapters train together through ``fit_head``; the validation-selected epoch restores both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from braindino.downstream.samples import row_stacks
from braindino.eval_mode import evaluating
from braindino.features import encoder_slices, forward_slice_features
from braindino.models import adapter_counts, adapter_parameters, add_lora, set_adapter_dropout
from braindino.tasks import image_columns

NO_CACHE = "not used: the encoder trains (LoRA adapters), slice features are computed on the fly"


@dataclass
class SampleSlices:
    """Preprocessed slices of every manifest row (``images[i]`` ``[M, S_i, H, W]`` float32
    z-scores for the row's M images, ``z[i]`` ``[S_i]``), the frozen encoder the adapters go
    on, the feature read per slice and its width D (M x the per-image feature width)."""

    images: list[np.ndarray]
    z: list[np.ndarray]
    encoder: nn.Module
    feature: str
    width: int


def manifest_slices(
    encoder: nn.Module,
    manifest: pd.DataFrame,
    feature: str = "cls",
    preprocess: Mapping[str, Any] | None = None,
    slices: int | str = 128,
    progress: bool = True,
) -> SampleSlices:
    """The slices of every manifest row as the encoder sees them (each image file read and
    preprocessed once); a sample's images must give the same slice count."""
    from tqdm import tqdm

    columns = image_columns(manifest)
    paths = list(dict.fromkeys(str(p) for col in columns for p in manifest[col]))
    per_path = {}
    for path in tqdm(paths, desc="slices", unit="vol", disable=not progress, dynamic_ncols=True):
        images, z, _ = encoder_slices(encoder, path, preprocess, slices)
        per_path[path] = (images, z.astype(np.float32))
    stacks, positions = row_stacks(manifest, per_path)
    images = [np.stack(s) for s in stacks]
    with evaluating(encoder), torch.no_grad():  # the width; a feature the encoder lacks fails here
        probe = torch.from_numpy(images[0][0][:1])
        width = int(forward_slice_features(encoder, probe, feature).shape[1])
    return SampleSlices(images, positions, encoder, feature, width * len(columns))


class VolumeSlices:
    """The slices of some manifest rows with their targets, as ``fit_head`` / ``predict``
    data: ``inputs(index, device)`` gives ``(images [B, M, S, H, W], padding mask [B, S] or
    None)``, padded per batch (True on a volume's padding slices)."""

    def __init__(self, samples: SampleSlices, rows: np.ndarray, targets: Tensor) -> None:
        if len(rows) != len(targets):
            raise ValueError(f"{len(rows)} rows but {len(targets)} targets")
        self.samples, self.rows, self.targets = samples, np.asarray(rows), targets

    def __len__(self) -> int:
        return len(self.rows)

    def inputs(self, index: Tensor, device: torch.device) -> tuple[Tensor, Tensor | None]:
        """Images and padding mask of the volumes at ``index`` on ``device``."""
        stacks = [self.samples.images[self.rows[i]] for i in index.tolist()]
        longest = max(s.shape[1] for s in stacks)
        images = torch.zeros(len(stacks), stacks[0].shape[0], longest, *stacks[0].shape[2:])
        mask = torch.ones(len(stacks), longest, dtype=torch.bool)
        for i, stack in enumerate(stacks):
            images[i, :, : stack.shape[1]] = torch.from_numpy(stack)
            mask[i, : stack.shape[1]] = False
        padded = mask.to(device) if bool(mask.any()) else None
        return images.to(device, non_blocking=True), padded


class AdaptedEncoderHead(nn.Module):
    """A head on the per-slice features of an encoder with LoRA adapters (``add_lora``).

    ``forward(images [B, M, S, H, W], padding_mask)`` encodes every real slice of each of the M
    images, joins the M features along the feature axis (as ``manifest_features`` does) and
    runs the head; ``loss`` is the head's. The encoder always runs as in the cached path (eval
    mode: no drop path, no RoPE jitter); while training only the adapters' dropout is active.
    The encoder's blocks are gradient-checkpointed (activations of a batch's slices recomputed
    in the backward pass: about one more forward pass for far less memory).
    """

    def __init__(self, encoder: nn.Module, head: nn.Module, feature: str):
        super().__init__()
        self.encoder, self.head, self.feature = encoder, head, feature
        encoder.set_grad_checkpointing(True)

    def train(self, mode: bool = True) -> AdaptedEncoderHead:
        """Train/eval mode for the head and the adapters' dropout; the encoder stays in eval."""
        super().train(mode)
        self.encoder.eval()
        set_adapter_dropout(self.encoder, mode)
        return self

    def forward(self, images: Tensor, padding_mask: Tensor | None = None) -> dict[str, Tensor]:
        """The head's outputs for a batch of volumes' slices."""
        real = torch.ones(images.shape[:1] + images.shape[2:3], dtype=torch.bool)
        real = real.to(images.device) if padding_mask is None else ~padding_mask
        parts = []
        for m in range(images.shape[1]):
            encoded = forward_slice_features(self.encoder, images[:, m][real], self.feature)
            features = encoded.new_zeros(*real.shape, encoded.shape[1])
            features[real] = encoded
            parts.append(features)
        return self.head(torch.cat(parts, dim=-1), padding_mask)

    def loss(self, outputs: dict[str, Tensor], targets: Tensor) -> Tensor:
        """The head's training loss."""
        return self.head.loss(outputs, targets)

    def parameter_groups(self, lr: float, adapter_lr: float) -> list[dict[str, Any]]:
        """Optimiser groups: the head at ``lr``, the LoRA parameters at ``adapter_lr``."""
        return [
            {"params": [p for p in self.head.parameters() if p.requires_grad], "lr": lr},
            {"params": adapter_parameters(self.encoder), "lr": adapter_lr},
        ]

    def counts(self) -> dict[str, Any]:
        """Trainable parameters (:func:`trainable_counts`)."""
        return trainable_counts(self.encoder, self.head.parameters())


def trainable_counts(encoder: nn.Module, head: Iterable[nn.Parameter]) -> dict[str, Any]:
    """Trainable parameters of an adapted model: ``adapter``, ``head`` (the trainable ones of
    ``head``), ``trainable`` (their sum), the encoder's own ``encoder`` parameters and
    ``adapter_percent`` of them."""
    counts = adapter_counts(encoder)
    own = sum(p.numel() for p in head if p.requires_grad)
    return {**counts, "head": own, "trainable": counts["adapter"] + own}


def adapted_model(
    samples: SampleSlices, head: nn.Module, options: Any, seed: int
) -> AdaptedEncoderHead:
    """``head`` on a fresh LoRA copy of the samples' encoder (``options``: ``lora_rank``,
    ``lora_alpha``, ``lora_dropout``, ``lora_targets``; A drawn from ``seed``), on the GPU when
    there is one."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = add_lora(
            samples.encoder,
            options.lora_rank,
            options.lora_alpha,
            options.lora_dropout,
            options.lora_targets,
        )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return AdaptedEncoderHead(encoder, head, samples.feature).to(device)
