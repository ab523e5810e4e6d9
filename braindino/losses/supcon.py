"""Supervised contrastive loss (Khosla et al.) on L2-normalised embeddings, as in DinoAtten3D."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from braindino.losses._common import (
    check_labelled_embeddings,
    check_positive,
    full_precision,
    upcast,
)


def supcon_loss(
    embeddings: torch.Tensor, labels: torch.Tensor, temperature: float = 0.07
) -> torch.Tensor:
    """Supervised contrastive loss of ``[N, D]`` embeddings with ``[N]`` class labels.

    With ê the L2-normalised embeddings, each anchor i with positives P(i) (same label, ≠ i)
    scores −1/|P(i)| Σ_{p∈P(i)} log(exp(ê_i·ê_p/τ) / Σ_{a≠i} exp(ê_i·ê_a/τ)). Anchors without
    positives contribute 0 and the sum is divided by **all** N anchors (so a batch where few
    samples share a label gives a proportionally smaller loss). Fewer than 2 samples → 0 (no NaN).
    Computed in float32 with autocast off (float64 inputs stay
    float64); returns a scalar.
    """
    where = "supcon_loss"
    n = check_labelled_embeddings(embeddings, labels, where)
    check_positive(temperature, f"{where}(temperature)")
    if n < 2:
        return upcast(embeddings).sum() * 0.0
    with full_precision(embeddings):
        unit = F.normalize(upcast(embeddings), p=2, dim=-1)
        logits = unit @ unit.T / float(temperature)
        self_pair = torch.eye(n, dtype=torch.bool, device=logits.device)
        log_denominator = torch.logsumexp(logits.masked_fill(self_pair, float("-inf")), dim=1)
        log_prob = logits - log_denominator[:, None]
        labels = labels.to(logits.device)
        positive = (labels[:, None] == labels[None, :]) & ~self_pair
        n_positive = positive.sum(dim=1)
        per_anchor = -(log_prob * positive).sum(dim=1) / n_positive.clamp(min=1)
        return per_anchor.sum() / n
