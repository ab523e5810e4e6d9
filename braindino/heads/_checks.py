"""Argument checks shared by the heads: slice features, padding masks, loss targets."""

from __future__ import annotations

import torch
from torch import Tensor

from braindino.errors import BrainDinoError


def require(ok: bool, where: str, problem: str, fix: str) -> None:
    """Raise one ``BrainDinoError`` naming ``where`` (function and argument) unless ``ok``."""
    if not ok:
        raise BrainDinoError(problem, path=where, fix=fix)


def check_slice_features(
    features: object, padding_mask: object, where: str, in_dim: int
) -> tuple[Tensor, Tensor | None]:
    """Validate ``[B, S, D]`` features and an optional bool ``[B, S]`` mask (True = padding)."""
    require(
        isinstance(features, Tensor) and features.dim() == 3,
        f"{where}(features)",
        f"expected a [B, S, D] tensor, got {_describe(features)}",
        "stack per-slice features as [volumes, slices, feature_dim] (see HeadData.from_slices)",
    )
    assert isinstance(features, Tensor)
    require(
        features.shape[-1] == in_dim,
        f"{where}(features)",
        f"feature width {features.shape[-1]} differs from the head's in_dim {in_dim}",
        "build the head with in_dim equal to the encoder's feature width",
    )
    require(
        features.shape[0] >= 1 and features.shape[1] >= 1,
        f"{where}(features)",
        f"shape {tuple(features.shape)} holds no volume or no slice",
        "pass at least one volume with at least one slice",
    )
    if padding_mask is None:
        return features, None
    require(
        isinstance(padding_mask, Tensor)
        and padding_mask.dtype == torch.bool
        and tuple(padding_mask.shape) == tuple(features.shape[:2]),
        f"{where}(padding_mask)",
        f"expected a bool tensor of shape {tuple(features.shape[:2])}, got "
        f"{_describe(padding_mask)}",
        "pass padding_mask[b, s] = True where slice s of volume b is padding",
    )
    assert isinstance(padding_mask, Tensor)
    empty = padding_mask.all(dim=1)
    require(
        not bool(empty.any()),
        f"{where}(padding_mask)",
        f"volume(s) {empty.nonzero().flatten().tolist()[:5]} have every slice marked as padding",
        "leave at least one real slice per volume (True marks padding, not valid slices)",
    )
    return features, padding_mask.to(features.device)


def check_labels(labels: object, n: int, where: str) -> Tensor:
    """Validate ``[N]`` integer class labels for a batch of ``n`` outputs."""
    require(
        isinstance(labels, Tensor) and labels.dim() == 1 and labels.shape[0] == n,
        f"{where}(labels)",
        f"expected {n} integer class labels as a [N] tensor, got {_describe(labels)}",
        "pass torch.as_tensor(labels, dtype=torch.long), one label per volume",
    )
    assert isinstance(labels, Tensor)
    require(
        not labels.is_floating_point() and not labels.is_complex(),
        f"{where}(labels)",
        f"class labels must be integers, got {labels.dtype}",
        "encode classes as 0..C-1 and pass a long tensor",
    )
    return labels.long()


def check_positive_int(value: object, where: str) -> int:
    """Require an integer >= 1 (sizes, counts)."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    require(ok, where, f"must be an integer >= 1, got {value!r}", "pass a positive integer")
    return int(value)  # type: ignore[arg-type]


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"{value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__
