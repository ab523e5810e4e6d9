"""Class-variance loss: pulls L2-normalised embeddings of one class toward their class mean."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from braindino.losses._common import check_labelled_embeddings, full_precision, upcast

REDUCTIONS = ("mean", "sum")


def class_variance_loss(
    embeddings: torch.Tensor, labels: torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
    """Within-class spread of ``[N, D]`` embeddings with ``[N]`` labels, averaged over classes.

    With ê the L2-normalised embeddings and μ_c the mean of class c's ê in the batch, each class
    with at least 2 samples scores the squared deviations (ê_i − μ_c)² of its samples:
    - ``reduction="mean"`` (default; DinoAtten3D's published definition, for which its weight
      0.1 was chosen): the mean over the class's samples *and* the D dimensions;
    - ``"sum"``: summed over the D dimensions, averaged over the samples (mean_{i∈c}
      ‖ê_i − μ_c‖² = 1 − ‖μ_c‖²), D times the published value.
    The loss is the mean over those classes, and 0 (no NaN) when no class has 2 samples.
    Computed in float32 with autocast off (float64 inputs stay float64); returns a scalar.
    """
    where = "class_variance_loss"
    if reduction not in REDUCTIONS:
        raise ValueError(f"{where}: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    n = check_labelled_embeddings(embeddings, labels, where)
    if n < 2:
        return upcast(embeddings).sum() * 0.0
    with full_precision(embeddings):
        unit = F.normalize(upcast(embeddings), p=2, dim=-1)
        classes, class_index = torch.unique(labels.to(unit.device), return_inverse=True)
        n_classes = classes.shape[0]
        counts = torch.bincount(class_index, minlength=n_classes).to(unit.dtype)
        sums = unit.new_zeros(n_classes, unit.shape[1]).index_add(0, class_index, unit)
        means = sums / counts[:, None]
        squared_deviation = (unit - means[class_index]).square().sum(dim=1)
        per_class = unit.new_zeros(n_classes).index_add(0, class_index, squared_deviation)
        per_class = per_class / counts
        if reduction == "mean":
            per_class = per_class / unit.shape[1]
        kept = counts >= 2
        n_kept = kept.sum()
        return (per_class * kept).sum() / n_kept.clamp(min=1)
