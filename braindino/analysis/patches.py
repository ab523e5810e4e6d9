"""The patch grid of slices: one class per patch (``patch_labels``), which patches are image
foreground, slices enlarged by an integer factor, and a slice placed on a larger canvas (the
whole-patch shifts of the dense probe)."""

from __future__ import annotations

import numpy as np
import torch

from braindino.errors import ConfigError

RULES = ("majority", "centre", "structure")
STRUCTURE_SHARE = 0.25  # rule "structure": the share of a patch non-zero labels must cover


def patch_labels(
    labels: np.ndarray, patch: int, n_classes: int, rule: str = "majority"
) -> np.ndarray:
    """One class per patch of label maps ``[S, H, W]`` -> ``[S, H/patch, W/patch]``.

    ``majority``: the most frequent class of the patch's pixels (ties: the lower index);
    ``centre``: the class of its centre pixel (``patch // 2``, ``patch // 2``); ``structure``
    (small structures such as tumour sub-regions): the most frequent non-zero class when non-zero
    pixels cover at least ``STRUCTURE_SHARE`` of the patch, else 0.
    """
    if rule not in RULES:
        raise ConfigError(
            f"unknown patch label rule {rule!r}", path="rule", fix="use one of " + ", ".join(RULES)
        )
    s, height, width = labels.shape
    blocks = labels.reshape(s, height // patch, patch, width // patch, patch)
    if rule == "centre":
        return blocks[:, :, patch // 2, :, patch // 2].copy()
    counts = np.stack([(blocks == c).sum(axis=(2, 4)) for c in range(n_classes)])
    if rule == "majority":
        return counts.argmax(axis=0).astype(labels.dtype)
    structure = counts[1:].argmax(axis=0) + 1
    enough = counts[1:].sum(axis=0) >= STRUCTURE_SHARE * patch * patch
    return np.where(enough, structure, 0).astype(labels.dtype)


FOREGROUND_LEVEL = 0.1  # foreground: above min + this share of the (min, 99th percentile) range


def foreground_patches(images: np.ndarray, patch: int) -> np.ndarray:
    """Per patch of slices ``[S, H, W]`` (bool ``[S, h, w]``): whether most of its pixels are
    foreground, i.e. above the slice's minimum (the background after preprocessing) by more
    than ``FOREGROUND_LEVEL`` of the range up to its 99th percentile (above the noise floor)."""
    low = images.min(axis=(1, 2), keepdims=True)
    high = np.percentile(images, 99, axis=(1, 2), keepdims=True)
    above = (images > low + FOREGROUND_LEVEL * (high - low)).astype(np.uint8)
    return patch_labels(above, patch, 2, "majority") > 0


def resize_slices(images: np.ndarray, labels: np.ndarray, factor: int):
    """Slices ``factor`` times larger: images bilinearly, labels by pixel repetition."""
    if factor == 1:
        return images, labels
    x = torch.from_numpy(np.ascontiguousarray(images, np.float32)).unsqueeze(1)
    up = torch.nn.functional.interpolate(
        x, scale_factor=factor, mode="bilinear", align_corners=False
    )
    return up[:, 0].numpy(), labels.repeat(factor, axis=1).repeat(factor, axis=2)


def place(array: np.ndarray, offset: tuple[int, int], margin: int, fill) -> np.ndarray:
    """``array [..., H, W]`` on a canvas ``2 * margin`` larger per side pair, its top-left corner
    at ``offset`` (units of the array's pixels); the rest is ``fill``."""
    *lead, height, width = array.shape
    out = np.full((*lead, height + 2 * margin, width + 2 * margin), fill, dtype=array.dtype)
    out[..., offset[0] : offset[0] + height, offset[1] : offset[1] + width] = array
    return out
