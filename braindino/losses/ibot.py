"""iBOT loss: cross-entropy on masked patch tokens, averaged per image, then over images."""

from __future__ import annotations

import torch

from braindino.losses._common import check, check_positive, check_tensor, full_precision, upcast


def ibot_token_weights(
    masks: torch.Tensor, student_shape: tuple[int, ...], teacher_probs: torch.Tensor
) -> torch.Tensor:
    """Check the iBOT arguments; return each masked token's weight ``[M]`` (float64):
    1 / (its image's masked-token count), in ``masks.nonzero()`` order."""
    where = "ibot_loss"
    check_tensor(teacher_probs, f"{where}(teacher_patch_probs)", 2)
    check_tensor(masks, f"{where}(masks)", 2)
    check(
        masks.dtype == torch.bool,
        f"{where}(masks)",
        f"expected a bool tensor, got {masks.dtype}",
        "pass masks.bool() (True where the patch was masked)",
    )
    check(
        tuple(teacher_probs.shape) == tuple(student_shape),
        f"{where}(teacher_patch_probs)",
        f"shape {tuple(teacher_probs.shape)} differs from student_patch_logits "
        f"{tuple(student_shape)}",
        "select the same masked tokens from the teacher's patch outputs",
    )
    check(masks.shape[0] >= 1, f"{where}(masks)", "the batch is empty (N = 0)", "pass an image")
    image_weight = 1.0 / masks.sum(dim=1).clamp(min=1).double()
    token_weight = image_weight[:, None].expand(masks.shape)[masks]
    check(
        token_weight.shape[0] == student_shape[0],
        f"{where}(student_patch_logits)",
        f"has {student_shape[0]} rows but masks marks {token_weight.shape[0]} tokens",
        "pass one row per True entry of masks, in masks.nonzero() order",
    )
    return token_weight


def ibot_loss(
    student_patch_logits: torch.Tensor,
    teacher_patch_probs: torch.Tensor,
    masks: torch.Tensor,
    student_temperature: float = 0.1,
) -> torch.Tensor:
    """Masked-token cross-entropy −Σ_k p_t·log softmax(s/τ), mean per image, then mean over images.

    ``masks`` is a bool ``[N, P]`` (True = the student saw a mask token there). The logits and the
    teacher probabilities are ``[M, K]`` with ``M = masks.sum()``, their rows in
    ``masks.nonzero()`` order (row-major: image by image, patch by patch). Each image's masked
    tokens are averaged, and the per-image means are averaged over all N images, so an image
    without masked tokens contributes 0 (and still counts in N). Teacher probabilities are a fixed
    target. Computed in float32 with autocast off (float64 inputs stay float64); returns a scalar.
    """
    check_tensor(student_patch_logits, "ibot_loss(student_patch_logits)", 2)
    check_positive(student_temperature, "ibot_loss(student_temperature)")
    shape = tuple(student_patch_logits.shape)
    weights = ibot_token_weights(masks, shape, teacher_patch_probs)
    with full_precision(student_patch_logits):
        log_p = torch.log_softmax(upcast(student_patch_logits) / student_temperature, dim=-1)
        per_token = -(teacher_patch_probs.detach().to(log_p.dtype) * log_p).sum(dim=-1)
        return (weights.to(log_p.dtype) * per_token).sum() / masks.shape[0]
