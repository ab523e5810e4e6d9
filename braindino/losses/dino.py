"""DINO loss: cross-entropy of teacher targets against student crop predictions, per crop pair."""

from __future__ import annotations

import torch

from braindino.losses._common import check, check_positive, check_tensor, full_precision, upcast
from braindino.losses.soft_cross_entropy import FactoredLogits, check_logits, soft_cross_entropy


def dino_loss(
    student_logits: torch.Tensor | FactoredLogits,
    teacher_probs: torch.Tensor,
    student_temperature: float = 0.1,
    ignore_diagonal: bool = True,
) -> torch.Tensor:
    """Mean over (student crop, teacher crop) pairs of −Σ_k p_t·log softmax(s/τ), averaged over N.

    ``student_logits`` is ``[S, N, K]`` (S crops of N images; the first T crops are the global
    ones), ``teacher_probs`` is ``[T, N, K]`` (e.g. from :func:`sinkhorn_knopp` on the teacher's
    global crops). With ``ignore_diagonal`` the pairs (i, i) for i < T — a student global crop
    against the teacher's view of the same crop — are skipped, leaving S·T − T pairs; otherwise
    all S·T pairs count. Teacher probabilities are a fixed target (no gradient flows into them).
    Computed in float32 with autocast off (float64 inputs stay float64); returns a scalar.

    ``student_logits`` may also be :class:`braindino.losses.FactoredLogits` with ``[S, N, D]``
    features (the DINO head's bottleneck from ``DINOHead(..., factored=True)``) and ``[K, D]``
    prototypes: the same loss without holding the ``[S, N, K]`` logits or their gradient.

    The cross-entropy is linear in the target, so each student row is scored once against the
    sum of the teacher crops it is paired with (all T, or T − 1 for a global crop when the
    diagonal is ignored) and the pair count divides the total.
    """
    where = "dino_loss"
    check_logits(student_logits, where, "student_logits", ndim=3)
    check_tensor(teacher_probs, f"{where}(teacher_probs)", 3)
    check_positive(student_temperature, f"{where}(student_temperature)")
    S, N, K = student_logits.shape
    T = teacher_probs.shape[0]
    check(
        teacher_probs.shape[1:] == (N, K) and 1 <= T <= S,
        f"{where}(teacher_probs)",
        f"shape {tuple(teacher_probs.shape)} does not fit student_logits {(S, N, K)}; "
        "expected [T, N, K] with 1 <= T <= S",
        "pass the teacher's global-crop targets with the same batch and prototype sizes, "
        "and put the student's global crops first",
    )
    check(
        N >= 1,
        f"{where}(student_logits)",
        "the batch is empty (N = 0)",
        "call the loss with at least one image",
    )
    n_pairs = S * T - T if ignore_diagonal else S * T
    check(
        n_pairs > 0,
        f"{where}(ignore_diagonal)",
        "no crop pairs are left: one student crop against its own teacher crop only",
        "give the student more crops or pass ignore_diagonal=False",
    )
    factored = isinstance(student_logits, FactoredLogits)
    reference = student_logits.features if factored else student_logits
    with full_precision(reference):
        if factored:
            features = student_logits.features.reshape(S * N, -1)
            logits = student_logits._replace(features=features)
        else:
            logits = upcast(student_logits).reshape(S * N, K)
        acc = torch.float64 if reference.dtype == torch.float64 else torch.float32
        targets = _paired_targets(teacher_probs.detach().to(acc), S, ignore_diagonal)
        weights = torch.full((S * N,), 1.0 / (n_pairs * N), dtype=acc, device=reference.device)
        return soft_cross_entropy(logits, targets.view(S * N, K), weights, student_temperature)


def _paired_targets(teacher_probs: torch.Tensor, crops: int, ignore_diagonal: bool) -> torch.Tensor:
    """``[S, N, K]``: for each of ``crops`` student crops, the sum of the teacher crops it is
    paired with (all T; without its own crop i for i < T when ``ignore_diagonal``)."""
    T, N, K = teacher_probs.shape
    total = teacher_probs.sum(dim=0)
    targets = total.expand(crops, N, K).clone()
    if ignore_diagonal:
        targets[:T] -= teacher_probs
    return targets
