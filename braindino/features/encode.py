"""``encode_volume``: a frozen encoder's per-slice features of one volume.

The volume goes through the pretraining preprocessing (RAS, resampling, robust z-score, foreground
crop, axial slices, square resize; ``braindino.preprocess``) with the settings the encoder was
exported with (``encoder.extra["preprocessing"]``) and slices at the encoder's ``img_size``;
optionally the kept slices are resampled along z to a fixed count (BrainDINO: 128). Every slice is
encoded; per slice the CLS token, the mean of the register tokens, the mean of the patch tokens
and, on request, chosen blocks' CLS tokens are returned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from braindino.errors import BrainDinoError, DataError
from braindino.eval_mode import evaluating
from braindino.io.volume import Volume


def encoder_img_size(encoder: nn.Module) -> int:
    """The slice size the encoder was trained at (export info, else its timm ``img_size``)."""
    extra = getattr(encoder, "extra", None) or {}
    size = extra.get("img_size") or (getattr(encoder, "timm_kwargs", None) or {}).get("img_size")
    if isinstance(size, (list, tuple)):
        size = size[0]
    return int(size) if size else 224


def encoder_preprocess(
    encoder: nn.Module | None, preprocess: Mapping | DictConfig | None = None
) -> DictConfig:
    """The preprocessing config for ``encoder``: the defaults, then the encoder's export info,
    then ``preprocess``; ``slices.size`` is the encoder's ``img_size`` unless set explicitly in
    ``preprocess``. Storage is uint8 as in the pretraining shards."""
    from braindino.preprocess.settings import nested_overrides, preprocess_config

    exported = (getattr(encoder, "extra", None) or {}).get("preprocessing") or {}
    user = nested_overrides(preprocess or {})
    merged = OmegaConf.merge(nested_overrides(exported), user)
    if OmegaConf.select(user, "slices.size") is None:
        OmegaConf.update(merged, "slices.size", encoder_img_size(encoder))
    return preprocess_config(merged)


def check_slices(slices: Any) -> int | None:
    """``"all"`` -> None; a positive int -> itself; anything else: BrainDinoError."""
    if isinstance(slices, str) and slices == "all":
        return None
    if isinstance(slices, (int, np.integer)) and not isinstance(slices, bool) and slices >= 1:
        return int(slices)
    raise BrainDinoError(
        f"slices must be 'all' or a positive int, got {slices!r}",
        path="slices",
        fix="use slices='all' or e.g. slices=128",
    )


def resample_depth(images: np.ndarray, z: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` slices evenly spaced in z from the first to the last kept slice, each linearly
    interpolated between its two neighbours; returns ``(images [count, H, W], z [count])``."""
    order = np.argsort(z, kind="stable")
    images, z = images[order], np.asarray(z, np.float64)[order]
    if len(z) == 1:
        return np.repeat(images, count, axis=0), np.full(count, z[0])
    targets = np.linspace(z[0], z[-1], count)
    low = np.clip(np.searchsorted(z, targets, side="right") - 1, 0, len(z) - 2)
    weight = ((targets - z[low]) / (z[low + 1] - z[low])).astype(np.float32)[:, None, None]
    out = (1 - weight) * images[low] + weight * images[low + 1]
    return out.astype(np.float32), targets


def _z_mm(stack, z: np.ndarray) -> np.ndarray:
    """World (S, mm) coordinate of each slice at the centre of the crop."""
    geo = stack.geometry
    ci = (geo.crop_start[0] + geo.crop_stop[0] - 1) / 2
    cj = (geo.crop_start[1] + geo.crop_stop[1] - 1) / 2
    affine = np.asarray(geo.resampled_affine, np.float64)
    return affine[2, 0] * ci + affine[2, 1] * cj + affine[2, 2] * z + affine[2, 3]


def slice_input(encoder: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``[S, H, W]`` slices as the encoder's input ``[S, C, H, W]``: on its device and dtype,
    the one channel repeated when the encoder takes several."""
    param = next(encoder.parameters())
    x = images.unsqueeze(1).to(device=param.device, dtype=param.dtype)
    in_chans = int(getattr(encoder, "in_chans", 1))
    return x.expand(-1, in_chans, -1, -1) if in_chans > 1 else x


def token_features(final: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-slice features from the encoder's final tokens: ``cls``, ``patch_mean`` and, with
    register tokens, ``registers_mean`` (each ``[S, D]``)."""
    out = {"cls": final["cls"], "patch_mean": final["patches"].mean(dim=1)}
    if final["registers"].shape[1] > 0:
        out["registers_mean"] = final["registers"].mean(dim=1)
    return out


def pick_features(parts: Mapping[str, Any], feature: str, path: str) -> Any:
    """The ``feature`` columns (``cls``, ``patch_mean``, ``registers_mean`` or ``+``-joined
    names, concatenated in that order along the last axis) of per-slice ``parts`` (numpy
    arrays or tensors); a name the encoder does not give is a ``DataError`` naming ``path``."""
    chosen = []
    for name in feature.split("+"):
        if name not in parts:
            raise DataError(
                f"the encoder gives no '{name}' features",
                path=path,
                fix="choose --feature cls (or patch_mean)",
            )
        chosen.append(parts[name])
    if isinstance(chosen[0], torch.Tensor):
        return torch.cat(chosen, dim=-1)
    return np.concatenate([np.asarray(c, np.float32) for c in chosen], axis=-1)


def forward_slice_features(
    encoder: nn.Module, images: torch.Tensor, feature: str, batch_size: int = 64
) -> torch.Tensor:
    """``feature`` of slices ``[S, H, W]`` as a tensor ``[S, D']`` in the autograd graph (an
    encoder that trains, e.g. with LoRA adapters), the same computation as
    :func:`encode_slices`'s; without gradients the slices go through in ``batch_size`` chunks
    as there, with gradients in one pass. The encoder's mode is left as it is."""
    step = len(images) if torch.is_grad_enabled() else batch_size
    parts = []
    for chunk in images.split(max(step, 1)):
        final = encoder.forward_features(slice_input(encoder, chunk))
        parts.append(pick_features(token_features(final), feature, "--feature"))
    return torch.cat(parts)


@torch.inference_mode()
def _run_encoder(
    encoder: nn.Module, images: np.ndarray, blocks: list[int] | None, batch_size: int
) -> dict[str, np.ndarray]:
    depth = int(getattr(encoder, "depth", 0))
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(images), batch_size):
        x = slice_input(encoder, torch.from_numpy(images[start : start + batch_size]))
        if blocks:
            wanted = sorted(set(blocks) | {depth - 1})
            layers = dict(zip(wanted, encoder.get_intermediate_layers(x, blocks=wanted)))
            final = layers[depth - 1]
            parts.setdefault("blocks_cls", []).append(
                torch.stack([layers[b]["cls"] for b in blocks], dim=1)
            )
        else:
            final = encoder.forward_features(x)
        for name, value in token_features(final).items():
            parts.setdefault(name, []).append(value)
    return {k: torch.cat(v).float().cpu().numpy() for k, v in parts.items()}


