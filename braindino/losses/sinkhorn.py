"""Sinkhorn–Knopp teacher targets (DINOv3/SwAV): balanced soft assignments to prototypes."""

from __future__ import annotations

import torch
import torch.distributed as dist

from braindino.losses._common import check, check_positive, check_tensor, full_precision, upcast


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _global_logsumexp_over_rows(log_q: torch.Tensor) -> torch.Tensor:
    """log Σ_n exp(log_q[n, k]) over the rows of every process, per column k → [K]."""
    if log_q.shape[0] == 0:  # a rank may hold no rows; the others still need its all-reduces
        col_max = log_q.new_full(log_q.shape[1:], float("-inf"))
    else:
        col_max = log_q.max(dim=0).values
    if _distributed():
        dist.all_reduce(col_max, op=dist.ReduceOp.MAX)
    col_sum = torch.exp(log_q - col_max).sum(dim=0)  # >= 1 where this rank holds the column max
    if _distributed():
        dist.all_reduce(col_sum, op=dist.ReduceOp.SUM)
    return col_max + torch.log(col_sum)


@torch.no_grad()
def sinkhorn_knopp(
    teacher_logits: torch.Tensor, temperature: float, iterations: int = 3
) -> torch.Tensor:
    """Turn teacher logits ``[N, K]`` into target probabilities ``[N, K]`` balanced over prototypes.

    Starting from ``exp(logits / temperature)``, each iteration rescales every prototype column to
    equal total mass over the batch and then every row to sum to 1, so the result is a soft,
    near-uniform partition of the batch over the ``K`` prototypes (each column holds about
    ``N / K`` mass) and each row is a probability distribution. When ``torch.distributed`` is
    initialised the column sums run over the rows of all processes (the global batch); ranks may
    hold different numbers of rows, and every rank must call this function (it all-reduces).

    The iterations run in the log domain in float32 (float64 stays float64), so low temperatures
    (0.04) and bf16 inputs neither overflow nor leave an empty column; the constant factors of
    the textbook form (1/K, 1/N) cancel in the final row normalisation. No gradient flows
    (teacher side). Returns float32 (float64 for float64 input).
    """
    where = "sinkhorn_knopp"
    check_tensor(teacher_logits, f"{where}(teacher_logits)", 2)
    check_positive(temperature, f"{where}(temperature)")
    check(
        isinstance(iterations, int) and not isinstance(iterations, bool) and iterations >= 1,
        f"{where}(iterations)",
        f"must be an integer >= 1, got {iterations!r}",
        "use the DINOv3 default of 3",
    )
    with full_precision(teacher_logits):
        log_q = upcast(teacher_logits.detach()) / float(temperature)
        for _ in range(iterations):
            log_q = log_q - _global_logsumexp_over_rows(log_q)  # every prototype: equal mass
            log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True)  # every row: sums to 1
        return torch.exp(log_q)
