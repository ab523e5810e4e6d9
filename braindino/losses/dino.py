"""DINO loss: cross-entropy of teacher targets against student crop predictions, per crop pair."""

from __future__ import annotations

import torch

from braindino.losses._common import check, check_positive, check_tensor, full_precision, upcast


def check_dino_shapes(
    student_shape: tuple[int, ...], teacher_probs: torch.Tensor, ignore_diagonal: bool
) -> int:
    """Check ``[S, N, K]`` student logits against ``[T, N, K]`` teacher targets; return the
    number of (student crop, teacher crop) pairs the loss averages over."""
    where = "dino_loss"
    S, N, K = student_shape
    T = teacher_probs.shape[0]
    check(
        teacher_probs.shape[1:] == (N, K) and 1 <= T <= S,
        f"{where}(teacher_probs)",
        f"shape {tuple(teacher_probs.shape)} does not fit student_logits {(S, N, K)}; "
        "expected [T, N, K] with 1 <= T <= S",
        "pass the teacher's global-crop targets with the same batch and prototype sizes, "
        "and put the student's global crops first",
    )
    check(N >= 1, f"{where}(student_logits)", "the batch is empty (N = 0)", "pass an image")
    n_pairs = S * T - T if ignore_diagonal else S * T
    check(
        n_pairs > 0,
        f"{where}(ignore_diagonal)",
        "no crop pairs are left: one student crop against its own teacher crop only",
        "give the student more crops or pass ignore_diagonal=False",
    )
    return n_pairs


def dino_loss(
    student_logits: torch.Tensor,
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
    """
    check_tensor(student_logits, "dino_loss(student_logits)", 3)
    check_tensor(teacher_probs, "dino_loss(teacher_probs)", 3)
    check_positive(student_temperature, "dino_loss(student_temperature)")
    n_pairs = check_dino_shapes(tuple(student_logits.shape), teacher_probs, ignore_diagonal)
    with full_precision(student_logits):
        log_p = torch.log_softmax(upcast(student_logits) / student_temperature, dim=-1)
        targets = teacher_probs.detach().to(log_p.dtype)
        # cross[t, s]: teacher crop t against student crop s, summed over the N images
        cross = -torch.einsum("tnk,snk->ts", targets, log_p)
        total = cross.sum() - cross.diagonal().sum() if ignore_diagonal else cross.sum()
        return total / (n_pairs * student_logits.shape[1])
