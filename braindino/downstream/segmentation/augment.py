"""Augmentation of (image, label) slice batches suited to MRI, applied per sample on the fly.

Geometry (same transform for image and label): left-right flip (the R axis; brains are nearly
symmetric), rotation, isotropic scale and shift about the slice centre. Intensity (image only,
per modality): a smooth multiplicative bias field (scanner coil inhomogeneity), contrast and
brightness jitter on the z-scores, Gaussian noise. Labels are resampled nearest-neighbour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentSettings:
    """Ranges of the random transforms (``0`` switches one off)."""

    flip: float = 0.5  # probability of a left-right flip
    rotate_deg: float = 15.0
    scale: float = 0.1  # isotropic zoom in [1 - scale, 1 + scale]
    shift: float = 0.05  # translation, fraction of the slice side
    bias: float = 0.3  # bias field: exp(bias * smooth noise in [-1, 1])
    contrast: float = 0.1  # z-score gain in [1 - contrast, 1 + contrast]
    brightness: float = 0.1  # z-score offset in [-brightness, brightness]
    noise: float = 0.05  # Gaussian noise sd (z-score units), drawn in [0, noise]


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen) * (high - low) + low


def augment_batch(
    images: torch.Tensor,
    labels: torch.Tensor,
    gen: torch.Generator,
    settings: AugmentSettings = AugmentSettings(),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomly transformed copies of ``images [B, M, H, W]`` (float) and ``labels [B, H, W]``."""
    b, m, h, w = images.shape
    flip = torch.where(torch.rand(b, generator=gen) < settings.flip, -1.0, 1.0)
    angle = _uniform(b, -1, 1, gen) * math.radians(settings.rotate_deg)
    zoom = _uniform(b, 1 - settings.scale, 1 + settings.scale, gen)
    shift = _uniform(2 * b, -1, 1, gen).view(b, 2) * 2 * settings.shift
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.zeros(b, 2, 3)
    # grid x runs along W (axis 1 of the slice), y along H (axis 0, the R axis we flip)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * flip
    theta[:, 1, 0], theta[:, 1, 1] = sin, cos * flip
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, [b, m, h, w], align_corners=False)
    low = images.amin(dim=(2, 3), keepdim=True)
    out = F.grid_sample(
        images - low, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    seg = F.grid_sample(
        labels[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False
    )[:, 0].long()
    if settings.bias > 0:
        coarse = _uniform(b * m * 16, -1, 1, gen).view(b, m, 4, 4)
        field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
        out = out * torch.exp(settings.bias * field.clamp(-1, 1))
    gain = _uniform(b * m, 1 - settings.contrast, 1 + settings.contrast, gen).view(b, m, 1, 1)
    offset = _uniform(b * m, -settings.brightness, settings.brightness, gen).view(b, m, 1, 1)
    out = (out + low) * gain + offset
    if settings.noise > 0:
        sd = _uniform(b, 0, settings.noise, gen).view(b, 1, 1, 1)
        out = out + sd * torch.randn(out.shape, generator=gen)
    return out, seg
