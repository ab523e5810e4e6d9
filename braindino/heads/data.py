"""Per-volume slice features with targets, padded to one tensor for head training."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from braindino.heads._checks import require


def pad_slices(per_volume: Sequence[Any]) -> tuple[Tensor, Tensor]:
    """Stack ``[S_i, D]`` slice features of N volumes into ``[N, S_max, D]`` plus a padding mask.

    The mask is bool ``[N, S_max]``, True on the padding slices added after a volume's own.
    Keeps the input dtype (float16 features from the cache stay float16; heads upcast).
    """
    require(
        len(per_volume) >= 1,
        "pad_slices(per_volume)",
        "no volumes given",
        "pass one [slices, feature_dim] array per volume",
    )
    tensors = [torch.as_tensor(np.asarray(item)) for item in per_volume]
    for index, tensor in enumerate(tensors):
        require(
            tensor.dim() == 2 and tensor.shape[0] >= 1 and tensor.is_floating_point(),
            f"pad_slices(per_volume[{index}])",
            f"expected a float [slices, feature_dim] array, got {tensor.dtype} of shape "
            f"{tuple(tensor.shape)}",
            "pass per-slice features of each volume as a 2-D float array",
        )
        require(
            tensor.shape[1] == tensors[0].shape[1],
            f"pad_slices(per_volume[{index}])",
            f"feature width {tensor.shape[1]} differs from volume 0's {tensors[0].shape[1]}",
            "encode every volume with the same encoder and feature choice",
        )
    longest = max(tensor.shape[0] for tensor in tensors)
    width = tensors[0].shape[1]
    features = tensors[0].new_zeros(len(tensors), longest, width)
    padding_mask = torch.ones(len(tensors), longest, dtype=torch.bool)
    for index, tensor in enumerate(tensors):
        features[index, : tensor.shape[0]] = tensor.to(features.dtype)
        padding_mask[index, : tensor.shape[0]] = False
    return features, padding_mask


@dataclass(frozen=True)
class HeadData:
    """Features ``[N, S, D]``, targets ``[N, ...]`` and an optional padding mask ``[N, S]``.

    Targets are class labels (long ``[N]``), scaled regression targets (float ``[N]``) or
    survival targets (``[N, 2]`` from :func:`survival_targets`).
    """

    features: Tensor
    targets: Tensor
    padding_mask: Tensor | None = None

    def __post_init__(self) -> None:
        require(
            isinstance(self.features, Tensor) and self.features.dim() == 3,
            "HeadData(features)",
            "expected a [N, S, D] tensor",
            "pad per-volume features with HeadData.from_slices or pad_slices",
        )
        n = self.features.shape[0]
        require(
            isinstance(self.targets, Tensor)
            and self.targets.dim() >= 1
            and self.targets.shape[0] == n,
            "HeadData(targets)",
            f"expected a tensor with {n} rows (one per volume)",
            "pass one target per volume, e.g. torch.as_tensor(labels)",
        )
        require(
            self.padding_mask is None
            or (
                isinstance(self.padding_mask, Tensor)
                and self.padding_mask.dtype == torch.bool
                and self.padding_mask.shape == self.features.shape[:2]
            ),
            "HeadData(padding_mask)",
            f"expected None or a bool tensor of shape {tuple(self.features.shape[:2])}",
            "pass the mask returned by pad_slices (True on padding slices)",
        )

    @classmethod
    def from_slices(cls, per_volume: Sequence[Any], targets: Any) -> HeadData:
        """Pad ``[S_i, D]`` per-volume features (see :func:`pad_slices`) and attach targets."""
        features, padding_mask = pad_slices(per_volume)
        return cls(features, torch.as_tensor(targets), padding_mask if padding_mask.any() else None)

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def inputs(self, index: Tensor, device: torch.device) -> tuple[Tensor, Tensor | None]:
        """The head's inputs for the volumes at ``index``: features and padding mask on
        ``device`` (what :func:`~braindino.heads.fit.fit_head` feeds the head per batch)."""
        features = self.features[index].to(device, non_blocking=True)
        mask = None if self.padding_mask is None else self.padding_mask[index].to(device)
        return features, mask


def as_head_data(data: Any, where: str) -> Any:
    """Accept a :class:`HeadData` or a tuple ``(features, targets[, padding_mask])``; also any
    data with ``targets``, ``len()`` and ``inputs(index, device)`` (a model's own batches, e.g.
    the slices an adapted encoder reads), passed through as it is."""
    if isinstance(data, HeadData) or (hasattr(data, "inputs") and hasattr(data, "targets")):
        return data
    require(
        isinstance(data, (tuple, list)) and len(data) in (2, 3),
        where,
        f"expected HeadData or (features, targets[, padding_mask]), got {type(data).__name__}",
        "wrap the split as HeadData(features, targets, padding_mask)",
    )
    return HeadData(*data)
