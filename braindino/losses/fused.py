"""The fused path of the DINO and iBOT losses: the same values and gradients as
:func:`~braindino.losses.dino_loss` and :func:`~braindino.losses.ibot_loss`, without ever
holding the ``[rows, K]`` logits or their gradient.

Switched on by the pretrain config's ``run.fused`` (``auto``: on the CPU); the plain losses are the
reference it is tested against (values and gradients, float64). With K = 65,536 prototypes the
two losses are memory-bound: a DINO/iBOT head's last layer gives its logits as two factors,
:class:`FactoredLogits` (``features @ prototypes.T``), and :func:`factored_cross_entropy` walks
the prototypes in blocks of columns with an online log-sum-exp; the backward turns each block's
logits into its softmax gradient in place and writes that block's prototype gradient directly.
Its temporaries are ``[M, block]`` slabs; only the logits blocks themselves are kept for the
backward (up to ``KEEP_LOGITS_BYTES``; beyond it the backward recomputes them, one extra
``[M, D] x [D, K]`` product).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from braindino.losses._common import check, check_positive, check_tensor, full_precision
from braindino.losses.dino import check_dino_shapes
from braindino.losses.ibot import ibot_token_weights

# Elements per [M, block] slab (16 MB in float32): a few MB of temporaries per block, big enough
# that the block products stay efficient.
SLAB_ELEMENTS = 1 << 22
# The forward keeps the scaled logits blocks for the backward up to this many bytes (the [M, K]
# logits of iBOT at batch 64 are ~1 GB in float32); beyond it the backward recomputes them.
KEEP_LOGITS_BYTES = 1 << 31


class FactoredLogits(NamedTuple):
    """Logits ``features @ prototypes.T`` kept as their factors: ``[M, D]`` and ``[K, D]``.

    With ``normalize=True`` each prototype row is divided by its length first (a DINO head's
    weight-normalised last layer): the logits are then ``features @ unit(prototypes).T``, and the
    consumers fold ``1 / ‖prototype‖`` into a per-column scale instead of building the unit
    matrix.
    """

    features: torch.Tensor
    prototypes: torch.Tensor
    normalize: bool = False

    @property
    def shape(self) -> torch.Size:
        """The shape ``[..., K]`` of the logits these factors stand for (``[M, K]`` for 2-D
        features, ``[S, N, K]`` for DINO's crop-major ``[S, N, D]``)."""
        return torch.Size((*self.features.shape[:-1], self.prototypes.shape[0]))

    def column_scale(self, dtype: torch.dtype) -> torch.Tensor | None:
        """``1 / ‖prototype_k‖`` as ``[K]`` in ``dtype`` (None without ``normalize``)."""
        return _column_scale(self.prototypes, self.normalize, dtype)

    def materialize(self) -> torch.Tensor:
        """The ``[..., K]`` logits (for monitors, tests and small K)."""
        logits = self.features @ self.prototypes.to(self.features.dtype).T
        scale = self.column_scale(logits.dtype)
        return logits if scale is None else logits * scale

    def select(self, index) -> FactoredLogits:
        """The logits of ``features[index]`` (rows, or crops of ``[S, N, D]`` features)."""
        return self._replace(features=self.features[index])


def norm_eps(dtype: torch.dtype) -> float:
    """The smallest row length a normalisation divides by (1e-12; 1e-6 in float16)."""
    return 1e-6 if dtype == torch.float16 else 1e-12


def inverse_row_norms(matrix: torch.Tensor) -> torch.Tensor:
    """``1 / max(‖row‖, eps)`` per row, the factor ``F.normalize`` applies (eps: ``norm_eps``)."""
    return torch.linalg.vector_norm(matrix, dim=-1).clamp_min(norm_eps(matrix.dtype)).reciprocal()


def check_logits(logits: object, function: str, argument: str, ndim: int = 2) -> None:
    """Require :class:`FactoredLogits` of ``ndim``-D features and 2-D prototypes of the same
    width for ``function(argument)`` (one-line ``ValueError``)."""
    where = f"{function}({argument})"
    check(
        isinstance(logits, FactoredLogits),
        where,
        f"expected FactoredLogits, got {type(logits).__name__}",
        "pass head(x, factored=True), or call the plain loss in braindino.losses",
    )
    assert isinstance(logits, FactoredLogits)
    check_tensor(logits.features, f"{function}({argument}.features)", ndim)
    check_tensor(logits.prototypes, f"{function}({argument}.prototypes)", 2)
    widths = (logits.features.shape[-1], logits.prototypes.shape[1])
    check(
        widths[0] == widths[1],
        where,
        f"features have width {widths[0]} but prototypes {widths[1]}",
        "pass the head's bottleneck features and its prototype matrix",
    )


def _column_scale(
    prototypes: torch.Tensor, normalize: bool, dtype: torch.dtype
) -> torch.Tensor | None:
    return inverse_row_norms(prototypes.detach().to(dtype)) if normalize else None


def _blocks(rows: int, columns: int) -> list[tuple[int, int]]:
    width = max(1, min(columns, SLAB_ELEMENTS // max(rows, 1)))
    return [(start, min(start + width, columns)) for start in range(0, columns, width)]


class _FactoredSoftCrossEntropy(torch.autograd.Function):
    """The soft-target cross-entropy of ``features @ prototypes.T`` in column blocks.

    Logits ``z_ik = c_k · (f_i · W_k)`` with the column scale ``c_k = 1/τ`` (or
    ``c_k = u_k / τ`` with ``u_k = 1/‖W_k‖`` for unit prototypes). The scale goes on the
    ``[block, D]`` prototype rows or on the ``[M, block]`` logits, whichever is smaller
    (``_scale_prototype_rows``). With ``H = ∂loss/∂z`` and ``G = Hᵀ F`` the gradients are
    ``∂f = H @ (c ⊙ W)`` and ``∂W_k = c_k G_k − c_k u_k² (G_k · W_k) W_k`` (the second term only
    for unit prototypes), so no ``[K, D]`` unit matrix is ever built. The forward keeps each
    block's ``exp(z − m)`` (``m``: the running row maximum after that block), so the backward's
    softmax is that block times a per-row factor, with no second ``exp`` and no logits.
    """

    @staticmethod
    def forward(ctx, features, prototypes, targets, weights, inv_temperature, normalize):
        rows, acc = features.shape[0], targets.dtype  # float32, or float64 for float64 inputs
        scale = _scale(prototypes, normalize, inv_temperature, acc)
        running_max = features.new_full((rows,), float("-inf"), dtype=acc)
        running_sum = features.new_zeros(rows, dtype=acc)
        dot = features.new_zeros(rows, dtype=acc)
        element_bytes = torch.finfo(acc).bits // 8
        keep = rows * prototypes.shape[0] * element_bytes <= KEEP_LOGITS_BYTES
        kept, maxima = [], []
        for start, stop in _blocks(rows, prototypes.shape[0]):
            z = _block_logits(features, prototypes, scale, start, stop, acc)
            dot += (targets[:, start:stop] * z).sum(dim=1)
            new_max = torch.maximum(running_max, z.amax(dim=1))
            running_sum.mul_(torch.exp(running_max - new_max))
            running_sum += z.sub_(new_max.unsqueeze(1)).exp_().sum(dim=1)  # z is now exp(z − m)
            running_max = new_max
            maxima.append(new_max)
            if keep:
                kept.append(z)
        ctx.kept, ctx.maxima = kept, maxima
        lse = running_max + torch.log(running_sum)
        target_mass = targets.sum(dim=1)
        ctx.save_for_backward(features, prototypes, targets, weights, lse, target_mass, scale)
        ctx.inv_temperature, ctx.normalize = inv_temperature, normalize
        return (weights * (target_mass * lse - dot)).sum()

    @staticmethod
    def backward(ctx, grad_output):
        features, prototypes, targets, weights, lse, target_mass, scale = ctx.saved_tensors
        acc = targets.dtype
        row_weight = grad_output * weights
        mass_weight = target_mass * row_weight
        grad_features = torch.zeros(features.shape, dtype=acc, device=features.device)
        grad_prototypes = torch.empty(prototypes.shape, dtype=acc, device=features.device)
        kept, ctx.kept = ctx.kept, None  # a second backward (retain_graph) recomputes
        rows_first = _scale_prototype_rows(features, prototypes)
        for index, (start, stop) in enumerate(_blocks(features.shape[0], prototypes.shape[0])):
            row_max = ctx.maxima[index]
            if kept:
                h = kept[index]  # exp(z − m) for this block
                kept[index] = None  # freed as the backward walks the blocks
            else:  # the same values again, recomputed
                h = _block_logits(features, prototypes, scale, start, stop, acc)
                h.sub_(row_max.unsqueeze(1)).exp_()
            h.mul_((torch.exp(row_max - lse) * mass_weight).unsqueeze(1))  # softmax · mass · w
            h.addcmul_(targets[:, start:stop], row_weight.unsqueeze(1), value=-1)  # H
            c, rows_acc = scale[start:stop], prototypes[start:stop].detach().to(acc)
            if rows_first:  # ∂f = H @ (c ⊙ W)
                h_low = h.to(features.dtype)
                scaled = (rows_acc * c.unsqueeze(1)).to(features.dtype)
            else:  # ∂f = (H ⊙ c) @ W
                h_low = h.mul_(c).to(features.dtype)
                scaled = rows_acc.to(features.dtype)
            grad_features += (h_low @ scaled).to(acc)
            block = grad_prototypes[start:stop]  # Hᵀ F (or (H ⊙ c)ᵀ F), into ∂W in place
            if h_low.dtype == acc:
                torch.mm(h_low.T, features, out=block)
            else:
                block.copy_(h_low.T @ features)
            if rows_first:
                block.mul_(c.unsqueeze(1))  # now c ⊙ G either way
            if ctx.normalize:  # − c_k u_k² (G_k · W_k) W_k
                unit = c / ctx.inv_temperature  # u_k = 1/‖W_k‖
                correction = torch.linalg.vecdot(block, rows_acc, dim=1).mul_(unit.square())
                block.addcmul_(rows_acc, correction.unsqueeze(1), value=-1)
        grads = grad_features.to(features.dtype), grad_prototypes.to(prototypes.dtype)
        return (*grads, None, None, None, None)  # none for targets, weights, 1/τ, normalize


def _scale(prototypes, normalize, inv_temperature, acc) -> torch.Tensor:
    """The column scale ``c`` ``[K]``: ``1/τ``, or ``1/(τ ‖W_k‖)`` for unit prototypes."""
    unit = _column_scale(prototypes, normalize, acc)
    if unit is None:
        return torch.full(
            (prototypes.shape[0],), inv_temperature, dtype=acc, device=prototypes.device
        )
    return unit * inv_temperature


def _scale_prototype_rows(features: torch.Tensor, prototypes: torch.Tensor) -> bool:
    """Apply the column scale to the ``[block, D]`` prototype rows (True) or to the
    ``[M, block]`` logits (False): whichever has fewer entries (rows when M > D, e.g. iBOT's
    masked tokens; logits for DINO's few CLS rows)."""
    return features.shape[0] > prototypes.shape[1]


def _block_logits(features, prototypes, scale, start, stop, acc) -> torch.Tensor:
    """The block's scaled logits ``[M, block]`` in ``acc`` (the product in the features' dtype)."""
    rows, c = prototypes[start:stop].detach(), scale[start:stop]
    if _scale_prototype_rows(features, prototypes):
        scaled = (rows.to(acc) * c.unsqueeze(1)).to(features.dtype)
        return (features @ scaled.T).to(acc)
    return (features @ rows.to(features.dtype).T).to(acc).mul_(c)


def factored_cross_entropy(
    logits: FactoredLogits, targets: torch.Tensor, weights: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``Σ_i weights[i] · (−Σ_k targets[i, k] · log softmax(logits[i] / temperature)_k)`` for
    factored logits (features ``[M, D]``, prototypes ``[K, D]``); ``targets`` ``[M, K]``,
    ``weights`` ``[M]`` are constants. The products run in the features' dtype (bf16 on a GPU),
    the softmax in float32 (float64 for float64 features). Returns a scalar."""
    acc = torch.float64 if logits.features.dtype == torch.float64 else torch.float32
    return _FactoredSoftCrossEntropy.apply(
        logits.features,
        logits.prototypes,
        targets.detach().to(acc),
        weights.detach().to(acc),
        1.0 / float(temperature),
        bool(logits.normalize),
    )


def fused_dino_loss(
    student: FactoredLogits,
    teacher_probs: torch.Tensor,
    student_temperature: float = 0.1,
    ignore_diagonal: bool = True,
) -> torch.Tensor:
    """:func:`~braindino.losses.dino_loss` of factored student logits (features ``[S, N, D]``).

    The cross-entropy is linear in the target, so each student row is scored once against the
    sum of the teacher crops it is paired with (all T, or T − 1 for a global crop when the
    diagonal is ignored), and the pair count divides the total.
    """
    check_logits(student, "dino_loss", "student_logits", ndim=3)
    check_tensor(teacher_probs, "dino_loss(teacher_probs)", 3)
    check_positive(student_temperature, "dino_loss(student_temperature)")
    S, N, K = student.shape
    n_pairs = check_dino_shapes((S, N, K), teacher_probs, ignore_diagonal)
    with full_precision(student.features):
        acc = torch.float64 if student.features.dtype == torch.float64 else torch.float32
        paired = teacher_probs.detach().to(acc).sum(dim=0).expand(S, N, K).clone()
        if ignore_diagonal:
            paired[: teacher_probs.shape[0]] -= teacher_probs.detach().to(acc)
        weights = student.features.new_full((S * N,), 1.0 / (n_pairs * N), dtype=acc)
        rows = student._replace(features=student.features.reshape(S * N, -1))
        return factored_cross_entropy(rows, paired.view(S * N, K), weights, student_temperature)


def fused_ibot_loss(
    student: FactoredLogits,
    teacher_patch_probs: torch.Tensor,
    masks: torch.Tensor,
    student_temperature: float = 0.1,
) -> torch.Tensor:
    """:func:`~braindino.losses.ibot_loss` of factored student logits (features ``[M, D]``)."""
    check_logits(student, "ibot_loss", "student_patch_logits")
    check_positive(student_temperature, "ibot_loss(student_temperature)")
    weights = ibot_token_weights(masks, tuple(student.shape), teacher_patch_probs)
    with full_precision(student.features):
        total = factored_cross_entropy(student, teacher_patch_probs, weights, student_temperature)
        return total / masks.shape[0]
