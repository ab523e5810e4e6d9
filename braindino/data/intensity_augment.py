"""MRI intensity augmentation on ``[0, 1]`` slices: a smooth polynomial bias field, gamma,
contrast, Gaussian blur and noise, each applied with its probability per crop type and with
per-sample random parameters, batched (:class:`IntensityAugmentation`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

INTENSITY_ORDER = ("bias_field", "gamma", "contrast", "blur", "noise")


def apply_bias_field(v: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """``v [N,1,H,W] * exp(sum_ij coeffs[n,i,j] x^i y^j)`` with x, y in [-1, 1] over the crop."""
    order = coeffs.shape[-1]
    hgt, wid = v.shape[-2:]
    powers = torch.arange(order, device=v.device, dtype=v.dtype)
    x = (torch.arange(wid, device=v.device, dtype=v.dtype) + 0.5) / wid * 2 - 1
    y = (torch.arange(hgt, device=v.device, dtype=v.dtype) + 0.5) / hgt * 2 - 1
    px, py = x[:, None] ** powers, y[:, None] ** powers  # [W, o], [H, o]
    field = (py @ coeffs.to(v).transpose(1, 2) @ px.T).exp_()  # [N, H, W]
    return field.unsqueeze(1).mul_(v)


def min_and_span(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample (dim 0): the minimum and the max - min range (at least 1e-6), shape ``[N]``."""
    flat = v.flatten(1)
    lo = flat.amin(1)
    return lo, (flat.amax(1) - lo).clamp(min=1e-6)


def apply_gamma(v: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """Gamma per crop on its min-max rescaled intensity, mapped back to the crop's range."""
    lo, span = (t.view(-1, 1, 1, 1) for t in min_and_span(v))
    out = (v - lo).div_(span).clamp_(min=0).pow_(gamma.view(-1, 1, 1, 1).to(v))
    return out.mul_(span).add_(lo)


def apply_contrast(
    v: torch.Tensor, contrast: torch.Tensor, brightness: torch.Tensor
) -> torch.Tensor:
    """``(v - mean) * contrast + mean + brightness`` per crop (mean over the crop)."""
    mean = v.mean((1, 2, 3), keepdim=True)
    shift = mean + brightness.view(-1, 1, 1, 1).to(v)
    return (v - mean).mul_(contrast.view(-1, 1, 1, 1).to(v)).add_(shift)


def gaussian_blur(v: torch.Tensor, sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Separable Gaussian blur with one sigma (pixels) per crop; reflect padding.

    Shift-and-add over the ``2 * radius + 1`` taps: on the CPU this beats a grouped conv, whose
    oneDNN primitive is rebuilt for every new number of crops.
    """
    taps = torch.arange(-radius, radius + 1, device=v.device, dtype=v.dtype)
    kernel = torch.exp(-(taps**2) / (2 * sigma.to(v).view(-1, 1) ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).view(v.shape[0], 1, 1, 1, -1)
    out = v
    for dim, pad in ((-1, (radius, radius, 0, 0)), (-2, (0, 0, radius, radius))):  # along W, then H
        x = F.pad(out, pad, mode="reflect")
        length = out.shape[dim]
        out = x.narrow(dim, 0, length) * kernel[..., 0]
        for t in range(1, 2 * radius + 1):
            out.addcmul_(x.narrow(dim, t, length), kernel[..., t])
    return out


def _uniform(n: int, bounds: Sequence[float], gen: torch.Generator | None) -> torch.Tensor:
    return bounds[0] + torch.rand(n, generator=gen, dtype=torch.float64) * (bounds[1] - bounds[0])


class IntensityAugmentation:
    """MRI intensity augmentations on ``v = u8 / 255`` crops, vectorised over crops.

    ``cfg`` is the ``intensity`` section of ``configs/pretrain/augment.yaml``.
    """

    def __init__(self, cfg: Mapping[str, Any]):
        self.cfg = {k: dict(cfg[k]) for k in INTENSITY_ORDER}
        self.prob = {
            k: torch.tensor(self.cfg[k]["probability"], dtype=torch.float64)
            for k in INTENSITY_ORDER
        }
        self.blur_radius = max(1, math.ceil(3 * float(self.cfg["blur"]["sigma"][1])))
        order = int(self.cfg["bias_field"]["order"])
        i, j = np.meshgrid(np.arange(order + 1), np.arange(order + 1), indexing="ij")
        terms = torch.from_numpy((i + j <= order) & (i + j > 0))
        self.bias_terms = terms.to(torch.float64)

    def __call__(
        self,
        v: torch.Tensor,
        crop_type: torch.Tensor,
        gen: torch.Generator | None,
        noise_gen: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Augment crops ``v [N,1,H,W]`` in place; ``crop_type [N]`` (0/1 global, 2 local) picks
        each augmentation's probability. ``noise_gen`` (default ``gen``) draws the noise on
        ``v``'s device; everything else is drawn on the CPU from ``gen``."""
        n = v.shape[0]
        for name in INTENSITY_ORDER:
            chosen = torch.rand(n, generator=gen, dtype=torch.float64) < self.prob[name][crop_type]
            idx = chosen.nonzero().squeeze(1)
            k = idx.numel()
            if k == 0:
                continue
            idx_dev = idx.to(v.device)
            sub = v.index_select(0, idx_dev)
            p = self.cfg[name]
            if name == "bias_field":
                s = float(p["strength"])
                u = torch.rand(k, *self.bias_terms.shape, generator=gen, dtype=torch.float64)
                coeffs = (2 * u - 1) * (s * self.bias_terms)
                sub = apply_bias_field(sub, coeffs.to(v.device))
            elif name == "gamma":
                lo, hi = (math.log(float(g)) for g in p["range"])
                sub = apply_gamma(sub, torch.exp(_uniform(k, (lo, hi), gen)).to(v.device))
            elif name == "contrast":
                c, b = _uniform(k, p["contrast"], gen), _uniform(k, p["brightness"], gen)
                sub = apply_contrast(sub, c.to(v.device), b.to(v.device))
            elif name == "blur":
                sigma = _uniform(k, p["sigma"], gen).to(v.device)
                sub = gaussian_blur(sub, sigma, self.blur_radius)
            else:  # noise
                std = _uniform(k, p["std"], gen).to(v).view(-1, 1, 1, 1)
                ng = noise_gen if noise_gen is not None else gen
                noise = torch.randn(sub.shape, generator=ng, device=sub.device, dtype=sub.dtype)
                sub = noise.mul_(std).add_(sub)
            v.index_copy_(0, idx_dev, sub)
        return v
