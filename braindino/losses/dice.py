"""Soft Dice loss for segmentation (softmax classes or sigmoid multi-label regions)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from braindino.errors import DataError
from braindino.losses._common import check, check_positive, check_tensor, full_precision, upcast


def _class_targets(logits: torch.Tensor, target: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """The target as per-class float maps shaped like ``logits`` ([N, C, *spatial])."""
    where = "dice_loss(target)"
    n_classes = logits.shape[1]
    if target.dim() == logits.dim():
        check(
            target.shape == logits.shape,
            where,
            f"shape {tuple(target.shape)} differs from logits {tuple(logits.shape)}",
            "pass per-class maps [N, C, *spatial] or integer labels [N, *spatial]",
        )
        return target.to(device=logits.device, dtype=logits.dtype)
    check(
        not multilabel,
        where,
        f"multilabel Dice needs per-region maps shaped like logits {tuple(logits.shape)}, "
        f"got {tuple(target.shape)}",
        "pass a [N, C, *spatial] 0/1 tensor, one channel per region",
    )
    check(
        target.dim() == logits.dim() - 1 and target.shape == logits.shape[:1] + logits.shape[2:],
        where,
        f"shape {tuple(target.shape)} does not fit logits {tuple(logits.shape)}",
        "pass integer labels [N, *spatial] or per-class maps [N, C, *spatial]",
    )
    check(
        not target.is_floating_point() and not target.is_complex(),
        where,
        f"integer labels expected, got {target.dtype}",
        "pass target.long() for label maps",
    )
    labels = target.to(logits.device).long()
    if labels.numel() and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(
            f"labels must lie in [0, {n_classes - 1}] for {n_classes} logit channels, "
            f"found {int(labels.min())}..{int(labels.max())}",
            path=where,
            fix="remap the label values (e.g. BraTS 2021's 4 → 3) or widen the head",
        )
    one_hot = F.one_hot(labels, n_classes)  # [N, *spatial, C]
    return one_hot.movedim(-1, 1).to(logits.dtype)


def dice_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    multilabel: bool = False,
    include_background: bool = False,
    batch_dice: bool = True,
    smooth: float = 1e-5,
) -> torch.Tensor:
    """1 − mean soft Dice over the classes present in the target.

    ``logits`` is ``[N, C, *spatial]``. By default the classes are mutually exclusive: the
    prediction is ``softmax`` over C and ``target`` is integer labels ``[N, *spatial]`` (or
    per-class maps ``[N, C, *spatial]``); class 0 is background and skipped unless
    ``include_background``. With ``multilabel=True`` each channel is an independent (possibly
    overlapping) region scored through a ``sigmoid`` against a ``[N, C, *spatial]`` 0/1 target
    (BraTS WT/TC/ET), and every channel counts.

    Soft Dice per class is (2·Σ p·g + smooth) / (Σ p + Σ g + smooth), the sums taken over the whole
    batch (``batch_dice``) or per image. A class absent from the target (in the batch, or in that
    image) is left out of the mean instead of scoring a meaningless 0 or 1; its false positives
    are left to the cross-entropy term this loss is paired with. When no class is present the
    loss is 0. Computed in float32 with autocast off (float64 inputs stay
    float64); returns a scalar.
    """
    where = "dice_loss"
    check_tensor(logits, f"{where}(logits)", (3, 4, 5))
    check(
        isinstance(target, torch.Tensor),
        f"{where}(target)",
        f"expected a torch.Tensor, got {type(target).__name__}",
        "convert it with torch.as_tensor",
    )
    check_positive(smooth, f"{where}(smooth)")
    check(
        multilabel or logits.shape[1] >= 2,
        f"{where}(logits)",
        f"softmax Dice needs at least 2 channels (background + a class), got {logits.shape[1]}",
        "add a background channel or pass multilabel=True for sigmoid regions",
    )
    with full_precision(logits):
        logits32 = upcast(logits)
        probs = torch.sigmoid(logits32) if multilabel else torch.softmax(logits32, dim=1)
        truth = _class_targets(logits32, target, multilabel)
        if not multilabel and not include_background:
            probs, truth = probs[:, 1:], truth[:, 1:]
        reduce_dims = [0, *range(2, probs.dim())] if batch_dice else list(range(2, probs.dim()))
        overlap = (probs * truth).sum(dim=reduce_dims)
        predicted = probs.sum(dim=reduce_dims)
        actual = truth.sum(dim=reduce_dims)
        dice = (2.0 * overlap + smooth) / (predicted + actual + smooth)
        present = actual > 0
        n_present = present.sum()
        return ((1.0 - dice) * present).sum() / n_present.clamp(min=1)
