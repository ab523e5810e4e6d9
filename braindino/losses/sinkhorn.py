"""Sinkhorn–Knopp teacher targets (DINOv3/SwAV): balanced soft assignments to prototypes."""

from __future__ import annotations

import torch
import torch.distributed as dist

from braindino.losses._common import check, check_positive, full_precision, upcast
from braindino.losses.soft_cross_entropy import FactoredLogits, check_logits


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
    teacher_logits: torch.Tensor | FactoredLogits, temperature: float, iterations: int = 3
) -> torch.Tensor:
    """Turn teacher logits ``[N, K]`` into target probabilities ``[N, K]`` balanced over prototypes.

    Starting from ``exp(logits / temperature)``, each iteration rescales every prototype column to
    equal total mass over the batch and then every row to sum to 1, so the result is a soft,
    near-uniform partition of the batch over the ``K`` prototypes (each column holds about
    ``N / K`` mass) and each row is a probability distribution. When ``torch.distributed`` is
    initialised the column sums run over the rows of all processes (the global batch); ranks may
    hold different numbers of rows, and every rank must call this function (it all-reduces).

    The iterations run in the log domain in float32 (float64 stays float64), so low temperatures
    (0.04) and bf16 inputs neither overflow nor leave an empty column. No gradient flows (teacher
    side). Returns float32 (float64 for float64 input).

    ``teacher_logits`` may be :class:`braindino.losses.FactoredLogits` (a head's bottleneck and
    prototypes): the ``[N, K]`` matrix is then built once, scaled in place (temperature and
    prototype norms) and turned into the returned targets in place.
    """
    where = "sinkhorn_knopp"
    check_logits(teacher_logits, where, "teacher_logits")
    factored = isinstance(teacher_logits, FactoredLogits)
    check_positive(temperature, f"{where}(temperature)")
    check(
        isinstance(iterations, int) and not isinstance(iterations, bool) and iterations >= 1,
        f"{where}(iterations)",
        f"must be an integer >= 1, got {iterations!r}",
        "use the DINOv3 default of 3",
    )
    with full_precision(teacher_logits.features if factored else teacher_logits):
        if factored:
            # the product in the features' dtype (bf16 under autocast, like the head's linear)
            features = teacher_logits.features.detach()
            scaled = upcast(features @ teacher_logits.prototypes.detach().to(features.dtype).T)
            scale = teacher_logits.column_scale(scaled.dtype)  # unit prototypes: 1 / ‖W_k‖
            scaled.mul_(scale / float(temperature) if scale is not None else 1 / temperature)
        else:
            scaled = upcast(teacher_logits.detach()) / float(temperature)
        # ``scaled`` is this function's own buffer from here on (the paths below work in place)
        low, high = _global_range(scaled)
        if float(high - low) <= LINEAR_RANGE and scaled.dtype != torch.float16:
            return _sinkhorn_linear(scaled, high, iterations)
        return _sinkhorn_log(scaled, iterations)


def _sinkhorn_log(scaled: torch.Tensor, iterations: int) -> torch.Tensor:
    """Sinkhorn–Knopp in the log domain: safe for any logit range."""
    # Constant factors (1/K, 1/N_global) of the textbook form cancel in the final row
    # normalisation, so each step is a plain log-domain rescaling.
    log_q = scaled
    for _ in range(iterations):
        log_q = log_q - _global_logsumexp_over_rows(log_q)
        log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True)
    return torch.exp(log_q)


# exp(-LINEAR_RANGE) stays a normal float32 (> 1.2e-38) with room for the rescalings.
LINEAR_RANGE = 60.0


def _global_range(scaled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The smallest and largest entry over the rows of every process (one pass: aminmax).

    When the range is at most ``LINEAR_RANGE`` (always for the DINO/iBOT heads, whose logits are
    cosines in [-1, 1]: range ≤ 2 / 0.04 = 50 at the lowest teacher temperature),
    ``exp(scaled - max)`` keeps every entry a normal float and one exp replaces the log domain's
    ~7 passes per iteration; otherwise the log-domain path keeps empty columns impossible.
    """
    if scaled.numel() == 0:
        low, high = scaled.new_full((), float("inf")), scaled.new_full((), float("-inf"))
    else:
        low, high = torch.aminmax(scaled)
    if _distributed():
        pair = torch.stack([-low, high])
        dist.all_reduce(pair, op=dist.ReduceOp.MAX)
        low, high = -pair[0], pair[1]
    return low, high


def _sinkhorn_linear(scaled: torch.Tensor, shift: torch.Tensor, iterations: int) -> torch.Tensor:
    """Sinkhorn–Knopp in the linear domain after one exp with a global max shift.

    The iterates are ``u[:, None] * q * v[None, :]`` with ``q = exp(scaled - shift)`` fixed: each
    half-step updates one scaling vector from a matrix-vector product (a read-only pass over q),
    and q is rescaled once at the end, instead of dividing the whole ``[N, K]`` matrix twice per
    iteration (memory-bound at K = 65,536).
    """
    q = scaled.sub_(shift).exp_()  # in place; shift = the global max
    u = q.new_ones(q.shape[0])
    for _ in range(iterations):
        columns = u @ q  # [K]: column sums of u[:, None] * q
        if _distributed():
            dist.all_reduce(columns, op=dist.ReduceOp.SUM)
        v = columns.mean() / columns  # every column gets the mean mass: no scale drift
        u = 1.0 / (q @ v)  # [N]: each row of u[:, None] * q * v sums to 1
    return q.mul_(v).mul_(u[:, None])
