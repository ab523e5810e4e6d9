"""The crop geometry of multi-crop: random resized crop boxes (torchvision's sampling), the
affine sampling grids that cut them out, and all crops of a batch resampled in one call."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def sample_crop_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    aspect_ratio: tuple[float, float],
    generator: torch.Generator | None = None,
    tries: int = 10,
) -> torch.Tensor:
    """Random resized-crop boxes ``[n, 4]`` (top, left, h, w) in pixels, float64, on the CPU."""
    u = torch.rand(n, tries, 4, generator=generator, dtype=torch.float64)
    area = height * width * (scale[0] + u[..., 0] * (scale[1] - scale[0]))
    lo, hi = math.log(aspect_ratio[0]), math.log(aspect_ratio[1])
    ratio = torch.exp(lo + u[..., 1] * (hi - lo))
    w = torch.sqrt(area * ratio)
    h = torch.sqrt(area / ratio)
    ok = (w <= width) & (h <= height)
    first = ok.to(torch.int8).argmax(1)
    rows = torch.arange(n)
    h, w, u = h[rows, first], w[rows, first], u[rows, first]
    # Fallback when no try fits: the whole slice with the aspect clamped (torchvision's rule).
    in_ratio = width / height
    fb_w = width if in_ratio <= aspect_ratio[1] else height * aspect_ratio[1]
    fb_h = height if in_ratio >= aspect_ratio[0] else width / aspect_ratio[0]
    found = ok.any(1)
    h = torch.where(found, h, torch.full_like(h, fb_h))
    w = torch.where(found, w, torch.full_like(w, fb_w))
    top = torch.where(found, u[:, 2] * (height - h), (height - h) / 2)
    left = torch.where(found, u[:, 3] * (width - w), (width - w) / 2)
    return torch.stack([top, left, h, w], 1)


def crop_thetas(
    boxes: torch.Tensor, flips: torch.Tensor, angles_deg: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """``F.affine_grid`` matrices ``[n, 2, 3]`` mapping each output crop onto its box.

    ``boxes`` are (top, left, h, w) in pixels (edges at integers, align_corners=False); a flip
    mirrors the crop left-right; the crop is rotated by ``angles_deg`` about the box centre.
    """
    boxes = boxes.to(torch.float64)
    top, left, h, w = boxes.unbind(1)
    sign = 1.0 - 2.0 * flips.to(torch.float64)
    a = torch.deg2rad(angles_deg.to(torch.float64))
    cos, sin = torch.cos(a), torch.sin(a)
    sx, sy = sign * w / 2, h / 2  # output unit square -> pixel half-extent (x with flip)
    theta = torch.empty(boxes.shape[0], 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = 2 / width * cos * sx
    theta[:, 0, 1] = -2 / width * sin * sy
    theta[:, 0, 2] = 2 * (left + w / 2) / width - 1
    theta[:, 1, 0] = 2 / height * sin * sx
    theta[:, 1, 1] = 2 / height * cos * sy
    theta[:, 1, 2] = 2 * (top + h / 2) / height - 1
    return theta


def side_by_side_grid(thetas: torch.Tensor, size: int, crops_per_image: int) -> torch.Tensor:
    """``F.affine_grid`` of ``thetas`` ``[n*B, 2, 3]``, laid out as ``[B, size, n*size, 2]``.

    Same values as ``F.affine_grid(thetas, [n*B, 1, size, size], align_corners=False)`` with
    the n crops of each image side by side (row ``c*B + b`` of ``thetas`` = crop ``c`` of image
    ``b``). Built by broadcasting: on the CPU ``F.affine_grid``'s thin batched matmul is ~10x
    slower and was the largest cost of the whole augmentation.
    """
    n = crops_per_image
    b = thetas.shape[0] // n
    th = thetas.view(n, b, 2, 3).permute(1, 0, 2, 3)[:, None, :, :, :, None]  # [B,1,n,2,3,1]
    lin = (torch.arange(size, device=thetas.device, dtype=thetas.dtype) * 2 + 1) / size - 1
    grid = torch.empty(b, size, n, size, 2, device=thetas.device, dtype=thetas.dtype)
    for k in range(2):  # input x (k=0) and y (k=1) for output pixel (y, x); written in place
        y_part = th[:, :, :, k, 1] * lin[:, None, None] + th[:, :, :, k, 2]
        torch.add(th[:, :, :, k, 0] * lin, y_part, out=grid[..., k])
    return grid.view(b, size, n * size, 2)


def resized_crops(
    images: torch.Tensor, thetas: torch.Tensor, size: int, crops_per_image: int
) -> torch.Tensor:
    """Crops ``[n*B, C, size, size]`` of ``images`` ``[B, C, H, W]``, rows grouped by crop index.

    ``thetas`` ``[n*B, 2, 3]`` follow the same order (row ``c*B + b`` = crop ``c`` of image ``b``).
    The n crops of one image are laid side by side in one sampling grid, so the whole batch is
    read in place by a single bilinear ``grid_sample`` call (zeros outside the image).
    """
    b, c = images.shape[:2]
    n = crops_per_image
    if n == 0:
        return images.new_zeros(0, c, size, size)
    theta = thetas.to(device=images.device, dtype=images.dtype)
    grid = side_by_side_grid(theta, size, n)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.view(b, c, size, n, size).permute(3, 0, 1, 2, 4).reshape(n * b, c, size, size)
