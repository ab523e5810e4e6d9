"""iBOT loss: cross-entropy on masked patch tokens, averaged per image, then over images."""

from __future__ import annotations

import torch

from braindino.losses._common import check, check_positive, check_tensor, full_precision, upcast
from braindino.losses.soft_cross_entropy import FactoredLogits, check_logits, soft_cross_entropy


def ibot_loss(
    student_patch_logits: torch.Tensor | FactoredLogits,
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
    target. Computed in float32 with autocast off (float64 inputs stay
    float64); returns a scalar.

    ``student_patch_logits`` may also be :class:`braindino.losses.FactoredLogits` (the iBOT
    head's normalised bottleneck ``[M, D]`` and prototypes ``[K, D]``, from
    ``DINOHead(..., factored=True)``): the same loss without ever holding the ``[M, K]`` logits,
    which is what makes K = 65,536 cheap; the products then run in the features' dtype.
    """
    where = "ibot_loss"
    check_logits(student_patch_logits, where, "student_patch_logits")
    check_tensor(teacher_patch_probs, f"{where}(teacher_patch_probs)", 2)
    check_tensor(masks, f"{where}(masks)", 2)
    check_positive(student_temperature, f"{where}(student_temperature)")
    check(
        masks.dtype == torch.bool,
        f"{where}(masks)",
        f"expected a bool tensor, got {masks.dtype}",
        "pass masks.bool() (True where the patch was masked)",
    )
    check(
        teacher_patch_probs.shape == student_patch_logits.shape,
        f"{where}(teacher_patch_probs)",
        f"shape {tuple(teacher_patch_probs.shape)} differs from student_patch_logits "
        f"{tuple(student_patch_logits.shape)}",
        "select the same masked tokens from the teacher's patch outputs",
    )
    n_images = masks.shape[0]
    check(n_images >= 1, f"{where}(masks)", "the batch is empty (N = 0)", "pass at least one image")
    masked_per_image = masks.sum(dim=1)
    image_weight = 1.0 / masked_per_image.clamp(min=1).double()
    token_weight = image_weight[:, None].expand(masks.shape)[masks]  # [M], masks.nonzero() order
    check(
        token_weight.shape[0] == student_patch_logits.shape[0],
        f"{where}(student_patch_logits)",
        f"has {student_patch_logits.shape[0]} rows but masks marks {token_weight.shape[0]} tokens",
        "pass one row per True entry of masks, in masks.nonzero() order",
    )
    factored = isinstance(student_patch_logits, FactoredLogits)
    device_of = student_patch_logits.features if factored else student_patch_logits
    with full_precision(device_of):
        logits = student_patch_logits if factored else upcast(student_patch_logits)
        total = soft_cross_entropy(logits, teacher_patch_probs, token_weight, student_temperature)
        return total / n_images
