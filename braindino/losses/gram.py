"""Gram anchoring (DINOv3 stage 2): keep the student's patch similarities near a teacher's."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from braindino.losses._common import check, check_tensor, full_precision, upcast


def _patch_gram(patches: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Per image, the P×P cosine similarities of its patch features: [N, P, D] → [N, P, P]."""
    unit = F.normalize(patches.to(dtype), p=2, dim=-1)
    return unit @ unit.transpose(1, 2)


def gram_loss(student_patches: torch.Tensor, teacher_patches: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the student's and teacher's per-image patch Gram matrices.

    Both inputs are ``[N, P, D]`` patch features of the same N crops on the same P-patch grid
    (resize a higher-resolution teacher's patch map to the student grid first); the feature
    widths may differ, since each Gram matrix is P×P of cosine similarities of L2-normalised
    patches. The squared differences are averaged over the P×P entries of each image, then over
    images. The teacher is a fixed target (no gradient flows into it). Computed in float32 with
    autocast off (float64 inputs stay float64); returns a scalar.
    """
    where = "gram_loss"
    check_tensor(student_patches, f"{where}(student_patches)", 3)
    check_tensor(teacher_patches, f"{where}(teacher_patches)", 3)
    check(
        teacher_patches.shape[:2] == student_patches.shape[:2],
        f"{where}(teacher_patches)",
        f"shape {tuple(teacher_patches.shape)} has a different [N, P] than student_patches "
        f"{tuple(student_patches.shape)}",
        "give the teacher the same crops and resize its patch map to the student's grid",
    )
    check(
        student_patches.shape[0] >= 1 and student_patches.shape[1] >= 1,
        f"{where}(student_patches)",
        f"shape {tuple(student_patches.shape)} holds no image or no patch",
        "pass at least one image with at least one patch",
    )
    with full_precision(student_patches):
        dtype = upcast(student_patches).dtype
        student_gram = _patch_gram(student_patches, dtype)
        teacher_gram = _patch_gram(teacher_patches.detach(), dtype)
        difference = student_gram - teacher_gram
        return difference.square().mean()


def resize_patch_grid(
    patches: torch.Tensor, grid: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Patch features ``[N, h*w, D]`` on a ``grid`` = (h, w) patch grid, bicubically resampled
    to ``size`` = (h', w') (``align_corners=False``: patch centres to patch centres), as
    ``[N, h'*w', D]``: a higher-resolution Gram teacher's patch map on the student's grid."""
    n, count, width = patches.shape
    check(
        count == grid[0] * grid[1],
        "resize_patch_grid(patches)",
        f"{count} patches do not fill a {grid[0]}x{grid[1]} grid",
        "pass the patch tokens of one crop size, row-major over its grid",
    )
    if tuple(grid) == tuple(size):
        return patches
    maps = patches.transpose(1, 2).reshape(n, width, *grid)
    resized = F.interpolate(maps, size=size, mode="bicubic", align_corners=False)
    return resized.reshape(n, width, size[0] * size[1]).transpose(1, 2)
