"""Row-weighted soft-target cross-entropy with a temperature, as one memory-lean autograd op.

``Σ_i w_i · (−Σ_k p_ik · log softmax(s_i / τ)_k)`` over ``[M, K]`` rows. With K = 65,536
prototypes the loss is memory-bound, so the op keeps the passes over ``[M, K]`` few: the forward
computes ``z = s / τ``, its row log-sum-exp and ``Σ_k p·z`` (a batched dot product, no product
matrix) and keeps only per-row values; the backward rebuilds ``softmax(z)`` in one buffer and turns
it in place into ``(softmax(z)·Σ_k p − p)·w/τ``.
Autograd's log_softmax → multiply → sum chain materialises about twice as many ``[M, K]`` tensors.
"""

from __future__ import annotations

import torch


class _SoftCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, weights, inv_temperature):
        z = logits * inv_temperature
        lse = torch.logsumexp(z, dim=1)
        target_mass = targets.sum(dim=1)
        dot = torch.bmm(targets.unsqueeze(1), z.unsqueeze(2)).view(-1)
        ctx.save_for_backward(logits, targets, weights, lse, target_mass)
        ctx.inv_temperature = inv_temperature
        return (weights * (target_mass * lse - dot)).sum()

    @staticmethod
    def backward(ctx, grad_output):
        logits, targets, weights, lse, target_mass = ctx.saved_tensors
        row_scale = (grad_output * weights * ctx.inv_temperature).unsqueeze(1)
        grad = (logits * ctx.inv_temperature).sub_(lse.unsqueeze(1)).exp_()  # softmax(z)
        grad.mul_(target_mass.unsqueeze(1)).sub_(targets).mul_(row_scale)
        return grad, None, None, None


def soft_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``Σ_i weights[i] · (−Σ_k targets[i, k] · log softmax(logits[i] / temperature)_k)``.

    ``logits`` and ``targets`` are ``[M, K]`` of one floating dtype, ``weights`` ``[M]``; the
    gradient flows into ``logits`` only (targets and weights are constants). Returns a scalar.
    """
    targets = targets.detach().to(logits.dtype)
    weights = weights.detach().to(logits.dtype)
    return _SoftCrossEntropy.apply(logits, targets, weights, 1.0 / float(temperature))
