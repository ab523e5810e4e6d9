"""DinoAtten3D's slice-attention classification head and its composite loss."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from braindino.heads._checks import (
    check_labels,
    check_positive_int,
    check_slice_features,
    require,
)
from braindino.heads.pooling import AttentionPooling, parameter_dtype
from braindino.losses import class_variance_loss, supcon_loss


class AttentionPoolingHead(nn.Module):
    """Soft attention over slices → embedding MLP (ReLU) → linear classifier.

    Per volume: α = softmax over unpadded slices of w₂ᵀ tanh(W₁h_i + b₁) (see
    :class:`AttentionPooling`), z = Σ α_i h_i, e = MLP(z) with widths ``embed_dims`` and ReLU
    between layers, logits = Linear(e). ``forward`` returns ``{"logits": [B, C], "embedding":
    [B, embed_dims[-1]], "attention": [B, S]}``; attention rows sum to 1 and are 0 on padding.

    :meth:`composite_loss` is ``ce_weight·CE + supcon_weight·SupCon(e, τ) +
    variance_weight·class-variance(e)`` (defaults 1, 1, 0.1, τ = 0.07), as in DinoAtten3D.
    Every parameter takes part in the loss, so an optimiser built from ``head.parameters()``
    trains all of them (the published script left pooling and classifier out).
    """

    def __init__(
        self,
        in_dim: int,
        num_classes: int,
        attn_dim: int = 64,
        embed_dims: tuple[int, ...] = (256, 128),
        dropout: float = 0.0,
        ce_weight: float = 1.0,
        supcon_weight: float = 1.0,
        variance_weight: float = 0.1,
        temperature: float = 0.07,
    ):
        super().__init__()
        where = "AttentionPoolingHead"
        self.in_dim = check_positive_int(in_dim, f"{where}(in_dim)")
        self.num_classes = check_positive_int(num_classes, f"{where}(num_classes)")
        require(
            len(embed_dims) >= 1,
            f"{where}(embed_dims)",
            "needs at least one width",
            "use the DinoAtten3D default (256, 128)",
        )
        weights = {"ce": ce_weight, "supcon": supcon_weight, "variance": variance_weight}
        for name, value in weights.items():
            require(
                isinstance(value, (int, float)) and float(value) >= 0,
                f"{where}({name}_weight)",
                f"must be a number >= 0, got {value!r}",
                "pass a non-negative loss weight",
            )
        require(
            isinstance(temperature, (int, float)) and float(temperature) > 0,
            f"{where}(temperature)",
            f"must be > 0, got {temperature!r}",
            "use the SupCon default 0.07",
        )
        self.pooling = AttentionPooling(in_dim, attn_dim)
        layers: list[nn.Module] = []
        width = in_dim
        for index, out in enumerate(embed_dims):
            check_positive_int(out, f"{where}(embed_dims)")
            if index > 0:
                layers += [nn.ReLU(), nn.Dropout(float(dropout))]
            layers.append(nn.Linear(width, out))
            width = out
        self.embed = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)
        self.weights = {name: float(value) for name, value in weights.items()}
        self.temperature = float(temperature)

    def forward(self, features: Tensor, padding_mask: Tensor | None = None) -> dict[str, Tensor]:
        """Logits, embedding and slice attention for ``[B, S, D]`` slice features."""
        features, padding_mask = check_slice_features(
            features, padding_mask, "AttentionPoolingHead", self.in_dim
        )
        pooled, attention = self.pooling(features.to(parameter_dtype(self)), padding_mask)
        embedding = self.embed(pooled)
        return {
            "logits": self.classifier(embedding),
            "embedding": embedding,
            "attention": attention,
        }

    def loss_terms(self, outputs: dict[str, Tensor], labels: Tensor) -> dict[str, Tensor]:
        """The unweighted ``ce``, ``supcon`` and ``variance`` terms of the composite loss."""
        logits = outputs["logits"]
        labels = check_labels(labels, logits.shape[0], "AttentionPoolingHead.composite_loss")
        labels = labels.to(logits.device)
        embedding = outputs["embedding"]
        return {
            "ce": F.cross_entropy(logits, labels),
            "supcon": supcon_loss(embedding, labels, self.temperature),
            "variance": class_variance_loss(embedding, labels),
        }

    def composite_loss(self, outputs: dict[str, Tensor], labels: Tensor) -> Tensor:
        """Weighted sum CE + SupCon + 0.1·class-variance (weights set at construction)."""
        terms = self.loss_terms(outputs, labels)
        return sum(self.weights[name] * value for name, value in terms.items())  # type: ignore[return-value]

    def loss(self, outputs: dict[str, Tensor], labels: Tensor) -> Tensor:
        """The training loss used by :func:`fit_head` by default: :meth:`composite_loss`."""
        return self.composite_loss(outputs, labels)
