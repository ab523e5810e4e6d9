"""Pooling of per-slice features into one vector per volume: masked mean and soft attention."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from braindino.heads._checks import check_positive_int, check_slice_features, require


def masked_mean(features: Tensor, padding_mask: Tensor | None = None) -> Tensor:
    """Mean of ``[B, S, D]`` slice features over the unpadded slices of each volume → ``[B, D]``.

    ``padding_mask`` is a bool ``[B, S]`` with True on padding slices (absent: no padding).
    """
    if padding_mask is None:
        return features.mean(dim=1)
    keep = (~padding_mask).to(features.dtype).unsqueeze(-1)
    return (features * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)


class MeanPooling(nn.Module):
    """Parameter-free masked mean over slices; returns ``(pooled [B, D], None)``."""

    def forward(
        self, features: Tensor, padding_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Pool ``[B, S, D]`` features over unpadded slices."""
        return masked_mean(features, padding_mask), None


class AttentionPooling(nn.Module):
    """DinoAtten3D soft attention over slices: α = softmax_i(w₂ᵀ tanh(W₁h_i + b₁)), z = Σ α_i h_i.

    The published score also adds a scalar bias b₂; a softmax is unchanged by adding the same
    number to every score, so b₂ would get an exactly zero gradient and never train. It is left
    out, which gives identical weights with every parameter trainable. Padding slices get
    weight 0 and each volume's weights sum to 1.
    """

    def __init__(self, in_dim: int, attn_dim: int = 64):
        super().__init__()
        check_positive_int(in_dim, "AttentionPooling(in_dim)")
        check_positive_int(attn_dim, "AttentionPooling(attn_dim)")
        self.score_hidden = nn.Linear(in_dim, attn_dim)
        self.score = nn.Linear(attn_dim, 1, bias=False)

    def forward(
        self, features: Tensor, padding_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Return ``(pooled [B, D], attention [B, S])`` for ``[B, S, D]`` features."""
        scores = self.score(torch.tanh(self.score_hidden(features))).squeeze(-1)
        if padding_mask is not None:
            scores = scores.masked_fill(padding_mask, float("-inf"))
        attention = torch.softmax(scores, dim=1)
        pooled = torch.einsum("bs,bsd->bd", attention, features)
        return pooled, attention


POOLINGS = ("mean", "attention")


def make_pooling(kind: str, in_dim: int, attn_dim: int, where: str) -> nn.Module:
    """Build the ``"mean"`` or ``"attention"`` slice pooling for a head."""
    require(
        kind in POOLINGS,
        f"{where}(pooling)",
        f"unknown pooling {kind!r}",
        f"use one of {', '.join(POOLINGS)}",
    )
    return MeanPooling() if kind == "mean" else AttentionPooling(in_dim, attn_dim)


def mlp(
    in_dim: int, hidden: int, out_dim: int, dropout: float = 0.0, final_bias: bool = True
) -> nn.Sequential:
    """BrainDINO's head MLP: LayerNorm → Linear → GELU → (Dropout) → Linear.

    ``final_bias=False`` drops the last layer's bias, for losses that ignore a constant shift of
    the output (a Cox partial likelihood), where that bias would never receive a gradient.
    """
    check_positive_int(hidden, "mlp(hidden)")
    check_positive_int(out_dim, "mlp(out_dim)")
    require(
        isinstance(dropout, (int, float)) and 0.0 <= float(dropout) < 1.0,
        "mlp(dropout)",
        f"must be in [0, 1), got {dropout!r}",
        "pass a dropout probability such as 0.0 or 0.1",
    )
    return nn.Sequential(
        nn.LayerNorm(in_dim),
        nn.Linear(in_dim, hidden),
        nn.GELU(),
        nn.Dropout(float(dropout)),
        nn.Linear(hidden, out_dim, bias=final_bias),
    )


def parameter_dtype(module: nn.Module) -> torch.dtype:
    """The floating dtype of a module's parameters (float32 when it has none)."""
    for parameter in module.parameters():
        return parameter.dtype
    return torch.float32


class PooledScalarHead(nn.Module):
    """Slice pooling (``"mean"`` or ``"attention"``) → MLP → one value per volume.

    ``forward(features [B, S, D], padding_mask)`` returns ``{output: [B]}`` plus ``"attention":
    [B, S]`` with attention pooling. Subclasses name the ``output`` and add their ``loss``;
    ``final_bias = False`` drops the last layer's bias for losses blind to a constant shift.
    """

    output = "prediction"
    final_bias = True

    def __init__(
        self,
        in_dim: int,
        pooling: str = "mean",
        hidden: int = 256,
        attn_dim: int = 64,
        dropout: float = 0.0,
    ):
        super().__init__()
        where = type(self).__name__
        self.in_dim = check_positive_int(in_dim, f"{where}(in_dim)")
        self.pooling = make_pooling(pooling, in_dim, attn_dim, where)
        self.mlp = mlp(in_dim, hidden, 1, dropout, final_bias=self.final_bias)

    def forward(self, features: Tensor, padding_mask: Tensor | None = None) -> dict[str, Tensor]:
        """The per-volume value (and attention, if any) for ``[B, S, D]`` slice features."""
        name = type(self).__name__
        features, padding_mask = check_slice_features(features, padding_mask, name, self.in_dim)
        pooled, attention = self.pooling(features.to(parameter_dtype(self)), padding_mask)
        outputs = {self.output: self.mlp(pooled).squeeze(-1)}
        if attention is not None:
            outputs["attention"] = attention
        return outputs
