"""BrainDINO's classification head: mean over slices → LayerNorm → Linear → GELU → Linear."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from braindino.heads._checks import check_labels, check_positive_int, check_slice_features
from braindino.heads.pooling import masked_mean, mlp, parameter_dtype


class MeanPoolHead(nn.Module):
    """Mean-pool the slice features of each volume, then an MLP to ``out_dim`` logits.

    ``forward(features [B, S, D], padding_mask [B, S] | None)`` returns ``{"logits": [B, out_dim]}``
    (padding_mask is True on padding slices). ``loss`` is cross-entropy on integer labels.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 256, dropout: float = 0.0):
        super().__init__()
        self.in_dim = check_positive_int(in_dim, "MeanPoolHead(in_dim)")
        self.out_dim = check_positive_int(out_dim, "MeanPoolHead(out_dim)")
        self.mlp = mlp(in_dim, hidden, out_dim, dropout)

    def forward(self, features: Tensor, padding_mask: Tensor | None = None) -> dict[str, Tensor]:
        """Class logits for ``[B, S, D]`` slice features."""
        features, padding_mask = check_slice_features(
            features, padding_mask, "MeanPoolHead", self.in_dim
        )
        pooled = masked_mean(features.to(parameter_dtype(self)), padding_mask)
        return {"logits": self.mlp(pooled)}

    def loss(self, outputs: dict[str, Tensor], labels: Tensor) -> Tensor:
        """Cross-entropy of ``outputs["logits"]`` against ``[B]`` integer labels."""
        logits = outputs["logits"]
        labels = check_labels(labels, logits.shape[0], "MeanPoolHead.loss")
        return F.cross_entropy(logits, labels.to(logits.device))