def _check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise BrainDinoError(
            f"batch_size must be a positive int, got {batch_size!r}",
            path="batch_size",
            fix="use e.g. 64",
        )


def encoder_slices(
    encoder: nn.Module | None,
    volume_or_path: Volume | str | Path,
    preprocess: Mapping | DictConfig | None = None,
    slices: int | str = "all",
) -> tuple[np.ndarray, np.ndarray, Any]:
    """A volume's axial slices as the encoder sees them: ``(images [S, H, W] float32 z-scores,
    z [S] float64, the preprocessed stack)``, with the encoder's preprocessing
    (:func:`encoder_preprocess` with ``preprocess``; ``encoder=None``: the pretraining defaults)
    and, for an int ``slices``, resampled along z to that many slices."""
    from braindino.io import read_volume
    from braindino.preprocess import preprocess_volume

    count = check_slices(slices)
    volume = volume_or_path if isinstance(volume_or_path, Volume) else read_volume(volume_or_path)
    stack = preprocess_volume(volume, encoder_preprocess(encoder, preprocess))
    images = stack.slices.astype(np.float32) * np.float32(stack.scale) + np.float32(stack.offset)
    z = stack.z.astype(np.float64)
    if count is not None:
        images, z = resample_depth(images, z, count)
    return np.ascontiguousarray(images), z, stack


def encode_slices(
    encoder: nn.Module,
    images: np.ndarray,
    blocks: int | Sequence[int] | None = None,
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Per-slice features of slices ``[S, H, W]`` (float32 z-scores) in eval mode (the
    encoder's mode is restored): ``cls``, ``patch_mean``, ``registers_mean`` (with registers)
    and, when ``blocks`` are asked, ``blocks_cls`` ``[S, len(blocks), D]`` and ``blocks``."""
    _check_batch_size(batch_size)
    indices = None if blocks is None else encoder.block_indices(blocks)
    with evaluating(encoder):
        out = _run_encoder(encoder, np.ascontiguousarray(images, np.float32), indices, batch_size)
    if indices is not None:
        out["blocks"] = np.asarray(indices, np.int64)
    return out


def encode_volume(
    encoder: nn.Module,
    volume_or_path: Volume | str | Path,
    preprocess: Mapping | DictConfig | None = None,
    slices: int | str = "all",
    blocks: int | Sequence[int] | None = None,
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Per-slice features of one volume from a frozen encoder (:func:`encoder_slices`, then
    :func:`encode_slices`).

    Args:
        encoder: a ``MaskableViT`` (``braindino.load_encoder(...)``); run in eval mode.
        volume_or_path: a ``Volume`` or a path ``braindino.read_volume`` reads.
        preprocess: preprocessing overrides on top of the encoder's export info (see
            ``encoder_preprocess``); ``None`` = exactly the pretraining settings.
        slices: ``"all"`` kept slices, or resample them along z to this many (BrainDINO: 128).
        blocks: also return these blocks' CLS tokens (indices, negatives from the end, or an int
            n for the last n blocks).
        batch_size: slices per forward pass.

    Returns:
        float32 arrays: ``cls``, ``patch_mean`` and (when the encoder has registers)
        ``registers_mean``, each ``[S, D]``; ``blocks_cls`` ``[S, len(blocks), D]`` and ``blocks``
        (the block indices) when asked; ``z`` ``[S]`` (slice position, voxel index along z of the
        resampled volume) and ``z_mm`` ``[S]`` (its world S coordinate at the crop centre).
    """
    check_slices(slices)  # bad arguments fail before the volume is read
    _check_batch_size(batch_size)
    if blocks is not None:
        encoder.block_indices(blocks)
    images, z, stack = encoder_slices(encoder, volume_or_path, preprocess, slices)
    out = encode_slices(encoder, images, blocks, batch_size)
    out["z"] = z.astype(np.float32)
    out["z_mm"] = _z_mm(stack, z).astype(np.float32)
    return out
